"""The overlay routing table (dmvpn.node.routing): connected, local,
static and NHRP routes, longest-prefix match, recursive next hops, the
data path's next hop on the tunnel, and ``show ip route`` (text read back
by genieparser, JSON)."""

from __future__ import annotations

import ipaddress
import json

import pytest

from dmvpn.config import parse_config
from dmvpn.node.routing import Forwarding, NextHopOverride, Route, RouteSource, RoutingTable
from router_lab import HUB_NBMA, HUB_TUN, SPOKE_NBMA, SPOKE_TUN, build, hub_text, results, spoke_text

HUB_LAN, SPOKE_LAN = "192.168.1.1", "192.168.2.1"
HUB_EXTRA = ("interface Loopback0\n ip address 192.168.1.1 255.255.255.0\n!\n"
             "ip route 192.168.2.0 255.255.255.0 10.2.2.2\n!\n")
SPOKE_EXTRA = ("interface Loopback0\n ip address 192.168.2.1 255.255.255.0\n!\n"
               "ip route 192.168.1.0 255.255.255.0 10.2.2.1\n!\n")


def net(text: str) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(text)


def table() -> RoutingTable:
    interfaces = {"GigabitEthernet1": ipaddress.IPv4Interface("172.17.3.1/24"),
                  "Tunnel0": ipaddress.IPv4Interface("10.0.0.1/24"),
                  "Loopback0": ipaddress.IPv4Interface("192.168.1.1/32")}
    static = [Route(net("10.2.2.0/24"), RouteSource.STATIC, None, ipaddress.IPv4Address("10.0.0.2"), 1),
              Route(net("10.2.0.0/16"), RouteSource.STATIC, "Tunnel0", None, 1),
              Route(net("0.0.0.0/0"), RouteSource.STATIC, None, ipaddress.IPv4Address("172.17.3.254"), 1),
              # recursive: next hop behind the 10.2.2.0/24 route
              Route(net("10.9.0.0/16"), RouteSource.STATIC, None, ipaddress.IPv4Address("10.2.2.7"), 1),
              # next hop reached through the default route
              Route(net("10.8.0.0/16"), RouteSource.STATIC, None, ipaddress.IPv4Address("203.0.113.1"), 1)]
    return RoutingTable(interfaces, static)


def hop(t: RoutingTable, dst: str) -> tuple[str, str] | None:
    f = t.lookup(dst)
    return (f.interface, f.next_hop) if f is not None else None


def test_longest_prefix_recursion_and_connected() -> None:
    t = table()
    assert hop(t, "10.0.0.9") == ("Tunnel0", "10.0.0.9")          # connected: the destination itself
    assert hop(t, "10.0.0.1") == ("Tunnel0", "10.0.0.1")          # local /32
    assert hop(t, "10.2.2.5") == ("Tunnel0", "10.0.0.2")          # /24 beats /16
    assert hop(t, "10.2.3.5") == ("Tunnel0", "10.2.3.5")          # interface route: directly connected
    assert hop(t, "10.9.1.1") == ("Tunnel0", "10.0.0.2")          # resolved through 10.2.2.0/24
    assert hop(t, "10.8.1.1") == ("GigabitEthernet1", "172.17.3.254")  # 203.0.113.1 via the default
    assert hop(t, "192.168.1.1") == ("Loopback0", "192.168.1.1")
    assert not any(r.source is RouteSource.LOCAL and r.interface == "Loopback0" for r in t.installed())


def test_no_route_without_default() -> None:
    unreachable = Route(net("10.8.0.0/16"), RouteSource.STATIC, None, ipaddress.IPv4Address("203.0.113.1"), 1)
    t = RoutingTable({"Tunnel0": ipaddress.IPv4Interface("10.0.0.1/24")}, [unreachable])
    assert t.lookup("10.8.0.1") is None and unreachable not in t.installed()   # its next hop has no route
    assert t.lookup("10.1.0.1") is None
    assert t.lookup_packed(bytes([10, 1, 0, 1])) is None


