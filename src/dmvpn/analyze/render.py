"""The analysis as text (the lab's style: a table, then each pair in words,
then what is happening, why and what to change) and as JSON with the same
figures."""

from __future__ import annotations

import textwrap
from dataclasses import asdict
from typing import Any

from dmvpn.analyze.diagnosis import Diagnosis
from dmvpn.analyze.quick_modes import Exchanges
from dmvpn.analyze.report import Report, Side
from dmvpn.analyze.sa_pairs import FlowAnalysis, Pair, SaFigures
from dmvpn.analyze.units import duration, kb, rate
from dmvpn.ipsec.sa import KILOBYTE

#: At most this many unread lines are listed in the text (JSON has all).
MAX_UNREAD_SHOWN = 20
#: ... and this many debug events.
MAX_EVENTS_SHOWN = 40
WIDTH = 100


def _wrap(text: str, indent: str = "  ") -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent + "  ")


def _spi(f: SaFigures | None) -> str:
    return f.sa.spi_hex if f else "-"


def _flow_header(side: Side, a: FlowAnalysis) -> list[str]:
    f = a.flow
    life = a.lifetime
    volume = f"{life.kilobytes:,} KB" if life.kilobytes is not None else "no volume limit"
    cur = f"0x{f.current_outbound_spi:08X}" if f.current_outbound_spi is not None else "none"
    lines = [f"{side.label}: {f.interface or '?'}, crypto map {f.crypto_map_tag or '?'}, "
             f"local {f.local_endpoint or f.local_addr or '?'}, peer {f.peer or f.remote_endpoint or '?'}",
             f"  {a.count('inbound')} inbound and {a.count('outbound')} outbound ESP SAs; "
             f"current outbound SPI {cur}"]
    lines += _wrap(f"lifetime {life.seconds} s / {volume}: {life.source}")
    return lines


def _table(a: FlowAnalysis) -> list[str]:
    rows = [("conn id", "inbound", "outbound", "age", "carried out", "carried in", "rate out / in", "role")]
    for p in a.pairs:
        rows.append((p.conn_ids or "?", _spi(p.inbound), _spi(p.outbound), duration(p.age_s),
                     kb(p.carried("outbound")), kb(p.carried("inbound")),
                     f"{rate(p.out_rate_bps)} / {rate(p.in_rate_bps)}", p.role))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def _left(x: SaFigures | None) -> str:
    if x is None:
        return "?"
    s = x.sa
    parts = [f"{s.remaining_s} s" if s.remaining_s is not None else "? s"]
    if s.remaining_kb is not None:
        parts.append(f"{s.remaining_kb} KB")
    return " / ".join(parts)


def _pair_words(a: FlowAnalysis, p: Pair) -> list[str]:
    """One pair in the lab's words (:func:`dmvpn.node.explain.explain_sas`)."""
    head = f"  inbound {_spi(p.inbound)} / outbound {_spi(p.outbound)} (conn id {p.conn_ids or '?'}):"
    created = f"created {duration(p.age_s)} ago" if p.age_s is not None else "age unknown"
    out_kb, in_kb = p.carried("outbound"), p.carried("inbound")
    life_kb = a.lifetime.kilobytes
    if p.role == "current" and not out_kb and not in_kb:
        text = f"{created}; the newest pair, the one IOS sends on; no traffic counted on it."
    elif p.role == "current":
        text = (f"{created}; the newest pair: carries the current traffic ({kb(out_kb)} out, "
                f"{kb(in_kb)} in so far: {rate(p.out_rate_bps)} out, {rate(p.in_rate_bps)} in).")
    elif p.role == "replaced":
        used = f" ({out_kb / life_kb:.0%} of its kilobytes)" if out_kb is not None and life_kb else ""
        text = (f"{created}; carried {kb(out_kb)} out{used} and {kb(in_kb)} in during the "
                f"{p.replaced_after_s} s before a newer pair replaced it ({rate(p.out_rate_bps)} out); "
                f"replaced {duration((p.age_s or 0) - (p.replaced_after_s or 0))} ago; kept until the "
                f"peer's DELETE or its expiry ({_left(p.outbound)} left).")
    elif p.role == "orphan":
        text = (f"{created}; an orphan: has never carried a byte in {duration(p.age_s)}; nobody rekeys "
                "an idle SA and nobody deleted it, so it stays until its lifetime ends: expires in "
                f"{_left(p.outbound)}. An idle pair that old is what a collision leaves: when both "
                "routers start a Quick Mode at once, both complete, and the pair neither chooses for "
                "sending is never used.")
    elif p.role == "idle":
        text = f"{created}; has carried nothing yet."
    else:
        text = f"{created}; too little in the output to say more."
    if p.collision_with is not None:
        twin = a.pairs[p.collision_with]
        text += (f" Made within {abs((twin.age_s or 0) - (p.age_s or 0))} s of conn id {twin.conn_ids}: "
                 "the two results of one collision.")
    return [head, *_wrap(text, "    ")]


