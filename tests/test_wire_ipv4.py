"""IPv4 / UDP / ICMP wire helpers against independent oracles: scapy's
encoders and dissectors, real captures from tcpdump's and strongSwan's test
material, and RFC 1071's worked checksum example."""

from __future__ import annotations

import glob
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import ICMP, IP, UDP, raw, rdpcap
from scapy.utils import checksum as scapy_checksum

from dmvpn.wire.errors import DecodeError
from dmvpn.wire.icmp import IcmpMessage, IcmpType, decode_icmp
from dmvpn.wire.ipv4 import IPv4Header, decode_ipv4, format_ipv4_address, internet_checksum, parse_ipv4_address
from dmvpn.wire.udp import decode_udp, encode_udp

ORACLES = Path("/work/shared/oracles/pcaps")
CAPTURES = sorted(glob.glob(str(ORACLES / "tcpdump" / "*.pcap"))) + \
    sorted(glob.glob(str(ORACLES / "strongswan" / "*.pcap")))

addresses = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))


def test_decode_error_shape():
    err = DecodeError(12, "bad length")
    assert (err.offset, err.reason, str(err)) == (12, "bad length", "offset 12: bad length")
    assert str(err.shifted(20)) == "offset 32: bad length"


def test_rfc1071_worked_example():
    # RFC 1071 section 3: words 0001 f203 f4f5 f6f7 sum to ddf2 -> checksum 220d.
    assert internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D
    assert internet_checksum(b"") == 0xFFFF
    assert internet_checksum(b"\xff\xff") == 0x0000  # negative zero folds to 0xffff


@settings(max_examples=300, derandomize=True)
@given(st.binary(max_size=200))
def test_checksum_matches_scapy(data):
    assert internet_checksum(data) == scapy_checksum(data)


