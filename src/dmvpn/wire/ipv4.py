"""IPv4 header encode/decode (RFC 791 section 3.1) and the Internet checksum
(RFC 1071).

Addresses travel as dotted-quad strings at the API and as 4 bytes on the
wire. Decoding never trusts a length field: every length is checked against
the buffer, and a bad header raises :class:`DecodeError` naming the offset.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache

from dmvpn.wire.errors import DecodeError

IPV4_MIN_HEADER = 20
_HEADER = struct.Struct("!BBHHHBBH4s4s")
_FLAG_DF = 0x4000
_FLAG_MF = 0x2000
_FLAG_RESERVED = 0x8000


class IpProto(IntEnum):
    """Assigned Internet Protocol numbers (IANA) used in this project."""

    ICMP = 1
    TCP = 6
    UDP = 17
    GRE = 47
    ESP = 50
    AH = 51


def internet_checksum(data: bytes) -> int:
    """The 16-bit one's complement of the one's complement sum (RFC 1071).

    An odd trailing byte is padded with zero. Checksumming a buffer that
    already holds a correct checksum yields 0.

    Because 2**16 is 1 modulo 0xFFFF, the end-around-carry sum of the 16-bit
    words is the whole buffer, read as one big-endian integer, modulo 0xFFFF
    (RFC 1071 section 2 (B)), except that a nonzero buffer whose sum is a
    multiple of 0xFFFF folds to 0xFFFF ("negative zero"), not 0.
    """
    if len(data) % 2:
        data = bytes(data) + b"\x00"
    value = int.from_bytes(data, "big")
    total = value % 0xFFFF
    if total == 0 and value:
        total = 0xFFFF
    return 0xFFFF - total


@lru_cache(maxsize=4096)
def parse_ipv4_address(text: str) -> bytes:
    """Dotted quad -> 4 bytes; ``ValueError`` naming the text if malformed."""
    parts = text.split(".")
    if len(parts) != 4 or not all(p.isdigit() and len(p) <= 3 for p in parts):
        raise ValueError(f"invalid IPv4 address {text!r}")
    values = [int(p) for p in parts]
    if any(v > 255 for v in values):
        raise ValueError(f"invalid IPv4 address {text!r}")
    return bytes(values)


@lru_cache(maxsize=4096)
def format_ipv4_address(raw: bytes) -> str:
    """4 bytes -> dotted quad."""
    return "%d.%d.%d.%d" % (raw[0], raw[1], raw[2], raw[3])


@dataclass(slots=True)
class IPv4Header:
    """The fields of an IPv4 header (RFC 791 section 3.1).

    ``fragment_offset`` is in 8-octet units as on the wire. ``total_length``
    and ``checksum`` are what a decoded header carried; :meth:`encode`
    computes both afresh.
    """

    src: str
    dst: str
    protocol: int
    ttl: int = 64
    identification: int = 0
    tos: int = 0
    dont_fragment: bool = False
    more_fragments: bool = False
    fragment_offset: int = 0
    options: bytes = b""
    total_length: int = 0
    checksum: int = 0

    @property
    def header_length(self) -> int:
        """Header length in bytes (IHL * 4)."""
        return IPV4_MIN_HEADER + len(self.options)

    def encode(self, payload: bytes) -> bytes:
        """The whole datagram: this header (length and checksum filled in)
        followed by ``payload``. Options must be a multiple of 4 bytes."""
        options = self.options
        if options and (len(options) % 4 or len(options) > 40):
            raise ValueError("IPv4 options must be a multiple of 4 bytes, at most 40")
        hlen = IPV4_MIN_HEADER + len(options)
        total = hlen + len(payload)
        if total > 0xFFFF:
            raise ValueError(f"IPv4 datagram of {total} bytes exceeds 65535")
        header = _HEADER.pack(
            0x40 | (hlen // 4),
            self.tos,
            total,
            self.identification & 0xFFFF,
            (_FLAG_DF if self.dont_fragment else 0) | (_FLAG_MF if self.more_fragments else 0)
            | (self.fragment_offset & 0x1FFF),
            self.ttl,
            self.protocol,
            0,
            parse_ipv4_address(self.src),
            parse_ipv4_address(self.dst),
        ) + options
        # The header is never all zero (version nibble), so its one's
        # complement sum is its value modulo 0xFFFF, or 0xFFFF if that is 0.
        checksum = 0xFFFF - (int.from_bytes(header, "big") % 0xFFFF or 0xFFFF)
        return header[:10] + checksum.to_bytes(2, "big") + header[12:] + payload


def decode_ipv4(data: bytes, *, verify_checksum: bool = True) -> tuple[IPv4Header, bytes]:
    """Split an IPv4 datagram into its header and payload (RFC 791 3.1).

    Bytes past ``total_length`` (link-layer padding) are ignored. Raises
    :class:`DecodeError` for a short buffer, a version other than 4, a bad
    IHL or total length, reserved flag set, or (if asked) a bad checksum.
    """
    if len(data) < IPV4_MIN_HEADER:
        raise DecodeError(0, f"IPv4 header truncated: {len(data)} bytes, need 20")
    (vihl, tos, total, ident, frag, ttl, proto, checksum, src, dst) = _HEADER.unpack_from(data)
    if vihl == 0x45:  # the common case: version 4, no options
        hlen = IPV4_MIN_HEADER
    else:
        if vihl >> 4 != 4:
            raise DecodeError(0, f"IPv4 version is {vihl >> 4}, expected 4")
        hlen = (vihl & 0x0F) * 4
        if hlen < IPV4_MIN_HEADER:
            raise DecodeError(0, f"IPv4 IHL {hlen // 4} is below the minimum 5")
    if total < hlen:
        raise DecodeError(2, f"IPv4 total length {total} is shorter than the header ({hlen})")
    if total > len(data):
        raise DecodeError(2, f"IPv4 total length {total} exceeds the {len(data)} bytes received")
    if frag & _FLAG_RESERVED:
        raise DecodeError(6, "IPv4 reserved flag bit is set")
    # A correct header sums to 0xFFFF, i.e. it is a nonzero multiple of
    # 0xFFFF read as one integer (see internet_checksum); the version nibble
    # makes it nonzero.
    if verify_checksum and int.from_bytes(data[:hlen], "big") % 0xFFFF:
        raise DecodeError(10, f"IPv4 header checksum 0x{checksum:04x} is wrong")
    header = IPv4Header(  # positional: this is the hot path
        format_ipv4_address(src), format_ipv4_address(dst), proto, ttl, ident, tos,
        bool(frag & _FLAG_DF), bool(frag & _FLAG_MF), frag & 0x1FFF,
        bytes(data[IPV4_MIN_HEADER:hlen]) if hlen > IPV4_MIN_HEADER else b"",
        total, checksum,
    )
    return header, bytes(data[hlen:total])
