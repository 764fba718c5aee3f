"""The routing part of a config: ``router ospf``, ``router bgp`` and the
interface ``ip ospf`` lines, read into :mod:`dmvpn.config.routing_model`,
and their errors as one ``FILE:LINE: error:`` line each."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from dmvpn.config import parse_config
from dmvpn.config.routing_model import OspfNetworkType

BASE = """hostname HUB
interface GigabitEthernet0/0/2
 ip address 172.17.3.1 255.255.255.0
interface Tunnel0
 ip address 10.2.2.1 255.255.255.0
 tunnel source GigabitEthernet0/0/2
 tunnel mode gre multipoint
"""

HUB = BASE + """ ip ospf network point-to-multipoint
 ip ospf 1 area 0
 ip ospf hello-interval 1
 ip ospf dead-interval 4
 ip ospf priority 200
 ip ospf cost 5
 ip ospf mtu-ignore
 ip ospf authentication
router ospf 1
 router-id 1.1.1.1
 network 192.168.0.0 0.0.255.255 area 0.0.0.1
 passive-interface default
 no passive-interface Tunnel0
 redistribute connected subnets
 log-adjacency-changes
router bgp 65000
 bgp router-id 1.1.1.1
 bgp log-neighbor-changes
 bgp listen range 10.2.2.0/24 peer-group SPOKES
 neighbor SPOKES peer-group
 neighbor SPOKES remote-as 65000
 neighbor SPOKES route-reflector-client
 neighbor SPOKES timers 1 3
 neighbor 172.17.3.9 remote-as 1.10
 neighbor 172.17.3.9 update-source Gi0/0/2
 address-family ipv4
  network 192.168.1.0 mask 255.255.255.0
  network 10.0.0.0
  redistribute connected
  neighbor SPOKES activate
 exit-address-family
