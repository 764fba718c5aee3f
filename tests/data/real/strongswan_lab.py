"""Test helpers for interop with strongSwan: one ``strongswan_peer.sh`` lab
(charon in namespace ``swpeer``) and our ``dmvpn run`` daemon in namespace
``dut``, plus parsers for what both sides say about their SAs.

The lab uses fixed namespace names, so callers hold ``/tmp/swpeer.lock``
(``flock``) around every test that uses it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

from real_lab import DMVPN, RealLab, ask, finished_ping, sh, wait_control, wait_for

PEER_SCRIPT = Path(__file__).resolve().parents[4] / "shared" / "lab" / "strongswan_peer.sh"
CHARON = Path("/usr/lib/ipsec/charon")
PEER = "192.0.2.2"

#: Our side of the lab: Main Mode PSK aes128-sha1-modp3072 (``group 15``),
#: Quick Mode aes128-sha256 in tunnel mode, GRE selectors from Tunnel0.
DUT_CONFIG = """\
hostname DUT
crypto isakmp policy 10
 encr aes 128
 hash sha
 authentication pre-share
 group 15
crypto isakmp key {psk} address 192.0.2.2
{extra}crypto ipsec transform-set TS esp-aes esp-sha256-hmac
 mode tunnel
crypto ipsec profile P
 set transform-set TS
interface GigabitEthernet1
 ip address 192.0.2.1 255.255.255.0
interface Tunnel0
 ip address 10.1.0.1 255.0.0.0
 tunnel source GigabitEthernet1
 tunnel destination 192.0.2.2
 tunnel protection ipsec profile P
end
"""


class PeerLab:
    """One ``strongswan_peer.sh`` lab (TS_MODE=gre) with the given knobs."""

    def __init__(self, lab_dir: Path, **knobs: str) -> None:
        self.lab_dir = lab_dir
        self.knobs = knobs
        self.facts: dict[str, str] = {}

    def _environ(self, **env: str) -> dict[str, str]:
        return dict(os.environ, LAB_DIR=str(self.lab_dir), TS_MODE="gre", INSTALL_PKGS="0", **env)

    def run(self, action: str, timeout: float = 180, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(PEER_SCRIPT), action], capture_output=True, text=True,
                              timeout=timeout, env=self._environ(**env))

    def up(self) -> None:
        assert PEER_SCRIPT.exists(), f"{PEER_SCRIPT} is missing"
        assert CHARON.exists(), "strongSwan is not installed: run scripts/setup.sh"
        existing = sh("ip", "netns", "list").stdout.split()
        assert "dut" not in existing and "swpeer" not in existing, \
            "namespaces dut/swpeer exist: another strongswan_peer.sh lab is up (one per machine)"
        up = self.run("up", **self.knobs)
        assert up.returncode == 0, up.stderr[-2000:]
        self.facts = {k: v.strip("'\"") for k, v in re.findall(r"^([A-Z0-9_]+)=(.*)$", up.stdout, re.M)}

    def down(self) -> subprocess.CompletedProcess:
        """``down`` (removes LAB_DIR); charon's log is kept next to it for post-mortems."""
        log = self.lab_dir / "charon.log"
        if log.exists():
            shutil.copyfile(log, self.lab_dir.parent / "charon.log")
        return self.run("down")

    def swanctl(self, *args: str) -> subprocess.CompletedProcess:
        """``swanctl ARGS`` against this lab's charon (its vici socket)."""
        env = dict(os.environ, STRONGSWAN_CONF=self.facts["STRONGSWAN_CONF"], SWANCTL_DIR=self.facts["SWANCTL_DIR"])
        return subprocess.run(["swanctl", *args], capture_output=True, text=True, timeout=60, env=env)

    def ike_sas(self) -> list[dict]:
        """charon's IKE_SAs from ``swanctl --list-sas --raw`` (one dict each)."""
        out = self.run("sas", RAW="1")
        assert out.returncode == 0, out.stderr[-1000:]
        return [next(iter(event.values())) for event in parse_vici_raw(out.stdout, "list-sa event")]

    def charon_spis(self) -> tuple[set[int], set[int]]:
        """(SPIs charon receives on, SPIs it sends with) over all its CHILD_SAs."""
        spi_in: set[int] = set()
        spi_out: set[int] = set()
        for ike in self.ike_sas():
            for child in ike.get("child-sas", {}).values():
                spi_in.add(int(child["spi-in"], 16))
                spi_out.add(int(child["spi-out"], 16))
        return spi_in, spi_out

    def charon_log(self) -> str:
        return Path(self.facts["CHARON_LOG"]).read_text()

    def ping(self, count: int) -> subprocess.CompletedProcess:
        """``count`` GRE-encapsulated Echos from strongSwan's side, ~0.3 s apart."""
        return self.run("ping", COUNT=str(count))

    def ping_background(self, count: int, out: Path) -> BackgroundPing:
        """Like :meth:`ping`, but running while the caller waits for something."""
        return BackgroundPing(["bash", str(PEER_SCRIPT), "ping"], self._environ(COUNT=str(count)), out)


class BackgroundPing:
    """strongswan_peer.sh ``ping`` in the background: the script prints each
    reply (``seq=N``) as it arrives, so :meth:`replies` can be read at any
    time; :meth:`stop` ends it (its own session, killed by that PID: the
    Python sender runs in a child of ``ip netns exec``)."""

    def __init__(self, argv: list[str], env: dict[str, str], out: Path) -> None:
        self.out = out
        with out.open("w") as sink:
            self.proc = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def replies(self) -> set[int]:
        """The sequence numbers answered so far."""
        return {int(n) for n in re.findall(r"^GRE echo reply .* seq=(\d+)$", self.out.read_text(), re.M)}

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=10)


