"""``show ip nhrp [detail|brief]``, ``show ip nhrp nhs [detail]`` and
``show ip nhrp traffic``: IOS-XE text and JSON in genieparser's schemas
(``ShowIpNhrp``, ``ShowIpNhrpDetail``, ``ShowIpNhrpNhs``,
``ShowIpNhrpNhsDetail``, ``ShowIpNhrpTraffic``). The cache entry layout and
flag words are NHRP.md 3.8's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dmvpn.show.iosfmt import hms, uptime_text
from dmvpn.show.nhrp_views import TRAFFIC_KINDS, NhrpEntryView, NhrpTrafficView, NhsInterfaceView, NhsView

NHS_LEGEND = "Legend: E=Expecting replies, R=Responding, W=Waiting, D=Dynamic"
BRIEF_LEGEND = (
    "****************************************************************************",
    "    NOTE: Link-Local, No-socket and Incomplete entries are not displayed",
    "****************************************************************************",
    "Legend: Type --> S - Static, D - Dynamic",
    "        Flags --> u - unique, r - registered, e - temporary, c - claimed",
    "        a - authoritative, t - route",
    "============================================================================",
    "",
    "Intf     NextHop Address                                    NBMA Address",
    "         Target Network                              T/Flag",
    "-------- ------------------------------------------- ------ ----------------",
)
_BRIEF_FLAGS = (("unique", "u"), ("registered", "r"), ("authoritative", "a"), ("rib", "t"), ("nho", "t"))


def _expire(seconds: int | None) -> str:
    return "never expire" if seconds is None else uptime_text(seconds)


def _flags(entry: NhrpEntryView) -> str:
    return " ".join(entry.flags)


# ---------------------------------------------------------------- show ip nhrp


def _entry_lines(e: NhrpEntryView, detail: bool) -> list[str]:
    flags = _flags(e)
    when = "never expire" if e.expire is None else f"expire {uptime_text(e.expire)}"
    head = [f"{e.target} via {e.via}", f"   {e.interface} created {uptime_text(e.created)}, {when}"]
    if e.type == "incomplete":  # no binding yet: IOS prints neither next hop nor NBMA address
        return [e.target, head[1], f"   Type: {e.type}, Flags:{' ' + flags if flags else ''}"]
    lines = [*head, f"   Type: {e.type}, Flags:{' ' + flags if flags else ''}", f"   NBMA address: {e.nbma}"]
    if e.claimed_nbma is not None:
        lines.append(f"    (Claimed NBMA address: {e.claimed_nbma})")
    if detail:
        lines.append(f"   Preference: {e.preference}")
    if e.no_socket:
        lines.append("    (no-socket)")
    if detail and e.requester is not None:
        lines.append(f"  Requester: {e.requester} Request ID: {e.request_id}")
    return lines


def render_entries_text(entries: Sequence[NhrpEntryView], detail: bool = False) -> str:
    """``show ip nhrp`` / ``show ip nhrp detail``."""
    lines = [line for e in entries for line in _entry_lines(e, detail)]
    return "\n".join(lines) + "\n" if lines else ""


def render_entries_json(entries: Sequence[NhrpEntryView], detail: bool = False) -> dict[str, Any]:
    """genieparser's ``ShowIpNhrp`` (``ShowIpNhrpDetail`` with ``detail``)."""
    out: dict[str, Any] = {}
    for e in entries:
        row: dict[str, Any] = {
            "tunnel": {"tunnel_name": e.interface, "created": uptime_text(e.created), "expire": _expire(e.expire)},
            "type": e.type,
            "flags": _flags(e),
            "nbma_address": e.nbma,
        }
        if detail:
            row["preference"] = e.preference
            if e.requester is not None:
                row["requester"], row["request_id"] = e.requester, str(e.request_id)
        out.setdefault(e.target, {}).setdefault("via", {})[e.via] = row
    return out


def _brief_flags(e: NhrpEntryView) -> str:
    letters = "".join(dict.fromkeys(letter for word, letter in _BRIEF_FLAGS if word in e.flags))
    if e.claimed_nbma is not None:
        letters += "c"
    return f"{'S' if e.type == 'static' else 'D'}/{letters}"


