"""Test support for the show renderers: run Cisco's genieparser in-process,
find the oracle fixtures, and build our view dataclasses from genieparser's
expected dicts (so a fixture's values go through our renderer and back
through genieparser).

genieparser is a hard requirement of these tests: if it is missing the
import below fails and the tests fail (never skip)."""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genie.conf.base import Device

from dmvpn.show.views import (
    CryptoSessionView,
    IdentView,
    IpsecFlowCounters,
    IpsecFlowView,
    IpsecInterfaceView,
    IpsecSaView,
    IsakmpSaState,
    IsakmpSaView,
    LifetimeStyle,
    SessionFlowView,
    SessionIkeSaView,
)

ROOT = Path(__file__).resolve().parents[1]
ORACLES = ROOT.parent / "shared" / "oracles" / "cli"
SEED = ROOT.parent / "shared" / "seed"

#: genieparser class name -> the command it parses ({...} from *_arguments.json).
COMMANDS = {
    "ShowCryptoIpsecSaDetail": "show crypto ipsec sa detail",
    "ShowCryptoIpsecSaInterface": "show crypto ipsec sa interface {interface}",
    "ShowCryptoIpsecSaPeerDetail": "show crypto ipsec sa peer {peer_address} detail",
    "ShowCryptoIpsecSaPeer": "show crypto ipsec sa peer {peer_address}",
    "ShowCryptoIpsecSa": "show crypto ipsec sa",
    "ShowCryptoIsakmpSaDetail": "show crypto isakmp sa detail",
    "ShowCryptoIsakmpSa": "show crypto isakmp sa",
    "ShowCryptoSessionRemoteDetail": "show crypto session remote {remote_ip} detail",
    "ShowCryptoSessionDetail": "show crypto session detail",
    "ShowCryptoSession": "show crypto session",
}


@functools.cache
def _device(os_name: str) -> Device:
    dev = Device("dut", os=os_name)
    dev.custom.setdefault("abstraction", {})["order"] = ["os"]
    return dev


def genie_parse(os_name: str, command: str, text: str) -> dict[str, Any]:
    """genieparser's dict for ``text``, normalised through JSON (int keys
    become strings, as in our JSON)."""
    return normalise(_device(os_name).parse(command, output=text))


def normalise(obj: Any) -> Any:
    """Through JSON (int keys become strings, as in our JSON), with dict
    keys stripped: genie's ios session parser keeps the trailing blank IOS
    prints after ``IPSEC FLOW: ...`` in its keys, and we print none."""
    return _strip_keys(json.loads(json.dumps(obj, default=str)))


def _strip_keys(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k.strip(): _strip_keys(v) for k, v in obj.items()}
    return obj


@dataclass(frozen=True)
class Fixture:
    """One genieparser golden sample: its text, expected dict and command."""

    name: str
    os_name: str
    parser: str
    text_path: Path
    expected: dict[str, Any]
    command: str

    def __str__(self) -> str:
        return self.name


def fixtures(area: str) -> list[Fixture]:
    """The genie fixtures of ``area`` (a folder under oracles/cli)."""
    out = []
    for path in sorted((ORACLES / area).glob("genie_*_output.txt")):
        m = re.match(r"genie_(ios|iosxe)_(\w+?)_golden_output(.*)_output\.txt$", path.name)
        assert m, path
        os_name, parser, _ = m.groups()
        base = path.parent / "genie_expected" / path.name.removesuffix("_output.txt")
        args_path = Path(f"{base}_arguments.json")
        args = json.loads(args_path.read_text()) if args_path.exists() else {}
        args.setdefault("remote_ip", "0.0.0.0")
        namespace: dict[str, Any] = {}
        exec(Path(f"{base}_expected.py").read_text(), namespace)
        out.append(
            Fixture(
                path.name.removesuffix("_output.txt"),
                os_name,
                parser,
                path,
                normalise(namespace["expected_output"]),
                COMMANDS[parser].format(**args),
            )
        )
    return out


# ------------------------------------------------------------------ ipsec sa


def _spi(text: str) -> int:
    return int(re.fullmatch(r"0x[0-9A-Fa-f]+\((\d+)\)", text).group(1))


