"""Hostile NHRP at the engines: well-formed packets (valid checksum and
authentication) with fields changed at random, delivered to a hub and
spokes at random moments among data-path calls. Nothing may escape
``receive``/``handle_timer``, no packet may leave with hop count 0, and once
the garbage stops the lab must converge again: every spoke registered and a
phase 3 shortcut built."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dmvpn.nhrp.states import EntryState, NhsState
from dmvpn.wire.nhrp import Cie, NhrpPacket, encode_nhrp
from nhrp_harness import HUB_NBMA, Net, ipv4_packet, lab

A = IPv4Address
ADDRESSES = [
    A(a).packed for a in ("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.9", "172.16.0.2", "192.168.3.10", "0.0.0.0")
]


def _seeds() -> list[NhrpPacket]:
    net = lab((2, 3))
    net.run_until(1)
    hub = next(e for e in net.engines.values() if e.node == "hub")
    net.call(hub, lambda now: hub.hairpin(now, A("172.16.0.2"), ipv4_packet("192.168.2.10", "192.168.3.10")))
    net.run_until(3)
    s2 = next(e for e in net.engines.values() if e.node == "spoke2")
    net.call(s2, lambda now: s2.resolve(now, A("10.0.0.9")))
    net.run_until(5)
    return [w.packet for w in net.wire]


SEEDS = _seeds()
cie_edit = st.builds(
    Cie,
    st.sampled_from([0, 4, 12, 13, 14, 99]),
    st.sampled_from([0, 8, 24, 32, 33, 255]),
    st.sampled_from([0, 1400, 17916]),
    st.sampled_from([0, 1, 30, 7200, 65535]),
    st.sampled_from([b"", *ADDRESSES, b"\x01"]),
    st.just(b""),
    st.sampled_from([b"", *ADDRESSES, b"\x01\x02"]),
)


@st.composite
def hostile(draw: st.DrawFn) -> NhrpPacket:
    pkt = draw(st.sampled_from(SEEDS))
    changes = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "type": st.integers(0, 10),
                "flags": st.sampled_from([0, 0x8000, 0x8002, 0xC802, 0xFFFF]),
                "request_id": st.integers(0, 8),
                "hop_count": st.sampled_from([0, 1, 2, 255]),
                "src_nbma": st.sampled_from(ADDRESSES),
                "src_protocol": st.sampled_from(ADDRESSES),
                "dst_protocol": st.sampled_from(ADDRESSES),
                "cies": st.lists(cie_edit, max_size=3).map(tuple),
                "payload": st.sampled_from([b"", bytes(10), ipv4_packet("192.168.2.1", "192.168.3.1")[:28]]),
                "extensions": st.sampled_from([(), pkt.extensions, pkt.extensions[:-1], pkt.extensions * 2]),
            },
        )
    )
    return replace(pkt, **changes)


action = st.one_of(
    st.tuples(st.just("packet"), st.sampled_from(["hub", "spoke2", "spoke3"]), hostile()),
    st.tuples(st.just("resolve"), st.sampled_from(["spoke2", "spoke3"]), st.sampled_from(ADDRESSES[:6])),
    st.tuples(st.just("hairpin"), st.just("hub"), st.sampled_from(["spoke2", "spoke3"])),
    st.tuples(st.just("wait"), st.just("hub"), st.floats(0, 120)),
)


def _apply(net: Net, act: tuple[str, str, object]) -> None:
    kind, node, arg = act
    eng = next(e for e in net.engines.values() if e.node == node)
    if kind == "packet":
        assert isinstance(arg, NhrpPacket)
        try:
            data = encode_nhrp(arg)
        except ValueError:
            return
        net.call(eng, lambda now: eng.receive(now, A("172.16.0.2"), eng.settings.nbma_address, data))
    elif kind == "resolve":
        assert isinstance(arg, bytes)
        net.call(eng, lambda now: eng.resolve(now, A(arg)))
    elif kind == "hairpin":
        src = A("172.16.0.2") if arg == "spoke2" else A("172.16.0.3")
        net.call(eng, lambda now: eng.hairpin(now, src, ipv4_packet("192.168.2.10", "192.168.3.10")))
    else:
        assert isinstance(arg, float)
        net.run_until(net.now + arg)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(action, min_size=1, max_size=25))
def test_hostile_packets_then_convergence(actions: list[tuple[str, str, object]]) -> None:
    net = lab((2, 3))
    net.run_until(1)
    for act in actions:
        _apply(net, act)
    net.run_until(net.now + 70_000)  # any garbage registration (holdtime <= 65535 s) has expired
    hub = next(e for e in net.engines.values() if e.node == "hub")
    registered = {str(e.prefix): e.peer_nbma for e in hub.cache if e.state is EntryState.REGISTERED}
    assert registered.get("10.0.0.2/32") == A("172.16.0.2") and registered.get("10.0.0.3/32") == A("172.16.0.3")
    s2 = next(e for e in net.engines.values() if e.node == "spoke2")
    assert s2.nhs[0].state is NhsState.RESPONDING
    s2.clear(net.now)
    net.drain(s2)
    net.call(hub, lambda now: hub.hairpin(now, A("172.16.0.2"), ipv4_packet("192.168.2.10", "192.168.3.10")))
    net.run_until(net.now + 5)
    route = s2.cache.get(IPv4Network("192.168.3.0/24"))
    assert route is not None and route.state is EntryState.RESOLVED and s2.nbma_for(A("10.0.0.3")) == A("172.16.0.3")
    assert all(w.packet.hop_count > 0 for w in net.wire)
    assert HUB_NBMA in net.engines
