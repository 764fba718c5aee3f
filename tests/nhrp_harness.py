"""Several NHRP engines wired together in memory with explicit virtual time:
a hub and spokes exchanging NHRP bytes over a lossy, delaying "NBMA"
network with optional NAT, and IPsec SAs that come up when asked."""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from dmvpn.config.model import NhrpServer
from dmvpn.nhrp.engine import NhrpEngine
from dmvpn.nhrp.events import NeedSa, NhrpOutput, SendNhrp
from dmvpn.nhrp.settings import NhrpSettings, RouteLookup
from dmvpn.runtime.randomness import SeededRandomSource
from dmvpn.wire.nhrp import NhrpPacket, decode_nhrp

A = IPv4Address
HUB_TUNNEL, HUB_NBMA = A("10.0.0.1"), A("172.16.0.1")


class Routes:
    """A tiny longest-prefix-match table implementing RouteView."""

    def __init__(self, *routes: tuple[str, str | None, str]) -> None:
        self.routes = [RouteLookup(IPv4Network(p), A(h) if h else None, i) for p, h, i in routes]

    def route_for(self, address: IPv4Address) -> RouteLookup | None:
        found = [r for r in self.routes if address in r.prefix]
        return max(found, key=lambda r: r.prefix.prefixlen) if found else None


@dataclass
class Wire:
    """One NHRP packet seen on the network."""

    time: float
    src: IPv4Address
    dst: IPv4Address
    packet: NhrpPacket
    raw: bytes
    delivered: bool


@dataclass(order=True)
class _Event:
    time: float
    seq: int
    action: Callable[[], None] = field(compare=False)


class Net:
    """The in-memory NBMA network and event loop."""

    def __init__(self, *, seed: int = 1, loss: float = 0.0, delay: float = 0.01, sa_delay: float = 0.3) -> None:
        self.now = 0.0
        self.engines: dict[IPv4Address, NhrpEngine] = {}
        self.nat: dict[IPv4Address, IPv4Address] = {}  # private NBMA -> public
        self.loss, self.delay, self.sa_delay = loss, delay, sa_delay
        self.rng = random.Random(seed)
        self.seed = seed
        self.wire: list[Wire] = []
        self.outputs: dict[str, list[NhrpOutput]] = {}
        self.drop: Callable[[Wire], bool] = lambda w: False
        self._queue: list[_Event] = []
        self._seq = 0

    def add(self, engine: NhrpEngine, *, public: IPv4Address | None = None) -> NhrpEngine:
        self.engines[engine.settings.nbma_address] = engine
        self.outputs.setdefault(engine.node, [])
        if public is not None:
            self.nat[engine.settings.nbma_address] = public
        return engine

    def remove(self, engine: NhrpEngine) -> None:
        del self.engines[engine.settings.nbma_address]

    def seen_as(self, nbma: IPv4Address) -> IPv4Address:
        return self.nat.get(nbma, nbma)

    def _engine_at(self, address: IPv4Address) -> NhrpEngine | None:
        for nbma, engine in self.engines.items():
            if address in (nbma, self.nat.get(nbma)):
                return engine
        return None

    def schedule(self, at: float, action: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._queue, _Event(at, self._seq, action))

    def drain(self, engine: NhrpEngine) -> None:
        for out in engine.poll_outputs():
            self.outputs[engine.node].append(out)
            if isinstance(out, SendNhrp):
                self._transmit(engine, out)
            elif isinstance(out, NeedSa):
                self._bring_up_sa(engine, out.nbma)
        engine.poll_events()

    def _transmit(self, engine: NhrpEngine, out: SendNhrp) -> None:
        src = self.seen_as(engine.settings.nbma_address)
        lost = self.rng.random() < self.loss
        w = Wire(self.now, src, out.nbma, decode_nhrp(out.packet), out.packet, False)
        self.wire.append(w)
        if lost or self.drop(w):
            return
        w.delivered = True

        def deliver() -> None:
            peer = self._engine_at(out.nbma)
            if peer is not None:
                peer.receive(self.now, src, out.nbma, out.packet)
                self.drain(peer)

        self.schedule(self.now + self.delay, deliver)

    def _bring_up_sa(self, engine: NhrpEngine, nbma: IPv4Address) -> None:
        def up() -> None:
            peer = self._engine_at(nbma)
            if peer is None or engine.settings.nbma_address not in self.engines:
                return
            engine.sa_up(self.now, nbma)
            self.drain(engine)
            peer.sa_up(self.now, self.seen_as(engine.settings.nbma_address))
            self.drain(peer)

        self.schedule(self.now + self.sa_delay, up)

    def call(self, engine: NhrpEngine, fn: Callable[[float], None]) -> None:
        fn(self.now)
        self.drain(engine)

    def run_until(self, t: float) -> None:
        while True:
            deadlines = [(d, e) for e in self.engines.values() if (d := e.next_deadline()) is not None]
            timer = min(deadlines, key=lambda x: x[0]) if deadlines else None
            event_t = self._queue[0].time if self._queue else None
            nxt = (
                min(x for x in (timer[0] if timer else None, event_t) if x is not None) if (timer or event_t) else None
            )
            if nxt is None or nxt > t:
                self.now = t
                return
            self.now = max(self.now, nxt)
            if event_t is not None and event_t <= nxt:
                heapq.heappop(self._queue).action()
            else:
                assert timer is not None
                timer[1].handle_timer(self.now)
                self.drain(timer[1])

    def sent(self, ptype: int, src: IPv4Address | None = None, dst: IPv4Address | None = None) -> list[Wire]:
        return [w for w in self.wire if w.packet.type == ptype and src in (None, w.src) and dst in (None, w.dst)]


