"""What a lab run's SA ledger says: rekeys, collisions, orphans, overlap.

Definitions (they are what the seed question needs, and the lab prints them):

* An *exchange* is one Quick Mode: on each router it installed one inbound
  and one outbound SA with consecutive conn ids. The two routers' views of an
  exchange are matched by SPI (my inbound SPI is the peer's outbound SPI).
  Its *cause* is what the initiating router recorded: initial, time rekey or
  volume rekey.
* A *collision* is two exchanges for the same pair of routers that both
  routers started within ``collision_window`` seconds of each other (IKEv1
  has no rule to stop the second: both complete).
* An *orphan* pair is an exchange that no later exchange replaced (no SA
  names it in ``replaces_spi``), that is not the newest, and that carried no
  packet in either direction for at least ``orphan_min_age`` seconds before
  it went away or the run ended: nobody sends on it and nobody rekeys it
  (idle SAs are not rekeyed), so it sits there until its time lifetime runs
  out. After a collision both routers send on the pair each installed last;
  the other pair is the orphan (it may have carried a few seconds of one
  direction before the next rekey moved both routers to one pair).
"""

from __future__ import annotations

import itertools
import statistics
from bisect import bisect_right
from dataclasses import dataclass, field

from dmvpn.ipsec.ledger import SaRecord

COLLISION_WINDOW_S = 5.0
ORPHAN_MIN_AGE_S = 60.0
SETTLE_S = 60.0


@dataclass(slots=True)
class Exchange:
    """One Quick Mode as one router saw it: its inbound and outbound SA."""

    inbound: SaRecord
    outbound: SaRecord
    initiator_node: str = ""
    cause: str = ""  # initial | time rekey | volume rekey
    collision_with: Exchange | None = None
    orphan: bool = False

    @property
    def at(self) -> float:
        return min(self.inbound.installed_at, self.outbound.installed_at)

    @property
    def packets(self) -> int:
        return self.inbound.packets + self.outbound.packets


@dataclass(slots=True)
class PeerAnalysis:
    """The exchanges of one router with one peer over a run."""

    node: str
    peer: str
    exchanges: list[Exchange] = field(default_factory=list)
    max_inbound_alive: int = 0
    max_outbound_alive: int = 0
    max_pairs_alive: int = 0
    max_pairs_at: float = 0.0
    #: The most pairs alive at a moment at least ``settle`` seconds after
    #: every exchange (a replaced pair may linger that long after a rekey).
    max_pairs_outside_rekeys: int = 0
    settled: bool = False  # some moment was ``settle`` seconds past every exchange

    def rekeys(self, cause: str) -> list[Exchange]:
        return [x for x in self.exchanges if x.cause == cause]

    @property
    def collisions(self) -> int:
        return sum(1 for x in self.exchanges if x.collision_with is not None) // 2

    @property
    def orphans(self) -> list[Exchange]:
        return [x for x in self.exchanges if x.orphan]

    def rekey_intervals(self) -> list[float]:
        """Seconds between successive rekeys, counting each collision once."""
        times: list[float] = []
        seen: set[int] = set()
        for x in sorted(self.exchanges, key=lambda x: x.at):
            if id(x) in seen:
                continue
            if x.collision_with is not None:
                seen.add(id(x.collision_with))
            times.append(x.at)
        return [b - a for a, b in itertools.pairwise(times)]

    @property
    def median_rekey_interval(self) -> float | None:
        gaps = self.rekey_intervals()
        return statistics.median(gaps) if gaps else None


def analyse(records: list[SaRecord], node: str, peer: str, end: float,
            *, collision_window: float = COLLISION_WINDOW_S,
            orphan_min_age: float = ORPHAN_MIN_AGE_S,
            settle: float = SETTLE_S) -> PeerAnalysis:
    """Analyse ``node``'s SAs with ``peer`` over a run that ended at ``end``;
    ``records`` holds every router's SAs (the peer's records tell who
    initiated the exchanges this node answered)."""
    mine = [r for r in records if r.node == node and r.peer == peer]
    by_pair: dict[int, dict[str, SaRecord]] = {}
    for r in mine:
        by_pair.setdefault(r.pair_key, {})[r.direction] = r
    # the peer's SAs, by SPI, to learn the initiator's view of each exchange
    theirs = {(r.spi, r.direction): r for r in records if r.node != node}
    result = PeerAnalysis(node, peer)
    for pair in by_pair.values():
        if "inbound" not in pair or "outbound" not in pair:
            continue
        x = Exchange(pair["inbound"], pair["outbound"])
        if x.outbound.initiator:
            x.initiator_node, x.cause = node, x.outbound.reason
        else:
            # my inbound SPI is the peer's outbound SPI
            other = theirs.get((x.inbound.spi, "outbound"))
            x.initiator_node = other.node if other else peer
            x.cause = other.reason if other else x.outbound.reason
        result.exchanges.append(x)
    result.exchanges.sort(key=lambda x: x.at)

    # collisions: exchanges started by different routers within the window
    xs = result.exchanges
    for i, a in enumerate(xs):
        for b in xs[i + 1:]:
            if b.at - a.at > collision_window:
                break
            if (a.collision_with is None and b.collision_with is None
                    and a.initiator_node != b.initiator_node and a.cause != "initial"):
                a.collision_with, b.collision_with = b, a
    replaced = {r.replaces_spi for r in mine if r.replaces_spi is not None}
    for x in xs[:-1]:
        if x.inbound.spi in replaced or x.outbound.spi in replaced:
            continue
        gone = min(t for t in (x.inbound.deleted_at, x.outbound.deleted_at, end) if t is not None)
        last = max((t for t in (x.inbound.last_packet, x.outbound.last_packet) if t is not None),
                   default=x.at)
        x.orphan = gone - last >= orphan_min_age

    # the most SAs alive at once, per direction and in pairs
    starts = sorted(x.at for x in xs)
    points = sorted({r.installed_at for r in mine} | {r.deleted_at for r in mine if r.deleted_at}
                    | {t + settle for t in starts if t + settle <= end})
    alive_in = _AliveCount([r for r in mine if r.direction == "inbound"])
    alive_out = _AliveCount([r for r in mine if r.direction == "outbound"])
    for t in points:
        n_in, n_out = alive_in.at(t), alive_out.at(t)
        result.max_inbound_alive = max(result.max_inbound_alive, n_in)
        result.max_outbound_alive = max(result.max_outbound_alive, n_out)
        if min(n_in, n_out) > result.max_pairs_alive:
            result.max_pairs_alive, result.max_pairs_at = min(n_in, n_out), t
        i = bisect_right(starts, t)
        if i and t - starts[i - 1] >= settle:
            result.settled = True
            result.max_pairs_outside_rekeys = max(result.max_pairs_outside_rekeys, min(n_in, n_out))
    return result


class _AliveCount:
    """How many of ``records`` are alive at a moment, in O(log n): an SA is
    deleted no earlier than it is installed, so the SAs alive at ``t`` are
    those installed by ``t`` less those deleted by ``t``
    (:meth:`SaRecord.alive_at`)."""

    def __init__(self, records: list[SaRecord]) -> None:
        self.installs = sorted(r.installed_at for r in records)
        self.deletes = sorted(r.deleted_at for r in records if r.deleted_at is not None)

    def at(self, t: float) -> int:
        return bisect_right(self.installs, t) - bisect_right(self.deletes, t)
