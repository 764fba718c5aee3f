"""``dmvpn lab run SCENARIO.toml``, ``dmvpn lab seed`` and ``dmvpn lab dmvpn``: scenarios in the
simulator, with the show output, a summary, the explanation of every SA,
the hub's ``debug crypto isakmp`` log and the SA timeline plot."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import replace
from importlib import resources
from ipaddress import IPv4Address
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from dmvpn.cli.params import Seconds
from dmvpn.config import ConfigError
from dmvpn.ike.profiles import PROFILES
from dmvpn.lab.report import apply_fix, explain_history, explain_lab_sas, peer_pairs, summary
from dmvpn.lab.runner import LabResult, LabRun
from dmvpn.lab.scenario import FaultAction, FaultSpec, Scenario, ScenarioError, load_scenario, parse_scenario

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

F = TypeVar("F", bound=Callable[..., None])

SEED_SCENARIO = "seed.toml"
SEED_NODE, SEED_PEER = "hub", "172.17.3.2"


def _seed_scenario(ikev2: bool = False) -> Scenario:
    """The built-in seed scenario; ``ikev2``: the same lab with the IKEv2
    variants of its configs (``hub_ikev2.cfg``, ``spoke_ikev2.cfg``)."""
    data = resources.files("dmvpn.lab") / "data" / SEED_SCENARIO
    with resources.as_file(data) as path:
        if not ikev2:
            return load_scenario(path)
        text = path.read_text().replace('name = "seed"', 'name = "seed-ikev2"')
        for node in ("hub", "spoke"):
            text = text.replace(f'config = "{node}.cfg"', f'config = "{node}_ikev2.cfg"')
        return parse_scenario(text, str(path), base=path.parent)


def _progress_bar(enabled: bool) -> Progress | None:
    """A rich progress bar on stderr (virtual time done / total), or None
    when off (``--json``) or when stderr is not a terminal."""
    if not enabled or not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("lab"), BarColumn(),
                    TextColumn("{task.completed:.0f}/{task.total:.0f} s virtual"),
                    TimeElapsedColumn(), transient=True, console=Console(stderr=True))


def _run(scenario: Scenario, *, profile: str | None, seed: int | None, duration: float | None,
         fix: bool, debug_node: str | None, show_progress: bool) -> LabResult:
    progress = _progress_bar(show_progress)
    task: TaskID | None = None

    def tick(done: float, total: float) -> None:
        if progress is not None and task is not None:
            progress.update(task, completed=done, total=total)

    run = LabRun(scenario, profile=profile, seed=seed, duration=duration,
                 progress=tick if progress is not None else None,
                 config_transform=apply_fix if fix else None)
    if debug_node is not None:
        run.sim.admin(debug_node, "debug crypto isakmp")
        run.sim.admin(debug_node, "debug crypto ikev2")  # the IKEv2 lab's key manager
    if progress is None:
        return run.run()
    with progress:
        task = progress.add_task("lab", total=run.duration)
        return run.run()


def _write_debug(result: LabResult, node: str, path: Path) -> None:
    router = result.routers[node]
    events = result.sim.events_for(node, "isakmp") + result.sim.events_for(node, "ikev2")
    path.write_text(router.render_debug(events))


def _report(result: LabResult, *, focus: tuple[str, str] | None, explain: bool, as_json: bool,
            debug_log: Path | None, debug_node: str | None, plot: Path | None,
            ikev1_run: dict[str, Any] | None = None) -> None:
    pairs = peer_pairs(result)
    if focus is None or focus not in pairs:
        focus = pairs[0] if pairs else None
    if debug_log is not None and debug_node is not None:
        _write_debug(result, debug_node, debug_log)
    if plot is not None and focus is not None:
        from dmvpn.lab.plot import plot_timeline

        plot_timeline(result, focus[0], focus[1], plot)
    shows = {f"{spec.node}: {spec.command}": text for spec, text in result.shows}
    if as_json:
        doc = {
            "scenario": result.scenario.name,
            "summary": summary(result, *focus) if focus else {},
            "peers": [summary(result, n, p) for n, p in pairs],
            "shows": shows,
        }
        if explain and focus:
            doc["explanation"] = explain_lab_sas(result, *focus) + explain_history(result, *focus, ikev1_run)
        click.echo(json.dumps(doc, indent=2))
        return
    for spec, text in result.shows:
        click.echo(f"{result.routers[spec.node].config.hostname}#{spec.command}")
        click.echo(text)
        click.echo()
    for node, peer in pairs:
        s = summary(result, node, peer)
        click.echo(f"Summary for {node} with {peer} ({result.profile}, seed {result.seed}, "
                   f"{result.duration:.0f} s virtual):")
        for key, value in s.items():
            if key not in ("node", "peer", "profile", "seed", "duration_s"):
                click.echo(f"  {key:26} {value}")
    if explain and focus:
        click.echo()
        click.echo("\n".join(explain_lab_sas(result, *focus)))
        click.echo()
        click.echo("\n".join(explain_history(result, *focus, ikev1_run)))
    click.echo(f"(lab mechanism: {_mechanism(result)})")


def _mechanism(result: LabResult) -> str:
    p = next(iter(result.routers.values())).profile
    if p.lifetime_check_period:
        return (f"profile {p.name}: each router checks its SA lifetimes every "
                f"{p.lifetime_check_period:g} s (+/- {p.lifetime_check_jitter:g} s) at its own "
                f"phase; a replaced pair is deleted "
                + (f"{p.delete_replaced_after[0]:g}-{p.delete_replaced_after[1]:g} s after its "
                   "replacement" if p.delete_replaced_after else "only when it expires"))
    return f"profile {p.name}: soft limits acted on at once"


def _check_outputs(**paths: Path | None) -> None:
    """Fail before the run, not after it, on an output file whose folder is missing."""
    for option, path in paths.items():
        if path is not None and not path.parent.is_dir():
            raise ValueError(f"--{option.replace('_', '-')} {path}: folder {path.parent} does not exist")


def _options(fn: F) -> F:
    fn = click.option("--profile", type=click.Choice(sorted(PROFILES)), default=None,
                      help="behaviour profile for every node (default: the scenario's)")(fn)
    fn = click.option("--seed", type=click.IntRange(min=0), default=None, help="random seed")(fn)
    fn = click.option("--duration", type=Seconds(), default=None,
                      help="virtual seconds to run")(fn)
    fn = click.option("--json", "as_json", is_flag=True, help="one JSON object instead of text")(fn)
    fn = click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
                      help="write the SA timeline (PNG or SVG by suffix)")(fn)
    fn = click.option("--debug-log", type=click.Path(dir_okay=False, path_type=Path), default=None,
                      help="write the first node's debug crypto isakmp output")(fn)
    fn = click.option("--fix", is_flag=True,
                      help="apply the recommended fix to the configs (no kilobyte lifetime)")(fn)
    return fn


@click.group("lab")
def lab() -> None:
    """Run routers from IOS configs in the simulator, in virtual time."""


def _guarded(fn: Callable[[], None]) -> None:
    """Scenario and config errors are one line, exit status 1."""
    try:
        fn()
    except (ScenarioError, ConfigError, ValueError, OSError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


@lab.command("seed")
@_options
@click.option("--ikev2", is_flag=True, help="the seed's hub and spoke on IKEv2 (crypto ikev2 ... instead of isakmp)")
def seed_cmd(profile: str | None, seed: int | None, duration: float | None, as_json: bool, plot: Path | None,
             debug_log: Path | None, fix: bool, ikev2: bool) -> None:
    """The seed: hub and spoke of ../shared/seed under ~0.85 Gbit/s for an hour.

    Prints the hub's `show crypto ipsec sa peer 172.17.3.2`, a summary and the
    explanation of every SA."""
    def go() -> None:
        _check_outputs(plot=plot, debug_log=debug_log)
        scenario = _seed_scenario(ikev2)
        result = _run(scenario, profile=profile, seed=seed, duration=duration, fix=fix,
                      debug_node=SEED_NODE if debug_log else None, show_progress=not as_json)
        ikev1_run = None
        if ikev2:  # the explanation compares with the same lab on IKEv1
            ikev1 = _run(_seed_scenario(), profile=profile, seed=seed, duration=duration, fix=fix, debug_node=None,
                         show_progress=not as_json)
            ikev1_run = summary(ikev1, SEED_NODE, SEED_PEER)
        _report(result, focus=(SEED_NODE, SEED_PEER), explain=True, as_json=as_json,
                debug_log=debug_log, debug_node=SEED_NODE, plot=plot, ikev1_run=ikev1_run)
    _guarded(go)


@lab.command("run")
@click.argument("scenario_file", type=click.Path(dir_okay=False, path_type=Path))
@_options
@click.option("--explain", is_flag=True, help="explain every SA of the first node")
def run_cmd(scenario_file: Path, profile: str | None, seed: int | None, duration: float | None, as_json: bool,
            plot: Path | None, debug_log: Path | None, fix: bool, explain: bool) -> None:
    """Run SCENARIO_FILE (TOML: nodes, links, flows, probes, faults, shows)."""
    def go() -> None:
        _check_outputs(plot=plot, debug_log=debug_log)
        scenario = load_scenario(scenario_file)
        first = scenario.nodes[0].name
        result = _run(scenario, profile=profile, seed=seed, duration=duration, fix=fix,
                      debug_node=first if debug_log else None, show_progress=not as_json)
        _report(result, focus=None, explain=explain, as_json=as_json, debug_log=debug_log,
                debug_node=first, plot=plot)
    _guarded(go)


DMVPN_SCENARIO = "dmvpn.toml"
DMVPN_PLOT_PEER = "172.16.0.12"  # spoke 2's NBMA address
#: ``dmvpn lab dmvpn --fault NAME``: what each fault does to the scenario.
DMVPN_FAULTS: dict[str, Callable[[Scenario], Scenario]] = {
    "hub-restart": lambda sc: replace(sc, faults=(*sc.faults, FaultSpec(60.0, FaultAction.NODE_RESTART, "hub"))),
    "loss": lambda sc: replace(sc, links=tuple(replace(link, loss=0.1) for link in sc.links)),
    "nbma-change": lambda sc: replace(sc, duration=max(sc.duration, 900.0), faults=(
        *sc.faults, FaultSpec(60.0, FaultAction.NODE_READDRESS, "spoke3", interface="GigabitEthernet0/0/0",
                              address=IPv4Address("172.16.0.23")))),
}


@lab.command("dmvpn")
@click.option("--profile", type=click.Choice(sorted(PROFILES)), default=None,
              help="behaviour profile for every node (default: the scenario's)")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="random seed")
@click.option("--duration", type=Seconds(), default=None,
              help="virtual seconds to run")
@click.option("--json", "as_json", is_flag=True, help="one JSON object instead of text")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write spoke 1's timeline with spoke 2 (SAs and NHRP events; PNG or SVG by suffix)")
@click.option("--fault", "faults", type=click.Choice(sorted(DMVPN_FAULTS)), multiple=True,
              help="hub-restart: the hub restarts at 60 s; nbma-change: spoke 3 comes back at 60 s with "
                   "a new WAN address (unique registration: refused until the hub's entry expires; runs "
                   "900 s); loss: 10%% loss on the WAN")
def dmvpn_cmd(profile: str | None, seed: int | None, duration: float | None, as_json: bool, plot: Path | None,
              faults: tuple[str, ...]) -> None:
    """DMVPN phase 3: a hub and three spokes that register, spoke 1's LAN
    pinging spoke 2's LAN via the hub until NHRP redirects it to a shortcut.

    Prints the shows, when each spoke registered, when and why each shortcut
    and spoke-to-spoke SA pair appeared, and what the hub carried."""
    from dmvpn.lab.dmvpn_report import dmvpn_report, render_text

    def go() -> None:
        _check_outputs(plot=plot)
        data = resources.files("dmvpn.lab") / "data" / DMVPN_SCENARIO
        with resources.as_file(data) as path:
            scenario = load_scenario(path)
        for fault in faults:
            scenario = DMVPN_FAULTS[fault](scenario)
        result = _run(scenario, profile=profile, seed=seed, duration=duration, fix=False, debug_node=None,
                      show_progress=not as_json)
        report = dmvpn_report(result)
        if plot is not None:
            from dmvpn.lab.plot import plot_timeline

            plot_timeline(result, "spoke1", DMVPN_PLOT_PEER, plot)
        if as_json:
            click.echo(json.dumps({"scenario": scenario.name, "profile": result.profile, "seed": result.seed,
                                   "duration_s": result.duration, "nhrp": report,
                                   "shows": {f"{s.node}: {s.command}": t for s, t in result.shows}}, indent=2))
            return
        for spec, text in result.shows:
            click.echo(f"{result.routers[spec.node].config.hostname}#{spec.command}")
            click.echo(text)
            click.echo()
        click.echo(f"DMVPN lab ({result.profile}, seed {result.seed}, {result.duration:.0f} s virtual)")
        click.echo("\n".join(render_text(report)))
    _guarded(go)
