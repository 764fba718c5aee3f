"""UDP header encode/decode with the pseudo-header checksum (RFC 768).

The checksum covers a pseudo header (source and destination IPv4 address,
zero, protocol 17, UDP length), the UDP header and the data. A computed
checksum of 0 is sent as 0xFFFF; a received checksum of 0 means "none".
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache

from dmvpn.wire.errors import DecodeError
from dmvpn.wire.ipv4 import HeaderTemplate, IpProto, internet_checksum, parse_ipv4_address

UDP_HEADER = 8
_HEADER = struct.Struct("!HHHH")


def _pseudo_header(src: str, dst: str, length: int) -> bytes:
    """RFC 768 pseudo header for IPv4."""
    return (
        parse_ipv4_address(src)
        + parse_ipv4_address(dst)
        + bytes((0, IpProto.UDP))
        + length.to_bytes(2, "big")
    )


@dataclass(slots=True)
class UdpDatagram:
    """A decoded UDP datagram (RFC 768). ``checksum`` is as received."""

    src_port: int
    dst_port: int
    payload: bytes
    checksum: int = 0


def encode_udp(src: str, dst: str, src_port: int, dst_port: int, payload: bytes) -> bytes:
    """UDP header + ``payload`` with the checksum computed over the pseudo
    header for ``src`` -> ``dst`` (RFC 768)."""
    length = UDP_HEADER + len(payload)
    if length > 0xFFFF:
        raise ValueError(f"UDP datagram of {length} bytes exceeds 65535")
    for port in (src_port, dst_port):
        if not 0 <= port <= 0xFFFF:
            raise ValueError(f"UDP port {port} out of range 0-65535")
    header = _HEADER.pack(src_port, dst_port, length, 0)
    checksum = internet_checksum(_pseudo_header(src, dst, length) + header + payload) or 0xFFFF
    return header[:6] + checksum.to_bytes(2, "big") + payload


def decode_udp(data: bytes, src: str | None = None, dst: str | None = None) -> UdpDatagram:
    """Decode a UDP datagram (the IPv4 payload). When ``src`` and ``dst`` are
    given and the checksum is not 0, it is verified against the pseudo
    header. Bytes past the UDP length field are ignored."""
    if len(data) < UDP_HEADER:
        raise DecodeError(0, f"UDP header truncated: {len(data)} bytes, need 8")
    src_port, dst_port, length, checksum = _HEADER.unpack_from(data)
    if length < UDP_HEADER:
        raise DecodeError(4, f"UDP length {length} is shorter than the header")
    if length > len(data):
        raise DecodeError(4, f"UDP length {length} exceeds the {len(data)} bytes received")
    if (checksum and src is not None and dst is not None
            and internet_checksum(_pseudo_header(src, dst, length) + bytes(data[:length])) != 0):
        raise DecodeError(6, f"UDP checksum 0x{checksum:04x} is wrong")
    return UdpDatagram(src_port, dst_port, bytes(data[UDP_HEADER:length]), checksum)


class UdpHeaderTemplate(HeaderTemplate):
    """The IPv4 + UDP headers (28 bytes) in front of many datagrams between
    the same two sockets, UDP checksum zero: what ESP in UDP sends (RFC 3948
    section 2.1: the checksum SHOULD be transmitted as zero; the ESP ICV
    protects the payload). A :class:`~dmvpn.wire.ipv4.HeaderTemplate` whose
    :meth:`header` (cached alike) is both headers, so ESP builds them in the
    same copy as its own packet."""

    __slots__ = ("_ports",)

    def __init__(self, src: str, dst: str, src_port: int, dst_port: int, ttl: int = 64, tos: int = 0) -> None:
        for port in (src_port, dst_port):
            if not 0 <= port <= 0xFFFF:
                raise ValueError(f"UDP port {port} out of range 0-65535")
        super().__init__(src, dst, IpProto.UDP, ttl, tos)
        self._ports = _HEADER.pack(src_port, dst_port, 0, 0)[:4]

    def _build(self, payload_length: int) -> bytes:
        length = UDP_HEADER + payload_length
        if length > 0xFFFF:
            raise ValueError(f"UDP datagram of {length} bytes exceeds 65535")
        return b"".join((super()._build(length), self._ports, length.to_bytes(2, "big"), b"\x00\x00"))


@lru_cache(maxsize=1024)
def udp_header_template(src: str, dst: str, src_port: int, dst_port: int, ttl: int = 64,
                        tos: int = 0) -> UdpHeaderTemplate:
    """The (shared) :class:`UdpHeaderTemplate` for these sockets."""
    return UdpHeaderTemplate(src, dst, src_port, dst_port, ttl, tos)
