"""Bulk traffic as a fluid (DESIGN.md "Time, lifetimes and rekey").

A :class:`FluidFlow` of R bit/s from one router to another's overlay
address is not packetised: the bytes it carries between two moments are
credited at once to the sender's outbound SA and to the receiver's inbound
SA with the same SPI, so both ends count the same bytes, as real ESP would.
The moments are every interaction either router has (each syncs the flow
first) plus the exact instants an SA crosses its next volume limit, which
the SAD computes (:meth:`SecurityAssociationDatabase.next_volume_crossing`)
and the routers wake up for; nothing is stepped per packet.

The sender's choice of SA is recorded as a history of segments (time, SA)
whenever it changes, so the receiver credits the SA that really carried each
interval even when it syncs later. Bytes sent with no SA, or for an SPI the
receiver no longer has, are counted as dropped / lost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import TYPE_CHECKING, Any

from dmvpn.ipsec.sa import SecurityAssociation, Selector
from dmvpn.node.policies import GRE_PROTOCOL

if TYPE_CHECKING:
    from dmvpn.node.router import Router

GRE_HEADER = 4
GRE_KEY = 4


@dataclass(slots=True)
class _Segment:
    start: float
    sa: SecurityAssociation | None


@dataclass(slots=True)
class FluidStats:
    """What the flow carried: bytes of protected payload (IP + GRE)."""

    offered_bytes: int = 0
    sent_bytes: int = 0
    dropped_no_sa_bytes: int = 0
    received_bytes: int = 0
    lost_bytes: int = 0
    spis: list[int] = field(default_factory=list)


class FluidFlow:
    """``rate_bps`` of overlay IP traffic in ``packet_bytes`` packets from
    ``src_router`` to ``dst_overlay_ip`` (owned by ``dst_router``) over the
    tunnel, between virtual times ``start`` and ``stop``."""

    def __init__(self, sim: Any, src_router: Router, dst_router: Router, dst_overlay_ip: str,
                 rate_bps: float, packet_bytes: int, start: float, stop: float) -> None:
        if rate_bps <= 0 or packet_bytes <= 0 or stop <= start:
            raise ValueError("FluidFlow: rate_bps and packet_bytes must be > 0 and stop after start")
        self.sim = sim
        self.src = src_router
        self.dst = dst_router
        self.start, self.stop = start, stop
        self.packet_bytes = packet_bytes
        tunnel_name, tunnel = _tunnel_for(src_router, dst_overlay_ip)
        nbma = tunnel.resolve(str(IPv4Address(dst_overlay_ip)))
        if nbma is None:
            raise ValueError(f"FluidFlow: {src_router.name} has no NBMA mapping for {dst_overlay_ip}")
        self.peer = str(nbma)
        self.local = str(tunnel.source)
        self.policy = src_router.policy_by_interface.get(tunnel_name)
        self.selector = Selector.hosts(self.local, self.peer, GRE_PROTOCOL)
        overhead = GRE_HEADER + (GRE_KEY if tunnel.key is not None else 0)
        #: Protected payload bytes per second (ESP counts the GRE packet).
        self.byte_rate = rate_bps / 8.0 * (packet_bytes + overhead) / packet_bytes
        self.packet_rate = rate_bps / 8.0 / packet_bytes
        self.history: list[_Segment] = [_Segment(start, src_router.sad.outbound_for(self.peer, self.selector))]
        # -inf: each router is woken at ``start`` (the sender then asks IKE for an SA)
        self.credited_until = {id(src_router): -math.inf, id(dst_router): -math.inf}
        self.stats = FluidStats()
        if self.history[0].sa is not None:
            self.stats.spis.append(self.history[0].sa.spi)
        src_router.add_fluid(self)
        dst_router.add_fluid(self)

    def replace_router(self, old: Router, new: Router, now: float) -> None:
        """A node restart: ``new`` takes ``old``'s end of the flow from ``now``
        (with empty SA tables, so the sender drops until IKE is back)."""
        self.sync(old, now)
        key = id(old)
        if key not in self.credited_until:
            raise ValueError(f"FluidFlow: {old.name} is not an end of this flow")
        del self.credited_until[key]
        if old is self.src:
            self.src = new
            self.history.append(_Segment(now, None))
        else:
            self.dst = new
        self.credited_until[id(new)] = now
        new.add_fluid(self)

    # -------------------------------------------------------------- volume maths
    def _bytes(self, t: float) -> int:
        """Cumulative protected bytes offered from ``start`` to ``t``."""
        t = min(max(t, self.start), self.stop)
        return math.ceil(self.byte_rate * (t - self.start) - 1e-9)

    def _packets(self, t: float) -> int:
        t = min(max(t, self.start), self.stop)
        return math.ceil(self.packet_rate * (t - self.start) - 1e-9)

    # -------------------------------------------------------------- called by routers
    def sync(self, router: Router, now: float) -> None:
        """Credit everything up to ``now`` for ``router``'s side; the sender
        also records a change of outbound SA made by its last interaction."""
        key = id(router)
        if key not in self.credited_until:
            return
        if router is self.src:
            self._note_sender_choice(now)
        last = self.credited_until[key]
        for seg_start, seg_end, sa in self._pieces(last, now) if now > last else ():
            nbytes = self._bytes(seg_end) - self._bytes(seg_start)
            npkts = self._packets(seg_end) - self._packets(seg_start)
            if nbytes <= 0:
                continue
            if router is self.src:
                self.stats.offered_bytes += nbytes
                if sa is None or sa.sad is None:
                    self.stats.dropped_no_sa_bytes += nbytes
                else:
                    self.stats.sent_bytes += nbytes
                    router.sad.credit(seg_end, sa, nbytes, npkts)
                    router.last_out[self.peer] = seg_end
            else:
                inbound = router.sad.lookup_inbound(sa.spi) if sa is not None else None
                if sa is None:
                    continue
                if inbound is None:
                    self.stats.lost_bytes += nbytes
                else:
                    self.stats.received_bytes += nbytes
                    router.sad.credit(seg_end, inbound, nbytes, npkts)
                    router.last_in[self.local] = seg_end
        self.credited_until[key] = max(last, now)
        self._prune_history()
        if router is self.src and self.start <= now < self.stop and self.history[-1].sa is None and self.policy:
            router.ike.acquire(now, self.policy, self.peer, self.local, self.selector)

    def after_interaction(self, router: Router, now: float) -> None:
        """The sender's SA choice may have changed during an interaction."""
        if router is self.src:
            self._note_sender_choice(now)

    def next_event(self, router: Router) -> float | None:
        """When ``router`` must sync next: flow start/stop or its SA's next
        volume crossing at the flow's rate."""
        key = id(router)
        last = self.credited_until.get(key)
        if last is None or last >= self.stop:
            return None
        if last < self.start:
            return self.start
        sa = self.history[-1].sa
        t = self.stop
        if sa is not None:
            target = sa if router is self.src else router.sad.lookup_inbound(sa.spi)
            if target is not None:
                crossing = router.sad.next_volume_crossing(last, target, self.byte_rate)
                if crossing is not None:
                    t = min(t, max(crossing, last))
        return t

    # -------------------------------------------------------------- internals
    def _note_sender_choice(self, now: float) -> None:
        current = self.src.sad.outbound_for(self.peer, self.selector)
        if current is not self.history[-1].sa:
            at = max(now, self.start)
            if self.history[-1].start >= at:
                self.history[-1].sa = current
            else:
                self.history.append(_Segment(at, current))
            if current is not None and current.spi not in self.stats.spis:
                self.stats.spis.append(current.spi)

    def _prune_history(self) -> None:
        """Forget the segments every end has credited past: only the one
        holding the earliest ``credited_until`` and those after it are still
        read, so the history stays a few segments long however long the run."""
        done = min(self.credited_until.values())
        hist = self.history
        drop = 0
        while drop + 1 < len(hist) and hist[drop + 1].start <= done:
            drop += 1
        if drop:
            del hist[:drop]

    def _pieces(self, t0: float, t1: float) -> list[tuple[float, float, SecurityAssociation | None]]:
        out = []
        hist = self.history
        for i, seg in enumerate(hist):
            end = hist[i + 1].start if i + 1 < len(hist) else math.inf
            a, b = max(t0, seg.start), min(t1, end)
            if a < b:
                out.append((a, b, seg.sa))
        return out


def _tunnel_for(router: Router, overlay_ip: str):
    addr = IPv4Address(overlay_ip)
    for name, tunnel in router.tunnels.items():
        if addr in tunnel.address.network:
            return name, tunnel
    raise ValueError(f"FluidFlow: {router.name} has no tunnel toward {overlay_ip}")
