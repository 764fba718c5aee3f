"""``show crypto ipsec sa [peer A | interface I] [detail]``: IOS-XE text and JSON.

The layout is IOS-XE 16.x's, line for line (the seed's
``hub_show_crypto_ipsec_sa_peer.txt``); the JSON has genieparser's
``ShowCryptoIpsecSaDetail`` schema and key names, with the raw numbers
added next to IOS's strings (``spi_value``, ``remaining_kb``,
``remaining_sec``, ``replay_window_size``) and, per SA, its ``history``:
state, who started its Quick Mode and why, the SPI it replaced, the bytes it
carried (what answers "why does my hub show six SPIs for one spoke?").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from dmvpn.show.iosfmt import or_none, spi_text, yes_no
from dmvpn.show.views import (
    IdentView,
    IpsecFlowCounters,
    IpsecFlowView,
    IpsecInterfaceView,
    IpsecSaView,
    LifetimeStyle,
)

#: The six SA lists of a flow, in IOS order: (heading, genie key, view attribute).
SA_LISTS: tuple[tuple[str, str, str], ...] = (
    ("inbound esp sas:", "inbound_esp_sas", "inbound_esp"),
    ("inbound ah sas:", "inbound_ah_sas", "inbound_ah"),
    ("inbound pcp sas:", "inbound_pcp_sas", "inbound_pcp"),
    ("outbound esp sas:", "outbound_esp_sas", "outbound_esp"),
    ("outbound ah sas:", "outbound_ah_sas", "outbound_ah"),
    ("outbound pcp sas:", "outbound_pcp_sas", "outbound_pcp"),
)


def select(
    interfaces: Iterable[IpsecInterfaceView], peer: str | None = None, interface: str | None = None
) -> list[IpsecInterfaceView]:
    """The interfaces (and, with ``peer``, only the flows to that peer) that
    ``show crypto ipsec sa peer A`` / ``interface I`` lists; an interface left
    without flows is not printed."""
    chosen: list[IpsecInterfaceView] = []
    for view in interfaces:
        if interface is not None and view.name.lower() != interface.lower():
            continue
        if peer is not None:
            flows = tuple(f for f in view.flows if f.peer == peer)
            if not flows:
                continue
            view = replace(view, flows=flows)
        chosen.append(view)
    return chosen


# --------------------------------------------------------------------- text


def render_text(interfaces: Sequence[IpsecInterfaceView], detail: bool = False) -> str:
    """The command's output; empty when there is nothing to list."""
    if not interfaces:
        return ""
    lines: list[str] = [""]
    for view in interfaces:
        lines.append(f"interface: {view.name}")
        lines.append(f"    Crypto map tag: {view.crypto_map_tag}, local addr {view.local_addr}")
        lines.append("")
        if view.ipsecv6_policy_name is not None:
            lines.append(f"   IPsecv6 policy name: {view.ipsecv6_policy_name}")
            lines.append("")
        for flow in view.flows:
            lines.extend(_flow_lines(flow, detail))
            lines.append("")
    return "\n".join(lines) + "\n"


def _ident(ident: IdentView) -> str:
    return f"({ident.addr}/{ident.mask}/{ident.prot}/{ident.port})"


def _counter_lines(c: IpsecFlowCounters, detail: bool) -> list[str]:
    lines = [
        f"    #pkts encaps: {c.encaps}, #pkts encrypt: {c.encrypt}, #pkts digest: {c.digest}",
        f"    #pkts decaps: {c.decaps}, #pkts decrypt: {c.decrypt}, #pkts verify: {c.verify}",
        f"    #pkts compressed: {c.compressed}, #pkts decompressed: {c.decompressed}",
        f"    #pkts not compressed: {c.not_compressed}, #pkts compr. failed: {c.compr_failed}",
        f"    #pkts not decompressed: {c.not_decompressed}, #pkts decompress failed: {c.decompress_failed}",
    ]
    if not detail:
        lines.append(f"    #send errors {c.send_errors}, #recv errors {c.recv_errors}")
        return lines
    lines += [
        f"    #pkts no sa (send) {c.no_sa_send}, #pkts invalid sa (rcv) {c.invalid_sa_rcv}",
        f"    #pkts encaps failed (send) {c.encaps_failed_send}, #pkts decaps failed (rcv) {c.decaps_failed_rcv}",
        f"    #pkts invalid prot (recv) {c.invalid_prot_recv}, #pkts verify failed: {c.verify_failed}",
        f"    #pkts invalid identity (recv) {c.invalid_identity_recv}, #pkts invalid len (rcv) {c.invalid_len_rcv}",
        f"    #pkts replay rollover (send): {c.replay_rollover_send}, "
        f"#pkts replay rollover (rcv) {c.replay_rollover_rcv}",
        f"    ##pkts replay failed (rcv): {c.replay_failed_rcv}",
        f"    #pkts tagged (send): {c.tagged_send}, #pkts untagged (rcv): {c.untagged_rcv}",
        f"    #pkts not tagged (send): {c.not_tagged_send}, #pkts not untagged (rcv): {c.not_untagged_rcv}",
        f"    #pkts internal err (send): {c.internal_err_send}, #pkts internal err (recv) {c.internal_err_recv}",
    ]
    return lines


