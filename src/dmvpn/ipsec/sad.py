"""The Security Association Database (RFC 4301 section 4.4.2), sans-I/O.

Inbound SAs are found by SPI (RFC 4303 2.1: the SPI plus the destination
identify the SA; we own one address space per SAD). Outbound SAs are found by
peer and selector; when several are installed for the same flow (a rekey, an
IKEv1 collision) an :class:`OutboundPolicy` picks one: the newest installed
by default, as IOS and strongSwan do.

Lifetimes are deadlines: :meth:`next_deadline` and :meth:`handle_timer` give
the time-based soft/hard events; volume events are raised from the packet
path and from fluid credits (:meth:`credit`) the moment a byte limit is
reached. Each SA gets at most one soft and one hard event. All methods take
``now``; nothing here reads a clock.
"""

from __future__ import annotations

import heapq
import math
from enum import Enum
from itertools import count

from dmvpn.ipsec.events import HardExpired, LimitKind, SadEvent, SoftExpired
from dmvpn.ipsec.sa import (
    NO_VOLUME_LIMIT,
    SaDirection,
    SaState,
    SecurityAssociation,
    Selector,
)
from dmvpn.sansio import RandomSource


class OutboundPolicy(Enum):
    """Which of several installed outbound SAs for one flow carries traffic."""

    NEWEST = "newest installed"
    OLDEST = "oldest installed"


class IvPool:
    """Random bytes for CBC IVs, drawn from the injected source in chunks
    (one call per ``chunk`` bytes instead of one per packet)."""

    __slots__ = ("_buf", "_chunk", "_pos", "_random")

    def __init__(self, random: RandomSource, chunk: int = 65536) -> None:
        self._random = random
        self._chunk = chunk
        self._buf = b""
        self._pos = 0

    def take(self, n: int) -> bytes:
        """``n`` fresh random bytes."""
        pos = self._pos
        end = pos + n
        if end > len(self._buf):
            self._buf = self._random.token_bytes(self._chunk)
            pos, end = 0, n
        self._pos = end
        return self._buf[pos:end]


_SOFT, _HARD = 0, 1


