"""The fuller config in tests/data/config/full.cfg: defaults, resolution,
key lookup, ACLs, routes, JSON output; and arbitrary text never raises."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from dmvpn.cli.main import main
from dmvpn.config import AclAction, KeepaliveMode, TunnelMode, load_config, parse_config
from dmvpn.config.algorithms import (
    DhGroup,
    EncapsulationMode,
    EncryptionAlgorithm,
    EspAuthAlgorithm,
    EspTransformId,
    HashAlgorithm,
    IkeAuthMethod,
)

FULL = Path(__file__).parent / "data" / "config" / "full.cfg"


def test_policies_sorted_with_ios_defaults() -> None:
    c = load_config(FULL)
    assert [p.priority for p in c.isakmp_policies] == [5, 20, 30]
    p5, p20, p30 = c.isakmp_policies
    assert (p5.encryption, p5.key_bits, p5.hash, p5.group, p5.lifetime) == (
        EncryptionAlgorithm.DES3_CBC, None, HashAlgorithm.MD5, DhGroup.MODP_1024, 28800)
    assert (p20.key_bits, p20.hash, p20.group, p20.lifetime, p20.defaulted) == (
        256, HashAlgorithm.SHA2_256, DhGroup.ECP_256, 86400, ("lifetime",))
    # IOS "Default protection suite": des, rsa-sig, group 1, 86400 s
    assert (p30.encryption, p30.authentication, p30.group, p30.hash) == (
        EncryptionAlgorithm.DES_CBC, IkeAuthMethod.RSA_SIGNATURES, DhGroup.MODP_768, HashAlgorithm.SHA2_512)
    assert p30.defaulted == ("encryption", "authentication", "group", "lifetime")
    assert p5.usable and p20.usable and not p30.usable


def test_psk_longest_match() -> None:
    c = load_config(FULL)
    assert c.psk_for("198.51.100.2") == "branch-secret"
    assert c.psk_for(IPv4Address("198.51.100.77")) == "wide-secret"
    assert c.psk_for("203.0.113.1") == "any-secret"
    no_wildcard = parse_config("crypto isakmp key k address 192.0.2.1\n").config
    assert no_wildcard.psk_for("192.0.2.1") == "k" and no_wildcard.psk_for("192.0.2.2") is None


def test_isakmp_globals_and_lifetimes() -> None:
    c = load_config(FULL)
    assert c.isakmp_keepalive.seconds == 10 and c.isakmp_keepalive.mode is KeepaliveMode.PERIODIC
    assert c.isakmp_keepalive.retry == 2
    assert c.isakmp_nat_keepalive == 20 and c.invalid_spi_recovery
    assert (c.ipsec_sa_lifetime.seconds, c.ipsec_sa_lifetime.kilobytes) == (1800, 100000)
    assert c.replay_window_size == 1024
    dmvpn = c.ipsec_profiles["DMVPN"]
    assert dmvpn.transform_sets == ("GCM", "CBC")
    assert (dmvpn.lifetime_seconds, dmvpn.lifetime_kilobytes) == (1800, None)
    assert str(dmvpn.lifetime) == "1800 s / no volume limit"
    assert (dmvpn.pfs_group, dmvpn.idle_time) == (DhGroup.MODP_2048, 600)
    assert c.ipsec_profiles["DEFAULTS"].pfs_group is DhGroup.MODP_768  # bare "set pfs" is group1
    assert c.ipsec_profiles["DEFAULTS"].lifetime_kilobytes == 100000


def test_transform_sets() -> None:
    ts = load_config(FULL).transform_sets
    assert (ts["GCM"].cipher, ts["GCM"].key_bits, ts["GCM"].auth, ts["GCM"].mode) == (
        EspTransformId.ESP_AES_GCM_16, 256, None, EncapsulationMode.TRANSPORT)
    assert ts["GCM"].ios_text == "esp-gcm 256"
    assert ts["CBC"].ios_text == "esp-192-aes esp-sha512-hmac"  # cipher first, as IOS prints
    assert (ts["CBC"].auth, ts["CBC"].mode) == (EspAuthAlgorithm.HMAC_SHA2_512, EncapsulationMode.TUNNEL)
    assert ts["NULLSHA"].cipher is EspTransformId.ESP_NULL and ts["NULLSHA"].key_bits is None


def test_crypto_map_and_acls() -> None:
    c = load_config(FULL)
    m = c.crypto_maps["SITE"]
    assert m.local_address == "GigabitEthernet1"
    e10, e20 = m.entries
    assert e10.peers == (IPv4Address("198.51.100.2"), IPv4Address("198.51.100.3"))
    assert (e10.acl, e10.lifetime_seconds, e10.lifetime_kilobytes) == ("VPN-TRAFFIC", 7200, 100000)
    assert (e20.acl, e20.pfs_group) == ("101", DhGroup.ECP_521)
    acl = c.acls["VPN-TRAFFIC"]
    assert acl.extended and len(acl.entries) == 3
    a, b, d = acl.entries
    assert (a.protocol, a.source, a.destination) == (None, IPv4Network("10.7.0.0/16"), IPv4Network("10.0.0.0/8"))
    assert (b.protocol, b.source_ports.op, b.source_ports.low) == (17, "eq", 500)
    assert b.destination_ports.matches(1500) and not b.destination_ports.matches(2001)
    assert d.action is AclAction.DENY
    assert c.acls["101"].entries[0].protocol == 47
    assert not c.acls["10"].extended
    assert c.interfaces["GigabitEthernet1"].crypto_map == "SITE"


def test_interfaces_nhrp_and_routes() -> None:
    c = load_config(FULL)
    assert c.interfaces["GigabitEthernet2"].shutdown
    t10 = c.interfaces["Tunnel10"]
    assert t10.tunnel.source_interface is None and t10.tunnel.source_address == IPv4Address("192.0.2.7")
    assert (t10.tunnel.key, t10.tunnel.protection_shared) == (1000, False)
    n = t10.nhrp
    assert (n.network_id, n.holdtime, n.authentication, n.registration_timeout) == (10, 600, "dmvpnkey", 60)
    assert n.registration_no_unique and n.shortcut
    (nhs,) = n.nhs  # old style: nbma comes from "ip nhrp map"
    assert (nhs.address, nhs.nbma) == (IPv4Address("10.9.0.1"), IPv4Address("198.51.100.1"))
    assert [(m.overlay, m.nbma) for m in n.maps] == [(IPv4Address("10.9.0.1"), IPv4Address("198.51.100.1"))]
    assert n.multicast_nbma == (IPv4Address("198.51.100.1"),)
    t20 = c.interfaces["Tunnel20"].tunnel
    assert (t20.mode, t20.source_interface, t20.source_address, t20.destination) == (
        TunnelMode.GRE_IP, "Loopback0", IPv4Address("10.7.0.1"), IPv4Address("198.51.100.20"))
    r0, r1, r2 = c.routes
    assert (r0.prefix, r0.next_hop, r0.interface) == (IPv4Network("0.0.0.0/0"), IPv4Address("192.0.2.254"), None)
    assert (r1.interface, r1.next_hop, r1.distance, r1.name, r1.tag) == (
        "Tunnel10", IPv4Address("10.9.0.1"), 250, "via-hub", 7)
    assert r2.interface == "Null0" and r2.permanent


def test_ignored_and_warnings() -> None:
    r = parse_config(FULL.read_text(), "full.cfg")
    assert r.ok
    ignored = {i.line: i.text for i in r.ignored}
    assert ignored[10] == "banner motd ^C" and ignored[11] == "Authorised access only"
    assert ignored[119] == "transport input ssh"  # inside an ignored block (line vty)
    assert 111 not in ignored  # router ospf is read now
    (ospf,) = r.config.routing.ospf
    assert [(str(n.prefix), str(n.area)) for n in ospf.networks] == [("10.7.0.0/16", "0.0.0.0")]
    assert ospf.passive_default and ospf.is_passive("Tunnel10")
    assert [(w.line, w.message) for w in r.warnings] == [
        (25, "crypto isakmp policy 30 has no 'encryption' and 'authentication' lines: the IOS defaults "
             "(des, rsa-sig) are not supported here, so this policy is never used"),
        (121, "unknown command: 'frobnicate the widget'"),
    ]


def test_json_output_masks_secrets() -> None:
    result = CliRunner().invoke(main, ["config", "check", "--json", str(FULL)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    (f,) = doc["files"]
    assert f["ok"] and f["errors"] == []
    cfg = f["config"]
    assert cfg["hostname"] == "BRANCH-7"
    assert cfg["ipsec_profiles"]["DMVPN"]["lifetime_kilobytes"] is None
    assert cfg["transform_sets"]["GCM"]["cipher"] == "ESP_AES_GCM_16"
    assert cfg["interfaces"]["Tunnel10"]["tunnel"]["source_address"] == "192.0.2.7"
    assert {k["key"] for k in cfg["isakmp_keys"]} == {"*****"}
    assert cfg["interfaces"]["Tunnel10"]["nhrp"]["authentication"] == "*****"
    assert "secret" not in result.stdout and "dmvpnkey" not in result.stdout
    assert {"line": 121, "message": "unknown command: 'frobnicate the widget'"} in f["warnings"]


def test_json_output_with_errors() -> None:
    bad = FULL.parent / "bad_mode.cfg"
    result = CliRunner().invoke(main, ["config", "check", "--json", str(bad)])
    assert result.exit_code == 1
    (f,) = json.loads(result.stdout)["files"]
    assert f["ok"] is False and f["config"] is None
    assert f["errors"][0]["line"] == 3


def test_interface_name_abbreviations() -> None:
    text = (
        "interface gi0/0/2\n ip address 192.0.2.1 255.255.255.0\n"
        "interface Tu5\n ip address 10.0.0.1 255.255.255.0\n tunnel source Gi0/0/2\n tunnel mode gre multipoint\n"
    )
    c = parse_config(text).config
    assert set(c.interfaces) == {"GigabitEthernet0/0/2", "Tunnel5"}
    assert c.interfaces["Tunnel5"].tunnel.source_address == IPv4Address("192.0.2.1")


LINE = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60),
    st.lists(
        st.sampled_from(
            ["crypto", "isakmp", "ipsec", "policy", "key", "address", "interface", "Tunnel0", "tunnel",
             "source", "mode", "gre", "multipoint", "ip", "nhrp", "nhs", "map", "route", "profile", "set",
             "transform-set", "esp-aes", "256", "lifetime", "kilobytes", "disable", "1", "0.0.0.0",
             "10.0.0.1", "255.255.255.0", "group", "15", "access-list", "101", "permit", "host", "any",
             "eq", "range", "banner", "^C", "!", "end", "match", "peer", "shared", "protection", " "]
        ),
        max_size=8,
    ).map(" ".join),
)


@settings(max_examples=400, derandomize=True, deadline=None)
@given(st.lists(st.tuples(st.booleans(), LINE), max_size=25))
def test_arbitrary_text_never_raises(lines: list[tuple[bool, str]]) -> None:
    text = "\n".join((" " if indent else "") + line for indent, line in lines)
    r = parse_config(text, "fuzz.cfg")
    assert (r.config is None) == bool(r.errors)
    for e in r.errors:
        assert str(e).startswith("fuzz.cfg:") and "\n" not in str(e)


def test_tunnels_sharing_a_source() -> None:
    text = (
        "crypto ipsec transform-set T esp-aes esp-sha-hmac\ncrypto ipsec profile P\n set transform-set T\n"
        "interface GigabitEthernet1\n ip address 192.0.2.1 255.255.255.0\n"
        "interface Tunnel1\n ip address 10.1.0.1 255.255.255.0\n tunnel source GigabitEthernet1\n"
        " tunnel mode gre multipoint\n tunnel key 5\n tunnel protection ipsec profile P\n"
        "interface Tunnel2\n ip address 10.2.0.1 255.255.255.0\n tunnel source GigabitEthernet1\n"
        " tunnel mode gre multipoint\n tunnel key 5\n tunnel protection ipsec profile P shared\n"
    )
    r = parse_config(text, "two.cfg")
    assert r.ok
    assert [(w.line, w.message) for w in r.warnings] == [
        (6, "Tunnel1 shares source 192.0.2.1 with other protected tunnels but its 'tunnel protection' lacks 'shared'"),
        (12, "Tunnel2 and Tunnel1 are multipoint tunnels on source 192.0.2.1 with the same tunnel key (5)"),
    ]


def test_every_one_token_mutation_of_the_hub_config_is_handled() -> None:
    """Delete or replace any one token of the seed hub's config: the parser
    never raises, and reports any error as one line with a line number."""
    lines = Path("/work/shared/seed/hub.cfg").read_text().splitlines()
    values = ["abc", "99999999999", "0", "1.2.3", "Tunnel9", "255.255.255.255"]
    for i, line in enumerate(lines):
        if line.lstrip().startswith("!"):
            continue
        indent = line[: len(line) - len(line.lstrip())]
        toks = line.split()
        for j in range(len(toks)):
            for variant in [toks[:j] + toks[j + 1:]] + [[*toks[:j], v, *toks[j + 1:]] for v in values]:
                mutated = [*lines[:i], indent + " ".join(variant), *lines[i + 1:]]
                r = parse_config("\n".join(mutated), "hub.cfg")
                assert (r.config is None) == bool(r.errors)
                for e in r.errors:
                    assert e.line >= 1 and "\n" not in str(e)


def test_ios_text_matches_real_show_output() -> None:
    """``TransformSet.ios_text`` is spelled the way IOS-XE's own
    ``show crypto ipsec sa`` prints transforms (genieparser/ntc fixtures)."""
    shown = set()
    for f in Path("/work/shared/oracles/cli/show_crypto_ipsec_sa").glob("*.txt"):
        for line in f.read_text().splitlines():
            if line.strip().startswith("transform: "):
                shown.add(line.strip()[len("transform: "):].rstrip(" ,"))
    assert shown, "oracle show_crypto_ipsec_sa fixtures are missing"
    cases = {
        "esp-aes 256 esp-sha-hmac": "esp-256-aes esp-sha-hmac",
        "esp-sha256-hmac esp-aes 256": "esp-256-aes esp-sha256-hmac",
        "esp-aes 256 esp-md5-hmac": "esp-256-aes esp-md5-hmac",
        "esp-3des esp-md5-hmac": "esp-3des esp-md5-hmac",
        "esp-aes esp-sha-hmac": "esp-aes esp-sha-hmac",
        "esp-gcm 256": "esp-gcm 256",
        "esp-gcm": "esp-gcm",
    }
    for config_words, expected in cases.items():
        c = parse_config(f"crypto ipsec transform-set T {config_words}\n").config
        assert c is not None
        assert c.transform_sets["T"].ios_text == expected
        assert expected in shown
