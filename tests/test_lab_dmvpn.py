"""The built-in DMVPN phase 3 lab (``dmvpn lab dmvpn``) in virtual time, and
NHRP wired into the router: registration, redirect, shortcut, the
spoke-to-spoke SA pair, multicast replication, the NHRP shows and admin."""

from __future__ import annotations

import json
from importlib import resources
from ipaddress import IPv4Address, IPv4Network

import pytest
from click.testing import CliRunner

from dmvpn.cli.main import main as cli
from dmvpn.config import load_config
from dmvpn.ipsec.sa import Selector
from dmvpn.lab.dmvpn_report import dmvpn_report
from dmvpn.lab.runner import LabRun
from dmvpn.lab.scenario import load_scenario
from dmvpn.nhrp.states import EntryState
from dmvpn.node.routing import RouteSource
from dmvpn.wire.ipv4 import IpProto, IPv4Header

DATA = resources.files("dmvpn.lab") / "data"
NBMA = {"hub": "172.16.0.1", "spoke1": "172.16.0.11", "spoke2": "172.16.0.12", "spoke3": "172.16.0.13"}


def _gre_sa(router, peer: str):
    return router.sad.outbound_for(peer, Selector.hosts(NBMA[router.name], peer, 47))


def _lab(duration: float | None = None) -> LabRun:
    with resources.as_file(DATA / "dmvpn.toml") as path:
        return LabRun(load_scenario(path), duration=duration)


@pytest.fixture(scope="module")
def lab():
    """One run, with the hub's counters and SA packet counts noted at 30 s
    (well after the shortcut) to compare with the end of the run."""
    run = _lab()
    noted = {}

    def note() -> None:
        hub = run.routers["hub"]
        noted["forwarded"] = hub.counters.forwarded
        noted["hub_sa_in"] = {p: [sa.pkts_decaps for sa in hub.sad.for_peer(NBMA[p]) if sa.direction.value == "in"]
                              for p in ("spoke1", "spoke2")}
        noted["spoke1_to_spoke2"] = _gre_sa(run.routers["spoke1"], NBMA["spoke2"]).pkts_encaps

    run.sim.call_at(30.0, note)
    result = run.run()
    return result, noted


def test_hub_config_has_no_static_map_for_any_spoke():
    hub = load_config(DATA / "dmvpn" / "hub.cfg").interfaces["Tunnel0"]
    assert hub.nhrp is not None and hub.nhrp.maps == () and hub.nhrp.redirect
    for n in (1, 2, 3):
        spoke = load_config(DATA / "dmvpn" / f"spoke{n}.cfg").interfaces["Tunnel0"].nhrp
        assert spoke is not None and spoke.shortcut and spoke.nhs


def test_every_spoke_registers_and_the_hub_learns_it(lab):
    result, _ = lab
    report = dmvpn_report(result)
    assert sorted(r["spoke"] for r in report["registrations"]) == ["spoke1", "spoke2", "spoke3"]
    assert all(r["at_s"] < 1.0 for r in report["registrations"])
    hub = result.routers["hub"]
    engine = hub.nhrp["Tunnel0"].engine
    registered = {str(e.next_hop): str(e.peer_nbma) for e in engine.cache if e.state is EntryState.REGISTERED}
    assert registered == {"10.0.0.11": NBMA["spoke1"], "10.0.0.12": NBMA["spoke2"], "10.0.0.13": NBMA["spoke3"]}
    assert hub.tunnels["Tunnel0"].dynamic_maps == registered
    # every registration went under IPsec: the hub has an SA pair with each spoke
    assert all(_gre_sa(hub, NBMA[s]) is not None for s in ("spoke1", "spoke2", "spoke3"))


def test_traffic_starts_via_the_hub_then_takes_the_shortcut(lab):
    result, noted = lab
    hub, spoke1, spoke2 = (result.routers[n] for n in ("hub", "spoke1", "spoke2"))
    # the first echo and its reply went through the hub, which redirected both ways
    assert hub.counters.forwarded == 2
    assert hub.nhrp["Tunnel0"].engine.traffic.sent[8] == 2
    report = dmvpn_report(result)
    shortcuts = {(r["node"], r["prefix"], r["next_hop"], r["code"]) for r in report["shortcuts"]}
    assert shortcuts == {("spoke1", "192.168.2.0/24", "10.0.0.12", "H"), ("spoke2", "192.168.1.0/24", "10.0.0.11", "H")}
    assert all("Traffic Indication" in r["why"] for r in report["shortcuts"])
    route = next(r for r in spoke1.routes.installed() if str(r.prefix) == "192.168.2.0/24")
    assert route.source is RouteSource.NHRP and str(route.next_hop) == "10.0.0.12"
    # the spoke-to-spoke SA pair, both ways, carries the probes
    assert _gre_sa(spoke1, NBMA["spoke2"]) is not None and _gre_sa(spoke2, NBMA["spoke1"]) is not None
    assert _gre_sa(spoke1, NBMA["spoke2"]).pkts_encaps > noted["spoke1_to_spoke2"] > 0
    sas = report["spoke_to_spoke_sas"]
    assert len(sas) == 1 and {sas[0]["initiator"], sas[0]["responder"]} == {"spoke1", "spoke2"}
    # from then on the hub carries none of it: no forwarding, no ESP from either spoke
    assert hub.counters.forwarded == noted["forwarded"]
    assert report["hubs"][0]["forwarded_after_last_shortcut"] is False
    for spoke in ("spoke1", "spoke2"):
        now = [sa.pkts_decaps for sa in hub.sad.for_peer(NBMA[spoke]) if sa.direction.value == "in"]
        assert now == noted["hub_sa_in"][spoke]