class SecurityAssociationDatabase:
    """All SAs of one router (or of one ``tunnel protection ... shared`` set)."""

    def __init__(
        self,
        random: RandomSource,
        *,
        conn_id_base: int = 2001,
        outbound_policy: OutboundPolicy = OutboundPolicy.NEWEST,
    ) -> None:
        self.iv_pool = IvPool(random)
        self.outbound_policy = outbound_policy
        self.inbound: dict[int, SecurityAssociation] = {}
        self.outbound: dict[tuple[str, Selector | None], list[SecurityAssociation]] = {}
        #: outbound_for's answers, forgotten whenever an SA is installed,
        #: activated or deleted (the only changes that move the choice):
        #: every sent packet asks.
        self._chosen: dict[tuple[str, Selector], SecurityAssociation | None] = {}
        #: Bumped with every such change, so a watcher (the router's NHRP
        #: slot, waiting for an SA to a peer) rechecks only when it moved.
        self.generation = 0
        self.unknown_spi_drops = 0
        self._next_conn_id = conn_id_base | 1  # inbound odd, outbound even
        self._timers: list[tuple[float, int, int, SecurityAssociation]] = []
        self._tie = count()
        self._events: list[SadEvent] = []
        #: Every SA ever installed, deleted ones included, oldest first: the
        #: record the lab reads to explain why each SA existed.
        self.history: list[SecurityAssociation] = []

    # ------------------------------------------------------------------ install

    def allocate_conn_ids(self) -> tuple[int, int]:
        """A fresh (inbound, outbound) conn id pair, e.g. (19415, 19416)."""
        cid = self._next_conn_id
        self._next_conn_id += 2
        return cid, cid + 1

    def install(
        self,
        now: float,
        sa: SecurityAssociation,
        *,
        replaces: SecurityAssociation | None = None,
        active: bool = True,
        conn_id: int | None = None,
    ) -> SecurityAssociation:
        """Add ``sa`` at ``now``; ``replaces`` (same direction) becomes
        REKEYED. With ``active=False`` the SA is INSTALLING: it accepts
        inbound packets but is not chosen for sending until :meth:`activate`.
        """
        if sa.sad is not None:
            raise ValueError(f"{sa!r} is already installed")
        if sa.direction is SaDirection.INBOUND and sa.spi in self.inbound:
            raise ValueError(f"inbound SPI 0x{sa.spi:08X} is already installed")
        if conn_id is None:
            pair = self.allocate_conn_ids()
            conn_id = pair[0] if sa.direction is SaDirection.INBOUND else pair[1]
        sa.conn_id = conn_id
        sa.installed_at = now
        sa.sad = self
        self.history.append(sa)
        sa.iv_take = self.iv_pool.take
        sa.state = SaState.ACTIVE if active else SaState.INSTALLING
        self._chosen.clear()
        self.generation += 1
        if sa.direction is SaDirection.INBOUND:
            self.inbound[sa.spi] = sa
        else:
            self.outbound.setdefault((sa.peer, sa.selector), []).append(sa)
        lt = sa.lifetime
        if lt.soft_seconds is not None:
            heapq.heappush(self._timers, (now + lt.soft_seconds, next(self._tie), _SOFT, sa))
        if lt.hard_seconds is not None:
            heapq.heappush(self._timers, (now + lt.hard_seconds, next(self._tie), _HARD, sa))
        if replaces is not None and replaces.state is not SaState.DELETED:
            replaces.state = SaState.REKEYED
        if sa.bytes >= sa.volume_mark:
            self.volume_crossed(sa, now)
        return sa

    def install_pair(
        self,
        now: float,
        inbound: SecurityAssociation,
        outbound: SecurityAssociation,
        *,
        replaces: tuple[SecurityAssociation, SecurityAssociation] | None = None,
        outbound_active: bool = True,
    ) -> tuple[SecurityAssociation, SecurityAssociation]:
        """Install the two halves of one negotiation with consecutive conn ids
        (inbound odd, outbound even, as IOS numbers them)."""
        cin, cout = self.allocate_conn_ids()
        old_in, old_out = replaces if replaces else (None, None)
        self.install(now, inbound, replaces=old_in, conn_id=cin)
        self.install(now, outbound, replaces=old_out, conn_id=cout, active=outbound_active)
        return inbound, outbound

    def activate(self, sa: SecurityAssociation) -> None:
        """INSTALLING -> ACTIVE (the outbound half after Quick Mode message 3)."""
        if sa.state is SaState.INSTALLING:
            sa.state = SaState.ACTIVE
            self._chosen.clear()
            self.generation += 1

    def delete(self, sa: SecurityAssociation, now: float) -> None:
        """Remove ``sa`` (a DELETE arrived, ``clear crypto sa``, or the IKE
        engine retires a rekeyed SA). No event: the caller knows."""
        if sa.state is SaState.DELETED:
            return
        sa.state = SaState.DELETED
        self._chosen.clear()
        self.generation += 1
        sa.deleted_at = now
        sa.replay = None  # the packet path's one check for "no longer usable":
        sa.seq_limit = 0  # inbound looks at the window, outbound at the counter
        sa.release_keys()
        if sa.direction is SaDirection.INBOUND:
            if self.inbound.get(sa.spi) is sa:
                del self.inbound[sa.spi]
        else:
            key = (sa.peer, sa.selector)
            lst = self.outbound.get(key)
            if lst is not None and sa in lst:
                lst.remove(sa)
                if not lst:
                    del self.outbound[key]

    # ------------------------------------------------------------------ lookup

    def lookup_inbound(self, spi: int) -> SecurityAssociation | None:
        """The inbound SA for ``spi``, or None (counted as an unknown-SPI drop
        by :func:`dmvpn.ipsec.esp.unprotect`)."""
        return self.inbound.get(spi)

    def outbound_for(self, peer: str, selector: Selector | None = None) -> SecurityAssociation | None:
        """The outbound SA to use for ``peer`` (and ``selector`` if given):
        among ACTIVE/REKEYED/EXPIRING SAs, the one the policy picks."""
        if selector is not None:
            key = (peer, selector)
            chosen = self._chosen.get(key, self)
            if chosen is not self:
                return chosen  # type: ignore[return-value]
            candidates = self.outbound.get(key, ())
        else:
            candidates = [sa for (p, _), lst in self.outbound.items() if p == peer for sa in lst]
            candidates.sort(key=lambda sa: (sa.installed_at, sa.conn_id))
        usable = [sa for sa in candidates if sa.state is not SaState.INSTALLING]
        best = (usable[-1] if self.outbound_policy is OutboundPolicy.NEWEST else usable[0]) if usable else None
        if selector is not None:
            self._chosen[(peer, selector)] = best
        return best

    def all(self) -> list[SecurityAssociation]:
        """Every installed SA, inbound then outbound, oldest first."""
        inb = sorted(self.inbound.values(), key=lambda sa: sa.conn_id)
        out = sorted((sa for lst in self.outbound.values() for sa in lst), key=lambda sa: sa.conn_id)
        return inb + out

    def for_peer(self, peer: str) -> list[SecurityAssociation]:
        """Installed SAs with ``peer``, inbound then outbound, by conn id."""
        return [sa for sa in self.all() if sa.peer == peer]

    # ------------------------------------------------------------------ limits

    def next_deadline(self) -> float | None:
        """When the next soft or hard time limit falls due, or None."""
        timers = self._timers
        while timers:
            t, _, kind, sa = timers[0]
            if sa.state is SaState.DELETED or (kind == _SOFT and sa.soft_fired):
                heapq.heappop(timers)
                continue
            return t
        return None

    def handle_timer(self, now: float) -> list[SadEvent]:
        """Fire every time limit due at or before ``now``; return all pending
        events (volume events raised since the last call included)."""
        timers = self._timers
        while timers and timers[0][0] <= now:
            t, _, kind, sa = heapq.heappop(timers)
            if sa.state is SaState.DELETED:
                continue
            if kind == _SOFT:
                if not sa.soft_fired:
                    self._soft(sa, t, "time")
            else:
                self._hard(sa, t, "time")
        return self.poll_events()

    def poll_events(self) -> list[SadEvent]:
        """Events raised so far (oldest first); the list is emptied."""
        events, self._events = self._events, []
        return events

    def volume_crossed(self, sa: SecurityAssociation, now: float) -> None:
        """Called by :meth:`SecurityAssociation.account` when the byte count
        reaches the SA's next volume mark."""
        lt = sa.lifetime
        if not sa.soft_fired and lt.soft_bytes is not None and sa.bytes >= lt.soft_bytes:
            self._soft(sa, now, "volume")
        if lt.hard_bytes is not None and sa.bytes >= lt.hard_bytes:
            self._hard(sa, now, "volume")

    def sequence_exhausted(self, sa: SecurityAssociation, now: float) -> None:
        """The outbound counter would pass 2^32 - 1 without ESN (RFC 4303
        3.3.3): the SA must not send again, so it is hard-expired."""
        self._hard(sa, now, "sequence")

    def credit(self, now: float, sa: SecurityAssociation, nbytes: int, npackets: int) -> None:
        """Fluid accounting (the lab): ``nbytes`` in ``npackets`` packets
        crossed ``sa`` up to ``now``, without running ESP on them. Raises the
        same volume events as real packets."""
        if sa.state is SaState.DELETED:
            return
        if sa.direction is SaDirection.OUTBOUND:
            sa.pkts_encaps += npackets
            sa.seq = min(sa.seq + npackets, sa.seq_limit)
        else:
            sa.pkts_decaps += npackets
        sa.account(now, nbytes, npackets)

    def next_volume_crossing(self, now: float, sa: SecurityAssociation, rate: float) -> float | None:
        """At ``rate`` bytes/s from ``now``, when ``sa`` reaches its next
        volume limit (soft, then hard); None if never. Crediting
        ``ceil((t - now) * rate)`` bytes at the returned ``t`` reaches it."""
        if sa.state is SaState.DELETED or sa.volume_mark == NO_VOLUME_LIMIT or rate <= 0:
            return None
        missing = sa.volume_mark - sa.bytes
        if missing <= 0:
            return now
        t = now + missing / rate
        while math.ceil((t - now) * rate) < missing:  # guard float rounding
            t = math.nextafter(t, math.inf)
        return t

    # ------------------------------------------------------------------ internals

    def _soft(self, sa: SecurityAssociation, now: float, reason: LimitKind) -> None:
        sa.soft_fired = True
        if sa.state is SaState.ACTIVE:
            sa.state = SaState.EXPIRING
        hard = sa.lifetime.hard_bytes
        sa.volume_mark = hard if hard is not None else NO_VOLUME_LIMIT
        self._events.append(SoftExpired(sa, reason, now))

    def _hard(self, sa: SecurityAssociation, now: float, reason: LimitKind) -> None:
        if sa.hard_fired:
            return
        sa.hard_fired = True
        sa.volume_mark = NO_VOLUME_LIMIT
        self.delete(sa, now)
        self._events.append(HardExpired(sa, reason, now))