_VICI_TOKEN = re.compile(r"\s*(?:(?P<open>[^\s={}]+) \{|(?P<close>\})"
                         r"|(?P<key>[^\s={}]+)=(?:\[(?P<list>.*?)\](?=[\s}]|$)"
                         r"|(?P<value>[^\s}]*)))")


def parse_vici_raw(text: str, kind: str) -> list[dict]:
    """The messages of type ``kind`` in ``swanctl --raw`` output
    (``kind {key=value sec {..} list=[a b]}`` per line) as nested dicts."""
    messages = []
    for line in text.splitlines():
        if not line.startswith(kind + " {"):
            continue
        body = line[len(kind) + 2:]  # after "KIND {"; its closing brace ends the message
        root: dict = {}
        stack: list[dict] = [root]
        pos = 0
        while pos < len(body):
            m = _VICI_TOKEN.match(body, pos)
            if m is None or m.end() == pos:
                if body[pos:].strip() == "":
                    break
                raise AssertionError(f"unparsable vici output at {body[pos:pos + 40]!r}")
            pos = m.end()
            if m.group("open"):
                section: dict = {}
                stack[-1][m.group("open")] = section
                stack.append(section)
            elif m.group("close"):
                assert stack, f"unbalanced vici output: {line[:80]}"
                stack.pop()
            elif m.group("list") is not None:
                stack[-1][m.group("key")] = m.group("list").split()
            else:
                stack[-1][m.group("key")] = m.group("value")
        assert not stack, f"unbalanced vici output: {line[:80]}"
        messages.append(root)
    return messages


def our_spis(show_ipsec_sa: str) -> tuple[set[int], set[int]]:
    """(inbound, outbound) ESP SPIs listed by ``show crypto ipsec sa``; each
    ``spi: 0xHEX(DEC)`` line's two forms must agree."""
    sets: dict[str, set[int]] = {"inbound": set(), "outbound": set()}
    section = None
    for line in show_ipsec_sa.splitlines():
        head = line.strip()
        if head.endswith("sas:"):
            section = head.split()[0] if head in ("inbound esp sas:", "outbound esp sas:") else None
            continue
        m = re.fullmatch(r"spi: 0x([0-9A-F]+)\((\d+)\)", head)
        if m and section:
            assert int(m.group(1), 16) == int(m.group(2)), line
            sets[section].add(int(m.group(2)))
    return sets["inbound"], sets["outbound"]


class Dut:
    """Our daemon in namespace ``dut`` (restartable: each start is tracked by ``lab``)."""

    def __init__(self, lab: RealLab, workdir: Path, config_text: str) -> None:
        self.lab = lab
        self.config = workdir / "dut.cfg"
        self.config.write_text(config_text)
        self.sock = workdir / "dut.sock"
        self.workdir = workdir
        self.logs: list[Path] = []
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = self.workdir / f"dut{len(self.logs)}.log"
        self.logs.append(log)
        self.proc = self.lab.start("dut", DMVPN, "run", str(self.config), "--control", str(self.sock),
                                   "--tun-name", "tun-dut", log=log)
        wait_control(self.sock, self.proc, log)
        assert self.ask("debug crypto isakmp") == "Crypto ISAKMP debugging is on"

    def ask(self, command: str) -> str:
        return ask(self.sock, command)

    def log(self) -> str:
        """The current run's log."""
        return self.logs[-1].read_text()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        return self.lab.stop(self.proc, sig=sig)

    def ping_peer(self) -> str:
        """One Echo to strongSwan's inner address over Tunnel0 (unanswered: its
        kernel has no GRE), which makes us negotiate when there is no SA."""
        self.ask("ping 10.2.0.1 repeat 1 timeout 1")
        return finished_ping(self.sock)

    def spis(self) -> tuple[set[int], set[int]]:
        return our_spis(self.ask("show crypto ipsec sa"))

    def isakmp_rows(self) -> list[str]:
        """``show crypto isakmp sa`` rows with the peer."""
        return [line for line in self.ask("show crypto isakmp sa").splitlines() if PEER in line]

    def wait_pair(self, timeout: float = 20) -> None:
        wait_for(lambda: all(self.spis()), timeout, "an IPsec SA pair with strongSwan", interval=0.2)


def spis_agree(dut: Dut, peer: PeerLab, timeout: float = 8.0) -> tuple[set[int], set[int]]:
    """Wait until our inbound SPIs are charon's outbound ones and the reverse
    (DELETEs in flight settle within ``timeout``); return ours."""
    seen: list = []

    def agree() -> bool:
        ours, theirs = dut.spis(), peer.charon_spis()
        seen[:] = [ours, theirs]
        return ours[0] == theirs[1] and ours[1] == theirs[0] and bool(ours[0])

    try:
        wait_for(agree, timeout, "the same SPIs on both sides", interval=0.5)
    except AssertionError:
        (our_in, our_out), (sw_in, sw_out) = seen
        raise AssertionError(f"SPIs differ: ours in {sorted(map(hex, our_in))} out {sorted(map(hex, our_out))}, "
                             f"strongSwan in {sorted(map(hex, sw_in))} out {sorted(map(hex, sw_out))}") from None
    return seen[0]