def test_no_probe_is_lost(lab):
    result, _ = lab
    (probe,) = result.probes
    assert probe.sent == 110 and probe.received == probe.sent and probe.lost == 0


def test_same_seed_same_output():
    runner = CliRunner()
    first = runner.invoke(cli, ["lab", "dmvpn", "--json", "--duration", "40"])
    second = runner.invoke(cli, ["lab", "dmvpn", "--json", "--duration", "40"])
    assert first.exit_code == 0, first.output
    assert first.output == second.output
    doc = json.loads(first.output)
    assert doc["nhrp"]["probes"][0]["lost"] == 0
    text = runner.invoke(cli, ["lab", "dmvpn", "--duration", "40"])
    assert "spoke1 registered to 10.0.0.1" in text.output
    assert "H 192.168.2.0/24 via 10.0.0.12" in text.output


def test_nhrp_shows_debug_and_clear_through_the_router():
    run = _lab(duration=20)
    result = run.run()
    sim = result.sim
    out = sim.admin("spoke1", "sh ip nhrp | json")
    entries = json.loads(out)
    assert out.endswith("\n") and entries
    assert "Type:Hub, NHRP Peers:3" in sim.admin("hub", "show dmvpn")
    assert "10.0.0.13/32" in sim.admin("hub", "sh dmvpn det")
    assert json.loads(sim.admin("hub", "show dmvpn | json"))
    assert "10.0.0.1" in sim.admin("spoke1", "show ip nhrp nhs detail")
    assert "Resolution Request" in sim.admin("spoke1", "show ip nhrp traffic")
    assert "H     192.168.2.0/24 [250/1] via 10.0.0.12" in sim.admin("spoke1", "show ip route")
    assert sim.admin("spoke1", "debug nhrp packet") == "NHRP packet debugging is on"
    assert sim.admin("spoke1", "debug nhrp") == "NHRP protocol debugging is on"
    # clear ip nhrp: the shortcut and its mapping go, and with them the SAs to spoke 2
    spoke1 = result.routers["spoke1"]
    assert sim.admin("spoke1", "clear ip nhrp") == ""
    sim.run(21.0)
    assert not any(r.source is RouteSource.NHRP for r in spoke1.routes.installed())
    assert "10.0.0.12" not in spoke1.tunnels["Tunnel0"].dynamic_maps
    assert _gre_sa(spoke1, NBMA["spoke2"]) is None
    assert _gre_sa(spoke1, NBMA["hub"]) is not None  # the NHS stays
    assert any(e.category == "nhrp" for e in sim.events_for("spoke1"))


def test_multicast_is_replicated_to_every_registered_spoke():
    run = _lab(duration=5)
    result = run.run()
    hub = result.routers["hub"]
    hub.kernel_host = True  # the OS hands the hub an OSPF hello for Tunnel0, as in real mode
    hello = IPv4Header("10.0.0.1", "224.0.0.5", 89, ttl=1).encode(b"\x02\x01" + b"\x00" * 42)
    hub.receive(5.0, "Tunnel0", hello)
    sent = hub.poll_transmit()
    assert sorted(".".join(str(b) for b in tx.packet[16:20]) for tx in sent) == sorted(
        NBMA[s] for s in ("spoke1", "spoke2", "spoke3"))
    assert all(tx.packet[9] == IpProto.ESP for tx in sent)  # each copy under the spoke's SA


def _with_fault(name: str, seed: int = 1):
    from dmvpn.cli.lab_cmd import DMVPN_FAULTS

    with resources.as_file(DATA / "dmvpn.toml") as path:
        scenario = DMVPN_FAULTS[name](load_scenario(path))
    return LabRun(scenario, seed=seed).run()


