"""Simulated links: impairments per direction, point-to-point links and
shared segments.

A :class:`Channel` is one direction of travel. A packet handed to it is, in
this order: dropped if the channel is down (``dropped_down``); dropped if
larger than the MTU (``dropped_mtu``, plus a ``sim`` LogEvent; no
fragmentation is simulated); dropped if the channel's ``drop_if`` filter
(None by default; a lab fault such as lost DELETEs) says so
(``dropped_filter``); dropped with probability ``loss``
(``dropped_loss``); serialized at ``bandwidth`` bit/s behind the packets
already queued (unbounded FIFO; IPv4 bytes only, no L2 overhead); duplicated
with probability ``duplicate``; then each copy arrives after ``delay``, plus
uniform [0, ``jitter``] seconds, plus ``reorder_delay`` with probability
``reorder`` (held back so that later packets overtake it). A packet that
arrives while the channel is down is dropped too. ``reordered`` counts
deliveries of a packet sent before one already delivered, whatever caused
it (jitter or the reorder draw).

A :class:`Link` joins two (node, iface) ports with one channel each way.
A :class:`Segment` is a switched LAN: each attachment owns an IPv4 address
and an uplink and a downlink channel; the segment delivers a packet to the
attachment owning its destination address (``no_route`` otherwise). Its
one-way delay is therefore uplink delay + downlink delay.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from heapq import heappush
from typing import TYPE_CHECKING, Any

from dmvpn.runtime.sim.pcap import PcapWriter, mac_for
from dmvpn.sansio import LogEvent
from dmvpn.wire.ipv4 import format_ipv4_address, parse_ipv4_address

if TYPE_CHECKING:
    from dmvpn.runtime.sim.simulator import Simulator


@dataclass(frozen=True, slots=True)
class LinkParams:
    """Impairments of one direction. Times in seconds, bandwidth in bit/s
    (None: infinite), probabilities in [0, 1]."""

    delay: float = 0.001
    jitter: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_delay: float = 0.005
    bandwidth: float | None = None
    mtu: int = 1500

    def __post_init__(self) -> None:
        for name in ("delay", "jitter", "reorder_delay"):
            if getattr(self, name) < 0:
                raise ValueError(f"LinkParams.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("loss", "duplicate", "reorder"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"LinkParams.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.bandwidth is not None and self.bandwidth <= 0:
            raise ValueError(f"LinkParams.bandwidth must be > 0 bit/s, got {self.bandwidth}")
        if self.mtu < 68:
            raise ValueError(f"LinkParams.mtu must be >= 68 (RFC 791), got {self.mtu}")


@dataclass(slots=True)
class ChannelStats:
    """Counters of one channel (one direction)."""

    sent: int = 0
    delivered: int = 0
    bytes_delivered: int = 0
    dropped_loss: int = 0
    dropped_mtu: int = 0
    dropped_down: int = 0
    dropped_filter: int = 0
    duplicated: int = 0
    reordered: int = 0


Sink = Callable[[bytes, Any], None]


class Channel:
    """One direction of a link or of a segment attachment."""

    def __init__(self, sim: Simulator, name: str, params: LinkParams, sink: Sink) -> None:
        self.sim = sim
        self.name = name
        self.params = params
        self.sink = sink
        self.up = True
        self.drop_if: Callable[[bytes], bool] | None = None
        self.stats = ChannelStats()
        self.rng = random.Random(sim.derive_seed(f"channel:{name}"))
        self._busy_until = 0.0
        self._tx_seq = 0
        self._max_delivered = -1
        # The simulator's heap and tie-break counter, used directly on this
        # hot path (arrival >= now always holds, so no clamping is needed).
        self._heap = sim._heap
        self._counter = sim._counter

    def send(self, packet: bytes, meta: Any = None) -> None:
        """Accept ``packet`` at the simulator's current time."""
        p = self.params
        st = self.stats
        st.sent += 1
        if not self.up:
            st.dropped_down += 1
            return
        if len(packet) > p.mtu:
            st.dropped_mtu += 1
            self.sim.emit(LogEvent(self.sim.now, self.name, "sim",
                                   f"packet of {len(packet)} bytes exceeds MTU {p.mtu}, dropped",
                                   {"size": len(packet), "mtu": p.mtu}))
            return
        if self.drop_if is not None and self.drop_if(packet):
            st.dropped_filter += 1
            return
        rng = self.rng
        if p.loss and rng.random() < p.loss:
            st.dropped_loss += 1
            return
        done = self.sim.now
        if p.bandwidth is not None:
            done = max(done, self._busy_until) + len(packet) * 8 / p.bandwidth
            self._busy_until = done
        copies = 1
        if p.duplicate and rng.random() < p.duplicate:
            copies = 2
            st.duplicated += 1
        seq = self._tx_seq
        self._tx_seq = seq + 1
        for _ in range(copies):
            arrival = done + p.delay
            if p.jitter:
                arrival += rng.uniform(0.0, p.jitter)
            if p.reorder and rng.random() < p.reorder:
                arrival += p.reorder_delay
            heappush(self._heap, (arrival, next(self._counter), self._arrive, (packet, seq, meta)))

    def _arrive(self, item: tuple[bytes, int, Any]) -> None:
        packet, seq, meta = item
        st = self.stats
        if not self.up:
            st.dropped_down += 1
            return
        if seq < self._max_delivered:
            st.reordered += 1
        else:
            self._max_delivered = seq
        st.delivered += 1
        st.bytes_delivered += len(packet)
        self.sink(packet, meta)


