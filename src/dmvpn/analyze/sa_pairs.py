"""What a pasted SA table says once the lifetimes are known.

For each SA: age = configured seconds - remaining seconds; kilobytes carried
= configured kilobytes - remaining kilobytes (IOS counts per SA, so per
direction). SAs pair up as one Quick Mode made them: IOS numbers an
exchange's two SAs with consecutive conn ids, inbound first (the rule
:attr:`dmvpn.ipsec.ledger.SaRecord.pair_key` uses), and both have the same
remaining seconds. Then, with the lab's definitions
(:mod:`dmvpn.ipsec.analysis`): the newest pair carries the traffic; an older
pair that carried bytes was replaced and waits for a DELETE or its expiry
(a rekey's overlap); a pair older than a minute that never carried a byte
is an orphan; two pairs made within a few seconds of each other are a
collision's two results."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

from dmvpn.analyze.ipsec_sa import IpsecFlow, IpsecSa
from dmvpn.analyze.settings import Lifetime
from dmvpn.ike.profiles import CISCO_IOSXE
from dmvpn.ipsec.analysis import ORPHAN_MIN_AGE_S
from dmvpn.ipsec.sa import KILOBYTE

#: Two pairs installed this close together (seconds) came from two Quick
#: Modes run at once: the "same second or two" of a collision.
SAME_MOMENT_S = 2.0
#: IOS starts a volume rekey when this fraction of the kilobytes is used.
SOFT_VOLUME_FRACTION = CISCO_IOSXE.soft_volume_fraction
#: ... and a time rekey this many seconds before the time lifetime ends.
SOFT_SECONDS_BEFORE = CISCO_IOSXE.soft_seconds_before


@dataclass(slots=True)
class SaFigures:
    sa: IpsecSa
    age_s: int | None = None
    carried_kb: int | None = None
    current_outbound: bool = False


@dataclass(slots=True)
class Pair:
    """The two SAs one Quick Mode made, and what they tell."""

    inbound: SaFigures | None
    outbound: SaFigures | None
    age_s: int | None = None
    role: str = ""  # current | replaced | orphan | idle | unknown
    replaced_after_s: int | None = None  # how long it was the newest
    out_rate_bps: float | None = None
    in_rate_bps: float | None = None
    collision_with: int | None = None  # index of the pair made at the same moment

    @property
    def conn_ids(self) -> str:
        ids = [str(x.sa.conn_id) for x in (self.inbound, self.outbound) if x and x.sa.conn_id is not None]
        return "/".join(ids)

    def carried(self, direction: str) -> int | None:
        x = self.inbound if direction == "inbound" else self.outbound
        return x.carried_kb if x else None


@dataclass(slots=True)
class FlowAnalysis:
    """One flow with one peer: its SAs, pairs and the implied rekey rhythm."""

    flow: IpsecFlow
    lifetime: Lifetime
    pairs: list[Pair] = field(default_factory=list)
    rate_bps: float | None = None  # the measured outbound rate
    in_rate_bps: float | None = None
    volume_lasts_s: float | None = None  # the kilobyte lifetime at that rate
    implied_rekey_s: float | None = None  # soft volume limit at that rate
    observed_rekey_s: list[int] = field(default_factory=list)  # gaps between pair ages
    driver: str = ""  # "volume" | "time" | ""
    notes: list[str] = field(default_factory=list)  # where the lifetime cannot be right

    def count(self, direction: str) -> int:
        return len(self.flow.by_direction(direction))


def _figures(sa: IpsecSa, life: Lifetime, current: int | None) -> SaFigures:
    """Age and volume of ``sa``; unknown where the remaining value exceeds
    the lifetime (then the lifetime taken is not the one configured)."""
    f = SaFigures(sa, current_outbound=sa.direction == "outbound" and sa.spi == current)
    if sa.remaining_s is not None and sa.remaining_s <= life.seconds:
        f.age_s = life.seconds - sa.remaining_s
    if sa.remaining_kb is not None and life.kilobytes is not None and sa.remaining_kb <= life.kilobytes:
        f.carried_kb = life.kilobytes - sa.remaining_kb
    return f


def _lifetime_notes(a: FlowAnalysis) -> None:
    life = a.lifetime
    secs = [s.remaining_s for s in a.flow.sas if s.remaining_s is not None and s.remaining_s > life.seconds]
    kbs = [s.remaining_kb for s in a.flow.sas if s.remaining_kb is not None
           and life.kilobytes is not None and s.remaining_kb > life.kilobytes]
    if secs:
        a.notes.append(f"{max(secs)} s remain on an SA, more than the {life.seconds} s lifetime taken: the "
                       "configured lifetime is longer, so ages are unknown (paste the config or "
                       "show crypto ipsec profile).")
    if kbs:
        a.notes.append(f"{max(kbs)} KB remain on an SA, more than the {life.kilobytes} KB lifetime taken: "
                       "volumes are unknown (paste the config or show crypto ipsec profile).")


def _pair_up(ins: list[SaFigures], outs: list[SaFigures]) -> list[Pair]:
    """Inbound conn id N with outbound N+1; else the same remaining seconds;
    else by position."""
    pairs: list[Pair] = []
    left = list(outs)
    for i in ins:
        match = next((o for o in left if i.sa.conn_id is not None and o.sa.conn_id == i.sa.conn_id + 1), None)
        if match is None:
            match = next((o for o in left if o.sa.remaining_s is not None
                          and o.sa.remaining_s == i.sa.remaining_s), None)
        if match is None and left and len(left) == len(ins) - len(pairs):
            match = left[0]
        if match is not None:
            left.remove(match)
        pairs.append(Pair(i, match))
    pairs += [Pair(None, o) for o in left]
    return pairs


def _rate(kb: int | None, seconds: int | None) -> float | None:
    if kb is None or not seconds:
        return None
    return kb * KILOBYTE * 8 / seconds


def analyse_flow(flow: IpsecFlow, life: Lifetime) -> FlowAnalysis:
    """The figures, pairs and roles of ``flow``'s ESP SAs under ``life``."""
    a = FlowAnalysis(flow, life)
    cur = flow.current_outbound_spi
    ins = [_figures(s, life, cur) for s in flow.by_direction("inbound")]
    outs = [_figures(s, life, cur) for s in flow.by_direction("outbound")]
    a.pairs = _pair_up(ins, outs)
    _lifetime_notes(a)
    for p in a.pairs:
        ages = [x.age_s for x in (p.inbound, p.outbound) if x and x.age_s is not None]
        p.age_s = min(ages) if ages else None
    # newest first; pairs without an age last
    a.pairs.sort(key=lambda p: (p.age_s is None, p.age_s if p.age_s is not None else 0))
    _roles(a)
    _rhythm(a)
    return a


