"""The deterministic discrete-event loop that drives engines in virtual time.

Events sit in one heap ordered by (time, insertion sequence), so two runs
with the same seed and the same inputs process exactly the same events in
exactly the same order. Each node has at most one live timer entry: after
every interaction (receive, timer, admin) the engine's transmits and log
events are drained and its ``next_deadline()`` re-read; a changed deadline
pushes a new entry and invalidates the old one (lazy deletion), so nothing is
ever scanned per event.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from dmvpn.runtime.randomness import SeededRandomSource, derive_seed
from dmvpn.runtime.sim.links import Channel, Link, LinkParams, Port, Segment
from dmvpn.runtime.sim.pcap import PcapWriter
from dmvpn.sansio import Engine, LogEvent, Transmit

# An engine asking again and again to be woken at the current instant is
# spinning; stop with a clear error instead of hanging.
MAX_TIMERS_AT_ONE_INSTANT = 10_000


class SimulationError(RuntimeError):
    """The simulation cannot go on (e.g. an engine spinning on its timer)."""


@dataclass(slots=True)
class SimNode:
    """A node: its engine, its interfaces' channels, its timer bookkeeping."""

    engine: Engine
    ports: dict[str, Channel] = field(default_factory=dict)
    unrouted: int = 0
    scheduled: float | None = None
    token: int = 0
    spin_time: float = -1.0
    spin_count: int = 0


class ShiftedClock:
    """An engine whose clock runs ``offset`` seconds ahead of virtual time (a
    peer whose clock jumped): every time handed to it is shifted, and its
    deadlines shifted back. Its log events and SA history carry its own
    (jumped) clock, as a real box's log would. Forward only: the runtimes'
    clocks are monotonic."""

    def __init__(self, engine: Engine, offset: float) -> None:
        self.engine = engine
        self.name = engine.name
        self.offset = offset

    def receive(self, now: float, iface: str, packet: bytes) -> None:
        self.engine.receive(now + self.offset, iface, packet)

    def handle_timer(self, now: float) -> None:
        self.engine.handle_timer(now + self.offset)

    def next_deadline(self) -> float | None:
        deadline = self.engine.next_deadline()
        return None if deadline is None else deadline - self.offset

    def admin(self, now: float, command: str) -> str:
        return self.engine.admin(now + self.offset, command)

    def poll_transmit(self) -> list[Transmit]:
        return self.engine.poll_transmit()

    def poll_events(self) -> list[LogEvent]:
        return self.engine.poll_events()


