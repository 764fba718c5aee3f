"""ISAKMP messages: header, payload chain, encryption, NAT-T framing.

The fixed header (RFC 2408 section 3.1) is followed by a chain of payloads,
each starting with the generic payload header (section 3.2) whose Next
Payload field names the type of the payload after it. With the Encryption
flag set, everything after the header is CBC-encrypted with the phase-1 key;
the IV for each message is the last ciphertext block of the previous one in
the same exchange (RFC 2409 appendix B). On UDP 4500 ISAKMP travels behind a
4-byte non-ESP marker, and a lone 0xFF byte is a NAT keepalive (RFC 3948
sections 2.2-2.3).

Usage::

    msg = IsakmpMessage(cky_i, cky_r, ExchangeType.QUICK_MODE, message_id=mid,
                        payloads=[HashPayload(h), SaPayload([...]), NoncePayload(ni)])
    wire, next_iv = encrypt_message(msg, cipher, key, iv)
    msg2, next_iv = decrypt_message(wire, cipher, key, iv)
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TypeVar

from dmvpn.crypto.ike_algorithms import IkeCipher
from dmvpn.wire.errors import DecodeError
from dmvpn.wire.isakmp_payloads import GENERIC_HEADER_LEN, Payload, decode_payload_body
from dmvpn.wire.isakmp_registry import ExchangeType, HeaderFlags, PayloadType, enum_or_int

HEADER_LEN = 28
IKEV1_VERSION = 0x10  # major 1, minor 0
#: Offset of the Version octet (MjVer | MnVer) in the fixed header; IKEv2
#: keeps the same layout (RFC 7296 section 3.1), so it tells the two apart.
VERSION_OFFSET = 17
#: UDP port of ISAKMP/IKE (assigned by IANA to RFC 2408) ...
IKE_PORT = 500
#: ... and of IKE after the NAT-T float, shared with ESP in UDP (RFC 3947 section 4, RFC 3948).
NAT_T_PORT = 4500
NON_ESP_MARKER = b"\x00\x00\x00\x00"
NAT_KEEPALIVE = b"\xff"
_HEADER = struct.Struct("!8s8sBBBBII")
_P = TypeVar("_P")


@dataclass(slots=True)
class IsakmpMessage:
    """One ISAKMP message (RFC 2408 section 3.1 header plus payloads).

    ``encode()`` fills in the Next Payload chain and all lengths. After
    decoding, ``raw_payloads`` holds each payload exactly as received
    (generic header included), for hashes such as HASH(1) (RFC 2409 5.5)
    and SAi_b (section 5) that cover the bytes as sent. If the message is
    encrypted and was not decrypted, ``payloads`` is empty and
    ``encrypted_body`` holds the ciphertext; ``first_payload`` is the header's
    Next Payload field as received.
    """

    initiator_cookie: bytes
    responder_cookie: bytes = bytes(8)
    exchange_type: int = ExchangeType.IDENTITY_PROTECTION
    flags: int = 0
    message_id: int = 0
    payloads: list[Payload] = field(default_factory=list)
    version: int = IKEV1_VERSION
    first_payload: int = PayloadType.NONE
    encrypted_body: bytes | None = None
    raw_payloads: list[bytes] = field(default_factory=list, compare=False, repr=False)

    @property
    def encrypted(self) -> bool:
        """True if the header's Encryption flag is set."""
        return bool(self.flags & HeaderFlags.ENCRYPTION)

    def find(self, payload_class: type[_P]) -> list[_P]:
        """Payloads of a given class, in order."""
        return [p for p in self.payloads if isinstance(p, payload_class)]

    def header(self, length: int, first_payload: int) -> bytes:
        """The 28-byte header for a message of ``length`` bytes."""
        if len(self.initiator_cookie) != 8 or len(self.responder_cookie) != 8:
            raise ValueError("ISAKMP cookies must be 8 bytes each")
        return _HEADER.pack(
            self.initiator_cookie,
            self.responder_cookie,
            first_payload,
            self.version,
            self.exchange_type,
            self.flags,
            self.message_id,
            length,
        )

    def encode(self) -> bytes:
        """The message in clear (flags are written as set, Encryption included)."""
        body = encode_payloads(self.payloads)
        first = self.payloads[0].payload_type if self.payloads else PayloadType.NONE
        return self.header(HEADER_LEN + len(body), first) + body


