"""``show crypto session [detail]``: one block per (interface, peer) with its
IKE SAs and IPsec flows; IOS-XE text and JSON (genieparser's
``ShowCryptoSession`` schema, plus raw numbers)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dmvpn.show.iosfmt import hms, or_none, uptime_text
from dmvpn.show.views import CryptoSessionView, IdentView, SessionFlowView, SessionIkeSaView

HEADER = "Crypto session current status"
DETAIL_LEGEND = (
    "Code: C - IKE Configuration mode, D - Dead Peer Detection",
    "K - Keepalives, N - NAT-traversal, T - cTCP encapsulation",
    "X - IKE Extended Authentication, F - IKE Fragmentation",
    "R - IKE Auto Reconnect, U - IKE Dynamic Route Update",
    "S - SIP VPN",
)
_HOST_MASKS = ("255.255.255.255", "128")


def flow_text(flow: SessionFlowView) -> str:
    """``permit 47 host 172.17.3.1 host 172.17.3.2``: the proxy pair as IOS
    prints it (protocol 0 is ``ip``/``ipv6``; a host mask prints ``host``)."""
    ipv6 = ":" in flow.local.addr
    proto = str(flow.protocol) if flow.protocol else ("ipv6" if ipv6 else "ip")
    return f"{flow.action} {proto} {_proxy(flow.local)} {_proxy(flow.remote)}"


def _proxy(ident: IdentView) -> str:
    return f"host {ident.addr}" if ident.mask in _HOST_MASKS else f"{ident.addr}/{ident.mask}"


def select(sessions: Sequence[CryptoSessionView], remote: str | None = None) -> list[CryptoSessionView]:
    """The sessions ``show crypto session [remote ADDR]`` lists."""
    return [s for s in sessions if remote is None or s.peer == remote]


def _life(kb: int | None, sec: int) -> str:
    return f"{kb if kb is not None else 'KB Vol Rekey Disabled'}/{sec}"


def render_text(sessions: Sequence[CryptoSessionView], detail: bool = False) -> str:
    lines = [HEADER, ""]
    if detail:
        lines += [*DETAIL_LEGEND, ""]
    for s in sessions:
        lines += _session_lines(s, detail)
        lines.append("")
    return "\n".join(lines) + "\n"


def _session_lines(s: CryptoSessionView, detail: bool) -> list[str]:
    lines = [f"Interface: {s.interface}"]
    for label, value in (
        ("Username", s.username),
        ("Profile", s.profile),
        ("Group", s.group),
        ("Assigned address", s.assigned_address),
    ):
        if value is not None:
            lines.append(f"{label}: {value}")
    if detail and s.uptime_sec is not None:
        lines.append(f"Uptime: {uptime_text(s.uptime_sec)}")
    lines.append(f"Session status: {s.status}")
    if detail:
        lines.append(f"Peer: {s.peer} port {s.peer_port} fvrf: {or_none(s.fvrf)} ivrf: {or_none(s.ivrf)}")
        lines.append(f"      Phase1_id: {or_none(s.phase1_id)}")
        lines.append(f"      Desc: {or_none(s.desc)}")
    else:
        lines.append(f"Peer: {s.peer} port {s.peer_port}")
    for sa in s.ike_sas:
        lines += _ike_lines(sa, detail)
    for flow in s.flows:
        lines.append(f"  IPSEC FLOW: {flow_text(flow)}")
        lines.append(f"        Active SAs: {flow.active_sas}, origin: {flow.origin}")
        if detail:
            lines.append(
                f"        Inbound:  #pkts dec'ed {flow.inbound_pkts} drop {flow.inbound_drop} "
                f"life (KB/Sec) {_life(flow.inbound_kb, flow.inbound_sec)}"
            )
            lines.append(
                f"        Outbound: #pkts enc'ed {flow.outbound_pkts} drop {flow.outbound_drop} "
                f"life (KB/Sec) {_life(flow.outbound_kb, flow.outbound_sec)}"
            )
    return lines


def _ike_lines(sa: SessionIkeSaView, detail: bool) -> list[str]:
    lines = [] if sa.session_id is None else [f"  Session ID: {sa.session_id}"]
    state = "Active" if sa.active else "Inactive"
    local = f"  {sa.version} SA: local {sa.local}/{sa.local_port}"
    remote = f"remote {sa.remote}/{sa.remote_port} {state}"
    if ":" in sa.local:
        lines += [local, f"          {remote}"]
    else:
        lines.append(f"{local} {remote}")
    if detail:
        caps = sa.capabilities or "(none)"
        lines.append(f"          Capabilities:{caps} connid:{sa.conn_id} lifetime:{hms(sa.lifetime_sec)}")
    return lines


def render_json(sessions: Sequence[CryptoSessionView], detail: bool = False) -> dict[str, Any]:
    """``{"interface": {NAME: {..., "peer": {ADDR: {"port": {PORT: {...}}}}}}}``
    (genieparser's shape; string ids and ports as it has them)."""
    out: dict[str, Any] = {}
    for s in sessions:
        iface = out.setdefault(s.interface, {})
        for key, value in (
            ("user_name", s.username),
            ("profile", s.profile),
            ("group", s.group),
            ("assigned_address", s.assigned_address),
        ):
            if value is not None:
                iface[key] = value
        if s.uptime_sec is not None:
            iface["uptime"] = uptime_text(s.uptime_sec)
            iface["uptime_sec"] = s.uptime_sec
        iface["session_status"] = s.status
        port: dict[str, Any] = {}
        if detail:
            port["fvrf"] = s.fvrf or "none"
            port["ivrf"] = s.ivrf or "none"
            port["phase1_id"] = or_none(s.phase1_id)
            port["desc"] = s.desc or "none"
        if s.ike_sas:
            port["ike_sa"] = {str(i): _ike_json(sa, detail) for i, sa in enumerate(s.ike_sas, start=1)}
        if s.flows:
            port["ipsec_flow"] = {flow_text(f): _flow_json(f, detail) for f in s.flows}
        iface.setdefault("peer", {}).setdefault(s.peer, {"port": {}})["port"][str(s.peer_port)] = port
    return {"interface": out} if out else {}


def _ike_json(sa: SessionIkeSaView, detail: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "local": sa.local,
        "local_port": str(sa.local_port),
        "remote": sa.remote,
        "remote_port": str(sa.remote_port),
        "sa_status": "Active" if sa.active else "Inactive",
        "version": sa.version,
    }
    if sa.session_id is not None:
        out["session_id"] = str(sa.session_id)
    if detail:
        out["capabilities"] = sa.capabilities or "none"
        out["conn_id"] = str(sa.conn_id)
        out["lifetime"] = hms(sa.lifetime_sec)
        out["lifetime_sec"] = sa.lifetime_sec
    return out


def _flow_json(flow: SessionFlowView, detail: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"active_sas": flow.active_sas, "origin": flow.origin}
    if detail:
        out.update(
            {
                "inbound_pkts_decrypted": flow.inbound_pkts,
                "inbound_pkts_drop": flow.inbound_drop,
                "inbound_life_kb": str(flow.inbound_kb) if flow.inbound_kb is not None else "KB Vol Rekey Disabled",
                "inbound_life_secs": str(flow.inbound_sec),
                "outbound_pkts_encrypted": flow.outbound_pkts,
                "outbound_pkts_drop": flow.outbound_drop,
                "outbound_life_kb": str(flow.outbound_kb)
                if flow.outbound_kb is not None
                else "KB Vol Rekey Disabled",
                "outbound_life_secs": str(flow.outbound_sec),
            }
        )
    return out
