"""IKEv2 interop with strongSwan 5.9 (../shared/lab/strongswan_peer.sh with
IKE_VERSION=2): our ``dmvpn run`` daemon in namespace ``dut`` against charon
in ``swpeer``, on real sockets, charon's own view (``swanctl --list-sas
--raw``, its log) as the oracle.

kernel-libipsec forces UDP encapsulation (charon fakes its NAT detection
hash), so every run checks NAT-T for IKEv2 (RFC 7296 2.23): NAT_DETECTION_*
in IKE_SA_INIT, the float to UDP 4500 for IKE_AUTH, ESP in UDP (RFC 3948)
both ways, GRE over it (charon's GRE Echos answered by our host stack).
Then, in both roles:

- PSK authentication (2.15) and one CHILD_SA with the same SPIs on both sides;
- CHILD_SA rekeys (2.8, with PFS) started by charon (``swanctl --rekey``)
  and by us (``test crypto ipsec rekey``), IKE SA rekeys (2.18) each way;
  no GRE Echo lost, SPIs and IKE SPIs change and still agree;
- a simultaneous CHILD_SA rekey provoked on purpose (both told at once;
  PFS's DH makes each side's request slow enough to cross the other's)
  settled by 2.8.1: exactly one pair on both sides, the same one;
- DELETE both ways (1.4.1): charon's ``--terminate`` of the CHILD_SA and of
  the IKE SA empties our tables; our ``clear crypto sa`` and ``clear crypto
  ikev2 sa`` empty charon's;
- liveness (2.4) both ways, and each side declaring the other dead once it
  vanishes (SIGKILL, no DELETE).

Run under the machine's namespace lock:
``flock /tmp/dmvpn-netns.lock pytest tests/test_real_strongswan_ikev2.py``.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "data" / "real"))
from real_lab import RealLab, require_root_tools, sh, wait_for
from strongswan_lab import PEER, Dut, PeerLab, spis_agree

#: Our side: IKEv2 aes128-sha1-modp3072 (charon's default IKE proposal in the lab),
#: ESP aes128-sha256 with PFS group 15 in tunnel mode, GRE selectors from Tunnel0.
DUT_IKEV2_CONFIG = """\
hostname DUT
crypto ikev2 proposal P2
 encryption aes-cbc-128
 integrity sha1
 group 15
crypto ikev2 policy POL
 proposal P2
crypto ikev2 keyring KR
 peer SW
  address 192.0.2.2
  pre-shared-key {psk}
crypto ikev2 profile PROF
 match identity remote address 192.0.2.2 255.255.255.255
 authentication remote pre-share
 authentication local pre-share
 keyring local KR
{extra}crypto ipsec transform-set TS esp-aes esp-sha256-hmac
 mode tunnel
crypto ipsec profile P
 set transform-set TS
 set pfs group15
 set ikev2-profile PROF
interface GigabitEthernet1
 ip address 192.0.2.1 255.255.255.0
interface Tunnel0
 ip address 10.1.0.1 255.0.0.0
 tunnel source GigabitEthernet1
 tunnel destination 192.0.2.2
 tunnel protection ipsec profile P
end
"""
#: charon's side: IKEv2, the same proposals (PFS group 15 on the CHILD_SA).
IKEV2_KNOBS = {"IKE_VERSION": "2", "ESP_PROPOSAL": "aes128-sha256-modp3072"}


def _ping(peer: PeerLab, count: int) -> None:
    ping = peer.ping(count)
    assert ping.returncode == 0 and f"{count} GRE echo requests sent, {count} replies received" in ping.stdout, \
        ping.stdout[-1500:] + ping.stderr[-1500:]


def _ike_spis(peer: PeerLab) -> set[frozenset[str]]:
    """Each of charon's IKE SAs as the set of its two SPIs."""
    return {frozenset((ike["initiator-spi"], ike["responder-spi"])) for ike in peer.ike_sas()}


def _ours_ike_spis(dut: Dut) -> set[frozenset[str]]:
    """Each of our IKE SAs as the set of its two SPIs (``show crypto ikev2 sa detail``)."""
    out = dut.ask("show crypto ikev2 sa detail")
    return {frozenset((a.lower(), b.lower()))
            for a, b in re.findall(r"Local spi: ([0-9A-F]{16})\s+Remote spi: ([0-9A-F]{16})", out)}


