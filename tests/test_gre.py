"""GRE (RFC 2784, RFC 2890) against scapy's GRE layer and tcpdump's DMVPN
captures (GRE key 2 and 1000 carrying NHRP)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import GRE, raw, rdpcap

from dmvpn.wire.errors import DecodeError
from dmvpn.wire.gre import GRE_PROTO_IPV4, GRE_PROTO_NHRP, GreHeader, decode_gre, encode_gre

TCPDUMP = Path(__file__).resolve().parents[2] / "shared" / "oracles" / "pcaps" / "tcpdump"

u32 = st.none() | st.integers(0, 2**32 - 1)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(protocol=st.sampled_from([GRE_PROTO_IPV4, GRE_PROTO_NHRP, 0x86DD]), key=u32, seq=u32,
       checksum=st.booleans(), payload=st.binary(max_size=300))
def test_encode_matches_scapy_and_round_trips(protocol: int, key: int | None, seq: int | None,
                                              checksum: bool, payload: bytes) -> None:
    ours = encode_gre(protocol, payload, key=key, sequence=seq, checksum=checksum)
    theirs = GRE(proto=protocol, key_present=key is not None, key=key, seqnum_present=seq is not None,
                 sequence_number=seq, chksum_present=checksum) / payload
    assert ours == raw(theirs)
    header, body = decode_gre(ours)
    assert header == GreHeader(protocol, key, seq, checksum, True if checksum else None)
    assert body == payload


def test_checksum_error_is_reported() -> None:
    packet = bytearray(encode_gre(GRE_PROTO_IPV4, b"hello world", key=1, checksum=True))
    packet[-1] ^= 0xFF
    header, _ = decode_gre(bytes(packet))
    assert header.checksum_present and header.checksum_ok is False


@pytest.mark.parametrize("data, offset, words", [
    (b"\x00", 0, "truncated"),
    (b"\x00\x01\x08\x00", 1, "version 1"),
    (b"\x40\x00\x08\x00", 0, "reserved"),  # RFC 1701 routing bit
    (b"\x30\x00\x08\x00\x00\x00\x00\x01", 8, "truncated"),  # K and S, key only
])
def test_malformed_headers_name_the_offset(data: bytes, offset: int, words: str) -> None:
    with pytest.raises(DecodeError) as err:
        decode_gre(data)
    assert err.value.offset == offset and words in str(err.value)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.binary(max_size=40))
def test_random_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_gre(data)


@pytest.mark.parametrize("name, key, count", [
    ("NHRP_registration.pcap", 2, 4), ("nhrp-trace.pcap", 1000, 4), ("various_gre.pcap", 40, 14)])
def test_tcpdump_dmvpn_captures(name: str, key: int, count: int) -> None:
    path = TCPDUMP / name
    assert path.exists(), f"oracle missing: {path}"
    found = 0
    for pkt in rdpcap(str(path)):
        if GRE not in pkt:
            continue
        header, payload = decode_gre(raw(pkt[GRE]))
        assert header.key == key and header.sequence is None and not header.checksum_present
        assert header.protocol == pkt[GRE].proto
        if header.protocol == GRE_PROTO_NHRP:
            assert payload[:2] == b"\x00\x01" and payload[2:4] == b"\x08\x00"  # NHRP afn 1, pro 0x0800
        # re-encoding gives back the captured header and payload
        assert encode_gre(header.protocol, payload, key=header.key) == raw(pkt[GRE])[: 8 + len(payload)]
        found += 1
    assert found >= count
