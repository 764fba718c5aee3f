"""IKEv2 payload bodies: dataclasses with encode and strict decode.

Each class knows the layout of what follows the 4-byte generic payload
header (RFC 7296 section 3.2): SA with proposals, transforms and attributes
3.3; KE 3.4; IDi/IDr 3.5; CERT 3.6; CERTREQ 3.7; AUTH 3.8; Nonce 3.9;
Notify 3.10; Delete 3.11; Vendor ID 3.12; TSi/TSr 3.13; Encrypted 3.14;
Encrypted Fragment RFC 7383 section 2.5. ``critical`` is the generic
header's C bit as received (or to send). Decoders raise only
:class:`DecodeError`, with offsets into the buffer they were given.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from typing import Any, ClassVar

from dmvpn.crypto.dh_groups import DhGroup
from dmvpn.crypto.ikev2_algorithms import EncrId, IntegId, PrfId
from dmvpn.wire.errors import DecodeError
from dmvpn.wire.ikev2_registry import (
    AuthMethod,
    CertEncoding,
    EsnId,
    IdType,
    NotifyType,
    PayloadType,
    ProtocolId,
    TransformAttribute,
    TransformType,
    TsType,
)
from dmvpn.wire.isakmp_payloads import Attribute
from dmvpn.wire.isakmp_registry import enum_or_int

GENERIC_HEADER_LEN = 4
_ATTR_TV = 0x8000
_LAST, _MORE_PROPOSALS, _MORE_TRANSFORMS = 0, 2, 3  # RFC 7296 3.3.1 / 3.3.2


def _need(offset: int, end: int, n: int, what: str) -> None:
    if offset + n > end:
        raise DecodeError(offset, f"{what}: need {n} bytes, {max(end - offset, 0)} left")


# --------------------------------------------------------------------------
# SA payload (RFC 7296 3.3)

_TRANSFORM_IDS = {
    TransformType.ENCR: EncrId,
    TransformType.PRF: PrfId,
    TransformType.INTEG: IntegId,
    TransformType.DH: DhGroup,
    TransformType.ESN: EsnId,
}


@dataclass(slots=True)
class Transform:
    """One transform substructure (RFC 7296 3.3.2) and its attributes (3.3.5)."""

    transform_type: int
    transform_id: int
    attributes: list[Attribute] = field(default_factory=list)

    @property
    def key_length(self) -> int | None:
        """The Key Length attribute in bits, or None."""
        for a in self.attributes:
            if a.type == TransformAttribute.KEY_LENGTH and isinstance(a.value, int):
                return a.value
        return None

    def encode(self, last: bool) -> bytes:
        attrs = b"".join(a.encode() for a in self.attributes)
        length = 8 + len(attrs)
        nxt = _LAST if last else _MORE_TRANSFORMS
        return struct.pack("!BBHBBH", nxt, 0, length, self.transform_type, 0, self.transform_id) + attrs


@dataclass(slots=True)
class Proposal:
    """One proposal substructure (RFC 7296 3.3.1)."""

    number: int
    protocol_id: int
    spi: bytes = b""
    transforms: list[Transform] = field(default_factory=list)

    def of_type(self, transform_type: int) -> list[Transform]:
        """The transforms of one type, in order."""
        return [t for t in self.transforms if t.transform_type == transform_type]

    def encode(self, last: bool) -> bytes:
        body = b"".join(t.encode(i + 1 == len(self.transforms)) for i, t in enumerate(self.transforms))
        length = 8 + len(self.spi) + len(body)
        nxt = _LAST if last else _MORE_PROPOSALS
        head = struct.pack(
            "!BBHBBBB", nxt, 0, length, self.number, self.protocol_id, len(self.spi), len(self.transforms)
        )
        return head + self.spi + body


def decode_attributes(buf: bytes, offset: int, end: int) -> list[Attribute]:
    """Transform attributes in ``buf[offset:end]`` (RFC 7296 3.3.5)."""
    attrs: list[Attribute] = []
    while offset < end:
        _need(offset, end, 4, "transform attribute header")
        word, second = struct.unpack_from("!HH", buf, offset)
        atype = enum_or_int(TransformAttribute, word & 0x7FFF)
        if word & _ATTR_TV:
            attrs.append(Attribute(atype, second))
            offset += 4
            continue
        _need(offset + 4, end, second, f"attribute {int(atype)} value")
        attrs.append(Attribute(atype, bytes(buf[offset + 4 : offset + 4 + second]), tlv=True))
        offset += 4 + second
    return attrs


def _substructures(buf: bytes, offset: int, end: int, more: int, what: str) -> list[tuple[int, int, int]]:
    """Walk a proposal or transform list: (start, end, header field) triples.

    The first byte of each substructure is 0 for the last one and ``more``
    (2 proposals, 3 transforms) otherwise (RFC 7296 3.3.1, 3.3.2)."""
    spans: list[tuple[int, int, int]] = []
    while True:
        _need(offset, end, 8, f"{what} header")
        nxt, _reserved, length = struct.unpack_from("!BBH", buf, offset)
        if nxt not in (_LAST, more):
            raise DecodeError(offset, f"{what}: 'last substruc' is {nxt}, must be 0 or {more}")
        if length < 8:
            raise DecodeError(offset + 2, f"{what} length {length} < 8")
        if offset + length > end:
            raise DecodeError(offset + 2, f"{what} length {length} runs past its parent ({end - offset} bytes left)")
        spans.append((offset, offset + length, nxt))
        offset += length
        if nxt == _LAST:
            if offset != end:
                raise DecodeError(offset, f"{end - offset} bytes after the last {what}")
            return spans


def _decode_proposal(buf: bytes, start: int, end: int) -> Proposal:
    number, protocol, spi_size, n_transforms = struct.unpack_from("!BBBB", buf, start + 4)
    _need(start + 8, end, spi_size, "proposal SPI")
    spi = bytes(buf[start + 8 : start + 8 + spi_size])
    tstart = start + 8 + spi_size
    spans = _substructures(buf, tstart, end, _MORE_TRANSFORMS, "transform") if tstart < end else []
    if len(spans) != n_transforms:
        raise DecodeError(start + 7, f"proposal #{number} says {n_transforms} transforms, found {len(spans)}")
    transforms = []
    for ts, te, _ in spans:
        ttype, _r, tid = struct.unpack_from("!BBH", buf, ts + 4)
        enum = _TRANSFORM_IDS.get(ttype)
        transforms.append(
            Transform(
                enum_or_int(TransformType, ttype),
                enum_or_int(enum, tid) if enum else tid,
                decode_attributes(buf, ts + 8, te),
            )
        )
    return Proposal(number, enum_or_int(ProtocolId, protocol), spi, transforms)


@dataclass(slots=True)
class SaPayload:
    """Security Association payload (RFC 7296 3.3)."""

    payload_type: ClassVar[int] = PayloadType.SA
    proposals: list[Proposal] = field(default_factory=list)
    critical: bool = field(default=False, kw_only=True)

    def encode_body(self) -> bytes:
        return b"".join(p.encode(i + 1 == len(self.proposals)) for i, p in enumerate(self.proposals))

    @classmethod
    def decode_body(cls, buf: bytes, start: int, end: int) -> SaPayload:
        if start == end:
            raise DecodeError(start, "SA payload without a proposal")
        spans = _substructures(buf, start, end, _MORE_PROPOSALS, "proposal")
        return cls([_decode_proposal(buf, s, e) for s, e, _ in spans])


# --------------------------------------------------------------------------
# Simple payloads


@dataclass(slots=True)
class KePayload:
    """Key Exchange payload (RFC 7296 3.4): DH group number and public value."""

    payload_type: ClassVar[int] = PayloadType.KE
    group: int = DhGroup.MODP_2048
    data: bytes = b""
    critical: bool = field(default=False, kw_only=True)

    def encode_body(self) -> bytes:
        return struct.pack("!HH", self.group, 0) + self.data

    @classmethod
    def decode_body(cls, buf: bytes, start: int, end: int) -> KePayload:
        _need(start, end, 4, "KE group")
        (group,) = struct.unpack_from("!H", buf, start)
        return cls(enum_or_int(DhGroup, group), bytes(buf[start + 4 : end]))


@dataclass(slots=True)
class IdPayload:
    """Identification payload, IDi (35) or IDr (36) (RFC 7296 3.5)."""

    id_type: int = IdType.IPV4_ADDR
    data: bytes = b""
    payload_type: int = PayloadType.IDI
    critical: bool = field(default=False, kw_only=True)

    @classmethod
    def ipv4(cls, address: str, payload_type: int = PayloadType.IDI) -> IdPayload:
        """An ID_IPV4_ADDR identity."""
        return cls(IdType.IPV4_ADDR, ipaddress.IPv4Address(address).packed, payload_type)

    def describe(self) -> str:
        """The identity as text: address, name or hex."""
        d = self.data
        if self.id_type == IdType.IPV4_ADDR and len(d) == 4:
            return str(ipaddress.IPv4Address(d))
        if self.id_type == IdType.IPV6_ADDR and len(d) == 16:
            return str(ipaddress.IPv6Address(d))
        if self.id_type in (IdType.FQDN, IdType.RFC822_ADDR) and d.isascii():
            return d.decode("ascii")
        return d.hex()

    def encode_body(self) -> bytes:
        return bytes([self.id_type, 0, 0, 0]) + self.data

    @classmethod
    def decode_body(cls, buf: bytes, start: int, end: int, payload_type: int) -> IdPayload:
        _need(start, end, 4, "ID type")
        return cls(enum_or_int(IdType, buf[start]), bytes(buf[start + 4 : end]), PayloadType(payload_type))


@dataclass(slots=True)
class CertPayload:
    """Certificate (37) or Certificate Request (38) payload (RFC 7296 3.6, 3.7)."""

    encoding: int = CertEncoding.X509_SIGNATURE
    data: bytes = b""
    payload_type: int = PayloadType.CERT
    critical: bool = field(default=False, kw_only=True)

    def encode_body(self) -> bytes:
        return bytes([self.encoding]) + self.data

    @classmethod
    def decode_body(cls, buf: bytes, start: int, end: int, payload_type: int) -> CertPayload:
        _need(start, end, 1, "certificate encoding")
        return cls(enum_or_int(CertEncoding, buf[start]), bytes(buf[start + 1 : end]), PayloadType(payload_type))


@dataclass(slots=True)
class AuthPayload:
    """Authentication payload (RFC 7296 3.8)."""

    payload_type: ClassVar[int] = PayloadType.AUTH
    method: int = AuthMethod.SHARED_KEY_MIC
    data: bytes = b""
    critical: bool = field(default=False, kw_only=True)

    def encode_body(self) -> bytes:
        return bytes([self.method, 0, 0, 0]) + self.data

    @classmethod
    def decode_body(cls, buf: bytes, start: int, end: int) -> AuthPayload:
        _need(start, end, 4, "AUTH method")
        return cls(enum_or_int(AuthMethod, buf[start]), bytes(buf[start + 4 : end]))


@dataclass(slots=True)
class _DataPayload:
    data: bytes = b""
    critical: bool = field(default=False, kw_only=True)

    def encode_body(self) -> bytes:
        return self.data

    @classmethod
    def decode_body(cls, buf: bytes, start: int, end: int) -> _DataPayload:
        return cls(bytes(buf[start:end]))


@dataclass(slots=True)
class NoncePayload(_DataPayload):
    """Nonce payload (RFC 7296 3.9)."""

    payload_type: ClassVar[int] = PayloadType.NONCE


@dataclass(slots=True)
class VendorIdPayload(_DataPayload):
    """Vendor ID payload (RFC 7296 3.12)."""

    payload_type: ClassVar[int] = PayloadType.VENDOR_ID


@dataclass(slots=True)
class NotifyPayload:
    """Notify payload (RFC 7296 3.10): protocol, SPI, type, data."""

    payload_type: ClassVar[int] = PayloadType.NOTIFY
    notify_type: int = NotifyType.INITIAL_CONTACT
    protocol_id: int = ProtocolId.NONE
    spi: bytes = b""
    data: bytes = b""
    critical: bool = field(default=False, kw_only=True)

    @property
    def is_error(self) -> bool:
        """Types below 16384 are errors (RFC 7296 3.10.1)."""
        return int(self.notify_type) < 16384

    def encode_body(self) -> bytes:
        return struct.pack("!BBH", self.protocol_id, len(self.spi), self.notify_type) + self.spi + self.data

    @classmethod
    def decode_body(cls, buf: bytes, start: int, end: int) -> NotifyPayload:
        _need(start, end, 4, "notify fields")
        proto, spi_size, ntype = struct.unpack_from("!BBH", buf, start)
        _need(start + 4, end, spi_size, "notify SPI")
        return cls(
            enum_or_int(NotifyType, ntype),
            enum_or_int(ProtocolId, proto),
            bytes(buf[start + 4 : start + 4 + spi_size]),
            bytes(buf[start + 4 + spi_size : end]),
        )


@dataclass(slots=True)
class DeletePayload:
    """Delete payload (RFC 7296 3.11): SPIs of one protocol; an IKE SA
    delete has SPI size 0 and no SPIs."""

    payload_type: ClassVar[int] = PayloadType.DELETE
    protocol_id: int = ProtocolId.ESP
    spis: list[bytes] = field(default_factory=list)
    spi_size: int | None = None
    critical: bool = field(default=False, kw_only=True)

    def encode_body(self) -> bytes:
        size = self.spi_size if self.spi_size is not None else (len(self.spis[0]) if self.spis else 0)
        if any(len(s) != size for s in self.spis):
            raise ValueError(f"delete payload: every SPI must be {size} bytes")
        return struct.pack("!BBH", self.protocol_id, size, len(self.spis)) + b"".join(self.spis)

    @classmethod
    def decode_body(cls, buf: bytes, start: int, end: int) -> DeletePayload:
        _need(start, end, 4, "delete fields")
        proto, spi_size, count = struct.unpack_from("!BBH", buf, start)
        if end - start - 4 != spi_size * count:
            raise DecodeError(
                start + 2, f"delete: {count} SPIs of {spi_size} bytes, but {end - start - 4} bytes follow"
            )
        off = start + 4
        spis = [bytes(buf[off + i * spi_size : off + (i + 1) * spi_size]) for i in range(count)]
        return cls(enum_or_int(ProtocolId, proto), spis, None if count else spi_size)


_TS_ADDR_LEN: dict[int, int] = {TsType.IPV4_ADDR_RANGE: 4, TsType.IPV6_ADDR_RANGE: 16}


@dataclass(slots=True)
class TrafficSelector:
    """One traffic selector (RFC 7296 3.13.1): protocol, port range and
    address range. ``start_address``/``end_address`` are packed bytes; an
    unknown TS type keeps its body in ``start_address``."""

    ts_type: int = TsType.IPV4_ADDR_RANGE
    ip_protocol: int = 0
    start_port: int = 0
    end_port: int = 65535
    start_address: bytes = b"\x00\x00\x00\x00"
    end_address: bytes = b"\xff\xff\xff\xff"

    @classmethod
    def ipv4(
        cls, start: str, end: str, ip_protocol: int = 0, start_port: int = 0, end_port: int = 65535
    ) -> TrafficSelector:
        """An IPv4 address range selector."""
        return cls(
            TsType.IPV4_ADDR_RANGE,
            ip_protocol,
            start_port,
            end_port,
            ipaddress.IPv4Address(start).packed,
            ipaddress.IPv4Address(end).packed,
        )

    def describe(self) -> str:
        """``start-end proto P ports a-b`` as text."""
        if self.ts_type in _TS_ADDR_LEN:
            lo, hi = ipaddress.ip_address(self.start_address), ipaddress.ip_address(self.end_address)
            return f"{lo}-{hi} proto {self.ip_protocol} ports {self.start_port}-{self.end_port}"
        return f"type {int(self.ts_type)} {self.start_address.hex()}"

    def encode(self) -> bytes:
        if self.ts_type in _TS_ADDR_LEN:
            body = struct.pack("!HH", self.start_port, self.end_port) + self.start_address + self.end_address
        else:
            body = self.start_address
        return struct.pack("!BBH", self.ts_type, self.ip_protocol, 4 + len(body)) + body


def _decode_selector(buf: bytes, start: int, end: int) -> tuple[TrafficSelector, int]:
    _need(start, end, 4, "traffic selector header")
    ts_type, proto, length = struct.unpack_from("!BBH", buf, start)
    if length < 4:
        raise DecodeError(start + 2, f"traffic selector length {length} < 4")
    _need(start, end, length, "traffic selector")
    alen = _TS_ADDR_LEN.get(ts_type)
    if alen is None:
        return TrafficSelector(ts_type, proto, 0, 0, bytes(buf[start + 4 : start + length]), b""), start + length
    if length != 8 + 2 * alen:
        raise DecodeError(start + 2, f"traffic selector type {ts_type}: length {length}, must be {8 + 2 * alen}")
    sport, eport = struct.unpack_from("!HH", buf, start + 4)
    a = start + 8
    sel = TrafficSelector(
        TsType(ts_type), proto, sport, eport, bytes(buf[a : a + alen]), bytes(buf[a + alen : a + 2 * alen])
    )
    return sel, start + length


@dataclass(slots=True)
class TsPayload:
    """Traffic Selector payload, TSi (44) or TSr (45) (RFC 7296 3.13)."""

    selectors: list[TrafficSelector] = field(default_factory=list)
    payload_type: int = PayloadType.TSI
    critical: bool = field(default=False, kw_only=True)

    def encode_body(self) -> bytes:
        return bytes([len(self.selectors), 0, 0, 0]) + b"".join(s.encode() for s in self.selectors)

    @classmethod
    def decode_body(cls, buf: bytes, start: int, end: int, payload_type: int) -> TsPayload:
        _need(start, end, 4, "number of TSs")
        count = buf[start]
        offset = start + 4
        selectors = []
        for _ in range(count):
            sel, offset = _decode_selector(buf, offset, end)
            selectors.append(sel)
        if offset != end:
            raise DecodeError(offset, f"{end - offset} bytes after the {count} traffic selectors")
        return cls(selectors, PayloadType(payload_type))


@dataclass(slots=True)
class EncryptedPayload:
    """Encrypted and Authenticated payload, SK (RFC 7296 3.14): IV,
    ciphertext and ICV as received or sent. ``first_payload`` is its Next
    Payload field, the type of the first payload inside. ``offset`` is where
    its generic header starts in the decoded message (the associated data
    ends 4 bytes after it)."""

    payload_type: ClassVar[int] = PayloadType.SK
    first_payload: int = PayloadType.NONE
    body: bytes = b""
    offset: int = field(default=0, compare=False)
    critical: bool = field(default=False, kw_only=True)

    def encode_body(self) -> bytes:
        return self.body


@dataclass(slots=True)
class EncryptedFragmentPayload:
    """Encrypted Fragment payload, SKF (RFC 7383 section 2.5): fragment
    number (from 1), total fragments, then IV, ciphertext and ICV. Only
    fragment 1 carries the first inner payload type; the others have 0."""

    payload_type: ClassVar[int] = PayloadType.SKF
    fragment_number: int = 1
    total_fragments: int = 1
    first_payload: int = PayloadType.NONE
    body: bytes = b""
    offset: int = field(default=0, compare=False)
    critical: bool = field(default=False, kw_only=True)

    def encode_body(self) -> bytes:
        return struct.pack("!HH", self.fragment_number, self.total_fragments) + self.body

    @classmethod
    def decode_body(cls, buf: bytes, start: int, end: int, first_payload: int) -> EncryptedFragmentPayload:
        _need(start, end, 4, "fragment number and total")
        number, total = struct.unpack_from("!HH", buf, start)
        if total == 0 or not 1 <= number <= total:
            raise DecodeError(start, f"fragment {number} of {total}: must be 1 <= number <= total")
        return cls(number, total, first_payload, bytes(buf[start + 4 : end]), start - GENERIC_HEADER_LEN)


@dataclass(slots=True)
class UnknownPayload:
    """Any other payload type (CP, EAP, GSPM, unregistered) as raw bytes."""

    payload_type: int
    data: bytes = b""
    critical: bool = field(default=False, kw_only=True)

    def encode_body(self) -> bytes:
        return self.data


Payload = (
    SaPayload
    | KePayload
    | IdPayload
    | CertPayload
    | AuthPayload
    | NoncePayload
    | NotifyPayload
    | DeletePayload
    | VendorIdPayload
    | TsPayload
    | EncryptedPayload
    | EncryptedFragmentPayload
    | UnknownPayload
)

_SIMPLE: dict[int, Any] = {
    PayloadType.SA: SaPayload,
    PayloadType.KE: KePayload,
    PayloadType.AUTH: AuthPayload,
    PayloadType.NONCE: NoncePayload,
    PayloadType.NOTIFY: NotifyPayload,
    PayloadType.DELETE: DeletePayload,
    PayloadType.VENDOR_ID: VendorIdPayload,
}
_TYPED: dict[int, Any] = {
    PayloadType.IDI: IdPayload,
    PayloadType.IDR: IdPayload,
    PayloadType.CERT: CertPayload,
    PayloadType.CERTREQ: CertPayload,
    PayloadType.TSI: TsPayload,
    PayloadType.TSR: TsPayload,
}


def decode_payload_body(payload_type: int, buf: bytes, start: int, end: int) -> Payload:
    """Decode the body ``buf[start:end]`` of a payload of ``payload_type``
    (not SK/SKF, whose Next Payload field the chain decoder handles)."""
    cls = _SIMPLE.get(payload_type)
    if cls is not None:
        result: Payload = cls.decode_body(buf, start, end)
        return result
    typed = _TYPED.get(payload_type)
    if typed is not None:
        result = typed.decode_body(buf, start, end, payload_type)
        return result
    return UnknownPayload(enum_or_int(PayloadType, payload_type), bytes(buf[start:end]))
