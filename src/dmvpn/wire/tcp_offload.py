"""TCP segmentation and coalescing for a TUN device with offloads on
(``IFF_VNET_HDR``, ``TUNSETOFFLOAD`` TSO4 + CSUM; virtio 1.1 section 5.1.6.2,
``include/uapi/linux/virtio_net.h``).

Every read from such a device starts with a 10-byte ``virtio_net_hdr``
(flags, gso_type, hdr_len, gso_size, csum_start, csum_offset, in the host's
byte order). With ``gso_type`` TCPV4 the datagram is a TCP super-segment of
up to 64 KB: :func:`segment` cuts it into packets of ``gso_size`` payload
octets, each with its own IPv4 total length, identification and header
checksum (RFC 791 3.1) and its own TCP sequence number, flags and checksum
(RFC 9293 3.1: FIN and PSH only on the last segment, CWR only on the first,
as the kernel's ``tcp_gso_segment`` does). With ``flags`` NEEDS_CSUM and no
GSO, the checksum at ``csum_start + csum_offset`` holds only the pseudo
header's sum and is finished here (RFC 1071).

The other way, :func:`coalesce` joins in-order segments of one TCP flow into
one super-segment written with ``gso_type`` TCPV4 and NEEDS_CSUM (the TCP
checksum field carrying the pseudo header's sum, ``csum_start`` the IPv4
header length, ``csum_offset`` 16), as the kernel's GRO would have
(``tcp_gro_receive``): one stack traversal for dozens of packets.

Checksums are one's complement sums (RFC 1071): since 2**16 is 1 modulo
0xFFFF, the sum of a buffer's 16-bit words is the buffer, read as a
big-endian integer, modulo 0xFFFF; the payload sums of all the segments of
one super-segment are taken at once with numpy.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

#: struct virtio_net_hdr (no num_buffers: TUN's default header size, 10)
VNET_HDR = struct.Struct("=BBHHHH")
VNET_HDR_LEN = VNET_HDR.size
VIRTIO_NET_HDR_F_NEEDS_CSUM = 1
VIRTIO_NET_HDR_GSO_NONE = 0
VIRTIO_NET_HDR_GSO_TCPV4 = 1
VIRTIO_NET_HDR_GSO_ECN = 0x80
#: a header saying "one ordinary packet, checksums complete"
PLAIN_VNET_HDR = VNET_HDR.pack(0, VIRTIO_NET_HDR_GSO_NONE, 0, 0, 0, 0)

TCP_PROTOCOL = 6
UDP_PROTOCOL = 17
TCP_CHECKSUM_OFFSET = 16
TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK, TCP_URG, TCP_ECE, TCP_CWR = 1, 2, 4, 8, 16, 32, 64, 128
#: an IPv4 datagram's largest total length (RFC 791 3.1)
IPV4_MAX_TOTAL = 0xFFFF
#: the kernel's GRO joins at most this many segments (MAX_GSO_SEGS 64)
MAX_COALESCE = 64

_IP_LEN_ID = struct.Struct("!HH")
_IP_CHECKSUM = struct.Struct("!H")
_SEQ = struct.Struct("!I")


class OffloadError(ValueError):
    """A read from the device that cannot be turned into packets; ``str()``
    says why (the runtime counts and drops it)."""


@dataclass(frozen=True, slots=True)
class VnetHeader:
    """A decoded ``virtio_net_hdr``."""

    flags: int
    gso_type: int
    hdr_len: int
    gso_size: int
    csum_start: int
    csum_offset: int


def decode_vnet_header(data: bytes | memoryview) -> VnetHeader:
    """The ``virtio_net_hdr`` at the start of ``data``."""
    if len(data) < VNET_HDR_LEN:
        raise OffloadError(f"read of {len(data)} bytes is shorter than the virtio_net_hdr")
    return VnetHeader(*VNET_HDR.unpack_from(data))


def _fold(total: int) -> int:
    """A one's complement sum modulo 0xFFFF as the 16-bit checksum field
    (0xFFFF for a sum that is a multiple of 0xFFFF: never 0, which UDP
    reserves for "no checksum")."""
    return 0xFFFF - (total % 0xFFFF) or 0xFFFF


def _sum(data: bytes | memoryview) -> int:
    """One's complement sum (modulo 0xFFFF) of ``data``, an odd last byte
    padded with zero (RFC 1071)."""
    if len(data) % 2:
        return (int.from_bytes(data, "big") << 8) % 0xFFFF
    return int.from_bytes(data, "big") % 0xFFFF


def _pseudo_sum(ip: bytes | bytearray | memoryview, protocol: int, length: int) -> int:
    """Sum of the IPv4 pseudo header (RFC 9293 3.1, RFC 768) for ``length``
    octets of ``protocol`` from the addresses in ``ip``."""
    return (int.from_bytes(ip[12:20], "big") + protocol + length) % 0xFFFF


def _chunk_sums(payload: memoryview, size: int) -> list[int]:
    """The sum of each ``size``-octet piece of ``payload`` (the last may be
    shorter), all full pieces in one numpy call when ``size`` is even."""
    full = len(payload) // size
    sums: list[int] = []
    if full and size % 2 == 0:
        words = np.frombuffer(payload[:full * size], dtype=">u2").reshape(full, size // 2)
        sums = [s % 0xFFFF for s in words.sum(axis=1, dtype=np.uint64).tolist()]
    else:
        sums = [_sum(payload[i * size:(i + 1) * size]) for i in range(full)]
    if full * size < len(payload):
        sums.append(_sum(payload[full * size:]))
    return sums


def finish_checksum(packet: bytearray, csum_start: int, csum_offset: int) -> None:
    """Complete a partial checksum (NEEDS_CSUM): the field holds the pseudo
    header's sum; the checksum covers everything from ``csum_start``."""
    at = csum_start + csum_offset
    if csum_start >= len(packet) or at + 2 > len(packet):
        raise OffloadError(f"partial checksum at {csum_start}+{csum_offset} outside a {len(packet)}-byte packet")
    _IP_CHECKSUM.pack_into(packet, at, _fold(_sum(memoryview(packet)[csum_start:])))


