"""Sample ISAKMP messages built with our API, shared by the isakmp tests."""

from __future__ import annotations

from dmvpn.crypto.dh_groups import DhGroup
from dmvpn.crypto.ike_algorithms import EncryptionAlgorithm, HashAlgorithm
from dmvpn.wire.isakmp import IsakmpMessage
from dmvpn.wire.isakmp_payloads import (
    Attribute,
    DeletePayload,
    HashPayload,
    IdPayload,
    KePayload,
    NatDPayload,
    NatOaPayload,
    NoncePayload,
    NotifyPayload,
    Proposal,
    SaPayload,
    Transform,
    VendorIdPayload,
)
from dmvpn.wire.isakmp_registry import (
    AuthenticationAlgorithm,
    AuthenticationMethod,
    EncapsulationMode,
    EspTransformId,
    ExchangeType,
    IsakmpTransformId,
    LifeType,
    NotifyType,
    PayloadType,
    ProtocolId,
)
from dmvpn.wire.isakmp_registry import (
    Phase1Attribute as P1,
)
from dmvpn.wire.isakmp_registry import (
    Phase2Attribute as P2,
)

CKY_I = bytes.fromhex("0102030405060708")
CKY_R = bytes.fromhex("a1a2a3a4a5a6a7a8")


def main_mode_1() -> IsakmpMessage:
    t = Transform(1, IsakmpTransformId.KEY_IKE, [
        Attribute(P1.ENCRYPTION_ALGORITHM, EncryptionAlgorithm.AES_CBC),
        Attribute(P1.KEY_LENGTH, 256),
        Attribute(P1.HASH_ALGORITHM, HashAlgorithm.SHA2_256),
        Attribute(P1.AUTHENTICATION_METHOD, AuthenticationMethod.PRE_SHARED_KEY),
        Attribute(P1.GROUP_DESCRIPTION, DhGroup.MODP_2048),
        Attribute(P1.LIFE_TYPE, LifeType.SECONDS),
        Attribute(P1.LIFE_DURATION, 86400),
    ])
    sa = SaPayload([Proposal(1, ProtocolId.ISAKMP, b"", [t])])
    return IsakmpMessage(CKY_I, bytes(8), ExchangeType.IDENTITY_PROTECTION, payloads=[
        sa,
        VendorIdPayload(bytes.fromhex("4a131c81070358455c5728f20e95452f")),
        VendorIdPayload(bytes.fromhex("afcad71368a1f1c96b8696fc77570100")),
    ])


def main_mode_3() -> IsakmpMessage:
    return IsakmpMessage(CKY_I, CKY_R, ExchangeType.IDENTITY_PROTECTION, payloads=[
        KePayload(bytes(range(256))), NoncePayload(b"N" * 32),
        NatDPayload(b"D" * 20), NatDPayload(b"E" * 20),
    ])


def main_mode_5() -> IsakmpMessage:
    return IsakmpMessage(CKY_I, CKY_R, ExchangeType.IDENTITY_PROTECTION, payloads=[
        IdPayload.ipv4("192.0.2.1", 17, 500), HashPayload(b"H" * 32),
        NotifyPayload(NotifyType.INITIAL_CONTACT, ProtocolId.ISAKMP, CKY_I + CKY_R),
    ])


def quick_mode_1() -> IsakmpMessage:
    esp = Transform(1, EspTransformId.ESP_AES_CBC, [
        Attribute(P2.SA_LIFE_TYPE, LifeType.SECONDS),
        Attribute(P2.SA_LIFE_DURATION, 3600, tlv=True),
        Attribute(P2.SA_LIFE_TYPE, LifeType.KILOBYTES),
        Attribute(P2.SA_LIFE_DURATION, 4608000),
        Attribute(P2.ENCAPSULATION_MODE, EncapsulationMode.TRANSPORT),
        Attribute(P2.AUTHENTICATION_ALGORITHM, AuthenticationAlgorithm.HMAC_SHA2_256),
        Attribute(P2.KEY_LENGTH, 128),
        Attribute(P2.GROUP_DESCRIPTION, DhGroup.MODP_1024),
    ])
    sa = SaPayload([Proposal(1, ProtocolId.IPSEC_ESP, bytes.fromhex("c0ffee01"), [esp])])
    return IsakmpMessage(CKY_I, CKY_R, ExchangeType.QUICK_MODE, message_id=0x0F2B7862, payloads=[
        HashPayload(b"h" * 32), sa, NoncePayload(b"n" * 16), KePayload(b"k" * 128),
        IdPayload.ipv4("192.0.2.1", 47), IdPayload.ipv4("192.0.2.2", 47),
    ])


def informational_delete() -> IsakmpMessage:
    return IsakmpMessage(CKY_I, CKY_R, ExchangeType.INFORMATIONAL, message_id=0x1234, payloads=[
        HashPayload(b"h" * 32),
        DeletePayload(ProtocolId.IPSEC_ESP, [bytes.fromhex("c0ffee01"), bytes.fromhex("c0ffee02")]),
    ])


def dpd() -> IsakmpMessage:
    return IsakmpMessage(CKY_I, CKY_R, ExchangeType.INFORMATIONAL, message_id=0x99, payloads=[
        HashPayload(b"h" * 20),
        NotifyPayload(NotifyType.R_U_THERE, ProtocolId.ISAKMP, CKY_I + CKY_R, (7).to_bytes(4, "big")),
    ])


def nat_oa_quick_mode() -> IsakmpMessage:
    return IsakmpMessage(CKY_I, CKY_R, ExchangeType.QUICK_MODE, message_id=7, payloads=[
        HashPayload(b"h" * 20), NoncePayload(b"n" * 16),
        NatOaPayload(1, bytes([10, 0, 0, 1])), NatOaPayload(1, bytes([10, 0, 0, 2]), PayloadType.NAT_OA_DRAFT),
        NatDPayload(b"x" * 20, PayloadType.NAT_D_DRAFT),
    ])


ALL = [main_mode_1, main_mode_3, main_mode_5, quick_mode_1, informational_delete, dpd, nat_oa_quick_mode]
