"""``dmvpn netlab`` with the seed's hub and spoke configs: namespaces, veth,
one ``dmvpn run`` per node; IKE and ESP between the two daemons on a real
veth (tshark sees only ISAKMP and ESP on it); ``down`` leaves nothing."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "data" / "real"))
from real_lab import DMVPN, RealLab, ask, control, finished_ping, require_root_tools, sh, wait_for

from dmvpn.lab.netlab import LAB_DATA as SEED_DATA
from dmvpn.lab.netlab import seed_pair_scenario

RUN_DIR = Path("/run/dmvpn-netlab")


def _scenario(tmp_path: Path, name: str, spoke_iface: str = "GigabitEthernet0/0/2") -> Path:
    path = tmp_path / "lab.toml"
    path.write_text(seed_pair_scenario(name, spoke_iface))
    return path


def _count(pcap: Path, display_filter: str) -> int:
    """Packets matching ``display_filter`` in a capture being written."""
    out = subprocess.run(["tshark", "-r", str(pcap), "-Y", display_filter, "-T", "fields", "-e", "frame.number"],
                         capture_output=True, text=True, timeout=60)
    return len(out.stdout.split())


def netlab(action: str, scenario: Path) -> subprocess.CompletedProcess:
    return subprocess.run([DMVPN, "netlab", action, str(scenario)], capture_output=True, text=True, timeout=120)


def _our_namespaces(name: str) -> list[str]:
    return [ns for ns in sh("ip", "netns", "list").stdout.split() if ns.startswith(f"dmvpn-{name}-")]


@pytest.fixture
def scenario(tmp_path):
    require_root_tools("tshark")
    name = f"t{os.getpid()}"
    path = _scenario(tmp_path, name)
    try:
        yield name, path
    finally:  # whatever happened, nothing of ours stays
        netlab("down", path)
        for ns in _our_namespaces(name):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def test_netlab_up_ipsec_between_daemons_and_down_leaves_nothing(scenario, tmp_path):
    name, path = scenario
    up = netlab("up", path)
    assert up.returncode == 0, up.stderr
    assert sorted(_our_namespaces(name)) == [f"dmvpn-{name}-hub", f"dmvpn-{name}-spoke"]
    assert "hub: namespace" in up.stdout and "running" in up.stdout and "NOT running" not in up.stdout
    hub_ns, run = f"dmvpn-{name}-hub", RUN_DIR / name
    link = sh("ip", "-n", hub_ns, "-o", "addr", "show", "dev", "gi0-0-2").stdout
    assert "inet 172.17.3.1/24" in link
    assert "alias GigabitEthernet0/0/2" in sh("ip", "-n", hub_ns, "link", "show", "dev", "gi0-0-2").stdout
    tun = sh("ip", "-n", hub_ns, "-o", "addr", "show", "dev", "dmvpn-tun0").stdout
    assert "inet 10.2.2.1/24" in tun
    pids = {n: int((run / f"{n}.pid").read_text()) for n in ("hub", "spoke")}
    again = netlab("up", path)
    assert again.returncode == 1 and again.stderr.splitlines() == [
        f"dmvpn netlab up: netlab {name} is already up ({run / 'state.json'}); run 'dmvpn netlab down' first"]

    lab = RealLab("cap")
    try:
        pcap, caplog = tmp_path / "wan.pcap", tmp_path / "tshark.log"
        capture = lab.start(hub_ns, "tshark", "-i", "gi0-0-2", "-w", str(pcap), log=caplog)
        wait_for(lambda: "Capturing on" in caplog.read_text(), 20, "tshark to start")
        spoke_sock, hub_sock = run / "spoke.sock", run / "hub.sock"
        assert control(spoke_sock, "10.2.2.1", "repeat", "5", command="ping").returncode == 0  # the CLI client
        result = finished_ping(spoke_sock)
        # The spoke's NHRP registration brought the SA up at start (before
        # it, nothing went out in clear): every Echo is answered.
        assert "100 percent (5/5)" in result, result
        isakmp = ask(hub_sock, "show crypto isakmp sa")
        assert "172.17.3.1      172.17.3.2      QM_IDLE" in isakmp
        ipsec = ask(hub_sock, "show crypto ipsec sa")
        decaps = re.search(r"#pkts decaps: (\d+)", ipsec)
        assert decaps is not None and int(decaps.group(1)) >= 6, ipsec  # the registration and 5 Echos
        # dumpcap writes in batches: wait until the Echos and replies are on file.
        wait_for(lambda: _count(pcap, "esp") >= 8, 15, "8 ESP packets in the capture")
        lab.stop(capture, sig=signal.SIGINT)
    finally:
        lab.cleanup()
    protocols = sh("tshark", "-r", str(pcap), "-T", "fields", "-e", "frame.protocols").stdout.split()
    ip_frames = [p for p in protocols if ":ip:" in p]
    assert any(p.endswith(":esp") for p in ip_frames)  # IKE ran at start, for the NHRP registration
    assert all(p.endswith((":udp:isakmp", ":esp")) for p in ip_frames), sorted(set(ip_frames))

    down = netlab("down", path)
    assert down.returncode == 0, down.stderr
    assert f"hub: stopped pid {pids['hub']} (SIGTERM)" in down.stdout
    assert _our_namespaces(name) == []
    assert not run.exists()
    for pid in pids.values():
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    assert netlab("status", path).stdout.strip() == f"netlab {name}: down"


def test_netlab_up_failure_is_one_line_and_removes_what_it_made(tmp_path):
    require_root_tools()
    name = f"f{os.getpid()}"
    path = _scenario(tmp_path, name, spoke_iface="GigabitEthernet9/9")
    try:
        up = netlab("up", path)
        assert up.returncode == 1
        assert up.stderr.strip().splitlines() == [
            f"dmvpn netlab up: {path}: link wan: {SEED_DATA / 'spoke.cfg'} has no interface "
            f"GigabitEthernet9/9 with an ip address"]
        assert _our_namespaces(name) == []
        assert not (RUN_DIR / name).exists()
    finally:
        netlab("down", path)


def test_netlab_kernel_ping_across_tunnel0_is_gre_over_esp(scenario, tmp_path):
    """Issue 7 item 6: the kernel in the spoke's namespace pings the hub's
    tunnel address through both daemons; on the wire only ISAKMP and ESP."""
    name, path = scenario
    up = netlab("up", path)
    assert up.returncode == 0, up.stderr
    spoke_ns, hub_ns = f"dmvpn-{name}-spoke", f"dmvpn-{name}-hub"
    lab = RealLab("k")
    try:
        pcap, caplog = tmp_path / "wan.pcap", tmp_path / "tshark.log"
        capture = lab.start(hub_ns, "tshark", "-i", "gi0-0-2", "-w", str(pcap), log=caplog)
        wait_for(lambda: "Capturing on" in caplog.read_text(), 20, "tshark to start")
        ping = sh("ip", "netns", "exec", spoke_ns, "ping", "-c", "6", "-i", "0.3", "-W", "2", "10.2.2.1",
                  check=False)
        received = int(ping.stdout.split(" received")[0].rsplit(" ", 1)[1]) if " received" in ping.stdout else 0
        assert received >= 4, ping.stdout  # the first Echo may be spent on starting IKE
        wait_for(lambda: _count(pcap, "esp") >= 2 * received, 15, "the Echos' ESP packets in the capture")
        lab.stop(capture, sig=signal.SIGINT)
    finally:
        lab.cleanup()
    protocols = sh("tshark", "-r", str(pcap), "-T", "fields", "-e", "frame.protocols").stdout.split()
    ip_frames = [p for p in protocols if ":ip:" in p]
    assert sum(p.endswith(":esp") for p in ip_frames) >= 2 * received
    assert all(p.endswith((":udp:isakmp", ":esp")) for p in ip_frames), sorted(set(ip_frames))


def test_netlab_three_nodes_on_a_bridge(tmp_path):
    """More than two endpoints: a bridge namespace joins them; both spokes
    bring IKE up with the hub over it (the hub answers the seed spoke, which
    it has a static NHRP mapping for)."""
    require_root_tools()
    name = f"b{os.getpid()}"
    path = tmp_path / "three.toml"
    path.write_text(f"""
