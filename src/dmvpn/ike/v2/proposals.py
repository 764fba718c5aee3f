"""SA payloads for IKEv2 and the responder's choice among them (RFC 7296
sections 2.7 and 3.3): one proposal per configured IKE proposal or ESP
transform, and a selection that keeps exactly one transform of each type.

IKE proposals come from ``crypto ikev2 proposal`` (:class:`Ikev2Proposal`);
ESP ones from the data plane's :class:`EspTransform`. ESP and IKEv2 share
the ENCR numbers of the ciphers we run (3DES 3, NULL 11, AES-CBC 12,
AES-GCM 18-20); the integrity algorithm maps to its IKEv2 transform.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dmvpn.config.ikev2_model import Ikev2Proposal
from dmvpn.crypto.esp_algorithms import EspAuthAlgorithm, EspTransform, EspTransformId
from dmvpn.crypto.ikev2_algorithms import EncrId, IntegId, PrfId, SkCipher
from dmvpn.wire.ikev2_payloads import Proposal, SaPayload, Transform
from dmvpn.wire.ikev2_registry import EsnId, ProtocolId, TransformAttribute, TransformType
from dmvpn.wire.isakmp_payloads import Attribute

#: ESP integrity (RFC 2407 attribute 5) -> IKEv2 transform type 3.
ESP_INTEG = {
    EspAuthAlgorithm.HMAC_MD5: IntegId.HMAC_MD5_96,
    EspAuthAlgorithm.HMAC_SHA: IntegId.HMAC_SHA1_96,
    EspAuthAlgorithm.HMAC_SHA2_256: IntegId.HMAC_SHA2_256_128,
    EspAuthAlgorithm.HMAC_SHA2_384: IntegId.HMAC_SHA2_384_192,
    EspAuthAlgorithm.HMAC_SHA2_512: IntegId.HMAC_SHA2_512_256,
}
_ESP_AUTH = {v: k for k, v in ESP_INTEG.items()}


def _encr(encr: int, key_bits: int | None) -> Transform:
    attrs = [Attribute(TransformAttribute.KEY_LENGTH, key_bits)] if key_bits else []
    return Transform(TransformType.ENCR, encr, attrs)


def ike_sa_payload(proposals: Sequence[Ikev2Proposal], spi: bytes = b"") -> SaPayload:
    """The initiator's SAi1: proposal N+1 for the N-th complete proposal;
    ``spi`` is the new IKE SA's SPI when rekeying it (RFC 7296 1.3.2)."""
    out: list[Proposal] = []
    for p in (p for p in proposals if p.complete):
        ts = [_encr(e.encr, e.key_bits) for e in p.encryption]
        ts += [Transform(TransformType.PRF, x) for x in p.prf]
        ts += [Transform(TransformType.INTEG, i) for i in p.integrity]
        ts += [Transform(TransformType.DH, g) for g in p.groups]
        out.append(Proposal(len(out) + 1, ProtocolId.IKE, spi, ts))
    return SaPayload(out)


def _pick(offered: Proposal, ttype: int, acceptable: Sequence[tuple[int, int | None]]) -> Transform | None:
    for t in offered.of_type(ttype):
        if (int(t.transform_id), t.key_length) in acceptable:
            return t
    return None


def _choose(offered: Proposal, wanted: Sequence[tuple[int, Sequence[tuple[int, int | None]]]]) -> Proposal | None:
    chosen = []
    for ttype, acceptable in wanted:
        if not acceptable:
            if offered.of_type(ttype) and any(int(t.transform_id) != 0 for t in offered.of_type(ttype)):
                return None  # e.g. an integrity algorithm offered with an AEAD cipher we would not pair
            continue
        t = _pick(offered, ttype, acceptable)
        if t is None:
            return None
        chosen.append(t)
    return Proposal(offered.number, offered.protocol_id, offered.spi, chosen)


