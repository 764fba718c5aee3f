"""``dmvpn netlab up|down|status SCENARIO`` and ``restart SCENARIO NODE``:
a scenario's routers as real daemons in network namespaces (see
:mod:`dmvpn.lab.netlab`). SCENARIO is a scenario TOML file, ``seed`` for the
built-in seed lab (hub and spoke) or ``dmvpn`` for the built-in DMVPN lab
(a hub and two spokes with OSPF over the tunnel, FRR beside each daemon)."""

from __future__ import annotations

import os
import sys
from importlib import resources

import click

from dmvpn.lab.netlab import Netlab, NetlabError
from dmvpn.lab.scenario import Scenario, ScenarioError, load_scenario

#: The built-in scenarios, by name.
BUILT_IN = {"seed": "seed.toml", "dmvpn": "netlab-dmvpn.toml"}


def _scenario(arg: str) -> Scenario:
    if arg in BUILT_IN and not os.path.exists(arg):
        with resources.as_file(resources.files("dmvpn.lab") / "data" / BUILT_IN[arg]) as path:
            return load_scenario(path)
    return load_scenario(arg)


def _netlab(action: str, arg: str) -> Netlab:
    if os.geteuid() != 0:
        _fail(action, "must run as root (namespaces, veths, daemons)")
    try:
        return Netlab(_scenario(arg))
    except ScenarioError as err:
        _fail(action, str(err))
    raise AssertionError("unreachable")


def _fail(action: str, message: str) -> None:
    click.echo(f"dmvpn netlab {action}: {message}", err=True)
    sys.exit(1)


@click.group("netlab")
def netlab() -> None:
    """Run a scenario's routers as real daemons in network namespaces."""


@netlab.command("up")
@click.argument("scenario")
def up(scenario: str) -> None:
    """Create namespaces, links and one `dmvpn run` daemon per node."""
    lab = _netlab("up", scenario)
    try:
        lab.up()
    except NetlabError as err:
        _fail("up", str(err))
    for line in lab.status():
        click.echo(line)


@netlab.command("down")
@click.argument("scenario")
def down(scenario: str) -> None:
    """Stop the daemons (by PID) and delete every namespace `up` made."""
    lab = _netlab("down", scenario)
    try:
        done = lab.down()
    except NetlabError as err:
        _fail("down", str(err))
    for line in done or [f"netlab {lab.name}: nothing to remove"]:
        click.echo(line)


@netlab.command("status")
@click.argument("scenario")
def status(scenario: str) -> None:
    """Namespaces, daemons and their control sockets."""
    for line in _netlab("status", scenario).status():
        click.echo(line)


@netlab.command("restart")
@click.argument("scenario")
@click.argument("node")
def restart(scenario: str, node: str) -> None:
    """Kill NODE's daemon (as a crash: SIGKILL) and start it again."""
    lab = _netlab("restart", scenario)
    try:
        click.echo(lab.restart(node))
    except NetlabError as err:
        _fail("restart", str(err))
