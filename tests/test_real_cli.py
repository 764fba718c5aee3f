"""``dmvpn run`` with a real Router and its control-socket clients, in
namespaces made here: the round trip, a clean SIGTERM stop, and the
one-line start failures (config error, not root, address missing or in use)."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "data" / "real"))
from real_lab import DMVPN, RealLab, ask, control, require_root_tools, sh, wait_control, wait_for

from dmvpn.runtime.real.control import ControlClientError

HUB = Path(__file__).resolve().parent.parent / "src" / "dmvpn" / "lab" / "data" / "hub.cfg"


@pytest.fixture
def lab(request):
    require_root_tools()
    lab = RealLab(request.node.name[-5:].replace("_", ""))
    try:
        yield lab
    finally:
        lab.cleanup()


def _hub_namespace(lab: RealLab, name: str = "h") -> str:
    ns = lab.netns(name)
    sh("ip", "-n", ns, "link", "add", "gi0-0-2", "type", "veth", "peer", "name", "peer0")
    sh("ip", "-n", ns, "addr", "add", "172.17.3.1/24", "dev", "gi0-0-2")
    sh("ip", "-n", ns, "link", "set", "gi0-0-2", "up")
    return ns


def _run_once(ns: str | None, *args: str) -> subprocess.CompletedProcess:
    prefix = ["ip", "netns", "exec", ns] if ns else []
    return subprocess.run([*prefix, DMVPN, "run", *args], capture_output=True, text=True, timeout=60)


def test_run_router_control_round_trip_and_sigterm(lab, tmp_path):
    ns = _hub_namespace(lab)
    sock, log, config = tmp_path / "hub.sock", tmp_path / "hub.log", tmp_path / "hub.cfg"
    config.write_text(HUB.read_text().replace("\nend", "\nip route 192.168.50.0 255.255.255.0 Tunnel0\n"
                                                       "ip route 192.168.60.0 255.255.255.0 10.2.2.2\n"
                                                       "ip route 192.168.70.0 255.255.255.0 172.17.3.254\nend"))
    proc = lab.start(ns, DMVPN, "run", str(config), "--control", str(sock), "--tun-name", "tun-hub", log=log)
    wait_control(sock, proc, log)
    assert "HUB running (cisco-iosxe): GigabitEthernet0/0/2 172.17.3.1; Tunnel0 on tun-hub 10.2.2.1/24 " \
           "mtu 1400" in log.read_text()
    policy = control(sock, "show crypto isakmp policy")  # the word 'show' may be repeated
    assert policy.returncode == 0 and "Protection suite of priority 2" in policy.stdout
    assert control(sock, "crypto", "isakmp", "policy").stdout == policy.stdout
    on = control(sock, "crypto", "isakmp", command="debug")
    assert (on.returncode, on.stdout.strip()) == (0, "Crypto ISAKMP debugging is on")
    off = control(sock, "all", command="undebug")
    assert (off.returncode, off.stdout.strip()) == (0, "All possible debugging has been turned off")
    assert control(sock, "crypto", "sa", command="clear").returncode == 0
    bad = control(sock, "crypto", "sa", "peer", "nonsense", command="clear")
    assert bad.returncode == 1 and bad.stderr.startswith("%")
    link = sh("ip", "-n", ns, "-o", "addr", "show", "dev", "tun-hub").stdout
    assert "inet 10.2.2.1/24" in link
    # The config's routes into the tunnel are kernel routes into the TUN; the underlay one is not ours.
    routes = sh("ip", "-n", ns, "route", "show", "dev", "tun-hub").stdout.splitlines()
    assert {r.split(" proto")[0].strip() for r in routes} == {
        "10.2.2.0/24", "192.168.50.0/24", "192.168.60.0/24 via 10.2.2.2"}, routes

    assert lab.stop(proc) == 0
    assert log.read_text().rstrip().endswith("%DMVPN: stopped")
    assert not sock.exists()
    assert sh("ip", "-n", ns, "link", "show", "dev", "tun-hub", check=False).returncode != 0


def test_run_address_in_use_and_not_configured(lab, tmp_path):
    ns = _hub_namespace(lab)
    sock, log = tmp_path / "one.sock", tmp_path / "one.log"
    proc = lab.start(ns, DMVPN, "run", str(HUB), "--control", str(sock), log=log)
    wait_control(sock, proc, log)
    second = _run_once(ns, str(HUB), "--control", str(tmp_path / "two.sock"), "--tun-name", "tun-two")
    assert second.returncode == 1
    assert second.stderr.splitlines() == ["dmvpn run: address 172.17.3.1 UDP port 500 is already in use "
                                          "(another IKE daemon running?)"]
    assert not (tmp_path / "two.sock").exists()
    assert lab.stop(proc) == 0

    empty = lab.netns("e")
    missing = _run_once(empty, str(HUB), "--control", str(tmp_path / "e.sock"))
    assert missing.returncode == 1
    assert missing.stderr.splitlines() == ["dmvpn run: address 172.17.3.1 is not configured on any interface "
                                           "here (needed for UDP port 500)"]


def test_run_config_error_and_not_root(lab, tmp_path):
    bad = tmp_path / "bad.cfg"
    bad.write_text("hostname X\ninterface GigabitEthernet0/0/2\n ip address 300.1.1.1 255.255.255.0\n")
    out = _run_once(None, str(bad))
    assert out.returncode == 1
    (line,) = out.stderr.splitlines()
    assert line.startswith(f"dmvpn run: {bad}:3: error:")
    assert shutil.which("setpriv"), "setpriv (util-linux) is missing"
    nobody = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", DMVPN, "run", str(HUB)],
                            capture_output=True, text=True, timeout=60)
    assert nobody.returncode == 1
    assert nobody.stderr.splitlines() == ["dmvpn run: must run as root: raw sockets, UDP 500 and TUN devices "
                                          "need CAP_NET_RAW, CAP_NET_BIND_SERVICE and CAP_NET_ADMIN"]


def test_run_force_nat_t_carries_esp_in_udp_between_daemons(lab, tmp_path):
    """``dmvpn run --force-nat-t`` on the spoke, no NAT on the path: the
    kernels ping across Tunnel0 and tshark on the veth sees only UDP 500
    and 4500, ESP riding in UDP (RFC 3948)."""
    require_root_tools("tshark", "ping")
    spoke_cfg = HUB.parent / "spoke.cfg"
    hub_ns, spoke_ns = lab.netns("h"), lab.netns("s")
    lab.veth(hub_ns, "gi0-0-2", "172.17.3.1/24", spoke_ns, "gi0-0-2", "172.17.3.2/24")
    pcap, caplog = tmp_path / "wan.pcap", tmp_path / "tshark.log"
    capture = lab.start(hub_ns, "tshark", "-i", "gi0-0-2", "-w", str(pcap), log=caplog)
    wait_for(lambda: "Capturing on" in caplog.read_text(), 20, "tshark to start")
    socks = {}
    for ns, name, cfg, extra in ((hub_ns, "hub", HUB, ()), (spoke_ns, "spoke", spoke_cfg, ("--force-nat-t",))):
        socks[name], log = tmp_path / f"{name}.sock", tmp_path / f"{name}.log"
        proc = lab.start(ns, DMVPN, "run", str(cfg), "--control", str(socks[name]), "--tun-name", f"tun-{name}",
                         *extra, log=log)
        wait_control(socks[name], proc, log)
    assert "NAT-T forced" in (tmp_path / "spoke.log").read_text()
    ping = sh("ip", "netns", "exec", spoke_ns, "ping", "-c", "5", "-i", "0.2", "-W", "2", "10.2.2.1", check=False)
    received = int(re.search(r"(\d+) received", ping.stdout).group(1))
    assert received >= 4, ping.stdout + (tmp_path / "spoke.log").read_text()  # the first may wait for IKE
    for name in ("hub", "spoke"):
        show = ask(socks[name], "show crypto ipsec sa")
        assert "Transport UDP-Encaps" in show and "port 4500" in show, show
    spoke_show = show
    assert lab.stop(capture, sig=signal.SIGINT) == 0
    rows = sh("tshark", "-r", str(pcap), "-Y", "ip", "-T", "fields", "-e", "ip.proto", "-e", "udp.port",
              "-e", "frame.protocols").stdout.splitlines()
    fields = [r.split("\t") for r in rows]
    assert fields and {proto for proto, _, _ in fields} == {"17"}, fields
    assert {ports for _, ports, _ in fields} <= {"500,500", "4500,4500"}
    # Every ESP frame the capture holds is in UDP (the capture may miss the
    # last ones when tshark stops); the spoke's SA counted each Echo sent.
    assert sum(p.endswith(":udpencap:esp") for _, _, p in fields) >= 2
    assert int(re.search(r"#pkts encaps: (\d+)", spoke_show).group(1)) >= received


def test_run_survives_a_flood_of_idle_control_connections(lab, tmp_path):
    """Issue 17: ~20,000 idle control connections exhausted the descriptors and
    EMFILE on accept killed the loop with a traceback. With RLIMIT_NOFILE at
    32 (so a few dozen connections reach EMFILE), the daemon refuses or backs
    off, drops the idle clients after the timeout, answers again, and stops
    cleanly."""
    ns = _hub_namespace(lab)
    sock, log = tmp_path / "flood.sock", tmp_path / "flood.log"
    proc = lab.start(ns, "prlimit", "--nofile=32:32", DMVPN, "run", str(HUB), "--control", str(sock),
                     "--tun-name", "tun-fl", log=log)
    wait_control(sock, proc, log)
    clients = []
    try:
        end = time.monotonic() + 3
        while len(clients) < 60 and time.monotonic() < end and proc.poll() is None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(str(sock))
            except OSError:      # the backlog is full: let the daemon accept
                s.close()
                time.sleep(0.01)
                continue
            clients.append(s)
        time.sleep(0.5)
        assert proc.poll() is None, log.read_text()
        assert len(clients) == 60
        wait_for(lambda: _answers(sock), 15, "the daemon to answer after the idle timeout")
    finally:
        for s in clients:
            s.close()
    runtime = ask(sock, "show runtime")
    assert "control socket idle timeout" in runtime
    assert lab.stop(proc) == 0
    text = log.read_text()
    assert "Traceback" not in text and text.rstrip().endswith("%DMVPN: stopped")
    assert not sock.exists()


def _answers(sock: Path) -> bool:
    try:
        return ask(sock, "show runtime").startswith("Runtime for")
    except ControlClientError:
        return False