def _table_role(side: Side, conn_id: int | None) -> str:
    """``conn id 19697, the current pair in the SA table`` when the table has it."""
    if conn_id is None:
        return ""
    for a in side.analyses:
        for p in a.pairs:
            if any(x is not None and x.sa.conn_id == conn_id for x in (p.inbound, p.outbound)):
                return f" (conn id {conn_id}: the {p.role} pair in the SA table)"
    return f" (conn id {conn_id}: not in the SA table)" if side.analyses else f" (conn id {conn_id})"


def _ipsec_events(report: Report) -> list[tuple[float, str]]:
    events = []
    offsets = report.exchanges.clock_offsets
    for side in report.sides:
        for e in side.debug.ipsec:
            at = (e.time or 0.0) - offsets.get(side.label, 0.0)
            events.append((at, f"  {e.stamp or '?':19} {side.label}: IPsec {e.action} SA {e.spi or '?'}"
                               f"{_table_role(side, e.conn_id)}"))
    return events


def _quick_modes(report: Report) -> list[str]:
    ex = report.exchanges
    ipsec = _ipsec_events(report)
    if not ex.quick_modes and not ex.deletes and not ipsec:
        return []
    lines = ["Quick Modes in the debug:"]
    events: list[tuple[float, str]] = list(ipsec)
    for q in ex.quick_modes:
        sides = ", ".join(f"{s} as {n.role or '?'}" for s, n in q.views.items())
        spis = q.installed
        installed = ", ".join(spis[:4]) + (f" and {len(spis) - 4} more" if len(spis) > 4 else "") or "none seen"
        extra = f"; collided with M-ID {q.collision_with}" if q.collision_with is not None else ""
        events.append((q.at or 0.0, f"  {q.stamp or '?':16} M-ID {q.msgid}: started by {q.initiator or '?'} "
                                    f"(logged by {sides}); installed SPI {installed}{extra}"))
    for side, n in ex.purges:
        what = "this Quick Mode" if n.kind == "quick mode" else "an exchange that ended before the log"
        events.append(((n.purged_at or 0.0) - ex.clock_offsets.get(side, 0.0),
                       f"  {n.purged_stamp or '?':16} {side} purged node {n.msgid} ({what}; housekeeping)"))
    for side, n in ex.deletes:
        events.append((n.first_time or 0.0, f"  {n.stamp or '?':16} {side} received a DELETE for SPI "
                                            f"{', '.join(n.deleted_spis)} (Informational M-ID {n.msgid})"))
    ordered = [text for _, text in sorted(events, key=lambda e: e[0])]
    lines += ordered[:MAX_EVENTS_SHOWN]
    if len(ordered) > MAX_EVENTS_SHOWN:
        lines.append(f"  ... and {len(ordered) - MAX_EVENTS_SHOWN} more events (--json lists them all)")
    gaps = ex.intervals()
    if gaps:
        lines.append(f"  {', '.join(f'{g:.0f} s' for g in gaps)} between Quick Modes; started by "
                     f"{', '.join(sorted(ex.started_by()))}; "
                     f"{sum(1 for q in ex.quick_modes if q.collision_with) // 2} collision(s).")
    offsets = {s: o for s, o in ex.clock_offsets.items() if o}
    if offsets:
        lines.append("  clocks matched on shared M-IDs: " +
                     ", ".join(f"{s} {o:+.0f} s" for s, o in offsets.items()))
    return lines