def packets_from_read(read: bytes | memoryview) -> list[bytes]:
    """The IPv4 packets in one read (virtio_net_hdr + datagram) from a TUN
    device with offloads on, every checksum complete."""
    vnet = decode_vnet_header(read)
    data = memoryview(read)[VNET_HDR_LEN:]
    gso = vnet.gso_type & ~VIRTIO_NET_HDR_GSO_ECN
    if gso == VIRTIO_NET_HDR_GSO_NONE:
        if not vnet.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM:
            return [bytes(data)]
        packet = bytearray(data)
        finish_checksum(packet, vnet.csum_start, vnet.csum_offset)
        return [bytes(packet)]
    if gso != VIRTIO_NET_HDR_GSO_TCPV4:
        raise OffloadError(f"GSO type {vnet.gso_type} (only TCPv4 is offered)")
    return segment(data, vnet.gso_size)


def segment(data: bytes | memoryview, mss: int) -> list[bytes]:
    """A TCP/IPv4 super-segment cut into packets of at most ``mss`` payload
    octets, headers and checksums per packet (RFC 791, RFC 9293; the rules
    of the kernel's ``tcp_gso_segment``)."""
    view = memoryview(data)
    if len(view) < 40 or view[0] >> 4 != 4 or view[9] != TCP_PROTOCOL:
        raise OffloadError("TCP super-segment is not TCP over IPv4")
    ihl = (view[0] & 0x0F) * 4
    thl = (view[ihl + 12] >> 4) * 4
    head = ihl + thl
    if thl < 20 or head > len(view) or mss <= 0:
        raise OffloadError(f"TCP super-segment with header length {head} and gso_size {mss}")
    payload = view[head:]
    ip = bytearray(view[:ihl])
    tcp = bytearray(view[ihl:head])
    ip_id = (ip[4] << 8) | ip[5]
    seq = _SEQ.unpack_from(tcp, 4)[0]
    flags = tcp[13]
    ip[10:12] = b"\x00\x00"
    tcp[16:18] = b"\x00\x00"
    addresses = int.from_bytes(ip[12:20], "big") + TCP_PROTOCOL
    out: list[bytes] = []
    sums = _chunk_sums(payload, mss)
    last = len(sums) - 1
    for i, chunk_sum in enumerate(sums):
        offset = i * mss
        size = min(mss, len(payload) - offset)
        _IP_LEN_ID.pack_into(ip, 2, head + size, (ip_id + i) & 0xFFFF)
        ip[10:12] = b"\x00\x00"
        _IP_CHECKSUM.pack_into(ip, 10, _fold(int.from_bytes(ip, "big")))
        f = flags if i == last else flags & ~(TCP_FIN | TCP_PSH)
        if i:
            f &= ~TCP_CWR
        tcp[13] = f
        _SEQ.pack_into(tcp, 4, (seq + offset) & 0xFFFFFFFF)
        tcp[16:18] = b"\x00\x00"
        _IP_CHECKSUM.pack_into(tcp, 16, _fold(int.from_bytes(tcp, "big") + addresses + thl + size + chunk_sum))
        out.append(b"".join((ip, tcp, payload[offset:offset + size])))
    return out


@dataclass(slots=True)
class _Flow:
    """A run of segments being joined: the first packet's headers, the
    payloads so far, the next sequence number expected."""

    first: bytes
    ihl: int
    thl: int
    key: bytes
    mss: int
    next_seq: int
    payloads: list[memoryview]
    total: int
    last_flags: int
    closed: bool = False