def _is_current(p: Pair) -> bool:
    return p.outbound is not None and p.outbound.current_outbound


def _roles(a: FlowAnalysis) -> None:
    dated = [p for p in a.pairs if p.age_s is not None]
    for p in a.pairs:
        if p.age_s is None:
            p.role = "current" if _is_current(p) else "unknown"
            continue
        younger = [q for q in dated if q.age_s is not None and q.age_s < p.age_s - SAME_MOMENT_S]
        twin = next((j for j, q in enumerate(a.pairs) if q is not p and q.age_s is not None
                     and abs(q.age_s - p.age_s) <= SAME_MOMENT_S), None)
        p.collision_with = twin
        out_kb, in_kb = p.carried("outbound"), p.carried("inbound")
        idle = out_kb == 0 and in_kb in (0, None)
        if _is_current(p) or (not younger and not idle and not any(_is_current(q) for q in a.pairs)):
            p.role = "current"
        elif idle and p.age_s >= ORPHAN_MIN_AGE_S:
            p.role = "orphan"
        elif idle:
            p.role = "idle"
        elif out_kb is None:
            p.role = "unknown"
        else:
            p.role = "replaced"
        if younger and p.role == "replaced":
            newest_younger = max(q.age_s for q in younger if q.age_s is not None)
            p.replaced_after_s = p.age_s - newest_younger
        active = p.replaced_after_s if p.role == "replaced" else p.age_s
        p.out_rate_bps, p.in_rate_bps = _rate(out_kb, active), _rate(in_kb, active)


def _rhythm(a: FlowAnalysis) -> None:
    """The measured rate, how long the volume lasts at it, and the rekey
    interval that implies, against the gaps between the pairs' ages."""
    busy = [p for p in a.pairs if p.role in ("current", "replaced") and p.age_s]
    out_kb = sum(p.carried("outbound") or 0 for p in busy)
    in_kb = sum(p.carried("inbound") or 0 for p in busy)
    seconds = sum((p.replaced_after_s if p.role == "replaced" else p.age_s) or 0 for p in busy)
    a.rate_bps, a.in_rate_bps = _rate(out_kb, seconds), _rate(in_kb, seconds)
    ages = sorted(p.age_s for p in busy if p.age_s is not None)
    a.observed_rekey_s = [b - x for x, b in pairwise(ages)]
    top = max((r for r in (a.rate_bps, a.in_rate_bps) if r), default=None)
    if top and a.lifetime.kilobytes is not None:
        a.volume_lasts_s = a.lifetime.kilobytes * KILOBYTE * 8 / top
        a.implied_rekey_s = a.volume_lasts_s * SOFT_VOLUME_FRACTION
        time_rekey = a.lifetime.seconds - SOFT_SECONDS_BEFORE
        a.driver = "volume" if a.implied_rekey_s < time_rekey else "time"
    elif busy:
        a.driver = "time"
