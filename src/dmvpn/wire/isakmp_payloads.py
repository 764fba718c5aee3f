"""ISAKMP payload bodies: dataclasses with encode and decode.

Each payload class knows its body layout (what follows the 4-byte generic
payload header of RFC 2408 section 3.2). Layouts: SA/proposal/transform and
data attributes RFC 2408 sections 3.3-3.6 with the IPsec DOI situation of
RFC 2407 section 4.2; KE 3.7; ID 3.8 with the IPsec DOI fields of RFC 2407
4.6.2; CERT/CR 3.9-3.10; HASH 3.11; SIG 3.12; Nonce 3.13; Notification 3.14
(RFC 2407 4.6.3); Delete 3.15; Vendor ID 3.16; NAT-D and NAT-OA RFC 3947
sections 3.2 and 5.2. Decoders raise only :class:`DecodeError`, with offsets
relative to the start of the whole ISAKMP message.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar, Self

from dmvpn.crypto.dh_groups import DhGroup
from dmvpn.crypto.ike_algorithms import EncryptionAlgorithm, HashAlgorithm
from dmvpn.wire.errors import DecodeError
from dmvpn.wire.isakmp_registry import (
    AhTransformId,
    AuthenticationAlgorithm,
    AuthenticationMethod,
    CertEncoding,
    Doi,
    EncapsulationMode,
    EspTransformId,
    IdType,
    IsakmpTransformId,
    LifeType,
    NotifyType,
    PayloadType,
    Phase1Attribute,
    Phase2Attribute,
    ProtocolId,
    Situation,
    enum_or_int,
)

GENERIC_HEADER_LEN = 4

_ATTR_TV = 0x8000


def _need(offset: int, end: int, n: int, what: str) -> None:
    if offset + n > end:
        raise DecodeError(offset, f"{what}: need {n} bytes, {max(end - offset, 0)} left")


# --------------------------------------------------------------------------
# Data attributes (RFC 2408 section 3.3)

_PHASE1_VALUES: dict[int, type[IntEnum]] = {
    Phase1Attribute.ENCRYPTION_ALGORITHM: EncryptionAlgorithm,
    Phase1Attribute.HASH_ALGORITHM: HashAlgorithm,
    Phase1Attribute.AUTHENTICATION_METHOD: AuthenticationMethod,
    Phase1Attribute.GROUP_DESCRIPTION: DhGroup,
    Phase1Attribute.LIFE_TYPE: LifeType,
}

_PHASE2_VALUES: dict[int, type[IntEnum]] = {
    Phase2Attribute.SA_LIFE_TYPE: LifeType,
    Phase2Attribute.GROUP_DESCRIPTION: DhGroup,
    Phase2Attribute.ENCAPSULATION_MODE: EncapsulationMode,
    Phase2Attribute.AUTHENTICATION_ALGORITHM: AuthenticationAlgorithm,
}

# Variable-length attributes whose value is a number (life durations).
_NUMERIC_TLV = {("p1", Phase1Attribute.LIFE_DURATION), ("p2", Phase2Attribute.SA_LIFE_DURATION)}


@dataclass(slots=True)
class Attribute:
    """One data attribute. ``value`` is an int (a typed enum where the number
    is registered) or bytes for variable-length values. ``tlv`` forces the
    variable-length form for numbers (RFC 2408 3.3 "AF" bit clear); numbers
    that do not fit in 16 bits always use it."""

    type: int
    value: int | bytes
    tlv: bool = False

    def encode(self) -> bytes:
        if isinstance(self.value, bytes):
            if len(self.value) > 0xFFFF:
                raise ValueError(f"attribute {int(self.type)}: value longer than 65535 bytes")
            return struct.pack("!HH", self.type & 0x7FFF, len(self.value)) + self.value
        value = int(self.value)
        if value < 0:
            raise ValueError(f"attribute {int(self.type)}: negative value")
        if not self.tlv and value <= 0xFFFF:
            return struct.pack("!HH", _ATTR_TV | (self.type & 0x7FFF), value)
        raw = value.to_bytes(max(4, (value.bit_length() + 7) // 8), "big")
        return struct.pack("!HH", self.type & 0x7FFF, len(raw)) + raw


def decode_attributes(buf: bytes, offset: int, end: int, phase: str) -> list[Attribute]:
    """Attributes in ``buf[offset:end]``; ``phase`` is "p1" (Oakley, RFC 2409
    appendix A) or "p2" (IPsec DOI, RFC 2407 4.5) and picks the typed enums."""
    names: type[IntEnum] = Phase1Attribute if phase == "p1" else Phase2Attribute
    values = _PHASE1_VALUES if phase == "p1" else _PHASE2_VALUES
    attrs: list[Attribute] = []
    while offset < end:
        _need(offset, end, 4, "data attribute header")
        word, second = struct.unpack_from("!HH", buf, offset)
        atype = enum_or_int(names, word & 0x7FFF)
        if word & _ATTR_TV:
            enum = values.get(int(atype))
            attrs.append(Attribute(atype, enum_or_int(enum, second) if enum else second))
            offset += 4
            continue
        _need(offset + 4, end, second, f"attribute {int(atype)} value")
        raw = bytes(buf[offset + 4 : offset + 4 + second])
        if (phase, atype) in _NUMERIC_TLV and raw:
            number = int.from_bytes(raw, "big")
            # ``tlv`` records only a choice the encoder would not make by itself.
            attrs.append(Attribute(atype, number, tlv=number <= 0xFFFF))
        else:
            attrs.append(Attribute(atype, raw, tlv=True))
        offset += 4 + second
    return attrs


# --------------------------------------------------------------------------
# SA, proposal, transform (RFC 2408 3.4-3.6)


@dataclass(slots=True)
class Transform:
    """A transform payload: number, transform ID and attributes (RFC 2408 3.6)."""

    number: int
    transform_id: int
    attributes: list[Attribute] = field(default_factory=list)

    def get(self, attribute_type: int) -> int | bytes | None:
        """The value of the first attribute of ``attribute_type``, or None."""
        for attr in self.attributes:
            if attr.type == attribute_type:
                return attr.value
        return None

    def encode_body(self) -> bytes:
        return struct.pack("!BBH", self.number, self.transform_id, 0) + b"".join(a.encode() for a in self.attributes)


@dataclass(slots=True)
class Proposal:
    """A proposal payload (RFC 2408 3.5) with its transforms."""

    number: int
    protocol_id: int
    spi: bytes = b""
    transforms: list[Transform] = field(default_factory=list)

    def encode_body(self) -> bytes:
        out = [struct.pack("!BBBB", self.number, self.protocol_id, len(self.spi), len(self.transforms)), self.spi]
        for i, t in enumerate(self.transforms):
            body = t.encode_body()
            nxt = PayloadType.TRANSFORM if i + 1 < len(self.transforms) else PayloadType.NONE
            out.append(struct.pack("!BBH", nxt, 0, GENERIC_HEADER_LEN + len(body)) + body)
        return b"".join(out)


def _transform_id(protocol_id: int, value: int) -> int:
    if protocol_id == ProtocolId.ISAKMP:
        return enum_or_int(IsakmpTransformId, value)
    if protocol_id == ProtocolId.IPSEC_ESP:
        return enum_or_int(EspTransformId, value)
    if protocol_id == ProtocolId.IPSEC_AH:
        return enum_or_int(AhTransformId, value)
    return value


def _decode_substructures(buf: bytes, offset: int, end: int, expected: int, what: str) -> list[tuple[int, int]]:
    """Walk a proposal or transform chain; returns (body start, body end) pairs."""
    spans: list[tuple[int, int]] = []
    while True:
        _need(offset, end, GENERIC_HEADER_LEN, f"{what} header")
        nxt, _reserved, length = struct.unpack_from("!BBH", buf, offset)
        if length < GENERIC_HEADER_LEN:
            raise DecodeError(offset + 2, f"{what} length {length} < 4")
        if offset + length > end:
            raise DecodeError(offset + 2, f"{what} length {length} runs past its parent ({end - offset} bytes left)")
        spans.append((offset + GENERIC_HEADER_LEN, offset + length))
        offset += length
        if nxt == PayloadType.NONE:
            return spans
        if nxt != expected:
            raise DecodeError(offset - length, f"{what} followed by payload type {nxt}, expected {expected} or 0")


@dataclass(slots=True)
class SaPayload:
    """Security Association payload (RFC 2408 3.4, IPsec DOI situation RFC 2407 4.2)."""

    payload_type: ClassVar[int] = PayloadType.SA
    proposals: list[Proposal] = field(default_factory=list)
    doi: int = Doi.IPSEC
    situation: int = Situation.IDENTITY_ONLY

    def encode_body(self) -> bytes:
        out = [struct.pack("!II", self.doi, self.situation)]
        for i, p in enumerate(self.proposals):
            body = p.encode_body()
            nxt = PayloadType.PROPOSAL if i + 1 < len(self.proposals) else PayloadType.NONE
            out.append(struct.pack("!BBH", nxt, 0, GENERIC_HEADER_LEN + len(body)) + body)
        return b"".join(out)

    @classmethod
    def decode_body(cls, buf: bytes, start: int, end: int) -> SaPayload:
        _need(start, end, 8, "SA DOI and situation")
        doi, situation = struct.unpack_from("!II", buf, start)
        if doi != Doi.IPSEC:
            raise DecodeError(start, f"SA DOI {doi} not supported (only 1, IPsec)")
        if situation != Situation.IDENTITY_ONLY:
            raise DecodeError(start + 4, f"SA situation {situation:#x} not supported (only SIT_IDENTITY_ONLY)")
        proposals: list[Proposal] = []
        for pstart, pend in _decode_substructures(buf, start + 8, end, PayloadType.PROPOSAL, "proposal"):
            _need(pstart, pend, 4, "proposal fields")
            number, protocol, spi_size, n_transforms = struct.unpack_from("!BBBB", buf, pstart)
            _need(pstart + 4, pend, spi_size, "proposal SPI")
            spi = bytes(buf[pstart + 4 : pstart + 4 + spi_size])
            protocol_id = enum_or_int(ProtocolId, protocol)
            transforms: list[Transform] = []
            tstart = pstart + 4 + spi_size
            spans = _decode_substructures(buf, tstart, pend, PayloadType.TRANSFORM, "transform") if n_transforms else []
            if len(spans) != n_transforms:
                raise DecodeError(pstart + 3, f"proposal says {n_transforms} transforms, found {len(spans)}")
            phase = "p1" if protocol == ProtocolId.ISAKMP else "p2"
            for ts, te in spans:
                _need(ts, te, 4, "transform fields")
                tnum, tid = struct.unpack_from("!BB", buf, ts)
                attrs = decode_attributes(buf, ts + 4, te, phase)
                transforms.append(Transform(tnum, _transform_id(protocol, tid), attrs))
            proposals.append(Proposal(number, protocol_id, spi, transforms))
        return cls(proposals, enum_or_int(Doi, doi), Situation(situation))


# --------------------------------------------------------------------------
# Simple payloads


@dataclass(slots=True)
class _DataPayload:
    """A payload whose body is opaque data."""

    data: bytes = b""

    def encode_body(self) -> bytes:
        return self.data

    @classmethod
    def decode_body(cls, buf: bytes, start: int, end: int) -> Self:
        return cls(bytes(buf[start:end]))


@dataclass(slots=True)
class KePayload(_DataPayload):
    """Key Exchange payload (RFC 2408 3.7): the DH public value."""

    payload_type: ClassVar[int] = PayloadType.KE


@dataclass(slots=True)
class HashPayload(_DataPayload):
    """Hash payload (RFC 2408 3.11)."""

    payload_type: ClassVar[int] = PayloadType.HASH


@dataclass(slots=True)
class SignaturePayload(_DataPayload):
    """Signature payload (RFC 2408 3.12)."""

    payload_type: ClassVar[int] = PayloadType.SIG


@dataclass(slots=True)
class NoncePayload(_DataPayload):
    """Nonce payload (RFC 2408 3.13)."""

    payload_type: ClassVar[int] = PayloadType.NONCE


@dataclass(slots=True)
class VendorIdPayload(_DataPayload):
    """Vendor ID payload (RFC 2408 3.16)."""

    payload_type: ClassVar[int] = PayloadType.VENDOR_ID


@dataclass(slots=True)
class NatDPayload:
    """NAT-Discovery payload (RFC 3947 3.2); ``payload_type`` 20, or 130 as
    the pre-RFC drafts numbered it."""

    data: bytes = b""
    payload_type: int = PayloadType.NAT_D

    def encode_body(self) -> bytes:
        return self.data


@dataclass(slots=True)
class IdPayload:
    """Identification payload (RFC 2408 3.8, IPsec DOI fields RFC 2407 4.6.2)."""

    payload_type: ClassVar[int] = PayloadType.ID
    id_type: int = IdType.IPV4_ADDR
    data: bytes = b""
    protocol_id: int = 0
    port: int = 0

    @classmethod
    def ipv4(cls, address: str, protocol_id: int = 0, port: int = 0) -> IdPayload:
        """An ID_IPV4_ADDR identity."""
        return cls(IdType.IPV4_ADDR, ipaddress.IPv4Address(address).packed, protocol_id, port)

    @classmethod
    def ipv4_subnet(cls, network: str, protocol_id: int = 0, port: int = 0) -> IdPayload:
        """An ID_IPV4_ADDR_SUBNET identity (address then mask)."""
        net = ipaddress.IPv4Network(network)
        return cls(IdType.IPV4_ADDR_SUBNET, net.network_address.packed + net.netmask.packed, protocol_id, port)

    def describe(self) -> str:
        """The identity as text: dotted quad, subnet, range, name or hex."""
        d = self.data
        if self.id_type == IdType.IPV4_ADDR and len(d) == 4:
            return str(ipaddress.IPv4Address(d))
        if self.id_type == IdType.IPV4_ADDR_SUBNET and len(d) == 8:
            return f"{ipaddress.IPv4Address(d[:4])}/{ipaddress.IPv4Address(d[4:])}"
        if self.id_type == IdType.IPV4_ADDR_RANGE and len(d) == 8:
            return f"{ipaddress.IPv4Address(d[:4])}-{ipaddress.IPv4Address(d[4:])}"
        if self.id_type == IdType.IPV6_ADDR and len(d) == 16:
            return str(ipaddress.IPv6Address(d))
        if self.id_type in (IdType.FQDN, IdType.USER_FQDN) and d.isascii():
            return d.decode("ascii", "replace")
        return d.hex()

    def encode_body(self) -> bytes:
        return struct.pack("!BBH", self.id_type, self.protocol_id, self.port) + self.data

    @classmethod
    def decode_body(cls, buf: bytes, start: int, end: int) -> IdPayload:
        _need(start, end, 4, "ID type/protocol/port")
        id_type, proto, port = struct.unpack_from("!BBH", buf, start)
        return cls(enum_or_int(IdType, id_type), bytes(buf[start + 4 : end]), proto, port)


@dataclass(slots=True)
class CertPayload:
    """Certificate payload (RFC 2408 3.9)."""

    payload_type: ClassVar[int] = PayloadType.CERT
    encoding: int = CertEncoding.X509_SIGNATURE
    data: bytes = b""

    def encode_body(self) -> bytes:
        return bytes([self.encoding]) + self.data

    @classmethod
    def decode_body(cls, buf: bytes, start: int, end: int) -> CertPayload:
        _need(start, end, 1, "certificate encoding")
        return cls(enum_or_int(CertEncoding, buf[start]), bytes(buf[start + 1 : end]))


@dataclass(slots=True)
class CertRequestPayload:
    """Certificate Request payload (RFC 2408 3.10)."""

    payload_type: ClassVar[int] = PayloadType.CR
    encoding: int = CertEncoding.X509_SIGNATURE
    authority: bytes = b""

    def encode_body(self) -> bytes:
        return bytes([self.encoding]) + self.authority

    @classmethod
    def decode_body(cls, buf: bytes, start: int, end: int) -> CertRequestPayload:
        _need(start, end, 1, "certificate type")
        return cls(enum_or_int(CertEncoding, buf[start]), bytes(buf[start + 1 : end]))


@dataclass(slots=True)
class NotifyPayload:
    """Notification payload (RFC 2408 3.14; IPsec DOI status RFC 2407 4.6.3;
    DPD R-U-THERE carries the sequence number as data, RFC 3706 section 5)."""

    payload_type: ClassVar[int] = PayloadType.NOTIFY
    notify_type: int = NotifyType.INITIAL_CONTACT
    protocol_id: int = ProtocolId.ISAKMP
    spi: bytes = b""
    data: bytes = b""
    doi: int = Doi.IPSEC

    def encode_body(self) -> bytes:
        return struct.pack("!IBBH", self.doi, self.protocol_id, len(self.spi), self.notify_type) + self.spi + self.data

    @classmethod
    def decode_body(cls, buf: bytes, start: int, end: int) -> NotifyPayload:
        _need(start, end, 8, "notify fields")
        doi, proto, spi_size, ntype = struct.unpack_from("!IBBH", buf, start)
        _need(start + 8, end, spi_size, "notify SPI")
        spi = bytes(buf[start + 8 : start + 8 + spi_size])
        return cls(
            enum_or_int(NotifyType, ntype),
            enum_or_int(ProtocolId, proto),
            spi,
            bytes(buf[start + 8 + spi_size : end]),
            enum_or_int(Doi, doi),
        )


@dataclass(slots=True)
class DeletePayload:
    """Delete payload (RFC 2408 3.15): SPIs of one protocol, all the same size."""

    payload_type: ClassVar[int] = PayloadType.DELETE
    protocol_id: int = ProtocolId.IPSEC_ESP
    spis: list[bytes] = field(default_factory=list)
    doi: int = Doi.IPSEC
    spi_size: int | None = None

    def encode_body(self) -> bytes:
        size = self.spi_size if self.spi_size is not None else (len(self.spis[0]) if self.spis else 4)
        if any(len(s) != size for s in self.spis):
            raise ValueError(f"delete payload: every SPI must be {size} bytes")
        return struct.pack("!IBBH", self.doi, self.protocol_id, size, len(self.spis)) + b"".join(self.spis)

    @classmethod
    def decode_body(cls, buf: bytes, start: int, end: int) -> DeletePayload:
        _need(start, end, 8, "delete fields")
        doi, proto, spi_size, count = struct.unpack_from("!IBBH", buf, start)
        _need(start + 8, end, spi_size * count, f"{count} SPIs of {spi_size} bytes")
        off = start + 8
        spis = [bytes(buf[off + i * spi_size : off + (i + 1) * spi_size]) for i in range(count)]
        # spi_size is kept only when no SPI carries it (an empty list)
        return cls(enum_or_int(ProtocolId, proto), spis, enum_or_int(Doi, doi), None if count else spi_size)


@dataclass(slots=True)
class NatOaPayload:
    """NAT Original Address payload (RFC 3947 5.2); type 21, or 131 (drafts)."""

    id_type: int = IdType.IPV4_ADDR
    address: bytes = b""
    payload_type: int = PayloadType.NAT_OA

    def encode_body(self) -> bytes:
        return bytes([self.id_type, 0, 0, 0]) + self.address

    @classmethod
    def decode_body(cls, buf: bytes, start: int, end: int, payload_type: int) -> NatOaPayload:
        _need(start, end, 4, "NAT-OA ID type")
        return cls(enum_or_int(IdType, buf[start]), bytes(buf[start + 4 : end]), payload_type)


@dataclass(slots=True)
class UnknownPayload:
    """Any other payload type, kept as raw body bytes."""

    payload_type: int
    data: bytes = b""

    def encode_body(self) -> bytes:
        return self.data


Payload = (
    SaPayload
    | KePayload
    | IdPayload
    | CertPayload
    | CertRequestPayload
    | HashPayload
    | SignaturePayload
    | NoncePayload
    | NotifyPayload
    | DeletePayload
    | VendorIdPayload
    | NatDPayload
    | NatOaPayload
    | UnknownPayload
)

#: Body decoders of the payloads that need no more than their bytes.
_SIMPLE: dict[int, Callable[[bytes, int, int], Payload]] = {
    PayloadType.SA: SaPayload.decode_body,
    PayloadType.KE: KePayload.decode_body,
    PayloadType.ID: IdPayload.decode_body,
    PayloadType.CERT: CertPayload.decode_body,
    PayloadType.CR: CertRequestPayload.decode_body,
    PayloadType.HASH: HashPayload.decode_body,
    PayloadType.SIG: SignaturePayload.decode_body,
    PayloadType.NONCE: NoncePayload.decode_body,
    PayloadType.NOTIFY: NotifyPayload.decode_body,
    PayloadType.DELETE: DeletePayload.decode_body,
    PayloadType.VENDOR_ID: VendorIdPayload.decode_body,
}


def decode_payload_body(payload_type: int, buf: bytes, start: int, end: int) -> Payload:
    """Decode the body ``buf[start:end]`` of a payload of ``payload_type``."""
    if payload_type in (PayloadType.NAT_D, PayloadType.NAT_D_DRAFT):
        return NatDPayload(bytes(buf[start:end]), PayloadType(payload_type))
    if payload_type in (PayloadType.NAT_OA, PayloadType.NAT_OA_DRAFT):
        return NatOaPayload.decode_body(buf, start, end, PayloadType(payload_type))
    decode = _SIMPLE.get(payload_type)
    if decode is None:
        return UnknownPayload(enum_or_int(PayloadType, payload_type), bytes(buf[start:end]))
    return decode(buf, start, end)