def encode_payload(payload: Payload, next_payload: int) -> bytes:
    """One payload with its generic header (RFC 2408 3.2)."""
    body = payload.encode_body()
    length = GENERIC_HEADER_LEN + len(body)
    if length > 0xFFFF:
        raise ValueError(f"payload type {int(payload.payload_type)} longer than 65535 bytes")
    return struct.pack("!BBH", next_payload, 0, length) + body


def encode_payloads(payloads: Sequence[Payload]) -> bytes:
    """A payload chain; each generic header names the type of the next payload.

    The bytes of a chain do not depend on what precedes it, so
    ``encode_payloads(msg.payloads[1:])`` is exactly what HASH(1) covers."""
    out = []
    for i, p in enumerate(payloads):
        nxt = payloads[i + 1].payload_type if i + 1 < len(payloads) else PayloadType.NONE
        out.append(encode_payload(p, nxt))
    return b"".join(out)


@dataclass(frozen=True, slots=True)
class IsakmpHeader:
    """The decoded fixed header."""

    initiator_cookie: bytes
    responder_cookie: bytes
    next_payload: int
    version: int
    exchange_type: int
    flags: int
    message_id: int
    length: int


def unpack_fixed_header(data: bytes, major: int, what: str) -> tuple[bytes, bytes, int, int, int, int, int, int]:
    """The fixed header both IKE versions share (RFC 2408 3.1, RFC 7296 3.1:
    SPIs or cookies, next payload, version, exchange type, flags, message ID,
    length), checked: major version ``major``, a Length that covers the
    header and fits in ``data``. ``what`` names the protocol in errors."""
    if len(data) < HEADER_LEN:
        raise DecodeError(0, f"{what} header: need {HEADER_LEN} bytes, got {len(data)}")
    fields: tuple[bytes, bytes, int, int, int, int, int, int] = _HEADER.unpack_from(data, 0)
    version, length = fields[3], fields[7]
    if version >> 4 != major:
        raise DecodeError(17, f"IKE version {version >> 4}.{version & 15} is not IKEv{major}")
    if length < HEADER_LEN:
        raise DecodeError(24, f"{what} length {length} < header size {HEADER_LEN}")
    if length > len(data):
        raise DecodeError(24, f"{what} length {length} exceeds the {len(data)} bytes received")
    return fields


def decode_header(data: bytes) -> IsakmpHeader:
    """Parse and check the fixed header (RFC 2408 3.1).

    Only IKEv1 (major version 1) is accepted; the Length field must cover at
    least the header and not exceed the datagram."""
    icky, rcky, nxt, version, xchg, flags, mid, length = unpack_fixed_header(data, 1, "ISAKMP")
    return IsakmpHeader(
        bytes(icky),
        bytes(rcky),
        enum_or_int(PayloadType, nxt),
        version,
        enum_or_int(ExchangeType, xchg),
        HeaderFlags(flags),
        mid,
        length,
    )


def decode_payload_chain(
    buf: bytes, offset: int, end: int, first_payload: int
) -> tuple[list[Payload], list[bytes]]:
    """Decode payloads from ``buf[offset:end]`` until Next Payload is 0.

    Bytes after the last payload (CBC padding) are ignored. Offsets in errors
    are positions in ``buf``."""
    payloads: list[Payload] = []
    raws: list[bytes] = []
    ptype = first_payload
    while ptype != PayloadType.NONE:
        if offset + GENERIC_HEADER_LEN > end:
            raise DecodeError(offset, f"payload type {int(ptype)}: generic header truncated "
                                      f"({end - offset} bytes left)")
        nxt, _reserved, length = struct.unpack_from("!BBH", buf, offset)
        if length < GENERIC_HEADER_LEN:
            raise DecodeError(offset + 2, f"payload type {int(ptype)}: length {length} < 4")
        if offset + length > end:
            raise DecodeError(
                offset + 2, f"payload type {int(ptype)}: length {length} runs past the message ({end - offset} left)"
            )
        payloads.append(decode_payload_body(ptype, buf, offset + GENERIC_HEADER_LEN, offset + length))
        raws.append(bytes(buf[offset : offset + length]))
        offset += length
        ptype = nxt
    return payloads, raws


def _message_from(hdr: IsakmpHeader) -> IsakmpMessage:
    return IsakmpMessage(
        hdr.initiator_cookie,
        hdr.responder_cookie,
        hdr.exchange_type,
        hdr.flags,
        hdr.message_id,
        [],
        hdr.version,
        hdr.next_payload,
    )


