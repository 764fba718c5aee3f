"""FRR beside the router, for real: two namespaces joined by TUN devices
and a relay (tests/data/real/tun_relay.py, a two-point stand-in for the
daemon's mGRE tunnel), FRR started from each node's IOS config by
:class:`~dmvpn.runtime.real.frr.FrrInstance`.

OSPF over the TUN devices reaches FULL with the network types a DMVPN
config uses (broadcast with the hub as DR, point-to-multipoint) and
installs the other LAN in the kernel (``proto ospf``); iBGP with the hub's
``bgp listen range`` reaches Established and installs ``proto bgp``
routes; the IOS-form show output parses with genieparser to the values
FRR's JSON holds; stopping leaves no process, file or route.

Root only; FRR missing is a failure (scripts/setup.sh installs it). Run
under ``flock /tmp/dmvpn-netns.lock`` like the other namespace tests."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "data" / "real"))
from real_lab import require_root_tools, sh, wait_for

from dmvpn.config import parse_config
from dmvpn.runtime.real.frr import FrrError, FrrInstance, check_installed
from test_show_support import genie_parse

RELAY = Path(__file__).parent / "data" / "real" / "tun_relay.py"
PREFIX = f"frr{os.getpid()}"
NODES = ("a", "b")
TUN = {"a": "10.2.2.1", "b": "10.2.2.2"}
LAN = {"a": "192.168.1", "b": "192.168.2"}
IFNAMES = {"Tunnel0": "tun0", "GigabitEthernet0/1": "lan0"}
NAMES = {"a": "HUB", "b": "SPOKE"}
#: The router IDs IOS picks without a router-id line (the highest address),
#: written into the FRR configs.
RID = {"a": "192.168.1.1", "b": "192.168.2.1"}


def _ns(node: str) -> str:
    return f"{PREFIX}-{node}"


class Pair:
    """Two namespaces, a relay between their TUN devices, the FRR
    instances started on them; :meth:`cleanup` removes all (by PID)."""

    def __init__(self) -> None:
        self.run = Path("/run") / f"dmvpn-{PREFIX}"  # searchable by user frr, unlike pytest's tmp_path
        self.relay: subprocess.Popen[str] | None = None
        self.frr: dict[str, FrrInstance] = {}

    def build(self) -> None:
        for node in NODES:
            ns = _ns(node)
            sh("ip", "netns", "add", ns)
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
               "net.ipv6.conf.default.disable_ipv6=1")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "link", "add", "lan0", "type", "veth", "peer", "name", "lan0p")
            sh("ip", "-n", ns, "addr", "add", f"{LAN[node]}.1/24", "dev", "lan0")
            sh("ip", "-n", ns, "link", "set", "lan0p", "up")
            sh("ip", "-n", ns, "link", "set", "lan0", "up")
        self.relay = subprocess.Popen([sys.executable, str(RELAY), _ns("a"), "tun0", _ns("b"), "tun0"],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self.relay.stdout is not None and self.relay.stdout.readline().strip() == "ready"
        for node in NODES:
            sh("ip", "-n", _ns(node), "addr", "add", f"{TUN[node]}/24", "dev", "tun0")
            sh("ip", "-n", _ns(node), "link", "set", "tun0", "mtu", "1400", "up")

    def start(self, configs: dict[str, str]) -> None:
        for node in NODES:
            result = parse_config(configs[node], f"{node}.cfg")
            assert result.config is not None, result.errors
            inst = FrrInstance(_ns(node), result.config, IFNAMES, self.run / f"frr-{node}")
            self.frr[node] = inst
            inst.start()

    def cleanup(self) -> None:
        for inst in self.frr.values():
            inst.stop()
        if self.relay is not None:
            self.relay.kill()
            self.relay.wait()
        for node in NODES:
            subprocess.run(["ip", "netns", "del", _ns(node)], capture_output=True, timeout=30)
        shutil.rmtree(self.run, ignore_errors=True)


@pytest.fixture
def pair() -> Iterator[Pair]:
    require_root_tools("vtysh")
    check_installed()
    p = Pair()
    try:
        p.build()
        yield p
    finally:
        p.cleanup()
    assert not [ns for ns in sh("ip", "netns", "list").stdout.split() if ns.startswith(PREFIX)]


def _config(node: str, tunnel_lines: str, routing: str) -> str:
    return (f"hostname {NAMES[node]}\n"
            f"interface GigabitEthernet0/1\n ip address {LAN[node]}.1 255.255.255.0\n"
            f"interface Tunnel0\n ip address {TUN[node]} 255.255.255.0\n{tunnel_lines}"
            f" tunnel source GigabitEthernet0/1\n tunnel mode gre multipoint\n{routing}end\n")


def ospf_configs(network: str) -> dict[str, str]:
    """The seed's OSPF lines with fast timers; the LAN by a ``network``
    statement, so the translation mixes both ways of enabling OSPF."""
    def lines(node: str) -> str:
        prio = f" ip ospf priority {255 if node == 'a' else 0}\n" if network == "broadcast" else ""
        return (f" ip ospf network {network}\n{prio} ip ospf mtu-ignore\n ip ospf 1 area 0\n"
                " ip ospf hello-interval 1\n ip ospf dead-interval 4\n")
    routing = "router ospf 1\n network {lan}.0 0.0.0.255 area 0\n passive-interface GigabitEthernet0/1\n"
    return {n: _config(n, lines(n), routing.format(lan=LAN[n])) for n in NODES}


def _kernel_routes(node: str, proto: str) -> str:
    return sh("ip", "-n", _ns(node), "route", "show", "proto", proto).stdout


def _other(node: str) -> str:
    return "b" if node == "a" else "a"


def _full(pair: Pair, node: str) -> bool:
    neighbors = pair.frr[node].vty.json("show ip ospf neighbor").get("neighbors", {})
    entries = neighbors.get(RID[_other(node)], [])
    return bool(entries) and str(entries[0].get("nbrState", "")).startswith("Full")


@pytest.mark.parametrize(("network", "states"), [
    ("broadcast", {"a": "FULL/DROTHER", "b": "FULL/DR"}),
    ("point-to-multipoint", {"a": "FULL/  -", "b": "FULL/  -"}),
])
def test_ospf_over_tun_reaches_full_and_installs_the_other_lan(pair: Pair, network: str,
                                                               states: dict[str, str]) -> None:
    pair.start(ospf_configs(network))
    for node in NODES:
        wait_for(lambda node=node: _full(pair, node), 30, f"OSPF FULL on {node} ({network})", interval=0.2)
    for node in NODES:
        other = _other(node)
        wait_for(lambda node=node, other=other: f"{LAN[other]}.0/24" in _kernel_routes(node, "ospf"), 15,
                 f"{LAN[other]}.0/24 proto ospf in {node}'s kernel", interval=0.2)
        route = _kernel_routes(node, "ospf")
        assert f"{LAN[other]}.0/24 " in route and f"via {TUN[other]} dev tun0" in route, route
        # genieparser reads our IOS text to what FRR's JSON says
        text = pair.frr[node].show("show ip ospf neighbor")
        parsed = genie_parse("iosxe", "show ip ospf neighbor", text)
        nbr = parsed["interfaces"]["Tunnel0"]["neighbors"][RID[other]]
        assert (nbr["state"], nbr["address"]) == (states[node], TUN[other]), text
        frr = pair.frr[node].vty.json("show ip ospf neighbor")["neighbors"][RID[other]][0]
        assert nbr["priority"] == frr["nbrPriority"]
        routes = genie_parse("iosxe", "show ip route", pair.frr[node].show("show ip route"))
        lan = routes["vrf"]["default"]["address_family"]["ipv4"]["routes"][f"{LAN[other]}.0/24"]
        hop = lan["next_hop"]["next_hop_list"]["1"]
        assert (lan["source_protocol"], lan["route_preference"], hop["next_hop"], hop["outgoing_interface"]) == (
            "ospf", 110, TUN[other], "Tunnel0")
        own = routes["vrf"]["default"]["address_family"]["ipv4"]["routes"][f"{LAN[node]}.0/24"]
        assert own["source_protocol"] == "connected"
        assert "GigabitEthernet0/1" in own["next_hop"]["outgoing_interface"]
        # the command line answers from the instance's directory, abbreviations and all
        cli = subprocess.run([sys.executable, "-m", "dmvpn", "show", "--frr", str(pair.frr[node].run_dir),
                              "ip", "os", "nei"], capture_output=True, text=True, timeout=60)
        assert cli.returncode == 0, cli.stderr
        by_cli = genie_parse("iosxe", "show ip ospf neighbor", cli.stdout)["interfaces"]["Tunnel0"]["neighbors"]
        assert by_cli[RID[other]]["state"] == states[node]
    _stop_leaves_nothing(pair, "ospf")


def bgp_configs() -> dict[str, str]:
    """iBGP the DMVPN way: the hub takes any spoke of the tunnel's subnet
    (``bgp listen range``) as a route-reflector client; the spoke peers with
    the hub's tunnel address. Each announces its LAN."""
    hub = ("router bgp 65000\n bgp listen range 10.2.2.0/24 peer-group SPOKES\n"
           " neighbor SPOKES peer-group\n neighbor SPOKES remote-as 65000\n neighbor SPOKES timers 1 3\n"
           " address-family ipv4\n  neighbor SPOKES route-reflector-client\n"
           "  network 192.168.1.0 mask 255.255.255.0\n exit-address-family\n")
    spoke = ("router bgp 65000\n neighbor 10.2.2.1 remote-as 65000\n neighbor 10.2.2.1 timers 1 3\n"
             " network 192.168.2.0 mask 255.255.255.0\n")
    return {"a": _config("a", "", hub), "b": _config("b", "", spoke)}


