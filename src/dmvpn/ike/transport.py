"""The IKE transport every key manager shares, whatever the IKE version.

What RFC 2408 section 5 (IKEv1) and RFC 7296 section 2.1-2.2 (IKEv2) leave
to the transport under the exchanges: an outbox of UDP datagrams and a queue
of log events (sans-I/O: the router drains both), a heap of timers, the
retransmission of an exchange's last message with IOS's timers (initial
delay, backoff, ceiling, retry limit), message-ID bookkeeping, and the
detection of a duplicate of a message already handled (which is answered by
resending the reply, never processed twice).

Nothing here knows ISAKMP: an IKEv2 engine composes an :class:`IkeTransport`
as :class:`~dmvpn.ike.engine.Ikev1Engine` does, and keeps its exchanges on top.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from itertools import count
from typing import Any

from dmvpn.ike.manager import Datagram
from dmvpn.sansio import LogEvent, RandomSource

TimerCallback = Callable[[float], None]
#: A scheduled timer: [due time, tie-break, callback or None once cancelled].
TimerHandle = list[Any]
#: Cancelled timers are dropped from the heap once they are this many and
#: at least half of it (amortised O(1); memory freed, not held until due).
_COMPACT_AT = 64


@dataclass(frozen=True, slots=True)
class RetransmitTimers:
    """IOS's retransmission schedule: ``initial`` seconds, times ``backoff``
    after each retry, at most ``max_interval``; ``limit`` retries, then the
    exchange is given up (RFC 2408 section 5 / RFC 7296 section 2.1 leave
    the numbers to the implementation)."""

    initial: float
    backoff: float
    max_interval: float
    limit: int

    def delay(self, attempts: int) -> float:
        """Seconds until the next send after ``attempts`` retries."""
        return float(min(self.initial * self.backoff ** attempts, self.max_interval))

    def give_up_after(self) -> float:
        """Seconds from the first send until the last retry times out."""
        return sum(self.delay(i) for i in range(self.limit + 1))


@dataclass(slots=True)
class Retransmit:
    """The last message an exchange sent and when to send it again."""

    packet: bytes
    attempts: int = 0
    next_at: float | None = None


@dataclass(slots=True)
class MessageIds:
    """The message IDs used on one IKE SA: never reused (RFC 2408 section
    3.1 / RFC 2409 section 5.5 for IKEv1's random IDs)."""

    used: set[int] = field(default_factory=set)

    def allocate(self, random: RandomSource, busy: Container[int] = ()) -> int:
        """A fresh, non-zero random 32-bit ID, not used and not in ``busy``."""
        while True:
            mid = int.from_bytes(random.token_bytes(4), "big")
            if mid and mid not in self.used and mid not in busy:
                self.used.add(mid)
                return mid

    def claim(self, mid: int) -> bool:
        """Record a peer's ID; False when it was used before (a replay or a duplicate)."""
        if mid in self.used:
            return False
        self.used.add(mid)
        return True

    def __contains__(self, mid: object) -> bool:
        return mid in self.used


@dataclass(slots=True)
class ReceivedMessages:
    """The messages one exchange has processed, to tell a retransmission by
    the peer (answered by resending the exchange's last message) from a new
    message."""

    seen: set[bytes] = field(default_factory=set)

    def add(self, data: bytes) -> None:
        self.seen.add(data)

    def __contains__(self, data: object) -> bool:
        return data in self.seen


class IkeTransport:
    """Outbox, log queue, timers and retransmission for one key manager."""

    def __init__(self, name: str, timers: RetransmitTimers, category: str = "isakmp") -> None:
        self.name = name
        self.timers = timers
        self.category = category
        #: ``debug crypto isakmp``: when False, :meth:`debug_line` drops its line.
        self.debug = False
        self._heap: list[TimerHandle] = []
        self._cancelled = 0
        self._tie = count()
        self._out: list[Datagram] = []
        self._events: list[LogEvent] = []

    # ------------------------------------------------------------ timers
    def schedule(self, t: float, fn: TimerCallback) -> TimerHandle:
        """Call ``fn(now)`` once ``now >= t``; equal times run in schedule order.
        The handle is for :meth:`cancel`."""
        entry: TimerHandle = [t, next(self._tie), fn]
        heapq.heappush(self._heap, entry)
        return entry

    def cancel(self, handle: TimerHandle) -> None:
        """Forget a timer that has not fired: its callback (and whatever it
        holds, an SA, a message) is released now, so state a hostile peer
        makes us create and then abandon does not wait for its deadline."""
        if handle[2] is None:
            return
        handle[2] = None
        self._cancelled += 1
        heap = self._heap
        if self._cancelled >= _COMPACT_AT and 2 * self._cancelled >= len(heap):
            heap[:] = [e for e in heap if e[2] is not None]
            heapq.heapify(heap)
            self._cancelled = 0

    def run_due(self, now: float) -> None:
        """Run every timer due at ``now`` (including ones they schedule for ``now``)."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            fn = heapq.heappop(heap)[2]
            if fn is None:
                self._cancelled -= 1
            else:
                fn(now)

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap and heap[0][2] is None:  # a cancelled timer wakes nobody
            heapq.heappop(heap)
            self._cancelled -= 1
        return heap[0][0] if heap else None

    # ------------------------------------------------------------ retransmission
    def arm_retransmit(self, now: float, rt: Retransmit, resend: TimerCallback, give_up: TimerCallback) -> None:
        """Resend with :attr:`timers` until answered (:meth:`cancel_retransmit`)
        or the retries are spent, then call ``give_up``."""
        rt.next_at = due = now + self.timers.delay(rt.attempts)

        def fire(t: float) -> None:
            if rt.next_at != due:
                return
            if rt.attempts >= self.timers.limit:
                rt.next_at = None
                give_up(t)
                return
            rt.attempts += 1
            resend(t)
            self.arm_retransmit(t, rt, resend, give_up)

        self.schedule(due, fire)

    @staticmethod
    def cancel_retransmit(rt: Retransmit | None) -> None:
        if rt is not None:
            rt.next_at = None

    # ------------------------------------------------------------ output
    def send(self, datagram: Datagram) -> None:
        self._out.append(datagram)

    def debug_line(self, now: float, text: str, fields: dict[str, Any]) -> None:
        """A debug line (kept only while :attr:`debug` is on)."""
        if self.debug:
            self._events.append(LogEvent(now, self.name, self.category, text, fields))

    def event(self, now: float, text: str, fields: dict[str, Any], category: str | None = None) -> None:
        """A log event that is always kept (syslog, SA lifecycle)."""
        self._events.append(LogEvent(now, self.name, category or self.category, text, fields))

    def poll_datagrams(self) -> list[Datagram]:
        out, self._out = self._out, []
        return out

    def poll_events(self) -> list[LogEvent]:
        out, self._events = self._events, []
        return out
