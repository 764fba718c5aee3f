"""ICMP messages (RFC 792), with helpers for Echo and Echo Reply.

Every ICMP message is type, code, checksum and four type-specific bytes
("rest of header"), then data. For Echo / Echo Reply the four bytes are the
identifier and the sequence number, and the data is echoed back unchanged.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from dmvpn.wire.errors import DecodeError
from dmvpn.wire.ipv4 import internet_checksum

ICMP_HEADER = 8
_HEADER = struct.Struct("!BBH4s")


class IcmpType(IntEnum):
    """ICMP message types (RFC 792)."""

    ECHO_REPLY = 0
    DESTINATION_UNREACHABLE = 3
    ECHO_REQUEST = 8
    TIME_EXCEEDED = 11


@dataclass(slots=True)
class IcmpMessage:
    """One ICMP message (RFC 792). ``rest`` is the 4 type-specific bytes."""

    type: int
    code: int
    rest: bytes
    data: bytes = b""

    @classmethod
    def echo(cls, *, reply: bool, identifier: int, sequence: int, data: bytes = b"") -> IcmpMessage:
        """An Echo (type 8) or Echo Reply (type 0) message (RFC 792 p. 14)."""
        kind = IcmpType.ECHO_REPLY if reply else IcmpType.ECHO_REQUEST
        return cls(int(kind), 0, struct.pack("!HH", identifier & 0xFFFF, sequence & 0xFFFF), data)

    @property
    def identifier(self) -> int:
        """Echo identifier (first two bytes of ``rest``)."""
        return int.from_bytes(self.rest[:2], "big")

    @property
    def sequence(self) -> int:
        """Echo sequence number (last two bytes of ``rest``)."""
        return int.from_bytes(self.rest[2:4], "big")

    def encode(self) -> bytes:
        """The message with its checksum computed over header and data."""
        if len(self.rest) != 4:
            raise ValueError("ICMP rest-of-header must be 4 bytes")
        body = _HEADER.pack(self.type, self.code, 0, self.rest) + self.data
        checksum = internet_checksum(body)
        return body[:2] + checksum.to_bytes(2, "big") + body[4:]


def decode_icmp(data: bytes, *, verify_checksum: bool = True) -> IcmpMessage:
    """Decode an ICMP message (the IPv4 payload), checking the checksum."""
    if len(data) < ICMP_HEADER:
        raise DecodeError(0, f"ICMP header truncated: {len(data)} bytes, need 8")
    kind, code, checksum, rest = _HEADER.unpack_from(data)
    if verify_checksum and internet_checksum(data) != 0:
        raise DecodeError(2, f"ICMP checksum 0x{checksum:04x} is wrong")
    return IcmpMessage(kind, code, rest, bytes(data[ICMP_HEADER:]))
