"""Interop with strongSwan 5.9 (the reference peer of ../shared/lab/): our
``dmvpn run`` daemon in namespace ``dut`` against charon in ``swpeer``.

strongSwan's userspace data plane forces NAT-T and tunnel mode, so this
checks, on real sockets: IKEv1 Main Mode with NAT-D and the float to UDP
4500 (RFC 3947), Quick Mode with UDP-encapsulated tunnel mode, ESP in UDP
both ways (RFC 3948), GRE over it (strongswan_peer.sh ``ping`` with
TS_MODE=gre sends GRE-encapsulated Echos that our router's host stack
answers), the DELETE our daemon sends when it stops, and that the wire
carries nothing but UDP 500/4500.
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
from real_lab import DMVPN, RealLab, ask, finished_ping, require_root_tools, sh, wait_control, wait_for  # noqa: E402

PEER_SCRIPT = Path(__file__).resolve().parents[2] / "shared" / "lab" / "strongswan_peer.sh"
CHARON = Path("/usr/lib/ipsec/charon")

DUT_CONFIG = """\
hostname DUT
crypto isakmp policy 10
 encr aes 128
 hash sha
 authentication pre-share
 group 15
crypto isakmp key {psk} address 192.0.2.2
crypto ipsec transform-set TS esp-aes esp-sha256-hmac
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


def _peer(lab_dir: Path, action: str, **env: str) -> subprocess.CompletedProcess:
    environ = dict(os.environ, LAB_DIR=str(lab_dir), TS_MODE="gre", INSTALL_PKGS="0", **env)
    return subprocess.run(["bash", str(PEER_SCRIPT), action], capture_output=True, text=True, timeout=180,
                          env=environ)


@pytest.fixture(params=["dmvpn", "strongswan"], ids=["we-initiate", "strongswan-initiates"])
def strongswan(request, tmp_path):
    require_root_tools("tshark")
    assert PEER_SCRIPT.exists(), f"{PEER_SCRIPT} is missing"
    assert CHARON.exists(), "strongSwan is not installed: run scripts/setup.sh"
    existing = sh("ip", "netns", "list").stdout.split()
    assert "dut" not in existing and "swpeer" not in existing, \
        "namespaces dut/swpeer exist: another strongswan_peer.sh lab is up (one per machine)"
    lab_dir, pcap = tmp_path / "lab", tmp_path / "wire.pcap"
    try:
        up = _peer(lab_dir, "up", CAPTURE_PCAP=str(pcap), INITIATE="1" if request.param == "strongswan" else "0")
        assert up.returncode == 0, up.stderr[-2000:]
        facts = dict(re.findall(r"^([A-Z0-9_]+)=(.*)$", up.stdout, re.M))
        yield request.param, lab_dir, pcap, facts
    finally:
        _peer(lab_dir, "down")


def test_dmvpn_daemon_interoperates_with_strongswan(strongswan, tmp_path):
    initiator, lab_dir, pcap, facts = strongswan
    psk = facts["PSK"].strip("'\"")
    config = tmp_path / "dut.cfg"
    config.write_text(DUT_CONFIG.format(psk=psk))
    sock, log = tmp_path / "dut.sock", tmp_path / "dut.log"
    lab = RealLab("sw")
    try:
        daemon = lab.start("dut", DMVPN, "run", str(config), "--control", str(sock), "--tun-name", "tun-dut",
                           log=log)
        wait_control(sock, daemon, log)
        if initiator == "dmvpn":  # a ping from our host stack over Tunnel0 needs an SA
            ask(sock, "ping 10.2.0.1 repeat 1 timeout 1")
            finished_ping(sock)
            dst, src = "192.0.2.2", "192.0.2.1"
        else:  # strongswan_peer.sh retries until our UDP 500 answers
            result = lab_dir / "initiate.result"
            wait_for(lambda: result.exists() and result.read_text().strip() != "running", 60, "charon's initiate")
            assert result.read_text().strip() == "ok", (lab_dir / "initiate.log").read_text()[-2000:]
            dst, src = "192.0.2.1", "192.0.2.2"
        wait_for(lambda: "Tunnel UDP-Encaps" in ask(sock, "show crypto ipsec sa"), 20, "the IPsec SA pair")
        isakmp = ask(sock, "show crypto isakmp sa")
        assert re.search(rf"{re.escape(dst)}\s+{re.escape(src)}\s+QM_IDLE\s+\d+ ACTIVE", isakmp), isakmp
        assert "current_peer 192.0.2.2 port 4500" in ask(sock, "show crypto ipsec sa")

        # strongSwan sends GRE(ICMP echo 10.2.0.1 -> 10.1.0.1) through its tunnel; we answer.
        ping = _peer(lab_dir, "ping", COUNT="3")
        assert ping.returncode == 0 and "3 GRE echo requests sent, 3 replies received" in ping.stdout, \
            ping.stdout + ping.stderr
        sas = _peer(lab_dir, "sas").stdout
        assert "ESTABLISHED, IKEv1" in sas and "INSTALLED, TUNNEL-in-UDP" in sas, sas
        assert "192.0.2.1[4500]" in sas
        ipsec = ask(sock, "show crypto ipsec sa")
        decaps = int(re.search(r"#pkts decaps: (\d+)", ipsec).group(1))
        assert decaps >= 3, ipsec

        assert lab.stop(daemon) == 0
        charon_log = Path(facts["CHARON_LOG"].strip("'\"")).read_text()
        assert "received DELETE for ESP CHILD_SA" in charon_log
    finally:
        lab.cleanup()
    down = _peer(lab_dir, "down")  # stops the capture so the pcap is complete
    assert down.returncode == 0, down.stderr
    rows = sh("tshark", "-r", str(pcap), "-Y", "ip", "-T", "fields", "-e", "ip.src", "-e", "ip.proto",
              "-e", "udp.port", "-e", "icmp.type").stdout.splitlines()
    frames = [row.split("\t") for row in rows]
    assert frames, "nothing captured"
    last_ours = max(i for i, (src, proto, _, _) in enumerate(frames) if (src, proto) == ("192.0.2.1", "17"))
    for i, (src, proto, ports, icmp_type) in enumerate(frames):
        if proto == "17":
            assert set(ports.split(",")) <= {"500", "4500"}, frames[i]
        else:  # only once our daemon is gone: its kernel refuses charon's late answer (port unreachable)
            outer = (src.split(",")[0], proto.split(",")[0], icmp_type.split(",")[0])
            assert outer == ("192.0.2.1", "1", "3") and i > last_ours, frames[i]
    assert sum(ports == "4500,4500" for _, proto, ports, _ in frames if proto == "17") >= 8