def _pfs_line(flow: IpsecFlowView) -> str:
    text = f"     PFS (Y/N): {yes_no(flow.pfs)}, DH group: {flow.dh_group}"
    if flow.pqc is not None:
        text += f", PQC Key Exchange: {flow.pqc}"
    return text


def _flow_lines(flow: IpsecFlowView, detail: bool) -> list[str]:
    ipv6 = ":" in flow.local_endpoint
    lines = [
        f"   protected vrf: {or_none(flow.protected_vrf)}",
        f"   local  ident (addr/mask/prot/port): {_ident(flow.local_ident)}",
        f"   remote ident (addr/mask/prot/port): {_ident(flow.remote_ident)}",
        f"   current_peer {flow.peer} port {flow.peer_port}",
        f"     {flow.action}, flags={{{flow.flags}}}",
    ]
    lines += _counter_lines(flow.counters, detail)
    lines.append("")
    if ipv6:
        lines.append(f"     local crypto endpt.: {flow.local_endpoint},")
        lines.append(f"     remote crypto endpt.: {flow.remote_endpoint}")
        ip = "ipv6"
    else:
        lines.append(
            f"     local crypto endpt.: {flow.local_endpoint}, remote crypto endpt.: {flow.remote_endpoint}"
        )
        ip = "ip"
    lines.append(
        f"     plaintext mtu {flow.plaintext_mtu}, path mtu {flow.path_mtu}, "
        f"{ip} mtu {flow.ip_mtu}, {ip} mtu idb {flow.ip_mtu_idb}"
    )
    lines.append(f"     current outbound spi: {spi_text(flow.current_outbound_spi)}")
    lines.append(_pfs_line(flow))
    lines.append("")
    for index, (heading, _key, attr) in enumerate(SA_LISTS):
        lines.append(f"     {heading}")
        for sa in getattr(flow, attr):
            lines.extend(_sa_lines(sa))
        if index < len(SA_LISTS) - 1:
            lines.append("")
    return lines


def _settings(sa: IpsecSaView) -> str:
    return f"{sa.mode}, {'esn' if sa.esn else ''}"


def _timing_lines(sa: IpsecSaView) -> list[str]:
    if sa.remaining_kb is not None:
        return [f"        sa timing: remaining key lifetime (k/sec): ({sa.remaining_kb}/{sa.remaining_sec})"]
    if sa.lifetime_style is LifetimeStyle.HOURS_MINS:
        hours, mins = sa.remaining_sec // 3600, sa.remaining_sec % 3600 // 60
        first = f"        sa timing: remaining key lifetime {hours} hours, {mins} mins"
    else:
        first = f"        sa timing: remaining key lifetime (sec): {sa.remaining_sec}"
    return [first, "        Kilobyte Volume Rekey has been disabled"]


def _sa_lines(sa: IpsecSaView) -> list[str]:
    conn = (
        f"        conn id: {sa.conn_id}, flow_id: {sa.flow_engine}:{sa.flow_id}, "
        f"sibling_flags {sa.sibling_flags:016X}, crypto map: {sa.crypto_map}"
    )
    if sa.initiator is not None:
        conn += f", initiator : {sa.initiator}"
    lines = [
        f"      spi: {spi_text(sa.spi)}",
        f"        transform: {sa.transform} ,",
        f"        in use settings ={{{_settings(sa)}}}",
        conn,
    ]
    lines += _timing_lines(sa)
    if sa.iv_size is not None:
        lines.append(f"        IV size: {sa.iv_size} bytes")
    replay = f"        replay detection support: {yes_no(sa.replay_detection)}"
    if sa.replay_window is not None:
        replay += f"  replay window size: {sa.replay_window}"
    lines.append(replay)
    lines.append(f"        Status: {sa.status}")
    return lines


# --------------------------------------------------------------------- JSON


