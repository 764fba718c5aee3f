"""``show dmvpn [detail]``: per mGRE interface, the NBMA peers and their
tunnel addresses with state, up/down time and attributes (NHRP.md 3.9),
IOS-XE text and JSON in genieparser's ``ShowDmvpn`` schema."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dmvpn.show.iosfmt import uptime_text
from dmvpn.show.nhrp import nhs_line
from dmvpn.show.nhrp_views import DmvpnInterfaceView, DmvpnPeerView, DmvpnRowView

LEGEND = (
    "Legend: Attrb --> S - Static, D - Dynamic, I - Incomplete",
    "        N - NATed, L - Local, X - No Socket",
    "        T1 - Route Installed, T2 - Nexthop-override",
    "        C - CTS Capable",
    "        # Ent --> Number of NHRP entries with same NBMA peer",
    "        NHS Status: E --> Expecting Replies, R --> Responding, W --> Waiting",
    "        UpDn Time --> Up or Down Time for a Tunnel",
    "==========================================================================",
)
HEADER = (
    " # Ent  Peer NBMA Addr Peer Tunnel Add State  UpDn Tm Attrb",
    " ----- --------------- --------------- ----- -------- -----",
)
DETAIL_HEADER = (
    "# Ent  Peer NBMA Addr Peer Tunnel Add State  UpDn Tm Attrb    Target Network",
    "----- --------------- --------------- ----- -------- ----- -----------------",
)


def _time(seconds: int | None) -> str:
    return "never" if seconds is None else uptime_text(seconds)


def _rows(peer: DmvpnPeerView, detail: bool) -> list[str]:
    out = []
    first = (str(len(peer.rows)), peer.nbma)
    if len(peer.nbma) > 15:  # an IPv6 NBMA address gets a line of its own
        out.append(f" {first[0]:>5} {peer.nbma}" if not detail else f"{first[0]:>5} {peer.nbma}")
        first = ("", "")
    for i, row in enumerate(peer.rows):
        ent, nbma = first if i == 0 else ("", "")
        line = f"{ent:>5} {nbma:<15} {row.tunnel:>15} {row.state:>5} {_time(row.updn):>8} {row.attrb:>5}"
        out.append(f"{line} {row.target:>17}" if detail else f" {line}")
    return out


def _summary_block(iface: DmvpnInterfaceView) -> list[str]:
    lines = [
        f"Interface: {iface.interface}, IPv4 NHRP Details ",
        f"Type:{iface.type}, NHRP Peers:{len(iface.peers)}, ",
        "",
    ]
    lines += HEADER
    for peer in iface.peers:
        lines += _rows(peer, detail=False)
    return [*lines, ""]


def _detail_block(iface: DmvpnInterfaceView) -> list[str]:
    """The detail layout as IOS 15 prints it (from Cisco documentation
    examples; no genieparser sample exists for it)."""
    lines = [
        f'Interface {iface.interface} is up/up, Addr. is {iface.address}, VRF "" ',
        f'   Tunnel Src./Dest. addr: {iface.source}/MGRE, Tunnel VRF ""',
        f'   Protocol/Transport: "multi-GRE/IP", Protect "{iface.protection or ""}" ',
        "   Interface State Control: Disabled",
        "",
    ]
    if iface.nhs:
        lines += ["IPv4 NHS:", *(nhs_line(n) for n in iface.nhs)]
    lines += [f"Type:{iface.type}, Total NBMA Peers (v4/v6): {len(iface.peers)}", "", *DETAIL_HEADER]
    for peer in iface.peers:
        lines += _rows(peer, detail=True)
    return [*lines, ""]


def render_text(interfaces: Sequence[DmvpnInterfaceView], detail: bool = False) -> str:
    """``show dmvpn`` (or ``show dmvpn detail``) for these interfaces."""
    lines = ["", *LEGEND, ""]
    for iface in interfaces:
        lines += _detail_block(iface) if detail else _summary_block(iface)
    return "\n".join(lines) + "\n"


def _row_json(row: DmvpnRowView) -> dict[str, str]:
    return {"state": row.state, "time": _time(row.updn)}


def render_json(interfaces: Sequence[DmvpnInterfaceView]) -> dict[str, Any]:
    """genieparser's ``ShowDmvpn`` schema: interfaces -> ent -> peers ->
    tunnel_addr -> attrb -> {state, time}."""
    out: dict[str, Any] = {}
    for iface in interfaces:
        block: dict[str, Any] = {"nhrp_peers": len(iface.peers), "type": iface.type}
        for peer in iface.peers:
            ent = block.setdefault("ent", {}).setdefault(str(len(peer.rows)), {})
            tunnels = ent.setdefault("peers", {}).setdefault(peer.nbma, {}).setdefault("tunnel_addr", {})
            for row in peer.rows:
                tunnels.setdefault(row.tunnel, {}).setdefault("attrb", {})[row.attrb] = _row_json(row)
        out[iface.interface] = block
    return {"interfaces": out} if out else {}
