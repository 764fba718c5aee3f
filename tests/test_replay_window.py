"""Anti-replay (RFC 4303 3.4.3, appendix A): duplicates, packets older than
the window, reordering inside it, ESN inference, sequence exhaustion; each
drop lands in the right SA counter."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmvpn.crypto.esp_algorithms import EspAuthAlgorithm, EspTransform, EspTransformId
from dmvpn.ipsec.esp import DropReason, EspDrop, decapsulate, encapsulate
from dmvpn.ipsec.events import HardExpired
from dmvpn.ipsec.replay_window import ReplayVerdict, ReplayWindow
from dmvpn.ipsec.sa import SaDirection, SaLifetime, SaState, SecurityAssociation
from dmvpn.ipsec.sad import SecurityAssociationDatabase
from dmvpn.runtime.randomness import SeededRandomSource

TF = EspTransform(EspTransformId.ESP_AES_CBC, 128, EspAuthAlgorithm.HMAC_SHA2_256)


def pair(window: int = 1024, esn: bool = False,
         ) -> tuple[SecurityAssociationDatabase, SecurityAssociation, SecurityAssociation]:
    sad = SecurityAssociationDatabase(SeededRandomSource(7, "replay"))
    kw = dict(peer="192.0.2.2", local="192.0.2.1", transform=TF, encryption_key=bytes(16),
              integrity_key=bytes(range(32)), replay_window_size=window, esn=esn,
              lifetime=SaLifetime(None, None, None, None))
    inb = SecurityAssociation(spi=0x4242, direction=SaDirection.INBOUND, **kw)  # type: ignore[arg-type]
    out = SecurityAssociation(spi=0x4242, direction=SaDirection.OUTBOUND, **kw)  # type: ignore[arg-type]
    sad.install_pair(0.0, inb, out)
    return sad, inb, out


def drop_reason(sa: SecurityAssociation, packet: bytes) -> DropReason | None:
    try:
        decapsulate(sa, 1.0, packet)
    except EspDrop as exc:
        return exc.reason
    return None


def test_duplicates_old_and_reordered_packets_land_in_their_counters() -> None:
    _, inb, out = pair(window=64)
    packets = [encapsulate(out, 1.0, b"p%d" % i, 47) for i in range(200)]  # seq 1..200
    assert drop_reason(inb, packets[99]) is None  # seq 100 first
    for i in (98, 97, 60, 37):  # reordered, still inside the 64 window [37..100]
        assert drop_reason(inb, packets[i - 1]) is None
    assert drop_reason(inb, packets[97 - 1]) is DropReason.REPLAY_DUPLICATE
    assert drop_reason(inb, packets[36 - 1]) is DropReason.REPLAY_TOO_OLD  # 100 - 36 = 64: outside
    assert drop_reason(inb, packets[1 - 1]) is DropReason.REPLAY_TOO_OLD
    assert drop_reason(inb, packets[99]) is DropReason.REPLAY_DUPLICATE
    assert drop_reason(inb, packets[199]) is None  # jump ahead: window slides to 137..200
    assert drop_reason(inb, packets[136]) is None  # 137 is the oldest still inside
    assert drop_reason(inb, packets[135]) is DropReason.REPLAY_TOO_OLD
    assert (inb.pkts_decaps, inb.replay_drops, inb.recv_errors, inb.integrity_failures) == (7, 5, 5, 0)


def test_forged_packet_does_not_move_the_window() -> None:
    """The window is updated only after the ICV verifies (RFC 4303 3.4.3)."""
    _, inb, out = pair()
    good = encapsulate(out, 1.0, b"x", 47)
    forged = good[:4] + (1000).to_bytes(4, "big") + good[8:]
    assert drop_reason(inb, forged) is DropReason.INTEGRITY
    assert inb.replay.top == 0  # type: ignore[union-attr]
    assert drop_reason(inb, good) is None
    assert (inb.integrity_failures, inb.recv_errors, inb.replay_drops) == (1, 1, 0)


def test_sequence_exhaustion_without_esn() -> None:
    """Never send past 2^32 - 1 (RFC 4303 3.3.3): a send error, one hard event, SA gone."""
    sad, _, out = pair()
    out.seq = 2**32 - 3
    encapsulate(out, 5.0, b"last-but-one", 47)
    encapsulate(out, 5.0, b"last", 47)  # sequence 2^32 - 1 is still legal
    for _ in range(3):
        with pytest.raises(EspDrop) as err:
            encapsulate(out, 6.0, b"one too many", 47)
    assert err.value.reason is DropReason.SA_DELETED
    assert out.send_errors == 3 and out.state is SaState.DELETED and out.pkts_encaps == 2
    events = sad.poll_events()
    assert events == [HardExpired(out, "sequence", 6.0)]
    assert sad.outbound_for("192.0.2.2") is None


def test_esn_sender_crosses_2_32_and_receiver_follows() -> None:
    _, inb, out = pair(window=128, esn=True)
    out.seq = 2**32 - 3
    packets = [encapsulate(out, 1.0, b"%d" % i, 47) for i in range(6)]  # 2^32-2 .. 2^32+3
    assert [int.from_bytes(p[4:8], "big") for p in packets] == [2**32 - 2, 2**32 - 1, 0, 1, 2, 3]
    inb.replay.top = 2**32 - 100  # type: ignore[union-attr]
    for i in (0, 2, 1, 5, 3, 4):
        assert drop_reason(inb, packets[i]) is None
    assert inb.replay.top == 2**32 + 3  # type: ignore[union-attr]
    assert drop_reason(inb, packets[2]) is DropReason.REPLAY_DUPLICATE


class ReferenceWindow:
    """A set-based model of RFC 4303 3.4.3 to check the ring window against."""

    def __init__(self, size: int) -> None:
        self.size, self.top, self.seen = size, 0, set()

    def accept(self, seq: int) -> bool:
        if seq == 0 or seq in self.seen or seq <= self.top - self.size:
            return False
        self.seen.add(seq)
        self.top = max(self.top, seq)
        return True


@settings(max_examples=200, derandomize=True, deadline=None)
@given(size=st.sampled_from([1, 2, 32, 64, 1024, 4096]),
       seqs=st.lists(st.integers(min_value=0, max_value=9000), max_size=300))
def test_window_matches_reference_model(size: int, seqs: list[int]) -> None:
    window, model = ReplayWindow(size), ReferenceWindow(size)
    for seq in seqs:
        ok = window.check(seq) is ReplayVerdict.OK
        assert ok == model.accept(seq), (seq, window.top)
        if ok:
            window.update(seq)
    assert window.top == model.top


@settings(max_examples=200, derandomize=True, deadline=None)
@given(top=st.integers(min_value=0, max_value=2**40), back=st.integers(min_value=0, max_value=1023),
       ahead=st.integers(min_value=1, max_value=2**31 - 1))
def test_esn_inference(top: int, back: int, ahead: int) -> None:
    """Appendix A2.2: a number inside the window or ahead of it (by less
    than 2^31) is reconstructed from its low 32 bits."""
    window = ReplayWindow(1024, esn=True)
    window.top = top
    for full in (top - back, top + ahead):
        if full > 0:
            assert window.infer(full & 0xFFFFFFFF) == full
