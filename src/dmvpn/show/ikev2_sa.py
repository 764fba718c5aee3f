"""``show crypto ikev2 sa [detail]`` and ``show crypto ikev2 session
[detailed]``: IOS-XE's text and JSON in genieparser's schemas
(``ShowCryptoIkev2Sa``, ``ShowCryptoIkev2SaDetail``,
``ShowCryptoIkev2Session``), from :mod:`dmvpn.show.ikev2_views`.

The layout is IOS-XE's: a ``Tunnel-id Local Remote fvrf/ivrf Status`` row
per IKE SA, then indented algorithm and lifetime lines, and in the detail
form the SPIs, identities, message-ID windows (RFC 7296 2.3), DPD and NAT-T
state."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dmvpn.show.ikev2_views import Ikev2SaView, Ikev2SessionView

TABLE_HEADER = "Tunnel-id Local                 Remote                fvrf/ivrf            Status "
_INDENT = "      "


def _families(sas: Sequence[Ikev2SaView]) -> tuple[list[Ikev2SaView], list[Ikev2SaView]]:
    return [s for s in sas if not s.ipv6], [s for s in sas if s.ipv6]


def _row(sa: Ikev2SaView) -> list[str]:
    vrfs = f"{sa.fvrf}/{sa.ivrf}"
    if sa.ipv6:
        return [
            f"{sa.tunnel_id:<10}{vrfs:<21}{sa.status}",
            f"Local  {sa.local_ip}/{sa.local_port}",
            f"Remote {sa.remote_ip}/{sa.remote_port}",
        ]
    local, remote = f"{sa.local_ip}/{sa.local_port}", f"{sa.remote_ip}/{sa.remote_port}"
    return [f"{sa.tunnel_id:<10}{local:<22}{remote:<22}{vrfs:<21}{sa.status}"]


def _algorithms(sa: Ikev2SaView) -> list[str]:
    return [
        f"{_INDENT}Encr: {sa.encryption}, keysize: {sa.keysize}, PRF: {sa.prf}, Hash: {sa.hash}, "
        f"DH Grp:{sa.dh_group}, Auth sign: {sa.auth_sign}, Auth verify: {sa.auth_verify}",
        f"{_INDENT}Life/Active Time: {sa.life_time}/{sa.active_time} sec",
    ]


def _pair(left: str, lval: int, right: str, rval: int) -> str:
    return f"{_INDENT}{left:<19}{lval:<15}{right:<20}{rval}"


def _detail(sa: Ikev2SaView) -> list[str]:
    nat = f"NAT-T is {sa.nat_t}"
    return [
        f"{_INDENT}CE id: {sa.ce_id}, Session-id: {sa.session_id}",
        f"{_INDENT}Status Description: {sa.status_description}",
        f"{_INDENT}Local spi: {sa.local_spi.hex().upper()}       Remote spi: {sa.remote_spi.hex().upper()}",
        f"{_INDENT}Local id: {sa.local_id}",
        f"{_INDENT}Remote id: {sa.remote_id}",
        _pair("Local req msg id:", sa.local_req_msg_id, "Remote req msg id:", sa.remote_req_msg_id),
        _pair("Local next msg id:", sa.local_next_msg_id, "Remote next msg id:", sa.remote_next_msg_id),
        _pair("Local req queued:", sa.local_req_queued, "Remote req queued:", sa.remote_req_queued),
        _pair("Local window:", sa.local_window, "Remote window:", sa.remote_window),
        f"{_INDENT}DPD configured for {sa.dpd_interval} seconds, retry {sa.dpd_retry}",
        f"{_INDENT}Fragmentation not  configured.",
        f"{_INDENT}Dynamic Route Update: disabled",
        f"{_INDENT}Extended Authentication not configured.",
        f"{_INDENT}{nat}",
        f"{_INDENT}Cisco Trust Security SGT is disabled",
        f"{_INDENT}Initiator of SA : {'Yes' if sa.initiator else 'No'}",
    ]


def render_sa_text(sas: Sequence[Ikev2SaView], detail: bool = False) -> str:
    """``show crypto ikev2 sa [detail]``: IPv4 SAs, then IPv6 SAs."""
    lines: list[str] = []
    for family, rows in zip(("IPv4", "IPv6"), _families(sas), strict=True):
        lines += [f" {family} Crypto IKEv2  SA ", ""]
        if rows:
            lines.append(TABLE_HEADER)
        for sa in rows:
            lines += _row(sa) + _algorithms(sa) + (_detail(sa) if detail else [])
            lines.append("")
    return "\n".join(lines) + "\n"


def _sa_json(sa: Ikev2SaView) -> dict[str, Any]:
    return {
        "tunnel_id": sa.tunnel_id,
        "local_ip": sa.local_ip,
        "local_port": sa.local_port,
        "remote_ip": sa.remote_ip,
        "remote_port": sa.remote_port,
        "fvrf": sa.fvrf,
        "ivrf": sa.ivrf,
        "status": sa.status,
        "encryption": sa.encryption,
        "keysize": sa.keysize,
        "prf": sa.prf,
        "hash": sa.hash,
        "dh_group": sa.dh_group,
        "auth_sign": sa.auth_sign,
        "auth_verify": sa.auth_verify,
        "life_time": sa.life_time,
        "active_time": sa.active_time,
    }


def _detail_json(sa: Ikev2SaView) -> dict[str, Any]:
    """genieparser's ShowCryptoIkev2SaDetail keys (it lowercases the values)."""
    out: dict[str, Any] = {
        "local": f"{sa.local_ip}/{sa.local_port}",
        "remote": f"{sa.remote_ip}/{sa.remote_port}",
        "fvrf": sa.fvrf,
        "ivrf": sa.ivrf,
        "status": sa.status,
        "encryption": sa.encryption,
        "keysize": sa.keysize,
        "prf": sa.prf,
        "hash": sa.hash,
        "dh_grp": sa.dh_group,
        "auth_sign": sa.auth_sign,
        "auth_verify": sa.auth_verify,
        "life_time": sa.life_time,
        "active_time": sa.active_time,
        "ce_id": sa.ce_id,
        "session_id": sa.session_id,
        "status_description": sa.status_description,
        "local_spi": sa.local_spi.hex().upper(),
        "remote_spi": sa.remote_spi.hex().upper(),
        "local_id": sa.local_id,
        "remote_id": sa.remote_id,
        "local_reg_msg_id": sa.local_req_msg_id,  # sic: genieparser's key
        "remote_req_msg_id": sa.remote_req_msg_id,
        "local_next_msg_id": sa.local_next_msg_id,
        "remote_next_msg_id": sa.remote_next_msg_id,
        "local_req_queued": sa.local_req_queued,
        "remote_req_queued": sa.remote_req_queued,
        "local_window": sa.local_window,
        "remote_window": sa.remote_window,
        "dpd_configured_time": sa.dpd_interval,
        "retry": sa.dpd_retry,
        "fragmentation": "not  configured",
        "dynamic_route_update": "disabled",
        "extended_authentication": "not configured",
        "nat_t": sa.nat_t,
        "cisco_trust_security_sgt": "disabled",
        "initiator_of_sa": "yes" if sa.initiator else "no",
        "remote_subnets": [],  # networks pushed by mode config (RFC 7296 3.15): none
    }
    return {k: v.lower() if isinstance(v, str) and k not in ("local_spi", "remote_spi") else v for k, v in out.items()}


