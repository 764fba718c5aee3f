"""The IKEv2 engine in the virtual-time lab: the seed's hub and spoke with
IOS-XE IKEv2 configurations establish, carry pings, rekey CHILD and IKE SAs
without losing probes, settle a simultaneous CHILD rekey by RFC 7296 2.8.1
(one pair left on both sides, the redundant one deleted by its initiator),
converge under 20% loss, detect a dead peer, obey ``clear``; tshark decodes
and decrypts the captured exchanges with the key lines the engine exports."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
from pathlib import Path

from dmvpn.ike.v2.engine import Ikev2Engine
from dmvpn.ike.v2.states import Ikev2SaState
from dmvpn.runtime.sim import LinkParams
from ikev2_lab import build_v2, ikev2
from router_lab import HUB_NBMA, HUB_TUN, SPOKE_NBMA, SPOKE_TUN, build, hub_text, results, spoke_text

LIFE_120 = " set security-association lifetime seconds 120\n"


def _engines(hub, spoke) -> tuple[Ikev2Engine, Ikev2Engine]:
    assert isinstance(hub.ike, Ikev2Engine) and isinstance(spoke.ike, Ikev2Engine)
    return hub.ike, spoke.ike


def _spis(router) -> tuple[set[int], set[int]]:
    """(inbound, outbound) SPIs installed in the router's SAD."""
    sas = router.sad.all()
    return ({s.spi for s in sas if s.direction.value == "inbound"},
            {s.spi for s in sas if s.direction.value == "outbound"})


def _crosswise(hub, spoke) -> None:
    h_in, h_out = _spis(hub)
    s_in, s_out = _spis(spoke)
    assert h_in == s_out and h_out == s_in, (h_in, h_out, s_in, s_out)


def test_ikev2_seed_lab_establishes_and_pings():
    sim, hub, spoke, _ = build_v2()
    h, s = _engines(hub, spoke)
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 5")
    sim.run(20.0)
    assert results(spoke) == ".!!!!"  # the first Echo triggers IKE_SA_INIT + IKE_AUTH
    assert [sa.state for sa in h.sas] == [sa.state for sa in s.sas] == [Ikev2SaState.ESTABLISHED]
    assert s.sas[0].initiator and not h.sas[0].initiator
    assert (s.sas[0].keys.spi_i, s.sas[0].keys.spi_r) == (h.sas[0].keys.spi_i, h.sas[0].keys.spi_r)
    assert len(hub.sad.all()) == len(spoke.sad.all()) == 2
    _crosswise(hub, spoke)
    out = spoke.sad.outbound_for(HUB_NBMA)
    assert out is not None and out.mode.value == 2 and out.selector.protocol == 47 and out.pkts_encaps == 4
    # message IDs: IKE_SA_INIT 0, IKE_AUTH 1 (RFC 7296 2.2)
    assert (s.sas[0].next_mid, h.sas[0].peer_mid) == (2, 2)
    sim.admin("HUB", f"ping {SPOKE_TUN} repeat 3")
    sim.run(30.0)
    assert results(hub) == "!!!"


def test_show_crypto_ikev2_and_ipsec_sa_in_the_lab():
    from test_show_support import genie_parse, normalise

    sim, hub, spoke, _ = build_v2()
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 3")
    sim.run(100.0)
    text = sim.admin("HUB", "show crypto ikev2 sa")
    parsed = genie_parse("iosxe", "show crypto ikev2 sa", text)
    assert parsed == normalise(json.loads(sim.admin("HUB", "show crypto ikev2 sa | json")))
    row = parsed["ipv4"]["1"]
    assert (row["local_ip"], row["remote_ip"], row["status"]) == (HUB_NBMA, SPOKE_NBMA, "READY")
    detail = genie_parse("iosxe", "show crypto ikev2 sa detail", sim.admin("HUB", "show crypto ikev2 sa detail"))
    assert detail["tunnel_id"]["1"]["local_spi"] == hub.ike.sas[0].keys.spi_r.hex().upper()
    assert "Life/Active Time: 86400/" in text
    session = sim.admin("SPOKE1", "show crypto ikev2 session")
    s_in, s_out = _spis(spoke)
    assert f"ESP spi in/out: 0x{next(iter(s_in)):X}/0x{next(iter(s_out)):X}" in session
    ipsec = sim.admin("SPOKE1", "show crypto ipsec sa")
    assert f"current outbound spi: 0x{next(iter(s_out)):X}" in ipsec and "#pkts encaps: 2" in ipsec
    assert "IKEv2 default debugging is on" in sim.admin("HUB", "debug crypto ikev2")