def test_nhrp_routes_and_overrides_through_the_api() -> None:
    t = table()
    assert hop(t, "10.2.2.5") == ("Tunnel0", "10.0.0.2")
    # an NHRP route for a more specific prefix wins by length, not distance
    t.add_route(Route.nhrp(net("10.2.2.0/25"), ipaddress.IPv4Address("10.0.0.3"), "Tunnel0", now=5.0))
    assert hop(t, "10.2.2.5") == ("Tunnel0", "10.0.0.3")
    assert hop(t, "10.2.2.200") == ("Tunnel0", "10.0.0.2")
    # the same prefix as the static route: distance 250 loses to 1
    t.add_route(Route.nhrp(net("10.2.2.0/24"), ipaddress.IPv4Address("10.0.0.4"), "Tunnel0", now=5.0))
    assert hop(t, "10.2.2.200") == ("Tunnel0", "10.0.0.2")
    assert t.remove_route(net("10.2.2.0/25"), RouteSource.NHRP)
    assert not t.remove_route(net("10.2.2.0/25"), RouteSource.NHRP)
    assert hop(t, "10.2.2.5") == ("Tunnel0", "10.0.0.2")
    # a next-hop override (DMVPN phase 3 shortcut) keeps the route, moves the packets
    t.set_override(NextHopOverride(net("10.2.2.0/24"), ipaddress.IPv4Address("10.0.0.5"), "Tunnel0", 6.0))
    found = t.lookup("10.2.2.5")
    assert isinstance(found, Forwarding) and (found.next_hop, found.route.source) == ("10.0.0.5", RouteSource.STATIC)
    assert t.clear_override(net("10.2.2.0/24")) and not t.clear_override(net("10.2.2.0/24"))
    assert hop(t, "10.2.2.5") == ("Tunnel0", "10.0.0.2")
    # removing the static route lets the NHRP candidate in
    assert t.remove_route(net("10.2.2.0/24"), RouteSource.STATIC)
    assert hop(t, "10.2.2.5") == ("Tunnel0", "10.0.0.4")


def routers_with_lans(**kw):
    return build(hub=hub_text(prefix=HUB_EXTRA), spoke=spoke_text(prefix=SPOKE_EXTRA), **kw)


def test_static_route_to_the_peers_loopback_over_the_protected_tunnel() -> None:
    sim, hub, spoke, _ = routers_with_lans()
    sim.admin("HUB", f"ping {SPOKE_LAN} repeat 5")
    sim.run(20.0)
    assert results(hub) == ".!!!!"                      # the first Echo starts IKE
    out_sa = hub.sad.outbound_for(SPOKE_NBMA)
    in_sa = spoke.sad.outbound_for(HUB_NBMA)
    assert out_sa is not None and out_sa.pkts_encaps == 4 and out_sa.selector.protocol == 47
    assert in_sa is not None and in_sa.pkts_encaps == 4  # the spoke's replies, back over ESP
    # sourced from the hub's own LAN: the spoke answers by its static route
    sim.admin("HUB", f"ping {SPOKE_LAN} repeat 3 source Loopback0")
    sim.run(40.0)
    assert results(hub) == "!!!"
    assert out_sa.pkts_encaps == 7 and in_sa.pkts_encaps == 7
    text = sim.admin("HUB", "show ip route")
    assert "\nS     192.168.2.0/24 [1/0] via 10.2.2.2\n" in text
    assert "C        192.168.1.0/24 is directly connected, Loopback0" in text


def test_no_route_drops_are_counted() -> None:
    sim, hub, spoke, _ = routers_with_lans()
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 1")
    sim.run(10.0)
    spoke.routes.remove_route(net("192.168.1.0/24"), RouteSource.STATIC)
    before = spoke.counters.no_route_drops
    sim.admin("HUB", f"ping {SPOKE_LAN} repeat 2 source Loopback0")
    sim.run(20.0)
    assert results(hub) == ".."
    assert spoke.counters.no_route_drops == before + 2   # the replies had nowhere to go
    assert spoke.host.counters.echo_rcvd >= 2