def _lifetime(d: dict[str, Any]) -> tuple[int | None, int, LifetimeStyle]:
    """(remaining KB, remaining s, style) from genie's remaining_key_lifetime,
    whose form depends on the parser: "(KB/S)", "KB/S", "S", "H hours, M
    mins", or just "mins" (its detail parser keeps only the last word)."""
    text = d.get("remaining_key_lifetime", "0")
    if m := re.fullmatch(r"\(?(\d+)/(\d+)\)?", text):
        return int(m.group(1)), int(m.group(2)), LifetimeStyle.SECONDS
    if m := re.fullmatch(r"(\d+) hours, (\d+) mins", text):
        return None, int(m.group(1)) * 3600 + int(m.group(2)) * 60, LifetimeStyle.HOURS_MINS
    if text == "mins":
        return None, 4200, LifetimeStyle.HOURS_MINS
    return None, int(text), LifetimeStyle.SECONDS


def _sa(spi_text: str, d: dict[str, Any]) -> IpsecSaView:
    kb, sec, style = _lifetime(d)
    settings = d.get("in_use_settings", "Tunnel, ")
    mode, _, esn = settings.partition(", ")
    iv = d.get("iv_size")
    initiator = d.get("initiator_flag")
    return IpsecSaView(
        spi=_spi(spi_text),
        transform=d.get("transform", "esp-aes esp-sha256-hmac"),
        mode=mode,
        esn=esn == "esn",
        conn_id=d.get("conn_id", 0),
        flow_engine=d.get("flow_id", "HW"),
        flow_id=d.get("flow_id_val", 0),
        sibling_flags=int(d.get("sibling_flags", "FFFFFFFF80004008"), 16),
        crypto_map=d.get("crypto_map", "x"),
        # genie's detail parser drops the conn id line when it ends with
        # "initiator : X"; a fixture without conn_id had such a line.
        initiator=(initiator == "True") if initiator is not None else (None if "conn_id" in d else False),
        remaining_kb=kb,
        remaining_sec=sec,
        lifetime_style=style,
        iv_size=int(iv.split()[0]) if iv else None,
        replay_detection=d.get("replay_detection_support", "Y") == "Y",
        status=d.get("status", "ACTIVE(ACTIVE)"),
    )


def _ident(d: dict[str, str]) -> IdentView:
    return IdentView(d["addr"], d["mask"], int(d["prot"]), int(d["port"]))


def _counters(d: dict[str, Any]) -> IpsecFlowCounters:
    values = {}
    for name in IpsecFlowCounters.__dataclass_fields__:
        key = name if name in ("send_errors", "recv_errors") else f"pkts_{name}"
        if key in d:
            values[name] = d[key]
    # genie's regex for "#pkts invalid identity (recv) A, #pkts invalid len
    # (rcv) B" stores B as pkts_verify_failed, overwriting the real one.
    if "pkts_verify_failed" in d:
        values["invalid_len_rcv"] = d["pkts_verify_failed"]
    return IpsecFlowCounters(**values)


def _flow(d: dict[str, Any]) -> IpsecFlowView:
    sas = {
        attr: tuple(_sa(k, v) for k, v in d.get(key, {}).get("spi", {}).items())
        for key, attr in (
            ("inbound_esp_sas", "inbound_esp"),
            ("inbound_ah_sas", "inbound_ah"),
            ("inbound_pcp_sas", "inbound_pcp"),
            ("outbound_esp_sas", "outbound_esp"),
            ("outbound_ah_sas", "outbound_ah"),
            ("outbound_pcp_sas", "outbound_pcp"),
        )
    }
    vrf = d["protected_vrf"]
    return IpsecFlowView(
        local_ident=_ident(d["local_ident"]),
        remote_ident=_ident(d["remote_ident"]),
        peer=d["peer_ip"],
        peer_port=d["port"],
        local_endpoint=d["local_crypto_endpt"],
        remote_endpoint=d["remote_crypto_endpt"],
        counters=_counters(d),
        plaintext_mtu=d["plaintext_mtu"],
        path_mtu=d["path_mtu"],
        ip_mtu=d["ip_mtu"],
        ip_mtu_idb=d["ip_mtu_idb"],
        current_outbound_spi=_spi(d["current_outbound_spi"]),
        protected_vrf=None if vrf in ("(none)", "none") else vrf,
        action=d["action"],
        flags=d["acl"],
        pfs=d["pfs"] == "Y",
        dh_group=d["dh_group"],
        pqc=d.get("pqc"),
        **sas,
    )