def render_json(interfaces: Sequence[IpsecInterfaceView]) -> dict[str, Any]:
    """The same values as a dict shaped like genieparser's schema (ident
    blocks numbered from 1 per interface, SAs keyed by IOS's SPI text)."""
    out: dict[str, Any] = {}
    for view in interfaces:
        entry: dict[str, Any] = {
            "crypto_map_tag": view.crypto_map_tag,
            "local_addr": view.local_addr,
            "ident": {str(i): _flow_json(f) for i, f in enumerate(view.flows, start=1)},
        }
        if view.ipsecv6_policy_name is not None:
            entry["ipsecv6_policy_name"] = view.ipsecv6_policy_name
        out[view.name] = entry
    return {"interface": out} if out else {}


def _ident_json(ident: IdentView) -> dict[str, str]:
    return {"addr": ident.addr, "mask": ident.mask, "prot": str(ident.prot), "port": str(ident.port)}


def _counters_json(c: IpsecFlowCounters) -> dict[str, int]:
    names = [
        "encaps", "encrypt", "digest", "decaps", "decrypt", "verify", "compressed", "decompressed",
        "not_compressed", "compr_failed", "not_decompressed", "decompress_failed", "no_sa_send",
        "invalid_sa_rcv", "encaps_failed_send", "decaps_failed_rcv", "invalid_prot_recv", "verify_failed",
        "invalid_identity_recv", "invalid_len_rcv", "replay_rollover_send", "replay_rollover_rcv",
        "replay_failed_rcv", "tagged_send", "untagged_rcv", "not_tagged_send", "not_untagged_rcv",
        "internal_err_send", "internal_err_recv",
    ]
    out = {f"pkts_{n}": getattr(c, n) for n in names}
    out["send_errors"] = c.send_errors
    out["recv_errors"] = c.recv_errors
    return out


def _flow_json(flow: IpsecFlowView) -> dict[str, Any]:
    out: dict[str, Any] = {
        "protected_vrf": or_none(flow.protected_vrf),
        "local_ident": _ident_json(flow.local_ident),
        "remote_ident": _ident_json(flow.remote_ident),
        "peer_ip": flow.peer,
        "port": flow.peer_port,
        "action": flow.action,
        "acl": flow.flags,
    }
    out.update(_counters_json(flow.counters))
    out.update(
        {
            "local_crypto_endpt": flow.local_endpoint,
            "remote_crypto_endpt": flow.remote_endpoint,
            "plaintext_mtu": flow.plaintext_mtu,
            "path_mtu": flow.path_mtu,
            "ip_mtu": flow.ip_mtu,
            "ip_mtu_idb": flow.ip_mtu_idb,
            "current_outbound_spi": spi_text(flow.current_outbound_spi),
            "current_outbound_spi_value": flow.current_outbound_spi,
            "pfs": yes_no(flow.pfs),
            "dh_group": flow.dh_group,
        }
    )
    if flow.pqc is not None:
        out["pqc"] = flow.pqc
    for _heading, key, attr in SA_LISTS:
        sas = getattr(flow, attr)
        out[key] = {"spi": {spi_text(sa.spi): _sa_json(sa) for sa in sas}} if sas else {}
    return out


def _sa_json(sa: IpsecSaView) -> dict[str, Any]:
    if sa.remaining_kb is not None:
        remaining = f"({sa.remaining_kb}/{sa.remaining_sec})"
    elif sa.lifetime_style is LifetimeStyle.HOURS_MINS:
        remaining = f"{sa.remaining_sec // 3600} hours, {sa.remaining_sec % 3600 // 60} mins"
    else:
        remaining = str(sa.remaining_sec)
    out: dict[str, Any] = {
        "spi_value": sa.spi,
        "transform": sa.transform,
        "in_use_settings": _settings(sa),
        "mode": sa.mode,
        "esn": sa.esn,
        "conn_id": sa.conn_id,
        "flow_id": sa.flow_engine,
        "flow_id_val": sa.flow_id,
        "sibling_flags": f"{sa.sibling_flags:016X}",
        "crypto_map": sa.crypto_map,
        "remaining_key_lifetime": remaining,
        "remaining_kb": sa.remaining_kb,
        "remaining_sec": sa.remaining_sec,
        "replay_detection_support": yes_no(sa.replay_detection),
        "status": sa.status,
    }
    if sa.initiator is not None:
        out["initiator_flag"] = str(sa.initiator)
    if sa.remaining_kb is None:
        out["kilobyte_volume_rekey"] = "disabled"
    if sa.iv_size is not None:
        out["iv_size"] = f"{sa.iv_size} bytes"
    if sa.replay_window is not None:
        out["replay_window_size"] = sa.replay_window
    if sa.history is not None:
        h = sa.history
        out["history"] = {
            "state": h.state,
            "initiator": h.initiator,
            "reason": h.reason,
            "replaces_spi": spi_text(h.replaces_spi) if h.replaces_spi is not None else None,
            "bytes": h.bytes,
            "idle": h.idle,
        }
    return out
