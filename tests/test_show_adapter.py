"""``show crypto ...`` on live state: two IKE engines with the seed's configs
(tests/ike_harness.py) negotiate, carry probe packets and rekey in virtual
time; the show adapter renders the hub's SAD and ISAKMP SAs; genieparser
reads the text back and every value must equal the engine's own state."""

from __future__ import annotations

import json
from types import SimpleNamespace

from dmvpn.ipsec.sa import SaDirection, SaState
from dmvpn.node.show_adapter import run_router_show
from dmvpn.show.iosfmt import spi_text
from ike_harness import HUB, SPOKE, IkeNet, seed_text
from test_show_support import genie_parse


def _net() -> IkeNet:
    net = IkeNet(7)
    net.add(HUB, seed_text("hub.cfg"), debug=False)
    net.add(SPOKE, seed_text("spoke.cfg"), debug=False)
    net.acquire(SPOKE, HUB)
    net.run(10.0, probe_every=1.0)
    return net


def _router(net: IkeNet, address: str) -> SimpleNamespace:
    """The attributes of dmvpn.node.router.Router the adapter reads."""
    engine = net.engines[address]
    return SimpleNamespace(name=engine.name, config=engine.config, sad=engine.sad, ike=engine, key_managers=[engine])


def test_ipsec_sa_values_are_the_sads() -> None:
    net = _net()
    hub = _router(net, HUB)
    text = run_router_show(hub, net.now, "show crypto ipsec sa peer 172.17.3.2")
    genie = genie_parse("iosxe", "show crypto ipsec sa peer 172.17.3.2", text)
    flow = genie["interface"]["Tunnel0"]["ident"]["1"]
    sas = hub.sad.all()
    inbound = [sa for sa in sas if sa.direction is SaDirection.INBOUND]
    outbound = [sa for sa in sas if sa.direction is SaDirection.OUTBOUND]
    assert flow["pkts_encaps"] == sum(sa.pkts_encaps for sa in outbound) > 0
    assert flow["pkts_decaps"] == sum(sa.pkts_decaps for sa in inbound) > 0
    assert flow["current_outbound_spi"] == spi_text(hub.sad.outbound_for(SPOKE).spi)
    assert flow["plaintext_mtu"] == 1458  # the seed's value for AES-CBC + SHA-256 transport
    for key, group in (("inbound_esp_sas", inbound), ("outbound_esp_sas", outbound)):
        assert set(flow[key]["spi"]) == {spi_text(sa.spi) for sa in group}
        for sa in group:
            g = flow[key]["spi"][spi_text(sa.spi)]
            kb, secs = sa.remaining(net.now)
            assert g["remaining_key_lifetime"] == f"({kb}/{int(secs)})"
            assert (g["transform"], g["in_use_settings"]) == ("esp-aes esp-sha256-hmac", "Transport, ")
            assert g["conn_id"] == sa.conn_id
    # the spoke's outbound SA is the hub's inbound one
    spoke = _router(net, SPOKE)
    assert spoke.sad.outbound_for(HUB).spi in {sa.spi for sa in inbound}


def test_rekey_shows_both_pairs_and_marks_the_old_one() -> None:
    net = _net()
    assert net.engines[SPOKE].rekey(net.now) == 1
    net.run(net.now + 5.0, probe_every=1.0)
    hub = _router(net, HUB)
    out = json.loads(run_router_show(hub, net.now, "show crypto ipsec sa | json"))
    flow = out["interface"]["Tunnel0"]["ident"]["1"]
    installed = hub.sad.all()
    assert len(flow["inbound_esp_sas"]["spi"]) + len(flow["outbound_esp_sas"]["spi"]) == len(installed) >= 3
    rekeyed = {spi_text(sa.spi) for sa in installed if sa.state is SaState.REKEYED}
    assert rekeyed
    for key in ("inbound_esp_sas", "outbound_esp_sas"):
        for spi, sa in flow[key]["spi"].items():
            expected = "FFFFFFFFC0004008" if spi in rekeyed else "FFFFFFFF80004008"
            assert sa["sibling_flags"] == expected
        # the JSON says why each SA exists: the hub answered the spoke's rekey
        history = {spi: sa["history"] for spi, sa in flow[key]["spi"].items()}
        new = [h for h in history.values() if h["state"] == "active"]
        assert len(new) == 1 and new[0]["reason"] == "peer's rekey" and not new[0]["initiator"]
        assert new[0]["replaces_spi"] in rekeyed and history[new[0]["replaces_spi"]]["state"] == "rekeyed"
    text = run_router_show(hub, net.now, "show crypto ipsec sa")
    genie = genie_parse("iosxe", "show crypto ipsec sa", text)["interface"]["Tunnel0"]["ident"]["1"]
    assert genie["current_outbound_spi"] == flow["current_outbound_spi"]