def _established(pair: Pair, node: str) -> bool:
    peers = pair.frr[node].vty.json("show ip bgp summary").get("ipv4Unicast", {}).get("peers", {})
    return peers.get(TUN[_other(node)], {}).get("state") == "Established"


def test_bgp_over_tun_with_a_listen_range_reaches_established(pair: Pair) -> None:
    pair.start(bgp_configs())
    for node in NODES:
        wait_for(lambda node=node: _established(pair, node), 30, f"BGP Established on {node}", interval=0.2)
    for node in NODES:
        other = _other(node)
        wait_for(lambda node=node, other=other: f"{LAN[other]}.0/24" in _kernel_routes(node, "bgp"), 15,
                 f"{LAN[other]}.0/24 proto bgp in {node}'s kernel", interval=0.2)
        assert f"via {TUN[other]} dev tun0" in _kernel_routes(node, "bgp")
        text = pair.frr[node].show("show ip bgp summary")
        parsed = genie_parse("iosxe", "show ip bgp summary", text)
        frr = pair.frr[node].vty.json("show ip bgp summary")["ipv4Unicast"]
        entry = parsed["vrf"]["default"]["neighbor"][TUN[other]]["address_family"][""]
        assert (entry["as"], entry["state_pfxrcd"], entry["route_identifier"], entry["local_as"]) == (
            65000, "1", frr["routerId"], 65000), text
        assert entry["msg_rcvd"] == frr["peers"][TUN[other]]["msgRcvd"] or entry["msg_rcvd"] > 0
        assert (node == "a") == text.splitlines()[5].startswith("*"), text  # the hub's peer is dynamic
        routes = genie_parse("iosxe", "show ip route", pair.frr[node].show("show ip route"))
        lan = routes["vrf"]["default"]["address_family"]["ipv4"]["routes"][f"{LAN[other]}.0/24"]
        assert (lan["source_protocol"], lan["route_preference"]) == ("bgp", 200)
    _stop_leaves_nothing(pair, "bgp")


