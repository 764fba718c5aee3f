"""The router node in the simulator: the seed's hub and spoke bring up IKE
and GRE over ESP, pings cross Tunnel0, and the lifetime/rekey/DPD behaviour
holds over virtual hours (no sleeps)."""

from __future__ import annotations

import itertools

from dmvpn.ike.keylog import esp_sa_lines
from dmvpn.lab.fluid import FluidFlow
from dmvpn.runtime.sim import LinkParams
from dmvpn.show.debug_log import render
from router_lab import HUB_TUN, SPOKE_TUN, build, hub_text, results, spoke_text

LIFE_120 = " set security-association lifetime seconds 120\n"


def test_seed_hub_and_spoke_ping_over_gre_over_esp():
    sim, hub, spoke, _ = build()
    out = sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 5")
    assert f"Sending 5, 100-byte ICMP Echos to {HUB_TUN}" in out
    sim.run(20.0)
    assert results(spoke) == ".!!!!"            # the first Echo triggers IKE, as on IOS
    assert len(hub.ike.sas) == 1 and len(spoke.ike.sas) == 1
    assert len(hub.sad.all()) == 2 and len(spoke.sad.all()) == 2
    out_sa = spoke.sad.outbound_for("172.17.3.1")
    assert out_sa.pkts_encaps == 4 and out_sa.mode.value == 2 and out_sa.selector.protocol == 47
    assert spoke.counters.no_sa_drops == 1
    sim.admin("HUB", f"ping {SPOKE_TUN} repeat 3")
    sim.run(30.0)
    assert results(hub) == "!!!"


def test_wan_carries_only_ike_and_esp_per_tshark(tmp_path):
    """tshark (independent decoder) sees ISAKMP and ESP only: nothing in clear."""
    import shutil
    import subprocess
    tshark = shutil.which("tshark")
    assert tshark, "tshark is required for this test"
    sim, _hub, spoke, wan = build()
    pcap = tmp_path / "wan.pcap"
    sim.capture(wan, pcap)
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 5")
    sim.run(20.0)
    sim.close()
    uat = []
    for child in spoke.ike.children:
        for line in esp_sa_lines(child):
            uat += ["-o", "uat:esp_sa:" + line]
    out = subprocess.run([tshark, "-r", str(pcap), "-o", "esp.enable_encryption_decode:TRUE",
                          "-o", "esp.enable_authentication_check:TRUE", *uat, "-T", "fields",
                          "-e", "frame.protocols", "-e", "isakmp.exchangetype", "-e", "esp.spi",
                          "-e", "gre.key", "-e", "icmp.type", "-e", "esp.icv_good"],
                         capture_output=True, text=True, check=True)
    rows = [line.split("\t") for line in out.stdout.splitlines()]
    assert len(rows) == 9 + 8
    ike, esp = rows[:9], rows[9:]
    assert all(r[0].endswith(":udp:isakmp") for r in ike)
    assert [r[1] for r in ike] == ["2"] * 6 + ["32"] * 3          # Main Mode, Quick Mode
    # Decrypted by tshark with our exported keys: GRE key 1 carrying ICMP echo / reply, ICVs good.
    assert all(r[0].endswith(":esp:gre:ip:icmp:data") for r in esp), {r[0] for r in esp}
    assert {int(r[3], 0) for r in esp} == {1} and [r[4] for r in esp] == ["8", "0"] * 4
    assert {r[5] for r in esp} == {"1"} or {r[5] for r in esp} == {"True"}
    assert {r[2] for r in esp} == {f"0x{sa.spi:08x}" for sa in spoke.sad.all()}


def test_converges_with_20_percent_loss():
    sim, hub, spoke, _ = build(seed=5, link=LinkParams(delay=0.01, loss=0.2))
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 200 timeout 2")
    sim.run(600.0)
    assert len(hub.ike.children) >= 1 and len(spoke.ike.children) >= 1
    assert results(spoke).count("!") > 50


