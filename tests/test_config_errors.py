"""Malformed configs: each gives exactly one ``FILE:LINE: error: ...`` line
(the expected line and message are in the file's first comment), exit
status 1 and no traceback, through the real CLI."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dmvpn.cli.main import main
from dmvpn.config import ConfigError, load_config, parse_config

DATA = Path(__file__).parent / "data" / "config"
BAD = sorted(DATA.glob("bad_*.cfg"))
EXPECT = re.compile(r"^! expect: (\d+): (.+)$")


def _expectation(path: Path) -> tuple[int, str]:
    m = EXPECT.match(path.read_text().splitlines()[0])
    assert m, f"{path.name}: first line must be '! expect: LINE: message'"
    return int(m.group(1)), m.group(2)


def test_there_are_at_least_ten_malformed_configs() -> None:
    assert len(BAD) >= 10


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_cli_reports_one_error_line(path: Path) -> None:
    line, message = _expectation(path)
    result = CliRunner().invoke(main, ["config", "check", str(path)])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    errors = [ln for ln in result.stderr.splitlines() if ": error: " in ln]
    assert errors == [f"{path}:{line}: error: {message}"]


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_load_config_raises_the_error(path: Path) -> None:
    line, message = _expectation(path)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert (info.value.line, info.value.message) == (line, message)


def test_subprocess_exit_status_and_stderr() -> None:
    path = DATA / "bad_group_99.cfg"
    proc = subprocess.run(
        [sys.executable, "-m", "dmvpn", "config", "check", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"{path}:6: error: group: expected a DH group 1|2|5|14|15|16|19|20|21, got '99'"
    assert "Traceback" not in proc.stdout + proc.stderr


def test_all_errors_are_collected(tmp_path: Path) -> None:
    text = "\n".join(
        [
            "crypto isakmp policy 1",
            " lifetime abc",
            " group 99",
            "crypto ipsec transform-set T esp-aes esp-sha-hmac",
            " mode sideways",
            "interface Tunnel0",
            " ip address 10.0.0.0 255.255.255.0",
        ]
    )
    result = parse_config(text, "multi.cfg")
    assert result.config is None
    assert [e.line for e in result.errors] == [2, 3, 5, 7]
    assert str(result.errors[3]) == (
        "multi.cfg:7: error: ip address: bad mask 255.255.255.0 for address 10.0.0.0 "
        "(it is the subnet's network or broadcast address)"
    )


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.cfg"
    path.write_bytes(b"hostname R1\n!\ndescription caf\xe9\n")
    result = CliRunner().invoke(main, ["config", "check", str(path)])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"{path}:3: error: not UTF-8 text (byte 0xe9)"


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "nope.cfg"
    result = CliRunner().invoke(main, ["config", "check", str(path)])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"{path}: error: cannot read file: No such file or directory"


def test_one_bad_file_among_good_ones_fails_the_run() -> None:
    seed = Path("/work/shared/seed")
    result = CliRunner().invoke(
        main, ["config", "check", str(seed / "hub.cfg"), str(DATA / "bad_mode.cfg"), str(seed / "spoke.cfg")]
    )
    assert result.exit_code == 1
    assert result.stdout.count(": OK") == 2
