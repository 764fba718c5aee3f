"""Why each IPsec SA exists, in words (``show crypto ipsec sa explain``, and
the lab's explanation).

Reads SA records (:mod:`dmvpn.ipsec.ledger`) and their analysis
(:mod:`dmvpn.ipsec.analysis`): for every pair a router holds with a peer, who
started the Quick Mode that made it and why, what it carries now, and why it
is still there. A running router knows only its own SAs, so exchanges it
answered are attributed to the peer; the lab passes every router's records
and so names the initiator's own reason.
"""

from __future__ import annotations

from dmvpn.ipsec.analysis import Exchange, analyse
from dmvpn.ipsec.ledger import SaRecord


def _hex(spi: int) -> str:
    return f"0x{spi:08X}"


def ago(seconds: float) -> str:
    """``32 s ago``, ``49 min ago``, ``2.5 h ago``."""
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def alive(x: Exchange) -> bool:
    """Still installed (either half)."""
    return x.inbound.deleted_at is None or x.outbound.deleted_at is None


def _last_packet(x: Exchange) -> float:
    times = [t for t in (x.inbound.last_packet, x.outbound.last_packet) if t is not None]
    return max(times) if times else x.at


def _cause_phrase(x: Exchange, names: dict[str, str]) -> str:
    who = names.get(x.initiator_node, x.initiator_node)
    if x.collision_with is not None:
        gap_ms = abs(x.at - x.collision_with.at) * 1000
        return (f"when both peers started a Quick Mode within {gap_ms:.0f} ms "
                f"({x.cause} by {who}; IKEv1 has no collision rule, so both completed)")
    if x.cause == "initial":
        return f"when the tunnel first came up (initial Quick Mode started by {who})"
    if x.cause == "volume rekey":
        return f"by a volume rekey {who} started (the previous SA had used most of its kilobytes)"
    if x.cause == "time rekey":
        return f"by a time rekey {who} started (shortly before the previous SA's seconds ran out)"
    if x.cause == "peer's rekey":
        return f"by a rekey {who} started"
    return f"by a {x.cause} started by {who}"


def explain_sas(records: list[SaRecord], node: str, peer: str, now: float,
                names: dict[str, str] | None = None) -> list[str]:
    """One paragraph per SA pair ``node`` holds with ``peer`` at ``now``;
    ``names`` maps node names to hostnames for the text."""
    names = names or {}
    a = analyse(records, node, peer, now)
    held = [x for x in a.exchanges if alive(x)]
    lines = [f"Why {names.get(node, node)} holds {len(held)} SA pair(s) with {peer}:"]
    newest = max(held, key=lambda x: x.at) if held else None
    for x in held:
        out, inb = x.outbound, x.inbound
        kb, secs = out.remaining(now)
        left = f"{secs:.0f} s" + (f" / {kb} KB" if kb is not None else "")
        lines.append(f"  inbound {_hex(inb.spi)} / outbound {_hex(out.spi)} "
                     f"(conn id {inb.conn_id}/{out.conn_id}):")
        lines.append(f"    created {ago(now - x.at)} {_cause_phrase(x, names)};")
        if x.packets == 0 or x.orphan:
            idle = ("has never carried a packet" if x.packets == 0 else
                    f"has carried nothing for {ago(now - _last_packet(x)).removesuffix(' ago')}")
            lines.append(f"    an orphan: {idle}; nobody rekeys an idle SA and nobody deleted "
                         f"it, so it stays until its lifetime ends: expires in {left}.")
        elif x is newest:
            lines.append("    the newest pair: carries the current traffic "
                         f"({out.packets} packets out, {inb.packets} in so far).")
        else:
            successor = next((y for y in a.exchanges if y.outbound.replaces_spi == out.spi), None)
            since = f" {ago(now - successor.at)} by {_hex(successor.outbound.spi)}" if successor else ""
            lines.append(f"    replaced{since}; kept until the peer's DELETE or its expiry "
                         f"({left} left).")
    return lines