@dataclass(slots=True)
class Port:
    """A node's interface as seen from a link or segment."""

    node: str
    iface: str
    mac: bytes = b""

    def __post_init__(self) -> None:
        self.mac = mac_for(self.node, self.iface)

    @property
    def label(self) -> str:
        return f"{self.node}:{self.iface}"


class Link:
    """A point-to-point link between two ports, one channel each way."""

    def __init__(self, sim: Simulator, a: Port, b: Port,
                 params_ab: LinkParams, params_ba: LinkParams) -> None:
        self.sim = sim
        self.a = a
        self.b = b
        self.name = f"{a.label}<->{b.label}"
        self.taps: list[PcapWriter] = []
        self.forward = Channel(sim, f"{a.label}->{b.label}", params_ab,
                               lambda pkt, _m: self._deliver(a, b, pkt))
        self.reverse = Channel(sim, f"{b.label}->{a.label}", params_ba,
                               lambda pkt, _m: self._deliver(b, a, pkt))

    def _deliver(self, src: Port, dst: Port, packet: bytes) -> None:
        for tap in self.taps:
            tap.record(self.sim.now, src.mac, dst.mac, packet)
        self.sim.deliver(dst.node, dst.iface, packet)

    def set_up(self, up: bool) -> None:
        """Bring both directions up or down (packets in flight are lost)."""
        self.forward.up = up
        self.reverse.up = up


class Attachment:
    """A (node, iface) on a segment, owning one IPv4 address."""

    def __init__(self, segment: Segment, port: Port, address: str,
                 uplink: LinkParams, downlink: LinkParams) -> None:
        self.segment = segment
        self.port = port
        self.address = address
        self.uplink = Channel(segment.sim, f"{port.label}->{segment.name}", uplink,
                              lambda pkt, _m: segment._forward(self, pkt))
        self.downlink = Channel(segment.sim, f"{segment.name}->{port.label}", downlink,
                                lambda pkt, src: segment._deliver(src, self, pkt))

    def set_up(self, up: bool) -> None:
        """Bring this attachment's uplink and downlink up or down."""
        self.uplink.up = up
        self.downlink.up = up


class Segment:
    """A switched L2/L3 LAN: delivery by destination IPv4 address."""

    def __init__(self, sim: Simulator, name: str, params: LinkParams) -> None:
        self.sim = sim
        self.name = name
        self.params = params
        self.taps: list[PcapWriter] = []
        self.no_route = 0
        self.attachments: dict[str, Attachment] = {}
        self._by_address: dict[bytes, Attachment] = {}

    def attach(self, node: str, iface: str, address: str, params: LinkParams | None = None, *,
               uplink: LinkParams | None = None, downlink: LinkParams | None = None) -> Attachment:
        """Connect ``node``'s ``iface`` owning ``address``. ``params`` (default:
        the segment's) applies to both directions unless ``uplink`` /
        ``downlink`` override it."""
        raw = parse_ipv4_address(address)
        if iface in self.sim._node(node).ports:
            raise ValueError(f"interface {node}:{iface} is already connected")
        if raw in self._by_address:
            raise ValueError(f"address {address} is already attached to segment {self.name}")
        base = params or self.params
        port = Port(node, iface)
        att = Attachment(self, port, format_ipv4_address(raw), uplink or base, downlink or base)
        self.sim._bind(node, iface, att.uplink)
        self._by_address[raw] = att
        self.attachments[port.label] = att
        return att

    def readdress(self, node: str, iface: str, address: str) -> None:
        """``node``'s ``iface`` now owns ``address`` instead of its old one
        (a new DHCP lease): packets to the old address are no longer delivered."""
        att = self.attachments[Port(node, iface).label]
        raw = parse_ipv4_address(address)
        if raw in self._by_address:
            raise ValueError(f"address {address} is already attached to segment {self.name}")
        del self._by_address[parse_ipv4_address(att.address)]
        att.address = format_ipv4_address(raw)
        self._by_address[raw] = att

    def _forward(self, src: Attachment, packet: bytes) -> None:
        dst = self._by_address.get(packet[16:20]) if len(packet) >= 20 else None
        if dst is None:
            self.no_route += 1
            return
        dst.downlink.send(packet, src)

    def _deliver(self, src: Attachment, dst: Attachment, packet: bytes) -> None:
        for tap in self.taps:
            tap.record(self.sim.now, src.port.mac, dst.port.mac, packet)
        self.sim.deliver(dst.port.node, dst.port.iface, packet)
