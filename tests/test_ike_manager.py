"""The key-manager seam: the version demux, the shared transport, the
IPsec SA pair's transition table and the views the show adapter reads.

Oracles: tcpdump's IKEv1 and IKEv2 captures (the demux must tell them apart
as tcpdump's own .out files label them), RFC 7296 section 3.1's header
layout, and the profile's documented IOS retransmission schedule.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dmvpn.ike.engine import Ikev1Engine
from dmvpn.ike.manager import IKEV1_MAJOR, IKEV2_MAJOR, ike_major_version
from dmvpn.ike.profiles import get_profile
from dmvpn.ike.states import ChildEvent, ChildState, IllegalTransition, QuickModeState
from dmvpn.ike.transport import IkeTransport, MessageIds, Retransmit, RetransmitTimers
from dmvpn.ipsec.sa import Selector
from dmvpn.show.views import CryptoSessionView, IsakmpSaState
from dmvpn.wire.isakmp import IKE_PORT, NAT_T_PORT
from dmvpn.wire.pcap_reader import read_frames, udp_datagram
from ike_harness import HUB, SPOKE, IkeNet, seed_text

PCAPS = Path(__file__).resolve().parents[2] / "shared" / "oracles" / "pcaps" / "tcpdump"


def _negotiated(seed: int) -> tuple[IkeNet, Ikev1Engine]:
    """A hub and a spoke from the seed configs, after the hub's traffic made one pair."""
    net = IkeNet(seed)
    hub = net.add(HUB, seed_text("hub.cfg"))
    net.add(SPOKE, seed_text("spoke.cfg"))
    hub.acquire(net.now, hub.child_policies[0], SPOKE, HUB, Selector.hosts(HUB, SPOKE, 47))
    net.run(5.0)
    return net, hub


def _ike_payloads(name: str) -> list[bytes]:
    out = []
    for frame in read_frames(PCAPS / name):
        d = udp_datagram(frame)
        if d is not None and IKE_PORT in (d.sport, d.dport):
            out.append(d.payload)
    assert out, f"{name}: no UDP 500 datagrams"
    return out


def test_version_demux_on_tcpdump_captures() -> None:
    assert {ike_major_version(p) for p in _ike_payloads("ISAKMP_sa_setup.pcap")} == {IKEV1_MAJOR}
    # tcpdump's decode of the IKEv2 capture prints "isakmp 2.0" for each message
    printed = [int(v) for v in re.findall(r"> [\d.]+: isakmp (\d)\.\d", (PCAPS / "ikev2four.out").read_text())]
    ours = [ike_major_version(p) for p in _ike_payloads("ikev2four.pcap")]
    assert len(ours) >= 4 and ours == printed == [IKEV2_MAJOR] * len(ours)


def test_version_demux_reads_octet_17_only() -> None:
    # RFC 7296 3.1: SPIi(8) SPIr(8) Next Payload(1) MjVer|MnVer(1) ...
    header = bytes(8) + bytes(8) + bytes([33, 0x20, 34, 0x08]) + bytes(8)
    assert ike_major_version(header) == 2
    assert ike_major_version(header[:17]) is None
    assert ike_major_version(b"") is None
    assert (IKE_PORT, NAT_T_PORT) == (500, 4500)


def test_engine_output_is_ikev1_on_the_wire() -> None:
    net, hub = _negotiated(3)
    assert hub.ike_version == IKEV1_MAJOR
    assert net.sent and {ike_major_version(d.payload) for _, d in net.sent if not d.raw} == {IKEV1_MAJOR}


def test_retransmit_schedule_is_the_profiles() -> None:
    p = get_profile("cisco-iosxe")
    timers = RetransmitTimers(p.retransmit_initial, p.retransmit_backoff, p.retransmit_max_interval,
                              p.retransmit_limit)
    t = IkeTransport("R1", timers)
    sent: list[float] = []
    gave_up: list[float] = []
    t.arm_retransmit(0.0, Retransmit(b"m"), sent.append, gave_up.append)
    while (due := t.next_deadline()) is not None:
        t.run_due(due)
    # 5 s, then doubling up to the 40 s ceiling, five retries, then the exchange dies
    assert sent == [5.0, 15.0, 35.0, 75.0, 115.0]
    assert gave_up == [155.0] == [timers.give_up_after()]