def spoke_settings(n: int, **kw: Any) -> NhrpSettings:
    base = NhrpSettings(
        interface="Tunnel0",
        tunnel_address=A(f"10.0.0.{n}"),
        nbma_address=A(f"172.16.0.{n}"),
        nhs=(NhrpServer(HUB_TUNNEL, HUB_NBMA),),
        shortcut=True,
        authentication=b"DMVPN",
        mtu=1400,
    )
    return replace(base, **kw)


def hub_settings(**kw: Any) -> NhrpSettings:
    base = NhrpSettings(
        interface="Tunnel0",
        tunnel_address=HUB_TUNNEL,
        nbma_address=HUB_NBMA,
        redirect=True,
        shortcut=True,
        authentication=b"DMVPN",
        multicast_dynamic=True,
        mtu=1400,
    )
    return replace(base, **kw)


def hub_routes(*spokes: int) -> Routes:
    return Routes(
        ("10.0.0.0/24", None, "Tunnel0"),
        ("192.168.1.0/24", None, "Loopback0"),
        *((f"192.168.{n}.0/24", f"10.0.0.{n}", "Tunnel0") for n in spokes),
    )


def spoke_routes(n: int, *extra: tuple[str, str | None, str]) -> Routes:
    return Routes(
        ("10.0.0.0/24", None, "Tunnel0"),
        (f"192.168.{n}.0/24", None, "Loopback0"),
        ("192.168.0.0/16", "10.0.0.1", "Tunnel0"),
        *extra,
    )


def lab(spokes: tuple[int, ...] = (2, 3, 4), *, seed: int = 1, loss: float = 0.0, **hub_kw: Any) -> Net:
    """A hub and spokes, all started at t=0 (spoke n: tunnel 10.0.0.n,
    NBMA 172.16.0.n, LAN 192.168.n.0/24)."""
    net = Net(seed=seed, loss=loss)
    hub = net.add(NhrpEngine("hub", hub_settings(**hub_kw), SeededRandomSource(seed, "hub"), hub_routes(*spokes)))
    net.call(hub, hub.start)
    for n in spokes:
        spoke = net.add(NhrpEngine(f"spoke{n}", spoke_settings(n), SeededRandomSource(seed, f"s{n}"), spoke_routes(n)))
        net.call(spoke, spoke.start)
    return net


def ipv4_packet(src: str, dst: str, payload: bytes = bytes(range(8)) * 4) -> bytes:
    """An ICMP-looking IPv4 datagram (only the header fields NHRP reads)."""
    total = 20 + len(payload)
    return bytes([0x45, 0, total >> 8, total & 255, 0, 1, 0, 0, 64, 1, 0, 0]) + A(src).packed + A(dst).packed + payload


def pair(**spoke_kw: Any) -> tuple[Net, NhrpEngine, NhrpEngine]:
    """A hub and spoke 2 (built with ``spoke_kw``), both started at t=0."""
    net = Net()
    hub = net.add(NhrpEngine("hub", hub_settings(), SeededRandomSource(1, "h"), hub_routes(2, 3)))
    spoke = net.add(NhrpEngine("spoke2", spoke_settings(2, **spoke_kw), SeededRandomSource(1, "s"), spoke_routes(2)))
    net.call(hub, hub.start)
    net.call(spoke, spoke.start)
    return net, hub, spoke
