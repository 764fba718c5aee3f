"""Crypto maps in the simulator: two sites (tests/data/crypto_map) protect
their LANs with tunnel-mode ESP selected by ACL lines (IOS ``crypto map``,
RFC 4301 sections 4.4.1, 5.1 and 5.2), and the built-in hosts ping across."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from dmvpn.config import parse_config
from dmvpn.ike.keylog import esp_sa_lines
from dmvpn.ipsec.esp import protect
from dmvpn.node.crypto_map import build_maps, kernel_routes
from dmvpn.node.router import Router
from dmvpn.runtime.sim import LinkParams, Simulator
from dmvpn.wire.icmp import IcmpMessage
from dmvpn.wire.ipv4 import IPv4Header
from dmvpn.wire.udp import encode_udp
from test_show_support import genie_parse

DATA = Path(__file__).parent / "data" / "crypto_map"
WAN = "GigabitEthernet0/0"
A_WAN, B_WAN = "192.0.2.1", "192.0.2.2"


def config(name: str):
    result = parse_config((DATA / name).read_text(), name)
    assert not result.errors, [str(e) for e in result.errors]
    return result.config


def sites(seed: int = 3):
    sim = Simulator(seed=seed)
    a = Router(config("site_a.cfg"), sim.random_for("A"), name="A")
    b = Router(config("site_b.cfg"), sim.random_for("B"), name="B")
    sim.add_node(a)
    sim.add_node(b)
    wan = sim.connect("A", WAN, "B", WAN, LinkParams(delay=0.002))
    return sim, a, b, wan


def ping(sim: Simulator, router: Router, command: str, until: float) -> str:
    out = sim.admin(router.name, command)
    assert out.startswith("Type escape sequence"), out
    sim.run(until)
    return "".join(router.host.last.results)


def echo(src: str, dst: str, seq: int = 1) -> bytes:
    return IPv4Header(src, dst, 1, ttl=64).encode(IcmpMessage.echo(reply=False, identifier=7, sequence=seq,
                                                                   data=b"x" * 32).encode())


def test_lan_to_lan_ping_is_protected_in_tunnel_mode_first_echo_triggers_ike():
    sim, a, b, _ = sites()
    assert ping(sim, a, "ping 10.2.0.1 source 10.1.0.1", 20.0) == ".!!!!"
    assert a.crypto_map.counters.no_sa_drops == 1          # dropped, never sent in clear
    assert len(a.ike.sas) == 1 and a.ike.sas[0].initiator
    out = a.sad.outbound_for(B_WAN)
    assert out.mode.value == 1 and out.pkts_encaps == 4     # tunnel mode
    assert str(out.selector.local) == "10.1.0.0/24" and str(out.selector.remote) == "10.2.0.0/24"
    # the other way round rides the same SA pair, no new negotiation
    assert ping(sim, b, "ping 10.1.0.1 source Loopback0 repeat 3", 40.0) == "!!!"
    assert len(b.sad.all()) == 2 and b.crypto_map.counters.no_sa_drops == 0
    # a host line with a protocol gets its own SA pair
    assert ping(sim, a, "ping 10.2.2.1 source 10.1.2.1 repeat 3", 60.0) == ".!!"
    host_sa = [sa for sa in a.sad.all() if sa.selector.protocol == 1]
    assert len(host_sa) == 2 and str(host_sa[0].selector.remote) == "10.2.2.1/32"


def test_traffic_outside_the_acl_goes_in_clear_and_deny_lines_bypass(tmp_path):
    tshark = shutil.which("tshark")
    assert tshark, "tshark is required for this test"
    sim, a, _b, wan = sites()
    pcap = tmp_path / "wan.pcap"
    sim.capture(wan, pcap)
    assert ping(sim, a, "ping 10.2.0.1 source 10.1.0.1 repeat 3", 20.0) == ".!!"
    assert ping(sim, a, "ping 10.2.0.1 source Loopback1 repeat 2", 40.0) == "!!"     # not in the ACL
    sim.close()
    uat = [arg for child in a.ike.children for line in esp_sa_lines(child) for arg in ("-o", "uat:esp_sa:" + line)]
    rows = subprocess.run([tshark, "-r", str(pcap), "-o", "esp.enable_encryption_decode:TRUE", *uat,
                           "-T", "fields", "-e", "frame.protocols", "-e", "ip.src", "-e", "ip.dst"],
                          capture_output=True, text=True, check=True).stdout.splitlines()
    frames = [r.split("\t") for r in rows]
    esp = [f for f in frames if ":esp:" in f[0]]
    clear = [f for f in frames if ":esp:" not in f[0] and f[0].endswith(":ip:icmp:data")]
    # tshark decrypts the tunnel-mode ESP with our keys: LAN-to-LAN Echo/Reply inside
    assert len(esp) == 4 and all(f[0].endswith(":esp:ip:icmp:data") for f in esp), esp
    assert {f[1] for f in esp} == {f"{A_WAN},10.1.0.1", f"{B_WAN},10.2.0.1"}
    assert [(f[1], f[2]) for f in clear] == [("10.1.1.1", "10.2.0.1"), ("10.2.0.1", "10.1.1.1")] * 2
    # a deny line: this entry does not protect 10.1.0.9, the packet leaves in clear
    assert a.crypto_map.outbound(50.0, WAN, echo("10.1.0.9", "10.2.0.1")) == echo("10.1.0.9", "10.2.0.1")


def test_inbound_selector_mismatch_and_clear_traffic_that_should_be_protected_are_dropped():
    sim, a, b, _ = sites()
    assert ping(sim, a, "ping 10.2.0.1 source 10.1.0.1 repeat 2", 20.0) == ".!"
    before = b.host.counters.echo_rcvd
    # RFC 4301 5.2: A's SA for 10.1.0.0/24 <-> 10.2.0.0/24 carrying a packet from 10.9.9.9
    sa = a.sad.outbound_for(B_WAN)
    b.receive(21.0, WAN, protect(sa, 21.0, echo("10.9.9.9", "10.2.0.1")))
    assert b.crypto_map.counters.invalid_identity_drops == 1
    # protected traffic arriving in clear
    b.receive(21.0, WAN, echo("10.1.0.1", "10.2.0.1"))
    assert b.crypto_map.counters.not_ipsec_drops == 1
    assert b.host.counters.echo_rcvd == before and not b.poll_transmit()
    syslog = {e.fields["facility"] for e in b.poll_events()}
    assert {"%CRYPTO-4-RECVD_PKT_INV_IDENTITY_ACL", "%CRYPTO-4-RECVD_PKT_NOT_IPSEC"} <= syslog
    # what matches the selectors still gets through
    b.receive(22.0, WAN, protect(sa, 22.0, echo("10.1.0.5", "10.2.0.1")))
    assert b.host.counters.echo_rcvd == before + 1


def test_show_crypto_ipsec_sa_names_the_map_and_idents_and_genie_reads_it():
    sim, a, _, _ = sites()
    ping(sim, a, "ping 10.2.0.1 source 10.1.0.1 repeat 3", 20.0)
    text = sim.admin("A", "show crypto ipsec sa")
    assert "interface: GigabitEthernet0/0\n    Crypto map tag: CM, local addr 192.0.2.1" in text
    assert "local  ident (addr/mask/prot/port): (10.1.0.0/255.255.255.0/0/0)" in text
    assert "remote ident (addr/mask/prot/port): (10.2.0.0/255.255.255.0/0/0)" in text
    parsed = genie_parse("iosxe", "show crypto ipsec sa", text)
    iface = parsed["interface"][WAN]
    assert iface["crypto_map_tag"] == "CM" and iface["local_addr"] == A_WAN
    ident = iface["ident"]["1"]
    assert ident["local_ident"] == {"addr": "10.1.0.0", "mask": "255.255.255.0", "prot": "0", "port": "0"}
    assert ident["remote_ident"]["addr"] == "10.2.0.0" and ident["peer_ip"] == B_WAN
    (inbound,) = ident["inbound_esp_sas"]["spi"].values()
    assert ident["pkts_encaps"] == 2 and inbound["in_use_settings"].startswith("Tunnel")
    assert inbound["crypto_map"] == "CM"


def test_ping_source_and_routes():
    sim, a, _, _ = sites()
    assert sim.admin("A", "ping 10.2.0.1 source 10.7.7.7").startswith("% Invalid source address")
    assert sim.admin("A", "ping 172.16.0.1") == "% No route to 172.16.0.1"
    assert a.routes.lookup("10.2.3.4").interface == WAN and a.routes.lookup("10.1.1.9").interface == "Loopback1"
    maps = build_maps(a.config, a.policies)
    assert list(maps) == [WAN] and maps[WAN].local == A_WAN
    assert [str(n) for n in kernel_routes(maps[WAN])] == ["10.2.0.0/24", "10.2.2.1/32", "10.2.0.1/32"]


def test_port_lines_match_tcp_udp_ports_only():
    _sim, a, _, _ = sites()
    dns = IPv4Header("10.1.1.1", "10.2.0.1", 17).encode(encode_udp("10.1.1.1", "10.2.0.1", 5353, 53, b"q"))
    other = IPv4Header("10.1.1.1", "10.2.0.1", 17).encode(encode_udp("10.1.1.1", "10.2.0.1", 5353, 54, b"q"))
    assert a.crypto_map.outbound(1.0, WAN, other) == other            # no line: in clear
    assert a.crypto_map.outbound(1.0, WAN, dns) is None               # port 53: protected, no SA yet
    assert a.crypto_map.counters.no_sa_drops == 1
    (request,) = a.ike.sas[0].pending                                 # IKE asked for the line's selector
    assert request.selector.protocol == 17 and str(request.selector.local) == "10.1.1.0/24"
    assert str(request.selector.remote) == "10.2.0.1/32" and request.peer == B_WAN


def test_responder_behind_nat_accepts_host_acl_ids_as_sent():
    """RFC 3947 5.2 host-ID substitution is for DMVPN's ACL-less policies: a
    crypto map's /32 ACL lines (strongSwan's 10.2.0.1/32 <-> 10.1.0.1/32)
    are compared as the initiator sent them."""
    from ipaddress import IPv4Network

    from dmvpn.ipsec.sa import Selector
    from ike_harness import IkeNet

    net = IkeNet(21)
    a = net.add(A_WAN, (DATA / "nat_a.cfg").read_text())
    b = net.add(B_WAN, (DATA / "nat_b.cfg").read_text())
    net.set_nat(B_WAN, "203.0.113.9")                         # B initiates from behind a NAT
    selector = Selector(IPv4Network("10.2.0.1/32"), IPv4Network("10.1.0.1/32"), 0)
    assert b.child_policies[0].local == selector.local
    b.acquire(0.0, b.child_policies[0], A_WAN, B_WAN, selector)
    net.run(5.0)
    assert a.sas[0].nat_detected
    assert a.children and a.children[0].selector == Selector(selector.remote, selector.local, 0)