def test_cancelled_retransmit_does_not_fire() -> None:
    t = IkeTransport("R1", RetransmitTimers(1.0, 2.0, 10.0, 3))
    rt = Retransmit(b"m")
    fired: list[float] = []
    t.arm_retransmit(0.0, rt, fired.append, fired.append)
    t.cancel_retransmit(rt)
    t.run_due(100.0)
    assert fired == [] and rt.next_at is None


def test_timers_run_in_time_then_schedule_order() -> None:
    t = IkeTransport("R1", RetransmitTimers(1.0, 2.0, 10.0, 3))
    order: list[str] = []
    t.schedule(2.0, lambda now: order.append("b"))
    t.schedule(1.0, lambda now: order.append("a"))
    t.schedule(2.0, lambda now: order.append("c"))
    t.run_due(1.5)
    assert order == ["a"] and t.next_deadline() == 2.0
    t.run_due(2.0)
    assert order == ["a", "b", "c"] and t.next_deadline() is None


def test_cancelled_timers_fire_never_and_leave_the_heap() -> None:
    transport = IkeTransport("r", RetransmitTimers(1.0, 2.0, 8.0, 3))
    fired: list[str] = []
    keep = transport.schedule(5.0, lambda now: fired.append("keep"))
    handles = [transport.schedule(1.0 + i / 1000, lambda now, i=i: fired.append(f"gone{i}")) for i in range(200)]
    for h in handles:
        transport.cancel(h)
    transport.cancel(handles[0])  # twice is harmless
    assert len(transport._heap) < 100  # compacted: the callbacks (and what they hold) are released
    assert transport.next_deadline() == 5.0  # a cancelled timer wakes nobody
    transport.run_due(10.0)
    assert fired == ["keep"] and keep[2] is not None and transport.next_deadline() is None


def test_message_ids_are_never_reused() -> None:
    class Fixed:
        def __init__(self) -> None:
            self.values = [0, 7, 7, 9]

        def token_bytes(self, n: int) -> bytes:
            return self.values.pop(0).to_bytes(n, "big")

        def uniform(self, a: float, b: float) -> float:
            return a

    ids = MessageIds()
    rnd = Fixed()
    assert ids.allocate(rnd) == 7          # 0 is never a message ID
    assert ids.allocate(rnd) == 9          # 7 is taken
    assert not ids.claim(9) and ids.claim(11) and 11 in ids


def test_child_state_table_rejects_reviving_a_deleted_pair() -> None:
    _net, hub = _negotiated(4)
    (child,) = hub.children
    assert child.state is ChildState.ACTIVE
    assert child.transition(ChildEvent.REKEY_STARTED) is ChildState.REKEYING
    assert child.transition(ChildEvent.REKEY_FAILED) is ChildState.ACTIVE
    assert child.transition(ChildEvent.DELETED) is ChildState.DELETED
    with pytest.raises(IllegalTransition, match="IPsec SA pair: no transition from deleted on rekey started"):
        child.transition(ChildEvent.REKEY_STARTED)
    assert child.state is ChildState.DELETED


def test_failed_quick_mode_goes_through_the_table() -> None:
    _net, hub = _negotiated(5)
    sa = hub.sas[0]
    node = next(iter(sa.nodes.values()))
    assert node.state is QuickModeState.IKE_QM_PHASE2_COMPLETE
    with pytest.raises(IllegalTransition, match="Quick Mode: no transition from IKE_QM_PHASE2_COMPLETE"):
        node.give_up()


def test_views_describe_the_negotiated_sas() -> None:
    net, hub = _negotiated(6)
    (view,) = hub.isakmp_sa_views(net.now)
    assert (view.src, view.dst, view.state, view.engine_conn_id) == (HUB, SPOKE, IsakmpSaState.QM_IDLE,
                                                                     hub.sas[0].conn_id)
    (session,) = hub.session_views(net.now)
    assert isinstance(session, CryptoSessionView) and session.peer == SPOKE and session.status == "UP-IDLE"
    assert [s.active for s in session.ike_sas] == [True] and session.flows == ()
    (pair,) = hub.child_sa_views()
    assert pair.sa_in is hub.children[0].sa_in and pair.interface == hub.child_policies[0].interface