def test_time_rekeys_for_an_hour_zero_probe_loss():
    sim, hub, spoke, _ = build(hub=hub_text(LIFE_120), spoke=spoke_text(LIFE_120))
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 1")
    sim.run(5.0)
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 3600 interval 1 timeout 2")
    sim.run(3610.0)
    r = results(spoke)
    assert len(r) == 3600 and r.count("!") == 3600, r.count(".")
    installs = [e.time for e in sim.events if e.category == "ipsec" and e.fields["what"] == "installed"
                and e.fields["initiator"]]
    starts = [t for i, t in enumerate(installs) if i == 0 or t - installs[i - 1] > 1.0]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(gaps) >= 37
    # soft = hard - 30 s = 90 s after install, acted on by the next lifetime check (~2 s)
    assert all(90.0 <= g <= 94.0 for g in gaps), gaps
    assert len(hub.sad.all()) <= 6


def test_volume_rekeys_every_35_to_45_s_at_850_mbit():
    sim, hub, spoke, _ = build()
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 1")
    sim.run(5.0)
    flow = FluidFlow(hub, spoke, SPOKE_TUN, 0.85e9, 1400, start=10.0, stop=610.0)
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 600 interval 1 timeout 2")
    pairs = []
    for t in range(15, 610, 5):
        sim.call_at(float(t), lambda: pairs.append(len(hub.sad.all()) // 2))
    sim.run(620.0)
    installs = [e.time for e in sim.events if e.category == "ipsec" and e.fields["what"] == "installed"
                and e.fields["initiator"] and e.fields["reason"] == "volume rekey"]
    gaps = [b - a for a, b in itertools.pairwise(installs) if b - a > 1.0]
    assert len(gaps) >= 10
    assert all(35.0 <= g <= 45.0 for g in gaps), gaps
    assert flow.stats.lost_bytes == 0 and flow.stats.dropped_no_sa_bytes == 0
    assert results(spoke).count("!") == 600
    assert max(pairs) <= 4 and pairs.count(2) >= len(pairs) // 4   # current + previous, as in the seed
    # Both ends counted the same bytes on the same SPIs.
    assert flow.stats.sent_bytes == flow.stats.received_bytes > 0.85e9 / 8 * 590


def test_dpd_vanished_hub_declared_dead_then_tunnel_returns():
    ka = "crypto isakmp keepalive 10 2\n"
    sim, hub, spoke, wan = build(hub=hub_text(prefix=ka), spoke=spoke_text(prefix=ka))
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 400 interval 1 timeout 2")
    sim.run(60.0)
    wan.set_up(False)
    sim.run(160.0)
    dead = [e for e in sim.events if e.node == "SPOKE1" and e.fields.get("facility") == "%CRYPTO-5-IKE_DPD_PEER_DEAD"]
    assert dead and dead[0].time - 60.0 <= 10 * (5 + 1)
    assert not spoke.sad.all() and not any(s.established for s in spoke.ike.sas)  # pings keep retrying MM
    wan.set_up(True)
    sim.run(420.0)
    assert spoke.ike.children and hub.ike.children
    assert len(hub.sad.all()) == 2          # INITIAL-CONTACT removed the hub's stale pair
    assert results(spoke)[-100:] == "!" * 100


def test_debug_quick_mode_sequence_in_the_lab():
    sim, _hub, _spoke, _ = build(debug=True)
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 3")
    sim.run(10.0)
    text = render(sim.events, node="HUB")
    assert "Successfully installed IPSEC SA (SPI:0x" in text and "on Tunnel0" in text
    assert "IKE_QM_R_QM2" in text and "IKE_QM_PHASE2_COMPLETE" in text


def test_admin_errors_never_raise():
    sim, _hub, _spoke, _ = build()
    assert sim.admin("HUB", "frobnicate").startswith("% Invalid input")
    assert sim.admin("HUB", "clear crypto sa peer banana").startswith("% Invalid")
    assert sim.admin("HUB", "ping") == "% Incomplete command."


def test_same_seed_same_wire_bytes(tmp_path):
    def run(seed):
        sim, _hub, _spoke, wan = build(seed=seed)
        pcap = tmp_path / f"s{seed}-{len(list(tmp_path.iterdir()))}.pcap"
        sim.capture(wan, pcap)
        sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 5")
        sim.run(20.0)
        sim.close()
        return pcap.read_bytes()
    assert run(3) == run(3)
    assert run(3) != run(4)


def test_unknown_spi_logged_and_recovery_notify_when_configured():
    from dmvpn.wire.ipv4 import IPv4Header
    for recovery in (False, True):
        prefix = "crypto isakmp invalid-spi-recovery\n" if recovery else ""
        sim, hub, spoke, _ = build(hub=hub_text(prefix=prefix), debug=True)
        sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 2")
        sim.run(10.0)
        bogus = IPv4Header("172.17.3.2", "172.17.3.1", 50).encode(b"\x00\x00\x12\x34" + bytes(60))
        sim.deliver("HUB", "GigabitEthernet0/0/2", bogus)
        sim.run(12.0)
        logs = [e for e in sim.events if e.node == "HUB" and e.fields.get("facility") == "%CRYPTO-4-RECVD_PKT_INV_SPI"]
        assert len(logs) == 1 and "spi=0x1234(4660)" in logs[0].message
        notified = any("processing NOTIFY INVALID_SPI" in e.message for e in sim.events if e.node == "SPOKE1")
        assert notified == recovery
        assert hub.counters.esp_drops == {"no SA": 1}
        assert len(spoke.sad.all()) == 2      # the notify named an SPI the spoke does not use


def test_clear_crypto_sa_peer_then_traffic_renegotiates():
    sim, hub, spoke, _ = build()
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 2")
    sim.run(10.0)
    first = {sa.spi for sa in spoke.sad.all()}
    assert sim.admin("SPOKE1", "clear crypto sa peer 172.17.3.1") == ""
    sim.run(11.0)
    assert not spoke.sad.all() and not hub.sad.all()     # DELETE reached the hub
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 3")
    sim.run(30.0)
    assert results(spoke) == ".!!" and first.isdisjoint(sa.spi for sa in spoke.sad.all())


def _both_ways_traffic(sim, hub, spoke, until):
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 1")
    sim.run(5.0)
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat {int((until - 10) / 0.1)} interval 0.1 timeout 2")
    sim.admin("HUB", f"ping {SPOKE_TUN} repeat {int((until - 10) / 0.1)} interval 0.1 timeout 2")
    a = FluidFlow(hub, spoke, SPOKE_TUN, 100e6, 1400, start=5.0, stop=until - 5)
    b = FluidFlow(spoke, hub, HUB_TUN, 50e6, 1400, start=5.0, stop=until - 5)
    return a, b


def simultaneous_rekey(profile: str):
    sim, hub, spoke, _ = build(profile=profile, link=LinkParams(delay=0.01))
    flows = _both_ways_traffic(sim, hub, spoke, 200.0)
    sim.call_at(20.0, lambda: [sim.admin(n, "test crypto ipsec rekey") for n in ("HUB", "SPOKE1")])
    sim.run(200.0)
    assert results(spoke).count(".") == 0 and results(hub).count(".") == 0     # no probe lost
    assert all(f.stats.lost_bytes == 0 and f.stats.dropped_no_sa_bytes == 0 for f in flows)
    return hub, spoke


def test_simultaneous_rekey_cisco_two_new_pairs_in_the_sim():
    hub, spoke = simultaneous_rekey("cisco-iosxe")
    assert len(hub.ike.children) == len(spoke.ike.children) == 2
    assert hub.ike.stats["collisions"] >= 1


def test_simultaneous_rekey_improved_one_pair_in_the_sim():
    hub, spoke = simultaneous_rekey("improved")
    assert len(hub.ike.children) == len(spoke.ike.children) == 1
    assert len(hub.sad.all()) == len(spoke.sad.all()) == 2


def test_wrong_psk_in_the_sim():
    sim, hub, spoke, _ = build(spoke=spoke_text().replace("seed-lab-psk", "not-the-key"))
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 5")
    sim.run(600.0)
    assert not hub.sad.all() and not spoke.sad.all() and results(spoke) == "....."
    tags = {(e.node, e.fields.get("facility")) for e in sim.events if e.category == "isakmp"}
    assert ("HUB", "%CRYPTO-4-IKMP_BAD_MESSAGE") in tags and ("SPOKE1", "%CRYPTO-6-IKMP_MODE_FAILURE") in tags
    last_ike = max(e.time for e in sim.events if e.category == "isakmp")
    assert last_ike < 300.0          # retries stopped at the limit


def test_group_mismatch_in_the_sim():
    sim, _hub, _spoke, _ = build(spoke=spoke_text().replace("group 15", "group 14"))
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 2")
    sim.run(30.0)
    msgs = [(e.node, e.message) for e in sim.events if e.category == "isakmp"]
    assert any(n == "SPOKE1" and "NO_PROPOSAL_CHOSEN" in m for n, m in msgs)
    assert any(n == "HUB" and "Processing of Main mode failed" in m for n, m in msgs)


def test_transform_mismatch_in_the_sim():
    sim, hub, _spoke, _ = build(spoke=spoke_text().replace("esp-aes esp-sha256-hmac", "esp-gcm 256"))
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 2")
    sim.run(30.0)
    msgs = [(e.node, e.message) for e in sim.events if e.category == "isakmp"]
    assert any(n == "SPOKE1" and "answered NO_PROPOSAL_CHOSEN" in m for n, m in msgs)
    assert any(n == "HUB" and "Processing of Quick mode failed" in m for n, m in msgs)
    assert not hub.sad.all()


def test_lab_quick_mode_debug_matches_seed_sequences():
    from dmvpn.show.debug_log import render_line
    from test_ike_debug import block, normalize, seed_lines
    sim, _hub, _spoke, _ = build(debug=True)
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 3")
    sim.run(10.0)
    sim.admin("SPOKE1", "clear crypto sa")
    sim.run(12.0)
    sim.admin("HUB", f"ping {SPOKE_TUN} repeat 3")      # the hub starts this Quick Mode, as at 23:11:50
    sim.run(20.0)
    lines = {n: [normalize(render_line(e)) for e in sim.events if e.node == n and e.category == "isakmp"]
             for n in ("HUB", "SPOKE1")}
    hub_seed = block(seed_lines("hub_debug_crypto_isakmp.txt"), "set new node 0 to QM_IDLE",
                     "New State = IKE_QM_PHASE2_COMPLETE")
    spoke_seed = [line for line in seed_lines("spoke_debug_crypto_isakmp.txt") if "purging node" not in line]
    hub_start = max(i for i, line in enumerate(lines["HUB"]) if "set new node 0 to QM_IDLE" in line)
    spoke_start = max(i for i, line in enumerate(lines["SPOKE1"]) if "received packet from" in line
                      and i + 1 < len(lines["SPOKE1"]) and "set new node M" in lines["SPOKE1"][i + 1])
    assert block(lines["HUB"][hub_start:], "set new node 0", "PHASE2_COMPLETE") == hub_seed
    assert block(lines["SPOKE1"][spoke_start:], "received packet", "PHASE2_COMPLETE") == spoke_seed


def test_admin_accepts_ios_abbreviations():
    sim, _hub, _spoke, _ = build()
    assert sim.admin("HUB", "deb cry isa") == "Crypto ISAKMP debugging is on"
    sim.admin("SPOKE1", f"pi {HUB_TUN} repeat 2")
    sim.run(10.0)
    assert "current outbound spi" in sim.admin("HUB", "sh cry ipsec sa")
    assert sim.admin("HUB", "sh cry ipsec sa | json").lstrip().startswith("{")
    assert sim.admin("HUB", "cle cry sa pe 172.17.3.2") == ""
    assert sim.admin("HUB", "no deb cry isa") == "Crypto ISAKMP debugging is off"


def test_hub_with_three_spokes_on_a_segment():
    from dmvpn.config import parse_config
    from dmvpn.node.router import Router
    from dmvpn.runtime.sim import Simulator
    from router_lab import WAN, seed_cfg
    sim = Simulator(seed=3)
    seg = sim.segment("wan", LinkParams(delay=0.005))
    maps = "".join(f" ip nhrp map 10.2.2.{i} 172.17.3.{i}\n" for i in (2, 3, 4))
    texts = [("HUB", seed_cfg("hub.cfg").replace(" ip nhrp network-id 1\n", " ip nhrp network-id 1\n" + maps),
              "172.17.3.1")]
    texts += [(f"S{i}", seed_cfg("spoke.cfg").replace("172.17.3.2 255", f"172.17.3.{i} 255")
               .replace("10.2.2.2 255", f"10.2.2.{i} 255"), f"172.17.3.{i}") for i in (2, 3, 4)]
    routers = {}
    for name, text, addr in texts:
        result = parse_config(text, name)
        assert not result.errors
        routers[name] = Router(result.config, sim.random_for(name), name=name, nhrp=False)
        sim.add_node(routers[name])
        seg.attach(name, WAN, addr)
    for i in (2, 3, 4):
        sim.admin(f"S{i}", f"ping {HUB_TUN} repeat 1")
    sim.run(5.0)
    flows = [FluidFlow(routers["HUB"], routers[f"S{i}"], f"10.2.2.{i}", 400e6, 1400, 10, 250) for i in (2, 3, 4)]
    for name in ("S2", "S3", "S4"):
        sim.admin(name, f"ping {HUB_TUN} repeat 240 interval 1 timeout 2")
    sim.admin("HUB", "ping 10.2.2.3 repeat 240 interval 1 timeout 2")
    sim.run(260.0)
    assert all(results(r) == "!" * 240 for r in routers.values())
    hub = routers["HUB"]
    assert len(hub.ike.sas) == 3 and {c.peer for c in hub.ike.children} == {"172.17.3.2", "172.17.3.3", "172.17.3.4"}
    assert all(f.stats.lost_bytes == 0 and len(f.stats.spis) >= 3 for f in flows)   # volume rekeys per spoke
    assert "Peer: 172.17.3.4 port 500" in sim.admin("HUB", "show crypto session")


def test_udp_4500_demux_ike_esp_and_keepalive():
    from dmvpn.wire.ipv4 import IPv4Header
    from dmvpn.wire.udp import encode_udp
    sim, hub, _spoke, _ = build()

    def udp4500(payload: bytes) -> bytes:
        return IPv4Header("172.17.3.2", "172.17.3.1", 17).encode(
            encode_udp("172.17.3.2", "172.17.3.1", 4500, 4500, payload))

    sim.deliver("HUB", "GigabitEthernet0/0/2", udp4500(b"\xff"))                       # NAT keepalive
    sim.deliver("HUB", "GigabitEthernet0/0/2", udp4500(bytes(4) + b"not isakmp"))      # IKE behind the marker
    sim.deliver("HUB", "GigabitEthernet0/0/2", udp4500(b"\x00\x00\x43\x21" + bytes(40)))  # ESP in UDP
    tags = [e.fields.get("facility") for e in sim.events if e.node == "HUB"]
    assert tags == ["%CRYPTO-4-IKMP_BAD_MESSAGE", "%CRYPTO-4-RECVD_PKT_INV_SPI"]
    assert hub.counters.esp_drops == {"no SA": 1} and hub.counters.malformed == 0