def test_child_rekeys_for_ten_minutes_without_losing_probes():
    sim, hub, spoke, _ = build_v2(extra_profile=LIFE_120)
    h, s = _engines(hub, spoke)
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 1")
    sim.run(5.0)
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 600 interval 1 timeout 2")
    most = 0
    for t in range(10, 615, 5):
        sim.run(float(t))
        most = max(most, len(hub.sad.all()), len(spoke.sad.all()))
    r = results(spoke)
    assert len(r) == 600 and r.count("!") == 600, r.count(".")
    # one initiator-side install per exchange, whichever side's lifetime check ran first
    installs = [e.time for e in sim.events if e.category == "ipsec" and e.fields["what"] == "installed"
                and e.fields["initiator"]]
    gaps = [b - a for a, b in itertools.pairwise(installs)]
    assert len(installs) >= 6 and all(85.0 <= g <= 95.0 for g in gaps), gaps  # soft = hard - 30 s (+ check)
    assert most <= 4  # old + new pair at most, briefly
    assert len(h.sas) == len(s.sas) == 1 and len(h.children.pairs) == len(s.children.pairs) == 1
    _crosswise(hub, spoke)
    assert h.stats["collisions"] == s.stats["collisions"] == 0


def _simultaneous(profile: str, delay: float):
    sim, hub, spoke, _ = build_v2(profile=profile, link=LinkParams(delay=delay))
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 1")
    sim.run(5.0)
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 200 interval 0.1 timeout 2")
    sim.admin("HUB", f"ping {SPOKE_TUN} repeat 200 interval 0.1 timeout 2")
    sim.call_at(10.0, lambda: [sim.admin(n, "test crypto ipsec rekey") for n in ("HUB", "SPOKE1")])
    sim.run(40.0)
    return sim, hub, spoke


def test_simultaneous_child_rekey_ends_with_one_pair_deleted_by_rfc7296_2_8_1():
    sim, hub, spoke = _simultaneous("cisco-iosxe", 0.01)
    h, s = _engines(hub, spoke)
    assert results(spoke).count(".") == 0 and results(hub).count(".") == 0  # no probe lost
    assert len(h.collisions) == len(s.collisions) == 1
    hc, sc = h.collisions[0], s.collisions[0]
    # the same two exchanges, seen from both ends
    assert hc.ours_nonces == sc.theirs_nonces and hc.theirs_nonces == sc.ours_nonces
    # 2.8.1: the exchange with the lowest of the four nonces made the redundant pair
    lowest = min(hc.ours_nonces + hc.theirs_nonces)
    hub_lost = lowest in hc.ours_nonces
    assert hc.ours_redundant is hub_lost and sc.ours_redundant is (not hub_lost)
    loser, winner = (hub, spoke) if hub_lost else (spoke, hub)
    redundant_spi = (hc if hub_lost else sc).ours_spi_in
    deleted = [e for e in sim.events if e.category == "ipsec" and "redundant" in e.fields["what"]]
    assert [(e.node, e.fields["spi_in"]) for e in deleted] == [(loser.name, redundant_spi)]
    # the survivor's initiator deleted the old pair
    old_deletes = [e for e in sim.events if e.category == "ipsec" and e.fields["what"] == "deleted (rekeyed)"]
    assert [e.node for e in old_deletes] == [winner.name]
    # exactly one new pair on both sides, the winner's, crosswise
    assert len(hub.sad.all()) == len(spoke.sad.all()) == 2
    assert len(h.children.pairs) == len(s.children.pairs) == 1
    _crosswise(hub, spoke)
    survivor = (sc if hub_lost else hc).ours_spi_in
    assert survivor in _spis(winner)[0]