def ipsec_views(expected: dict[str, Any]) -> list[IpsecInterfaceView]:
    return [
        IpsecInterfaceView(
            name=name,
            crypto_map_tag=d["crypto_map_tag"],
            local_addr=d["local_addr"],
            flows=tuple(_flow(f) for f in d["ident"].values()),
            ipsecv6_policy_name=d.get("ipsecv6_policy_name"),
        )
        for name, d in expected["interface"].items()
    ]


# ---------------------------------------------------------------- isakmp sa


def _hms_seconds(text: str) -> int:
    h, m, s = (int(x) for x in text.split(":"))
    return h * 3600 + m * 60 + s


def isakmp_views(expected: dict[str, Any], detail: bool) -> list[IsakmpSaView]:
    out = []
    for rows in expected["isakmp_stats"].values():
        for d in rows.values():
            if detail:
                out.append(
                    IsakmpSaView(
                        dst=d["local_ip"],
                        src=d["remote_ip"],
                        local=d["local_ip"],
                        remote=d["remote_ip"],
                        state=IsakmpSaState.QM_IDLE,
                        conn_id=d["c_id"],
                        status=d["status"],
                        ivrf=d.get("ivrf"),
                        encryption=d["encr_algo"],
                        hash=d["hash_algo"],
                        auth=d["auth_type"],
                        dh_group=d["dh_group"],
                        lifetime_sec=_hms_seconds(d["lifetime"]),
                        capabilities=d["capabilities"],
                        engine_id=d.get("engine_id", "SW"),
                        engine_conn_id=d.get("conn_id"),
                    )
                )
            else:
                out.append(
                    IsakmpSaView(
                        dst=d["destination"],
                        src=d["source"],
                        local=d["destination"],
                        remote=d["source"],
                        state=IsakmpSaState(d["session_state"]),
                        conn_id=d["conn_id"],
                        status=d["status"],
                        deleted=d.get("current_status") == "deleted",
                    )
                )
    return out


# ------------------------------------------------------------------ session


def _proxy(tokens: list[str]) -> tuple[IdentView, list[str]]:
    if tokens[0] == "host":
        addr = tokens[1]
        return IdentView(addr, "128" if ":" in addr else "255.255.255.255"), tokens[2:]
    addr, _, mask = tokens[0].partition("/")
    return IdentView(addr, mask), tokens[1:]


def parse_flow_text(text: str) -> tuple[str, int, IdentView, IdentView]:
    """``permit 47 host A host B`` -> (action, protocol, local, remote)."""
    action, proto, *rest = text.split()
    local, rest = _proxy(rest)
    remote, rest = _proxy(rest)
    assert not rest, text
    return action, 0 if proto in ("ip", "ipv6") else int(proto), local, remote


def _none(value: str | None) -> str | None:
    return None if value in (None, "none") else value


def _uptime_seconds(text: str | None) -> int | None:
    if text is None:
        return None
    if m := re.fullmatch(r"(\d+)d(\d+)h", text):
        return int(m.group(1)) * 86400 + int(m.group(2)) * 3600
    if m := re.fullmatch(r"(\d+)w(\d+)d", text):
        return (int(m.group(1)) * 7 + int(m.group(2))) * 86400
    return _hms_seconds(text)


def _kb(text: str) -> int | None:
    return None if text == "KB Vol Rekey Disabled" else int(text)