def _puzzles(report: Report) -> list[str]:
    where: dict[str, list[str]] = {}
    text: dict[str, str] = {}
    for side in report.sides:
        for f in side.found:
            if not f.meaning.failure:
                where.setdefault(f.meaning.name, []).append(f"{f.source}:{f.first_line}")
                text[f.meaning.name] = f.meaning.text
    lines: list[str] = []
    for name, places in where.items():
        lines += _wrap(f"{name!r} ({', '.join(places)}): {text[name]}")
    return ["What the puzzling debug lines mean:", *lines] if lines else []


def _peer_tables(side: Side) -> list[str]:
    t = side.tables
    lines = [f"  show crypto isakmp sa: {r.src} -> {r.dst}" + (f" {r.state}" if r.state else "")
             + f" conn-id {r.conn_id} {r.status}" for r in t.isakmp]
    lines += [f"  show crypto session: {s.interface} peer {s.peer} {s.status}"
              + (f", active SAs {'+'.join(map(str, s.active_sas))}" if s.active_sas else "")
              for s in t.sessions]
    lines += [f"  show dmvpn: {p.nbma} (tunnel {p.tunnel}) {p.state} {p.uptime} {p.attributes}".rstrip()
              for p in t.dmvpn]
    lines += [f"  show crypto ikev2 sa: {x.local} -> {x.remote} {x.status}"
              + (f", {duration(x.active_s)} old of a {x.lifetime_s} s lifetime" if x.active_s is not None else "")
              for x in t.ikev2]
    lines += [f"  show ip nhrp: {e.prefix} via {e.via} NBMA {e.nbma or '?'} ({e.type or '?'}, {e.interface} "
              f"created {e.created}, expire {e.expire})" for e in t.nhrp]
    return [f"Peers ({side.label}):", *lines] if lines else []


def _section(title: str, items: list[str]) -> list[str]:
    if not items:
        return []
    out = [title]
    for item in items:
        out += _wrap(item) if not item.startswith("    ") else [item]
    return out


def _unread(report: Report) -> list[str]:
    lines: list[str] = []
    unread = [u for s in report.sides for u in s.unread]
    for u in unread[:MAX_UNREAD_SHOWN]:
        lines.append(f"  {u}")
    if len(unread) > MAX_UNREAD_SHOWN:
        lines.append(f"  ... and {len(unread) - MAX_UNREAD_SHOWN} more (--json lists them all)")
    notes = [f"  {w}" for s in report.sides for w in s.warnings] + \
            [f"  {n}" for s in report.sides for n in s.not_analysed]
    out = ["Lines not read (skipped):", *lines] if lines else []
    return out + (["Notes:", *notes] if notes else [])


def render_text(report: Report, d: Diagnosis) -> str:
    out: list[str] = []
    for side in report.sides:
        for a in side.analyses:
            out += _flow_header(side, a)
            if not a.pairs:
                out += ["  no ESP SAs: nothing negotiated for this flow (yet)", ""]
                continue
            out += _table(a)
            for note in a.notes:
                out += _wrap(f"note: {note}")
            out.append(f"Why {side.label} holds {len(a.pairs)} SA pair(s) with {a.flow.peer or '?'}:")
            for p in a.pairs:
                out += _pair_words(a, p)
            out.append("")
    peers = [line for side in report.sides for line in _peer_tables(side)]
    for block in (peers, _quick_modes(report), _puzzles(report)):
        if block:
            out += [*block, ""]
    out += _section("What is happening:", d.happening)
    out += _section("Why:", d.why)
    out += _section("What to change:", d.change)
    tail = _unread(report)
    if tail:
        out += ["", *tail]
    return "\n".join(out).rstrip() + "\n"


# ---------------------------------------------------------------- JSON

def _sa_json(f: SaFigures) -> dict[str, Any]:
    s = f.sa
    return {"direction": s.direction, "protocol": s.protocol, "spi": s.spi_hex, "spi_decimal": s.spi_decimal,
            "transform": s.transform, "mode": s.mode, "conn_id": s.conn_id, "initiator": s.initiator,
            "remaining_kb": s.remaining_kb, "remaining_s": s.remaining_s,
            "remaining_exact": s.remaining_exact, "status": s.status, "line": s.line,
            "age_s": f.age_s, "carried_kb": f.carried_kb,
            "carried_bytes": None if f.carried_kb is None else f.carried_kb * KILOBYTE,
            "current_outbound": f.current_outbound}