def render_sa_json(sas: Sequence[Ikev2SaView], detail: bool = False) -> dict[str, Any]:
    """``{"ipv4": {"1": {...}}, "ipv6": {}}`` (ShowCryptoIkev2Sa), or with
    ``detail`` ``{"tunnel_id": {"1": {...}}}`` (ShowCryptoIkev2SaDetail)."""
    if detail:
        return {"tunnel_id": {str(sa.tunnel_id): _detail_json(sa) for sa in sas}} if sas else {}
    v4, v6 = _families(sas)
    return {
        "ipv4": {str(sa.tunnel_id): _sa_json(sa) for sa in v4},
        "ipv6": {str(sa.tunnel_id): _sa_json(sa) for sa in v6},
    }


def _child_lines(s: Ikev2SessionView) -> list[str]:
    lines = []
    for c in s.children:
        lines += [
            f"Child sa: local selector  {c.local_selector}",
            f"          remote selector {c.remote_selector}",
            f"          ESP spi in/out: 0x{c.esp_spi_in:X}/0x{c.esp_spi_out:X}",
        ]
    return lines


def render_session_text(sessions: Sequence[Ikev2SessionView]) -> str:
    """``show crypto ikev2 session``: per session its counts, its IKE SA
    row with algorithms, then its CHILD_SAs' selectors and SPIs."""
    lines: list[str] = []
    for family in ("IPv4", "IPv6"):
        rows = [s for s in sessions if s.sa.ipv6 == (family == "IPv6")]
        lines += [f" {family} Crypto IKEv2 Session ", ""]
        for s in rows:
            lines += [
                f"Session-id:{s.session_id}, Status:{s.status}, IKE count:1, CHILD count:{len(s.children)}",
                "",
                TABLE_HEADER,
                *_row(s.sa),
                *_algorithms(s.sa),
                *_child_lines(s),
                "",
            ]
    return "\n".join(lines) + "\n"


def _session_json(s: Ikev2SessionView) -> dict[str, Any]:
    sa = s.sa
    out: dict[str, Any] = {
        "session_id": s.session_id,
        "status": s.status,
        "ike_count": 1,
        "child_count": len(s.children),
        "tunnel_id": sa.tunnel_id,
        "local_ip": sa.local_ip,
        "local_port": sa.local_port,
        "remote_ip": sa.remote_ip,
        "remote_port": sa.remote_port,
        "fvrf": sa.fvrf,
        "ivrf": sa.ivrf,
        "session_status": sa.status,
        "encryption": sa.encryption,
        "key_length": sa.keysize,
        "prf": sa.prf,
        "hash_algo": sa.hash,
        "dh_group": sa.dh_group,
        "auth_sign": sa.auth_sign,
        "auth_verify": sa.auth_verify,
        "lifetime": sa.life_time,
        "activetime": sa.active_time,
    }
    if s.children:
        out["child_sa"] = {
            str(i): {
                "local_selectors": [c.local_selector],
                "remote_selectors": [c.remote_selector],
                "esp_spi_in": f"0x{c.esp_spi_in:X}",
                "esp_spi_out": f"0x{c.esp_spi_out:X}",
            }
            for i, c in enumerate(s.children, 1)
        }
    return out


def render_session_json(sessions: Sequence[Ikev2SessionView]) -> dict[str, Any]:
    """``{"ikev2_session": {"IPv4": {"1": {...}}}}`` (ShowCryptoIkev2Session);
    sessions are numbered from 1 per family, as genieparser numbers them."""
    out: dict[str, Any] = {}
    for family in ("IPv4", "IPv6"):
        rows = [s for s in sessions if s.sa.ipv6 == (family == "IPv6")]
        if rows:
            out[family] = {str(i): _session_json(s) for i, s in enumerate(rows, 1)}
    return {"ikev2_session": out} if out else {}
