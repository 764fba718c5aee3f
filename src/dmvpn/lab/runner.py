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
from dmvpn.lab.scenario import FaultAction, ProbeSpec, Scenario, ShowSpec
from dmvpn.node.icmp_echo import PingSession
from dmvpn.node.router import Router
from dmvpn.runtime.sim import LinkParams, Segment, Simulator

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
    def _router(self, name: str) -> Router:
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
        return Router(config, self.sim.random_for(name), spec.profile or self.profile, name=name,
                      nhrp=self.scenario.nhrp)

    def _build(self) -> None:
        sc, sim = self.scenario, self.sim
        for node in sc.nodes:
            router = self._router(node.name)
            self.routers[node.name] = router
            sim.add_node(router)
        for link in sc.links:
            params = LinkParams(
                delay=_split(link.delay_ms / 1000.0), jitter=_split(link.jitter_ms / 1000.0),
                loss=_split(link.loss, loss=True), duplicate=_split(link.duplicate, loss=True),
                reorder=_split(link.reorder, loss=True),
                bandwidth=link.bandwidth_mbps * 1e6 if link.bandwidth_mbps else None, mtu=link.mtu)
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
            sim.call_at(fault.at, functools.partial(self._fault, fault.action, fault.target, fault.interface,
                                                    fault.address))
        for show in sc.shows:
            sim.call_at(min(show.at, self.duration), functools.partial(self._capture_show, show))

    def _capture_show(self, show: ShowSpec) -> None:
        self.shows.append((show, self.sim.admin(show.node, show.command)))

    def _owner_of_overlay(self, address: IPv4Address) -> Router:
        for router in self.routers.values():
            if any(t.address.ip == address for t in router.tunnels.values()):
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

    def _fault(self, action: FaultAction, target: str, interface: str | None = None,
               address: IPv4Address | None = None) -> None:
        if action is FaultAction.NODE_READDRESS and interface is not None and address is not None:
            current = self.routers[target].config.interface_address(interface)
            if current is None:
                raise ValueError(f"{self.scenario.source}: {target} has no address on {interface}")
            self._readdressed.setdefault(target, []).append((str(current), str(address)))
            for segment in self.segments.values():
                if f"{target}:{interface}" in segment.attachments:
                    segment.readdress(target, interface, str(address))
            action = FaultAction.NODE_RESTART
        if action is FaultAction.NODE_RESTART:
            old = self.routers[target]
            self.retired.append(old)
            router = self._router(target)
            self.routers[target] = router
            for flow in self.flows:
                if old in (flow.src, flow.dst):
                    flow.replace_router(old, router, self.sim.now)
            self.sim.replace_engine(target, router)
            return
        for attachment in self.segments[target].attachments.values():
            attachment.set_up(action is FaultAction.LINK_UP)

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