def session_views(expected: dict[str, Any]) -> list[CryptoSessionView]:
    out = []
    for name, d in expected["interface"].items():
        for peer, pd in d.get("peer", {}).items():
            for port, p in pd["port"].items():
                ike = tuple(
                    SessionIkeSaView(
                        local=sa["local"],
                        local_port=int(sa["local_port"]),
                        remote=sa["remote"],
                        remote_port=int(sa["remote_port"]),
                        active=sa["sa_status"] == "Active",
                        version=sa.get("version", "IKEv1"),
                        session_id=int(sa["session_id"]) if "session_id" in sa else None,
                        capabilities="" if sa.get("capabilities") == "none" else sa.get("capabilities", ""),
                        conn_id=int(sa.get("conn_id", 0)),
                        lifetime_sec=_hms_seconds(sa.get("lifetime", "00:00:00")),
                    )
                    # genie's ios parser calls the list "ikev1_sa" and drops the version
                    for sa in p.get("ike_sa", p.get("ikev1_sa", {})).values()
                )
                flows = []
                for text, f in p.get("ipsec_flow", {}).items():
                    action, proto, local, remote = parse_flow_text(text)
                    flows.append(
                        SessionFlowView(
                            protocol=proto,
                            local=local,
                            remote=remote,
                            action=action,
                            active_sas=f["active_sas"],
                            origin=f["origin"],
                            inbound_pkts=f.get("inbound_pkts_decrypted", 0),
                            inbound_drop=f.get("inbound_pkts_drop", 0),
                            inbound_kb=_kb(f.get("inbound_life_kb", "0")),
                            inbound_sec=int(f.get("inbound_life_secs", 0)),
                            outbound_pkts=f.get("outbound_pkts_encrypted", 0),
                            outbound_drop=f.get("outbound_pkts_drop", 0),
                            outbound_kb=_kb(f.get("outbound_life_kb", "0")),
                            outbound_sec=int(f.get("outbound_life_secs", 0)),
                        )
                    )
                out.append(
                    CryptoSessionView(
                        interface=name,
                        peer=peer,
                        peer_port=int(port),
                        status=d["session_status"],
                        profile=d.get("profile"),
                        uptime_sec=_uptime_seconds(d.get("uptime")),
                        username=d.get("user_name"),
                        group=d.get("group"),
                        assigned_address=d.get("assigned_address"),
                        fvrf=_none(p.get("fvrf")),
                        ivrf=_none(p.get("ivrf")),
                        phase1_id=_none(p.get("phase1_id")),
                        desc=_none(p.get("desc")),
                        ike_sas=ike,
                        flows=tuple(flows),
                    )
                )
    return out


def remote_session_views(expected: dict[str, Any]) -> list[CryptoSessionView]:
    """Views from the ``show crypto session remote A detail`` schema."""
    out = []
    for name, d in expected["interfaces"].items():
        version = next(k for k in d if k.startswith("IKE"))
        sa = d[version]
        flows = []
        for f in d.get("ipsec_flow", {}).values():
            action, proto, local, remote = parse_flow_text(f["flow"])
            ib, ob = f["inbound"], f["outbound"]
            flows.append(
                SessionFlowView(
                    protocol=proto,
                    local=local,
                    remote=remote,
                    action=action,
                    active_sas=f["active_sa"],
                    origin=f["origin"],
                    inbound_pkts=ib["decrypted"],
                    inbound_drop=ib["dropped"],
                    inbound_kb=_kb(str(ib["life_in_kb"])),
                    inbound_sec=ib["life_in_sec"],
                    outbound_pkts=ob["encrypted"],
                    outbound_drop=ob["dropped"],
                    outbound_kb=_kb(str(ob["life_in_kb"])),
                    outbound_sec=ob["life_in_sec"],
                )
            )
        out.append(
            CryptoSessionView(
                interface=name,
                peer=d["peer_ip"],
                peer_port=d["peer_port"],
                status=d["session_status"],
                profile=d.get("profile"),
                uptime_sec=_uptime_seconds(d.get("uptime")),
                fvrf=_none(d.get("fvrf")),
                ivrf=_none(d.get("ivrf")),
                phase1_id=_none(d.get("phase_id")),
                ike_sas=(
                    SessionIkeSaView(
                        local=sa["local_ip"],
                        local_port=sa["local_port"],
                        remote=sa["remote_ip"],
                        remote_port=sa["remote_port"],
                        version=version,
                        session_id=d.get("session_id"),
                        capabilities=sa.get("capabilities", ""),
                        conn_id=sa.get("connid", 0),
                        lifetime_sec=_hms_seconds(sa.get("lifetime", "00:00:00")),
                    ),
                ),
                flows=tuple(flows),
            )
        )
    return out


def diff_paths(a: Any, b: Any, path: str = "") -> list[str]:
    """The paths where two normalised dicts differ (for readable failures and
    for the known-difference lists)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            sub = f"{path}/{key}"
            if key not in a or key not in b:
                out.append(sub)
            else:
                out += diff_paths(a[key], b[key], sub)
        return out
    return [] if a == b else [path]
