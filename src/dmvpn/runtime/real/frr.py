"""FRR beside the router: zebra plus ospfd and/or bgpd in the router's
network namespace, one independent instance per node.

Several instances run on one host with nothing shared under /etc/frr or
/run/frr: every daemon of an instance gets, in the instance's own
directory, its config (``-f``), pidfile (``-i``), vty socket
(``--vty_socket``) and the zebra API socket (``-z``); the TCP vty ports are
off (``-P 0``). The directory is owned by the ``frr`` user, which Debian's
daemons switch to after start-up. ``vtysh --vty_socket DIR`` talks to that
instance only.

The daemons run in the foreground as children of the caller (``ip netns
exec NS`` execs, so the child's PID is the daemon's), are stopped by PID
(SIGTERM: zebra withdraws its kernel routes; SIGKILL after
:data:`STOP_TIMEOUT`) and the directory is removed, leaving nothing behind.
Stop the instance before deleting its namespace: a daemon keeps a deleted
namespace alive.

OSPF over the router's TUN device (measured with FRR 8.4.4,
tests/test_frr_real.py): a TUN device is ``POINTOPOINT,MULTICAST,NOARP``;
ospfd sends its hellos to 224.0.0.5 with ``IP_MULTICAST_IF`` on a raw
socket and joins the groups on the device, so hellos go into the TUN and
come out of it as long as the tunnel carries them (even with ``multicast
off``). What it needs from the configuration is the network type: FRR takes
point-to-point for a ``POINTOPOINT`` device, which holds one neighbor only,
so the IOS type (``broadcast`` with the hub as DR, or
``point-to-multipoint``) is written out, with IOS's hello/dead timers
(:mod:`dmvpn.routing.frr_config`); the tests keep the seed's
``ip ospf mtu-ignore``. FRR may start before the TUN device exists
and survives the device going away and coming back (the daemon
restarting): the adjacency comes back by itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from dmvpn.config.model import RouterConfig
from dmvpn.routing.frr_config import FrrConfig, FrrConfigError, reverse_names, translate
from dmvpn.show import frr_shows

FRR_DAEMON_DIR = Path("/usr/lib/frr")
VTYSH = "vtysh"
FRR_USER = "frr"
READY_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
VTYSH_TIMEOUT = 10.0
#: What FRR 8.4 prints (exit status 0 all the same) for config lines it rejects.
_CONFIG_COMPLAINTS = ("No such command", "Ambiguous command", "Command incomplete", "Unknown command", "rror")
#: The instance's interface map, kept in its directory for later clients.
IFNAMES_FILE = "ifnames.json"


def daemon_ifnames(config: RouterConfig, tun_name: str, physical: Callable[[str], str]) -> dict[str, str]:
    """IOS name -> Linux name as ``dmvpn run --tun-name TUN_NAME`` names the
    devices of ``config`` (its tunnels' TUN devices, in
    :func:`~dmvpn.runtime.real.daemon.router_spec`'s order), the other
    interfaces named by ``physical`` (netlab: ``linux_ifname``)."""
    from dmvpn.runtime.real.daemon import router_spec

    tuns = {t.iface: t.name for t in router_spec(config, control=None, tun_name=tun_name).tuns}
    return {name: tuns.get(name) or physical(name) for name in config.interfaces
            if name in tuns or config.interfaces[name].tunnel is None}


def netlab_frr_dir(lab_dir: Path, node: str) -> Path:
    """Where netlab keeps node ``node``'s FRR instance (``dmvpn show --node``
    looks there): ``<lab run dir>/<node>.frr``."""
    return lab_dir / f"{node}.frr"


class FrrError(Exception):
    """FRR is missing, would not start, or did not answer; ``str()`` is the
    one-line reason."""


def check_installed() -> None:
    """Raise :class:`FrrError` unless Debian's FRR (daemons, vtysh, user) is there."""
    missing = [str(FRR_DAEMON_DIR / d) for d in ("zebra", "ospfd", "bgpd") if not (FRR_DAEMON_DIR / d).exists()]
    if shutil.which(VTYSH) is None:
        missing.append(VTYSH)
    try:
        pwd.getpwnam(FRR_USER)
    except KeyError:
        missing.append(f"user {FRR_USER}")
    if missing:
        raise FrrError(f"FRR is not installed (missing {', '.join(missing)}): apt-get install frr")


