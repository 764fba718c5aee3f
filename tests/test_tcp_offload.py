"""TCP segmentation and coalescing for a TUN device with offloads
(dmvpn.wire.tcp_offload), every header and checksum checked by scapy, an
independent decoder."""

from __future__ import annotations

import os
import struct

import pytest
from scapy.layers.inet import IP, TCP, UDP

from dmvpn.wire.tcp_offload import (
    PLAIN_VNET_HDR,
    VIRTIO_NET_HDR_F_NEEDS_CSUM,
    VIRTIO_NET_HDR_GSO_TCPV4,
    VNET_HDR,
    VNET_HDR_LEN,
    OffloadError,
    coalesce,
    decode_vnet_header,
    packets_from_read,
    segment,
)

OPTIONS = [("NOP", None), ("NOP", None), ("Timestamp", (123456, 654321))]


def _tcp(payload: bytes, seq: int = 1000, flags: str = "A", ip_id: int = 7, **ip) -> bytes:
    return bytes(IP(src="10.1.1.1", dst="10.2.2.1", id=ip_id, flags="DF", **ip)
                 / TCP(sport=40000, dport=5201, seq=seq, ack=555, flags=flags, window=502, options=OPTIONS)
                 / payload)


def _valid(packet: bytes) -> IP:
    """scapy's decode, with both checksums recomputed and compared."""
    ip = IP(packet)
    again = IP(packet)
    del again.chksum, again[TCP].chksum
    again = IP(bytes(again))
    assert again.chksum == ip.chksum and again[TCP].chksum == ip[TCP].chksum
    return ip


def _partial(packet: bytes, at: int = 36) -> bytes:
    """``packet`` as the kernel hands it over with CSUM offload: the TCP
    (UDP: ``at`` 26) checksum field holds only the pseudo header's sum."""
    ip = IP(packet)
    pseudo = struct.pack("!4s4sBBH", bytes(map(int, ip.src.split("."))), bytes(map(int, ip.dst.split("."))),
                         0, ip.proto, ip.len - 20)
    words = sum(struct.unpack(f"!{len(pseudo) // 2}H", pseudo))
    while words > 0xFFFF:
        words = (words & 0xFFFF) + (words >> 16)
    return packet[:at] + struct.pack("!H", words) + packet[at + 2:]


