"""The real runtime on real sockets and TUN devices, in namespaces made here:
two ICMP echo engines joined by a veth, a TUN device the kernel pings
through, the control socket round trip and a clean stop."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "data" / "real"))
from real_lab import ECHO_DAEMON, RealLab, ask, control, finished_ping, require_root_tools, sh, wait_control


@pytest.fixture
def lab(request):
    require_root_tools("ping")
    lab = RealLab(request.node.name[-6:].replace("_", "").replace("[", "").replace("]", ""))
    try:
        yield lab
    finally:
        lab.cleanup()


def test_echo_engines_ping_each_other_over_veth(lab, tmp_path):
    a, b = lab.netns("a"), lab.netns("b")
    lab.veth(a, "wan0", "10.77.0.1/24", b, "wan0", "10.77.0.2/24")
    # Only the engine may answer in b: the kernel there ignores Echo.
    sh("ip", "netns", "exec", b, "sysctl", "-qw", "net.ipv4.icmp_echo_ignore_all=1")
    socks = {n: tmp_path / f"{n}.sock" for n in "ab"}
    procs = {}
    for n, ns, addr in (("a", a, "10.77.0.1/24"), ("b", b, "10.77.0.2/24")):
        log = tmp_path / f"{n}.log"
        procs[n] = lab.start(ns, sys.executable, ECHO_DAEMON, "--control", str(socks[n]),
                             "--underlay", f"eth0={addr}", log=log)
        wait_control(socks[n], procs[n], log)

    out = control(socks["a"], "10.77.0.2", "repeat", "3", "timeout", "1", command="ping")  # the CLI client
    assert out.returncode == 0, out.stderr
    assert "Sending 3, 100-byte ICMP Echos to 10.77.0.2" in out.stdout
    result = finished_ping(socks["a"])
    assert "!!!" in result and "Success rate is 100 percent (3/3)" in result
    traffic = ask(socks["b"], "show ip traffic")
    assert "3 echo, 0 echo reply" in traffic and "Sent: 0 echo, 3 echo reply" in traffic
    runtime = ask(socks["a"], "show runtime")
    assert "eth0: 3 packets in, 3 packets out" in runtime
    # Bigger than the veth's MTU: the runtime fragments, b's kernel reassembles.
    ask(socks["a"], "ping 10.77.0.2 repeat 2 size 3000 timeout 1")
    assert "Success rate is 100 percent (2/2)" in finished_ping(socks["a"])
    assert "2 datagrams over the path MTU sent fragmented" in ask(socks["a"], "show runtime")
    for n in "ab":
        assert lab.stop(procs[n]) == 0
        assert not socks[n].exists()


def test_tun_device_kernel_ping_and_clean_stop(lab, tmp_path):
    ns = lab.netns("t")
    sock, log = tmp_path / "t.sock", tmp_path / "t.log"
    proc = lab.start(ns, sys.executable, ECHO_DAEMON, "--control", str(sock),
                     "--tun", "Tunnel0=dmvpn-t0,10.78.0.1/24,1300,10.78.0.2/24", log=log)
    wait_control(sock, proc, log)
    (link,) = json.loads(sh("ip", "-n", ns, "-j", "addr", "show", "dev", "dmvpn-t0").stdout)
    assert link["mtu"] == 1300 and "UP" in link["flags"]
    assert [(a["local"], a["prefixlen"]) for a in link["addr_info"] if a["family"] == "inet"] == [("10.78.0.1", 24)]
    # The kernel routes 10.78.0.2 into the TUN; the engine answers through it.
    ping = sh("ip", "netns", "exec", ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.78.0.2", check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert "3 received" in ping.stdout
    assert "3 echo, 0 echo reply" in ask(sock, "show ip traffic")
    assert "Tunnel0: 3 packets in, 3 packets out" in ask(sock, "show runtime")

    assert lab.stop(proc) == 0
    assert "%DMVPN: stopped" in log.read_text()
    assert not sock.exists()
    gone = sh("ip", "-n", ns, "link", "show", "dev", "dmvpn-t0", check=False)
    assert gone.returncode != 0 and "does not exist" in gone.stderr


def test_control_socket_errors_and_bad_requests(lab, tmp_path):
    ns = lab.netns("c")
    sock, log = tmp_path / "c.sock", tmp_path / "c.log"
    proc = lab.start(ns, sys.executable, ECHO_DAEMON, "--control", str(sock),
                     "--tun", "Tunnel0=dmvpn-c0,10.79.0.1/24,1400,10.79.0.2/24", log=log)
    wait_control(sock, proc, log)
    bad = control(sock, "no", "such", "thing")
    assert bad.returncode == 1 and bad.stderr.startswith("% Invalid input") and bad.stdout == ""
    # A raw client sending garbage gets an error line, the daemon carries on.
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.settimeout(5)
    raw.connect(str(sock))
    raw.sendall(b"\xff\xfe\n")
    assert raw.recv(1000) == b"% Command is not UTF-8\n"
    raw.close()
    # A second daemon on the same control socket is refused, one line.
    second = sh(sys.executable, ECHO_DAEMON, "--control", str(sock), check=False)
    assert second.returncode == 1
    assert second.stderr.strip().splitlines() == [f"echo_daemon: control socket {sock} is in use: "
                                                  f"another daemon is running"]
    assert ask(sock, "show runtime").startswith("Runtime for echo")
    assert lab.stop(proc) == 0
    missing = control(sock, "runtime")
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"dmvpn show: no daemon: control socket {sock} does not exist"


def test_missing_tun_driver_is_one_line_and_leaves_nothing(lab, tmp_path):
    ns = lab.netns("m")
    sock = tmp_path / "m.sock"
    out = sh("ip", "netns", "exec", ns, sys.executable, ECHO_DAEMON, "--control", str(sock),
             "--tun-device", str(tmp_path / "no-tun"),
             "--tun", "Tunnel0=dmvpn-m0,10.80.0.1/24,1400,10.80.0.2/24", check=False)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        f"echo_daemon: {tmp_path / 'no-tun'} does not exist: the kernel has no TUN driver "
        f"(modprobe tun, or give the container /dev/net/tun)"]
    assert not sock.exists()
