"""Run a scenario in the simulator: routers from IOS configs, segments, fluid
flows, ping probes, faults and show captures, all in virtual time.

The runner owns nothing protocol-specific: it builds :class:`Router`
engines, wires them into a :class:`Simulator`, schedules the scenario's
events with ``call_at`` and, at the end, reads each router's SA history into
a ledger (:mod:`dmvpn.ipsec.ledger`) for the analysis, the explanation and the
timeline plot.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from dmvpn.config import load_config, parse_config
from dmvpn.config.parser import read_config_text
from dmvpn.ipsec.ledger import SaRecord, record_of
from dmvpn.lab.fluid import FluidFlow
from dmvpn.lab.scenario import FaultAction, FaultSpec, LinkSpec, ProbeSpec, Scenario, ShowSpec
from dmvpn.node.icmp_echo import PingSession
from dmvpn.node.router import Router
from dmvpn.runtime.sim import LinkParams, Segment, Simulator
from dmvpn.runtime.sim.links import Channel
from dmvpn.wire.ipv4 import IpProto
from dmvpn.wire.isakmp import NON_ESP_MARKER
from dmvpn.wire.isakmp_registry import ExchangeType

IKE_PORTS = (500, 4500)

#: How often (virtual seconds) the progress callback is told where the run is.
PROGRESS_STEPS = 200


@dataclass(slots=True)
class ProbeResult:
    spec: ProbeSpec
    session: PingSession | None = None

    @property
    def sent(self) -> int:
        return self.session.sent if self.session else 0

    @property
    def received(self) -> int:
        return self.session.received if self.session else 0

    @property
    def lost(self) -> int:
        # an Echo still in flight when the run stops is not counted as lost
        if self.session is None:
            return 0
        return self.sent - self.received - len(self.session.outstanding)


@dataclass(slots=True)
class LabResult:
    """Everything a run produced; times are virtual seconds."""

    scenario: Scenario
    profile: str
    seed: int
    duration: float
    sim: Simulator
    routers: dict[str, Router]
    flows: list[FluidFlow]
    probes: list[ProbeResult]
    shows: list[tuple[ShowSpec, str]] = field(default_factory=list)
    records: list[SaRecord] = field(default_factory=list)
    wall_seconds: float = 0.0


def _split(end_to_end: float, loss: bool = False) -> float:
    """Half of an end-to-end figure for each of the two channels a segment
    puts between two attachments (loss: 1 - sqrt(1 - p))."""
    return 1.0 - math.sqrt(1.0 - end_to_end) if loss else end_to_end / 2.0


def is_informational(packet: bytes) -> bool:
    """An ISAKMP Informational exchange (RFC 2408 4.8: DELETE, DPD), on UDP
    500 or behind the non-ESP marker on 4500 (RFC 3948 2.2). It is encrypted,
    so the exchange type is all a middlebox that loses them can see."""
    if len(packet) < 28 or packet[9] != IpProto.UDP:
        return False
    ihl = (packet[0] & 15) * 4
    dport = int.from_bytes(packet[ihl + 2:ihl + 4], "big")
    if dport not in IKE_PORTS:
        return False
    start = ihl + 8
    if dport == IKE_PORTS[1]:
        if packet[start:start + 4] != NON_ESP_MARKER:
            return False
        start += 4
    return len(packet) > start + 18 and packet[start + 18] == ExchangeType.INFORMATIONAL


def link_params(spec: LinkSpec | FaultSpec, mtu: int, bandwidth_mbps: float | None) -> LinkParams:
    """One channel's share of a link's (or an impair fault's) end-to-end figures."""
    return LinkParams(
        delay=_split(spec.delay_ms / 1000.0), jitter=_split(spec.jitter_ms / 1000.0),
        loss=_split(spec.loss, loss=True), duplicate=_split(spec.duplicate, loss=True),
        reorder=_split(spec.reorder, loss=True),
        bandwidth=bandwidth_mbps * 1e6 if bandwidth_mbps else None, mtu=mtu)


class LabRun:
    """One run of ``scenario``; ``profile``, ``seed`` and ``duration``
    override the scenario's own values."""

    def __init__(self, scenario: Scenario, *, profile: str | None = None, seed: int | None = None,
                 duration: float | None = None,
                 progress: Callable[[float, float], None] | None = None,
                 config_transform: Callable[[str], str] | None = None) -> None:
        self.scenario = scenario
        self.profile = profile or scenario.profile
        self.seed = scenario.seed if seed is None else seed
        self.duration = duration or scenario.duration
        self.progress = progress
        self.config_transform = config_transform
        self.sim = Simulator(self.seed)
        self.routers: dict[str, Router] = {}
        self.retired: list[Router] = []  # routers replaced by a node restart
        self.segments: dict[str, Segment] = {}
        self.flows: list[FluidFlow] = []
        self.probes: list[ProbeResult] = []
        self.shows: list[tuple[ShowSpec, str]] = []
        #: node -> (old, new) interface addresses of node-readdress faults so far
        self._readdressed: dict[str, list[tuple[str, str]]] = {}
        self._build()

    # ------------------------------------------------------------------ build
    def _router(self, name: str, incarnation: int = 0) -> Router:
        """Node ``name``'s router; a restarted one (``incarnation`` > 0) draws
        fresh randomness, as a rebooted box would (new cookies and SPIs)."""
        spec = next(n for n in self.scenario.nodes if n.name == name)
        if self.config_transform is None:
            config = load_config(spec.config)
        else:
            parsed = parse_config(self.config_transform(read_config_text(spec.config)), str(spec.config))
            if parsed.config is None:
                raise parsed.errors[0]
            config = parsed.config
        if name in self._readdressed:
            text = read_config_text(spec.config)
            if self.config_transform is not None:
                text = self.config_transform(text)
            for old, new in self._readdressed[name]:
                text = text.replace(f" ip address {old} ", f" ip address {new} ")
            parsed = parse_config(text, str(spec.config))
            if parsed.config is None:
                raise parsed.errors[0]
            config = parsed.config
        rng = self.sim.random_for(name if incarnation == 0 else f"{name}#{incarnation}")
        return Router(config, rng, spec.profile or self.profile, name=name, nhrp=self.scenario.nhrp)

    def _build(self) -> None:
        sc, sim = self.scenario, self.sim
        for node in sc.nodes:
            router = self._router(node.name)
            self.routers[node.name] = router
            sim.add_node(router)
        for link in sc.links:
            params = link_params(link, link.mtu, link.bandwidth_mbps)
            segment = sim.segment(link.name, params)
            for node_name, iface in link.endpoints:
                address = self.routers[node_name].config.interface_address(iface)
                if address is None:
                    raise ValueError(f"{sc.source}: link {link.name}: {node_name} has no address on {iface}")
                segment.attach(node_name, iface, str(address), params)
            self.segments[link.name] = segment
        for flow in sc.flows:
            dst = self._owner_of_overlay(flow.dst)
            stop = self.duration if flow.stop is None else min(flow.stop, self.duration)
            self.flows.append(FluidFlow(self.routers[flow.src], dst, str(flow.dst),
                                        flow.rate_mbps * 1e6, flow.packet_bytes, flow.start, stop))
        for name in self.routers:  # flows added wake-ups: make the sim re-read deadlines
            sim.admin(name, "")
        for probe in sc.probes:
            self._schedule_probe(probe)
        for fault in sc.faults:
            sim.call_at(fault.at, functools.partial(self._fault, fault))
        for show in sc.shows:
            sim.call_at(min(show.at, self.duration), functools.partial(self._capture_show, show))

    def _capture_show(self, show: ShowSpec) -> None:
        self.shows.append((show, self.sim.admin(show.node, show.command)))

    def _owner_of_overlay(self, address: IPv4Address) -> Router:
        """The router with tunnel address ``address``, else the one with it on
        another interface (a Loopback LAN reached by a route over the tunnel)."""
        for router in self.routers.values():
            if any(t.address.ip == address for t in router.tunnels.values()):
                return router
        for router in self.routers.values():
            if str(address) in router.local_addresses:
                return router
        raise ValueError(f"{self.scenario.source}: no node owns overlay address {address}")

    def _schedule_probe(self, spec: ProbeSpec) -> None:
        result = ProbeResult(spec)
        self.probes.append(result)
        stop = self.duration if spec.stop is None else min(spec.stop, self.duration)
        count = int((stop - spec.start) / spec.interval)
        if count < 1:
            return
        router = self.routers[spec.src]

        def start() -> None:
            source = f" source {spec.source}" if spec.source else ""
            self.sim.admin(spec.src, f"ping {spec.dst} repeat {count} size {spec.size} "
                                     f"timeout 2 interval {spec.interval:g}{source}")
            result.session = router.host.last

        self.sim.call_at(spec.start, start)

    def _fault(self, fault: FaultSpec) -> None:
        action, target = fault.action, fault.target
        if action is FaultAction.CLOCK_JUMP:
            self.sim.jump_clock(target, fault.seconds)
            return
        if action is FaultAction.IMPAIR:
            self._impair(fault)
            return
        if action is FaultAction.DROP_DELETES:
            self._drop_deletes(fault)
            return
        if action is FaultAction.NODE_READDRESS and fault.interface is not None and fault.address is not None:
            self._readdress(target, fault.interface, str(fault.address))
            action = FaultAction.NODE_RESTART
        if action is FaultAction.NODE_RESTART:
            old = self.routers[target]
            self.retired.append(old)
            router = self._router(target, incarnation=len(self.retired))
            self.routers[target] = router
            for flow in self.flows:
                if old in (flow.src, flow.dst):
                    flow.replace_router(old, router, self.sim.now)
            self.sim.replace_engine(target, router)
            return
        for attachment in self.segments[target].attachments.values():
            attachment.set_up(action is FaultAction.LINK_UP)

    def _readdress(self, node: str, interface: str, address: str) -> None:
        """``node``'s ``interface`` gets ``address`` (the restart that follows
        builds its router from the config with the new address)."""
        current = self.routers[node].config.interface_address(interface)
        if current is None:
            raise ValueError(f"{self.scenario.source}: {node} has no address on {interface}")
        self._readdressed.setdefault(node, []).append((str(current), address))
        for segment in self.segments.values():
            if f"{node}:{interface}" in segment.attachments:
                segment.readdress(node, interface, address)

    def _channels(self, link: str) -> list[Channel]:
        return [c for a in self.segments[link].attachments.values() for c in (a.uplink, a.downlink)]

    def _impair(self, fault: FaultSpec) -> None:
        """The link's channels take the fault's figures, then their own back."""
        channels = self._channels(fault.target)
        own = [c.params for c in channels]
        for c in channels:
            c.params = link_params(fault, c.params.mtu, None if c.params.bandwidth is None
                                   else c.params.bandwidth / 1e6)
        if fault.duration is not None:
            def restore() -> None:
                for c, params in zip(channels, own, strict=True):
                    c.params = params
            self.sim.call_at(self.sim.now + fault.duration, restore)

    def _drop_deletes(self, fault: FaultSpec) -> None:
        channels = self._channels(fault.target)
        for c in channels:
            c.drop_if = is_informational
        if fault.duration is not None:
            def restore() -> None:
                for c in channels:
                    c.drop_if = None
            self.sim.call_at(self.sim.now + fault.duration, restore)

    # ------------------------------------------------------------------ run
    def run(self) -> LabResult:
        started = time.perf_counter()
        if self.progress is not None:
            step = self.duration / PROGRESS_STEPS
            for i in range(1, PROGRESS_STEPS + 1):
                self.sim.call_at(i * step, functools.partial(self.progress, i * step, self.duration))
        self.sim.run(until=self.duration)
        for name in self.routers:  # credit the fluid bytes up to the end
            self.sim.admin(name, "")
        records = [record_of(r.name, sa) for r in [*self.retired, *self.routers.values()]
                   for sa in r.sad.history]
        return LabResult(self.scenario, self.profile, self.seed, self.duration, self.sim,
                         dict(self.routers), self.flows, self.probes, self.shows, records,
                         time.perf_counter() - started)
