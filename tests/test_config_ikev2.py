"""IOS-XE IKEv2 configuration: proposals, policies, keyrings, profiles and
``set ikev2-profile``, the smart defaults (checked against what genieparser's
golden ``show crypto ikev2 proposal``/``policy`` samples say IOS-XE shows),
warnings, and the ``dmvpn config check`` summary."""

from __future__ import annotations

import importlib.util
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import genie.libs.parser
from click.testing import CliRunner

from dmvpn.cli.main import main
from dmvpn.config import parse_config
from dmvpn.config.ikev2_model import DEFAULT_POLICY, DEFAULT_PROPOSAL, DpdMode
from dmvpn.crypto.dh_groups import DhGroup
from dmvpn.crypto.ikev2_algorithms import EncrId, IntegId, PrfId

HUB = """\
hostname hub
crypto ikev2 proposal PROP
 encryption aes-cbc-256 aes-cbc-128
 integrity sha256 sha1
 group 19 14
crypto ikev2 proposal GCM
 encryption aes-gcm-256
 prf sha384
 group 20
crypto ikev2 policy POL
 match fvrf any
 proposal PROP
 proposal GCM
crypto ikev2 keyring KR
 peer spokes
  address 10.0.0.0 255.0.0.0
  pre-shared-key local LOCALKEY
  pre-shared-key remote REMOTEKEY
 peer one
  address 10.1.1.1
  pre-shared-key SAMEKEY
crypto ikev2 profile IKEP
 match identity remote address 10.0.0.0 255.0.0.0
 authentication remote pre-share
 authentication local pre-share
 keyring local KR
 dpd 10 3 periodic
 lifetime 3600
crypto ipsec transform-set TS esp-aes 256 esp-sha256-hmac
 mode transport
crypto ipsec profile IPP
 set transform-set TS
 set ikev2-profile IKEP
end
"""