class Simulator:
    """Virtual time, nodes, links, segments, captures.

    ``seed`` determines every random draw: each node gets
    ``random_for(name)`` and each channel its own stream, both derived from
    (seed, name). ``epoch`` is added to virtual time in pcap timestamps.
    """

    def __init__(self, seed: int | str = 0, *, epoch: float = 0.0, keep_events: bool = True) -> None:
        self.seed = seed
        self.epoch = epoch
        self.now = 0.0
        self.nodes: dict[str, SimNode] = {}
        self.links: list[Link] = []
        self.segments: dict[str, Segment] = {}
        self.keep_events = keep_events
        self.events: list[LogEvent] = []
        self.events_processed = 0
        self._subscribers: list[Callable[[LogEvent], None]] = []
        self._heap: list[tuple[float, int, Callable[[Any], None], Any]] = []
        self._counter = itertools.count()
        self._captures: list[tuple[PcapWriter, bool]] = []

    # -- randomness ---------------------------------------------------------
    def derive_seed(self, label: str) -> int:
        """A 64-bit seed for ``label`` under this simulation's seed."""
        return derive_seed(self.seed, label)

    def random_for(self, name: str) -> SeededRandomSource:
        """The RandomSource to construct node ``name``'s engine with."""
        return SeededRandomSource(self.seed, f"node:{name}")

    # -- topology -----------------------------------------------------------
    def add_node(self, engine: Engine) -> None:
        """Add a node; ``engine.name`` is its name (must be unique)."""
        if engine.name in self.nodes:
            raise ValueError(f"node {engine.name!r} already exists")
        node = SimNode(engine)
        self.nodes[engine.name] = node
        self._after(node)

    def replace_engine(self, name: str, engine: Engine) -> None:
        """Swap node ``name``'s engine (a restart); links stay connected and
        the old engine's pending timer is forgotten."""
        node = self._node(name)
        if engine.name != name:
            raise ValueError(f"replacement engine is named {engine.name!r}, expected {name!r}")
        node.engine = engine
        node.scheduled = None
        node.token += 1
        self._after(node)

    def jump_clock(self, name: str, seconds: float) -> None:
        """Node ``name``'s clock jumps ``seconds`` (> 0) ahead of virtual time,
        at once and from now on; its pending timers fall due accordingly."""
        if not 0.0 < seconds < float("inf"):
            raise ValueError(f"a clock jumps forward by a finite number of seconds, got {seconds}")
        engine = self._node(name).engine
        if isinstance(engine, ShiftedClock):
            engine.offset += seconds
            self.replace_engine(name, engine)
        else:
            self.replace_engine(name, ShiftedClock(engine, seconds))

    def connect(self, a: str, a_iface: str, b: str, b_iface: str,
                params: LinkParams | None = None, *, reverse: LinkParams | None = None) -> Link:
        """A point-to-point link; ``params`` for a->b and (unless ``reverse``
        is given) b->a."""
        params = params or LinkParams()
        for name, iface in ((a, a_iface), (b, b_iface)):
            if iface in self._node(name).ports:
                raise ValueError(f"interface {name}:{iface} is already connected")
        if (a, a_iface) == (b, b_iface):
            raise ValueError(f"cannot connect {a}:{a_iface} to itself")
        link = Link(self, Port(a, a_iface), Port(b, b_iface), params, reverse or params)
        self._bind(a, a_iface, link.forward)
        self._bind(b, b_iface, link.reverse)
        self.links.append(link)
        return link

    def segment(self, name: str, params: LinkParams | None = None) -> Segment:
        """A new shared segment; attach nodes with ``seg.attach(...)``."""
        if name in self.segments:
            raise ValueError(f"segment {name!r} already exists")
        seg = Segment(self, name, params or LinkParams())
        self.segments[name] = seg
        return seg

    def _bind(self, name: str, iface: str, channel: Channel) -> None:
        node = self._node(name)
        if iface in node.ports:
            raise ValueError(f"interface {name}:{iface} is already connected")
        node.ports[iface] = channel

    def _node(self, name: str) -> SimNode:
        try:
            return self.nodes[name]
        except KeyError:
            raise KeyError(f"no node named {name!r}") from None

    # -- captures and events --------------------------------------------------
    def capture(self, target: Link | Segment, dest: str | Path | BinaryIO) -> PcapWriter:
        """Record every packet delivered over ``target`` into a pcap file
        (a path, or an open binary stream). Closed by :meth:`close`."""
        owned = isinstance(dest, (str, Path))
        stream: BinaryIO
        if isinstance(dest, (str, Path)):
            # kept open past this call: closed by close() (so no ``with``)
            stream = open(dest, "wb")  # noqa: SIM115
        else:
            stream = dest
        writer = PcapWriter(stream, epoch=self.epoch)
        target.taps.append(writer)
        self._captures.append((writer, owned))
        return writer

    def close(self) -> None:
        """Flush every capture; close the files :meth:`capture` opened itself
        (streams passed in stay open for the caller)."""
        for writer, owned in self._captures:
            writer.stream.flush()
            if owned:
                writer.close()
        self._captures.clear()

    def __enter__(self) -> Simulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def subscribe(self, callback: Callable[[LogEvent], None]) -> None:
        """Call ``callback`` with every log event as it happens."""
        self._subscribers.append(callback)

    def emit(self, event: LogEvent) -> None:
        """Record a log event (from an engine or from the simulator)."""
        if self.keep_events:
            self.events.append(event)
        for callback in self._subscribers:
            callback(event)

    def events_for(self, node: str | None = None, category: str | None = None) -> list[LogEvent]:
        """Collected events, optionally only one node's and/or category's."""
        return [e for e in self.events
                if (node is None or e.node == node) and (category is None or e.category == category)]

    # -- scheduling ----------------------------------------------------------
    def schedule(self, time: float, fn: Callable[[Any], None], arg: Any = None) -> None:
        """Run ``fn(arg)`` at virtual ``time`` (not before now)."""
        heapq.heappush(self._heap, (max(time, self.now), next(self._counter), fn, arg))

    def call_at(self, time: float, fn: Callable[[], None]) -> None:
        """Run ``fn()`` at virtual ``time`` (faults, lab traffic, probes)."""
        if time < self.now:
            raise ValueError(f"call_at({time}) is in the past (now is {self.now})")
        self.schedule(time, lambda _arg: fn())

    def run(self, until: float) -> None:
        """Process every event up to and including virtual time ``until``,
        then leave the clock at ``until``."""
        heap = self._heap
        pop = heapq.heappop
        count = 0
        while heap and heap[0][0] <= until:
            time, _seq, fn, arg = pop(heap)
            self.now = time
            fn(arg)
            count += 1
        self.events_processed += count
        if until > self.now:
            self.now = until

    # -- driving engines ------------------------------------------------------
    def admin(self, name: str, command: str) -> str:
        """Run an operator command on node ``name`` at the current time."""
        node = self._node(name)
        out = node.engine.admin(self.now, command)
        self._after(node)
        return out

    def deliver(self, name: str, iface: str, packet: bytes) -> None:
        """Hand ``packet`` to node ``name`` as received on ``iface`` now."""
        node = self.nodes[name]
        node.engine.receive(self.now, iface, packet)
        self._after(node)

    def _fire(self, item: tuple[SimNode, int]) -> None:
        node, token = item
        if token != node.token:
            return
        if self.now == node.spin_time:
            node.spin_count += 1
            if node.spin_count > MAX_TIMERS_AT_ONE_INSTANT:
                raise SimulationError(f"node {node.engine.name!r} asked for its timer more than "
                                      f"{MAX_TIMERS_AT_ONE_INSTANT} times at t={self.now}")
        else:
            node.spin_time = self.now
            node.spin_count = 0
        node.scheduled = None
        node.engine.handle_timer(self.now)
        self._after(node)

    def _after(self, node: SimNode) -> None:
        engine = node.engine
        for tx in engine.poll_transmit():
            channel = node.ports.get(tx.iface)
            if channel is None:
                node.unrouted += 1
                self.emit(LogEvent(self.now, engine.name, "sim",
                                   f"interface {tx.iface} is not connected, packet dropped",
                                   {"iface": tx.iface}))
            else:
                channel.send(tx.packet)
        for event in engine.poll_events():
            self.emit(event)
        deadline = engine.next_deadline()
        if deadline != node.scheduled:
            node.scheduled = deadline
            node.token += 1
            if deadline is not None:
                self.schedule(deadline, self._fire, (node, node.token))
