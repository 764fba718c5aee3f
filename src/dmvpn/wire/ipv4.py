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
#: a header as HeaderTemplate fills it: version..TOS, length, identification..protocol, checksum, addresses
_TEMPLATE = struct.Struct("!2sH6sH8s")
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
    return f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}"


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
        return header[:10] + _header_checksum(header) + header[12:] + payload


def _header_checksum(header: bytes) -> bytes:
    """The checksum field for ``header`` whose checksum bytes are zero: the
    header is never all zero (version nibble), so its one's complement sum
    is its value modulo 0xFFFF, or 0xFFFF if that is 0 (RFC 1071)."""
    return (0xFFFF - (int.from_bytes(header, "big") % 0xFFFF or 0xFFFF)).to_bytes(2, "big")


def ipv4_lengths(data: bytes, *, verify_checksum: bool = False) -> tuple[int, int]:
    """(header length, total length) of the IPv4 datagram ``data``, checked
    as :func:`decode_ipv4` checks them (and the header checksum if asked),
    without decoding the other fields: the packet path's way to find the
    payload (RFC 791 3.1)."""
    if len(data) < IPV4_MIN_HEADER:
        raise DecodeError(0, f"IPv4 header truncated: {len(data)} bytes, need 20")
    vihl = data[0]
    if vihl == 0x45:
        hlen = IPV4_MIN_HEADER
    else:
        if vihl >> 4 != 4:
            raise DecodeError(0, f"IPv4 version is {vihl >> 4}, expected 4")
        hlen = (vihl & 0x0F) * 4
        if hlen < IPV4_MIN_HEADER:
            raise DecodeError(0, f"IPv4 IHL {hlen // 4} is below the minimum 5")
    total = (data[2] << 8) | data[3]
    if total < hlen:
        raise DecodeError(2, f"IPv4 total length {total} is shorter than the header ({hlen})")
    if total > len(data):
        raise DecodeError(2, f"IPv4 total length {total} exceeds the {len(data)} bytes received")
    if verify_checksum and int.from_bytes(data[:hlen], "big") % 0xFFFF:  # _check_header_checksum, inlined
        _check_header_checksum(data, hlen)
    return hlen, total


def _check_header_checksum(data: bytes, hlen: int) -> None:
    """Raise :class:`DecodeError` unless the header's checksum is right: a
    correct header sums to 0xFFFF, i.e. it is a nonzero multiple of 0xFFFF
    read as one integer (see internet_checksum); the version nibble makes
    it nonzero."""
    if int.from_bytes(data[:hlen], "big") % 0xFFFF:
        raise DecodeError(10, f"IPv4 header checksum 0x{(data[10] << 8) | data[11]:04x} is wrong")


def rewrite_header(header: bytes, total_length: int, protocol: int) -> bytes:
    """A copy of the IPv4 header ``header`` (options included) with a new
    total length and protocol and the checksum recomputed; every other
    field is kept (RFC 4303 section 3.1.1: a transport-mode ESP packet keeps
    the original header, its protocol becomes 50, and the reverse)."""
    zeroed = b"".join((header[:2], total_length.to_bytes(2, "big"), header[4:9], bytes((protocol,)),
                       b"\x00\x00", header[12:]))
    return zeroed[:10] + _header_checksum(zeroed) + zeroed[12:]


#: Payload lengths a :class:`HeaderTemplate` keeps built headers for before it starts over.
HEADER_CACHE_SIZE = 256


class HeaderTemplate:
    """Many datagrams between the same two addresses with the same
    protocol, TTL and TOS (identification 0, no options, DF clear): the
    fixed fields are packed once and the checksum updated for each total
    length. Since 2**16 is 1 modulo 0xFFFF, the total length field adds its
    value to the header's sum (RFC 1071, RFC 1624)."""

    __slots__ = ("_addresses", "_by_length", "_head", "_middle", "_sum")

    def __init__(self, src: str, dst: str, protocol: int, ttl: int = 64, tos: int = 0) -> None:
        empty = IPv4Header(src, dst, protocol, ttl=ttl, tos=tos).encode(b"")
        self._head = empty[:2]
        self._middle = empty[4:10]
        self._addresses = empty[12:]
        #: the one's complement sum (modulo 0xFFFF) of the fixed fields
        self._sum = int.from_bytes(empty[:2] + b"\x00\x00" + empty[4:10] + b"\x00\x00" + empty[12:], "big") % 0xFFFF
        #: headers already built, by payload length (a bulk flow has a few)
        self._by_length: dict[int, bytes] = {}

    def header(self, payload_length: int) -> bytes:
        """The 20 header bytes (length and checksum filled in) of a datagram
        carrying ``payload_length`` bytes."""
        built = self._by_length.get(payload_length)
        if built is not None:
            return built
        built = self._build(payload_length)
        if len(self._by_length) >= HEADER_CACHE_SIZE:
            self._by_length.clear()
        self._by_length[payload_length] = built
        return built

    def _build(self, payload_length: int) -> bytes:
        """The headers for ``payload_length`` bytes, not yet cached."""
        total = IPV4_MIN_HEADER + payload_length
        if total > 0xFFFF:
            raise ValueError(f"IPv4 datagram of {total} bytes exceeds 65535")
        checksum = 0xFFFF - ((self._sum + total) % 0xFFFF or 0xFFFF)
        return _TEMPLATE.pack(self._head, total, self._middle, checksum, self._addresses)

    def encode(self, payload: bytes) -> bytes:
        """The whole datagram: header (length and checksum filled in) + ``payload``."""
        return self.header(len(payload)) + payload


@lru_cache(maxsize=1024)
def header_template(src: str, dst: str, protocol: int, ttl: int = 64, tos: int = 0) -> HeaderTemplate:
    """The (shared) :class:`HeaderTemplate` for these fields."""
    return HeaderTemplate(src, dst, protocol, ttl, tos)


def decode_ipv4(data: bytes, *, verify_checksum: bool = True) -> tuple[IPv4Header, bytes]:
    """Split an IPv4 datagram into its header and payload (RFC 791 3.1).

    Bytes past ``total_length`` (link-layer padding) are ignored. Raises
    :class:`DecodeError` for a short buffer, a version other than 4, a bad
    IHL or total length, reserved flag set, or (if asked) a bad checksum.
    """
    hlen, total = ipv4_lengths(data)
    (_vihl, tos, _total, ident, frag, ttl, proto, checksum, src, dst) = _HEADER.unpack_from(data)
    if frag & _FLAG_RESERVED:
        raise DecodeError(6, "IPv4 reserved flag bit is set")
    if verify_checksum:
        _check_header_checksum(data, hlen)
    header = IPv4Header(  # positional: this is the hot path
        format_ipv4_address(src), format_ipv4_address(dst), proto, ttl, ident, tos,
        bool(frag & _FLAG_DF), bool(frag & _FLAG_MF), frag & 0x1FFF,
        bytes(data[IPV4_MIN_HEADER:hlen]) if hlen > IPV4_MIN_HEADER else b"",
        total, checksum,
    )
    return header, bytes(data[hlen:total])
