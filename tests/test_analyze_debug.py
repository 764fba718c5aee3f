"""The debug-log reader and the segmentation of ``dmvpn analyze``: the
line forms IOS and IOS-XE print, Quick Modes and their roles, collisions,
the common failures, and commands found by prompt or by shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyze_support import SEED
from dmvpn.analyze.debuglog import parse_debug, parse_line
from dmvpn.analyze.diagnosis import diagnose
from dmvpn.analyze.render import render_text
from dmvpn.analyze.report import analyse_sides
from dmvpn.analyze.segment import Kind, segment
from dmvpn.analyze.text import Line, split_lines


def _line(text: str) -> Line:
    return Line("t", 1, text)


@pytest.mark.parametrize("text, stamp, conn, facility, message", [
    ("Sep  7 23:11:13: ISAKMP: (79859):purging node 1383603721",
     "Sep  7 23:11:13", "79859", "ISAKMP", "purging node 1383603721"),
    ("*Sep  7 23:11:13.123: ISAKMP:(1001):Old State = IKE_QM_READY  New State = IKE_QM_I_QM1",
     "Sep  7 23:11:13.123", "1001", "ISAKMP", "Old State = IKE_QM_READY  New State = IKE_QM_I_QM1"),
    ("000123: Sep  7 23:11:13.456 UTC: ISAKMP-PAK: (1001):received packet from 10.0.0.2 dport 500",
     "Sep  7 23:11:13.456", "1001", "ISAKMP-PAK", "received packet from 10.0.0.2 dport 500"),
    ("Sep  7 23:11:14 hub-rtr 4711: Sep  7 23:11:13.789: ISAKMP: (1001):set new node 0 to QM_IDLE",
     "Sep  7 23:11:13.789", "1001", "ISAKMP", "set new node 0 to QM_IDLE"),
    ("ISAKMP (0:1001): beginning Quick Mode exchange, M-ID of 42", "", "0:1001", "ISAKMP",
     "beginning Quick Mode exchange, M-ID of 42"),
    ("ISAKMP:(0:1:SW:1):Checking IPSec proposal 1", "", "0:1:SW:1", "ISAKMP", "Checking IPSec proposal 1"),
    ("00:12:34: IPSEC(key_engine): got a queue event with 1 KMI message(s)", "00:12:34", None, "IPSEC",
     "got a queue event with 1 KMI message(s)"),
    ("Sep 7 2024 23:11:13.001: %CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid spi",
     "Sep 7 2024 23:11:13.001", None, "%CRYPTO-4-RECVD_PKT_INV_SPI",
     "decaps: rec'd IPSEC packet has invalid spi"),
])
def test_line_forms(text: str, stamp: str, conn: str | None, facility: str, message: str) -> None:
    d = parse_line(_line(text))
    assert d is not None
    assert (d.stamp, d.conn, d.facility, d.message) == (stamp, conn, facility, message)


def test_milliseconds_and_dates_give_times() -> None:
    a = parse_line(_line("Sep  7 23:11:13.250: ISAKMP:(1):x"))
    b = parse_line(_line("Sep  8 00:00:01: ISAKMP:(1):x"))
    assert a and b and a.time is not None and b.time is not None
    assert b.time - a.time == pytest.approx(48 * 60 + 47.75)


def test_vpi_kilobyte_lifetime() -> None:
    log = parse_debug(split_lines(
        "ISAKMP:(1):beginning Quick Mode exchange, M-ID of 7\n"
        "ISAKMP:(1):      SA life type in kilobytes\n"
        "ISAKMP:(1):      SA life duration (VPI) of  0x0 0x46 0x50 0x0\n", "t"))
    (qm,) = log.quick_modes()
    assert (qm.role, qm.life_kilobytes, qm.kilobyte_life_offered) == ("initiator", 4_608_000, True)


def _qm(side_addr: str, peer: str, msgid: int, at: str, role: str) -> str:
    start = (f"Sep  7 {at}: ISAKMP: (9):beginning Quick Mode exchange, M-ID of {msgid}\n"
             f"Sep  7 {at}: ISAKMP: (9):QM Initiator gets spi\n" if role == "initiator" else
             f"Sep  7 {at}: ISAKMP: (9):set new node {msgid} to QM_IDLE\n"
             f"Sep  7 {at}: ISAKMP: (9):QM Responder gets spi\n")
    return (start + f"Sep  7 {at}: ISAKMP-PAK: (9):sending packet to {peer} my_port 500 peer_port 500 (R) QM_IDLE\n"
            f"Sep  7 {at}: ISAKMP: (9):Node {msgid}, Input = IKE_MESG_FROM_PEER, IKE_QM_EXCH\n"
            f"Sep  7 {at}: ISAKMP: (9):Old State = IKE_QM_I_QM1  New State = IKE_QM_PHASE2_COMPLETE\n"
            f"Sep  7 {at}: ISAKMP: (9):SA has outstanding requests  (local {side_addr} port 500, "
            f"remote {peer} port 500)\n")


def test_collision_both_sides_start_within_a_round_trip() -> None:
    a = (_qm("10.0.0.1", "10.0.0.2", 111, "10:00:00", "initiator")
         + _qm("10.0.0.1", "10.0.0.2", 222, "10:00:00", "responder"))
    b = (_qm("10.0.0.2", "10.0.0.1", 222, "10:00:01", "initiator")
         + _qm("10.0.0.2", "10.0.0.1", 111, "10:00:01", "responder"))
    report = analyse_sides({"A": [("a", a.encode())], "B": [("b", b.encode())]})
    qms = {q.msgid: q for q in report.exchanges.quick_modes}
    assert (qms[111].initiator, qms[222].initiator) == ("A", "B")
    assert qms[111].collision_with == 222 and qms[222].collision_with == 111
    assert report.exchanges.clock_offsets == {"A": 0.0, "B": 1.0}  # B's clock is 1 s ahead
    d = diagnose(report)
    assert d.collisions == 1 and any("collided" in h for h in d.happening)


@pytest.mark.parametrize("message, failure", [
    ("phase 2 SA policy not acceptable! (local 10.0.0.1 remote 10.0.0.2)", "proposal not chosen"),
    ("atts not acceptable. Next payload is 0", "proposal not chosen"),
    ("IPSec policy invalidated proposal with error 256", "proposal not chosen"),
    ("PFS group mismatch", "PFS mismatch"),
    ("decrypt: replay check failed connection id=1", "replay check failed"),
    ("received packet with invalid spi 0x1234", "invalid SPI"),
    ("Hash verification failed", "hash verification failed"),
    ('deleting node 5 error TRUE reason "Death by retransmission P2"', "retransmission exhaustion"),
    ("retransmitting phase 2 QM_IDLE      ...", "retransmitting"),
])
def test_failures_recognised(message: str, failure: str) -> None:
    report = analyse_sides({"r": [("r", f"Sep  7 10:00:00: ISAKMP:(1):{message}\n".encode())]})
    found = {f.meaning.name: f for f in report.sides[0].found}
    assert failure in found and found[failure].meaning.failure
    d = diagnose(report)
    assert any(failure in h for h in d.happening) and any(failure in w for w in d.why)


def test_prompts_split_commands_and_name_the_router() -> None:
    text = ("HUB#sh cry isa sa\nIPv4 Crypto ISAKMP SA\ndst             src             state          conn-id status\n"
            "10.0.0.2        10.0.0.1        QM_IDLE           1001 ACTIVE\n\n"
            "HUB#show version\nCisco IOS XE Software, Version 16.12.05\n"
            "HUB#sh dmvpn\n")
    blocks, unread = segment(split_lines(text, "t"))
    assert [b.kind for b in blocks] == [Kind.ISAKMP_SA, Kind.OTHER]  # the empty show dmvpn is dropped
    assert blocks[0].host == "HUB" and blocks[0].command == "sh cry isa sa" and not unread
    report = analyse_sides({"r": [("t", text.encode())]})
    assert report.sides[0].hostname == "HUB" and report.sides[0].tables.isakmp[0].conn_id == 1001
    assert report.sides[0].not_analysed == ["t:7: show version (1 lines): not analysed"]


def test_shapes_without_prompts() -> None:
    text = ("interface: Tunnel0\n    Crypto map tag: X-head-1, local addr 1.1.1.1\n"
            "Sep  7 23:11:13: ISAKMP: (1):purging node 5\n"
            "IPSEC profile P\n        Security association lifetime: 4608000 kilobytes/3600 seconds\n"
            "hostname R1\n!\ncrypto isakmp policy 1\n")
    blocks, _ = segment(split_lines(text, "t"))
    assert [b.kind for b in blocks] == [Kind.IPSEC_SA, Kind.DEBUG, Kind.IPSEC_PROFILE, Kind.CONFIG]


DATA = Path(__file__).parent / "data" / "analyze"


def test_debug_crypto_ipsec_events_and_their_continuation_lines() -> None:
    """``IPSEC(create_sa)`` / ``IPSEC(delete_sa)`` with their indented lines
    (written for this test in the form IOS prints)."""
    report = analyse_sides({"hub": [("show", (SEED / "hub_show_crypto_ipsec_sa_peer.txt").read_bytes()),
                                    ("dbg", (DATA / "hub_debug_crypto_ipsec.txt").read_bytes())]})
    side = report.sides[0]
    assert not side.unread
    assert [(e.action, e.spi, e.conn_id, e.dest) for e in side.debug.ipsec] == [
        ("created", "0x4F73B083", 19697, "172.17.3.2"), ("deleted", "0x83877863", 19689, "172.17.3.2")]
    text = render_text(report, diagnose(report))
    assert "IPsec created SA 0x4F73B083 (conn id 19697: the current pair in the SA table)" in text


def test_collision_seen_in_the_sa_table() -> None:
    """Two pairs 1 s apart, one carrying the traffic, one never used."""
    report = analyse_sides({"r": [("t", (DATA / "collision_ipsec_sa.txt").read_bytes())]})
    (a,) = report.sides[0].analyses
    assert [(p.conn_ids, p.role, p.age_s) for p in a.pairs] == [("13/14", "current", 299), ("11/12", "orphan", 300)]
    assert a.pairs[0].collision_with == 1 and a.pairs[1].collision_with == 0
    d = diagnose(report)
    assert d.collisions == 1 and any("a collision" in h for h in d.happening)
    assert any("not load balancing" in w for w in d.why)


def test_show_crypto_ikev2_sa() -> None:
    """A sample written for this test in the IOS-XE form (no oracle has one)."""
    report = analyse_sides({"hub": [("t", (DATA / "show_crypto_ikev2_sa.txt").read_bytes())]})
    (sa,) = report.sides[0].tables.ikev2
    assert (sa.local, sa.remote, sa.status, sa.lifetime_s, sa.active_s) == \
        ("172.17.3.1/500", "172.17.3.2/500", "READY", 86400, 735)
    assert not report.sides[0].unread
    assert "172.17.3.1/500 -> 172.17.3.2/500 READY, 12 min old" in render_text(report, diagnose(report))


def test_settings_that_differ_between_the_routers() -> None:
    hub = (SEED / "hub.cfg").read_bytes()
    spoke = (SEED / "spoke.cfg").read_bytes().replace(
        b" set transform-set ipsec-transset-ENS", b" set transform-set ipsec-transset-ENS\n set pfs group14")
    report = analyse_sides({"hub": [("hub.cfg", hub)], "spoke": [("spoke.cfg", spoke)]})
    (line,) = [h for h in diagnose(report).happening if h.startswith("Settings:")]
    assert "PFS differs in profile ENS_ipsec_profile: HUB N, SPOKE1 group14" in line
    same = analyse_sides({"hub": [("hub.cfg", hub)], "spoke": [("spoke.cfg", (SEED / "spoke.cfg").read_bytes())]})
    assert not [h for h in diagnose(same).happening if h.startswith("Settings:")]
