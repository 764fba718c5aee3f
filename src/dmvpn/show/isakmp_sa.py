"""``show crypto isakmp sa [detail]``: the IKEv1 phase-1 SA table (RFC 2409
section 5), IOS-XE text and JSON (genieparser's ``ShowCryptoIsakmpSa`` /
``ShowCryptoIsakmpSaDetail`` schema, plus the raw lifetime)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dmvpn.show.iosfmt import hms
from dmvpn.show.views import IsakmpSaView

DETAIL_LEGEND = (
    "Codes: C - IKE configuration mode, D - Dead Peer Detection",
    "       K - Keepalives, N - NAT-traversal",
    "       T - cTCP encapsulation, X - IKE Extended Authentication",
    "       psk - Preshared key, rsig - RSA signature",
    "       renc - RSA encryption",
)
SHORT_HEADER = "dst             src             state          conn-id status"
DETAIL_HEADER = "C-id  Local           Remote          I-VRF  Status Encr Hash   Auth DH Lifetime Cap."


def _families(sas: Sequence[IsakmpSaView]) -> tuple[list[IsakmpSaView], list[IsakmpSaView]]:
    return [s for s in sas if not s.ipv6], [s for s in sas if s.ipv6]


def _status(sa: IsakmpSaView) -> str:
    return f"{sa.status} (deleted)" if sa.deleted else sa.status


def render_text(sas: Sequence[IsakmpSaView], detail: bool = False) -> str:
    """The table: IPv4 SAs, then IPv6 SAs, each under its heading."""
    v4, v6 = _families(sas)
    lines: list[str] = list(DETAIL_LEGEND) if detail else []
    for family, rows in (("IPv4", v4), ("IPv6", v6)):
        lines.append(f"{family} Crypto ISAKMP SA")
        if detail:
            if family == "IPv4" or rows:
                lines += ["", DETAIL_HEADER, ""]
            for sa in rows:
                lines += _detail_row(sa)  # each row ends with a blank line
        else:
            if family == "IPv4" or rows:
                lines.append(SHORT_HEADER)
            lines += [f"{sa.dst:<15} {sa.src:<15} {sa.state.value:<15}{sa.conn_id:>7} {_status(sa)}" for sa in rows]
        if not (detail and rows):
            lines.append("")
    return "\n".join(lines) + "\n"


def _detail_row(sa: IsakmpSaView) -> list[str]:
    row = (
        f"{sa.conn_id:<5} {sa.local:<15} {sa.remote:<15} {sa.ivrf or '':<6} {sa.status:<6} "
        f"{sa.encryption:<4} {sa.hash:<6} {sa.auth:<4} {sa.dh_group:<2} {hms(sa.lifetime_sec)} {sa.capabilities}"
    )
    engine = f"{sa.engine_id}:{sa.engine_conn_id}" if sa.engine_conn_id is not None else "????"
    return [row.rstrip(), f"       Engine-id:Conn-id =  {engine}", ""]


def render_json(sas: Sequence[IsakmpSaView], detail: bool = False) -> dict[str, Any]:
    """``{"isakmp_stats": {"IPv4": {"1": {...}}, "IPv6": ...}}`` with the
    columns of the short or the detail table (genieparser's keys: in the
    detail form ``conn_id`` is the crypto engine's id, ``c_id`` the SA's);
    a family without SAs is left out, as genieparser does."""
    stats: dict[str, Any] = {}
    row = _detail_json if detail else _short_json
    for family, rows in zip(("IPv4", "IPv6"), _families(sas), strict=True):
        if rows:
            stats[family] = {str(i): row(sa) for i, sa in enumerate(rows, start=1)}
    return {"isakmp_stats": stats} if stats else {}


def _short_json(sa: IsakmpSaView) -> dict[str, Any]:
    out: dict[str, Any] = {
        "destination": sa.dst,
        "source": sa.src,
        "session_state": sa.state.value,
        "conn_id": sa.conn_id,
        "status": sa.status,
    }
    if sa.deleted:
        out["current_status"] = "deleted"
    return out


def _detail_json(sa: IsakmpSaView) -> dict[str, Any]:
    out: dict[str, Any] = {
        "c_id": sa.conn_id,
        "local_ip": sa.local,
        "remote_ip": sa.remote,
        "status": sa.status,
        "encr_algo": sa.encryption,
        "hash_algo": sa.hash,
        "auth_type": sa.auth,
        "dh_group": sa.dh_group,
        "lifetime": hms(sa.lifetime_sec),
        "lifetime_sec": sa.lifetime_sec,
        "capabilities": sa.capabilities,
    }
    if sa.ivrf is not None:
        out["ivrf"] = sa.ivrf
    if sa.engine_conn_id is not None:
        out["engine_id"] = sa.engine_id
        out["conn_id"] = sa.engine_conn_id
    return out
