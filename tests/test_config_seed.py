"""The seed configs parse to the values the seed router itself printed
(``show crypto isakmp policy`` / ``show crypto ipsec profile`` in
shared/seed), and ``dmvpn config check`` on them exits 0."""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

import pytest
from click.testing import CliRunner

from dmvpn.cli.main import main
from dmvpn.config import KeepaliveMode, TunnelMode, load_config, parse_config
from dmvpn.config.algorithms import (
    DhGroup,
    EncapsulationMode,
    EncryptionAlgorithm,
    EspAuthAlgorithm,
    EspTransformId,
    HashAlgorithm,
    IkeAuthMethod,
)
from dmvpn.config.routing_model import OspfNetworkType

SEED = Path("/work/shared/seed")
HUB, SPOKE = SEED / "hub.cfg", SEED / "spoke.cfg"
SHOW = (SEED / "show_crypto_policies_and_profiles.txt").read_text()


@pytest.mark.parametrize("path", [HUB, SPOKE], ids=["hub", "spoke"])
def test_seed_crypto_matches_the_routers_show_output(path: Path) -> None:
    c = load_config(path)
    # show crypto isakmp policy, priority 2
    policy_block = SHOW.split("Protection suite of priority 2")[1].split("#sh")[0]
    (pol,) = c.isakmp_policies
    assert pol.priority == 2
    assert "AES - Advanced Encryption Standard (128 bit keys)" in policy_block
    assert (pol.encryption, pol.key_bits) == (EncryptionAlgorithm.AES_CBC, 128)
    assert "Secure Hash Standard" in policy_block and pol.hash is HashAlgorithm.SHA
    assert "Pre-Shared Key" in policy_block and pol.authentication is IkeAuthMethod.PRE_SHARED_KEY
    group = int(re.search(r"Diffie-Hellman group:\s+#(\d+)", policy_block).group(1))
    assert pol.group is DhGroup(group) is DhGroup.MODP_3072
    seconds = int(re.search(r"lifetime:\s+(\d+) seconds", policy_block).group(1))
    assert pol.lifetime == seconds == 3600
    assert pol.defaulted == () and pol.usable

    # show crypto ipsec profile ENS_ipsec_profile
    prof_block = SHOW.split("IPSEC profile ENS_ipsec_profile")[1].split("IPSEC profile")[0]
    kb, secs = map(int, re.search(r"lifetime: (\d+) kilobytes/(\d+) seconds", prof_block).groups())
    profile = c.ipsec_profiles["ENS_ipsec_profile"]
    assert (profile.lifetime_kilobytes, profile.lifetime_seconds) == (kb, secs) == (4608000, 3600)
    assert str(profile.lifetime) == "3600 s / 4608000 KB"
    assert "PFS (Y/N): N" in prof_block and profile.pfs_group is None
    ts_name, ts_text = re.search(r"(\S+):\s+\{ (.+?)\s+\}", prof_block).groups()
    assert profile.transform_sets == (ts_name,)
    ts = c.transform_sets[ts_name]
    assert ts.ios_text == ts_text == "esp-aes esp-sha256-hmac"
    assert (ts.cipher, ts.key_bits, ts.auth) == (EspTransformId.ESP_AES_CBC, 128, EspAuthAlgorithm.HMAC_SHA2_256)
    assert ts.mode is EncapsulationMode.TRANSPORT

    assert c.psk_for("172.17.3.2") == "seed-lab-psk"
    assert c.isakmp_keepalive is None
    assert c.crypto_maps == {} and c.routes == ()


