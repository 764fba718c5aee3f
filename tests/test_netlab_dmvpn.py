"""DMVPN for real: the built-in netlab DMVPN lab (a hub, two spokes, OSPF
over the tunnel with FRR beside each ``dmvpn run``), as root in namespaces.

One lab for the module, the tests in order: the spokes register with a hub
that has no static map for them and OSPF installs every LAN in every
kernel; a kernel ping between the spokes' LAN hosts goes through the hub
until its redirect and the spokes' shortcut take it direct (the hub stops
forwarding, a spoke-to-spoke SA pair appears with the same SPIs crosswise),
while the underlay carries only IKE and ESP; then the hub's daemon is
killed and started again, and registration, routing and the spoke-to-spoke
path come back. The times each step took are printed (``-s``) and kept in
``TIMES`` for the last test's report.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "data" / "real"))
from real_lab import DMVPN, RealLab, ask, require_root_tools, sh, wait_for

from dmvpn.lab.netlab import LAB_DATA
from dmvpn.runtime.real.frr import FrrVty

RUN_DIR = Path("/run/dmvpn-netlab")
NODES = ("hub", "spoke1", "spoke2")
NBMA = {"hub": "172.16.0.1", "spoke1": "172.16.0.11", "spoke2": "172.16.0.12"}
TUNNEL = {"hub": "10.0.0.1", "spoke1": "10.0.0.11", "spoke2": "10.0.0.12"}
LAN_HOST = {"spoke1": "192.168.1.2", "spoke2": "192.168.2.2"}
LAN = {"spoke1": "192.168.1.0/24", "spoke2": "192.168.2.0/24"}
#: seconds each step took, for the report
TIMES: dict[str, float] = {}


class Lab:
    def __init__(self, name: str, path: Path) -> None:
        self.name, self.path = name, path
        self.dir = RUN_DIR / name

    def ns(self, node: str) -> str:
        return f"dmvpn-{self.name}-{node}"

    def sock(self, node: str) -> Path:
        return self.dir / f"{node}.sock"

    def ask(self, node: str, command: str) -> str:
        return ask(self.sock(node), command)

    def vty(self, node: str) -> FrrVty:
        return FrrVty(self.dir / f"{node}.frr")

    def netlab(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([DMVPN, "netlab", args[0], str(self.path), *args[1:]], capture_output=True, text=True,
                              timeout=180)


def _namespaces(name: str) -> list[str]:
    return [ns for ns in sh("ip", "netns", "list").stdout.split() if ns.startswith(f"dmvpn-{name}-")]


def _frr_pids(name: str) -> list[int]:
    out = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if str(RUN_DIR / name).encode() in cmdline:
            out.append(int(pid))
    return out


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    require_root_tools("tshark", "ping", "vtysh")
    name = f"dm{os.getpid()}"
    path = tmp_path_factory.mktemp("netlab") / "dmvpn.toml"
    text = (LAB_DATA / "netlab-dmvpn.toml").read_text().replace('name = "dmvpn"', f'name = "{name}"')
    path.write_text(text.replace('config = "netlab/', f'config = "{LAB_DATA}/netlab/'))
    lab = Lab(name, path)
    try:
        yield lab
    finally:  # whatever happened, nothing of ours stays
        down = lab.netlab("down")
        leftovers = _namespaces(name)
        for ns in leftovers:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        assert down.returncode == 0, down.stderr
        assert not leftovers and not _frr_pids(name) and not lab.dir.exists(), (leftovers, _frr_pids(name))


def _dmvpn_peers(text: str) -> dict[str, tuple[str, str, str]]:
    """``show dmvpn`` peer rows: NBMA -> (tunnel address, state, attribute)."""
    rows = re.findall(r"^\s+\d+\s+(\S+)\s+(\S+)\s+(UP|IKE|NHRP|DOWN)\s+\S+\s+(\S+)\s*$", text, re.M)
    return {nbma: (tunnel, state, attr) for nbma, tunnel, state, attr in rows}


def _full(lab: Lab, node: str, neighbor: str) -> bool:
    entries = lab.vty(node).json("show ip ospf neighbor").get("neighbors", {}).get(neighbor, [])
    return bool(entries) and str(entries[0].get("nbrState", "")).startswith("Full")


def _kernel_ospf(lab: Lab, node: str) -> str:
    return sh("ip", "-n", lab.ns(node), "route", "show", "proto", "ospf").stdout


def _registered(lab: Lab) -> bool:
    peers = _dmvpn_peers(lab.ask("hub", "show dmvpn"))
    return all(peers.get(NBMA[s], ("", "", ""))[1:] == ("UP", "D") for s in ("spoke1", "spoke2"))


def _routing_converged(lab: Lab) -> bool:
    if not all(_full(lab, "hub", TUNNEL[s]) and _full(lab, s, TUNNEL["hub"]) for s in ("spoke1", "spoke2")):
        return False
    wanted = {"hub": ("spoke1", "spoke2"), "spoke1": ("spoke2",), "spoke2": ("spoke1",)}
    return all(f"{LAN[o]} " in _kernel_ospf(lab, n) for n, others in wanted.items() for o in others)


def _forwarded(lab: Lab) -> int:
    found = re.search(r"Sent:\s+(\d+) forwarded", lab.ask("hub", "show ip traffic"))
    assert found is not None
    return int(found.group(1))


def _spis(text: str) -> tuple[set[str], set[str]]:
    """(inbound, outbound) ESP SPIs of ``show crypto ipsec sa`` text."""
    inbound: set[str] = set()
    outbound: set[str] = set()
    for block in re.split(r"(?=inbound esp sas:|outbound esp sas:)", text):
        target = inbound if block.startswith("inbound esp") else outbound if block.startswith("outbound esp") else None
        if target is not None:
            target.update(s.upper() for s in re.findall(r"spi: (0x[0-9A-Fa-f]+)", block))
    return inbound, outbound


def _spoke_pair(lab: Lab) -> tuple[set[str], set[str], set[str], set[str]]:
    one = _spis(lab.ask("spoke1", f"show crypto ipsec sa peer {NBMA['spoke2']}"))
    two = _spis(lab.ask("spoke2", f"show crypto ipsec sa peer {NBMA['spoke1']}"))
    return (*one, *two)


def _crosswise(lab: Lab) -> bool:
    in1, out1, in2, out2 = _spoke_pair(lab)
    return bool(out1) and bool(out2) and out1 <= in2 and out2 <= in1


def _start_capture(lab: Lab, cap: RealLab, pcap: Path, caplog: Path) -> subprocess.Popen:
    """tshark on the WAN bridge (every node's underlay)."""
    capture = cap.start(lab.ns("sw-wan"), "tshark", "-i", "br0", "-w", str(pcap), log=caplog)
    wait_for(lambda: "Capturing on" in caplog.read_text(), 30, "tshark to start")
    return capture


def _assert_only_ike_and_esp(pcap: Path) -> None:
    """Every IP packet on the underlay is ESP, ESP in UDP or ISAKMP."""
    clear = subprocess.run(["tshark", "-r", str(pcap), "-Y", "ip && !esp && !isakmp && !udpencap",
                            "-T", "fields", "-e", "frame.number", "-e", "_ws.col.Protocol"],
                           capture_output=True, text=True, timeout=60)
    assert clear.returncode == 0, clear.stderr
    assert clear.stdout.strip() == "", f"clear packets on the underlay:\n{clear.stdout[:2000]}"


def _timed(key: str, predicate, timeout: float, what: str, since: float) -> None:
    wait_for(predicate, timeout, what, interval=0.2)
    TIMES[key] = round(time.monotonic() - since, 1)
    print(f"{key}: {TIMES[key]} s")


def test_spokes_register_and_ospf_installs_every_lan(lab):
    start = time.monotonic()
    up = lab.netlab("up")
    assert up.returncode == 0, up.stderr
    assert "NOT running" not in up.stdout and "MISSING" not in up.stdout, up.stdout
    # the hub has no static NHRP map for any spoke: they must register
    assert "ip nhrp map " not in (LAB_DATA / "netlab" / "hub.cfg").read_text().replace("map multicast", "")
    _timed("register", lambda: _registered(lab), 30, "both spokes UP and dynamic on the hub", start)
    peers = _dmvpn_peers(lab.ask("hub", "show dmvpn"))
    assert {nbma: p[0] for nbma, p in peers.items()} == {NBMA["spoke1"]: TUNNEL["spoke1"],
                                                         NBMA["spoke2"]: TUNNEL["spoke2"]}
    _timed("ospf", lambda: _routing_converged(lab), 60, "OSPF FULL and the LANs in every kernel", start)
    hub_routes = _kernel_ospf(lab, "hub")
    assert f"{LAN['spoke1']} " in hub_routes and f"via {TUNNEL['spoke1']} dev dmvpn-tun0" in hub_routes, hub_routes
    # point-to-multipoint: a spoke reaches the other's LAN via the hub
    assert f"via {TUNNEL['hub']} dev dmvpn-tun0" in _kernel_ospf(lab, "spoke1")
    # the daemon learned the route from the kernel (IOS form: O, [110/metric], via the hub)
    assert re.search(r"^O\s+192\.168\.2\.0/24 \[110/\d+\] via 10\.0\.0\.1, \S+, Tunnel0$",
                     lab.ask("spoke1", "show ip route"), re.M), lab.ask("spoke1", "show ip route")
    status = lab.netlab("status")
    assert status.returncode == 0
    assert f"show dmvpn: 1 {NBMA['spoke1']} {TUNNEL['spoke1']} UP" in status.stdout, status.stdout
    assert "Session status: UP-ACTIVE" in status.stdout


def test_lan_ping_goes_direct_after_redirect_and_underlay_is_only_ike_and_esp(lab, tmp_path):
    cap = RealLab(f"c{os.getpid()}")
    pcap, caplog = tmp_path / "wan.pcap", tmp_path / "tshark.log"
    try:
        capture = _start_capture(lab, cap, pcap, caplog)
        before = _forwarded(lab)
        start = time.monotonic()
        ping = cap.start(lab.ns("spoke1-lo0"), "ping", "-c", "150", "-i", "0.1", "-W", "1", LAN_HOST["spoke2"],
                         log=tmp_path / "ping.log")
        _timed("shortcut", lambda: _crosswise(lab) and "%" in lab.ask("spoke1", "show ip route"), 20,
               "the spoke-to-spoke SA pair and the NHRP override on spoke 1", start)
        time.sleep(1.0)  # packets in flight through the hub before the override drain
        settled = _forwarded(lab)
        assert settled > before, "the first packets went through the hub"
        assert ping.wait(60) == 0, (tmp_path / "ping.log").read_text()
        after = _forwarded(lab)
        assert after == settled, f"the hub forwarded {after - settled} packets after the shortcut"
        summary = (tmp_path / "ping.log").read_text()
        received = int(re.search(r"(\d+) received", summary).group(1))
        assert received >= 145, summary
        in1, out1, in2, out2 = _spoke_pair(lab)
        assert out1 <= in2 and out2 <= in1 and out1 and out2
        assert re.search(r"#pkts encaps: [1-9]", lab.ask("spoke1", f"show crypto ipsec sa peer {NBMA['spoke2']}"))
        assert "DT" in lab.ask("spoke1", "show dmvpn")  # the spoke-to-spoke entry
        cap.stop(capture)
        _assert_only_ike_and_esp(pcap)
        esp = subprocess.run(["tshark", "-r", str(pcap), "-Y", f"esp && ip.src == {NBMA['spoke1']} && "
                              f"ip.dst == {NBMA['spoke2']}", "-T", "fields", "-e", "frame.number"],
                             capture_output=True, text=True, timeout=60)
        assert len(esp.stdout.split()) >= 100, "spoke 1 sends its ping to spoke 2 directly in ESP"
    finally:
        cap.cleanup()


def test_hub_restart_spokes_reregister_routing_returns_spoke_path_kept(lab, tmp_path):
    _, out1, _, _ = _spoke_pair(lab)
    cap = RealLab(f"r{os.getpid()}")
    pcap = tmp_path / "restart.pcap"
    try:
        capture = _start_capture(lab, cap, pcap, tmp_path / "tshark.log")
        _restart_hub(lab, tmp_path, out1)
        cap.stop(capture)
        # the restarted hub has no SA: what the spokes send it meanwhile, and
        # the NHRP registrations before IKE is done, never go in clear
        _assert_only_ike_and_esp(pcap)
        isakmp = subprocess.run(["tshark", "-r", str(pcap), "-Y", f"isakmp && ip.dst == {NBMA['hub']}",
                                 "-T", "fields", "-e", "frame.number"], capture_output=True, text=True, timeout=60)
        assert isakmp.stdout.split(), "the spokes negotiated with the restarted hub"
    finally:
        cap.cleanup()


def _restart_hub(lab: Lab, tmp_path: Path, out1: set[str]) -> None:
    start = time.monotonic()
    restart = lab.netlab("restart", "hub")
    assert restart.returncode == 0, restart.stderr
    assert re.match(r"hub: killed pid \d+, started pid \d+$", restart.stdout.strip())
    _timed("hub restart: spokes re-registered", lambda: _registered(lab), 90,
           "both spokes UP and dynamic on the restarted hub", start)
    _timed("hub restart: OSPF FULL", lambda: all(_full(lab, "hub", TUNNEL[s]) and _full(lab, s, TUNNEL["hub"])
                                                 for s in ("spoke1", "spoke2")), 90,
           "OSPF FULL again between the hub and each spoke", start)
    _timed("hub restart: routing back", lambda: _routing_converged(lab), 90,
           "OSPF FULL again and every LAN in every kernel", start)
    ping = subprocess.run(["ip", "netns", "exec", lab.ns("spoke1-lo0"), "ping", "-c", "20", "-i", "0.1", "-W", "1",
                           LAN_HOST["spoke2"]], capture_output=True, text=True, timeout=60)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    TIMES["hub restart: spoke-to-spoke"] = round(time.monotonic() - start, 1)
    _, now_out1, _, _ = _spoke_pair(lab)
    kept = bool(now_out1 & out1)
    print(f"spoke-to-spoke SA pair {'kept' if kept else 'rebuilt'}: {sorted(out1)} -> {sorted(now_out1)}")
    print(f"times: {TIMES}")
    assert _crosswise(lab)
