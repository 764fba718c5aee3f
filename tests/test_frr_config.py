"""The routing model translated for FRR (:mod:`dmvpn.routing.frr_config`):
IOS defaults written out where FRR's differ, interfaces renamed to their
Linux devices, IOS's mixing of ``network`` and ``ip ospf N area A``
turned into what FRR accepts. FRR itself checks these texts in
tests/test_frr_real.py (``-C`` dry run, then adjacency)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dmvpn.config import load_config, parse_config
from dmvpn.routing.frr_config import FrrConfigError, translate
from test_config_routing import HUB

SEED = Path("/work/shared/seed")


def _config(text: str):
    result = parse_config(text, "x.cfg")
    assert result.config is not None, result.errors
    return result.config


def _block(text: str, opener: str) -> list[str]:
    """The lines of the block ``opener`` opens in an FRR config text."""
    lines = text.splitlines()
    start = lines.index(opener) + 1
    end = next(i for i in range(start, len(lines)) if lines[i] == "!")
    return lines[start:end]


def test_seed_hub_and_spoke_become_broadcast_ospf_on_the_tun_device() -> None:
    for name, priority in (("hub.cfg", 255), ("spoke.cfg", 0)):
        frr = translate(load_config(SEED / name), {"Tunnel0": "dmvpn-tun0", "GigabitEthernet0/0/2": "gi0-0-2"})
        assert frr.daemons == ("zebra", "ospfd")
        assert _block(frr.text("ospfd"), "interface dmvpn-tun0") == [
            " ip ospf network broadcast", " ip ospf hello-interval 10", " ip ospf dead-interval 40",
            f" ip ospf priority {priority}", " ip ospf mtu-ignore", " ip ospf area 0.0.0.0"]
        # no router-id line: IOS's choice (the highest address) is written out
        assert _block(frr.text("ospfd"), "router ospf") == [" ospf router-id 172.17.3.1" if name == "hub.cfg"
                                                            else " ospf router-id 172.17.3.2"]
        assert "interface gi0-0-2" not in frr.text("ospfd")  # no OSPF there
        assert frr.text("zebra").splitlines()[:2] == ["frr defaults traditional",
                                                      f"hostname {'HUB' if name == 'hub.cfg' else 'SPOKE1'}"]


def test_ios_defaults_are_written_where_frr_differs() -> None:
    base = ("interface Tunnel0\n ip address 10.2.2.1 255.255.255.0\n{lines} ip ospf 1 area 0\n"
            "interface GigabitEthernet1\n ip address 192.168.1.1 255.255.255.0\n ip ospf 1 area 0\nend\n")
    names = {"Tunnel0": "tun0", "GigabitEthernet1": "eth1"}
    # a Tunnel is point-to-point in IOS, other interfaces broadcast (FRR: from the Linux flags)
    frr = translate(_config(base.format(lines="")), names).text("ospfd")
    assert _block(frr, "interface tun0")[0] == " ip ospf network point-to-point"
    assert _block(frr, "interface eth1")[0] == " ip ospf network broadcast"
    # point-to-multipoint: IOS hellos every 30 s, dead after 120 s (FRR: 10/40)
    frr = translate(_config(base.format(lines=" ip ospf network point-to-multipoint\n")), names).text("ospfd")
    assert _block(frr, "interface tun0")[:3] == [" ip ospf network point-to-multipoint",
                                                 " ip ospf hello-interval 30", " ip ospf dead-interval 120"]
    # a hello without a dead interval: IOS takes four hellos
    frr = translate(_config(base.format(lines=" ip ospf hello-interval 3\n")), names).text("ospfd")
    assert _block(frr, "interface tun0")[1:3] == [" ip ospf hello-interval 3", " ip ospf dead-interval 12"]
    # RxmtInterval given: FRR is told; not given: FRR keeps its (and IOS's) 5 s
    frr = translate(_config(base.format(lines=" ip ospf retransmit-interval 1\n")), names).text("ospfd")
    assert " ip ospf retransmit-interval 1" in _block(frr, "interface tun0")
    frr = translate(_config(base.format(lines="")), names).text("ospfd")
    assert not any("retransmit" in line for line in _block(frr, "interface tun0"))


def test_hub_with_network_statements_and_interface_areas_and_bgp() -> None:
    frr = translate(_config(HUB), {"Tunnel0": "tun0", "GigabitEthernet0/0/2": "gi0-0-2"})
    assert frr.daemons == ("zebra", "ospfd", "bgpd")
    ospfd = frr.text("ospfd")
    # FRR refuses "ip ospf area" beside "network": the interface's subnet becomes a network line
    assert "ip ospf area" not in ospfd
    assert _block(ospfd, "router ospf") == [
        " ospf router-id 1.1.1.1", " network 192.168.0.0/16 area 0.0.0.1", " network 10.2.2.0/24 area 0.0.0.0",
        " redistribute connected"]
    assert _block(ospfd, "interface tun0") == [
        " ip ospf network point-to-multipoint", " ip ospf hello-interval 1", " ip ospf dead-interval 4",
        " ip ospf priority 200", " ip ospf cost 5", " ip ospf mtu-ignore"]
    bgpd = frr.text("bgpd").splitlines()
    assert bgpd[bgpd.index("router bgp 65000") + 1:] == [
        " bgp router-id 1.1.1.1",
        " no bgp ebgp-requires-policy",
        " neighbor SPOKES peer-group",
        " neighbor SPOKES remote-as 65000",
        " neighbor SPOKES timers 1 3",
        " neighbor 172.17.3.9 remote-as 65546",
        " neighbor 172.17.3.9 update-source gi0-0-2",
        " bgp listen range 10.2.2.0/24 peer-group SPOKES",
        " !",
        " address-family ipv4 unicast",
        "  neighbor SPOKES route-reflector-client",
        "  network 192.168.1.0/24",
        "  network 10.0.0.0/8",
        "  redistribute connected",
        " exit-address-family",
        "!",
    ]


def test_passive_interfaces_and_unmapped_ones() -> None:
    text = ("interface Tunnel0\n ip address 10.2.2.1 255.255.255.0\n ip ospf 1 area 0\n"
            "interface GigabitEthernet1\n ip address 192.168.1.1 255.255.255.0\n ip ospf 1 area 0\n"
            "interface Loopback0\n ip address 1.1.1.1 255.255.255.255\n ip ospf 1 area 0\n"
            "router ospf 1\n passive-interface default\n no passive-interface Tunnel0\nend\n")
    frr = translate(_config(text), {"Tunnel0": "tun0", "GigabitEthernet1": "eth1"})
    ospfd = frr.text("ospfd")
    assert " ip ospf passive" in _block(ospfd, "interface eth1")
    assert " ip ospf passive" not in _block(ospfd, "interface tun0")
    assert frr.skipped == ("Loopback0: no Linux interface",)
    assert _block(ospfd, "router ospf") == [" ospf router-id 1.1.1.1"]  # the Loopback's, as IOS picks


def test_what_frr_cannot_be_given_is_one_line_naming_the_config_line() -> None:
    two = _config("router ospf 1\nrouter ospf 2\nend\n")
    with pytest.raises(FrrConfigError, match=r"^x\.cfg:2: router ospf 2: FRR runs one OSPF process"):
        translate(two, {})
    source = _config("interface GigabitEthernet1\n no ip address\nrouter bgp 1\n neighbor 10.0.0.1 remote-as 2\n"
                     " neighbor 10.0.0.1 update-source GigabitEthernet1\nend\n")
    with pytest.raises(FrrConfigError, match=r"^x\.cfg:4: neighbor 10.0.0.1 update-source GigabitEthernet1: "):
        translate(source, {})


def test_daemon_ifnames_are_the_devices_dmvpn_run_and_netlab_make() -> None:
    from dmvpn.lab.netlab import linux_ifname
    from dmvpn.runtime.real.frr import daemon_ifnames

    names = daemon_ifnames(load_config(SEED / "hub.cfg"), "dmvpn-tun0", linux_ifname)
    assert names == {"GigabitEthernet0/0/2": "gi0-0-2", "Tunnel0": "dmvpn-tun0"}