def decode_message(data: bytes) -> IsakmpMessage:
    """Decode a cleartext ISAKMP message; an encrypted one keeps its ciphertext
    in ``encrypted_body`` (use :func:`decrypt_message` with the key).

    Raises :class:`DecodeError` for anything malformed, never another error."""
    data = bytes(data)
    hdr = decode_header(data)
    msg = _message_from(hdr)
    if msg.encrypted:
        msg.encrypted_body = data[HEADER_LEN : hdr.length]
        return msg
    msg.payloads, msg.raw_payloads = decode_payload_chain(data, HEADER_LEN, hdr.length, hdr.next_payload)
    return msg


def encrypt_message(message: IsakmpMessage, cipher: IkeCipher, key: bytes, iv: bytes) -> tuple[bytes, bytes]:
    """Encode ``message`` with its payloads CBC-encrypted (RFC 2409 appendix B).

    The plaintext payload chain is padded with zero bytes to the cipher block
    size; the Encryption flag is set and the header Length covers the
    ciphertext. Returns the datagram and the IV for the next message of the
    exchange (the last ciphertext block)."""
    body = encode_payloads(message.payloads)
    pad = -len(body) % cipher.block_size
    ciphertext = cipher.encrypt(key, iv, body + bytes(pad))
    first = message.payloads[0].payload_type if message.payloads else PayloadType.NONE
    flagged = replace(message, flags=HeaderFlags(int(message.flags) | HeaderFlags.ENCRYPTION))
    wire = flagged.header(HEADER_LEN + len(ciphertext), first) + ciphertext
    return wire, ciphertext[-cipher.block_size :] if ciphertext else iv


def decrypt_message(data: bytes, cipher: IkeCipher, key: bytes, iv: bytes) -> tuple[IsakmpMessage, bytes]:
    """Decrypt and decode an encrypted ISAKMP message.

    Returns the message (``payloads`` decoded, ``raw_payloads`` from the
    plaintext) and the IV for the next message: the last ciphertext block.
    A body that is not a whole number of blocks, or a chain that does not
    parse after decryption (wrong key or IV), raises :class:`DecodeError`."""
    data = bytes(data)
    hdr = decode_header(data)
    ciphertext = data[HEADER_LEN : hdr.length]
    if not ciphertext or len(ciphertext) % cipher.block_size:
        raise DecodeError(HEADER_LEN, f"encrypted body of {len(ciphertext)} bytes is not a multiple "
                                      f"of {cipher.block_size}")
    try:
        plain = cipher.decrypt(key, iv, ciphertext)
    except ValueError as exc:
        raise DecodeError(HEADER_LEN, f"cannot decrypt: {exc}") from None
    msg = _message_from(hdr)
    buf = data[:HEADER_LEN] + plain
    msg.payloads, msg.raw_payloads = decode_payload_chain(buf, HEADER_LEN, len(buf), hdr.next_payload)
    return msg, ciphertext[-cipher.block_size :]


class Udp4500Kind(Enum):
    """What a UDP 4500 datagram carries (RFC 3948 section 2)."""

    NAT_KEEPALIVE = "keepalive"
    IKE = "ike"
    ESP = "esp"


def classify_udp4500(payload: bytes) -> Udp4500Kind:
    """Tell an IKE message (non-ESP marker), an ESP packet (non-zero SPI) and a
    NAT keepalive (single 0xFF byte) apart (RFC 3948 sections 2.2, 2.3)."""
    if payload == NAT_KEEPALIVE:
        return Udp4500Kind.NAT_KEEPALIVE
    if len(payload) < 4:
        raise DecodeError(0, f"UDP 4500 payload of {len(payload)} bytes is neither keepalive, IKE nor ESP")
    if payload[:4] == NON_ESP_MARKER:
        return Udp4500Kind.IKE
    if len(payload) < 8:
        raise DecodeError(0, f"ESP in UDP: {len(payload)} bytes, need at least SPI and sequence number")
    return Udp4500Kind.ESP


def add_non_esp_marker(message: bytes) -> bytes:
    """Prefix an ISAKMP message with the 4-byte non-ESP marker for UDP 4500."""
    return NON_ESP_MARKER + message


def strip_non_esp_marker(payload: bytes) -> bytes:
    """The ISAKMP message inside a UDP 4500 payload; DecodeError if the
    payload does not start with the non-ESP marker."""
    if len(payload) < 4 or payload[:4] != NON_ESP_MARKER:
        raise DecodeError(0, "UDP 4500 payload does not start with the non-ESP marker")
    return payload[4:]
