"""``dmvpn analyze`` on odd input (issue 15, third "Done when"): garbage,
empty, binary and truncated input give one line and exit status 2 when
nothing can be analysed, never a traceback; unreadable lines are reported
by number and skipped. A hypothesis test feeds mutated real outputs."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyze_support import ORACLES, SEED
from dmvpn.analyze.diagnosis import diagnose
from dmvpn.analyze.render import render_json, render_text
from dmvpn.analyze.report import analyse_sides
from dmvpn.analyze.text import InputError
from dmvpn.cli.main import main

REAL = [SEED / "hub_show_crypto_ipsec_sa_peer.txt", SEED / "hub_debug_crypto_isakmp.txt",
        SEED / "show_crypto_policies_and_profiles.txt", SEED / "hub.cfg",
        ORACLES / "show_dmvpn" / "ntc_cisco_ios_show_dmvpn.txt",
        ORACLES / "show_crypto_session" / "genie_iosxe_ShowCryptoSessionDetail_golden_output_output.txt",
        ORACLES / "show_crypto_isakmp_sa" / "genie_iosxe_ShowCryptoIsakmpSa_golden_output_isakmp_output.txt",
        ORACLES / "show_crypto_ipsec_sa" / "genie_iosxe_ShowCryptoIpsecSaDetail_golden_output_output.txt",
        ORACLES / "show_ip_nhrp" / "genie_iosxe_ShowIpNhrpDetail_golden_output_output.txt",
        Path(__file__).parent / "data" / "analyze" / "show_crypto_ikev2_sa.txt",
        Path(__file__).parent / "data" / "analyze" / "hub_debug_crypto_ipsec.txt"]
TEXTS = [p.read_bytes() for p in REAL]


def _run(tmp_path: Path, data: bytes, *args: str):
    path = tmp_path / "input.txt"
    path.write_bytes(data)
    return CliRunner().invoke(main, ["analyze", *args, str(path)])


def _one_line_exit_2(result) -> str:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_empty(tmp_path: Path) -> None:
    assert "empty input" in _one_line_exit_2(_run(tmp_path, b""))
    assert "empty input" in _one_line_exit_2(_run(tmp_path, b"  \n\n\t\n"))


def test_binary(tmp_path: Path) -> None:
    assert "binary data" in _one_line_exit_2(_run(tmp_path, bytes(range(256)) * 40))
    assert "binary data" in _one_line_exit_2(_run(tmp_path, b"\x1f\x8b\x08\x00" + b"\x00" * 100))


def test_garbage_text(tmp_path: Path) -> None:
    line = _one_line_exit_2(_run(tmp_path, b"hello world\nthis is not router output\n" * 50, "--json"))
    assert "nothing to analyse" in line and "in 100 non-blank line(s)" in line


def test_missing_file() -> None:
    result = CliRunner().invoke(main, ["analyze", "/nonexistent/show.txt"])
    assert "cannot read" in _one_line_exit_2(result)


def test_bad_side_and_no_input() -> None:
    assert CliRunner().invoke(main, ["analyze", "--side", "hub"]).exit_code == 2
    assert CliRunner().invoke(main, ["analyze"]).exit_code == 2


def test_truncated_show_still_analysed_and_the_cut_named(tmp_path: Path) -> None:
    text = TEXTS[0]
    cut = text[: text.index(b"conn id: 19692") + 8]  # ends inside an SA's conn id line
    result = _run(tmp_path, cut, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    flow = doc["sides"][0]["flows"][0]
    assert (flow["inbound_esp_sas"], flow["outbound_esp_sas"]) == (3, 2)
    assert any(":65: " in u and "not a line of show crypto ipsec sa" in u for u in doc["sides"][0]["unread"])


def test_unread_lines_are_named_by_number(tmp_path: Path) -> None:
    text = TEXTS[0].replace(b"        IV size: 16 bytes\n", b"        IV size: 16 bytes\n%%% noise %%%\n", 1)
    result = _run(tmp_path, text, "--json")
    unread = json.loads(result.output)["sides"][0]["unread"]
    assert unread == ["input.txt:30: not a line of show crypto ipsec sa: '%%% noise %%%'".replace(
        "input.txt", str(tmp_path / "input.txt"))]


def test_huge_input_is_bounded(tmp_path: Path) -> None:
    """Forty copies of the seed table: 120 pairs, read and explained."""
    result = _run(tmp_path, (TEXTS[0] + b"\n") * 40, "--json")
    assert result.exit_code == 0
    assert len(json.loads(result.output)["sides"][0]["flows"]) == 40


def _mutate(data: bytes, ops: list[tuple[int, int, int, bytes]]) -> bytes:
    lines = data.split(b"\n")
    for op, i, j, junk in ops:
        if not lines:
            break
        i %= len(lines)
        if op == 0:  # drop a line
            del lines[i]
        elif op == 1:  # duplicate a line
            lines.insert(i, lines[i])
        elif op == 2:  # cut a line short
            lines[i] = lines[i][: j % (len(lines[i]) + 1)]
        elif op == 3:  # overwrite bytes
            line = lines[i]
            k = j % (len(line) + 1)
            lines[i] = line[:k] + junk + line[k + len(junk):]
        elif op == 4:  # swap two lines
            k = j % len(lines)
            lines[i], lines[k] = lines[k], lines[i]
        else:  # truncate the whole text
            lines = lines[: i + 1]
    return b"\n".join(lines)


_OPS = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 10_000), st.integers(0, 200),
                          st.binary(min_size=1, max_size=12)), max_size=12)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(picks=st.lists(st.integers(0, len(TEXTS) - 1), min_size=1, max_size=3), ops=_OPS,
       two_sides=st.booleans())
def test_mutated_real_outputs_never_crash(picks: list[int], ops, two_sides: bool) -> None:
    data = _mutate(b"\n".join(TEXTS[i] for i in picks), ops)
    inputs = {"a": [("a.txt", data)]}
    if two_sides:
        inputs["b"] = [("b.txt", _mutate(TEXTS[1], ops[::-1]))]
    try:
        report = analyse_sides(inputs)
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    d = diagnose(report)
    assert render_text(report, d)
    json.dumps(render_json(report, d))
    for side in report.sides:
        assert all(u.no >= 0 for u in side.unread)


_REAL_LINES = sorted({line for text in TEXTS for line in text.split(b"\n")})


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(st.one_of(st.sampled_from(_REAL_LINES), st.binary(max_size=40)), max_size=60))
def test_shuffled_real_lines_never_crash(lines: list[bytes]) -> None:
    """Real lines in any order, with junk between: the parsers' states see
    every line in every state."""
    try:
        report = analyse_sides({"a": [("a.txt", b"\n".join(lines))]})
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    d = diagnose(report)
    json.dumps(render_json(report, d))
    assert render_text(report, d)


def test_terminal_artefacts_are_cleaned(tmp_path: Path) -> None:
    """CRLF, ANSI colour, a pager's --More-- with its backspaces, tabs: the
    seed table still reads the same."""
    more = b" --More-- " + b"\x08" * 10 + b" " * 10 + b"\x08" * 10
    lines = TEXTS[0].split(b"\n")
    lines[30] = more + lines[30]
    lines[0] = b"\x1b[1mHUB\x1b[0m" + lines[0]
    text = b"\r\n".join(lines).replace(b"        ", b"\t")
    doc = json.loads(_run(tmp_path, text, "--json").output)
    side = doc["sides"][0]
    assert side["hostname"] == "HUB" and not side["unread"]
    assert [p["age_s"] for p in side["flows"][0]["pairs"]] == [32, 67, 2944]