def _route_text(hub) -> str:
    return hub.admin(0.0, "show ip route")


EXPECTED_HUB = """\
Gateway of last resort is not set

      10.0.0.0/8 is variably subnetted, 2 subnets, 2 masks
C        10.2.2.0/24 is directly connected, Tunnel0
L        10.2.2.1/32 is directly connected, Tunnel0
      172.17.0.0/16 is variably subnetted, 2 subnets, 2 masks
C        172.17.3.0/24 is directly connected, GigabitEthernet0/0/2
L        172.17.3.1/32 is directly connected, GigabitEthernet0/0/2
      192.168.1.0/24 is variably subnetted, 2 subnets, 2 masks
C        192.168.1.0/24 is directly connected, Loopback0
L        192.168.1.1/32 is directly connected, Loopback0
S     192.168.2.0/24 [1/0] via 10.2.2.2
"""


def test_show_ip_route_text() -> None:
    _sim, hub, _spoke, _ = routers_with_lans()
    text = _route_text(hub)
    assert text.startswith("Codes: L - local, C - connected, S - static")
    assert text.split("\n\n", 1)[1] == EXPECTED_HUB


def test_show_ip_route_top_level_default_and_nhrp() -> None:
    _sim, hub, _spoke, _ = routers_with_lans()
    hub.routes.add_route(Route(net("0.0.0.0/0"), RouteSource.STATIC, None, ipaddress.IPv4Address("172.17.3.254"), 1))
    hub.routes.add_route(Route.nhrp(net("172.16.0.0/12"), ipaddress.IPv4Address("10.2.2.2"), "Tunnel0", now=0.0))
    text = hub.admin(3725.0, "show ip route")
    assert "Gateway of last resort is 172.17.3.254 to network 0.0.0.0" in text
    assert "\nS*    0.0.0.0/0 [1/0] via 172.17.3.254\n" in text
    assert "\nH     172.16.0.0/12 [250/1] via 10.2.2.2, 01:02:05, Tunnel0\n" in text
    hub.routes.set_override(NextHopOverride(net("192.168.2.0/24"), ipaddress.IPv4Address("10.2.2.9"), "Tunnel0"))
    assert "\nS   % 192.168.2.0/24 [1/0] via 10.2.2.2\n" in hub.admin(0.0, "show ip route")


def _genie(text: str) -> dict:
    from unittest.mock import Mock

    from genie.libs.parser.iosxe.show_routing import ShowIpRoute
    return ShowIpRoute(device=Mock()).cli(output=text)


def test_genieparser_reads_show_ip_route_as_our_json() -> None:
    _sim, hub, _spoke, _ = routers_with_lans()
    hub.routes.add_route(Route(net("0.0.0.0/0"), RouteSource.STATIC, None, ipaddress.IPv4Address("172.17.3.254"), 1))
    hub.routes.add_route(Route.nhrp(net("172.16.0.0/12"), ipaddress.IPv4Address("10.2.2.2"), "Tunnel0", now=0.0))
    hub.routes.add_route(Route(net("172.20.1.0/24"), RouteSource.STATIC, "Tunnel0",
                               ipaddress.IPv4Address("10.2.2.2"), 1))
    hub.routes.set_override(NextHopOverride(net("192.168.2.0/24"), ipaddress.IPv4Address("10.2.2.9"), "Tunnel0"))
    text = hub.admin(100.0, "show ip route")
    assert "      172.20.0.0/24 is subnetted, 1 subnets\nS        172.20.1.0 [1/0] via 10.2.2.2, Tunnel0\n" in text
    parsed = _genie(hub.admin(100.0, "show ip route"))
    ours = json.loads(hub.admin(100.0, "show ip route | json"))
    theirs = parsed["vrf"]["default"]["address_family"]["ipv4"]["routes"]
    mine = ours["vrf"]["default"]["address_family"]["ipv4"]["routes"]
    assert set(theirs) == set(mine) and len(mine) == 10
    for prefix, route in mine.items():
        got = theirs[prefix]
        for key in ("route", "active", "source_protocol", "source_protocol_codes", "route_preference", "metric"):
            assert got.get(key) == route.get(key), (prefix, key, got, route)
        hops = {k: v for k, v in got["next_hop"].get("next_hop_list", {}).items()}
        mine_hops = {int(k): v for k, v in route["next_hop"].get("next_hop_list", {}).items()}
        assert hops == mine_hops, (prefix, got, route)
        assert got["next_hop"].get("outgoing_interface") == route["next_hop"].get("outgoing_interface"), prefix


