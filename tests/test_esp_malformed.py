"""Malformed or misdirected ESP packets: each is refused with a reason that
names the SA, and lands in the right counter (never a traceback)."""

from __future__ import annotations

import pytest

from dmvpn.crypto.esp_algorithms import EspAuthAlgorithm, EspTransform, EspTransformId, HmacIntegrity
from dmvpn.ipsec.esp import DropReason, EspDrop, decapsulate, encapsulate, protect, unprotect
from dmvpn.ipsec.sa import SaDirection, SecurityAssociation
from dmvpn.ipsec.sad import SecurityAssociationDatabase
from dmvpn.runtime.randomness import SeededRandomSource
from dmvpn.wire.errors import DecodeError
from dmvpn.wire.ipv4 import IpProto, IPv4Header

NULL_SHA = EspTransform(EspTransformId.ESP_NULL, 0, EspAuthAlgorithm.HMAC_SHA2_256)
CBC_SHA = EspTransform(EspTransformId.ESP_AES_CBC, 128, EspAuthAlgorithm.HMAC_SHA2_256)
AKEY = bytes(range(32))


def pair(tf: EspTransform) -> tuple[SecurityAssociationDatabase, SecurityAssociation, SecurityAssociation]:
    sad = SecurityAssociationDatabase(SeededRandomSource(9, "bad"))
    kw = dict(peer="192.0.2.2", local="192.0.2.1", transform=tf,
              encryption_key=bytes(tf.encryption_key_bytes), integrity_key=AKEY)
    inb = SecurityAssociation(spi=0x999, direction=SaDirection.INBOUND, **kw)  # type: ignore[arg-type]
    out = SecurityAssociation(spi=0x999, direction=SaDirection.OUTBOUND, **kw)  # type: ignore[arg-type]
    sad.install_pair(0.0, inb, out)
    return sad, inb, out


def null_packet(seq: int, body: bytes) -> bytes:
    """A NULL-encrypted ESP packet with a valid ICV around any ``body``."""
    data = (0x999).to_bytes(4, "big") + seq.to_bytes(4, "big") + body
    return data + HmacIntegrity(EspAuthAlgorithm.HMAC_SHA2_256, AKEY).icv(data)


@pytest.mark.parametrize("body, words", [
    (b"payload" + b"\x01\x02\x04" + b"\x03\x2f", "padding is not the sequence"),
    (b"ab" + b"\x09\x2f", "pad length 9 exceeds"),
])
def test_bad_trailer_is_malformed(body: bytes, words: str) -> None:
    _, inb, _ = pair(NULL_SHA)
    with pytest.raises(EspDrop) as err:
        decapsulate(inb, 1.0, null_packet(1, body))
    assert err.value.reason is DropReason.MALFORMED and words in str(err.value)
    assert "SPI 0x00000999" in str(err.value)
    assert (inb.recv_errors, inb.pkts_decaps, inb.integrity_failures) == (1, 0, 0)


def test_good_null_packet_decodes() -> None:
    _, inb, _ = pair(NULL_SHA)
    assert decapsulate(inb, 1.0, null_packet(1, b"hi" + b"\x01\x02\x03\x04\x04\x2f")) == (47, b"hi")


@pytest.mark.parametrize("cut", [1, 5, 16, 40])
def test_truncated_or_misaligned_cbc_packets(cut: int) -> None:
    _, inb, out = pair(CBC_SHA)
    good = encapsulate(out, 1.0, b"x" * 50, 47)
    with pytest.raises(EspDrop) as err:
        decapsulate(inb, 1.0, good[:-cut])
    assert err.value.reason in (DropReason.MALFORMED, DropReason.INTEGRITY)
    assert inb.recv_errors == 1
    # the long-lived CBC context is unharmed: the intact packet still decrypts
    assert decapsulate(inb, 1.0, good) == (47, b"x" * 50)


def test_wrong_direction_deleted_sa_unknown_spi_and_not_esp() -> None:
    sad, inb, out = pair(CBC_SHA)
    packet = encapsulate(out, 1.0, b"x", 47)
    with pytest.raises(EspDrop, match="not inbound"):
        decapsulate(out, 1.0, packet)
    sad.delete(inb, 0.0)
    with pytest.raises(EspDrop) as err:
        decapsulate(inb, 1.0, packet)
    assert err.value.reason is DropReason.SA_DELETED and inb.recv_errors == 1
    datagram = IPv4Header(src="192.0.2.1", dst="192.0.2.2", protocol=IpProto.GRE).encode(b"\x00\x00\x08\x00")
    wrapped = protect(out, 2.0, datagram)
    with pytest.raises(EspDrop) as err:
        unprotect(sad, 2.0, wrapped)
    assert err.value.reason is DropReason.NO_SA and sad.unknown_spi_drops == 1
    with pytest.raises(DecodeError, match="not ESP"):
        unprotect(sad, 2.0, datagram)
    sad.delete(out, 0.0)
    with pytest.raises(EspDrop) as err:
        encapsulate(out, 3.0, b"x", 47)
    assert err.value.reason is DropReason.SA_DELETED and out.send_errors == 1


def test_recv_errors_add_up_in_show_after_a_batch_of_bad_esp() -> None:
    """Issue 17: ``#recv errors`` read 9,210 while the detail counters gave
    3,560: truncated packets counted in the sum but in no detail counter.
    A batch of replayed, forged and truncated ESP through the hub's data path
    (sim): the short form's sum equals the detail form's breakdown."""
    import re

    from router_lab import HUB_NBMA, HUB_TUN, SPOKE_NBMA, build

    sim, _, spoke, _ = build()
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 2")
    sim.run(5.0)
    out = spoke.sad.outbound_for(HUB_NBMA)
    gre = IPv4Header(src=SPOKE_NBMA, dst=HUB_NBMA, protocol=IpProto.GRE).encode(b"\x00\x00\x08\x00")
    wan = "GigabitEthernet0/0/2"
    for i in range(40):
        good = protect(out, sim.now, gre)
        sim.deliver("HUB", wan, good)
        if i % 2 == 0:
            sim.deliver("HUB", wan, good)                                      # replay
        forged = protect(out, sim.now, gre)          # a fresh sequence number, so not a replay
        sim.deliver("HUB", wan, forged[:-1] + bytes([forged[-1] ^ 1]))         # forged ICV
        esp = protect(out, sim.now, gre)[20:]
        sim.deliver("HUB", wan, IPv4Header(src=SPOKE_NBMA, dst=HUB_NBMA,
                                           protocol=IpProto.ESP).encode(esp[:-3]))  # truncated
    short = sim.admin("HUB", f"show crypto ipsec sa peer {SPOKE_NBMA}")
    detail = sim.admin("HUB", f"show crypto ipsec sa peer {SPOKE_NBMA} detail")
    recv = int(re.search(r"#recv errors (\d+)", short).group(1))

    def count(label: str) -> int:
        return int(re.search(re.escape(label) + r":? (\d+)", detail).group(1))

    parts = {label: count(label) for label in ("#pkts verify failed", "replay failed (rcv)",
                                               "#pkts invalid len (rcv)", "#pkts decaps failed (rcv)",
                                               "#pkts invalid prot (recv)", "#pkts invalid sa (rcv)")}
    assert parts["#pkts verify failed"] == 40 and parts["replay failed (rcv)"] == 20
    assert parts["#pkts invalid len (rcv)"] == 40
    assert recv == sum(parts.values()) == 100, (recv, parts)