def _one_pair_agreed(dut: Dut, peer: PeerLab) -> tuple[int, int]:
    """Exactly one CHILD_SA on each side, the same one; (our in, our out)."""
    ours_in, ours_out = spis_agree(dut, peer)
    assert len(ours_in) == len(ours_out) == 1, (ours_in, ours_out)
    [ike] = peer.ike_sas()
    assert len(ike.get("child-sas", {})) == 1, ike
    return next(iter(ours_in)), next(iter(ours_out))


def _wait_settled(dut: Dut, peer: PeerLab, before: tuple[int, int], what: str) -> tuple[int, int]:
    """After a rekey: one pair again on both sides, not ``before``."""
    def settled() -> bool:
        ours = dut.spis()
        theirs = peer.charon_spis()
        return len(ours[0]) == 1 and ours[0] != {before[0]} and ours == (theirs[1], theirs[0])
    wait_for(settled, 15, what, interval=0.2)
    return _one_pair_agreed(dut, peer)


@pytest.fixture
def peer_lab(tmp_path):
    """Factory for the (one per machine) strongSwan lab; always torn down."""
    require_root_tools("tshark", "swanctl")
    labs: list[PeerLab] = []

    def make(**knobs: str) -> PeerLab:
        lab = PeerLab(tmp_path / "lab", **IKEV2_KNOBS, **knobs)
        labs.append(lab)
        lab.up()
        return lab
    yield make
    for lab in labs:
        lab.down()
    left = sh("ip", "netns", "list").stdout.split()
    assert "dut" not in left and "swpeer" not in left, "the strongSwan lab left a namespace behind"


def _start(lab: RealLab, tmp_path: Path, peer: PeerLab, extra: str = "") -> Dut:
    dut = Dut(lab, tmp_path, DUT_IKEV2_CONFIG.format(psk=peer.facts["PSK"], extra=extra))
    dut.start()
    assert dut.ask("debug crypto ikev2") == "IKEv2 default debugging is on"
    return dut


def _establish(dut: Dut, peer: PeerLab, initiator: str) -> None:
    if initiator == "dmvpn":
        dut.ping_peer()
    else:
        out = peer.run("initiate", INITIATE_TIMEOUT="30")
        assert out.returncode == 0, out.stderr[-2000:]
    dut.wait_pair()


def _at_once(dut: Dut, peer: PeerLab, ours: str, swanctl: tuple[str, ...]) -> str:
    """Make both sides start a rekey at once, so that the two CREATE_CHILD_SA
    requests cross: our daemon is stopped (SIGSTOP) with the command
    ``ours`` already waiting on its control connection, charon is told
    ``swanctl ARGS`` and sends its request, then our daemon continues and
    reads the command (ready first) before charon's request. Our reply."""
    assert dut.proc is not None
    requests = peer.charon_log().count("generating CREATE_CHILD_SA request")
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(20)
    try:
        conn.connect(str(dut.sock))
        time.sleep(0.2)  # accepted: the command below makes the connection readable
        os.kill(dut.proc.pid, signal.SIGSTOP)
        try:
            conn.sendall(ours.encode() + b"\n")
            out = peer.swanctl(*swanctl)
            assert out.returncode == 0, out.stdout + out.stderr
            wait_for(lambda: peer.charon_log().count("generating CREATE_CHILD_SA request") > requests, 5,
                     "charon's rekey request", interval=0.02)
        finally:
            os.kill(dut.proc.pid, signal.SIGCONT)
        reply = b""
        while chunk := conn.recv(4096):
            reply += chunk
    finally:
        conn.close()
    return reply.decode().strip()


#: What charon logs when our DELETE of the old SA settles a crossing rekey it had not seen answered.
_CHARON_LOST_TO_OUR_DELETE = {
    "IKE_SA": "peer did not notice IKE_SA rekey collision, abort active rekeying",
    "CHILD_SA": "CHILD_SA rekey/delete collision, deleting redundant child",
}