def test_simultaneous_child_rekey_improved_profile_same_outcome():
    _sim, hub, spoke = _simultaneous("improved", 0.002)
    h, s = _engines(hub, spoke)
    assert len(h.collisions) == len(s.collisions) == 1
    assert h.collisions[0].ours_redundant != s.collisions[0].ours_redundant
    assert len(hub.sad.all()) == len(spoke.sad.all()) == 2
    _crosswise(hub, spoke)
    assert results(spoke).count(".") == 0 and results(hub).count(".") == 0


def test_converges_with_20_percent_loss():
    retransmits = 0
    for seed in (5, 6, 7, 8):
        sim, hub, spoke, _ = build_v2(seed=seed, link=LinkParams(delay=0.01, loss=0.2))
        h, s = _engines(hub, spoke)
        sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 200 timeout 2")
        sim.run(600.0)
        assert len(h.children.pairs) >= 1 and len(s.children.pairs) >= 1, seed
        assert results(spoke).count("!") > 100, seed
        assert len(h.sas) == len(s.sas) == 1, seed
        _crosswise(hub, spoke)
        retransmits += h.stats["retransmits"] + s.stats["retransmits"]
    assert retransmits > 0  # the exchanges did lose messages and recovered


def test_retransmitted_request_answered_from_cache_not_reprocessed():
    """A duplicate of the IKE_AUTH request (the response was lost) gets the
    cached response; the responder installs one pair, not two (RFC 7296 2.1)."""
    sim, hub, spoke, _ = build_v2(link=LinkParams(delay=0.01))
    h, s = _engines(hub, spoke)
    sent = []
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 1")
    # deliver IKE_SA_INIT both ways, then lose the hub's first IKE_AUTH response
    orig = h.poll_datagrams

    def lossy() -> list:
        out = orig()
        keep = []
        for d in out:
            if len(d.payload) > 18 and d.payload[18] == 35 and not sent:
                sent.append(d)
                continue
            keep.append(d)
        return keep

    h.poll_datagrams = lossy  # type: ignore[method-assign]
    sim.run(30.0)
    assert len(sent) == 1 and s.stats["retransmits"] >= 1
    assert len(hub.sad.all()) == 2 and len(h.children.pairs) == 1
    _crosswise(hub, spoke)


def test_ike_sa_rekey_keeps_children_and_deletes_the_old_ike_sa():
    sim, hub, spoke, _ = build_v2(lifetime=300)
    h, s = _engines(hub, spoke)
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 1")
    sim.run(5.0)
    first = s.sas[0].keys.spi_i
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 330 interval 1 timeout 2")
    sim.run(340.0)
    assert results(spoke).count("!") == 330
    assert len(h.sas) == len(s.sas) == 1 and s.sas[0].keys.spi_i != first
    assert s.sas[0].keys.spi_i == h.sas[0].keys.spi_i and s.sas[0].established and h.sas[0].established
    assert len(s.key_lines) >= 2  # the new IKE SA's keys are exported too
    assert len(h.children.pairs) == 1 and all(h.child_ike[c] is h.sas[0] for c in h.children.pairs)


def test_dpd_declares_a_vanished_hub_dead_initial_contact_clears_the_hub():
    sim, hub, spoke, wan = build_v2(dpd="10 2 on-demand")
    _h, s = _engines(hub, spoke)
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 300 interval 1 timeout 2")
    sim.run(60.0)
    assert s.sas and s.sas[0].established
    wan.set_up(False)
    sim.run(120.0)
    assert not any(sa.established for sa in s.sas if sa.created < 60.0)
    gone = [e for e in sim.events if e.node == "SPOKE1" and "did not answer" in e.message]
    assert gone and "liveness" in gone[0].message
    # on-demand: silence noticed after the 10 s interval, then 5 retries 2 s apart
    assert gone[0].time - 60.0 <= 10 + 10 + 2 * 6
    # the hub sent nothing meanwhile and still holds the old IKE SA; the spoke's
    # new IKE_AUTH carries INITIAL_CONTACT (RFC 7296 2.4), which clears it
    h = hub.ike
    stale = [sa.keys.spi_i for sa in h.sas]
    assert len(stale) == 1 and len(h.children.pairs) == 1
    wan.set_up(True)
    sim.run(300.0)
    assert len(h.sas) == 1 and h.sas[0].keys.spi_i not in stale and h.sas[0].established
    assert len(hub.sad.all()) == len(spoke.sad.all()) == 2
    _crosswise(hub, spoke)
    assert results(spoke)[-60:] == "!" * 60


