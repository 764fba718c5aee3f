"""GRE header encode/decode (RFC 2784, with the key and sequence number
extensions of RFC 2890).

::

    |C| |K|S| Reserved0 (9) | Ver (3) |   Protocol Type (16)   |
    |   Checksum (16, if C)  |       Reserved1 (16, if C)      |
    |                    Key (32, if K)                        |
    |              Sequence Number (32, if S)                  |

Cisco DMVPN carries IPv4 (0x0800) and NHRP (0x2001) with a tunnel key.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from dmvpn.wire.errors import DecodeError
from dmvpn.wire.ipv4 import internet_checksum

GRE_PROTO_IPV4 = 0x0800
GRE_PROTO_NHRP = 0x2001  # Cisco DMVPN's NHRP over GRE

FLAG_C = 0x8000  # checksum present (RFC 2784 2.1)
FLAG_K = 0x2000  # key present (RFC 2890 2.1)
FLAG_S = 0x1000  # sequence number present (RFC 2890 2.1)
_VERSION_MASK = 0x0007
# RFC 2784 2.3: bits 1-5 of Reserved0 non-zero (other than K and S, which
# RFC 2890 defines) means an RFC 1701 header we must discard.
_RESERVED_MUST_BE_ZERO = 0x4000 | 0x0800 | 0x0400 | 0x0200 | 0x0100 | 0x0080 | 0x0040 | 0x0020 | 0x0010 | 0x0008

_U16x2 = struct.Struct("!HH")
_U32 = struct.Struct("!I")


@dataclass(frozen=True, slots=True)
class GreHeader:
    """The decoded fields of a GRE header. ``checksum_ok`` is None when no
    checksum was present."""

    protocol: int
    key: int | None = None
    sequence: int | None = None
    checksum_present: bool = False
    checksum_ok: bool | None = None


def encode_gre(
    protocol: int,
    payload: bytes,
    *,
    key: int | None = None,
    sequence: int | None = None,
    checksum: bool = False,
) -> bytes:
    """GRE header + ``payload``. With ``checksum`` the RFC 1071 checksum
    covers header and payload (RFC 2784 2.5)."""
    flags = (FLAG_C if checksum else 0) | (FLAG_K if key is not None else 0) | (FLAG_S if sequence is not None else 0)
    parts = [_U16x2.pack(flags, protocol)]
    if checksum:
        parts.append(b"\x00\x00\x00\x00")
    if key is not None:
        parts.append(_U32.pack(key & 0xFFFFFFFF))
    if sequence is not None:
        parts.append(_U32.pack(sequence & 0xFFFFFFFF))
    parts.append(payload)
    packet = b"".join(parts)
    if checksum:
        value = internet_checksum(packet)
        packet = packet[:4] + value.to_bytes(2, "big") + packet[6:]
    return packet


def decode_gre(data: bytes) -> tuple[GreHeader, bytes]:
    """Split a GRE packet into header fields and payload.

    Raises :class:`DecodeError` for a truncated header, a version other than
    0, or RFC 1701 flags (routing, strict source route, recursion) set.
    A present checksum is verified and reported in ``checksum_ok``.
    """
    if len(data) < 4:
        raise DecodeError(0, f"GRE header truncated: {len(data)} bytes, need 4")
    flags, protocol = _U16x2.unpack_from(data)
    if flags & _VERSION_MASK:
        raise DecodeError(1, f"GRE version {flags & _VERSION_MASK} is not 0")
    if flags & _RESERVED_MUST_BE_ZERO:
        raise DecodeError(0, f"GRE reserved flag bits set (0x{flags & _RESERVED_MUST_BE_ZERO:04x})")
    offset = 4
    need = 4 + (4 if flags & FLAG_C else 0) + (4 if flags & FLAG_K else 0) + (4 if flags & FLAG_S else 0)
    if len(data) < need:
        raise DecodeError(len(data), f"GRE header truncated: flags 0x{flags:04x} need {need} bytes")
    checksum_ok = None
    if flags & FLAG_C:
        checksum_ok = internet_checksum(data) == 0
        offset += 4
    key = sequence = None
    if flags & FLAG_K:
        key = _U32.unpack_from(data, offset)[0]
        offset += 4
    if flags & FLAG_S:
        sequence = _U32.unpack_from(data, offset)[0]
        offset += 4
    header = GreHeader(protocol, key, sequence, bool(flags & FLAG_C), checksum_ok)
    return header, bytes(data[offset:])