def _agree_on_the_loser(dut: Dut, peer: PeerLab, kind: str, ours_kind: str, rfc: str) -> None:
    """RFC 7296 2.8.1 / 2.8.2 picks the same loser on both sides: charon
    won exactly when our new SA was the redundant one.

    charon 5.9 ignores our response while it still processes our crossing
    request of the same message ID ("ignoring request with ID N, already
    processing": milliseconds apart, so mostly on a loaded machine) and
    concludes on its retransmission 4 s later. When our new SA survives,
    our DELETE of the old SA reaches charon first, and charon concludes
    from that DELETE instead of the nonces, dropping its own new SA and
    keeping ours: its verdict "lost" in other words (ike_rekey.c
    conclude_undetected_collision, child_rekey.c's CHILD_DELETE case)."""
    log = peer.charon_log()
    charon = re.findall(rf"{kind} rekey collision (won|lost)", log)
    charon += ["lost"] * log.count(_CHARON_LOST_TO_OUR_DELETE[kind])
    ours = re.findall(rf"{ours_kind} rekey collision[^\n]*: ours [^\n]*(is redundant|survives)[^\n]*\({rfc}\)",
                      dut.log())
    assert len(charon) == len(ours) == 1, (charon, ours)
    assert (charon[0] == "won") == (ours[0] == "is redundant"), (charon, ours)


