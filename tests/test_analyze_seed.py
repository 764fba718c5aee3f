"""``dmvpn analyze`` on the seed's own files (issue 15, first "Done when"):
the hub's ``show crypto ipsec sa peer 172.17.3.2`` and both sides' debug.

The figures are worked out by hand in shared/REFERENCE.md ("The seed,
worked through"): three pairs, 49 min / ~67 s / ~32 s old; the oldest never
carried a byte; the middle one carried ~3.7 million KB out in the ~35 s
before it was replaced, ~0.85 Gbit/s; 4,608,000 KB lasts ~44 s at that
rate and the 90% mark comes every ~40 s, against the debug's Quick Modes
37 s apart, started once by each side."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from analyze_support import SEED, analyse
from dmvpn.cli.main import main
from dmvpn.lab.report import FIX_LINE

SHOW = SEED / "hub_show_crypto_ipsec_sa_peer.txt"
HUB_DEBUG = SEED / "hub_debug_crypto_isakmp.txt"
SPOKE_DEBUG = SEED / "spoke_debug_crypto_isakmp.txt"
POLICIES = SEED / "show_crypto_policies_and_profiles.txt"


@pytest.fixture(scope="module")
def seed() -> dict:
    return analyse(hub=[SHOW, HUB_DEBUG], spoke=[SPOKE_DEBUG])[1]


def _flow(doc: dict) -> dict:
    (flow,) = doc["sides"][0]["flows"]
    return flow


def test_three_inbound_and_three_outbound_for_the_peer(seed: dict) -> None:
    flow = _flow(seed)
    assert flow["peer"] == "172.17.3.2"
    assert (flow["inbound_esp_sas"], flow["outbound_esp_sas"]) == (3, 3)
    assert flow["current_outbound_spi"] == "0x290E38E9"
    assert [p["conn_ids"] for p in flow["pairs"]] == ["19697/19698", "19691/19692", "19415/19416"]


def test_ages_volumes_roles(seed: dict) -> None:
    current, replaced, orphan = _flow(seed)["pairs"]
    assert (orphan["age_s"], orphan["role"], orphan["carried_out_kb"], orphan["carried_in_kb"]) == \
        (2944, "orphan", 0, 0)  # 49 minutes, never a byte
    assert (replaced["age_s"], replaced["role"], replaced["replaced_after_s"]) == (67, "replaced", 35)
    assert (current["age_s"], current["role"]) == (32, "current")
    assert replaced["carried_out_kb"] == 4_608_000 - 884_442  # ~3.7 million KB, 3.8e9 bytes
    assert 0.80e9 < replaced["rate_out_bps"] < 0.90e9
    assert 0.80e9 < current["rate_out_bps"] < 0.90e9
    sa = next(s for s in _flow(seed)["sas"] if s["spi"] == "0x50919C87")
    assert 3.7e9 < sa["carried_bytes"] < 3.9e9 and sa["age_s"] == 67


def test_rekey_interval_matches_the_debug(seed: dict) -> None:
    flow = _flow(seed)
    assert flow["rekey_driver"] == "volume"
    assert 0.8e9 < flow["rate_out_bps"] < 0.9e9
    assert 35 <= flow["implied_rekey_interval_s"] <= 45 and 40 <= flow["volume_lasts_s"] <= 48
    assert flow["observed_rekey_intervals_s"] == [35]
    ex = seed["exchanges"]
    assert ex["intervals_s"] == [37.0]
    assert ex["started_by"] == ["hub", "spoke"]  # one Quick Mode started by each side
    first, second = ex["quick_modes"]
    assert (first["msgid"], first["initiator"]) == (3666410542, "spoke")
    assert (second["msgid"], second["initiator"]) == (3247684825, "hub")
    assert second["logged_by"] == {"hub": "initiator", "spoke": "responder"}
    assert [p["msgid"] for p in ex["purges"]] == [1383603721, 1388932311]
    assert ex["deletes"] == [{"side": "hub", "time": "Sep  7 23:11:37", "msgid": 3832189246,
                              "spis": ["0x83877863"]}]


def test_diagnosis_not_load_balancing_and_the_fix(seed: dict) -> None:
    d = seed["diagnosis"]
    assert d["volume_driven"] and not d["load_balancing"] and d["orphan_pairs"] == 1
    assert d["fix_lines"] == [FIX_LINE]
    why = " ".join(d["why"])
    assert "not load balancing" in why and "volume lifetime, not the time lifetime" in why
    change = " ".join(d["change"])
    assert FIX_LINE in change and "lifetime kilobytes 800000000" in change and "IKEv2" in change


def test_puzzling_lines_explained(seed: dict) -> None:
    names = {e["name"]: e for e in seed["sides"][0]["debug_explained"]}
    for name in ("paranoid keepalives", "purging node", "outstanding requests"):
        assert not names[name]["failure"] and names[name]["meaning"]
    assert names["paranoid keepalives"]["line"].endswith("hub_debug_crypto_isakmp.txt:28")


def test_lifetime_sources() -> None:
    """Debug alone: 3600 s from the proposal, the kilobytes assumed; with the
    profile show or the configs, nothing is assumed."""
    _, doc = analyse(hub=[SHOW, HUB_DEBUG])
    life = _flow(doc)["lifetime"]
    assert (life["seconds"], life["kilobytes"], life["assumed"]) == (3600, 4_608_000, True)
    _, doc = analyse(hub=[SHOW, POLICIES])
    life = _flow(doc)["lifetime"]
    assert not life["assumed"] and life["source"].startswith("show crypto ipsec profile ENS_ipsec_profile")
    _, doc = analyse(hub=[SEED / "hub.cfg", SHOW])
    assert _flow(doc)["lifetime"]["source"].endswith("hub.cfg: crypto ipsec profile ENS_ipsec_profile")


def test_cli_text_reads_like_the_lab() -> None:
    result = CliRunner().invoke(main, ["analyze", "--side", f"hub={SHOW},{HUB_DEBUG}",
                                       "--side", f"spoke={SPOKE_DEBUG}"])
    assert result.exit_code == 0, result.output
    out = result.output
    for text in ("3 inbound and 3 outbound ESP SAs", "an orphan: has never carried a byte in 49 min",
                 "replaced 32 s ago", "3,723,558 KB (3.8 GB) out (81% of its kilobytes)",
                 "37 s between Quick Modes", "It is not load balancing", f"    {FIX_LINE}",
                 "What is happening:", "Why:", "What to change:"):
        assert text in out, text


def test_cli_json_from_stdin_equals_files() -> None:
    text = b"HUB#" + SHOW.read_bytes().removeprefix(b"#") + b"\n" + HUB_DEBUG.read_bytes()
    result = CliRunner().invoke(main, ["analyze", "--json", "-"], input=text)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["sides"][0]["hostname"] == "HUB"
    assert [p["age_s"] for p in _flow(doc)["pairs"]] == [32, 67, 2944]


def test_lab_replay_with_and_without_the_change() -> None:
    result = CliRunner().invoke(main, ["analyze", "--json", "--lab", "--lab-duration", "400",
                                       "--side", f"hub={SEED / 'hub.cfg'},{SHOW}",
                                       "--side", f"spoke={SEED / 'spoke.cfg'}"])
    assert result.exit_code == 0, result.output
    lab = json.loads(result.output)["lab"]
    assert 0.8e9 < lab["rate_out_bps"] < 0.9e9 and lab["duration_s"] == 400
    assert lab["as_configured"]["volume_rekeys"] >= 8  # ~every 40 s
    assert lab["with_change"]["volume_rekeys"] == 0 and lab["with_change"]["quick_modes"] == 1


def test_lab_needs_both_configs() -> None:
    result = CliRunner().invoke(main, ["analyze", "--lab", str(SHOW)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [result.output.strip()]
    assert "running-config" in result.output