class FrrVty:
    """The query side of one instance: vtysh against its socket directory,
    show commands answered in IOS form. ``ifnames`` (IOS -> Linux) renames
    interfaces back; None reads the map the instance saved at start."""

    def __init__(self, run_dir: str | Path, ifnames: Mapping[str, str] | None = None) -> None:
        self.run_dir = Path(run_dir)
        if ifnames is None:
            try:
                ifnames = json.loads((self.run_dir / IFNAMES_FILE).read_text())
            except (OSError, ValueError):
                raise FrrError(f"no FRR instance in {self.run_dir} ({IFNAMES_FILE} missing)") from None
        self.ifnames = dict(ifnames or {})

    def vtysh(self, command: str, timeout: float = VTYSH_TIMEOUT) -> str:
        """Run one vtysh command; its output. A vtysh failure raises :class:`FrrError`."""
        try:
            proc = subprocess.run([VTYSH, "--vty_socket", str(self.run_dir), "-c", command],
                                  capture_output=True, text=True, timeout=timeout)
        except FileNotFoundError:
            raise FrrError(f"{VTYSH} not found: apt-get install frr") from None
        except subprocess.TimeoutExpired:
            raise FrrError(f"vtysh '{command}' did not answer within {timeout:g} s") from None
        if proc.returncode != 0:
            why = (proc.stderr or proc.stdout).strip().splitlines()
            raise FrrError(f"vtysh '{command}' on {self.run_dir}: {why[-1] if why else f'exit {proc.returncode}'}")
        return proc.stdout

    def json(self, command: str) -> Any:
        """``command`` with ``json`` appended, decoded."""
        out = self.vtysh(f"{command} json")
        try:
            return json.loads(out) if out.strip() else {}
        except ValueError:
            raise FrrError(f"vtysh '{command} json': not JSON: {out.strip()[:80]!r}") from None

    def show(self, command: str) -> str:
        """An IOS show command (``show ip ospf neighbor``, ``show ip route``,
        ``show ip bgp summary``) answered from FRR in IOS form; bad input is
        IOS's ``%`` error text."""
        try:
            which = frr_shows.parse(command)
        except frr_shows.UnknownShow as err:
            return str(err)
        interfaces = self.json("show ip ospf interface") if which == "ip-ospf-neighbor" else None
        return frr_shows.render(which, self.json(frr_shows.FRR_COMMANDS[which]), reverse_names(self.ifnames),
                                interfaces)


