"""A router with IKEv1 and IKEv2 peers at once: a hub whose Tunnel0 is
protected with an IPsec profile naming an IKEv2 profile and whose Tunnel1
uses ``crypto isakmp``. Both key managers run side by side; each tunnel's
acquires go to its own, each peer's messages to the manager of their
version (RFC 2408 / RFC 7296 3.1 major version); ``show crypto isakmp sa``
and ``show crypto ikev2 sa`` each list their peer."""

from __future__ import annotations

from dmvpn.config import parse_config
from dmvpn.node.router import Router
from dmvpn.runtime.sim import LinkParams, Simulator

COMMON = """\
crypto ipsec transform-set TS esp-aes esp-sha256-hmac
 mode transport
"""
IKEV1 = """\
crypto isakmp policy 10
 encr aes 128
 hash sha
 authentication pre-share
 group 14
crypto isakmp key v1-key address {peer}
"""
IKEV2 = """\
crypto ikev2 proposal P2
 encryption aes-cbc-128
 integrity sha256
 group 14
crypto ikev2 policy POL
 proposal P2
crypto ikev2 keyring KR
 peer P
  address {peer}
  pre-shared-key v2-key
crypto ikev2 profile PROF
 match identity remote address {peer} 255.255.255.255
 authentication remote pre-share
 authentication local pre-share
 keyring local KR
"""


def _tunnel(n: int, phys: str, address: str, peer: str, tun: str, profile: str) -> str:
    return (f"interface {phys}\n ip address {address} 255.255.255.0\n"
            f"interface Tunnel{n}\n ip address {tun} 255.255.255.252\n tunnel source {phys}\n"
            f" tunnel destination {peer}\n tunnel protection ipsec profile {profile}\n")


HUB = ("hostname HUB\n" + IKEV1.format(peer="198.51.100.2") + IKEV2.format(peer="192.0.2.2") + COMMON
       + "crypto ipsec profile PV2\n set transform-set TS\n set ikev2-profile PROF\n"
       + "crypto ipsec profile PV1\n set transform-set TS\n"
       + _tunnel(0, "GigabitEthernet1", "192.0.2.1", "192.0.2.2", "10.0.0.1", "PV2")
       + _tunnel(1, "GigabitEthernet2", "198.51.100.1", "198.51.100.2", "10.0.1.1", "PV1") + "end\n")
SPOKE_V2 = ("hostname V2\n" + IKEV2.format(peer="192.0.2.1") + COMMON
            + "crypto ipsec profile PV2\n set transform-set TS\n set ikev2-profile PROF\n"
            + _tunnel(0, "GigabitEthernet1", "192.0.2.2", "192.0.2.1", "10.0.0.2", "PV2") + "end\n")
SPOKE_V1 = ("hostname V1\n" + IKEV1.format(peer="198.51.100.1") + COMMON
            + "crypto ipsec profile PV1\n set transform-set TS\n"
            + _tunnel(0, "GigabitEthernet1", "198.51.100.2", "198.51.100.1", "10.0.1.2", "PV1") + "end\n")


def _lab():
    sim = Simulator(seed=5)
    routers = {}
    for name, text in (("HUB", HUB), ("V2", SPOKE_V2), ("V1", SPOKE_V1)):
        parsed = parse_config(text, name)
        assert not parsed.errors, parsed.errors
        routers[name] = Router(parsed.config, sim.random_for(name), "cisco-iosxe", name=name, nhrp=False)
        sim.add_node(routers[name])
    sim.connect("HUB", "GigabitEthernet1", "V2", "GigabitEthernet1", LinkParams(delay=0.002))
    sim.connect("HUB", "GigabitEthernet2", "V1", "GigabitEthernet1", LinkParams(delay=0.002))
    return sim, routers


def test_mixed_hub_runs_ikev1_and_ikev2_side_by_side():
    sim, r = _lab()
    hub = r["HUB"]
    assert sorted(km.ike_version for km in hub.key_managers) == [1, 2]
    sim.admin("HUB", "ping 10.0.0.2 repeat 5")   # IKEv2, started by the hub
    sim.admin("V1", "ping 10.0.1.1 repeat 5")    # IKEv1, started by the spoke
    sim.run(20.0)
    assert sim.admin("HUB", "show ping").count("!") >= 4
    assert sim.admin("V1", "show ping").count("!") >= 4
    isakmp = sim.admin("HUB", "show crypto isakmp sa")
    ikev2 = sim.admin("HUB", "show crypto ikev2 sa")
    assert "198.51.100.2" in isakmp and "QM_IDLE" in isakmp and "192.0.2.2" not in isakmp, isakmp
    assert "192.0.2.2" in ikev2 and "READY" in ikev2 and "198.51.100.2" not in ikev2, ikev2
    peers = {sa.peer for sa in hub.sad.all()}
    assert peers == {"192.0.2.2", "198.51.100.2"}
    by_version = {km.ike_version: {c.peer for c in km.child_sa_views()} for km in hub.key_managers}
    assert by_version == {1: {"198.51.100.2"}, 2: {"192.0.2.2"}}
