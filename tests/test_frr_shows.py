"""The routing shows rendered from FRR's JSON (:mod:`dmvpn.show.frr_shows`)
against genieparser's iosxe parsers. The JSON in tests/data/frr was
recorded from FRR 8.4.4 over the TUN pair of tests/test_frr_real.py
(point-to-multipoint OSPF; iBGP with the hub's listen range); the live
test checks the same against running daemons."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dmvpn.show import frr_shows
from test_show_support import genie_parse

DATA = Path(__file__).parent / "data" / "frr"
NAMES = {"tun0": "Tunnel0", "lan0": "GigabitEthernet0/1"}
TUN = {"a": "10.2.2.1", "b": "10.2.2.2"}
RID = {"a": "192.168.1.1", "b": "192.168.2.1"}
LAN = {"a": "192.168.1.0/24", "b": "192.168.2.0/24"}


def _load(name: str) -> Any:
    return json.loads((DATA / f"{name}.json").read_text())


def _other(node: str) -> str:
    return "b" if node == "a" else "a"


@pytest.mark.parametrize("node", ["a", "b"])
def test_recorded_ospf_neighbor_reads_back_through_genie(node: str) -> None:
    data = _load(f"point-to-multipoint-{node}-show_ip_ospf_neighbor")
    interfaces = _load(f"point-to-multipoint-{node}-show_ip_ospf_interface")
    text = frr_shows.render("ip-ospf-neighbor", data, NAMES, interfaces)
    parsed = genie_parse("iosxe", "show ip ospf neighbor", text)
    (frr,) = data["neighbors"][RID[_other(node)]]
    nbr = parsed["interfaces"]["Tunnel0"]["neighbors"][RID[_other(node)]]
    # point-to-multipoint elects no DR: FRR says Full/DROther, IOS prints FULL/  -
    assert frr["nbrState"] == "Full/DROther"
    assert nbr == {"priority": frr["nbrPriority"], "state": "FULL/  -", "address": TUN[_other(node)],
                   "dead_time": nbr["dead_time"]}
    seconds = round(frr["deadTimeMsecs"] / 1000)
    assert nbr["dead_time"] == f"00:00:{seconds:02d}"


@pytest.mark.parametrize(("kind", "protocol", "distance"), [("point-to-multipoint", "ospf", 110),
                                                             ("bgp", "bgp", 200)])
@pytest.mark.parametrize("node", ["a", "b"])
def test_recorded_ip_route_reads_back_through_genie(node: str, kind: str, protocol: str, distance: int) -> None:
    data = _load(f"{kind}-{node}-show_ip_route")
    text = frr_shows.render("ip-route", data, NAMES)
    routes = genie_parse("iosxe", "show ip route", text)["vrf"]["default"]["address_family"]["ipv4"]["routes"]
    selected = {prefix for prefix, entries in data.items() if any(e.get("selected") for e in entries)}
    assert set(routes) == selected
    far = routes[LAN[_other(node)]]
    (frr,) = [e for e in data[LAN[_other(node)]] if e.get("selected")]
    assert (far["source_protocol"], far["route_preference"], far["metric"]) == (protocol, distance, frr["metric"])
    assert frr["protocol"] == protocol and frr["distance"] == distance
    hop = far["next_hop"]["next_hop_list"]["1"]
    assert (hop["next_hop"], hop["outgoing_interface"]) == (TUN[_other(node)], "Tunnel0")
    near = routes[LAN[node]]
    assert near["source_protocol"] == "connected"
    assert list(near["next_hop"]["outgoing_interface"]) == ["GigabitEthernet0/1"]


@pytest.mark.parametrize("node", ["a", "b"])
def test_recorded_bgp_summary_reads_back_through_genie(node: str) -> None:
    data = _load(f"bgp-{node}-show_ip_bgp_summary")
    text = frr_shows.render("ip-bgp-summary", data, NAMES)
    parsed = genie_parse("iosxe", "show ip bgp summary", text)
    af = data["ipv4Unicast"]
    peer = af["peers"][TUN[_other(node)]]
    entry = parsed["vrf"]["default"]["neighbor"][TUN[_other(node)]]["address_family"][""]
    assert (entry["route_identifier"], entry["local_as"], entry["as"], entry["msg_rcvd"], entry["msg_sent"],
            entry["state_pfxrcd"], entry["bgp_table_version"]) == (
        af["routerId"], af["as"], peer["remoteAs"], peer["msgRcvd"], peer["msgSent"], str(peer["pfxRcd"]),
        af["tableVersion"])
    assert bool(peer.get("dynamicPeer")) == (node == "a")  # the hub took the spoke from its listen range
    assert ("* Dynamically created based on a listen range command" in text) == (node == "a")


def test_bgp_summary_of_peers_not_up() -> None:
    data = {"ipv4Unicast": {"routerId": "1.1.1.1", "as": 65000, "tableVersion": 1, "ribCount": 0,
                            "ribMemory": 0, "peers": {
                                "10.0.0.9": {"remoteAs": 65009, "version": 4, "msgRcvd": 0, "msgSent": 0,
                                             "tableVersion": 0, "inq": 0, "outq": 0, "peerUptime": "never",
                                             "peerUptimeMsec": 0, "state": "Active",
                                             "connectionsEstablished": 0},
                                "10.0.0.10": {"remoteAs": 65010, "version": 4, "msgRcvd": 10, "msgSent": 11,
                                              "tableVersion": 0, "inq": 0, "outq": 0, "peerUptimeMsec": 90061000,
                                              "state": "Idle (Admin)", "connectionsEstablished": 1}}}}
    text = frr_shows.bgp_summary(data)
    parsed = genie_parse("iosxe", "show ip bgp summary", text)["vrf"]["default"]["neighbor"]
    assert parsed["10.0.0.9"]["address_family"][""]["up_down"] == "never"
    assert parsed["10.0.0.9"]["address_family"][""]["state_pfxrcd"] == "Active"
    assert parsed["10.0.0.10"]["address_family"][""]["up_down"] == "1d1h"
    assert parsed["10.0.0.10"]["address_family"][""]["state_pfxrcd"] == "Idle (Admin)"
    assert frr_shows.bgp_summary({}) == "% BGP not active\n"


@pytest.mark.parametrize(("frr", "dr", "ios"), [
    ("Full/DR", True, "FULL/DR"), ("Full/Backup", True, "FULL/BDR"), ("2-Way/DROther", True, "2WAY/DROTHER"),
    ("ExStart/DROther", True, "EXSTART/DROTHER"), ("Full/DROther", False, "FULL/  -"), ("Init/-", True, "INIT/  -"),
])
def test_ospf_states_in_ios_words(frr: str, dr: bool, ios: str) -> None:
    assert frr_shows.ospf_state(frr, dr) == ios


@pytest.mark.parametrize(("command", "key"), [
    ("show ip ospf neighbor", "ip-ospf-neighbor"), ("sh ip os nei", "ip-ospf-neighbor"),
    ("show ip route", "ip-route"), ("sh ip ro", "ip-route"), ("show ip bgp summary", "ip-bgp-summary"),
])
def test_commands_and_abbreviations(command: str, key: str) -> None:
    assert frr_shows.parse(command) == key and frr_shows.is_frr_show(command)


@pytest.mark.parametrize("command", ["show ip ospf", "show ip route vrf X", "show crypto ipsec sa", "show ip b s x",
                                     "show ip ospf neighbor | json", ""])
def test_other_commands_are_not_frr_shows(command: str) -> None:
    assert not frr_shows.is_frr_show(command)
    with pytest.raises(frr_shows.UnknownShow, match="Invalid input"):
        frr_shows.parse(command)
