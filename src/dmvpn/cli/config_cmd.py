"""``dmvpn config check FILE...``: parse IOS configs, print a summary of
each model (or JSON), the ignored lines and the warnings. Errors are one
line each, ``FILE:LINE: error: ...``, on stderr; the exit status is 1 when
any file has an error."""

from __future__ import annotations

import json
import sys

import click

from dmvpn.config.diagnostics import ConfigError
from dmvpn.config.parser import ParseResult, parse_config, read_config_text
from dmvpn.config.summary import summary_lines, to_jsonable


@click.group("config")
def config() -> None:
    """Work with IOS-style router configurations."""


def _check(path: str) -> ParseResult:
    try:
        text = read_config_text(path)
    except ConfigError as exc:
        return ParseResult(path, None, [exc])
    result = parse_config(text, path)
    if result.ok and not result.commands_in(text):
        # an empty file or one of unknown commands only (random text) is no config
        result.errors.append(ConfigError(path, 0, "no IOS configuration command in the file"
                                         + (" (empty)" if not text.strip() else "")))
    return result


def _result_json(r: ParseResult) -> dict[str, object]:
    return {
        "file": r.source,
        "ok": r.ok,
        "errors": [{"line": e.line, "message": e.message, "text": str(e)} for e in r.errors],
        "warnings": [{"line": w.line, "message": w.message} for w in r.warnings],
        "ignored": [{"line": i.line, "text": i.text} for i in r.ignored],
        "config": to_jsonable(r.config) if r.config else None,
    }


@config.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def check(files: tuple[str, ...], as_json: bool) -> None:
    """Parse and validate each FILE; exit 1 if any has errors."""
    results = [_check(f) for f in files]
    if as_json:
        click.echo(json.dumps({"files": [_result_json(r) for r in results]}, indent=2))
    else:
        for n, r in enumerate(results):
            if n:
                click.echo()
            _print_text(r)
    if any(not r.ok for r in results):
        sys.exit(1)


def _print_text(r: ParseResult) -> None:
    click.echo(f"== {r.source}: {'OK' if r.ok else f'{len(r.errors)} error(s)'}")
    for e in r.errors:
        click.echo(str(e), err=True)
    if r.config is not None:
        for line in summary_lines(r.config):
            click.echo(line)
    click.echo(f"ignored lines ({len(r.ignored)}):")
    for i in r.ignored:
        click.echo(f"  {i.line}: {i.text}")
    click.echo(f"warnings ({len(r.warnings)}):")
    for w in r.warnings:
        click.echo(f"  {w}")