@pytest.mark.parametrize("initiator", ["dmvpn", "strongswan"], ids=["we-initiate", "strongswan-initiates"])
def test_ikev2_rekeys_collision_and_deletes_agree_with_strongswan(peer_lab, tmp_path, initiator):
    pcap = tmp_path / "wire.pcap"
    peer = peer_lab(CAPTURE_PCAP=str(pcap))
    lab = RealLab("s2")
    try:
        dut = _start(lab, tmp_path, peer)
        _establish(dut, peer, initiator)

        # NAT-T: charon faked a NAT, both sides floated to 4500, ESP in UDP.
        [ike] = peer.ike_sas()
        assert (ike["state"], ike["version"], ike["remote-port"], ike["local-port"], ike["nat-any"]) == \
            ("ESTABLISHED", "2", "4500", "4500", "yes"), ike
        assert (ike.get("initiator") == "yes") == (initiator == "strongswan"), ike
        assert (ike["encr-alg"], ike["integ-alg"], ike["prf-alg"], ike["dh-group"]) == \
            ("AES_CBC", "HMAC_SHA1_96", "PRF_HMAC_SHA1", "MODP_3072"), ike
        [child] = ike["child-sas"].values()
        assert (child["state"], child["mode"], child["encap"]) == ("INSTALLED", "TUNNEL", "yes"), child
        assert child["local-ts"] == ["192.0.2.2/32[gre]"] and child["remote-ts"] == ["192.0.2.1/32[gre]"]
        assert "NAT detected: the peer is behind a NAT" in dut.log()
        ipsec = dut.ask("show crypto ipsec sa")
        assert "Tunnel UDP-Encaps" in ipsec and f"current_peer {PEER} port 4500" in ipsec, ipsec
        assert _ours_ike_spis(dut) == _ike_spis(peer)
        pair = _one_pair_agreed(dut, peer)
        _ping(peer, 5)

        # CHILD_SA rekeys (with PFS), charon's then ours: a new pair, the old one deleted.
        term = peer.swanctl("--rekey", "--child", peer.facts["CHILD_NAME"])
        assert term.returncode == 0, term.stdout + term.stderr
        pair = _wait_settled(dut, peer, pair, "one pair after charon's CHILD_SA rekey")
        assert "Received rekey CHILD_SA request" in dut.log()
        _ping(peer, 3)
        assert dut.ask("test crypto ipsec rekey") == "1 Quick Mode(s) started"
        pair = _wait_settled(dut, peer, pair, "one pair after our CHILD_SA rekey")
        assert re.search(r"parsed CREATE_CHILD_SA request \d+ \[ N\(REKEY_SA\) SA No KE TSi TSr \]",
                         peer.charon_log()), peer.charon_log()[-3000:]
        _ping(peer, 3)

        # IKE SA rekeys (2.18), charon's then ours: new IKE SPIs, the CHILD_SA moved over.
        for who in ("strongswan", "dmvpn"):
            old_ike = _ike_spis(peer)
            if who == "strongswan":
                out = peer.swanctl("--rekey", "--ike", peer.facts["CONN_NAME"])
                assert out.returncode == 0, out.stdout + out.stderr
            else:
                assert dut.ask("test crypto ikev2 rekey") == "1 IKE SA rekey(s) started"
            wait_for(lambda old_ike=old_ike: len(peer.ike_sas()) == 1 and _ike_spis(peer) != old_ike
                     and _ours_ike_spis(dut) == _ike_spis(peer), 15,
                     f"one new IKE SA on both sides after {who}'s IKE SA rekey", interval=0.2)
            assert _one_pair_agreed(dut, peer) == pair, "the CHILD_SA did not survive the IKE SA rekey"
            _ping(peer, 3)
        assert dut.log().count("IKE SA rekeyed: new SA ID") == 2

        # Both rekey the pair at once: RFC 7296 2.8.1 leaves one pair, the same on both sides.
        assert _at_once(dut, peer, "test crypto ipsec rekey", ("--rekey", "--child", peer.facts["CHILD_NAME"])) \
            == "1 Quick Mode(s) started"
        pair = _wait_settled(dut, peer, pair, "one pair after the simultaneous CHILD_SA rekey")
        _agree_on_the_loser(dut, peer, "CHILD_SA", "CHILD_SA", "RFC 7296 2.8.1")
        _ping(peer, 3)

        # Both rekey the IKE SA at once: 2.8.2 leaves one IKE SA, the same, with the pair.
        old_ike = _ike_spis(peer)
        assert _at_once(dut, peer, "test crypto ikev2 rekey", ("--rekey", "--ike", peer.facts["CONN_NAME"])) \
            == "1 IKE SA rekey(s) started"
        wait_for(lambda: len(peer.ike_sas()) == 1 and _ike_spis(peer) != old_ike
                 and _ours_ike_spis(dut) == _ike_spis(peer), 20,  # 10 s when charon drops our answer (see engine)
                 "one IKE SA on both sides after the simultaneous IKE SA rekey", interval=0.2)
        _agree_on_the_loser(dut, peer, "IKE_SA", "IKE SA", "RFC 7296 2.8.2")
        # charon lists the redundant IKE SA (REKEYED) until the loser's DELETE of it is done: wait that out.
        time.sleep(0.5)
        wait_for(lambda: len(peer.ike_sas()) == 1 and _ours_ike_spis(dut) == _ike_spis(peer), 12,
                 "the redundant IKE SA to go", interval=0.2)
        assert _one_pair_agreed(dut, peer) == pair
        _ping(peer, 3)
        log = dut.log()
        assert "engine error" not in log and "RECVD_PKT_INV_SPI" not in log, log[-3000:]

        # charon deletes the CHILD_SA, then (after a new one) the IKE SA: all gone here.
        term = peer.swanctl("--terminate", "--child", peer.facts["CHILD_NAME"])
        assert term.returncode == 0, term.stdout + term.stderr
        wait_for(lambda: dut.spis() == (set(), set()), 10, "our pair to go after charon's DELETE", interval=0.2)
        assert "Received DELETE for IPsec SA" in dut.log() and len(_ours_ike_spis(dut)) == 1
        if initiator == "dmvpn":
            dut.ping_peer()
        else:
            again = peer.swanctl("--initiate", "--child", peer.facts["CHILD_NAME"], "--timeout", "20")
            assert again.returncode == 0, again.stdout + again.stderr
        dut.wait_pair()
        _one_pair_agreed(dut, peer)
        term = peer.swanctl("--terminate", "--ike", peer.facts["CONN_NAME"])
        assert term.returncode == 0, term.stdout + term.stderr
        wait_for(lambda: not _ours_ike_spis(dut) and dut.spis() == (set(), set()), 10,
                 "our SAs to go after charon's IKE SA DELETE", interval=0.2)
        assert "Received DELETE for the IKEv2 SA" in dut.log() and peer.ike_sas() == []

        # Ours -> charon: clear crypto sa closes its CHILD_SA, clear crypto ikev2 sa its IKE SA.
        _establish(dut, peer, initiator)
        [last_in], _ = spis_agree(dut, peer)
        dut.ask("clear crypto sa")
        wait_for(lambda: all(not ike.get("child-sas") for ike in peer.ike_sas()), 10, "charon to close the CHILD_SA")
        assert f"received DELETE for ESP CHILD_SA with SPI {last_in:08x}" in peer.charon_log()
        assert len(peer.ike_sas()) == 1
        dut.ask("clear crypto ikev2 sa")
        wait_for(lambda: peer.ike_sas() == [], 10, "charon to close the IKE SA")
        assert "received DELETE for IKE_SA" in peer.charon_log()
        assert dut.stop() == 0
    finally:
        lab.cleanup()
    down = peer.down()  # stops the capture so the pcap is complete
    assert down.returncode == 0, down.stderr
    _assert_only_udp_500_and_4500(pcap)


