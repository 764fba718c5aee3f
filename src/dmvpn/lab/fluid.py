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

The flow talks to its routers only through :class:`~dmvpn.node.bulk.BulkPort`:
the router's own path to the destination, its SAs by selector or SPI, and
the credits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from dmvpn.ipsec.sa import SecurityAssociation
from dmvpn.node.bulk import BulkPort


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

    def __init__(self, src_router: BulkPort, dst_router: BulkPort, dst_overlay_ip: str,
                 rate_bps: float, packet_bytes: int, start: float, stop: float) -> None:
        if rate_bps <= 0 or packet_bytes <= 0 or stop <= start:
            raise ValueError("FluidFlow: rate_bps and packet_bytes must be > 0 and stop after start")
        self.src = src_router
        self.dst = dst_router
        self.start, self.stop = start, stop
        self.packet_bytes = packet_bytes
        self.path = src_router.tunnel_path(dst_overlay_ip)
        self.peer, self.local = self.path.peer, self.path.local
        self.policy = self.path.policy  # None: the tunnel is not protected, no SA to ask for
        overhead = self.path.gre_bytes
        #: Protected payload bytes per second (ESP counts the GRE packet).
        self.byte_rate = rate_bps / 8.0 * (packet_bytes + overhead) / packet_bytes
        self.packet_rate = rate_bps / 8.0 / packet_bytes
        self.history: list[_Segment] = [_Segment(start, src_router.outbound_sa(self.path))]
        # -inf: each router is woken at ``start`` (the sender then asks IKE for an SA)
        self.credited_until = {id(src_router): -math.inf, id(dst_router): -math.inf}
        self.stats = FluidStats()
        if self.history[0].sa is not None:
            self.stats.spis.append(self.history[0].sa.spi)
        src_router.add_fluid(self)
        dst_router.add_fluid(self)

    def replace_router(self, old: BulkPort, new: BulkPort, now: float) -> None:
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
    def sync(self, router: BulkPort, now: float) -> None:
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
                if sa is None or not router.credit_sent(seg_end, sa, self.peer, nbytes, npkts):
                    self.stats.dropped_no_sa_bytes += nbytes
                else:
                    self.stats.sent_bytes += nbytes
            else:
                inbound = router.inbound_sa(sa.spi) if sa is not None else None
                if sa is None:
                    continue
                if inbound is None:
                    self.stats.lost_bytes += nbytes
                else:
                    self.stats.received_bytes += nbytes
                    router.credit_received(seg_end, inbound, self.local, nbytes, npkts)
        self.credited_until[key] = max(last, now)
        self._prune_history()
        if router is self.src and self.start <= now < self.stop and self.history[-1].sa is None and self.policy:
            router.request_sa(now, self.path)

    def after_interaction(self, router: BulkPort, now: float) -> None:
        """The sender's SA choice may have changed during an interaction."""
        if router is self.src:
            self._note_sender_choice(now)

    def next_event(self, router: BulkPort) -> float | None:
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
            target = sa if router is self.src else router.inbound_sa(sa.spi)
            if target is not None:
                crossing = router.next_volume_crossing(last, target, self.byte_rate)
                if crossing is not None:
                    t = min(t, max(crossing, last))
        return t

    # -------------------------------------------------------------- internals
    def _note_sender_choice(self, now: float) -> None:
        current = self.src.outbound_sa(self.path)
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