def _flow_json(a: FlowAnalysis) -> dict[str, Any]:
    f = a.flow
    by_spi = {id(x.sa): x for p in a.pairs for x in (p.inbound, p.outbound) if x}
    sas = [_sa_json(by_spi[id(s)]) if id(s) in by_spi else _sa_json(SaFigures(s)) for s in f.sas]
    return {
        "interface": f.interface, "crypto_map_tag": f.crypto_map_tag, "peer": f.peer,
        "local_endpoint": f.local_endpoint, "remote_endpoint": f.remote_endpoint,
        "local_ident": f.local_ident, "remote_ident": f.remote_ident,
        "current_outbound_spi": None if f.current_outbound_spi is None else f"0x{f.current_outbound_spi:08X}",
        "pkts_encaps": f.pkts_encaps, "pkts_decaps": f.pkts_decaps, "recv_errors": f.recv_errors,
        "lifetime": {"seconds": a.lifetime.seconds, "kilobytes": a.lifetime.kilobytes,
                     "source": a.lifetime.source, "assumed": a.lifetime.assumed},
        "inbound_esp_sas": a.count("inbound"), "outbound_esp_sas": a.count("outbound"),
        "rate_out_bps": a.rate_bps, "rate_in_bps": a.in_rate_bps,
        "volume_lasts_s": a.volume_lasts_s, "implied_rekey_interval_s": a.implied_rekey_s,
        "observed_rekey_intervals_s": a.observed_rekey_s, "rekey_driver": a.driver or None,
        "pairs": [{"conn_ids": p.conn_ids, "inbound_spi": _spi(p.inbound), "outbound_spi": _spi(p.outbound),
                   "age_s": p.age_s, "role": p.role, "replaced_after_s": p.replaced_after_s,
                   "carried_out_kb": p.carried("outbound"), "carried_in_kb": p.carried("inbound"),
                   "rate_out_bps": p.out_rate_bps, "rate_in_bps": p.in_rate_bps,
                   "collision_with": None if p.collision_with is None else a.pairs[p.collision_with].conn_ids}
                  for p in a.pairs],
        "sas": sas,
    }


def _exchanges_json(ex: Exchanges) -> dict[str, Any]:
    return {
        "quick_modes": [{"msgid": q.msgid, "time": q.stamp, "initiator": q.initiator,
                         "logged_by": {s: n.role for s, n in q.views.items()},
                         "installed_spis": q.installed, "collision_with": q.collision_with,
                         "end": {s: n.end_reason for s, n in q.views.items()}} for q in ex.quick_modes],
        "intervals_s": ex.intervals(),
        "median_interval_s": ex.median_interval,
        "started_by": sorted(ex.started_by()),
        "deletes": [{"side": s, "time": n.stamp, "msgid": n.msgid, "spis": n.deleted_spis}
                    for s, n in ex.deletes],
        "purges": [{"side": s, "time": n.purged_stamp, "msgid": n.msgid} for s, n in ex.purges],
        "clock_offsets_s": ex.clock_offsets,
    }


def render_json(report: Report, d: Diagnosis) -> dict[str, Any]:
    return {
        "sides": [{
            "name": s.name, "hostname": s.hostname, "addresses": s.addresses,
            "flows": [_flow_json(a) for a in s.analyses],
            "isakmp_sas": [asdict(x) for x in s.tables.isakmp],
            "sessions": [asdict(x) for x in s.tables.sessions],
            "dmvpn_peers": [asdict(x) for x in s.tables.dmvpn],
            "nhrp_entries": [asdict(x) for x in s.tables.nhrp],
            "ikev2_sas": [asdict(x) for x in s.tables.ikev2],
            "ipsec_debug_events": [asdict(x) for x in s.debug.ipsec],
            "debug_explained": [{"name": f.meaning.name, "line": f"{f.source}:{f.first_line}",
                                 "count": f.count, "failure": f.meaning.failure,
                                 "meaning": f.meaning.text} for f in s.found],
            "unread": [str(u) for u in s.unread],
            "warnings": [str(w) for w in s.warnings],
            "not_analysed": s.not_analysed,
        } for s in report.sides],
        "exchanges": _exchanges_json(report.exchanges),
        "diagnosis": {"happening": d.happening, "why": d.why, "change": d.change,
                      "fix_lines": d.fix_lines, "volume_driven": d.volume_driven,
                      "load_balancing": d.load_balancing, "orphan_pairs": d.orphans,
                      "collisions": d.collisions},
    }

