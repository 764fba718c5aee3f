"""Scenario files: valid ones load into typed specs; every malformed one is
one ScenarioError naming file, line and field."""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

import pytest

from dmvpn.lab.scenario import FaultAction, ScenarioError, load_scenario, parse_scenario

SEED = Path(__file__).resolve().parents[1].parent / "shared" / "seed"

GOOD = """\
[lab]
duration = 600
seed = 7
profile = "improved"

[[node]]
name = "hub"
config = "hub.cfg"

[[node]]
name = "spoke"
config = "spoke.cfg"

[[link]]
name = "wan"
endpoints = ["hub:GigabitEthernet0/0/2", "spoke:GigabitEthernet0/0/2"]
delay_ms = 2
loss = 0.1

[[flow]]
src = "hub"
dst = "10.2.2.2"
rate_mbps = 850

[[probe]]
src = "spoke"
dst = "10.2.2.1"
interval = 0.5

[[fault]]
at = 100
action = "link-down"
target = "wan"

[[show]]
at = 600
node = "hub"
command = "show crypto ipsec sa"
"""


def test_good_scenario_loads(tmp_path: Path) -> None:
    s = parse_scenario(GOOD, "good.toml", SEED)
    assert (s.duration, s.seed, s.profile) == (600.0, 7, "improved")
    assert [n.name for n in s.nodes] == ["hub", "spoke"]
    assert s.nodes[0].config == SEED / "hub.cfg"
    assert s.links[0].endpoints == (("hub", "GigabitEthernet0/0/2"), ("spoke", "GigabitEthernet0/0/2"))
    assert s.links[0].loss == 0.1 and s.links[0].delay_ms == 2.0
    assert s.flows[0].dst == IPv4Address("10.2.2.2") and s.flows[0].rate_mbps == 850.0
    assert s.flows[0].packet_bytes == 1400 and s.flows[0].stop is None
    assert s.probes[0].interval == 0.5
    assert s.faults[0].action is FaultAction.LINK_DOWN
    assert s.shows[0].command == "show crypto ipsec sa"


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize(
    ("old", "new", "where", "line_needle", "words"),
    [
        ('rate_mbps = 850', 'rate_mbps = "fast"', "flow[0].rate_mbps", "rate_mbps", "expected a number"),
        ('rate_mbps = 850', 'rate_mbps = -3', "flow[0].rate_mbps", "rate_mbps", "> 0"),
        ('dst = "10.2.2.2"', 'dst = "10.2.2"', "flow[0].dst", 'dst = "10.2.2"', "IPv4 address"),
        ('loss = 0.1', 'loss = 1.5', "link[0].loss", "loss", "<= 1"),
        ('action = "link-down"', 'action = "explode"', "fault[0].action", "action", "link-down"),
        ('target = "wan"', 'target = "lan"', "fault[0].target", "target", "no link named 'lan'"),
        ('node = "hub"', 'node = "core"', "show[0].node", 'node = "core"', "no node named 'core'"),
        ('config = "spoke.cfg"', 'config = "nope.cfg"', "node[1].config", "nope.cfg", "no such file"),
        ('interval = 0.5', 'intervall = 0.5', "probe[0].intervall", "intervall", "unknown field"),
        ('duration = 600', 'duration = 0', "lab.duration", "duration", "> 0"),
        ('duration = 600', 'duration = nan', "lab.duration", "duration", "expected a number, got nan"),
        ('duration = 600', 'duration = inf', "lab.duration", "duration", "expected a number, got inf"),
        ('duration = 600', 'duration = 1e300', "lab.duration", "duration", "<= 31536000"),
        ('name = "spoke"', 'name = "hub"', "node[1].name", '[[node]]', "duplicate node name"),
        ('"spoke:GigabitEthernet0/0/2"]', '"spoke"]', "link[0].endpoints", "endpoints", "node:interface"),
    ],
)
def test_malformed_scenarios_name_file_line_field(old: str, new: str, where: str,
                                                  line_needle: str, words: str) -> None:
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "bad.toml", SEED)
    err = info.value
    message = str(err)
    assert "\n" not in message
    assert message.startswith("bad.toml:")
    assert err.where == where
    assert words in message
    if line_needle == "[[node]]":
        # a duplicate name is reported at the key of the second node
        assert err.line == [i for i, line in enumerate(text.splitlines(), 1) if 'name = "hub"' in line][1]
    else:
        assert err.line == _line_of(text, line_needle)


def test_toml_syntax_error_has_line() -> None:
    text = GOOD.replace("seed = 7", "seed = = 7")
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "syntax.toml", SEED)
    assert info.value.line == _line_of(text, "seed = = 7")
    assert "not valid TOML" in str(info.value)


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path / "absent.toml")
    assert "cannot read" in str(info.value)