@pytest.mark.parametrize("size,mss", [(64000, 1348), (1348 * 10, 1348), (5001, 1000), (4000, 1347), (100, 1348)])
def test_segment_headers_and_checksums(size, mss):
    payload = os.urandom(size)
    superseg = _partial(_tcp(payload, seq=0xFFFFF000, flags="PA", ip_id=0xFFFE))
    vnet = VNET_HDR.pack(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 52, mss, 20, 16)
    packets = packets_from_read(vnet + superseg)
    assert len(packets) == -(-size // mss)
    joined = b""
    for i, packet in enumerate(packets):
        ip = _valid(packet)
        assert ip.len == len(packet) <= 52 + mss and ip.id == (0xFFFE + i) & 0xFFFF and ip.flags == "DF"
        assert ip[TCP].seq == (0xFFFFF000 + i * mss) & 0xFFFFFFFF and ip[TCP].ack == 555
        assert ip[TCP].options == OPTIONS
        assert str(ip[TCP].flags) == ("PA" if i == len(packets) - 1 else "A")
        joined += bytes(ip[TCP].payload)
    assert joined == payload


def test_segment_fin_and_cwr_rules():
    packets = segment(_tcp(os.urandom(3000), flags="FPAC"), 1000)
    assert [str(IP(p)[TCP].flags) for p in packets] == ["AC", "A", "FPA"]


def test_plain_read_and_partial_checksum_finished():
    packet = _tcp(b"hello")
    assert packets_from_read(PLAIN_VNET_HDR + packet) == [packet]
    vnet = VNET_HDR.pack(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 20, 16)
    (finished,) = packets_from_read(vnet + _partial(packet))
    assert finished == packet
    udp = bytes(IP(src="10.1.1.1", dst="10.2.2.1") / UDP(sport=1, dport=2) / (b"x" * 3))
    (done,) = packets_from_read(VNET_HDR.pack(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 20, 6) + _partial(udp, 26))
    assert IP(done)[UDP].chksum == IP(udp)[UDP].chksum


def test_bad_reads_raise():
    with pytest.raises(OffloadError):
        packets_from_read(b"\x00" * 5)
    with pytest.raises(OffloadError):
        packets_from_read(VNET_HDR.pack(0, 3, 0, 1000, 0, 0) + _tcp(b"x" * 10))
    with pytest.raises(OffloadError):
        segment(bytes(IP() / UDP() / (b"x" * 40)), 10)
    with pytest.raises(OffloadError):
        packets_from_read(VNET_HDR.pack(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 200, 16) + _tcp(b"x"))


def _resegment(write: bytes) -> list[bytes]:
    """What the kernel makes of a TUN write: a GSO write cut back into
    segments (the partial checksum completed per segment)."""
    vnet = decode_vnet_header(write)
    if vnet.gso_type == 0:
        assert vnet.flags == 0
        return [write[VNET_HDR_LEN:]]
    assert (vnet.flags, vnet.gso_type, vnet.csum_start, vnet.csum_offset) == (
        VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 20, 16)
    ip = IP(write[VNET_HDR_LEN:])
    assert ip.len == len(write) - VNET_HDR_LEN and vnet.hdr_len == 20 + ip[TCP].dataofs * 4
    again = IP(write[VNET_HDR_LEN:])
    del again.chksum
    assert IP(bytes(again)).chksum == ip.chksum
    return segment(_finish_pseudo(write[VNET_HDR_LEN:]), vnet.gso_size)


def _finish_pseudo(packet: bytes) -> bytes:
    """The partial checksum (pseudo header sum) must be what ``_partial``
    writes; the segmenter recomputes every checksum anyway."""
    assert packet[36:38] == _partial(packet)[36:38]
    return packet


def test_coalesce_joins_in_order_segments_and_round_trips():
    payload = os.urandom(1348 * 30 + 500)
    originals = segment(_tcp(payload, flags="PA"), 1348)
    writes = coalesce(originals)
    assert len(writes) == 1
    vnet = decode_vnet_header(writes[0])
    assert vnet.gso_size == 1348 and vnet.hdr_len == 52
    back = _resegment(writes[0])
    assert [bytes(IP(p)[TCP].payload) for p in back] == [bytes(IP(p)[TCP].payload) for p in originals]
    assert [_valid(p)[TCP].seq for p in back] == [IP(p)[TCP].seq for p in originals]
    assert str(IP(back[-1])[TCP].flags) == "PA"


def test_coalesce_limits_and_breaks():
    seg = segment(_tcp(os.urandom(600 * 70)), 600)  # 70 segments: 64 then 6
    assert [decode_vnet_header(w).gso_size for w in coalesce(seg)] == [600, 600]
    assert sum(len(_resegment(w)) for w in coalesce(seg)) == 70
    a, b, c = segment(_tcp(os.urandom(3000)), 1000)
    # a gap, a retransmission, a SYN and a non-TCP packet are written as they are, in order
    gap = coalesce([a, c])
    assert [decode_vnet_header(w).gso_type for w in gap] == [0, 0]
    icmp = bytes(IP(src="10.1.1.1", dst="10.2.2.1", proto=1) / (b"\x08" + b"\x00" * 7))
    syn = _tcp(b"", flags="S")
    writes = coalesce([a, b, icmp, syn, c])
    assert [w[VNET_HDR_LEN:] for w in writes[1:]] == [icmp, syn, c]
    assert [IP(p)[TCP].seq for p in _resegment(writes[0])] == [IP(a)[TCP].seq, IP(b)[TCP].seq]
    # a short segment ends a run; a PSH ends it after itself
    short = segment(_tcp(os.urandom(2500)), 1000)
    more = segment(_tcp(os.urandom(1000), seq=1000 + 2500), 1000)
    assert len(coalesce(short + more)) == 2
    other_ttl = segment(_tcp(os.urandom(2000), ttl=9), 1000)
    assert len(coalesce(segment(_tcp(os.urandom(2000)), 1000)[:1] + other_ttl[1:])) == 2
