"""The lab's answers: a summary of the run and, for every SA a router holds
at the end, why it exists and why it is still there, then what to change.

Everything here reads a :class:`~dmvpn.lab.runner.LabResult`; nothing runs
the simulation. Wall-clock figures are left out on purpose: the same seed
must print the same text.
"""

from __future__ import annotations

import re
from typing import Any

from dmvpn.ipsec.analysis import PeerAnalysis, analyse
from dmvpn.lab.runner import LabResult
from dmvpn.node.explain import alive, explain_sas

#: The configuration change the explanation recommends for volume-driven rekeys.
FIX_LINE = "set security-association lifetime kilobytes disable"

#: Why volume-driven rekeys leave extra SA pairs (the lab's words, and ``dmvpn analyze``'s).
VOLUME_REKEY_CAUSE = (
    "the volume lifetime drives the rekeys. Both ends count the same "
    "bytes, so both reach the soft limit (90% of the kilobytes) at nearly the "
    "same moment; whichever router checks its lifetimes first starts the Quick "
    "Mode. When both start within one Quick Mode's time, IKEv1 has no rule to "
    "stop the second: two new pairs are made, each router sends on the pair it "
    "installed last, the next rekey moves both onto one new pair, and the pair "
    "left behind carries nothing more: an orphan that nobody rekeys or deletes "
    "until its seconds run out. The replaced pair of each rekey lingers until a "
    "DELETE or its expiry."
)


def apply_fix(config_text: str) -> str:
    """``config_text`` with :data:`FIX_LINE` added to every ``crypto ipsec
    profile`` (replacing a kilobyte lifetime it may already set)."""
    out: list[str] = []
    in_profile = False
    for line in config_text.splitlines():
        if in_profile and re.match(r"\s+set security-association lifetime kilobytes\b", line):
            continue
        if in_profile and not line.startswith(" "):
            out.append(f" {FIX_LINE}")
            in_profile = False
        out.append(line)
        if re.match(r"crypto ipsec profile \S+", line):
            in_profile = True
    if in_profile:
        out.append(f" {FIX_LINE}")
    return "\n".join(out) + "\n"


def peer_pairs(result: LabResult) -> list[tuple[str, str]]:
    """(node, peer) for every router and every peer it had SAs with."""
    seen: dict[tuple[str, str], None] = {}
    for r in result.records:
        seen.setdefault((r.node, r.peer), None)
    return list(seen)


def analyse_result(result: LabResult, node: str, peer: str) -> PeerAnalysis:
    return analyse(result.records, node, peer, result.duration)


def summary(result: LabResult, node: str, peer: str) -> dict[str, Any]:
    """The run's figures for ``node``'s SAs with ``peer`` (JSON-ready)."""
    a = analyse_result(result, node, peer)
    median = a.median_rekey_interval
    return {
        "node": node,
        "peer": peer,
        "profile": result.profile,
        "seed": result.seed,
        "duration_s": result.duration,
        "max_pairs_alive": a.max_pairs_alive,
        "max_pairs_at_s": round(a.max_pairs_at, 3),
        "max_inbound_sas": a.max_inbound_alive,
        "max_outbound_sas": a.max_outbound_alive,
        # None: rekeys came too often for any moment to be 60 s past one
        "max_pairs_outside_rekeys": a.max_pairs_outside_rekeys if a.settled else None,
        "quick_modes": len(a.exchanges),
        "volume_rekeys": len(a.rekeys("volume rekey")),
        "time_rekeys": len(a.rekeys("time rekey")),
        "collisions": a.collisions,
        "orphan_pairs": len(a.orphans),
        "median_rekey_interval_s": None if median is None else round(median, 1),
        "probe_packets_sent": sum(p.sent for p in result.probes),
        "probe_packets_lost": sum(p.lost for p in result.probes),
        "pairs_at_end": sum(1 for x in a.exchanges if alive(x)),
    }


def explain_lab_sas(result: LabResult, node: str, peer: str) -> list[str]:
    """:func:`~dmvpn.node.explain.explain_sas` at the end of a lab run, with
    every router's records (so the initiator's own reason is named)."""
    names = {n: r.config.hostname for n, r in result.routers.items()}
    return explain_sas(result.records, node, peer, result.duration, names)