def test_clear_crypto_sa_then_traffic_renegotiates_on_the_same_ike_sa():
    sim, hub, spoke, _ = build_v2()
    h, s = _engines(hub, spoke)
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 2")
    sim.run(10.0)
    before = set(_spis(spoke)[0])
    sim.admin("SPOKE1", "clear crypto sa")
    sim.run(12.0)
    assert not hub.sad.all() and not spoke.sad.all()
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 5")
    sim.run(30.0)
    assert results(spoke) == ".!!!!" and len(s.sas) == len(h.sas) == 1
    assert s.sas[0].next_mid >= 4  # IKE_AUTH, DELETE, CREATE_CHILD_SA on the same IKE SA
    assert not before & _spis(spoke)[0]
    _crosswise(hub, spoke)
    sim.admin("HUB", "clear crypto ikev2 sa")
    sim.run(35.0)
    assert not h.sas and not s.sas and not hub.sad.all() and not spoke.sad.all()


def test_tshark_decodes_and_decrypts_the_captured_exchanges(tmp_path: Path):
    tshark = shutil.which("tshark")
    assert tshark, "tshark is required for this test"
    sim, hub, spoke, wan = build_v2()
    h, s = _engines(hub, spoke)
    pcap = tmp_path / "ikev2.pcap"
    sim.capture(wan, pcap)
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 3")
    sim.run(10.0)
    sim.admin("SPOKE1", "test crypto ipsec rekey")
    sim.run(20.0)
    sim.close()
    assert s.key_lines == h.key_lines and len(s.key_lines) == 1
    uat = [a for line in s.key_lines for a in ("-o", f"uat:ikev2_decryption_table:{line}")]
    out = subprocess.run(
        [tshark, "-r", str(pcap), *uat, "-Y", "isakmp", "-T", "fields", "-e", "isakmp.exchangetype",
         "-e", "isakmp.nonce", "-e", "isakmp.delete.spi", "-e", "_ws.expert.message"],
        capture_output=True, text=True, env=dict(os.environ, HOME=str(tmp_path)), check=True).stdout
    rows = [x.split("\t") for x in out.splitlines()]
    # IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA (rekey), INFORMATIONAL (DELETE of the old pair)
    assert [r[0] for r in rows] == ["34", "34", "35", "35", "36", "36", "37", "37"], out
    assert all(r[1] for r in rows[4:6])  # the nonces inside the decrypted CREATE_CHILD_SA
    deleted = {int(x, 16) for r in rows[6:] for x in r[2].split(",") if x}
    assert deleted and deleted.isdisjoint(_spis(spoke)[0] | _spis(spoke)[1])
    assert not any(len(r) > 3 and r[3] for r in rows), out


# ---------------------------------------------------------------- collision scenarios (IKEV2.md, strongSwan's kinds)
CREATE_CHILD_SA, RESPONSE = 36, 0x20


def _hold(sim, engine: Ikev2Engine, delay: float, response: bool) -> list:
    """Delay each CREATE_CHILD_SA request (or response) ``engine`` sends by ``delay`` seconds, once."""
    orig, held, seen = engine.poll_datagrams, [], set()

    def poll() -> list:
        out = []
        for d in orig():
            p = d.payload
            if (id(d) not in seen and len(p) > 19 and p[18] == CREATE_CHILD_SA
                    and bool(p[19] & RESPONSE) is response):
                seen.add(id(d))
                held.append(d)
                engine.transport.schedule(sim.now + delay, lambda t, d=d: engine.transport.send(d))
                continue
            out.append(d)
        return out

    engine.poll_datagrams = poll  # type: ignore[method-assign]
    return held


def _rekey_both_at(sim, t: float, hub_cmd: str = "test crypto ipsec rekey") -> None:
    sim.call_at(t, lambda: (sim.admin("HUB", hub_cmd), sim.admin("SPOKE1", "test crypto ipsec rekey")))