def select_ike(offered: SaPayload, local: Sequence[Ikev2Proposal], spi_size: int = 0) -> Proposal | None:
    """The first offered IKE proposal (initiator's order, RFC 7296 2.7) that
    one of ours accepts, cut to one transform per type; None if none does.
    ``spi_size`` is 0 in IKE_SA_INIT and 8 when an IKE SA is rekeyed."""
    for prop in offered.proposals:
        if prop.protocol_id != ProtocolId.IKE or len(prop.spi) != spi_size:
            continue
        for mine in (p for p in local if p.complete):
            aead = all(e.is_aead for e in mine.encryption)
            got = _choose(
                prop,
                [
                    (TransformType.ENCR, [(int(e.encr), e.key_bits) for e in mine.encryption]),
                    (TransformType.PRF, [(int(x), None) for x in mine.prf]),
                    (TransformType.INTEG, [] if aead else [(int(i), None) for i in mine.integrity]),
                    (TransformType.DH, [(int(g), None) for g in mine.groups]),
                ],
            )
            if got is not None:
                return got
    return None


@dataclass(frozen=True, slots=True)
class IkeAlgorithms:
    """What an IKE SA runs: SK payload protection, PRF and DH group."""

    cipher: SkCipher
    prf: PrfId
    group: int


def ike_algorithms(chosen: Proposal) -> IkeAlgorithms:
    """The algorithms of a selected (one transform per type) IKE proposal."""
    (encr,) = chosen.of_type(TransformType.ENCR)
    (prf,) = chosen.of_type(TransformType.PRF)
    integ = chosen.of_type(TransformType.INTEG)
    (dh,) = chosen.of_type(TransformType.DH)
    cipher = SkCipher(
        EncrId(int(encr.transform_id)), encr.key_length, IntegId(int(integ[0].transform_id)) if integ else IntegId.NONE
    )
    return IkeAlgorithms(cipher, PrfId(int(prf.transform_id)), int(dh.transform_id))


def _esp_transforms(esp: EspTransform, group: int | None = None) -> list[Transform]:
    ts = [
        _encr(
            int(esp.encr), esp.key_bits if esp.encr not in (EspTransformId.ESP_3DES, EspTransformId.ESP_NULL) else None
        )
    ]
    if not esp.is_aead:
        ts.append(Transform(TransformType.INTEG, ESP_INTEG[esp.auth]))
    if group is not None:
        ts.append(Transform(TransformType.DH, group))
    ts.append(Transform(TransformType.ESN, EsnId.NO_ESN))
    return ts


def esp_sa_payload(transforms: Sequence[EspTransform], spi: bytes, group: int | None = None) -> SaPayload:
    """SAi2/SAr2: one ESP proposal per transform, each with our inbound SPI
    and, in a CREATE_CHILD_SA with PFS, the D-H transform of its KE (RFC
    7296 1.3.1, 3.3.2: a KE payload's group must be in the accepted proposal)."""
    return SaPayload([Proposal(i, ProtocolId.ESP, spi, _esp_transforms(t, group))
                      for i, t in enumerate(transforms, 1)])


def select_esp(offered: SaPayload, local: Sequence[EspTransform],
               group: int | None = None) -> tuple[Proposal, EspTransform] | None:
    """The first offered ESP proposal that equals one of our transforms; with
    ``group`` (PFS) it must offer that D-H group, which the chosen proposal
    then carries; without, D-H transforms are not looked at (IKE_AUTH's
    proposals may carry the group of later rekeys, RFC 7296 1.2)."""
    for prop in offered.proposals:
        if prop.protocol_id != ProtocolId.ESP or len(prop.spi) != 4:
            continue
        for mine in local:
            got = _choose(
                prop, [(t.transform_type, [(int(t.transform_id), t.key_length)]) for t in _esp_transforms(mine, group)]
            )
            if got is not None:
                return got, mine
    return None


def esp_of(chosen: Proposal) -> EspTransform:
    """The ESP transform a selected ESP proposal stands for."""
    (encr,) = chosen.of_type(TransformType.ENCR)
    integ = chosen.of_type(TransformType.INTEG)
    eid = EspTransformId(int(encr.transform_id))
    bits = encr.key_length or (192 if eid == EspTransformId.ESP_3DES else 0)
    auth = _ESP_AUTH[IntegId(int(integ[0].transform_id))] if integ else EspAuthAlgorithm.NONE
    return EspTransform(eid, bits, auth)