def _stop_leaves_nothing(pair: Pair, proto: str) -> None:
    for node, inst in pair.frr.items():
        pids = list(inst.pids.values())
        assert len(pids) == 2
        inst.stop()
        for pid in pids:
            assert not Path(f"/proc/{pid}").exists(), f"FRR pid {pid} still there"
        assert not inst.run_dir.exists()
        assert _kernel_routes(node, proto) == "", f"{proto} routes left in {node}'s kernel"


def test_a_config_line_frr_rejects_fails_start_before_any_daemon_runs() -> None:
    """FRR 8.4 logs a line it rejects and carries on (exit status 0); the
    ``-C`` dry run catches it, so nothing starts with a setting missing."""
    require_root_tools("vtysh")
    check_installed()
    config = parse_config(ospf_configs("broadcast")["a"], "a.cfg").config
    assert config is not None
    inst = FrrInstance(None, config, IFNAMES, Path("/run") / f"dmvpn-{PREFIX}-dry")
    inst.frr = dataclasses.replace(inst.frr, ospfd=inst.frr.text("ospfd").replace(
        "ip ospf mtu-ignore", "ip ospf mtu-ignroe"))
    with pytest.raises(FrrError, match=r"^ospfd rejects its config .*ospfd\.conf: .*No such command on config "
                                       r"line \d+:\s+ip ospf mtu-ignroe$"):
        inst.start()
    assert inst.pids == {} and not inst.run_dir.exists()