def test_hub_tunnel() -> None:
    c = load_config(HUB)
    assert c.hostname == "HUB"
    t0 = c.interfaces["Tunnel0"]
    assert t0.address == IPv4Interface("10.2.2.1/24")
    assert t0.mtu == 1400
    assert t0.tunnel is not None
    assert t0.tunnel.mode is TunnelMode.GRE_MULTIPOINT
    assert t0.tunnel.key == 1
    assert t0.tunnel.source_interface == "GigabitEthernet0/0/2"
    assert t0.tunnel.source_address == IPv4Address("172.17.3.1")
    assert t0.tunnel.destination is None
    assert (t0.tunnel.protection_profile, t0.tunnel.protection_shared) == ("ENS_ipsec_profile", True)
    assert t0.nhrp is not None
    assert (t0.nhrp.network_id, t0.nhrp.redirect, t0.nhrp.holdtime, t0.nhrp.nhs) == (1, True, 7200, ())
    assert [i.name for i in c.tunnels()] == ["Tunnel0"]


def test_spoke_nhs() -> None:
    c = load_config(SPOKE)
    t0 = c.interfaces["Tunnel0"]
    assert c.hostname == "SPOKE1"
    assert t0.address == IPv4Interface("10.2.2.2/24")
    assert t0.tunnel.source_address == IPv4Address("172.17.3.2")
    (nhs,) = t0.nhrp.nhs
    assert (nhs.address, nhs.nbma, nhs.multicast) == (IPv4Address("10.2.2.1"), IPv4Address("172.17.3.1"), True)
    assert t0.nhrp.shortcut and not t0.nhrp.redirect


def test_hub_tunnel0_as_the_router_printed_it_has_no_unknown_lines() -> None:
    """Every line of the real router's Tunnel0 is either understood or a
    known no-op for this stack."""
    text = (SEED / "hub_tunnel0_interface.txt").read_text()
    prefix = (
        "crypto ipsec transform-set ipsec-transset-ENS esp-aes esp-sha256-hmac\n"
        "crypto ipsec profile ENS_ipsec_profile\n set transform-set ipsec-transset-ENS\n"
        "interface GigabitEthernet0/0/2\n ip address 172.17.3.1 255.255.255.0\n"
    )
    r = parse_config(prefix + text, "t0")
    assert r.ok and r.warnings == []
    assert [i.text for i in r.ignored] == [
        "description xxx",
        "bandwidth 1000000",
        "no ip redirects",
        "ip nbar protocol-discovery",
        "ip tcp adjust-mss 1360",
        "load-interval 30",
        "tunnel path-mtu-discovery",
    ]
    ospf = r.config.routing.ospf_interfaces["Tunnel0"]
    assert (ospf.process, str(ospf.area), ospf.network_type, ospf.priority, ospf.mtu_ignore) == (
        1, "0.0.0.0", OspfNetworkType.BROADCAST, 255, True)
    assert [p.process_id for p in r.config.routing.ospf] == [1]  # implied by "ip ospf 1 area 0"


def test_cli_check_seed_configs() -> None:
    result = CliRunner().invoke(main, ["config", "check", str(HUB), str(SPOKE)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    policy = "ISAKMP policy 2: encr aes 128, hash sha, authentication pre-share, group 15, lifetime 3600 s"
    assert out.count(policy) == 2
    assert out.count("transform set ipsec-transset-ENS: { esp-aes esp-sha256-hmac } mode transport") == 2
    assert out.count("lifetime 3600 s / 4608000 KB; PFS no") == 2
    assert "tunnel: source GigabitEthernet0/0/2 (172.17.3.1), mode gre multipoint, key 1" in out
    assert "NHS 10.2.2.1 nbma 172.17.3.1 multicast" in out
    assert "ignored lines (7):" in out and "  41: load-interval 30" in out
    assert "seed-lab-psk" not in out
    assert result.stderr == ""


def test_keepalive_defaults() -> None:
    c = parse_config("crypto isakmp keepalive 10\n").config
    assert c is not None and c.isakmp_keepalive is not None
    ka = c.isakmp_keepalive
    assert (ka.seconds, ka.retry, ka.mode) == (10, 2, KeepaliveMode.ON_DEMAND)
