"""Issue 17: every ``dmvpn`` command given a nonexistent path, an empty,
binary or random file, a NaN, an infinity or a negative number exits
non-zero with one line naming what is wrong, and no traceback.

The commands and their arguments are enumerated from the click tree
(``dmvpn.cli.main``), so a new command is in the matrix unless it is listed
as covered here; commands that need a daemon get a nonexistent control
socket. All the runs start at once (a module fixture) and each case checks
its own, so the matrix costs a few process start-ups of wall time."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import pytest

from dmvpn.cli.main import main

FILE_KINDS = ("missing", "empty", "binary", "random")
NUMBERS = ("nan", "inf", "-1", "1e400")
NO_SOCKET = "/nonexistent/dmvpn-test.sock"
TIMEOUT = 30
#: every leaf command and the file argument it takes (None: none)
FILE_COMMANDS: dict[str, list[str]] = {
    "decode": ["decode", "{file}"],
    "decode --ikev1-keys": ["decode", "{capture}", "--ikev1-keys", "{file}"],
    "decode --ikev2-keys": ["decode", "{capture}", "--ikev2-keys", "{file}"],
    "analyze": ["analyze", "{file}"],
    "analyze --side": ["analyze", "--side", "hub={file}"],
    "config check": ["config", "check", "{file}"],
    "lab run": ["lab", "run", "{file}"],
    "run": ["run", "{file}", "--control", NO_SOCKET],
    "netlab up": ["netlab", "up", "{file}"],
    "netlab down": ["netlab", "down", "{file}"],
    "netlab status": ["netlab", "status", "{file}"],
    "netlab restart": ["netlab", "restart", "{file}", "hub"],
    "show --frr": ["show", "--frr", "{file}", "ip", "ospf", "neighbor"],
}
#: numeric options and words, with the command they belong to
NUMBER_COMMANDS: dict[str, list[str]] = {
    "lab seed --duration": ["lab", "seed", "--json", "--duration", "{n}"],
    "lab seed --seed": ["lab", "seed", "--json", "--duration", "1", "--seed", "{n}"],
    "lab run --duration": ["lab", "run", "{scenario}", "--json", "--duration", "{n}"],
    "lab run --seed": ["lab", "run", "{scenario}", "--json", "--duration", "1", "--seed", "{n}"],
    "lab dmvpn --duration": ["lab", "dmvpn", "--json", "--duration", "{n}"],
    "lab dmvpn --seed": ["lab", "dmvpn", "--json", "--duration", "1", "--seed", "{n}"],
    "analyze --lab-duration": ["analyze", "{seed_show}", "--lab", "--lab-duration", "{n}"],
    "ping repeat": ["ping", "--control", NO_SOCKET, "10.0.0.1", "repeat", "{n}"],
    "ping size": ["ping", "--control", NO_SOCKET, "10.0.0.1", "size", "{n}"],
    "ping timeout": ["ping", "--control", NO_SOCKET, "10.0.0.1", "timeout", "{n}"],
}
#: commands whose only arguments are words sent to a daemon
DAEMON_COMMANDS = {name: [name, "--control", NO_SOCKET, "crypto", "sa"]
                   for name in ("show", "debug", "undebug", "clear")}
#: bad paths for the output options (a folder that does not exist)
OUTPUT_COMMANDS = {
    "lab seed --plot": ["lab", "seed", "--json", "--duration", "1", "--plot", "/nonexistent/dir/p.png"],
    "lab seed --debug-log": ["lab", "seed", "--json", "--duration", "1", "--debug-log", "/nonexistent/dir/d.log"],
    "lab dmvpn --plot": ["lab", "dmvpn", "--json", "--duration", "1", "--plot", "/nonexistent/dir/p.png"],
}


def _leaves(group: click.Command, prefix: tuple[str, ...] = ()) -> set[str]:
    if isinstance(group, click.Group):
        out: set[str] = set()
        for name, cmd in group.commands.items():
            out |= _leaves(cmd, (*prefix, name))
        return out
    return {" ".join(prefix)}


def test_the_matrix_covers_every_command():
    covered = {k.split(" --")[0].rsplit(" ", 1)[0] if k.startswith(("ping ",)) else k.split(" --")[0]
               for k in (*FILE_COMMANDS, *NUMBER_COMMANDS, *DAEMON_COMMANDS, *OUTPUT_COMMANDS)}
    assert _leaves(main) == covered


def _files(root: Path) -> dict[str, Path]:
    rng = random.Random(17)
    files = {"missing": root / "does-not-exist.cfg", "empty": root / "empty.cfg",
             "binary": root / "binary.cfg", "random": root / "random.cfg"}
    files["empty"].write_bytes(b"")
    files["binary"].write_bytes(bytes(rng.randrange(256) for _ in range(4096)))
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 .,;:!/-_=\n"
    files["random"].write_text("".join(rng.choice(alphabet) for _ in range(20_000)))
    return files


def _cases(root: Path) -> dict[str, list[str]]:
    files = _files(root)
    scenario = root / "one.toml"
    data = Path(__file__).resolve().parent.parent / "src" / "dmvpn" / "lab" / "data"
    scenario.write_text(f'[lab]\nname = "one"\nduration = 10\n\n[[node]]\nname = "hub"\n'
                        f'config = "{data / "hub.cfg"}"\n')
    capture = Path(__file__).resolve().parents[2] / "shared" / "oracles" / "pcaps" / "strongswan" / \
        "ike_v1_strongswan.pcap"
    seed_show = capture.parents[2].parent / "seed" / "hub_show_crypto_ipsec_sa_peer.txt"
    cases = {}
    for name, argv in FILE_COMMANDS.items():
        for kind in FILE_KINDS:
            cases[f"{name} [{kind} file]"] = [a.format(file=files[kind], capture=capture) for a in argv]
    for name, argv in NUMBER_COMMANDS.items():
        for n in NUMBERS:
            cases[f"{name} {n}"] = [a.format(n=n, scenario=scenario, seed_show=seed_show) for a in argv]
    for name, argv in {**DAEMON_COMMANDS, **OUTPUT_COMMANDS}.items():
        cases[name] = argv
    return cases


CASES = sorted(_cases(Path("/tmp")).keys())


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    try:
        proc = subprocess.run([sys.executable, "-m", "dmvpn", *argv], capture_output=True, text=True,
                              env=env, cwd=cwd, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return -1, "", f"(still running after {TIMEOUT} s)"
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("badcli")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent / "src")}
    cases = _cases(root)
    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = {name: pool.submit(_run, argv, env, root) for name, argv in cases.items()}
        return {name: f.result() for name, f in futures.items()}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_and_a_failure(runs, case):
    code, stdout, stderr = runs[case]
    lines = [x for x in stderr.splitlines() if x.strip()]
    assert "Traceback" not in stderr + stdout, stderr
    assert code != 0, (stdout[-500:], stderr)
    assert len(lines) == 1, stderr