def _golden(parser: str, name: str = "golden_output") -> dict:
    tests = Path(genie.libs.parser.__file__).parent / "iosxe" / "tests"
    path = tests / parser / "cli" / "equal" / f"{name}_expected.py"
    spec = importlib.util.spec_from_file_location("golden", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.expected_output


def test_hub_model() -> None:
    r = parse_config(HUB, "hub.cfg")
    assert r.ok, r.errors
    assert not r.warnings, r.warnings
    c = r.config
    assert c is not None
    v2 = c.ikev2
    prop = v2.proposals["PROP"]
    assert [(e.encr, e.key_bits) for e in prop.encryption] == [(EncrId.AES_CBC, 256), (EncrId.AES_CBC, 128)]
    assert prop.integrity == (IntegId.HMAC_SHA2_256_128, IntegId.HMAC_SHA1_96)
    assert prop.prf == (PrfId.HMAC_SHA2_256, PrfId.HMAC_SHA1)  # no prf line: the integrity algorithms
    assert prop.groups == (DhGroup.ECP_256, DhGroup.MODP_2048) and prop.complete
    assert v2.proposals["GCM"].complete and v2.proposals["GCM"].integrity == ()
    assert v2.policies["POL"].proposals == ("PROP", "GCM")
    assert "policy default" not in v2.defaulted and "proposal default" in v2.defaulted
    kr = v2.keyrings["KR"]
    spokes, one = kr.peers
    assert (spokes.local_key, spokes.remote_key) == ("LOCALKEY", "REMOTEKEY")
    assert (one.local_key, one.remote_key) == ("SAMEKEY", "SAMEKEY")
    assert kr.peer_for("10.1.1.1") is one and kr.peer_for("10.9.9.9") is spokes and kr.peer_for("192.0.2.1") is None
    prof = v2.profiles["IKEP"]
    assert prof.match_remote == (IPv4Network("10.0.0.0/8"),) and prof.keyring == "KR"
    assert prof.dpd is not None and (prof.dpd.interval, prof.dpd.retry, prof.dpd.mode) == (10, 3, DpdMode.PERIODIC)
    assert prof.lifetime == 3600
    assert v2.profile_for(IPv4Address("10.2.3.4")) is prof and v2.profile_for("192.0.2.9") is None
    assert c.ipsec_profiles["IPP"].ikev2_profile == "IKEP"


def test_smart_defaults_match_iosxe_show_output() -> None:
    """No proposal, no policy: IOS-XE's defaults, as genieparser's samples
    of ``show crypto ikev2 proposal``/``policy`` on IOS-XE list them."""
    r = parse_config("hostname spoke\nend\n")
    assert r.config is not None
    v2 = r.config.ikev2
    assert v2.proposals == {"default": DEFAULT_PROPOSAL} and v2.policies == {"default": DEFAULT_POLICY}
    assert set(v2.defaulted) == {"proposal default", "policy default"} and not v2.configured
    shown = _golden("ShowCryptoIkev2Proposal")["proposal_name"]["default"]
    assert shown["encryption"] == "AES-CBC-256" and DEFAULT_PROPOSAL.encryption[0].key_bits == 256
    names = {IntegId.HMAC_SHA2_512_256: "SHA512", IntegId.HMAC_SHA2_384_192: "SHA384"}
    assert shown["integrity"] == " ".join(names[i] for i in DEFAULT_PROPOSAL.integrity)
    prfs = {PrfId.HMAC_SHA2_512: "SHA512", PrfId.HMAC_SHA2_384: "SHA384"}
    assert shown["prf"] == " ".join(prfs[p] for p in DEFAULT_PROPOSAL.prf)
    assert [int(g.split("Group ")[1]) for g in shown["dh_group"]] == [int(g) for g in DEFAULT_PROPOSAL.groups]
    newest = _golden("ShowCryptoIkev2Proposal", "golden_output_1")["proposal_name"]["default"]
    assert newest["dh_group"] == shown["dh_group"][:3] and "pqc" in newest  # a later release: no group 5, ML-KEM
    policy = _golden("ShowCryptoIkev2Policy")["policy_name"]["default"]
    assert policy["proposal"] == DEFAULT_POLICY.proposals[0] and policy["match_fvrf"] == "any"


def test_warnings() -> None:
    text = """\
crypto ikev2 proposal LONELY
 encryption aes-cbc-128
 integrity sha1
 group 14
crypto ikev2 proposal HALF
 encryption aes-cbc-128
crypto ikev2 policy POL
 proposal HALF
 frobnicate
crypto ikev2 profile P
 description nothing else
"""
    r = parse_config(text, "w.cfg")
    assert r.ok, r.errors
    msgs = [(w.line, w.message) for w in r.warnings]
    assert (1, "crypto ikev2 proposal LONELY is in no crypto ikev2 policy: IOS-XE does not offer it") in msgs
    assert any(line == 5 and "HALF is incomplete" in m for line, m in msgs)
    assert (9, "unknown command in 'crypto ikev2 policy POL': 'frobnicate'") in msgs
    assert any(line == 10 and "no 'match identity remote'" in m for line, m in msgs)
    assert any(line == 10 and "no 'keyring local'" in m for line, m in msgs)


def test_config_check_summary_shows_ikev2(tmp_path: Path) -> None:
    f = tmp_path / "hub.cfg"
    f.write_text(HUB)
    r = CliRunner().invoke(main, ["config", "check", str(f)])
    assert r.exit_code == 0, r.output
    out = r.output
    assert "IKEv2 proposal PROP: encryption aes-cbc-256 aes-cbc-128; integrity HMAC_SHA2_256_128 HMAC_SHA1_96" in out
    assert "IKEv2 proposal default: encryption aes-cbc-256;" in out and "(smart default)" in out
    assert "IKEv2 policy POL: match fvrf any; proposals PROP, GCM" in out
    assert "peer spokes: 10.0.0.0/8, pre-shared-key local ***** remote *****" in out
    assert "LOCALKEY" not in out and "REMOTEKEY" not in out
    assert "IKEv2 profile IKEP: match remote 10.0.0.0/8; authentication local pre-share remote pre-share; " \
           "keyring KR; dpd 10 s retry 3 s periodic; lifetime 3600 s" in out
    assert "ikev2-profile IKEP" in out
    j = CliRunner().invoke(main, ["config", "check", "--json", str(f)])
    assert j.exit_code == 0 and '"ikev2"' in j.output