def _lab_with_traffic(profile: str = "cisco-iosxe", delay: float = 0.01, extra_profile: str = ""):
    sim, hub, spoke, _ = build_v2(profile=profile, link=LinkParams(delay=delay), extra_profile=extra_profile)
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 1")
    sim.run(5.0)
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 200 interval 0.1 timeout 2")
    sim.admin("HUB", f"ping {SPOKE_TUN} repeat 200 interval 0.1 timeout 2")
    return sim, hub, spoke


def _one_pair_each(hub, spoke) -> None:
    h, s = _engines(hub, spoke)
    assert len(hub.sad.all()) == len(spoke.sad.all()) == 2
    assert len(h.children.pairs) == len(s.children.pairs) == 1
    _crosswise(hub, spoke)


def test_collision_with_a_delayed_request_is_refused_and_leaves_one_pair():
    """The spoke's rekey request arrives after the hub's rekey finished and
    the old pair is gone: CHILD_SA_NOT_FOUND (RFC 7296 2.25); the hub's pair stays."""
    sim, hub, spoke = _lab_with_traffic()
    h, s = _engines(hub, spoke)
    held = _hold(sim, s, 0.2, response=False)
    _rekey_both_at(sim, 10.0)
    sim.run(40.0)
    assert len(held) == 1 and h.stats["rekeys_refused"] == 1 and not h.collisions and not s.collisions
    _one_pair_each(hub, spoke)
    (survivor,) = h.children.pairs
    assert survivor.initiator and survivor.reason.value == "time rekey"  # the hub's own rekey
    assert results(spoke).count(".") == 0 and results(hub).count(".") == 0


def test_collision_with_a_delayed_response_settles_alike_on_both_sides():
    """The hub's answer to the spoke's rekey is late: the hub settles the
    collision first, the spoke when the answer comes; same winner (2.8.1)."""
    sim, hub, spoke = _lab_with_traffic()
    h, s = _engines(hub, spoke)
    held = _hold(sim, h, 0.2, response=True)
    _rekey_both_at(sim, 10.0)
    sim.run(40.0)
    assert len(held) == 1 and len(h.collisions) == len(s.collisions) == 1
    assert h.collisions[0].ours_redundant != s.collisions[0].ours_redundant
    winner = hub if s.collisions[0].ours_redundant else spoke
    (survivor,) = winner.ike.children.pairs
    assert survivor.initiator  # the survivor is the winner's own rekey
    _one_pair_each(hub, spoke)
    assert results(spoke).count(".") == 0 and results(hub).count(".") == 0


def test_delete_crossing_a_rekey_answered_temporary_failure():
    """The hub deletes the pair (clear crypto sa) while the spoke rekeys it:
    the hub answers TEMPORARY_FAILURE (2.25), no new pair survives the
    delete, and traffic then negotiates a fresh one."""
    sim, hub, spoke = _lab_with_traffic()
    h, s = _engines(hub, spoke)
    _rekey_both_at(sim, 10.0, hub_cmd="clear crypto sa")
    sim.run(40.0)
    assert h.stats["rekeys_refused"] == 1 and not h.collisions and not s.collisions
    # the hub's own pings negotiated a fresh pair after the clear; nothing of the refused rekey is left
    _one_pair_each(hub, spoke)
    assert sorted(c.reason.value for c in s.children.pairs + h.children.pairs) == ["initial", "initial"]
    assert results(spoke)[-100:] == "!" * 100


def test_invalid_ke_during_a_collision_then_settled():
    """PFS groups differ (hub 14, spoke 19): both crossing rekeys get
    INVALID_KE_PAYLOAD, both retry with the group asked for, the retries
    collide and 2.8.1 leaves one pair."""
    sim, hub, spoke, _ = build(
        hub=ikev2(hub_text(" set pfs group14\n")), spoke=ikev2(spoke_text(" set pfs group19\n")),
        link=LinkParams(delay=0.01))
    h, s = _engines(hub, spoke)
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 1")
    sim.run(5.0)
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 200 interval 0.1 timeout 2")
    _rekey_both_at(sim, 10.0)
    sim.run(40.0)
    assert len(h.collisions) == len(s.collisions) == 1
    assert h.collisions[0].ours_redundant != s.collisions[0].ours_redundant
    _one_pair_each(hub, spoke)
    assert results(spoke).count(".") == 0


