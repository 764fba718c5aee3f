"""Crypto maps in real mode: the kernel routes LAN traffic into the crypto
map's TUN device, ``dmvpn run`` protects it in tunnel mode, and the
decrypted packets come back out of the TUN on the far side
(:mod:`dmvpn.node.crypto_map`).

* dmvpn <-> dmvpn in two namespaces of our own: kernel ``ping -I`` both
  ways between the sites' loopback addresses; tshark on the veth sees only
  ISAKMP and ESP.
* dmvpn <-> strongSwan 5.9 (../shared/lab/strongswan_peer.sh, TS_MODE=inner:
  10.1.0.1/32 <-> 10.2.0.1/32, NAT-T forced so ESP rides in UDP 4500), our
  daemon initiating and responding: a kernel ping from ``dut`` and
  strongSwan's own ping both all answered. That lab has fixed namespaces:
  run this file as ``flock /tmp/swpeer.lock .venv/bin/python -m pytest -q
  tests/test_real_crypto_map.py``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "data" / "real"))
from real_lab import DMVPN, RealLab, ask, require_root_tools, sh, wait_control, wait_for

DATA = Path(__file__).parent / "data" / "crypto_map"
PEER_SCRIPT = Path(__file__).resolve().parents[2] / "shared" / "lab" / "strongswan_peer.sh"
CHARON = Path("/usr/lib/ipsec/charon")


def _ping(ns: str, src: str, dst: str, count: int, check: bool = True) -> subprocess.CompletedProcess:
    """The kernel's ping in ``ns`` from ``src``: all answered unless ``check`` is off."""
    proc = subprocess.run(["ip", "netns", "exec", ns, "ping", "-n", "-c", str(count), "-i", "0.2", "-W", "2",
                           "-I", src, dst], capture_output=True, text=True, timeout=60)
    if check:
        assert f"{count} packets transmitted, {count} received" in proc.stdout, proc.stdout + proc.stderr
    return proc


def _trigger(ns: str, src: str, dst: str, sock: Path) -> None:
    """The first packets start IKE (dropped meanwhile, as IOS does); wait for the SA pair."""
    _ping(ns, src, dst, 1, check=False)
    wait_for(lambda: "current outbound spi: 0x0" not in ask(sock, "show crypto ipsec sa")
             and "current outbound spi" in ask(sock, "show crypto ipsec sa"), 20, "the IPsec SA pair")


def test_daemon_spec_gives_each_crypto_map_interface_an_unnumbered_tun_with_routes():
    from ipaddress import IPv4Network

    from dmvpn.config import load_config
    from dmvpn.runtime.real.daemon import router_spec
    from dmvpn.runtime.real.tun import TunSpec

    spec = router_spec(load_config(str(DATA / "real_a.cfg")), control=None, tun_name="cm")
    assert [u.iface for u in spec.underlay] == ["GigabitEthernet1"]
    assert spec.tuns == [TunSpec("kernel:GigabitEthernet1", "cm", None, 1400,
                                 ((IPv4Network("10.2.0.0/24"), None), (IPv4Network("10.2.2.1/32"), None)))]


def test_dmvpn_sites_kernel_ping_through_the_crypto_map_tuns(tmp_path):
    require_root_tools("tshark", "ping")
    lab = RealLab("cm")
    try:
        a, b = lab.netns("a"), lab.netns("b")
        lab.veth(a, "wan0", "192.0.2.1/24", b, "wan0", "192.0.2.2/24")
        sh("ip", "-n", a, "addr", "add", "10.1.0.1/32", "dev", "lo")
        sh("ip", "-n", b, "addr", "add", "10.2.0.1/32", "dev", "lo")
        pcap, caplog = tmp_path / "wan.pcap", tmp_path / "tshark.log"
        capture = lab.start(a, "tshark", "-i", "wan0", "-w", str(pcap), log=caplog)
        wait_for(lambda: "Capturing on" in caplog.read_text(), 20, "tshark to start")
        socks = {}
        for ns, site in ((a, "a"), (b, "b")):
            socks[site] = tmp_path / f"{site}.sock"
            log = tmp_path / f"{site}.log"
            proc = lab.start(ns, DMVPN, "run", str(DATA / f"real_{site}.cfg"), "--control", str(socks[site]),
                             "--tun-name", f"cm{site}", log=log)
            wait_control(socks[site], proc, log)
        assert "inet" not in sh("ip", "-n", a, "-o", "addr", "show", "dev", "cma").stdout   # unnumbered
        routes = sh("ip", "-n", a, "route", "show", "dev", "cma").stdout
        assert "10.2.0.0/24" in routes and "10.2.2.1" in routes, routes

        _trigger(a, "10.1.0.1", "10.2.0.1", socks["a"])
        _ping(a, "10.1.0.1", "10.2.0.1", 3)
        _ping(b, "10.2.0.1", "10.1.0.1", 3)
        ipsec = ask(socks["b"], "show crypto ipsec sa")
        assert "Crypto map tag: CM, local addr 192.0.2.2" in ipsec
        assert "local  ident (addr/mask/prot/port): (10.2.0.0/255.255.255.0/0/0)" in ipsec
        assert int(re.search(r"#pkts decaps: (\d+)", ipsec).group(1)) >= 6, ipsec
        assert "in use settings ={Tunnel, }" in ipsec
        # not in the ACL: the kernel has no route into the TUN for it, nothing crosses
        assert _ping(a, "10.1.0.1", "10.2.9.9", 1, check=False).returncode != 0
        wait_for(lambda: _count(pcap, "esp") >= 12, 15, "12 ESP packets in the capture")
        lab.stop(capture, sig=signal.SIGINT)
    finally:
        lab.cleanup()
    protocols = sh("tshark", "-r", str(pcap), "-T", "fields", "-e", "frame.protocols").stdout.split()
    ip_frames = [p for p in protocols if ":ip:" in p]
    assert any(p.endswith(":isakmp") for p in ip_frames) and sum(p.endswith(":esp") for p in ip_frames) >= 12
    assert all(p.endswith((":udp:isakmp", ":esp")) for p in ip_frames), sorted(set(ip_frames))