@settings(max_examples=200, derandomize=True)
@given(src=addresses, dst=addresses, proto=st.integers(0, 255), ttl=st.integers(0, 255),
       ident=st.integers(0, 0xFFFF), tos=st.integers(0, 255), df=st.booleans(),
       frag=st.integers(0, 0x1FFF), options=st.binary(max_size=10).map(lambda b: b.ljust(-(-len(b) // 4) * 4, b"\x00")),
       payload=st.binary(max_size=64))
def test_ipv4_encode_matches_scapy_and_roundtrips(src, dst, proto, ttl, ident, tos, df, frag, options, payload):
    header = IPv4Header(src, dst, proto, ttl=ttl, identification=ident, tos=tos,
                        dont_fragment=df, fragment_offset=frag, options=options)
    ours = header.encode(payload)
    theirs = raw(IP(src=src, dst=dst, proto=proto, ttl=ttl, id=ident, tos=tos,
                    flags="DF" if df else 0, frag=frag, options=options) / payload)
    assert ours == theirs
    decoded, body = decode_ipv4(ours)
    assert body == payload
    assert (decoded.src, decoded.dst, decoded.protocol, decoded.ttl, decoded.identification,
            decoded.tos, decoded.dont_fragment, decoded.fragment_offset, decoded.options) == \
        (src, dst, proto, ttl, ident, tos, df, frag, options)
    assert decoded.total_length == len(ours)


@settings(max_examples=200, derandomize=True)
@given(src=addresses, dst=addresses, sport=st.integers(0, 0xFFFF), dport=st.integers(0, 0xFFFF),
       payload=st.binary(max_size=80))
def test_udp_encode_matches_scapy(src, dst, sport, dport, payload):
    ours = encode_udp(src, dst, sport, dport, payload)
    theirs = raw(IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / payload)[20:]
    assert ours == theirs
    decoded = decode_udp(ours, src, dst)
    assert (decoded.src_port, decoded.dst_port, decoded.payload) == (sport, dport, payload)


@settings(max_examples=200, derandomize=True)
@given(reply=st.booleans(), ident=st.integers(0, 0xFFFF), seq=st.integers(0, 0xFFFF),
       data=st.binary(max_size=80))
def test_icmp_echo_matches_scapy(reply, ident, seq, data):
    ours = IcmpMessage.echo(reply=reply, identifier=ident, sequence=seq, data=data).encode()
    theirs = raw(ICMP(type=0 if reply else 8, id=ident, seq=seq) / data)
    assert ours == theirs
    msg = decode_icmp(ours)
    assert (msg.type, msg.identifier, msg.sequence, msg.data) == \
        (IcmpType.ECHO_REPLY if reply else IcmpType.ECHO_REQUEST, ident, seq, data)


def test_scapy_packet_decodes():
    pkt = raw(IP(src="192.0.2.1", dst="198.51.100.7", ttl=3, id=0x1234, flags="MF", frag=5)
              / ICMP(type=8, id=7, seq=9) / b"hello")
    header, payload = decode_ipv4(pkt + b"\x00" * 6)  # trailing link padding ignored
    assert (header.src, header.dst, header.ttl, header.identification) == ("192.0.2.1", "198.51.100.7", 3, 0x1234)
    assert header.more_fragments and header.fragment_offset == 5 and not header.dont_fragment
    assert decode_icmp(payload).data == b"hello"


@pytest.mark.parametrize("mutate,offset,words", [
    (lambda p: p[:19], 0, "truncated"),
    (lambda p: b"\x65" + p[1:], 0, "version is 6"),
    (lambda p: b"\x44" + p[1:], 0, "IHL 4"),
    (lambda p: p[:2] + (19).to_bytes(2, "big") + p[4:], 2, "shorter than the header"),
    (lambda p: p[:2] + (200).to_bytes(2, "big") + p[4:], 2, "exceeds"),
    (lambda p: p[:6] + b"\x80" + p[7:], 6, "reserved flag"),
    (lambda p: p[:10] + bytes([p[10] ^ 1]) + p[11:], 10, "checksum"),
])
def test_ipv4_decode_errors(mutate, offset, words):
    good = IPv4Header("10.0.0.1", "10.0.0.2", 1).encode(b"x" * 8)
    with pytest.raises(DecodeError) as info:
        decode_ipv4(mutate(good))
    assert info.value.offset == offset and words in info.value.reason


def test_udp_and_icmp_decode_errors():
    good = encode_udp("10.0.0.1", "10.0.0.2", 500, 500, b"abcd")
    for bad, offset, words in [(good[:7], 0, "truncated"), (good[:4] + b"\x00\x07" + good[6:], 4, "shorter"),
                               (good[:4] + b"\x00\x40" + good[6:], 4, "exceeds"),
                               (good[:-1] + b"X", 6, "checksum")]:
        with pytest.raises(DecodeError) as info:
            decode_udp(bad, "10.0.0.1", "10.0.0.2")
        assert info.value.offset == offset and words in info.value.reason
    assert decode_udp(good[:6] + b"\x00\x00" + good[8:], "10.0.0.1", "10.0.0.2").payload == b"abcd"
    echo = IcmpMessage.echo(reply=False, identifier=1, sequence=1, data=b"zz").encode()
    with pytest.raises(DecodeError) as info:
        decode_icmp(echo[:-1] + b"y")
    assert info.value.offset == 2
    with pytest.raises(DecodeError):
        decode_icmp(echo[:7])


@settings(max_examples=500, derandomize=True)
@given(st.binary(max_size=80))
def test_decoders_raise_only_decode_error(data):
    for decode in (decode_ipv4, decode_icmp, lambda d: decode_udp(d, "1.2.3.4", "5.6.7.8")):
        try:
            decode(data)
        except DecodeError as err:
            assert str(err).startswith(f"offset {err.offset}: ")


def test_address_helpers():
    assert parse_ipv4_address("10.1.2.255") == bytes([10, 1, 2, 255])
    assert format_ipv4_address(bytes([192, 0, 2, 1])) == "192.0.2.1"
    for bad in ("10.1.2", "10.1.2.256", "a.b.c.d", "1.2.3.4.5", ""):
        with pytest.raises(ValueError, match="invalid IPv4 address"):
            parse_ipv4_address(bad)


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: Path(p).name)
def test_real_captures_decode_like_scapy(path):
    """Every IPv4 packet in third-party captures decodes to the fields scapy
    sees; header checksums are accepted exactly when scapy's recomputation
    agrees with the stored one; unfragmented UDP checksums likewise."""
    packets = [p for p in rdpcap(path) if IP in p]
    assert packets, f"{path} holds no IPv4 packets"
    for pkt in packets:
        ip = pkt[IP]
        data = bytes(ip.original)
        stored = ip.chksum
        recomputed = IP(data[: ip.ihl * 4])
        recomputed.chksum = None
        header_ok = IP(raw(recomputed)).chksum == stored
        if not header_ok:
            with pytest.raises(DecodeError):
                decode_ipv4(data)
            continue
        header, payload = decode_ipv4(data)
        assert (header.src, header.dst, header.protocol, header.ttl, header.identification) == \
            (ip.src, ip.dst, ip.proto, ip.ttl, ip.id)
        assert header.total_length == ip.len and len(payload) == ip.len - ip.ihl * 4
        if ip.proto == 17 and not header.more_fragments and header.fragment_offset == 0:
            udp = ip[UDP]
            rebuilt = IP(src=ip.src, dst=ip.dst) / UDP(sport=udp.sport, dport=udp.dport) / bytes(udp.payload)
            scapy_ok = udp.chksum == 0 or IP(raw(rebuilt))[UDP].chksum == udp.chksum
            if scapy_ok and len(bytes(udp.payload)) + 8 == udp.len:
                datagram = decode_udp(payload, header.src, header.dst)
                assert (datagram.src_port, datagram.dst_port) == (udp.sport, udp.dport)
            elif not scapy_ok:
                with pytest.raises(DecodeError):
                    decode_udp(payload, header.src, header.dst)