[lab]
name = "{name}"
[[node]]
name = "hub"
config = "{SEED_DATA / 'hub.cfg'}"
[[node]]
name = "spoke"
config = "{SEED_DATA / 'spoke.cfg'}"
[[node]]
name = "spoke2"
config = "{Path(__file__).parent / 'data' / 'real' / 'spoke2.cfg'}"
[[link]]
name = "wan"
endpoints = ["hub:GigabitEthernet0/0/2", "spoke:GigabitEthernet0/0/2", "spoke2:GigabitEthernet0/0/2"]
""")
    try:
        up = netlab("up", path)
        assert up.returncode == 0, up.stderr
        expected = sorted(f"dmvpn-{name}-{n}" for n in ("hub", "spoke", "spoke2", "sw-wan"))
        assert sorted(_our_namespaces(name)) == expected
        run = RUN_DIR / name
        for spoke in ("spoke", "spoke2"):
            ask(run / f"{spoke}.sock", "ping 10.2.2.1 repeat 3 timeout 1")
        # registered at start, so the SA is up: no Echo is lost to IKE
        assert "Success rate is 100 percent (3/3)" in finished_ping(run / "spoke.sock")
        finished_ping(run / "spoke2.sock")
        by_node = subprocess.run([DMVPN, "show", "--node", "spoke2", "runtime"], capture_output=True, text=True,
                                 timeout=30)  # the CLI finds the netlab node's socket
        assert by_node.stdout.startswith("Runtime for SPOKE2"), by_node.stderr
        isakmp = ask(run / "hub.sock", "show crypto isakmp sa")
        for spoke_address in ("172.17.3.2", "172.17.3.3"):
            assert re.search(rf"172\.17\.3\.1\s+{re.escape(spoke_address)}\s+QM_IDLE", isakmp), isakmp
        down = netlab("down", path)
        assert down.returncode == 0 and f"namespace dmvpn-{name}-sw-wan deleted" in down.stdout
        assert _our_namespaces(name) == []
    finally:
        netlab("down", path)


def test_netlab_down_removes_its_state_folder(tmp_path):
    """Issue 17: ``netlab down`` left its state folder behind. Here on a run
    folder of our own, after an ``up`` that left its files (logs, a PID file,
    a daemon's leftover folder): ``down`` removes the lab's folder and the
    run folder it was the last lab in; one with another lab in it stays."""
    from dmvpn.lab.netlab import Netlab
    from dmvpn.lab.scenario import load_scenario

    run_dir = tmp_path / "netlab-run"
    lab = Netlab(load_scenario(_scenario(tmp_path, f"d{os.getpid()}")), run_dir=run_dir)
    other = run_dir / "another-lab"
    for folder in (lab.dir / "hub.d", other):
        folder.mkdir(parents=True)
    for name in ("hub.log", "hub.pid", "spoke.log", "hub.d/core"):
        (lab.dir / name).write_text("x\n")
    assert lab.down() == []
    assert not lab.dir.exists() and other.exists()
    other.rmdir()
    lab.dir.mkdir()
    lab.down()
    assert not run_dir.exists()
