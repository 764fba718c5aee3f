"""The router's seams: sub-engines as a collection, key management behind
the KeyManager protocol, the UDP 500/4500 demux on the IKE version."""

from __future__ import annotations

import ast
from pathlib import Path

from dmvpn.sansio import LogEvent
from dmvpn.wire.ipv4 import IpProto, IPv4Header
from dmvpn.wire.isakmp import add_non_esp_marker
from dmvpn.wire.udp import encode_udp
from router_lab import HUB_NBMA, HUB_TUN, SPOKE_NBMA, WAN, build, results

SRC = Path(__file__).resolve().parent.parent / "src" / "dmvpn"


def _udp(sport: int, dport: int, payload: bytes) -> bytes:
    udp = encode_udp(SPOKE_NBMA, HUB_NBMA, sport, dport, payload)
    return IPv4Header(SPOKE_NBMA, HUB_NBMA, IpProto.UDP, ttl=255).encode(udp)


def _ikev2_header() -> bytes:
    # RFC 7296 3.1: SPIs, next payload, version 0x20, IKE_SA_INIT (34), flags, message id, length
    return bytes(8) + bytes(8) + bytes([33, 0x20, 34, 0x08]) + bytes(4) + (28).to_bytes(4, "big")


def test_unknown_ike_version_is_dropped_and_counted_on_500_and_4500() -> None:
    _sim, hub, _spoke, _ = build()
    hub.receive(1.0, WAN, _udp(500, 500, _ikev2_header()))
    hub.receive(1.0, WAN, _udp(4500, 4500, add_non_esp_marker(_ikev2_header())))
    assert hub.counters.unknown_ike_version == 2
    assert hub.poll_transmit() == [] and hub.ike.sas == []


def test_ikev1_still_reaches_its_manager() -> None:
    sim, hub, spoke, _ = build()
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 3")
    sim.run(10.0)
    assert results(spoke) == ".!!" and hub.counters.unknown_ike_version == 0
    assert hub.ike.ike_version == 1 and len(hub.key_managers) == 1


class _Ticker:
    """A sub-engine that wants a timer every 5 s and logs each one."""

    def __init__(self) -> None:
        self.next = 5.0
        self.events: list[LogEvent] = []
        self.drained = 0

    def handle_timer(self, now: float) -> None:
        if now >= self.next:
            self.events.append(LogEvent(now, "HUB", "tick", f"tick at {now:g}", {}))
            self.next += 5.0

    def next_deadline(self) -> float | None:
        return self.next

    def drain(self, now: float) -> bool:
        self.drained += 1
        return False

    def poll_events(self) -> list[LogEvent]:
        out, self.events = self.events, []
        return out


def test_a_sub_engine_added_to_the_collection_gets_timers_draining_and_events() -> None:
    sim, hub, _spoke, _ = build()
    ticker = _Ticker()
    hub.engines.append(ticker)
    sim.admin("HUB", "")  # re-read the deadlines
    sim.run(16.0)
    assert [e.message for e in sim.events if e.category == "tick"] == ["tick at 5", "tick at 10", "tick at 15"]
    assert ticker.next == 20.0 and ticker.drained >= 3


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_no_concrete_ike_engine_outside_the_factory() -> None:
    router = (SRC / "node" / "router.py").read_text()
    tree = ast.parse(router)
    users = [n for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == "Ikev1Engine"]
    factory = next(f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "build_key_managers")
    inside = {id(n) for n in ast.walk(factory)}
    assert users and all(id(n) in inside for n in users)
    for module in ("node/show_adapter.py", "runtime/real/daemon.py", "runtime/real/loop.py", "lab/fluid.py"):
        ike = {n for n in _imports(SRC / module)
               if n.startswith("dmvpn.ike.") and not n.startswith("dmvpn.ike.manager")}
        assert not ike, (module, ike)


def test_fluid_touches_only_the_bulk_port_of_a_router() -> None:
    """lab/fluid.py reads no router attribute starting with ``_`` and not its
    SAD: everything it uses is on node/bulk.py's BulkPort."""
    from dmvpn.node.bulk import BulkPort
    tree = ast.parse((SRC / "lab" / "fluid.py").read_text())
    routers = {"router", "src_router", "dst_router", "old", "new"}
    used = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        base = node.value
        if (isinstance(base, ast.Name) and base.id in routers) or (
                isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name) and base.value.id == "self"
                and base.attr in ("src", "dst")):
            used.add(node.attr)
    port = {name for name in dir(BulkPort) if not name.startswith("_")} | set(BulkPort.__annotations__)
    assert used and used <= port, used - port