end
"""


def test_hub_routing_is_read() -> None:
    r = parse_config(HUB, "hub.cfg")
    assert r.ok and r.warnings == [], r.errors + r.warnings
    assert [i.text for i in r.ignored] == ["ip ospf authentication", "log-adjacency-changes",
                                           "bgp log-neighbor-changes", "address-family ipv4",
                                           "exit-address-family"]
    routing = r.config.routing
    t0 = routing.ospf_interfaces["Tunnel0"]
    assert (t0.process, t0.area, t0.network_type, t0.hello_interval, t0.dead_interval, t0.priority, t0.cost,
            t0.mtu_ignore) == (1, IPv4Address("0.0.0.0"), OspfNetworkType.POINT_TO_MULTIPOINT, 1, 4, 200, 5, True)
    (ospf,) = routing.ospf
    assert ospf.router_id == IPv4Address("1.1.1.1")
    assert [(n.prefix, n.area) for n in ospf.networks] == [(IPv4Network("192.168.0.0/16"), IPv4Address("0.0.0.1"))]
    assert ospf.is_passive("GigabitEthernet0/0/2") and not ospf.is_passive("Tunnel0")
    assert ospf.redistribute_connected
    bgp = routing.bgp
    assert bgp is not None and bgp.asn == 65000 and bgp.router_id == IPv4Address("1.1.1.1")
    group = bgp.neighbor("SPOKES")
    assert group is not None and group.is_group and group.remote_as == 65000 and group.route_reflector_client
    assert (group.keepalive, group.holdtime) == (1, 3)
    peer = bgp.neighbor("172.17.3.9")
    assert peer is not None and peer.remote_as == 65546 and peer.update_source == "GigabitEthernet0/0/2"
    (listen,) = bgp.listen_ranges
    assert (listen.prefix, listen.peer_group) == (IPv4Network("10.2.2.0/24"), "SPOKES")
    assert bgp.networks == (IPv4Network("192.168.1.0/24"), IPv4Network("10.0.0.0/8"))
    assert bgp.redistribute_connected


def test_no_routing_lines_give_an_empty_routing_model() -> None:
    r = parse_config(BASE + "end\n", "x.cfg")
    assert r.ok and r.config.routing.empty


@pytest.mark.parametrize(("lines", "line", "message"), [
    (" ip ospf network broadcats", 8, "ip ospf network: expected broadcast|non-broadcast|point-to-point|"
                                      "point-to-multipoint, got 'broadcats'"),
    (" ip ospf priority 256", 8, "ip ospf priority: 256 is out of range, expected 0-255"),
    (" ip ospf 1 area", 8, "ip ospf: expected 'ip ospf PROCESS-ID area AREA-ID'"),
    (" ip ospf 1 area 0\n ip ospf 2 area 0", 9, "duplicate 'ip ospf area' (already set at line 8)"),
    (" ip ospf 1 area 1.2.3", 8, "ip ospf area (a number or dotted quad): expected an IPv4 address, got '1.2.3'"),
    (" ip ospf hello-interval 0", 8, "ip ospf hello-interval (seconds): 0 is out of range, expected 1-65535"),
    (" ip ospf retransmit-interval 0", 8,
     "ip ospf retransmit-interval (seconds): 0 is out of range, expected 1-65535"),
    (" ip ospf retransmit-interval 2\n ip ospf retransmit-interval 3", 9,
     "duplicate 'ip ospf retransmit-interval' (already set at line 8)"),
    ("router ospf 0", 8, "router ospf process id: 0 is out of range, expected 1-65535"),
    ("router ospf 1 vrf X", 8, "router ospf: expected one process id 1-65535 (VRFs are not supported)"),
    ("router ospf 1\nrouter ospf 1", 9, "duplicate router ospf 1 (first at line 8)"),
    ("router ospf 1\n network 10.0.0.0 0.0.0.255", 9, "network: expected 'network ADDRESS WILDCARD area AREA-ID'"),
    ("router ospf 1\n network 10.0.0.0 0.255.0.255 area 0", 9,
     "network wildcard: '0.255.0.255' is not a contiguous wildcard mask (non-contiguous wildcards are not supported)"),
    ("router ospf 1\n router-id 1.2.3", 9, "router-id: expected an IPv4 address, got '1.2.3'"),
    ("router ospf 1\n redistribute eigrp 1", 9, "redistribute: only 'connected' and 'static' are supported, "
                                                "got 'eigrp'"),
    ("router bgp 0", 8, "router bgp AS number: 0 is out of range, expected 1-4294967295"),
    ("router bgp 1\nrouter bgp 2", 9, "router bgp 2: BGP is already running (router bgp 1 at line 8)"),
    ("router bgp 1\n neighbor 10.2.2.2 update-source Tunnel0", 9,
     "neighbor 10.2.2.2 update-source: configure 'neighbor 10.2.2.2 remote-as ASN' first"),
    ("router bgp 1\n neighbor HUBS remote-as 1", 9,
     "neighbor HUBS: not an address and no 'neighbor HUBS peer-group' before it"),
    ("router bgp 1\n neighbor 10.2.2.2 peer-group NOPE", 9,
     "neighbor 10.2.2.2 peer-group: peer group 'NOPE' is not defined"),
    ("router bgp 1\n neighbor 10.2.2.2 peer-group G\n neighbor G peer-group", 9,
     "neighbor 10.2.2.2: no remote-as (neither its own nor its peer group's)"),
    ("router bgp 1\n neighbor G peer-group\n bgp listen range 10.2.2.0/24 peer-group G", 10,
     "bgp listen range: peer group 'G' has no remote-as"),
    ("router bgp 1\n bgp listen range 10.2.2.1/24 peer-group G", 9,
     "bgp listen range: 10.2.2.1/24 has host bits set (expected 10.2.2.0/24)"),
    ("router bgp 1\n neighbor 10.2.2.2 remote-as 1\n neighbor 10.2.2.2 update-source Loopback9", 9,
     "neighbor 10.2.2.2 update-source: interface Loopback9 is not defined"),
    ("router bgp 1\n neighbor 10.2.2.2 remote-as 1\n neighbor 10.2.2.2 timers 1 2", 10,
     "neighbor 10.2.2.2 timers: holdtime 2 must be 0 or at least 3 seconds"),
    ("router bgp 1\n neighbor 10.2.2.2 remote-as 1\n neighbor 10.2.2.2 weight 5", 10,
     "neighbor 10.2.2.2: unknown option 'weight' (remote-as, peer-group, update-source, route-reflector-client, "
     "next-hop-self, timers, description, activate)"),
    ("router bgp 1\n network 10.1.0.0", 9, "network 10.1.0.0: not a classful network; give 'mask MASK'"),
    ("router bgp 1\n network 10.1.0.0 mask 255.0.0.0", 9,
     "network: 10.1.0.0 has host bits set for mask 255.0.0.0 (expected 10.0.0.0)"),
])
def test_bad_routing_lines_are_one_line_errors(lines: str, line: int, message: str) -> None:
    r = parse_config(BASE + lines + "\nend\n", "x.cfg")
    assert not r.ok and r.config is None
    assert [str(e) for e in r.errors] == [f"x.cfg:{line}: error: {message}"]


def test_unknown_routing_lines_are_warnings() -> None:
    r = parse_config(BASE + " ip ospf frobnicate\nrouter ospf 1\n frobnicate\nrouter bgp 1\n wibble\nend\n", "x.cfg")
    assert r.ok
    assert [(w.line, w.message) for w in r.warnings] == [
        (8, "unknown command in 'interface Tunnel0': 'ip ospf frobnicate'"),
        (10, "unknown command in 'router ospf 1': 'frobnicate'"),
        (12, "unknown command in 'router bgp 1': 'wibble'"),
    ]


def test_passive_interface_naming_an_undefined_interface_is_a_warning() -> None:
    r = parse_config(BASE + "router ospf 1\n passive-interface Loopback0\nend\n", "x.cfg")
    assert r.ok and [(w.line, w.message) for w in r.warnings] == [
        (9, "passive-interface: interface Loopback0 is not defined")]
