"""The seed's hub and spoke as daemons with ESP in UDP 4500 forced and
every offload on (UDP GSO/GRO, TUN TSO/CSUM): TCP and UDP from the spoke's
kernel to the hub's cross the tunnel, no kernel saw a bad checksum, the
runtime's per-packet counters agree with the SAs' exactly (a super-segment
counts as its packets), GSO and GRO were used, and on the wire there is
only ISAKMP and ESP."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "data" / "real"))
from real_lab import DMVPN, RealLab, ask, require_root_tools, sh, wait_for

from dmvpn.lab.netlab import seed_pair_scenario

RUN_DIR = Path("/run/dmvpn-netlab")
CSUM_COUNTERS = ("TcpInCsumErrors", "UdpInCsumErrors")


def _netlab(action: str, scenario: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, DMVPN_FORCE_NAT_T="1", DMVPN_UDP_OFFLOAD="1", DMVPN_TUN_OFFLOAD="tso")
    return subprocess.run([DMVPN, "netlab", action, str(scenario)], capture_output=True, text=True, timeout=120,
                          env=env)


@pytest.fixture
def pair(tmp_path):
    require_root_tools("iperf3", "tshark", "nstat")
    name = f"o{os.getpid()}"
    scenario = tmp_path / "lab.toml"
    scenario.write_text(seed_pair_scenario(name))
    try:
        up = _netlab("up", scenario)
        assert up.returncode == 0, up.stderr
        yield name
    finally:
        _netlab("down", scenario)
        for ns in sh("ip", "netns", "list").stdout.split():
            if ns.startswith(f"dmvpn-{name}-"):
                subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def _counters(name: str, node: str) -> dict[str, int]:
    sock = RUN_DIR / name / f"{node}.sock"
    ipsec, runtime = ask(sock, "show crypto ipsec sa"), ask(sock, "show runtime")
    tunnel = re.search(r"Tunnel0: (\d+) packets in, (\d+) packets out", runtime)
    assert tunnel is not None, runtime
    return {"encaps": sum(map(int, re.findall(r"#pkts encaps: (\d+)", ipsec))),
            "decaps": sum(map(int, re.findall(r"#pkts decaps: (\d+)", ipsec))),
            "tun_in": int(tunnel[1]), "tun_out": int(tunnel[2])}


def _iperf3(name: str, *args: str) -> dict:
    hub, spoke = f"dmvpn-{name}-hub", f"dmvpn-{name}-spoke"
    server = subprocess.Popen(["ip", "netns", "exec", hub, "iperf3", "-s", "-1", "-B", "10.2.2.1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: "10.2.2.1:5201" in sh("ip", "netns", "exec", hub, "ss", "-ltn").stdout, 10, "iperf3 -s")
        proc = sh("ip", "netns", "exec", spoke, "iperf3", "-c", "10.2.2.1", "-J", *args, check=False)
        return json.loads(proc.stdout)
    finally:
        if server.poll() is None:
            os.kill(server.pid, signal.SIGTERM)
        server.wait(10)


def _nstat(namespace: str) -> dict[str, int]:
    out = sh("ip", "netns", "exec", namespace, "nstat", "-az", *CSUM_COUNTERS).stdout
    return {f[0]: int(f[1]) for f in (line.split() for line in out.splitlines()) if f and f[0] in CSUM_COUNTERS}


def test_offloads_on_traffic_crosses_counters_exact_nothing_in_clear(pair, tmp_path):
    name = pair
    hub_ns, spoke_ns = f"dmvpn-{name}-hub", f"dmvpn-{name}-spoke"
    warm = sh("ip", "netns", "exec", spoke_ns, "ping", "-c", "3", "-i", "0.3", "-W", "2", "10.2.2.1", check=False)
    assert " 0 received" not in warm.stdout, warm.stdout
    before = {node: _counters(name, node) for node in ("spoke", "hub")}
    lab = RealLab("off")
    try:
        pcap, caplog = tmp_path / "wan.pcap", tmp_path / "tshark.log"
        capture = lab.start(hub_ns, "tshark", "-i", "gi0-0-2", "-c", "4000", "-w", str(pcap), log=caplog)
        wait_for(lambda: "Capturing on" in caplog.read_text(), 20, "tshark to start")
        tcp = _iperf3(name, "-t", "2")
        udp = _iperf3(name, "-u", "-b", "200M", "-l", "1372", "-t", "1")
        lab.stop(capture, sig=signal.SIGINT)
    finally:
        lab.cleanup()
    assert tcp["end"]["sum_received"]["bytes"] > 1_000_000, tcp.get("error")
    assert udp["end"]["sum_received"]["bytes"] > 1_000_000, udp.get("error")

    seen: list[dict[str, dict[str, int]]] = []

    def settled() -> bool:  # two looks in a row agree: nothing is in flight any more
        seen.append({node: _counters(name, node) for node in ("spoke", "hub")})
        return len(seen) > 1 and seen[-1] == seen[-2]

    wait_for(settled, 10, "the counters to settle", interval=0.3)
    after = seen[-1]
    delta = {node: {k: after[node][k] - before[node][k] for k in after[node]} for node in after}
    spoke, hub = delta["spoke"], delta["hub"]
    # every packet read from a TUN (super-segments counted as their segments) encrypted once,
    # every packet decrypted written once (coalesced writes counted as their segments)
    assert spoke["tun_in"] == spoke["encaps"] > 1000
    assert hub["decaps"] == hub["tun_out"] and hub["tun_in"] == hub["encaps"]
    assert spoke["decaps"] == spoke["tun_out"]
    # the veth between two namespaces loses nothing the hub's socket buffer could not hold
    assert 0.99 * spoke["encaps"] <= hub["decaps"] <= spoke["encaps"]
    for namespace in (hub_ns, spoke_ns):
        assert _nstat(namespace) == dict.fromkeys(CSUM_COUNTERS, 0), namespace
    spoke_runtime = ask(RUN_DIR / name / "spoke.sock", "show runtime")
    hub_runtime = ask(RUN_DIR / name / "hub.sock", "show runtime")
    gso = re.search(r"UDP GSO: (\d+) datagrams in (\d+) sends", spoke_runtime)
    gro = re.search(r"UDP GRO: (\d+) datagrams in (\d+) reads", hub_runtime)
    assert gso is not None and int(gso[2]) < int(gso[1]), spoke_runtime
    assert gro is not None and int(gro[2]) < int(gro[1]), hub_runtime
    assert "transmit errors" not in spoke_runtime + hub_runtime and "offload reads" not in spoke_runtime
    joined = re.search(r"(\d+) TCP segments written joined in (\d+) writes", hub_runtime)
    assert joined is not None and int(joined[2]) < int(joined[1]) <= hub["tun_out"], hub_runtime
    protocols = sh("tshark", "-r", str(pcap), "-T", "fields", "-e", "frame.protocols").stdout.split()
    ip_frames = [p for p in protocols if ":ip:" in p]
    assert len(ip_frames) > 100
    assert all(p.endswith((":esp", ":isakmp")) and ":udp:" in p for p in ip_frames), sorted(set(ip_frames))