def test_hub_restart_spokes_register_again_within_the_dpd_bound():
    """The restarted hub has no SAs; each spoke's periodic DPD (keepalive 10,
    retry 3) finds it dead, its SAs go, IKE and registration start over:
    within 10 + 5 x 3 s of the restart, the bound IOS's DPD gives."""
    result = _with_fault("hub-restart")
    (fault,) = dmvpn_report(result)["faults"]
    assert fault["recovered_at_s"] is not None and 0 < fault["recovery_s"] <= 25.0
    engine = result.routers["hub"].nhrp["Tunnel0"].engine
    assert sum(1 for e in engine.cache if e.state is EntryState.REGISTERED) == 3
    assert result.probes[0].lost == 0  # spoke to spoke does not need the hub


@pytest.mark.parametrize("seed", [1, 2])
def test_ten_percent_loss_still_converges(seed):
    result = _with_fault("loss", seed)
    report = dmvpn_report(result)
    assert sorted(r["spoke"] for r in report["registrations"]) == ["spoke1", "spoke2", "spoke3"]
    assert {(r["node"], r["prefix"]) for r in report["shortcuts"]} == {("spoke1", "192.168.2.0/24"),
                                                                        ("spoke2", "192.168.1.0/24")}
    assert not report["hubs"][0]["forwarded_after_last_shortcut"]
    probe = report["probes"][0]
    assert probe["received"] > 0.6 * probe["sent"]  # a round trip crosses the lossy WAN twice


def test_nbma_change_unique_registration_waits_for_the_old_entry_to_expire():
    """Spoke 3 comes back with a new WAN address: the hub refuses its unique
    registration (code 14) while the old binding lives (holdtime 600 s from
    its registration at ~0.1 s), then the next retry registers, and the
    hub's SAs to the old address are cleared with the entry."""
    result = _with_fault("nbma-change")
    (fault,) = dmvpn_report(result)["faults"]
    assert fault["unique"] and fault["refusals"] > 0
    assert 600.1 < fault["recovered_at_s"] < 600.1 + 5
    hub = result.routers["hub"]
    engine = hub.nhrp["Tunnel0"].engine
    entry = engine.cache.host(IPv4Address("10.0.0.13"))
    assert entry is not None and str(entry.peer_nbma) == "172.16.0.23"
    assert hub.tunnels["Tunnel0"].dynamic_maps["10.0.0.13"] == "172.16.0.23"
    assert not [sa for sa in hub.sad.all() if sa.peer == "172.16.0.13"]  # the old peer's SAs went with it
    assert result.probes[0].lost == 0


@pytest.mark.parametrize("command", ["show dmvpn", "show ip nhrp", "show ip nhrp detail", "show ip nhrp nhs detail",
                                     "show ip nhrp traffic"])
def test_genieparser_reads_the_lab_routers_shows_as_our_json(lab, command):
    """Cisco's genieparser (os iosxe) parses what the routers print through
    their dispatcher, and extracts exactly our ``| json``."""
    import test_show_support as support

    result, _ = lab
    for node in ("hub", "spoke1", "spoke2", "spoke3"):
        if command.startswith("show ip nhrp nhs") and node == "hub":
            continue
        text = result.sim.admin(node, command)
        ours = json.loads(result.sim.admin(node, f"{command} | json"))
        assert support.genie_parse("iosxe", command, text) == support.normalise(ours), (node, text)


def test_tshark_decodes_the_lab_nhrp_in_clear_gre(tmp_path):
    """The lab without tunnel protection, captured on the WAN by the lab's
    pcap writer: tshark (an independent decoder) finds every NHRP packet
    type the lab exchanges, with good checksums and no expert warnings."""
    import shutil
    import subprocess

    tshark = shutil.which("tshark")
    assert tshark, "tshark is required for this test"
    with resources.as_file(DATA / "dmvpn.toml") as path:
        run = LabRun(load_scenario(path), duration=20,
                     config_transform=lambda t: t.replace(" tunnel protection ipsec profile DMVPN-PROF\n", ""))
    pcap = tmp_path / "wan.pcap"
    run.sim.capture(run.segments["wan"], pcap)
    result = run.run()
    result.sim.close()
    assert result.probes[0].lost == 0
    out = subprocess.run([tshark, "-r", str(pcap), "-Y", "nhrp", "-T", "fields", "-e", "nhrp.hdr.op.type",
                          "-e", "nhrp.hdr.chksum.status", "-e", "gre.key", "-e", "_ws.expert"],
                         capture_output=True, text=True, check=True)
    rows = [line.split("\t") for line in out.stdout.splitlines()]
    types = {int(r[0]) for r in rows}
    assert {1, 2, 3, 4, 8} <= types  # resolution req/rep, registration req/rep, traffic indication
    assert all(r[1] == "1" for r in rows), rows  # checksum status 1: good
    assert all(int(r[2], 16) == 100 for r in rows)  # the tunnel key
    assert not [r for r in rows if r[3]], rows