def explain_history(result: LabResult, node: str, peer: str, ikev1_run: dict[str, Any] | None = None) -> list[str]:
    """What happened over the run, and what to change. ``ikev1_run``: the
    :func:`summary` of the same lab on IKEv1, when this run is its IKEv2
    variant: the explanation then compares the two."""
    a = analyse_result(result, node, peer)
    s = summary(result, node, peer)
    if ikev1_run is not None:
        return _explain_ikev2(s, ikev1_run)
    lines = ["What happened over the run:"]
    lines.append(f"  {s['quick_modes']} Quick Modes: {s['volume_rekeys']} volume rekeys, "
                 f"{s['time_rekeys']} time rekeys, median interval "
                 f"{s['median_rekey_interval_s']} s; {s['collisions']} collision(s), "
                 f"{s['orphan_pairs']} orphan pair(s); at most {s['max_pairs_alive']} pairs at once "
                 f"(at {s['max_pairs_at_s']:.0f} s).")
    volume = len(a.rekeys("volume rekey"))
    if volume and volume >= len(a.rekeys("time rekey")):
        lines.append(f"  Cause: {VOLUME_REKEY_CAUSE}")
        lines.append("What to change:")
        lines.append("  In every `crypto ipsec profile` on both routers:")
        lines.append(f"    {FIX_LINE}")
        interval = s["median_rekey_interval_s"]
        lines.append("  Rekeys then follow the time lifetime alone (one about every 3570 s "
                     f"instead of every {interval} s), so a collision has ~"
                     f"{max(1, round(3570 / interval)) if interval else 'many'} times fewer chances "
                     "and, outside a rekey, one pair is installed. `dmvpn lab seed --fix` runs "
                     "this lab with that change. Raising the kilobyte lifetime helps in "
                     "proportion; IKEv2 (RFC 7296 2.8.1) resolves simultaneous rekeys.")
    elif a.collisions:
        lines.append("  Cause: both routers started a Quick Mode for the same flow at once and "
                     "IKEv1 has no collision rule. `--profile improved` shows a deterministic "
                     "tie-break.")
    else:
        lines.append("  No collision and no orphan: nothing to change.")
    return lines


def _explain_ikev2(s: dict[str, Any], v1: dict[str, Any]) -> list[str]:
    """The IKEv2 seed lab against its IKEv1 run: the same crossing rekeys,
    settled by RFC 7296 2.8.1 instead of left as duplicates."""
    lines = ["What happened over the run (IKEv2):"]
    lines.append(f"  {s['quick_modes']} CREATE_CHILD_SA rekeys and setups: {s['volume_rekeys']} volume rekeys, "
                 f"{s['time_rekeys']} time rekeys, median interval {s['median_rekey_interval_s']} s; "
                 f"{s['collisions']} collision(s), {s['orphan_pairs']} orphan pair(s); at most "
                 f"{s['max_pairs_alive']} pairs at once (at {s['max_pairs_at_s']:.0f} s); "
                 f"{s['probe_packets_lost']} of {s['probe_packets_sent']} probe packets lost.")
    lines.append(f"  The IKEv1 run (same seed {v1['seed']}, profile {v1['profile']}): {v1['quick_modes']} Quick Modes, "
                 f"{v1['collisions']} collision(s), {v1['orphan_pairs']} orphan pair(s), at most "
                 f"{v1['max_pairs_alive']} pairs at once; {v1['probe_packets_lost']} of "
                 f"{v1['probe_packets_sent']} probe packets lost.")
    if s["collisions"]:
        lines.append("  Cause: the volume lifetime still makes both routers rekey at nearly the same moment, so "
                     "rekeys still cross; IKEv2 has a rule for it (RFC 7296 2.8.1): of the two new pairs, the one "
                     "whose exchange used the lowest nonce is deleted by its own initiator and both routers move "
                     "to the other, so no pair is orphaned. IKEv1 has no such rule: there each crossing leaves a "
                     "duplicate pair that nobody rekeys or deletes.")
    else:
        lines.append("  No rekeys crossed in this run: with IKEv2 a crossing would be settled by RFC 7296 2.8.1 "
                     "(the pair of the lowest nonce deleted by its initiator), never left as a duplicate.")
    lines.append("What to change:")
    lines.append("  Nothing for the duplicates. The rekeys still come every "
                 f"{s['median_rekey_interval_s']} s; `{FIX_LINE}` in every `crypto ipsec profile` "
                 "makes them follow the time lifetime alone.")
    return lines
