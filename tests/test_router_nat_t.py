"""Forced NAT traversal (``Router(force_nat_t=True)``, ``dmvpn run
--force-nat-t``): with no NAT on the path, a router that claims one makes
both ends float IKE to UDP 4500 and carry ESP in UDP (RFC 3947 / RFC 3948;
for IKEv2 RFC 7296 2.23), as strongSwan's ``encap = yes`` does. tshark
reads the wire."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from dmvpn.config import parse_config
from dmvpn.node.router import Router
from dmvpn.runtime.sim import LinkParams, Simulator
from ikev2_lab import ikev2
from router_lab import HUB_TUN, WAN, hub_text, results, spoke_text


def build(force_hub: bool, force_spoke: bool, v2: bool = False):
    sim = Simulator(seed=3)
    routers = {}
    for name, text, force in (("HUB", hub_text(), force_hub), ("SPOKE1", spoke_text(), force_spoke)):
        text = ikev2(text) if v2 else text
        config = parse_config(text, name).config
        routers[name] = Router(config, sim.random_for(name), "cisco-iosxe", name=name, force_nat_t=force,
                               nhrp=False)
        sim.add_node(routers[name])
    wan = sim.connect("HUB", WAN, "SPOKE1", WAN, LinkParams(delay=0.002))
    return sim, routers["HUB"], routers["SPOKE1"], wan


@pytest.mark.parametrize("forced", ["spoke", "hub"])
def test_either_side_forcing_puts_esp_in_udp_4500(forced, tmp_path):
    tshark = shutil.which("tshark")
    assert tshark, "tshark is required for this test"
    sim, hub, spoke, wan = build(forced == "hub", forced == "spoke")
    pcap = tmp_path / "wan.pcap"
    sim.capture(wan, pcap)
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 5")
    sim.run(20.0)
    sim.close()
    assert results(spoke) == ".!!!!"
    for router in (hub, spoke):
        assert router.ike.sas[0].nat_detected
        assert {sa.udp_encap for sa in router.sad.all()} == {(4500, 4500)}
        show = router.admin(sim.now, "show crypto ipsec sa")
        assert "Transport UDP-Encaps" in show and "port 4500" in show, show
    rows = subprocess.run([tshark, "-r", str(pcap), "-T", "fields", "-e", "ip.proto", "-e", "udp.dstport",
                           "-e", "frame.protocols"], capture_output=True, text=True, check=True).stdout.splitlines()
    fields = [r.split("\t") for r in rows]
    assert fields and all(proto == "17" for proto, _, _ in fields), "an IP protocol other than UDP on the wire"
    # Main Mode 1-4 on 500, then everything on 4500: IKE behind the non-ESP marker, ESP in UDP.
    assert [port for _, port, _ in fields[:4]] == ["500"] * 4
    assert {port for _, port, _ in fields[4:]} == {"4500"}
    esp = [p for _, _, p in fields if p.endswith(":udp:udpencap:esp")]
    assert len(esp) == 8, fields


def test_without_forcing_no_nat_means_plain_esp():
    sim, hub, spoke, _ = build(False, False)
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 3")
    sim.run(20.0)
    assert results(spoke) == ".!!"
    assert not hub.ike.sas[0].nat_detected
    assert {sa.udp_encap for sa in spoke.sad.all()} == {None}


@pytest.mark.parametrize("forced", ["spoke", "hub"])
def test_ikev2_either_side_forcing_floats_after_ike_sa_init(forced, tmp_path):
    """IKEv2: the forced side's NAT_DETECTION_SOURCE_IP hashes no address of
    its own, so both see a NAT: IKE_SA_INIT on 500, IKE_AUTH and all
    later IKE on 4500 behind the non-ESP marker, ESP in UDP."""
    tshark = shutil.which("tshark")
    assert tshark, "tshark is required for this test"
    sim, hub, spoke, wan = build(forced == "hub", forced == "spoke", v2=True)
    pcap = tmp_path / "wan.pcap"
    sim.capture(wan, pcap)
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 5")
    sim.run(20.0)
    sim.close()
    assert results(spoke) == ".!!!!"
    for router in (hub, spoke):
        (sa,) = router.ike.sas
        assert sa.nat and (sa.local_port, sa.peer_port) == (4500, 4500)
        assert {s.udp_encap for s in router.sad.all()} == {(4500, 4500)}
        show = router.admin(sim.now, "show crypto ipsec sa")
        assert "Transport UDP-Encaps" in show and "port 4500" in show, show
    rows = subprocess.run([tshark, "-r", str(pcap), "-T", "fields", "-e", "udp.dstport", "-e", "isakmp.exchangetype",
                           "-e", "frame.protocols"], capture_output=True, text=True, check=True).stdout.splitlines()
    fields = [r.split("\t") for r in rows]
    assert [(port, xchg) for port, xchg, _ in fields[:2]] == [("500", "34")] * 2  # IKE_SA_INIT
    assert {port for port, _, _ in fields[2:]} == {"4500"}
    assert [xchg for _, xchg, _ in fields[2:4]] == ["35", "35"]  # IKE_AUTH behind the non-ESP marker
    assert len([p for _, _, p in fields if p.endswith(":udp:udpencap:esp")]) == 8, fields


def test_ikev2_without_forcing_no_nat_means_plain_esp():
    sim, hub, spoke, _ = build(False, False, v2=True)
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 3")
    sim.run(20.0)
    assert results(spoke) == ".!!"
    assert not hub.ike.sas[0].nat and hub.ike.sas[0].local_port == 500
    assert {sa.udp_encap for sa in spoke.sad.all()} == {None}