def render_brief_text(entries: Sequence[NhrpEntryView]) -> str:
    """``show ip nhrp brief`` (layout from Cisco documentation examples;
    no genieparser sample exists): incomplete and no-socket entries are
    left out, as the note says."""
    lines = list(BRIEF_LEGEND)
    for e in entries:
        if e.type == "incomplete" or e.no_socket:
            continue
        short = e.interface.replace("Tunnel", "Tu")
        lines.append(f"{short:<8} {e.via:<43}        {e.nbma}")
        lines.append(f"{'':<8} {e.target:<43} {_brief_flags(e)}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- show ip nhrp nhs


def nhs_line(n: NhsView) -> str:
    """One NHS line (also used by ``show dmvpn detail``)."""
    nbma = f"NBMA Address: {n.nbma} " if n.nbma else ""
    return f"{n.address:<12}{n.state:>3}  {nbma}priority = {n.priority} cluster = {n.cluster}"


def _nhs_detail_lines(n: NhsView) -> list[str]:
    ago = f" ({hms(n.last_reply_ago)} ago)" if n.last_reply_ago is not None else ""
    counts = f"req-sent {n.requests_sent}  req-failed {n.requests_failed}  repl-recv {n.replies_received}"
    lines = [f"{nhs_line(n)}  {counts}{ago}"]
    if n.current_request_id is not None:
        ack = f" (Ack: {n.ack})" if n.ack is not None else ""
        lines.append(f"  Current Request ID: {n.current_request_id}{ack}")
    lines.append(f"  Protection Socket Requested: {'TRUE' if n.protection_requested else 'FALSE'}")
    return lines


def render_nhs_text(interfaces: Sequence[NhsInterfaceView], detail: bool = False) -> str:
    """``show ip nhrp nhs`` / ``show ip nhrp nhs detail``."""
    lines = [NHS_LEGEND]
    for i, iface in enumerate(interfaces):
        if i:
            lines.append("")
        lines.append(f"{iface.interface}:")
        for n in iface.servers:
            lines += _nhs_detail_lines(n) if detail else [nhs_line(n)]
    lines.append("")
    pending = [p for iface in interfaces for p in iface.pending]
    if detail and pending:
        lines.append("Pending Registration Requests:")
        for p in pending:
            short = p.interface.replace("Tunnel", "Tu")
            lines.append(
                f"Registration Request: Reqid {p.request_id}, Ret {p.retransmit}  NHS {p.nhs} {p.state} ({short})"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def render_nhs_json(interfaces: Sequence[NhsInterfaceView], detail: bool = False) -> dict[str, Any]:
    """genieparser's ``ShowIpNhrpNhs`` (``ShowIpNhrpNhsDetail`` with ``detail``)."""
    out: dict[str, Any] = {}
    for iface in interfaces:
        servers = out.setdefault(iface.interface, {}).setdefault("nhs_ip", {})
        for n in iface.servers:
            row: dict[str, Any] = {"nhs_state": n.state, "priority": n.priority, "cluster": n.cluster}
            if n.nbma:
                row["nbma_address"] = n.nbma
            if detail:
                row |= {"req_sent": n.requests_sent, "req_failed": n.requests_failed, "reply_recv": n.replies_received}
                if n.last_reply_ago is not None:
                    row["receive_time"] = hms(n.last_reply_ago)
                if n.current_request_id is not None:
                    row["current_request_id"] = n.current_request_id
                if n.ack is not None:
                    row["ack"] = n.ack
                row["protection_socket_requested"] = "TRUE" if n.protection_requested else "FALSE"
            servers[n.address] = row
        if detail:
            for p in iface.pending:
                req = out.setdefault("pending_registration_requests", {}).setdefault("req_id", {})
                req[str(p.request_id)] = {"ret": p.retransmit, "nhs_ip": p.nhs, "nhs_state": p.state,
                                          "tunnel": p.interface.replace("Tunnel", "Tu")}  # fmt: skip
    return out


# ---------------------------------------------------------------- show ip nhrp traffic

_TRAFFIC_LINES = (
    ("Resolution Request", "Resolution Reply", "Registration Request"),
    ("Registration Reply", "Purge Request", "Purge Reply"),
    ("Error Indication", "Traffic Indication", "Redirect Suppress"),
)


def _counts(counts: dict[str, int]) -> list[str]:
    values = iter(counts.get(k, 0) for k in TRAFFIC_KINDS)
    return ["         " + "  ".join(f"{next(values)} {name}" for name in names) for names in _TRAFFIC_LINES]


def _total(counts: dict[str, int]) -> int:
    return sum(v for k, v in counts.items() if k != "redirect_supress")


def render_traffic_text(views: Sequence[NhrpTrafficView]) -> str:
    """``show ip nhrp traffic``."""
    lines = []
    for v in views:
        lines.append(f"{v.interface}: Max-send limit:{v.max_send_limit}, Usage:{v.usage}%")
        lines += [f"   Sent: Total {_total(v.sent)}", *_counts(v.sent)]
        lines += [f"   Rcvd: Total {_total(v.rcvd)}", *_counts(v.rcvd)]
    return "\n".join(lines) + "\n"


def render_traffic_json(views: Sequence[NhrpTrafficView]) -> dict[str, Any]:
    """genieparser's ``ShowIpNhrpTraffic`` schema."""
    out: dict[str, Any] = {}
    for v in views:
        block: dict[str, Any] = {"max_send_limit": v.max_send_limit, "usage": f"{v.usage}%"}
        for key, counts in (("sent", v.sent), ("rcvd", v.rcvd)):
            block[key] = {"total": _total(counts), **{k: counts.get(k, 0) for k in TRAFFIC_KINDS}}
        out[v.interface] = block
    return {"interface": out} if out else {}
