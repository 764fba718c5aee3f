"""``show crypto ikev2 sa [detail]`` and ``show crypto ikev2 session``
against Cisco's genieparser: views built from genieparser's own golden
expectations (and from realistic values of ours) are rendered, genieparser
parses our text, and what it extracts equals our JSON."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import genie.libs.parser
import pytest

from dmvpn.show import ikev2_sa
from dmvpn.show.ikev2_views import Ikev2ChildView, Ikev2SaView, Ikev2SessionView
from test_show_support import genie_parse, normalise

GOLDEN = Path(genie.libs.parser.__file__).parent / "iosxe" / "tests"


def _expected(parser: str, name: str) -> dict[str, Any]:
    path = GOLDEN / parser / "cli" / "equal" / f"{name}_expected.py"
    assert path.exists(), f"genieparser golden sample missing: {path}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.expected_output  # type: ignore[no-any-return]


def _view_from_genie(row: dict[str, Any], ipv6: bool = False) -> Ikev2SaView:
    return Ikev2SaView(
        tunnel_id=row["tunnel_id"], local_ip=row["local_ip"], local_port=row["local_port"],
        remote_ip=row["remote_ip"], remote_port=row["remote_port"], status=row["status"], fvrf=row["fvrf"],
        ivrf=row["ivrf"], encryption=row["encryption"], keysize=row["keysize"], prf=row["prf"], hash=row["hash"],
        dh_group=row["dh_group"], auth_sign=row["auth_sign"], auth_verify=row["auth_verify"],
        life_time=row["life_time"], active_time=row["active_time"], ce_id=row.get("ce_id", 0),
        session_id=row.get("session_id", 0),
        local_spi=bytes.fromhex(row.get("local_spi", "00" * 8)),
        remote_spi=bytes.fromhex(row.get("remote_spi", "00" * 8)),
        ipv6=ipv6,
    )


OURS = [
    Ikev2SaView(1, "192.0.2.1", 500, "198.51.100.7", 500, local_id="192.0.2.1", remote_id="198.51.100.7",
                local_spi=bytes.fromhex("1f7b76961c3a77ed"), remote_spi=bytes.fromhex("1298fde074bd724c"),
                active_time=735, local_next_msg_id=3, remote_next_msg_id=2, dpd_interval=10, dpd_retry=2),
    Ikev2SaView(2, "192.0.2.1", 4500, "203.0.113.9", 4500, ivrf="none", encryption="AES-GCM", keysize=256,
                prf="SHA384", hash="None", dh_group=20, nat_t="detected outside", initiator=False,
                local_id="192.0.2.1", remote_id="10.9.9.9", session_id=7, active_time=86399),
]


@pytest.mark.parametrize("name", ["golden_output", "golden_output1"])
def test_sa_views_from_genie_golden_round_trip(name: str) -> None:
    expected = _expected("ShowCryptoIkev2Sa", name)
    views = [_view_from_genie(r) for r in expected["ipv4"].values()]
    text = ikev2_sa.render_sa_text(views)
    parsed = genie_parse("iosxe", "show crypto ikev2 sa", text)
    ours = normalise(ikev2_sa.render_sa_json(views))
    assert parsed == ours
    # the values genieparser's own sample holds, minus the detail-only keys
    short = {k: v for k, v in next(iter(expected["ipv4"].values())).items()
             if k not in ("ce_id", "session_id", "local_spi", "remote_spi")}
    assert next(iter(parsed["ipv4"].values())) == normalise(short)


def test_sa_our_views() -> None:
    text = ikev2_sa.render_sa_text(OURS)
    assert "1         192.0.2.1/500         198.51.100.7/500      none/none            READY" in text
    assert genie_parse("iosxe", "show crypto ikev2 sa", text) == normalise(ikev2_sa.render_sa_json(OURS))


def test_sa_detail_our_views_and_genie_golden() -> None:
    text = ikev2_sa.render_sa_text(OURS, detail=True)
    assert "      Local spi: 1F7B76961C3A77ED       Remote spi: 1298FDE074BD724C" in text
    parsed = genie_parse("iosxe", "show crypto ikev2 sa detail", text)
    assert parsed == normalise(ikev2_sa.render_sa_json(OURS, detail=True))
    # keys and value kinds of genieparser's own detail sample
    golden = next(iter(_expected("ShowCryptoIkev2SaDetail", "golden_output")["tunnel_id"].values()))
    ours = parsed["tunnel_id"]["1"]
    missing = set(golden) - set(ours) - {"pushed_ip", "remote_subnets"}
    assert not missing and all(type(ours[k]) is type(golden[k]) for k in ours)


def test_session() -> None:
    sessions = [
        Ikev2SessionView(3, OURS[0], [
            Ikev2ChildView("192.0.2.1/0 - 192.0.2.1/65535", "198.51.100.7/0 - 198.51.100.7/65535",
                           0x232CB82D, 0x30767B6E),
        ]),
        Ikev2SessionView(4, OURS[1], []),
    ]
    text = ikev2_sa.render_session_text(sessions)
    parsed = genie_parse("iosxe", "show crypto ikev2 session", text)
    assert parsed == normalise(ikev2_sa.render_session_json(sessions))
    golden = _expected("ShowCryptoIkev2Session", "golden_output_csr8kv_full")["ikev2_session"]["IPv4"][1]
    assert set(golden) - {"child_sa"} <= set(parsed["ikev2_session"]["IPv4"]["1"])


def test_empty() -> None:
    assert ikev2_sa.render_sa_json([]) == {"ipv4": {}, "ipv6": {}}
    assert genie_parse("iosxe", "show crypto ikev2 sa", ikev2_sa.render_sa_text([])) == {"ipv4": {}, "ipv6": {}}