def _assert_only_udp_500_and_4500(pcap: Path) -> None:
    """On the wire: IKE on 500 only for IKE_SA_INIT, everything else (IKE and ESP) in UDP 4500."""
    rows = sh("tshark", "-r", str(pcap), "-Y", "ip", "-T", "fields", "-e", "ip.proto", "-e", "udp.port",
              "-e", "isakmp.exchangetype").stdout.splitlines()
    frames = [row.split("\t") for row in rows]
    assert frames, "nothing captured"
    for proto, ports, exchange in frames:
        assert proto == "17", frames
        assert ports in ("500,500", "4500,4500"), (proto, ports, exchange)
        if ports == "500,500":
            assert exchange == "34", (proto, ports, exchange)  # IKE_SA_INIT
    assert sum(1 for _, ports, exchange in frames if ports == "4500,4500" and not exchange) >= 20  # ESP in UDP


def test_ikev2_liveness_and_dead_peer_detection_both_ways(peer_lab, tmp_path):
    # charon: a liveness check after 3 s of silence; 3 retransmissions 1 s apart, then dead.
    peer = peer_lab(DPD_DELAY="3", CHARON_EXTRA="retransmit_timeout = 1\nretransmit_base = 1\nretransmit_tries = 3")
    lab = RealLab("s2")
    try:
        dut = _start(lab, tmp_path, peer, extra=" dpd 10 2 periodic\n")
        _establish(dut, peer, "dmvpn")

        # charon -> us: an empty INFORMATIONAL, answered.
        wait_for(lambda: "Received DPD/liveness query; answering" in dut.log(), 10, "charon's liveness check",
                 interval=0.2)
        wait_for(lambda: re.search(r"parsed INFORMATIONAL response \d+ \[ \]", peer.charon_log()), 5,
                 "charon to parse our answer", interval=0.2)

        # us -> charon: our Echos keep charon's inbound busy (so it stays silent)
        # while nothing comes back to us: after 10 s we check, charon answers.
        dut.ask("ping 10.2.0.1 repeat 12 timeout 2")
        wait_for(lambda: "Received DPD/liveness response" in dut.log(), 25, "charon's answer to our check",
                 interval=0.2)
        assert re.search(r"parsed INFORMATIONAL request \d+ \[ \]", peer.charon_log())
        assert len(peer.ike_sas()) == 1 and all(dut.spis())

        # We vanish: charon's check goes unanswered and it deletes the IKE SA.
        killed = time.monotonic()
        dut.stop(sig=signal.SIGKILL)
        wait_for(lambda: "giving up after 3 retransmits" in peer.charon_log(), 20, "charon to give up on us",
                 interval=0.5)
        wait_for(lambda: peer.ike_sas() == [], 10, "charon to remove our IKE_SA", interval=0.5)
        assert time.monotonic() - killed < 20

        # A fresh daemon and tunnel; charon vanishes: after 10 s of silence our check
        # and its 5 retries 2 s apart go unanswered, the SAs go.
        dut.start()
        assert dut.ask("debug crypto ikev2") == "IKEv2 default debugging is on"
        _establish(dut, peer, "dmvpn")
        os.kill(int(peer.facts["CHARON_PID"]), signal.SIGKILL)
        killed = time.monotonic()
        wait_for(lambda: "Maximum number of retransmissions reached" in dut.log(), 40,
                 "us to declare charon dead", interval=0.5)
        assert 10 <= time.monotonic() - killed <= 30
        log = dut.log()
        assert "did not answer INFORMATIONAL (liveness): deleting the IKE SA" in log
        assert not _ours_ike_spis(dut) and dut.spis() == (set(), set())
        assert dut.stop() == 0
    finally:
        lab.cleanup()
