"""IKEv2 messages: header, payload chain, Encrypted and Encrypted Fragment
payloads.

The 28-byte header (RFC 7296 section 3.1) carries the two IKE SPIs, the
type of the first payload, version 2.0, the exchange type, the Initiator
and Response flags, the message ID and the total length. Payloads follow
as a chain of generic headers (3.2). The Encrypted payload SK (3.14), when
present, is the last payload: its Next Payload field names the first
payload inside it, and its body is IV | ciphertext | ICV, the integrity
check covering everything before the ICV. RFC 7383 splits that payload
into Encrypted Fragment payloads (SKF), each its own message with its own
IV and ICV; the receiver decrypts each one and joins the plaintexts.

Usage::

    msg = Ikev2Message(spi_i, spi_r, ExchangeType.IKE_AUTH, HeaderFlags.INITIATOR, 1,
                       [IdPayload.ipv4("10.0.0.1"), AuthPayload(...), SaPayload([...]), ...])
    wire = encrypt_message(msg, SkCipher(EncrId.AES_CBC, 128, IntegId.HMAC_SHA1_96), sk_ei, sk_ai, iv)
    msg2 = decrypt_message(wire, cipher, sk_ei, sk_ai)
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from dmvpn.crypto.ikev2_algorithms import IntegrityError, SkCipher
from dmvpn.sansio import RandomSource
from dmvpn.wire.errors import DecodeError
from dmvpn.wire.ikev2_payloads import (
    GENERIC_HEADER_LEN,
    EncryptedFragmentPayload,
    EncryptedPayload,
    Payload,
    decode_payload_body,
)
from dmvpn.wire.ikev2_registry import IKEV2_VERSION, ExchangeType, HeaderFlags, PayloadType
from dmvpn.wire.isakmp import unpack_fixed_header
from dmvpn.wire.isakmp_registry import enum_or_int

HEADER_LEN = 28
_HEADER = struct.Struct("!8s8sBBBBII")
_CRITICAL = 0x80


@dataclass(slots=True)
class Ikev2Message:
    """One IKEv2 message (RFC 7296 3.1 header plus payloads).

    ``encode()`` fills in the Next Payload chain and all lengths. After
    :func:`decode_message`, an encrypted message ends with its
    :class:`EncryptedPayload` (or :class:`EncryptedFragmentPayload`);
    :func:`decrypt_message` replaces it with the payloads inside and keeps
    the decrypted chain, padding removed, in ``inner``.
    """

    spi_i: bytes
    spi_r: bytes = bytes(8)
    exchange_type: int = ExchangeType.IKE_SA_INIT
    flags: int = HeaderFlags.INITIATOR
    message_id: int = 0
    payloads: list[Payload] = field(default_factory=list)
    version: int = IKEV2_VERSION
    first_payload: int = field(default=PayloadType.NONE, compare=False)
    inner: bytes | None = field(default=None, compare=False, repr=False)
    trailing: int = field(default=0, compare=False)

    @property
    def is_response(self) -> bool:
        """True if the Response flag is set (RFC 7296 3.1)."""
        return bool(self.flags & HeaderFlags.RESPONSE)

    @property
    def from_initiator(self) -> bool:
        """True if the Initiator flag is set: sent by the original initiator."""
        return bool(self.flags & HeaderFlags.INITIATOR)

    @property
    def encrypted(self) -> EncryptedPayload | EncryptedFragmentPayload | None:
        """The SK or SKF payload still holding ciphertext, if any."""
        last = self.payloads[-1] if self.payloads else None
        return last if isinstance(last, (EncryptedPayload, EncryptedFragmentPayload)) else None

    def find(self, payload_class: type) -> list[Payload]:
        """Payloads of a given class, in order."""
        return [p for p in self.payloads if isinstance(p, payload_class)]

    def header(self, length: int, first_payload: int) -> bytes:
        """The 28-byte header for a message of ``length`` bytes."""
        if len(self.spi_i) != 8 or len(self.spi_r) != 8:
            raise ValueError("IKE SPIs must be 8 bytes each")
        return _HEADER.pack(
            self.spi_i, self.spi_r, first_payload, self.version, self.exchange_type, self.flags, self.message_id, length
        )

    def encode(self) -> bytes:
        """The message as it goes on the wire (an SK payload as it is)."""
        body = encode_payloads(self.payloads)
        first = self.payloads[0].payload_type if self.payloads else PayloadType.NONE
        return self.header(HEADER_LEN + len(body), first) + body


def _next_field(payloads: Sequence[Payload], i: int) -> int:
    p = payloads[i]
    if isinstance(p, (EncryptedPayload, EncryptedFragmentPayload)):
        if i + 1 != len(payloads):
            raise ValueError("the Encrypted payload must be the last payload (RFC 7296 3.14)")
        return p.first_payload
    return payloads[i + 1].payload_type if i + 1 < len(payloads) else PayloadType.NONE


def generic_header(next_payload: int, critical: bool, body_length: int) -> bytes:
    """The generic payload header (RFC 7296 3.2)."""
    length = GENERIC_HEADER_LEN + body_length
    if length > 0xFFFF:
        raise ValueError(f"payload longer than 65535 bytes ({length})")
    return struct.pack("!BBH", next_payload, _CRITICAL if critical else 0, length)


def encode_payloads(payloads: Sequence[Payload]) -> bytes:
    """A payload chain; each generic header names the type of the next."""
    out = []
    for i, p in enumerate(payloads):
        body = p.encode_body()
        out.append(generic_header(_next_field(payloads, i), p.critical, len(body)) + body)
    return b"".join(out)


@dataclass(frozen=True, slots=True)
class Ikev2Header:
    """The decoded fixed header."""

    spi_i: bytes
    spi_r: bytes
    next_payload: int
    version: int
    exchange_type: int
    flags: int
    message_id: int
    length: int


def decode_header(data: bytes) -> Ikev2Header:
    """Parse and check the fixed header (RFC 7296 3.1): major version 2,
    a Length that covers the header and fits in the datagram."""
    spi_i, spi_r, nxt, version, xchg, flags, mid, length = unpack_fixed_header(data, 2, "IKEv2")
    return Ikev2Header(
        bytes(spi_i),
        bytes(spi_r),
        enum_or_int(PayloadType, nxt),
        version,
        enum_or_int(ExchangeType, xchg),
        HeaderFlags(flags),
        mid,
        length,
    )


def decode_payload_chain(buf: bytes, offset: int, end: int, first_payload: int) -> list[Payload]:
    """Decode payloads from ``buf[offset:end]`` until Next Payload is 0 or an
    SK/SKF payload; the chain must fill the buffer exactly. Offsets in
    errors are positions in ``buf``."""
    payloads, stop = _chain(buf, offset, end, first_payload)
    if stop != end:
        raise DecodeError(stop, f"{end - stop} bytes after the last payload")
    return payloads


def _chain(buf: bytes, offset: int, end: int, first_payload: int) -> tuple[list[Payload], int]:
    payloads: list[Payload] = []
    ptype = first_payload
    while ptype != PayloadType.NONE:
        if offset + GENERIC_HEADER_LEN > end:
            raise DecodeError(
                offset, f"payload type {int(ptype)}: generic header truncated ({end - offset} bytes left)"
            )
        nxt, flags, length = struct.unpack_from("!BBH", buf, offset)
        if length < GENERIC_HEADER_LEN:
            raise DecodeError(offset + 2, f"payload type {int(ptype)}: length {length} < 4")
        if offset + length > end:
            raise DecodeError(
                offset + 2, f"payload type {int(ptype)}: length {length} runs past the message ({end - offset} left)"
            )
        start, stop = offset + GENERIC_HEADER_LEN, offset + length
        if ptype in (PayloadType.SK, PayloadType.SKF):
            if stop != end:
                raise DecodeError(stop, f"{end - stop} bytes after the Encrypted payload, which must be last")
            inner_first = enum_or_int(PayloadType, nxt)
            if ptype == PayloadType.SK:
                payload: Payload = EncryptedPayload(inner_first, bytes(buf[start:stop]), offset)
            else:
                payload = EncryptedFragmentPayload.decode_body(buf, start, stop, inner_first)
            payload.critical = bool(flags & _CRITICAL)
            payloads.append(payload)
            return payloads, stop
        payload = decode_payload_body(ptype, buf, start, stop)
        payload.critical = bool(flags & _CRITICAL)
        payloads.append(payload)
        offset = stop
        ptype = nxt
    return payloads, offset


def _message_from(hdr: Ikev2Header, payloads: list[Payload]) -> Ikev2Message:
    return Ikev2Message(
        hdr.spi_i, hdr.spi_r, hdr.exchange_type, hdr.flags, hdr.message_id, payloads, hdr.version, hdr.next_payload
    )


def decode_message(data: bytes) -> Ikev2Message:
    """Decode an IKEv2 message; an SK/SKF payload keeps its ciphertext (use
    :func:`decrypt_message`). Bytes the header's Length covers after the
    last payload are counted in ``trailing`` (tcpdump ignores them too).
    Raises :class:`DecodeError`, never another error."""
    data = bytes(data)
    hdr = decode_header(data)
    payloads, stop = _chain(data, HEADER_LEN, hdr.length, hdr.next_payload)
    msg = _message_from(hdr, payloads)
    msg.trailing = hdr.length - stop
    return msg


def _sk_aad(header: bytes, next_payload: int, critical: bool, body_length: int) -> bytes:
    return header + generic_header(next_payload, critical, body_length)


def encrypt_message(message: Ikev2Message, cipher: SkCipher, key_e: bytes, key_a: bytes, iv: bytes) -> bytes:
    """``message`` with all its payloads inside one SK payload (RFC 7296
    3.14): padded, encrypted with ``iv``, the ICV over header, SK header,
    IV and ciphertext (or the header and SK header as AEAD associated data)."""
    inner = encode_payloads(message.payloads)
    first = message.payloads[0].payload_type if message.payloads else PayloadType.NONE
    body_length = cipher.body_length(len(inner))
    header = message.header(HEADER_LEN + GENERIC_HEADER_LEN + body_length, PayloadType.SK)
    aad = _sk_aad(header, first, False, body_length)
    return aad + cipher.seal(key_e, key_a, iv, aad, inner)


def _open(
    data: bytes, sk: EncryptedPayload | EncryptedFragmentPayload, cipher: SkCipher, key_e: bytes, key_a: bytes
) -> bytes:
    extra = 4 if isinstance(sk, EncryptedFragmentPayload) else 0  # fragment number and total
    aad = data[: sk.offset + GENERIC_HEADER_LEN + extra]
    try:
        return cipher.open(key_e, key_a, aad, sk.body)
    except (IntegrityError, ValueError) as exc:
        raise DecodeError(sk.offset, f"cannot decrypt: {exc}") from None


def decrypt_message(data: bytes, cipher: SkCipher, key_e: bytes, key_a: bytes) -> Ikev2Message:
    """Decrypt and decode a message ending in an SK payload: the payloads
    before it, then the ones inside. A wrong ICV, key or padding raises
    :class:`DecodeError`; a message without SK is returned as decoded."""
    data = bytes(data)
    msg = decode_message(data)
    sk = msg.encrypted
    if not isinstance(sk, EncryptedPayload):
        if sk is not None:
            raise DecodeError(sk.offset, "an Encrypted Fragment: decrypt it with decrypt_fragment")
        return msg
    plain = _open(data, sk, cipher, key_e, key_a)
    try:
        inner = decode_payload_chain(plain, 0, len(plain), sk.first_payload)
    except DecodeError as exc:
        raise DecodeError(exc.offset, f"in the decrypted payloads: {exc.reason}") from None
    msg.payloads = msg.payloads[:-1] + inner
    msg.inner = plain
    return msg


@dataclass(frozen=True, slots=True)
class DecryptedFragment:
    """One Encrypted Fragment message, decrypted (RFC 7383 2.5)."""

    message: Ikev2Message
    fragment_number: int
    total_fragments: int
    first_payload: int
    plaintext: bytes


def decrypt_fragment(data: bytes, cipher: SkCipher, key_e: bytes, key_a: bytes) -> DecryptedFragment:
    """Decrypt one SKF message; its associated data covers the fragment
    number and total (RFC 7383 section 2.5)."""
    data = bytes(data)
    msg = decode_message(data)
    skf = msg.encrypted
    if not isinstance(skf, EncryptedFragmentPayload):
        raise DecodeError(HEADER_LEN, "not an Encrypted Fragment message")
    plain = _open(data, skf, cipher, key_e, key_a)
    return DecryptedFragment(msg, skf.fragment_number, skf.total_fragments, skf.first_payload, plain)


def reassemble(fragments: Sequence[DecryptedFragment]) -> Ikev2Message:
    """The message the fragments carry (RFC 7383 2.6): all of 1..total, in
    any order, duplicates ignored; the chain is typed by fragment 1."""
    if not fragments:
        raise DecodeError(0, "no fragments")
    total = fragments[0].total_fragments
    by_number = {f.fragment_number: f for f in fragments if f.total_fragments == total}
    missing = sorted(set(range(1, total + 1)) - set(by_number))
    if missing:
        raise DecodeError(0, f"fragments {missing} of {total} missing")
    plain = b"".join(by_number[n].plaintext for n in range(1, total + 1))
    first = by_number[1]
    try:
        payloads = decode_payload_chain(plain, 0, len(plain), first.first_payload)
    except DecodeError as exc:
        raise DecodeError(exc.offset, f"in the reassembled payloads: {exc.reason}") from None
    msg = replace(first.message, payloads=first.message.payloads[:-1] + payloads, first_payload=PayloadType.SKF)
    msg.inner = plain
    return msg


def encrypt_fragments(
    message: Ikev2Message, cipher: SkCipher, key_e: bytes, key_a: bytes, max_length: int, random: RandomSource
) -> list[bytes]:
    """``message`` as Encrypted Fragment messages of at most ``max_length``
    bytes each (RFC 7383 2.5), every fragment with a fresh IV from
    ``random``. The inner chain is cut at byte boundaries."""
    inner = encode_payloads(message.payloads)
    first = message.payloads[0].payload_type if message.payloads else PayloadType.NONE
    overhead = HEADER_LEN + GENERIC_HEADER_LEN + 4 + cipher.iv_size + cipher.icv_size + cipher.block_size
    room = (max_length - overhead) // cipher.block_size * cipher.block_size
    if room <= 0:
        raise ValueError(f"fragments of {max_length} bytes leave no room for data")
    pieces = [inner[i : i + room] for i in range(0, len(inner), room)] or [b""]
    if len(pieces) > 0xFFFF:
        raise ValueError("too many fragments")
    out = []
    for n, piece in enumerate(pieces, 1):
        body_length = 4 + cipher.body_length(len(piece))
        header = message.header(HEADER_LEN + GENERIC_HEADER_LEN + body_length, PayloadType.SKF)
        nxt = first if n == 1 else PayloadType.NONE
        aad = _sk_aad(header, nxt, False, body_length) + struct.pack("!HH", n, len(pieces))
        out.append(aad + cipher.seal(key_e, key_a, random.token_bytes(cipher.iv_size), aad, piece))
    return out