def test_protected_lab_sends_no_nhrp_or_gre_in_clear(tmp_path):
    """With tunnel protection every NHRP packet rides the peer's ESP SA:
    tshark finds only ISAKMP and ESP on the WAN."""
    import shutil
    import subprocess

    tshark = shutil.which("tshark")
    assert tshark, "tshark is required for this test"
    run = _lab(duration=20)
    pcap = tmp_path / "wan.pcap"
    run.sim.capture(run.segments["wan"], pcap)
    result = run.run()
    result.sim.close()
    out = subprocess.run([tshark, "-r", str(pcap), "-T", "fields", "-e", "frame.protocols"],
                         capture_output=True, text=True, check=True)
    protocols = out.stdout.split()
    assert any(p.endswith(":esp") for p in protocols)
    assert all(p.endswith((":esp", ":isakmp")) for p in protocols), set(protocols)


def test_shortcut_over_an_existing_route_is_a_next_hop_override():
    """When the spoke already has a route for the resolved prefix (here a
    static one via the hub, standing in for a routing protocol's), NHRP
    overrides its next hop (IOS ``%``) instead of adding an H route."""
    extra = "ip route 192.168.2.0 255.255.255.0 10.0.0.1\nip route 192.168.1.0 255.255.255.0 10.0.0.1\nend\n"
    with resources.as_file(DATA / "dmvpn.toml") as path:
        run = LabRun(load_scenario(path), duration=30,
                     config_transform=lambda t: t.replace("\nend\n", "\n" + extra) if "SPOKE" in t else t)
    result = run.run()
    spoke1, hub = result.routers["spoke1"], result.routers["hub"]
    assert not any(r.source is RouteSource.NHRP for r in spoke1.routes.installed())
    override = spoke1.routes.override_for(IPv4Network("192.168.2.0/24"))
    assert override is not None and str(override.next_hop) == "10.0.0.12"
    text = result.sim.admin("spoke1", "show ip route")
    assert "S   % 192.168.2.0/24 [1/0] via 10.0.0.1" in text, text
    assert "DT2" in result.sim.admin("spoke1", "show dmvpn")
    assert hub.counters.forwarded == 2 and result.probes[0].lost == 0


def test_phase2_next_hop_without_mapping_is_resolved_and_sent_via_the_hub_meanwhile():
    """Spoke 1 routes spoke 2's LAN straight to spoke 2's tunnel address
    (what a routing protocol keeping next hops gives, NHRP.md 3.4): the
    first packets go via the NHS while NHRP resolves 10.0.0.12, then direct."""
    with resources.as_file(DATA / "dmvpn.toml") as path:
        run = LabRun(load_scenario(path), duration=30, config_transform=lambda t: t.replace(
            "\nend\n", "\nip route 192.168.2.0 255.255.255.0 10.0.0.12\nend\n") if "SPOKE1" in t else t)
    result = run.run()
    spoke1, hub = result.routers["spoke1"], result.routers["hub"]
    assert spoke1.tunnels["Tunnel0"].dynamic_maps.get("10.0.0.12") == NBMA["spoke2"]
    assert _gre_sa(spoke1, NBMA["spoke2"]) is not None
    assert 1 <= hub.counters.forwarded <= 4 and spoke1.counters.no_mapping_drops == 0
    assert result.probes[0].lost == 0


@pytest.mark.parametrize("ttl", [2, 64, 255])
def test_forwarding_decrements_ttl_with_a_checksum_scapy_agrees_with(ttl):
    from scapy.layers.inet import IP

    from dmvpn.node.router import _decrement_ttl

    packet = IPv4Header("192.168.1.1", "192.168.2.1", IpProto.ICMP, ttl=ttl, identification=0x1234).encode(b"x" * 12)
    out = _decrement_ttl(packet)
    fresh = IP(out)
    del fresh.chksum  # scapy computes it anew from the decremented header
    assert out[8] == ttl - 1 and out[:8] == packet[:8] and out[12:] == packet[12:]
    assert IP(bytes(fresh)).chksum == int.from_bytes(out[10:12], "big")


def test_timeline_plot_marks_the_nhrp_events_beside_the_sas(lab, tmp_path):
    from dmvpn.lab.plot import nhrp_marks, plot_timeline

    result, _ = lab
    labels = [label for _at, label in nhrp_marks(result, "spoke1", NBMA["spoke2"])]
    assert labels == ["NHRP mapping 10.0.0.12", "route 192.168.2.0/24 H via 10.0.0.12", "NHRP sees sa-up"]
    path = plot_timeline(result, "spoke1", NBMA["spoke2"], tmp_path / "t.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
