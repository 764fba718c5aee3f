"""The diagnosis, in the lab's style: what is happening, why, and what to
change (the exact IOS lines). Reads a :class:`~dmvpn.analyze.report.Report`;
the wording of the cause and the fix is the lab's
(:data:`dmvpn.lab.report.VOLUME_REKEY_CAUSE`, :data:`~dmvpn.lab.report.FIX_LINE`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from dmvpn.analyze.compare import differences
from dmvpn.analyze.quick_modes import Exchanges
from dmvpn.analyze.report import Report, Side
from dmvpn.analyze.sa_pairs import SOFT_SECONDS_BEFORE, SOFT_VOLUME_FRACTION, FlowAnalysis, Pair
from dmvpn.analyze.settings import profile_name
from dmvpn.analyze.units import duration, rate
from dmvpn.ipsec.sa import KILOBYTE
from dmvpn.lab.report import FIX_LINE, VOLUME_REKEY_CAUSE

#: IOS's largest ``set security-association lifetime kilobytes`` value.
MAX_KILOBYTES = 4_294_967_295


@dataclass(slots=True)
class Diagnosis:
    happening: list[str] = field(default_factory=list)
    why: list[str] = field(default_factory=list)
    change: list[str] = field(default_factory=list)
    fix_lines: list[str] = field(default_factory=list)
    volume_driven: bool = False
    load_balancing: bool = False
    orphans: int = 0
    collisions: int = 0


def focus(report: Report) -> tuple[Side, FlowAnalysis] | None:
    """The flow with the most SA pairs (the one the question is about)."""
    best: tuple[Side, FlowAnalysis] | None = None
    for side in report.sides:
        for a in side.analyses:
            if a.pairs and (best is None or len(a.pairs) > len(best[1].pairs)):
                best = (side, a)
    return best


def _pair_phrase(p: Pair) -> str:
    if p.role == "current":
        return f"the current pair ({duration(p.age_s)} old)"
    if p.role == "replaced":
        return (f"the pair it replaced {duration((p.age_s or 0) - (p.replaced_after_s or 0))} ago "
                f"({duration(p.age_s)} old, still installed)")
    if p.role == "orphan":
        return f"a pair {duration(p.age_s)} old that never carried a byte (an orphan)"
    if p.role == "idle":
        return f"a pair {duration(p.age_s)} old that has carried nothing yet"
    return f"a pair of unknown age (conn id {p.conn_ids})"


def _flow_happening(side: Side, a: FlowAnalysis) -> str:
    n_in, n_out = a.count("inbound"), a.count("outbound")
    pairs = ", ".join(_pair_phrase(p) for p in a.pairs)
    return (f"{side.label} holds {n_in} inbound and {n_out} outbound ESP SAs for "
            f"{a.flow.peer or a.flow.remote_endpoint}: {pairs}.")


def _table_collisions(a: FlowAnalysis) -> list[str]:
    """Pairs the SA table shows made within a second or two of each other."""
    out = []
    for i, p in enumerate(a.pairs):
        j = p.collision_with
        if j is not None and j > i:
            q = a.pairs[j]
            out.append(f"Pairs {p.conn_ids} and {q.conn_ids} were made within "
                       f"{abs((p.age_s or 0) - (q.age_s or 0))} s of each other: both routers started a "
                       "Quick Mode for this flow at once (a collision), and IKEv1 let both complete.")
    return out


def _debug_happening(report: Report, ex: Exchanges) -> list[str]:
    out: list[str] = []
    qms = ex.quick_modes
    if not qms:
        return out
    starts = ", ".join(f"{q.initiator} at {q.stamp.split()[-1] if q.stamp else '?'}" for q in qms)
    gaps = ex.intervals()
    gap_text = (f" {', '.join(f'{g:.0f} s' for g in gaps)} apart" if gaps else "")
    out.append(f"The debug shows {len(qms)} Quick Mode(s){gap_text}, started by {starts}.")
    for side, node in ex.deletes:
        out.append(f"{side} received a DELETE for SPI {', '.join(node.deleted_spis)} at "
                   f"{node.stamp.split()[-1] if node.stamp else '?'}: the peer removed a pair a rekey "
                   "replaced (RFC 2409 section 5.7 Informational).")
    collided = [q for q in qms if q.collision_with is not None and q.collision_with > q.msgid]
    for q in collided:
        out.append(f"Quick Modes {q.msgid} and {q.collision_with} collided: both routers started one "
                   f"within {2:.0f} s, and IKEv1 lets both complete.")
    return out


def _volume_why(a: FlowAnalysis, ex: Exchanges, side: Side) -> list[str]:
    life = a.lifetime
    assert life.kilobytes is not None and a.volume_lasts_s is not None and a.implied_rekey_s is not None
    gbit = life.kilobytes * KILOBYTE * 8 / 1e9
    measured = [f"the SA table's pairs are {', '.join(f'{g} s' for g in a.observed_rekey_s)} apart"] \
        if a.observed_rekey_s else []
    if ex.median_interval is not None:
        starters = sorted(ex.started_by())
        who = "either side" if len(starters) > 1 else starters[0]
        measured.append(f"the debug's Quick Modes {ex.median_interval:.0f} s apart, started by {who}")
    joined = " and ".join(measured)
    match = f" {joined[:1].upper()}{joined[1:]}: the same rhythm." if measured else ""
    direction = "out" if (a.rate_bps or 0) >= (a.in_rate_bps or 0) else "in"
    peer = a.flow.peer or a.flow.remote_endpoint
    return [
        f"The volume lifetime, not the time lifetime, drives the rekeys: at the measured "
        f"{rate(max(a.rate_bps or 0, a.in_rate_bps or 0))} ({side.label} {'->' if direction == 'out' else '<-'} "
        f"{peer}), {life.kilobytes:,} KB ({gbit:.1f} Gbit) lasts {a.volume_lasts_s:.0f} s, and IOS "
        f"rekeys at {SOFT_VOLUME_FRACTION:.0%} of it: every ~{a.implied_rekey_s:.0f} s.{match} "
        f"The {life.seconds} s time lifetime never comes into play.",
        "Why the extra pairs: " + VOLUME_REKEY_CAUSE.split(". ", 1)[-1],
    ]


def _not_load_balancing(a: FlowAnalysis) -> str | None:
    if len(a.pairs) < 2 or a.flow.current_outbound_spi is None:
        return None
    others = [p.role for p in a.pairs if p.role != "current"]
    kinds = " and ".join(sorted({"a rekey's overlap" if r == "replaced" else f"an {r}" if r[0] in "aeiou"
                              else f"a {r}" for r in others}))
    return (f"It is not load balancing: IOS sends a flow on one SA, the current outbound SPI "
            f"0x{a.flow.current_outbound_spi:08X}; the other pairs are {kinds}, not extra paths.")


def _volume_for(a: FlowAnalysis) -> int:
    """A kilobyte lifetime that lasts twice the time lifetime at the measured rate."""
    top = max(a.rate_bps or 0, a.in_rate_bps or 0)
    need = top * a.lifetime.seconds * 2 / 8 / KILOBYTE
    step = 10 ** max(0, int(math.log10(need)) if need > 0 else 0)
    return min(MAX_KILOBYTES, int(math.ceil(need / step) * step))


def _change(report: Report, a: FlowAnalysis) -> list[str]:
    name = profile_name(a.flow.crypto_map_tag) if a.flow.crypto_map_tag else ""
    named = f" (the one crypto map {a.flow.crypto_map_tag} comes from: {name})" if name != a.flow.crypto_map_tag else ""
    interval = a.implied_rekey_s or 0
    time_rekey = a.lifetime.seconds - SOFT_SECONDS_BEFORE
    bigger = _volume_for(a)
    return [
        f"In every `crypto ipsec profile` on both routers{named}:",
        f"    {FIX_LINE}",
        f"Rekeys then follow the {a.lifetime.seconds} s time lifetime alone (one about every "
        f"{time_rekey:.0f} s instead of every ~{interval:.0f} s), so a collision has ~"
        f"{max(1, round(time_rekey / interval)) if interval else 'many'} times fewer chances and, "
        "outside a rekey, one pair is installed.",
        f"Or a much larger volume: `set security-association lifetime kilobytes {bigger}` "
        f"(lasts {duration(bigger * KILOBYTE * 8 / max(a.rate_bps or 1, a.in_rate_bps or 1))} "
        "at this rate, so the time lifetime drives).",
        "Or IKEv2, which resolves simultaneous rekeys (RFC 7296 section 2.8.1).",
        "`dmvpn analyze ... --lab` replays this in the lab with and without the change.",
    ]


def _failures(report: Report, d: Diagnosis) -> None:
    for side in report.sides:
        for f in side.found:
            if f.meaning.failure:
                times = f" ({f.count} times)" if f.count > 1 else ""
                d.happening.append(f"{side.label}: {f.meaning.name} ({f.source}:{f.first_line}{times}).")
                d.why.append(f"{f.meaning.name}: {f.meaning.text}")


#: What a ``show dmvpn`` state other than UP means.
DMVPN_STATES = {
    "IKE": "the IPsec session with that peer is not up (IKE has not finished)",
    "NHRP": "IPsec is up but NHRP has not registered or resolved the peer",
    "NHRP-RO": "IPsec is up but NHRP has not registered or resolved the peer",
    "INTF": "the tunnel interface is down",
    "DOWN": "the peer is down",
}


def _tables(report: Report, d: Diagnosis) -> None:
    """What the peer tables alone say."""
    for side in report.sides:
        t = side.tables
        for s in t.sessions:
            total = sum(s.active_sas)
            if total > 2:
                d.happening.append(f"{side.label}: {total} active SAs with {s.peer} ({s.interface}): "
                                   f"{total // 2} pairs for one peer; `show crypto ipsec sa peer {s.peer}` "
                                   "gives their ages and volumes, which say why.")
        for r in t.isakmp:
            if r.state == "MM_NO_STATE":
                d.happening.append(f"{side.label}: the ISAKMP SA {r.src} -> {r.dst} (conn-id {r.conn_id}) is "
                                   f"in MM_NO_STATE{' and deleted' if 'deleted' in r.status else ''}: Main "
                                   "Mode did not get past its first message (no answer, or no matching "
                                   "policy); a transient one is an old SA on its way out.")
        for p in t.dmvpn:
            meaning = DMVPN_STATES.get(p.state.upper())
            if meaning:
                d.happening.append(f"{side.label}: DMVPN peer {p.nbma} (tunnel {p.tunnel}) is in state "
                                   f"{p.state}: {meaning}.")


def diagnose(report: Report) -> Diagnosis:
    d = Diagnosis()
    top = focus(report)
    if top is not None:
        side, a = top
        d.happening.append(_flow_happening(side, a))
        table = _table_collisions(a)
        d.happening += table
    else:
        table = []
    d.happening += _debug_happening(report, report.exchanges)
    d.collisions = max(len(table),
                       sum(1 for q in report.exchanges.quick_modes if q.collision_with is not None) // 2)
    _failures(report, d)
    _tables(report, d)
    d.happening += [f"Settings: {text[0].upper()}{text[1:]}" for text in differences(report.sides)]
    if top is None:
        if not d.why:
            d.why.append("No SA table to work from: add `show crypto ipsec sa` for the ages, volumes "
                         "and rate.")
        return d
    side, a = top
    d.orphans = sum(1 for p in a.pairs if p.role == "orphan")
    if a.driver == "volume":
        d.volume_driven = True
        d.why += _volume_why(a, report.exchanges, side)
        if (nlb := _not_load_balancing(a)) is not None:
            d.why.append(nlb)
        d.change += _change(report, a)
        d.fix_lines = [FIX_LINE]
    elif d.orphans or d.collisions:
        d.why.append("Both routers started a Quick Mode for the same flow at once and IKEv1 has no "
                     "collision rule; the pair nobody sends on stays until its seconds run out.")
        if (nlb := _not_load_balancing(a)) is not None:
            d.why.append(nlb)
        d.change.append("Rekeys are time-driven; collisions should be rare. IKEv2 resolves them "
                        "(RFC 7296 section 2.8.1).")
    elif not d.why:
        d.why.append("One pair per flow outside a rekey: nothing unusual.")
        d.change.append("Nothing to change.")
    return d