class FrrInstance:
    """zebra + ospfd/bgpd for ``config`` in ``namespace`` (None: this
    process's), configs and sockets in ``run_dir``, which the instance owns:
    :meth:`stop` removes it. ``ifnames`` maps the config's IOS interface
    names to the Linux devices."""

    def __init__(self, namespace: str | None, config: RouterConfig, ifnames: Mapping[str, str],
                 run_dir: str | Path) -> None:
        self.namespace = namespace
        self.config = config
        self.ifnames = dict(ifnames)
        self.run_dir = Path(run_dir)
        self.vty = FrrVty(self.run_dir, self.ifnames)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        try:
            self.frr: FrrConfig = translate(config, self.ifnames)
        except FrrConfigError as err:
            raise FrrError(str(err)) from None

    @property
    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.procs.items()}

    # -- start ----------------------------------------------------------------
    def start(self, timeout: float = READY_TIMEOUT) -> None:
        """Write the configs, start the daemons (zebra first) and wait until
        each answers on its vty socket; on failure stop what was started
        and raise :class:`FrrError`."""
        check_installed()
        if self.run_dir.exists() and any(self.run_dir.iterdir()):
            raise FrrError(f"FRR directory {self.run_dir} is not empty: another instance, or one not stopped")
        try:
            self._write()
            for daemon in self.frr.daemons:
                self._dry_run(daemon)
            for daemon in self.frr.daemons:
                self._spawn(daemon)
                self._wait_ready(daemon, time.monotonic() + timeout)
        except BaseException:
            self.stop()
            raise

    def _write(self) -> None:
        user = pwd.getpwnam(FRR_USER)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for parent in self.run_dir.resolve().parents:
            mode = parent.stat()
            if not mode.st_mode & 0o001 and mode.st_uid != user.pw_uid:
                raise FrrError(f"FRR directory {self.run_dir}: {parent} is not searchable by user {FRR_USER} "
                               f"(the daemons write their pidfiles and sockets as {FRR_USER}); use a directory "
                               f"under /run or chmod o+x {parent}")
        os.chown(self.run_dir, user.pw_uid, user.pw_gid)
        self.run_dir.chmod(0o750)
        for daemon in self.frr.daemons:
            path = self._conf(daemon)
            path.write_text(self.frr.text(daemon))
            os.chown(path, user.pw_uid, user.pw_gid)
        (self.run_dir / IFNAMES_FILE).write_text(json.dumps(self.ifnames, indent=1, sort_keys=True) + "\n")

    def _conf(self, daemon: str) -> Path:
        return self.run_dir / f"{daemon}.conf"

    def _argv(self, daemon: str, *extra: str) -> list[str]:
        d = self.run_dir
        argv = [str(FRR_DAEMON_DIR / daemon), "-f", str(self._conf(daemon)), "-i", str(d / f"{daemon}.pid"),
                "--vty_socket", str(d), "-z", str(d / "zserv.api"), "-P", "0", *extra]
        return (["ip", "netns", "exec", self.namespace] if self.namespace else []) + argv

    def _dry_run(self, daemon: str) -> None:
        """``-C``: the daemon checks its config and exits; a line FRR rejects
        is an error here rather than a silently missing setting."""
        proc = subprocess.run(self._argv(daemon, "-C"), capture_output=True, text=True, timeout=30)
        text = (proc.stdout + proc.stderr).strip().splitlines()
        bad = [line for line in text if any(m in line for m in _CONFIG_COMPLAINTS)]
        if proc.returncode != 0 or bad:
            why = (bad or text or [f"exit {proc.returncode}"])[-1]
            raise FrrError(f"{daemon} rejects its config {self._conf(daemon)}: {why}")

    def _spawn(self, daemon: str) -> None:
        log = self.run_dir / f"{daemon}.log"
        with open(self.run_dir / f"{daemon}.out", "wb") as out:
            self.procs[daemon] = subprocess.Popen(
                self._argv(daemon, "--log", f"file:{log}", "--log-level", "info"),
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def _wait_ready(self, daemon: str, deadline: float) -> None:
        sockets = [self.run_dir / f"{daemon}.vty"] + ([self.run_dir / "zserv.api"] if daemon == "zebra" else [])
        while True:
            proc = self.procs[daemon]
            if proc.poll() is not None:
                raise FrrError(f"{daemon} exited ({proc.returncode}): {self._last_words(daemon)}")
            if all(_answers(s) for s in sockets):
                return
            if time.monotonic() > deadline:
                raise FrrError(f"{daemon} not ready on {sockets[0]} in time: {self._last_words(daemon)}")
            time.sleep(0.05)

    def _last_words(self, daemon: str) -> str:
        for name in (f"{daemon}.out", f"{daemon}.log"):
            with contextlib.suppress(OSError):
                lines = (self.run_dir / name).read_text(errors="replace").strip().splitlines()
                if lines:
                    return lines[-1]
        return "no output"

    # -- stop -----------------------------------------------------------------
    def stop(self) -> list[str]:
        """Stop the daemons by PID (bgpd/ospfd before zebra) and remove the
        directory; what was done, one line per daemon."""
        done = []
        for daemon in reversed(list(self.procs)):
            proc = self.procs.pop(daemon)
            if proc.poll() is not None:
                done.append(f"{daemon}: pid {proc.pid} had exited ({proc.returncode})")
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
                done.append(f"{daemon}: stopped pid {proc.pid} (SIGTERM)")
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                done.append(f"{daemon}: killed pid {proc.pid} after SIGTERM timeout")
        shutil.rmtree(self.run_dir, ignore_errors=True)
        return done

    def __enter__(self) -> FrrInstance:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- queries --------------------------------------------------------------
    def vtysh(self, command: str) -> str:
        return self.vty.vtysh(command)

    def show(self, command: str) -> str:
        return self.vty.show(command)


def stop_frr_pids(pids: Mapping[str, int], run_dir: Path) -> list[str]:
    """Stop an instance another process started (``dmvpn netlab down``) by
    its PIDs, bgpd/ospfd before zebra, each only while its command line
    still names ``run_dir`` (a recycled PID is never signalled); then remove
    ``run_dir``. What was done, one line per daemon."""
    done = []
    for daemon, pid in reversed(list(pids.items())):
        if not _runs_in(pid, run_dir):
            done.append(f"{daemon}: pid {pid} had exited")
            continue
        os.kill(pid, signal.SIGTERM)
        end = time.monotonic() + STOP_TIMEOUT
        while _runs_in(pid, run_dir) and time.monotonic() < end:
            time.sleep(0.05)
        if _runs_in(pid, run_dir):
            os.kill(pid, signal.SIGKILL)
            done.append(f"{daemon}: killed pid {pid} after SIGTERM timeout")
        else:
            done.append(f"{daemon}: stopped pid {pid} (SIGTERM)")
    shutil.rmtree(run_dir, ignore_errors=True)
    return done


def _runs_in(pid: int, run_dir: Path) -> bool:
    """``pid`` is a live (not zombie) FRR daemon of the instance in ``run_dir``."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z" and str(run_dir).encode() in cmdline


def _answers(path: Path) -> bool:
    """Something accepts connections on the Unix socket ``path``."""
    if not path.exists():
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()
