"""``dmvpn run CONFIG``: the router daemon; ``dmvpn show|debug|undebug|clear``:
clients of a running daemon's control socket.

The daemon prints its log (IOS ``debug``/syslog lines) on stdout and stops
cleanly on SIGTERM or SIGINT: DELETEs for its SAs go out, the TUN device and
the control socket are removed. Every failure to start is one line on stderr
and a non-zero exit status.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from dmvpn.config import ConfigError, load_config
from dmvpn.ike.profiles import DEFAULT_PROFILE, PROFILES
from dmvpn.lab.netlab import NETLAB_RUN_DIR
from dmvpn.runtime.real.control import DEFAULT_CONTROL_DIR, ControlClientError, default_control_path, send_command
from dmvpn.runtime.real.daemon import router_runtime, router_spec
from dmvpn.runtime.real.errors import RuntimeSetupError
from dmvpn.runtime.real.frr import FrrError, FrrVty, netlab_frr_dir
from dmvpn.runtime.real.tun import TUN_CLONE_DEVICE, TUN_OFFLOAD_MODES
from dmvpn.show import frr_shows

DEFAULT_TUN_NAME = "dmvpn-tun0"


def _fail(command: str, message: str) -> None:
    click.echo(f"dmvpn {command}: {message}", err=True)
    sys.exit(1)


@click.command("run")
@click.argument("config_file", metavar="CONFIG", type=click.Path(dir_okay=False))
@click.option("--control", "control", default=None, metavar="PATH",
              help="Control socket path (default /run/dmvpn/<hostname>.sock).")
@click.option("--profile", type=click.Choice(sorted(PROFILES)), default=DEFAULT_PROFILE, show_default=True,
              help="Behaviour profile (rekey, collisions, deletes).")
@click.option("--tun-name", default=DEFAULT_TUN_NAME, show_default=True,
              help="Linux name of the TUN device for the tunnel interface (more tunnels: NAME1, NAME2 ...); "
                   "each interface with a crypto map gets the next name in that sequence (no address, a route "
                   "for each permit line's destination: the OS sends what the map protects through it).")
@click.option("--tun-device", default=TUN_CLONE_DEVICE, show_default=True, metavar="PATH",
              help="The TUN clone device.")
@click.option("--log", "log", default=None, metavar="CAT[,CAT...]",
              help="Print only these log categories (isakmp, ipsec, icmp ...); default all.")
@click.option("--force-nat-t", is_flag=True, envvar="DMVPN_FORCE_NAT_T",
              help="Always float IKE to UDP 4500 and carry ESP in UDP (RFC 3948), as if behind a NAT: "
                   "for paths that drop IP protocol 50 (strongSwan's encap = yes). Env: DMVPN_FORCE_NAT_T=1.")
@click.option("--udp-offload/--no-udp-offload", default=True, show_default=True, envvar="DMVPN_UDP_OFFLOAD",
              help="UDP GSO on send and GRO on receive for ESP in UDP 4500 (off by itself where the kernel "
                   "refuses). Env: DMVPN_UDP_OFFLOAD=0.")
@click.option("--tun-offload", type=click.Choice(TUN_OFFLOAD_MODES), default="none", show_default=True,
              envvar="DMVPN_TUN_OFFLOAD",
              help="TUN offloads (IFF_VNET_HDR): gro = in-order TCP segments written joined; tso = that and "
                   "checksum/TCP segmentation offload (64 KB reads cut into packets here). "
                   "Env: DMVPN_TUN_OFFLOAD.")
@click.option("--cprofile", default=None, metavar="PATH", envvar="DMVPN_CPROFILE",
              help="Profile the daemon with cProfile and write the statistics to PATH when it stops "
                   "(pstats format; PATH a directory: <hostname>.prof in it). Env: DMVPN_CPROFILE.")
def run_command(config_file: str, control: str | None, profile: str, tun_name: str, tun_device: str,
                log: str | None, force_nat_t: bool, udp_offload: bool, tun_offload: str,
                cprofile: str | None) -> None:
    """Run the router of CONFIG on this host: IKE on UDP 500/4500, ESP on raw
    IP protocol 50, the tunnel interface on a TUN device."""
    try:
        config = load_config(config_file)
    except ConfigError as err:
        _fail("run", str(err))
    if os.geteuid() != 0:
        _fail("run", "must run as root: raw sockets, UDP 500 and TUN devices need CAP_NET_RAW, "
                     "CAP_NET_BIND_SERVICE and CAP_NET_ADMIN")
    control_path = Path(control) if control else default_control_path(config.hostname)
    categories = {c.strip() for c in log.split(",") if c.strip()} if log else None
    try:
        spec = router_spec(config, control=control_path, tun_name=tun_name, tun_clone=tun_device,
                           udp_offload=udp_offload, tun_offload=tun_offload)
        runtime = router_runtime(config, spec, profile, sys.stdout, categories, force_nat_t=force_nat_t)
    except RuntimeSetupError as err:
        _fail("run", str(err))
    underlay = ", ".join(f"{u.iface} {u.address}" for u in spec.underlay)
    tunnels = ", ".join(f"{t.iface} on {t.name} {t.address or 'unnumbered'} mtu {t.mtu}"
                        for t in spec.tuns) or "no tunnel"
    nat_t = "; NAT-T forced" if force_nat_t else ""
    offloads = ("" if udp_offload else "; UDP GSO/GRO off") + (
        f"; TUN offload {tun_offload}" if tun_offload != "none" else "")
    runtime.printer.note(runtime.now(), f"{config.hostname} running ({profile}): {underlay}; {tunnels}; "
                                        f"control {control_path}{nat_t}{offloads}")
    if cprofile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.runcall(runtime.run)
        target = Path(cprofile)
        profiler.dump_stats(target / f"{config.hostname}.prof" if target.is_dir() else target)
    else:
        runtime.run()
    if runtime.failed is not None:  # logged, peers told, TUNs removed: exit as a failure
        sys.exit(1)


def _control_path(control: str | None, node: str | None) -> Path:
    """``--control``; else ``--node``'s socket (``dmvpn run`` or netlab);
    else the only socket in /run/dmvpn."""
    if control:
        return Path(control)
    if node:
        found = [p for p in (default_control_path(node), *sorted(NETLAB_RUN_DIR.glob(f"*/{node}.sock")))
                 if p.exists()]
        if len(found) == 1:
            return found[0]
        if not found:
            raise ControlClientError(f"no daemon for node {node!r}: no {DEFAULT_CONTROL_DIR}/{node}.sock "
                                     f"nor {NETLAB_RUN_DIR}/*/{node}.sock")
        raise ControlClientError(f"several daemons for node {node!r} ({', '.join(map(str, found))}): "
                                 f"give --control PATH")
    sockets = sorted(DEFAULT_CONTROL_DIR.glob("*.sock")) if DEFAULT_CONTROL_DIR.is_dir() else []
    if len(sockets) == 1:
        return sockets[0]
    if not sockets:
        raise ControlClientError(f"no daemon: no control socket in {DEFAULT_CONTROL_DIR} "
                                 f"(give --control PATH or --node NAME)")
    raise ControlClientError(f"several daemons ({', '.join(s.stem for s in sockets)}): give --node NAME")


def _client(name: str, prefix: str, control: str | None, node: str | None, words: tuple[str, ...]) -> None:
    """Send ``prefix words`` to the daemon, print the reply; an IOS error
    reply (``%``) goes to stderr with exit status 1."""
    command = " ".join((prefix, *words)).strip()
    try:
        reply = send_command(_control_path(control, node), command)
    except ControlClientError as err:
        _fail(name, str(err))
    if reply.lstrip().startswith("%"):
        click.echo(reply, err=True)
        sys.exit(1)
    if reply:
        click.echo(reply)


_CONTROL = click.option("--control", default=None, metavar="PATH",
                        help="The daemon's control socket (default: the only one in /run/dmvpn).")
_NODE = click.option("--node", default=None, metavar="NAME",
                     help="The daemon of this hostname (/run/dmvpn/NAME.sock) or netlab node.")
_WORDS = click.argument("words", nargs=-1, required=True)


def _frr_dir(frr: str | None, node: str | None) -> Path | None:
    """``--frr``; else the FRR instance netlab runs for ``--node``, if any."""
    if frr:
        return Path(frr)
    if node:
        found = sorted(p for p in NETLAB_RUN_DIR.glob("*") if netlab_frr_dir(p, node).is_dir())
        if len(found) == 1:
            return netlab_frr_dir(found[0], node)
    return None


@click.command("show", context_settings={"ignore_unknown_options": True})
@_CONTROL
@_NODE
@click.option("--frr", default=None, metavar="DIR",
              help="The node's FRR instance directory (default: netlab's for --node): show ip ospf neighbor, "
                   "show ip route and show ip bgp summary are answered from FRR.")
@_WORDS
def show_command(control: str | None, node: str | None, frr: str | None, words: tuple[str, ...]) -> None:
    """Run a show command in the daemon: ``dmvpn show crypto ipsec sa``
    (the word ``show`` may be repeated: ``dmvpn show "show crypto session"``).
    With an FRR instance (``--frr DIR``, or netlab's for ``--node``), the
    routing shows come from FRR in IOS form."""
    words = tuple(" ".join(words).split())
    if words[:1] == ("show",):
        words = words[1:]
    command = " ".join(("show", *words))
    frr_dir = _frr_dir(frr, node)
    if frr_dir is not None and frr_shows.is_frr_show(command):
        try:
            reply = FrrVty(frr_dir).show(command)
        except FrrError as err:
            _fail("show", str(err))
        click.echo(reply, nl=False)
        return
    _client("show", "show", control, node, words)


@click.command("debug")
@_CONTROL
@_NODE
@_WORDS
def debug_command(control: str | None, node: str | None, words: tuple[str, ...]) -> None:
    """Switch a debug on in the daemon: ``dmvpn debug crypto isakmp``."""
    _client("debug", "debug", control, node, words)


@click.command("undebug")
@_CONTROL
@_NODE
@_WORDS
def undebug_command(control: str | None, node: str | None, words: tuple[str, ...]) -> None:
    """Switch debugs off in the daemon: ``dmvpn undebug all``."""
    _client("undebug", "undebug", control, node, words)


@click.command("clear")
@_CONTROL
@_NODE
@_WORDS
def clear_command(control: str | None, node: str | None, words: tuple[str, ...]) -> None:
    """Clear state in the daemon: ``dmvpn clear crypto sa [peer A.B.C.D]``."""
    _client("clear", "clear", control, node, words)


@click.command("ping", context_settings={"ignore_unknown_options": True})  # "repeat -1" is a word
@_CONTROL
@_NODE
@_WORDS
def ping_command(control: str | None, node: str | None, words: tuple[str, ...]) -> None:
    """Start a ping from the daemon's host stack (``dmvpn ping 10.2.2.2 repeat 5``);
    ``dmvpn show ping`` prints the result when it is done."""
    _client("ping", "ping", control, node, words)


#: Registered by cli/main.py.
COMMANDS = (run_command, show_command, debug_command, undebug_command, clear_command, ping_command)
