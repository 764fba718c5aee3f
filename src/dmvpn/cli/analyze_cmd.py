"""``dmvpn analyze``: explain IOS crypto output a user pastes (issue 15).

    dmvpn analyze FILE... [--json]
    dmvpn analyze --side hub=hub_show.txt --side hub=hub_debug.txt --side spoke=spoke_debug.txt
    dmvpn analyze --side hub=hub.cfg,hub_show.txt --side spoke=spoke.cfg,spoke_debug.txt --lab

``-`` reads standard input. Exit status 0 when something was analysed, 2
when nothing could be (a one-line message says why)."""

from __future__ import annotations

import json
import sys

import click

from dmvpn.analyze.diagnosis import diagnose
from dmvpn.analyze.render import render_json, render_text
from dmvpn.analyze.report import analyse_sides
from dmvpn.analyze.text import InputError
from dmvpn.cli.params import Seconds

#: Larger inputs are read only this far (and that is said).
MAX_BYTES = 64 * 1024 * 1024


def _read(path: str) -> tuple[str, bytes]:
    name = "<stdin>" if path == "-" else path
    try:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_BYTES + 1)
        else:
            with open(path, "rb") as f:
                data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path) from None
    if len(data) > MAX_BYTES:
        click.echo(f"warning: {name}: only the first {MAX_BYTES >> 20} MB read", err=True)
    return name, data[:MAX_BYTES]


def _sides(files: tuple[str, ...], side_specs: tuple[str, ...]) -> dict[str, list[tuple[str, bytes]]]:
    sides: dict[str, list[tuple[str, bytes]]] = {}
    for spec in side_specs:
        name, sep, paths = spec.partition("=")
        if not sep or not name.strip() or not paths.strip():
            raise click.BadParameter(f"expected NAME=FILE[,FILE...], got {spec!r}", param_hint="--side")
        for path in paths.split(","):
            if path.strip():
                sides.setdefault(name.strip(), []).append(_read(path.strip()))
    if files:
        sides.setdefault("router", []).extend(_read(p) for p in files)
    if not sides:
        raise click.UsageError("give FILE... or --side NAME=FILE (`-` is standard input)")
    return sides


@click.command("analyze")
@click.argument("files", nargs=-1, metavar="[FILE]...")
@click.option("--side", "side_specs", multiple=True, metavar="NAME=FILE[,FILE...]",
              help="files from one router, named (repeat for each router or file)")
@click.option("--json", "as_json", is_flag=True, help="one JSON object with the same figures")
@click.option("--lab", "lab", is_flag=True,
              help="replay the situation in the lab from the configs and the measured rate, "
                   "with and without the change")
@click.option("--lab-duration", type=Seconds(), default=3600.0, show_default=True,
              help="virtual seconds for each --lab run")
def analyze_command(files: tuple[str, ...], side_specs: tuple[str, ...], as_json: bool, lab: bool,
                    lab_duration: float) -> None:
    """Explain pasted IOS output: show crypto ipsec sa / isakmp sa / session,
    show crypto isakmp policy / ipsec profile, show dmvpn, running-configs and
    debug crypto isakmp logs, in any mix, from one router or several.

    It works out each SA's age, volume and rate, pairs and orphans, the
    Quick Modes in the debug, and says what is happening, why, and the IOS
    lines to change."""
    try:
        report = analyse_sides(_sides(files, side_specs))
    except InputError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    d = diagnose(report)
    replay = None
    if lab:
        from dmvpn.analyze.replay import ReplayError, replay_in_lab

        try:
            replay = replay_in_lab(report, duration=lab_duration)
        except ReplayError as exc:
            click.echo(f"error: --lab: {exc}", err=True)
            sys.exit(2)
    if as_json:
        doc = render_json(report, d)
        if replay is not None:
            doc["lab"] = replay.as_json()
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(render_text(report, d), nl=False)
    if replay is not None:
        click.echo()
        click.echo("\n".join(replay.lines()))