def test_config_ip_route_errors_are_one_line() -> None:
    bad = parse_config("ip route 10.0.0.0 255.255.255.0\n", "X")
    assert [str(e) for e in bad.errors] == ["X:1: error: ip route: expected PREFIX MASK NEXT-HOP|INTERFACE"]


@pytest.mark.parametrize("dst", [SPOKE_TUN, "10.2.2.77"])
def test_tunnel_next_hop_is_the_destination_on_the_tunnel_subnet(dst: str) -> None:
    _sim, hub, _spoke, _ = routers_with_lans()
    found = hub.routes.lookup(dst)
    assert found is not None and (found.interface, found.next_hop) == ("Tunnel0", dst)


def test_fluid_to_the_peers_lan_follows_the_static_route() -> None:
    from dmvpn.lab.fluid import FluidFlow
    sim, hub, spoke, _ = routers_with_lans()
    path = hub.tunnel_path(SPOKE_LAN)
    assert (path.interface, path.peer, path.local, path.gre_bytes) == ("Tunnel0", SPOKE_NBMA, HUB_NBMA, 8)
    flow = FluidFlow(hub, spoke, SPOKE_LAN, 8e6, 1000, start=5.0, stop=25.0)
    sim.run(30.0)
    assert flow.stats.received_bytes == flow.stats.sent_bytes > 0.9 * flow.stats.offered_bytes
    assert hub.sad.outbound_for(SPOKE_NBMA).bytes == flow.stats.sent_bytes
    with pytest.raises(ValueError, match=r"HUB has no tunnel toward 172\.31\.0\.1"):
        hub.tunnel_path("172.31.0.1")


def test_scenario_flow_and_probe_to_a_peers_loopback(tmp_path) -> None:
    from dmvpn.lab.runner import LabRun
    from dmvpn.lab.scenario import load_scenario
    (tmp_path / "hub.cfg").write_text(hub_text(prefix=HUB_EXTRA))
    (tmp_path / "spoke.cfg").write_text(spoke_text(prefix=SPOKE_EXTRA))
    (tmp_path / "lan.toml").write_text(f"""
[lab]
duration = 60
[[node]]
name = "hub"
config = "hub.cfg"
[[node]]
name = "spoke"
config = "spoke.cfg"
[[link]]
endpoints = ["hub:GigabitEthernet0/0/2", "spoke:GigabitEthernet0/0/2"]
[[flow]]
src = "hub"
dst = "{SPOKE_LAN}"
rate_mbps = 10
start = 5
[[probe]]
src = "spoke"
dst = "{HUB_LAN}"
start = 5
[[show]]
at = 30
node = "hub"
command = "show ip route"
""")
    result = LabRun(load_scenario(tmp_path / "lan.toml")).run()
    (flow,) = result.flows
    assert flow.stats.received_bytes == flow.stats.sent_bytes > 0.8 * flow.stats.offered_bytes
    (probe,) = result.probes
    assert probe.received >= probe.sent - 2 > 40
    ((_spec, text),) = result.shows
    assert "\nS     192.168.2.0/24 [1/0] via 10.2.2.2\n" in text
