"""Test helpers for the real runtime: network namespaces and daemon
processes that are always removed by name/PID, even when a test fails.

Everything runs as root in namespaces these helpers created; nothing touches
the host's own interfaces.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from dmvpn.runtime.real.control import ControlClientError, send_command

ROOT = Path(__file__).resolve().parents[3]
DMVPN = str(Path(sys.executable).parent / "dmvpn")
ECHO_DAEMON = str(ROOT / "tests" / "data" / "real" / "echo_daemon.py")


def require_root_tools(*tools: str) -> None:
    """Fail (never skip) when not root or a tool is missing."""
    assert os.geteuid() == 0, "real-runtime tests need root (namespaces, TUN, raw sockets)"
    for tool in ("ip", *tools):
        assert shutil.which(tool), f"{tool} is missing: run scripts/setup.sh"


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command, capture its output; a failure names the command."""
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``predicate`` until true; fail naming ``what`` after ``timeout`` s."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class RealLab:
    """Namespaces and processes made by one test; :meth:`cleanup` removes
    them all (processes by PID, namespaces by name)."""

    def __init__(self, tag: str) -> None:
        self.prefix = f"dmvpnt{os.getpid() % 10000}{tag}"
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen] = []

    def netns(self, name: str) -> str:
        ns = f"{self.prefix}-{name}"
        sh("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
           "net.ipv6.conf.default.disable_ipv6=1")
        return ns

    def veth(self, ns_a: str, dev_a: str, addr_a: str, ns_b: str, dev_b: str, addr_b: str) -> None:
        sh("ip", "link", "add", dev_a, "netns", ns_a, "type", "veth", "peer", "name", dev_b, "netns", ns_b)
        for ns, dev, addr in ((ns_a, dev_a, addr_a), (ns_b, dev_b, addr_b)):
            sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")

    def start(self, ns: str | None, *argv: str, log: Path) -> subprocess.Popen:
        """Start ``argv`` (in ``ns``), output to ``log``."""
        prefix = ["ip", "netns", "exec", ns] if ns else []
        with open(log, "w") as out:
            proc = subprocess.Popen([*prefix, *argv], stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 10.0, sig: int = signal.SIGTERM) -> int:
        """``sig`` (SIGTERM; SIGINT makes tshark flush its capture) by PID;
        SIGKILL if it does not exit in time."""
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        return proc.returncode

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def ask(sock: Path, command: str) -> str:
    """The daemon's reply to ``command`` (in-process client: fast)."""
    return send_command(sock, command, timeout=10.0)


def control(sock: Path, *words: str, command: str = "show") -> subprocess.CompletedProcess:
    """``dmvpn COMMAND --control SOCK WORDS...`` (the command-line client)."""
    return subprocess.run([DMVPN, command, "--control", str(sock), *words], capture_output=True, text=True,
                          timeout=30)


def wait_control(sock: Path, proc: subprocess.Popen, log: Path, timeout: float = 15.0) -> None:
    """Wait until the daemon answers on ``sock``; fail with its log if it died."""
    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"daemon exited {proc.returncode}: {log.read_text()}")
        try:
            return sock.exists() and ask(sock, "show runtime").startswith("Runtime for")
        except ControlClientError:
            return False
    wait_for(ready, timeout, f"control socket {sock}", interval=0.1)


def finished_ping(sock: Path, timeout: float = 20.0) -> str:
    """``show ping`` once every Echo of the last ping is answered or timed
    out (the results line has no ``?`` left)."""
    def done() -> bool:
        lines = ask(sock, "show ping").splitlines()
        return len(lines) >= 3 and "?" not in lines[2]
    wait_for(done, timeout, f"the ping on {sock} to finish", interval=0.1)
    return ask(sock, "show ping")