def test_isakmp_and_session() -> None:
    net = _net()
    hub = _router(net, HUB)
    ike = hub.ike.sas[0]
    short = genie_parse("iosxe", "show crypto isakmp sa", run_router_show(hub, net.now, "show crypto isakmp sa"))
    assert short["isakmp_stats"]["IPv4"]["1"] == {
        "destination": HUB,  # the spoke initiated: dst is the responder
        "source": SPOKE,
        "session_state": "QM_IDLE",
        "conn_id": ike.conn_id,
        "status": "ACTIVE",
    }
    sessions = json.loads(run_router_show(hub, net.now, "show crypto session detail | json"))
    port = sessions["interface"]["Tunnel0"]["peer"][SPOKE]["port"]["500"]
    assert port["ike_sa"]["1"]["sa_status"] == "Active"
    assert sessions["interface"]["Tunnel0"]["session_status"] == "UP-ACTIVE"
    text = run_router_show(hub, net.now, "show crypto session detail")
    genie = genie_parse("iosxe", "show crypto session detail", text)
    flows = genie["interface"]["Tunnel0"]["peer"][SPOKE]["port"]["500"]["ipsec_flow"]
    assert set(flows) == set(port["ipsec_flow"]) == {"permit 47 host 172.17.3.1 host 172.17.3.2"}
    for name, values in flows.items():
        for key, value in values.items():
            assert port["ipsec_flow"][name][key] == value, key


def test_bad_command_caret_follows_the_prompt() -> None:
    net = _net()
    out = run_router_show(_router(net, HUB), net.now, "show crypto ipsec sa bogus")
    assert out == " " * len("HUB#show crypto ipsec sa ") + "^\n% Invalid input detected at '^' marker.\n"


def test_real_router_after_pings() -> None:
    """The same through Router.admin in the simulator (tests/router_lab.py)."""
    from router_lab import HUB_TUN, build

    sim, hub, _spoke, _wan = build()
    # before any SA: the protected interface with its crypto map, no flows
    empty = sim.admin("HUB", "show crypto ipsec sa")
    assert empty == "\ninterface: Tunnel0\n    Crypto map tag: ENS_ipsec_profile-head-1-IPv4, local addr 172.17.3.1\n\n"
    ours = json.loads(sim.admin("HUB", "show crypto ipsec sa | json"))
    assert genie_parse("iosxe", "show crypto ipsec sa", empty) == ours
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 5")
    sim.run(20.0)
    text = sim.admin("HUB", "show crypto ipsec sa peer 172.17.3.2")
    flow = genie_parse("iosxe", "show crypto ipsec sa peer 172.17.3.2", text)["interface"]["Tunnel0"]["ident"]["1"]
    sas = hub.sad.for_peer(SPOKE)
    assert flow["pkts_decaps"] == sum(sa.pkts_decaps for sa in sas) >= 4
    assert flow["pkts_encaps"] == sum(sa.pkts_encaps for sa in sas) >= 4
    assert {spi_text(sa.spi) for sa in sas} == set(flow["inbound_esp_sas"]["spi"]) | set(
        flow["outbound_esp_sas"]["spi"]
    )
    assert sim.admin("HUB", "show crypto isakmp sa").splitlines()[2].split()[:3] == [HUB, SPOKE, "QM_IDLE"]
