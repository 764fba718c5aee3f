"""The Quick Modes that one or more routers' debug logs tell of, matched
across routers by message ID (both ends of a Quick Mode log the same M-ID,
RFC 2408 section 3.1): who started each, when, the interval between them
and the collisions (both ends starting a Quick Mode for the same peer
within a round trip: IKEv1 has no rule to stop the second, both complete,
see :mod:`dmvpn.ipsec.analysis`)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from itertools import pairwise

from dmvpn.analyze.debuglog import DebugLog, Node

#: Two Quick Modes started by different ends this close (seconds) collided:
#: the second began before the first's answer could arrive.
ROUND_TRIP_S = 2.0


@dataclass(slots=True)
class QuickMode:
    """One Quick Mode, as every router that logged it saw it."""

    msgid: int
    at: float | None  # on the first router's clock
    stamp: str
    initiator: str  # a side name, or the peer's address when only the responder logged it
    views: dict[str, Node] = field(default_factory=dict)
    collision_with: int | None = None  # msgid of the Quick Mode it collided with

    @property
    def installed(self) -> list[str]:
        return list(dict.fromkeys(spi for n in self.views.values() for spi in n.installed))


@dataclass(slots=True)
class Exchanges:
    quick_modes: list[QuickMode] = field(default_factory=list)
    deletes: list[tuple[str, Node]] = field(default_factory=list)  # (side, informational node)
    purges: list[tuple[str, Node]] = field(default_factory=list)  # (side, node purged)
    clock_offsets: dict[str, float] = field(default_factory=dict)  # side -> its clock minus the first side's

    def intervals(self) -> list[float]:
        """Seconds between successive Quick Modes, a collision counted once."""
        times = [q.at for q in self.quick_modes if q.at is not None and
                 (q.collision_with is None or q.collision_with > q.msgid)]
        times.sort()
        return [b - a for a, b in pairwise(times)]

    @property
    def median_interval(self) -> float | None:
        gaps = self.intervals()
        return statistics.median(gaps) if gaps else None

    def started_by(self) -> set[str]:
        return {q.initiator for q in self.quick_modes if q.initiator}


def _offsets(logs: dict[str, DebugLog]) -> dict[str, float]:
    """Each side's clock against the first side's, from the Quick Modes both
    logged (median difference of the times they print for the same M-ID)."""
    names = list(logs)
    if not names:
        return {}
    first = {n.msgid: t for n in logs[names[0]].quick_modes()
             if (t := n.started_at or n.first_time) is not None}
    out = {names[0]: 0.0}
    for name in names[1:]:
        diffs = [t - first[n.msgid] for n in logs[name].quick_modes()
                 if (t := n.started_at or n.first_time) is not None and n.msgid in first]
        out[name] = statistics.median(diffs) if diffs else 0.0
    return out


def _peer_name(log: DebugLog, addresses: dict[str, str]) -> str:
    """The side name of ``log``'s peer when we have its log, else its address."""
    for peer in log.peers:
        if peer in addresses:
            return addresses[peer]
    return log.peers[0] if log.peers else "the peer"


def match(logs: dict[str, DebugLog], addresses: dict[str, str]) -> Exchanges:
    """Every Quick Mode in ``logs`` (side name -> log), once; ``addresses``
    maps each side's local address to its name."""
    ex = Exchanges(clock_offsets=_offsets(logs))
    by_id: dict[int, QuickMode] = {}
    for side, log in logs.items():
        offset = ex.clock_offsets.get(side, 0.0)
        for n in log.nodes:
            if n.kind == "informational" and n.deleted_spis:
                ex.deletes.append((side, n))
            if n.purged_line:
                ex.purges.append((side, n))
            if n.kind != "quick mode":
                continue
            q = by_id.get(n.msgid)
            t = n.started_at if n.started_at is not None else n.first_time
            if q is None:
                q = QuickMode(n.msgid, None if t is None else t - offset, n.stamp, "")
                by_id[n.msgid] = q
                ex.quick_modes.append(q)
            q.views[side] = n
            if n.role == "initiator":
                q.initiator = side
            elif n.role == "responder" and not q.initiator:
                q.initiator = _peer_name(log, addresses)
    for q in ex.quick_modes:
        q.stamp = next((n.stamp for side, n in q.views.items() if side == q.initiator),
                       next(iter(q.views.values())).stamp)
    ex.quick_modes.sort(key=lambda q: (q.at is None, q.at or 0.0))
    _collisions(ex)
    return ex


def _collisions(ex: Exchanges) -> None:
    qs = [q for q in ex.quick_modes if q.at is not None]
    for i, a in enumerate(qs):
        for b in qs[i + 1:]:
            assert a.at is not None and b.at is not None
            if b.at - a.at > ROUND_TRIP_S:
                break
            if a.initiator != b.initiator and a.collision_with is None and b.collision_with is None:
                a.collision_with, b.collision_with = b.msgid, a.msgid