def test_seed_lab_on_ikev2_never_more_than_two_pairs_while_ikev1_duplicates():
    """``dmvpn lab seed --ikev2``: the seed's hour of 850 Mbit/s volume rekeys
    under ``cisco-iosxe`` holds at most 2 pairs, leaves no orphan and loses
    no probe; the IKEv1 run of the same lab shows the seed's duplicates."""
    from click.testing import CliRunner

    from dmvpn.cli.main import main

    runs = {}
    for flag in ((), ("--ikev2",)):
        res = CliRunner().invoke(main, ["lab", "seed", "--json", *flag])
        assert res.exit_code == 0, res.output
        runs[bool(flag)] = json.loads(res.output)
    v1, v2 = runs[False]["summary"], runs[True]["summary"]
    assert v2["max_pairs_alive"] <= 2 and v2["orphan_pairs"] == 0 and v2["probe_packets_lost"] == 0
    assert v2["volume_rekeys"] > 80 and v2["pairs_at_end"] == 1
    assert v1["max_pairs_alive"] > 2 and v1["orphan_pairs"] >= 1
    # The IKEv2 explanation compares with the IKEv1 run: its figures are that run's.
    explanation = "\n".join(runs[True]["explanation"])
    assert "What happened over the run (IKEv2):" in explanation and "RFC 7296 2.8.1" in explanation
    assert (f"The IKEv1 run (same seed 1, profile cisco-iosxe): {v1['quick_modes']} Quick Modes, "
            f"{v1['collisions']} collision(s), {v1['orphan_pairs']} orphan pair(s), at most "
            f"{v1['max_pairs_alive']} pairs at once") in explanation
    assert f"{v2['orphan_pairs']} orphan pair(s); at most {v2['max_pairs_alive']} pairs at once" in explanation
    assert "IKEv1 has no collision rule" not in explanation  # the IKEv1 run's wording is gone


def test_debug_crypto_ikev2_lines_and_show_crypto_session():
    from dmvpn.show.debug_log import render

    sim, _hub, spoke, _ = build_v2()
    assert sim.admin("SPOKE1", "debug crypto ikev2") == "IKEv2 default debugging is on"
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 2")
    sim.run(10.0)
    spi_i = spoke.ike.sas[0].keys.spi_i.hex().upper()
    text = render(sim.events, node="SPOKE1", category="ikev2")
    lines = [x for x in text.splitlines() if "IKEv2: (SESSION ID = 1,SA ID = 1):" in x]
    assert any("Sending Packet [To 172.17.3.1:500/From 172.17.3.2:500" in x for x in lines)
    assert f"Initiator SPI : {spi_i} - Responder SPI : 0000000000000000 Message id: 0" in text
    assert "IKEv2 IKE_SA_INIT Exchange REQUEST" in text and "IKEv2 IKE_AUTH Exchange RESPONSE" in text
    assert "Session with IKE ID PAIR (172.17.3.2, 172.17.3.1) is UP" in text
    up = [e for e in sim.events if e.fields.get("facility") == "%IKEV2-5-SA_UP"]
    assert {e.node for e in up} == {"HUB", "SPOKE1"}
    assert sim.admin("SPOKE1", "no debug crypto ikev2") == "IKEv2 default debugging is off"
    session = sim.admin("SPOKE1", "show crypto session detail")
    assert "IKEv2 SA: local 172.17.3.2/500 remote 172.17.3.1/500 Active" in session
    assert "Session status: UP-ACTIVE" in session and "permit 47 host 172.17.3.2 host 172.17.3.1" in session


def test_lab_seed_ikev2_debug_log_has_the_ikev2_lines(tmp_path: Path):
    from click.testing import CliRunner

    from dmvpn.cli.main import main

    log = tmp_path / "hub.log"
    res = CliRunner().invoke(main, ["lab", "seed", "--ikev2", "--duration", "60", "--json", "--debug-log", str(log)])
    assert res.exit_code == 0, res.output
    text = log.read_text()
    assert "IKEv2 IKE_SA_INIT Exchange REQUEST" in text and "IKEv2 CREATE_CHILD_SA Exchange REQUEST" in text
    assert "Sending DELETE INFO message for IPsec SA" in text or "Received DELETE for IPsec SA" in text