def _count(pcap: Path, display_filter: str) -> int:
    out = subprocess.run(["tshark", "-r", str(pcap), "-Y", display_filter, "-T", "fields", "-e", "frame.number"],
                         capture_output=True, text=True, timeout=60)
    return len(out.stdout.split())


def _peer(lab_dir: Path, action: str, **env: str) -> subprocess.CompletedProcess:
    environ = dict(os.environ, LAB_DIR=str(lab_dir), TS_MODE="inner", INSTALL_PKGS="0", **env)
    return subprocess.run(["bash", str(PEER_SCRIPT), action], capture_output=True, text=True, timeout=180,
                          env=environ)


@pytest.fixture(params=["dmvpn", "strongswan"], ids=["we-initiate", "strongswan-initiates"])
def strongswan(request, tmp_path):
    require_root_tools("ping")
    assert PEER_SCRIPT.exists(), f"{PEER_SCRIPT} is missing"
    assert CHARON.exists(), "strongSwan is not installed: run scripts/setup.sh"
    existing = sh("ip", "netns", "list").stdout.split()
    assert "dut" not in existing and "swpeer" not in existing, \
        "namespaces dut/swpeer exist: another strongswan_peer.sh lab is up (one per machine)"
    lab_dir = tmp_path / "lab"
    try:
        up = _peer(lab_dir, "up", INITIATE="1" if request.param == "strongswan" else "0")
        assert up.returncode == 0, up.stderr[-2000:]
        facts = dict(re.findall(r"^([A-Z0-9_]+)=(.*)$", up.stdout, re.M))
        yield request.param, lab_dir, facts
    finally:
        _peer(lab_dir, "down")


def test_crypto_map_daemon_interoperates_with_strongswan(strongswan, tmp_path):
    initiator, lab_dir, facts = strongswan
    config = tmp_path / "dut.cfg"
    config.write_text((DATA / "strongswan_dut.cfg").read_text().replace("PSK", facts["PSK"].strip("'\"")))
    sock, log = tmp_path / "dut.sock", tmp_path / "dut.log"
    lab = RealLab("swcm")
    try:
        daemon = lab.start("dut", DMVPN, "run", str(config), "--control", str(sock), "--tun-name", "cm-dut",
                           log=log)
        wait_control(sock, daemon, log)
        if initiator == "dmvpn":
            _trigger("dut", "10.1.0.1", "10.2.0.1", sock)
        else:
            result = lab_dir / "initiate.result"
            wait_for(lambda: result.exists() and result.read_text().strip() != "running", 60, "charon's initiate")
            assert result.read_text().strip() == "ok", (lab_dir / "initiate.log").read_text()[-2000:]
        wait_for(lambda: "Tunnel UDP-Encaps" in ask(sock, "show crypto ipsec sa"), 20, "the IPsec SA pair")
        _ping("dut", "10.1.0.1", "10.2.0.1", 3)
        ping = _peer(lab_dir, "ping", COUNT="3")
        assert ping.returncode == 0, ping.stdout + ping.stderr
        sas = _peer(lab_dir, "sas").stdout
        assert "INSTALLED, TUNNEL-in-UDP" in sas and re.search(r"local  10.2.0.1/32\s+remote 10.1.0.1/32", sas), sas
        ipsec = ask(sock, "show crypto ipsec sa")
        spi_in, spi_out = re.search(r"\bin  ([0-9a-f]{8}),.*\n\s+out ([0-9a-f]{8}),", sas).groups()
        ours_out = re.search(r"current outbound spi: 0x[0-9A-F]+\((\d+)\)", ipsec).group(1)
        ours = {int(n) for n in re.findall(r"spi: 0x[0-9A-F]+\((\d+)\)", ipsec)}
        assert int(ours_out) == int(spi_in, 16) and int(spi_out, 16) in ours, (sas, ipsec)
        assert "remote ident (addr/mask/prot/port): (10.2.0.1/255.255.255.255/0/0)" in ipsec
        assert int(re.search(r"#pkts decaps: (\d+)", ipsec).group(1)) >= 6, ipsec
        assert lab.stop(daemon) == 0
    finally:
        lab.cleanup()
