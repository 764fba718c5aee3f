"""Log events as IOS prints debug and syslog lines.

Engines emit :class:`~dmvpn.sansio.LogEvent` records whose ``message`` is
the text IOS prints after the facility (``(79859):processing HASH payload.
message ID = 3247684825``) and whose ``fields`` carry ``facility``
(``ISAKMP``, ``ISAKMP-PAK``, ``ICMP`` or a syslog tag such as
``%CRYPTO-4-IKMP_BAD_MESSAGE``; the event's category in capitals when it
has none). :func:`render_line` puts the IOS timestamp in front, mapping
virtual seconds to a wall-clock date with an :class:`IosClock`:
``Sep  7 23:11:13: ISAKMP: (79859):...``. The lab, the router's debug log
and the real daemon's log printer all use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from dmvpn.sansio import LogEvent

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True, slots=True)
class IosClock:
    """Maps virtual time (seconds) to the router's clock; ``base`` is the
    wall-clock moment of virtual time 0 (the seed's debugs are from Sep 7)."""

    base: datetime = datetime(2021, 9, 7, 23, 10, 0)

    def timestamp(self, t: float) -> str:
        """IOS ``service timestamps debug datetime`` form: ``Sep  7 23:11:13``."""
        when = self.base + timedelta(seconds=t)
        return f"{_MONTHS[when.month - 1]} {when.day:>2} {when.hour:02}:{when.minute:02}:{when.second:02}"


#: The seed's clock: what the lab prints when nothing else is given.
SEED_CLOCK = IosClock()


def render_line(event: LogEvent, clock: IosClock = SEED_CLOCK) -> str:
    """One event as IOS prints it."""
    facility = event.fields.get("facility", event.category.upper())
    return f"{clock.timestamp(event.time)}: {facility}: {event.message}"


def render(events: Iterable[LogEvent], clock: IosClock = SEED_CLOCK, node: str | None = None,
           category: str = "isakmp") -> str:
    """The ``category`` events (of ``node`` if given), one line each."""
    return "\n".join(
        render_line(e, clock) for e in events if e.category == category and (node is None or e.node == node)
    )
