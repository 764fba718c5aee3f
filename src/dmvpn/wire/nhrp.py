"""NHRP packets (RFC 2332) as Cisco DMVPN sends them, encode and decode.

Layout (RFC 2332 5.1-5.3)::

    fixed header (20)   ar$afn ar$pro.type ar$pro.snap ar$hopcnt ar$pktsz
                        ar$chksum ar$extoff ar$op.version ar$op.type
                        ar$shtl ar$sstl
    mandatory part      src/dst protocol lengths, flags, request ID,
                        source NBMA (+subaddress), source and destination
                        protocol addresses, then CIEs (types 1-6) or the
                        embedded packet (7 Error Indication, 8 Cisco's
                        Traffic Indication)
    extensions          from ar$extoff: C|u|type (16), length (16), value;
                        the list ends with the End extension (type 0)

The checksum (RFC 2332 5.2.0.1) is the RFC 1071 sum over the whole NHRP
packet (``ar$pktsz`` bytes) with the field zero. Cisco rides NHRP directly in
GRE with protocol type 0x2001 (:data:`dmvpn.wire.gre.GRE_PROTO_NHRP`).

Cisco's forms, kept exactly so a decoded packet re-encodes to the same bytes:
cleartext authentication (RFC 2332 5.3.4 with a 4-byte type word 1 and the
password, no padding), the NAT address extension (type 9, C clear, a list of
CIEs), the ``0x0002`` "NAT capable" flag and Traffic Indication (type 8).
Every malformed input raises :class:`DecodeError`, never anything else.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace
from enum import IntEnum

from dmvpn.wire.errors import DecodeError
from dmvpn.wire.ipv4 import internet_checksum

AFN_IPV4 = 0x0001
PROTOCOL_IPV4 = 0x0800
NHRP_VERSION = 1
FIXED_HEADER_LEN = 20
DEFAULT_HOP_COUNT = 255  # Cisco originates every packet with 255 (NHRP.md 2.1)


class PacketType(IntEnum):
    """``ar$op.type`` (RFC 2332 5.2; 8 is Cisco's Traffic Indication)."""

    RESOLUTION_REQUEST = 1
    RESOLUTION_REPLY = 2
    REGISTRATION_REQUEST = 3
    REGISTRATION_REPLY = 4
    PURGE_REQUEST = 5
    PURGE_REPLY = 6
    ERROR_INDICATION = 7
    TRAFFIC_INDICATION = 8


class ExtensionType(IntEnum):
    """Extension types (RFC 2332 5.3; 9 is Cisco's NAT address)."""

    END = 0
    RESPONDER_ADDRESS = 3
    FORWARD_TRANSIT_NHS = 4
    REVERSE_TRANSIT_NHS = 5
    AUTHENTICATION = 7
    VENDOR_PRIVATE = 8
    NAT_ADDRESS = 9


class CieCode(IntEnum):
    """CIE codes (RFC 2332 5.2.2, 5.2.4)."""

    SUCCESS = 0
    ADMINISTRATIVELY_PROHIBITED = 4
    INSUFFICIENT_RESOURCES = 5
    NO_BINDING = 12
    BINDING_NOT_UNIQUE = 13
    UNIQUE_ADDRESS_REGISTERED = 14


class ErrorCode(IntEnum):
    """Error Indication codes (RFC 2332 5.2.7)."""

    UNRECOGNIZED_EXTENSION = 1
    LOOP_DETECTED = 3
    PROTOCOL_ADDRESS_UNREACHABLE = 6
    PROTOCOL_ERROR = 7
    SDU_SIZE_EXCEEDED = 8
    INVALID_EXTENSION = 9
    INVALID_RESOLUTION_REPLY = 10
    AUTHENTICATION_FAILURE = 11
    HOP_COUNT_EXCEEDED = 15


# Flags (RFC 2332 5.2.1, 5.2.3, 5.2.5; 0x0002 is Cisco's NAT capability).
FLAG_RES_Q = 0x8000
FLAG_RES_A = 0x4000
FLAG_RES_D = 0x2000
FLAG_RES_U = 0x1000
FLAG_RES_S = 0x0800
FLAG_REG_U = 0x8000
FLAG_PURGE_N = 0x8000
FLAG_CISCO_NAT = 0x0002
TRAFFIC_CODE_REDIRECT = 0

EXT_COMPULSORY = 0x8000
_EXT_RESERVED = 0x4000
_EXT_TYPE_MASK = 0x3FFF
_TL_TYPE_E164 = 0x40
_TL_RESERVED = 0x80
_TL_LEN = 0x3F
CISCO_AUTH_CLEARTEXT = 1

_FIXED = struct.Struct("!HH5sBHHHBBBB")
_COMMON = struct.Struct("!BBHI")
_CIE = struct.Struct("!BBHHHBBBB")
_EXT = struct.Struct("!HH")
_U32 = struct.Struct("!I")


@dataclass(frozen=True, slots=True)
class Cie:
    """A Client Information Entry (RFC 2332 5.2.0.1). Addresses are raw bytes;
    an empty one means "use the common header's" (Cisco registrations)."""

    code: int = CieCode.SUCCESS
    prefix_length: int = 0
    mtu: int = 0
    holding_time: int = 0
    client_nbma: bytes = b""
    client_nbma_subaddress: bytes = b""
    client_protocol: bytes = b""
    preference: int = 0
    reserved: int = 0
    nbma_e164: bool = False


@dataclass(frozen=True, slots=True)
class CieListExtension:
    """Responder Address (3), Forward/Reverse Transit NHS Record (4, 5) or
    Cisco's NAT address (9): a list of CIEs (RFC 2332 5.3.1-5.3.3)."""

    type: int
    cies: tuple[Cie, ...] = ()
    compulsory: bool = True


@dataclass(frozen=True, slots=True)
class AuthenticationExtension:
    """Authentication (RFC 2332 5.3.4) as Cisco sends it: a 32-bit type
    word (1 = cleartext) and the password bytes, unpadded."""

    auth_type: int
    value: bytes
    compulsory: bool = True
    type: int = ExtensionType.AUTHENTICATION


@dataclass(frozen=True, slots=True)
class VendorPrivateExtension:
    """Vendor-Private (RFC 2332 5.3.5): a 24-bit IEEE OUI and opaque data."""

    oui: int
    data: bytes = b""
    compulsory: bool = False
    type: int = ExtensionType.VENDOR_PRIVATE


@dataclass(frozen=True, slots=True)
class RawExtension:
    """End (type 0) or an extension this codec does not interpret."""

    type: int
    data: bytes = b""
    compulsory: bool = True


Extension = CieListExtension | AuthenticationExtension | VendorPrivateExtension | RawExtension
END_EXTENSION = RawExtension(ExtensionType.END)
_CIE_LIST_TYPES = frozenset(
    {
        ExtensionType.RESPONDER_ADDRESS,
        ExtensionType.FORWARD_TRANSIT_NHS,
        ExtensionType.REVERSE_TRANSIT_NHS,
        ExtensionType.NAT_ADDRESS,
    }
)


@dataclass(frozen=True, slots=True)
class NhrpPacket:
    """One NHRP packet. ``flags`` is the traffic code for type 8 and unused
    for type 7; ``request_id`` holds error code and offset for type 7 (see
    :attr:`error_code`). ``payload`` is the embedded packet of types 7/8.
    ``extensions`` lists every extension in wire order, End included."""

    type: int
    src_nbma: bytes
    src_protocol: bytes
    dst_protocol: bytes
    flags: int = 0
    request_id: int = 0
    cies: tuple[Cie, ...] = ()
    payload: bytes = b""
    extensions: tuple[Extension, ...] = ()
    hop_count: int = DEFAULT_HOP_COUNT
    afn: int = AFN_IPV4
    protocol_type: int = PROTOCOL_IPV4
    protocol_snap: bytes = bytes(5)
    version: int = NHRP_VERSION
    src_nbma_subaddress: bytes = b""
    nbma_e164: bool = False
    checksum: int = field(default=0, compare=False)

    @property
    def error_code(self) -> int:
        """Error Indication: the error code (RFC 2332 5.2.7)."""
        return self.request_id >> 16

    @property
    def error_offset(self) -> int:
        """Error Indication: offset of the error in the offending packet."""
        return self.request_id & 0xFFFF

    def extension(self, ext_type: int) -> Extension | None:
        """The first extension of ``ext_type``, or None."""
        for ext in self.extensions:
            if ext.type == ext_type:
                return ext
        return None

    def with_extension(self, new: Extension) -> NhrpPacket:
        """A copy with the first extension of ``new.type`` replaced by ``new``."""
        exts = tuple(new if e.type == new.type else e for e in self.extensions)
        return replace(self, extensions=exts)


# ---------------------------------------------------------------- encode


def _type_length(address: bytes, e164: bool, what: str) -> int:
    if len(address) > _TL_LEN:
        raise ValueError(f"NHRP {what} longer than 63 bytes")
    return len(address) | (_TL_TYPE_E164 if e164 else 0)


def encode_cie(cie: Cie) -> bytes:
    """A CIE's bytes (RFC 2332 5.2.0.1)."""
    head = _CIE.pack(
        cie.code,
        cie.prefix_length,
        cie.reserved,
        cie.mtu,
        cie.holding_time,
        _type_length(cie.client_nbma, cie.nbma_e164, "client NBMA address"),
        _type_length(cie.client_nbma_subaddress, False, "client NBMA subaddress"),
        len(cie.client_protocol),
        cie.preference,
    )
    return head + cie.client_nbma + cie.client_nbma_subaddress + cie.client_protocol


def _extension_value(ext: Extension) -> bytes:
    if isinstance(ext, CieListExtension):
        return b"".join(encode_cie(c) for c in ext.cies)
    if isinstance(ext, AuthenticationExtension):
        return _U32.pack(ext.auth_type) + ext.value
    if isinstance(ext, VendorPrivateExtension):
        return ext.oui.to_bytes(3, "big") + ext.data
    return ext.data


def encode_extensions(extensions: tuple[Extension, ...]) -> bytes:
    """The extension list in order (RFC 2332 5.3)."""
    out = []
    for ext in extensions:
        value = _extension_value(ext)
        word = (EXT_COMPULSORY if ext.compulsory else 0) | (ext.type & _EXT_TYPE_MASK)
        out.append(_EXT.pack(word, len(value)) + value)
    return b"".join(out)


def _mandatory(pkt: NhrpPacket) -> bytes:
    common = _COMMON.pack(len(pkt.src_protocol), len(pkt.dst_protocol), pkt.flags, pkt.request_id)
    addresses = pkt.src_nbma + pkt.src_nbma_subaddress + pkt.src_protocol + pkt.dst_protocol
    body = pkt.payload if pkt.type in (PacketType.ERROR_INDICATION, PacketType.TRAFFIC_INDICATION) else b""
    return common + addresses + b"".join(encode_cie(c) for c in pkt.cies) + body


def encode_nhrp(pkt: NhrpPacket) -> bytes:
    """The packet's bytes with ``ar$pktsz``, ``ar$extoff`` and the checksum
    computed (RFC 2332 5.2.0.1)."""
    mandatory = _mandatory(pkt)
    extensions = encode_extensions(pkt.extensions)
    extoff = FIXED_HEADER_LEN + len(mandatory) if pkt.extensions else 0
    size = FIXED_HEADER_LEN + len(mandatory) + len(extensions)
    if size > 0xFFFF:
        raise ValueError("NHRP packet longer than 65535 bytes")
    fixed = _FIXED.pack(
        pkt.afn,
        pkt.protocol_type,
        pkt.protocol_snap,
        pkt.hop_count,
        size,
        0,
        extoff,
        pkt.version,
        pkt.type,
        _type_length(pkt.src_nbma, pkt.nbma_e164, "source NBMA address"),
        _type_length(pkt.src_nbma_subaddress, False, "source NBMA subaddress"),
    )
    raw = fixed + mandatory + extensions
    checksum = internet_checksum(raw)
    return raw[:12] + checksum.to_bytes(2, "big") + raw[14:]


# ---------------------------------------------------------------- decode


def _take(data: bytes, offset: int, n: int, end: int, what: str) -> bytes:
    if offset + n > end:
        raise DecodeError(offset, f"{what} truncated: need {n} bytes, {max(end - offset, 0)} left")
    return data[offset : offset + n]


def _tl(value: int, offset: int, what: str) -> tuple[int, bool]:
    if value & _TL_RESERVED:
        raise DecodeError(offset, f"{what} type/length 0x{value:02x} has the reserved bit set")
    return value & _TL_LEN, bool(value & _TL_TYPE_E164)


def decode_cie(data: bytes, offset: int, end: int) -> tuple[Cie, int]:
    """One CIE at ``offset`` (bounded by ``end``); returns it and the next offset."""
    head = _take(data, offset, _CIE.size, end, "CIE")
    code, prefix, reserved, mtu, htime, ntl, nstl, plen, pref = _CIE.unpack(head)
    nbma_len, e164 = _tl(ntl, offset + 8, "CIE client NBMA")
    sub_len, _ = _tl(nstl, offset + 9, "CIE client NBMA subaddress")
    at = offset + _CIE.size
    nbma = _take(data, at, nbma_len, end, "CIE client NBMA address")
    sub = _take(data, at + nbma_len, sub_len, end, "CIE client NBMA subaddress")
    proto = _take(data, at + nbma_len + sub_len, plen, end, "CIE client protocol address")
    cie = Cie(code, prefix, mtu, htime, nbma, sub, proto, pref, reserved, e164)
    return cie, at + nbma_len + sub_len + plen


def _decode_cies(data: bytes, offset: int, end: int) -> tuple[Cie, ...]:
    cies = []
    while offset < end:
        cie, offset = decode_cie(data, offset, end)
        cies.append(cie)
    return tuple(cies)


def _decode_extension(ext_type: int, compulsory: bool, data: bytes, offset: int, end: int) -> Extension:
    value = data[offset:end]
    if ext_type in _CIE_LIST_TYPES:
        return CieListExtension(ext_type, _decode_cies(data, offset, end), compulsory)
    if ext_type == ExtensionType.AUTHENTICATION:
        if len(value) < 4:
            raise DecodeError(offset, f"authentication extension of {len(value)} bytes, need at least 4")
        return AuthenticationExtension(_U32.unpack_from(value)[0], value[4:], compulsory)
    if ext_type == ExtensionType.VENDOR_PRIVATE:
        if len(value) < 3:
            raise DecodeError(offset, f"vendor-private extension of {len(value)} bytes, need at least 3")
        return VendorPrivateExtension(int.from_bytes(value[:3], "big"), value[3:], compulsory)
    if ext_type == ExtensionType.END and value:
        raise DecodeError(offset, f"End extension with {len(value)} bytes of value")
    return RawExtension(ext_type, value, compulsory)


def decode_extensions(data: bytes, offset: int, end: int) -> tuple[Extension, ...]:
    """The extension list from ``offset`` up to the End extension (RFC 2332 5.3)."""
    exts: list[Extension] = []
    while offset < end:
        word, length = _EXT.unpack(_take(data, offset, 4, end, "extension header"))
        if word & _EXT_RESERVED:
            raise DecodeError(offset, f"extension 0x{word:04x} has the reserved u bit set")
        value_end = offset + 4 + length
        if value_end > end:
            raise DecodeError(offset + 2, f"extension length {length} runs past the packet end {end}")
        exts.append(_decode_extension(word & _EXT_TYPE_MASK, bool(word & EXT_COMPULSORY), data, offset + 4, value_end))
        offset = value_end
        if exts[-1].type == ExtensionType.END:
            if offset != end:
                raise DecodeError(offset, f"{end - offset} bytes after the End extension")
            return tuple(exts)
    raise DecodeError(end, "extension list has no End extension")


def _decode_fixed(
    data: bytes, verify_checksum: bool
) -> tuple[tuple[int, int, bytes, int, int, int, int, int, int, int, int], int, int]:
    if len(data) < FIXED_HEADER_LEN:
        raise DecodeError(0, f"NHRP fixed header truncated: {len(data)} bytes, need 20")
    fields: tuple[int, int, bytes, int, int, int, int, int, int, int, int] = _FIXED.unpack_from(data)
    size, extoff, version = fields[4], fields[6], fields[7]
    if version != NHRP_VERSION:
        raise DecodeError(16, f"NHRP version {version} is not 1")
    if size < FIXED_HEADER_LEN or size > len(data):
        raise DecodeError(10, f"ar$pktsz {size} outside 20..{len(data)} (bytes received)")
    if extoff and not FIXED_HEADER_LEN + _COMMON.size <= extoff <= size:
        raise DecodeError(14, f"ar$extoff {extoff} outside {FIXED_HEADER_LEN + _COMMON.size}..{size}")
    if verify_checksum and internet_checksum(data[:size]) != 0:
        raise DecodeError(12, f"NHRP checksum 0x{fields[5]:04x} is wrong")
    return fields, size, extoff


def decode_nhrp(data: bytes, *, verify_checksum: bool = True) -> NhrpPacket:
    """Decode one NHRP packet (bytes after the GRE header).

    Bytes beyond ``ar$pktsz`` are ignored (link padding). Raises
    :class:`DecodeError` for anything malformed, including a bad checksum
    when ``verify_checksum``."""
    data = bytes(data)
    fields, size, extoff = _decode_fixed(data, verify_checksum)
    afn, pro_type, snap, hops, _size, checksum, _extoff, version, op_type, shtl, sstl = fields
    mandatory_end = extoff or size
    src_plen, dst_plen, flags, request_id = _COMMON.unpack(
        _take(data, 20, _COMMON.size, mandatory_end, "mandatory part")
    )
    nbma_len, e164 = _tl(shtl, 18, "ar$shtl")
    sub_len, _ = _tl(sstl, 19, "ar$sstl")
    at = FIXED_HEADER_LEN + _COMMON.size
    src_nbma = _take(data, at, nbma_len, mandatory_end, "source NBMA address")
    sub = _take(data, at + nbma_len, sub_len, mandatory_end, "source NBMA subaddress")
    at += nbma_len + sub_len
    src_proto = _take(data, at, src_plen, mandatory_end, "source protocol address")
    dst_proto = _take(data, at + src_plen, dst_plen, mandatory_end, "destination protocol address")
    at += src_plen + dst_plen
    cies: tuple[Cie, ...] = ()
    payload = b""
    if op_type in (PacketType.ERROR_INDICATION, PacketType.TRAFFIC_INDICATION):
        payload = data[at:mandatory_end]
    else:
        cies = _decode_cies(data, at, mandatory_end)
    exts = decode_extensions(data, extoff, size) if extoff else ()
    return NhrpPacket(
        op_type, src_nbma, src_proto, dst_proto, flags, request_id, cies, payload, exts,
        hops, afn, pro_type, snap, version, sub, e164, checksum,
    )  # fmt: skip