def _tcp_key(packet: bytes, ihl: int, thl: int) -> bytes:
    """What must be equal for two segments to join (``tcp_gro_receive``):
    IPv4 TOS, DF, TTL, protocol, addresses; TCP ports, acknowledgment,
    data offset, urgent pointer and options."""
    return b"".join((packet[1:2], bytes((packet[6] & 0x40,)), packet[8:10], packet[12:20],
                     packet[ihl:ihl + 4], packet[ihl + 8:ihl + 13], packet[ihl + 18:ihl + thl]))


def _joinable(packet: bytes) -> tuple[int, int, int] | None:
    """(IPv4 header length, TCP header length, payload length) of a TCP
    segment that may be joined: IPv4 without options or fragmentation,
    only ACK (and PSH) set, some payload."""
    if len(packet) < 40 or packet[0] != 0x45 or packet[9] != TCP_PROTOCOL:
        return None
    if (packet[6] & 0x3F) or packet[7]:  # MF or a fragment offset
        return None
    thl = (packet[32] >> 4) * 4
    total = (packet[2] << 8) | packet[3]
    flags = packet[33]
    if thl < 20 or total != len(packet) or 20 + thl > total:
        return None
    if flags & ~(TCP_ACK | TCP_PSH) or not flags & TCP_ACK:
        return None
    size = total - 20 - thl
    return (20, thl, size) if size > 0 else None


def coalesce(packets: list[bytes]) -> list[bytes]:
    """``packets`` (IPv4, in order) as TUN writes: each starts with a
    virtio_net_hdr; runs of in-order segments of one TCP flow (equal sizes
    but the last, nothing after a PSH, at most 64 and 64 KB) become one
    TCPV4 super-segment with NEEDS_CSUM, every other packet stays as it
    was behind a plain header. Order within a flow is kept."""
    out: list[bytes | _Flow] = []
    open_flows: dict[bytes, _Flow] = {}
    for packet in packets:
        shape = _joinable(packet)
        if shape is None:
            # a segment with other flags (SYN, FIN, RST ...) ends its flow's run
            if len(packet) >= 40 and packet[9] == TCP_PROTOCOL and packet[0] == 0x45:
                open_flows.pop(packet[12:20] + packet[20:24], None)
            out.append(packet)
            continue
        ihl, thl, size = shape
        flow_id = packet[12:20] + packet[20:24]
        key = _tcp_key(packet, ihl, thl)
        seq = _SEQ.unpack_from(packet, ihl + 4)[0]
        flow = open_flows.get(flow_id)
        if (flow is not None and flow.key == key and seq == flow.next_seq and size <= flow.mss
                and not flow.last_flags & TCP_PSH and len(flow.payloads) < MAX_COALESCE
                and flow.total + size <= IPV4_MAX_TOTAL and flow.payloads[-1].nbytes == flow.mss):
            flow.payloads.append(memoryview(packet)[ihl + thl:])
            flow.total += size
            flow.next_seq = (seq + size) & 0xFFFFFFFF
            flow.last_flags = packet[ihl + 13]
            continue
        flow = _Flow(packet, ihl, thl, key, size, (seq + size) & 0xFFFFFFFF,
                     [memoryview(packet)[ihl + thl:]], len(packet), packet[ihl + 13])
        open_flows[flow_id] = flow
        out.append(flow)
    return [PLAIN_VNET_HDR + item if isinstance(item, bytes) else _super_segment(item) for item in out]


def _super_segment(flow: _Flow) -> bytes:
    """One TUN write for a run: a single segment as it was; several as a
    TCPV4 GSO packet with the TCP checksum left for the kernel (the field
    holds the pseudo header's sum, not complemented)."""
    if len(flow.payloads) == 1:
        return PLAIN_VNET_HDR + flow.first
    ihl, head = flow.ihl, flow.ihl + flow.thl
    ip = bytearray(flow.first[:ihl])
    tcp = bytearray(flow.first[ihl:head])
    total = flow.total
    _IP_CHECKSUM.pack_into(ip, 2, total)
    ip[10:12] = b"\x00\x00"
    _IP_CHECKSUM.pack_into(ip, 10, _fold(int.from_bytes(ip, "big")))
    tcp[13] = (tcp[13] & ~TCP_PSH) | (flow.last_flags & TCP_PSH)
    _IP_CHECKSUM.pack_into(tcp, 16, _pseudo_sum(ip, TCP_PROTOCOL, total - ihl))
    vnet = VNET_HDR.pack(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, head, flow.mss, ihl,
                         TCP_CHECKSUM_OFFSET)
    return b"".join((vnet, ip, tcp, *flow.payloads))
