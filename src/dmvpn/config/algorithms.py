"""Algorithm names as IOS spells them, mapped to IKEv1 / IPsec DOI numbers.

Phase-1 enums (encryption, hash, DH group) are the crypto layer's own
(:mod:`dmvpn.crypto.ike_algorithms`, :mod:`dmvpn.crypto.dh_groups`); this
module adds the values the configuration needs besides them: the phase-1
authentication method (RFC 2409 appendix A, attribute 3), the ESP transform
identifiers (RFC 2407 section 4.4.4, IANA "IPsec ESP Transform Identifiers"),
the phase-2 authentication algorithm (RFC 2407 section 4.5, attribute 5) and
the encapsulation mode (RFC 2407 section 4.5, attribute 4).
"""

from __future__ import annotations

from enum import IntEnum

from dmvpn.crypto.dh_groups import DhGroup
from dmvpn.crypto.ike_algorithms import EncryptionAlgorithm, HashAlgorithm

__all__ = [
    "DhGroup",
    "EncryptionAlgorithm",
    "HashAlgorithm",
    "IkeAuthMethod",
    "EspTransformId",
    "EspAuthAlgorithm",
    "EncapsulationMode",
    "ISAKMP_ENCRYPTION_NAMES",
    "ISAKMP_HASH_NAMES",
    "ISAKMP_AUTH_NAMES",
    "IOS_DH_GROUPS",
    "ESP_CIPHER_NAMES",
    "ESP_AUTH_NAMES",
]


class IkeAuthMethod(IntEnum):
    """Phase-1 attribute 3, authentication method (RFC 2409 appendix A)."""

    PRE_SHARED_KEY = 1
    DSS_SIGNATURES = 2
    RSA_SIGNATURES = 3
    RSA_ENCRYPTION = 4


class EspTransformId(IntEnum):
    """ESP transform identifiers (RFC 2407 4.4.4; 12 RFC 3602, 20 RFC 4106,
    23 RFC 4543)."""

    ESP_DES = 2
    ESP_3DES = 3
    ESP_NULL = 11
    ESP_AES_CBC = 12
    ESP_AES_GCM_16 = 20
    ESP_NULL_AUTH_AES_GMAC = 23


class EspAuthAlgorithm(IntEnum):
    """Phase-2 attribute 5, authentication algorithm (RFC 2407 4.5; 5-7 from
    RFC 4868)."""

    HMAC_MD5 = 1
    HMAC_SHA = 2
    HMAC_SHA2_256 = 5
    HMAC_SHA2_384 = 6
    HMAC_SHA2_512 = 7


class EncapsulationMode(IntEnum):
    """Phase-2 attribute 4, encapsulation mode (RFC 2407 4.5; the
    UDP-encapsulated values 3 and 4 are negotiated, never configured)."""

    TUNNEL = 1
    TRANSPORT = 2


#: ``encryption``/``encr`` keywords of ``crypto isakmp policy`` this stack runs.
ISAKMP_ENCRYPTION_NAMES: dict[str, EncryptionAlgorithm] = {
    "aes": EncryptionAlgorithm.AES_CBC,
    "3des": EncryptionAlgorithm.DES3_CBC,
}

#: ``hash`` keywords of ``crypto isakmp policy``.
ISAKMP_HASH_NAMES: dict[str, HashAlgorithm] = {
    "md5": HashAlgorithm.MD5,
    "sha": HashAlgorithm.SHA,
    "sha256": HashAlgorithm.SHA2_256,
    "sha384": HashAlgorithm.SHA2_384,
    "sha512": HashAlgorithm.SHA2_512,
}

#: ``authentication`` keywords of ``crypto isakmp policy``.
ISAKMP_AUTH_NAMES: dict[str, IkeAuthMethod] = {
    "pre-share": IkeAuthMethod.PRE_SHARED_KEY,
    "rsa-sig": IkeAuthMethod.RSA_SIGNATURES,
    "rsa-encr": IkeAuthMethod.RSA_ENCRYPTION,
}

#: DH groups accepted by ``group N`` and ``set pfs groupN``.
IOS_DH_GROUPS: dict[int, DhGroup] = {
    int(g): g
    for g in (
        DhGroup.MODP_768,
        DhGroup.MODP_1024,
        DhGroup.MODP_1536,
        DhGroup.MODP_2048,
        DhGroup.MODP_3072,
        DhGroup.MODP_4096,
        DhGroup.ECP_256,
        DhGroup.ECP_384,
        DhGroup.ECP_521,
    )
}

#: ESP cipher transforms of ``crypto ipsec transform-set``:
#: name -> (transform id, default key bits, allowed key bits).
ESP_CIPHER_NAMES: dict[str, tuple[EspTransformId, int | None, tuple[int, ...]]] = {
    "esp-aes": (EspTransformId.ESP_AES_CBC, 128, (128, 192, 256)),
    "esp-gcm": (EspTransformId.ESP_AES_GCM_16, 128, (128, 192, 256)),
    "esp-gmac": (EspTransformId.ESP_NULL_AUTH_AES_GMAC, 128, (128, 192, 256)),
    "esp-3des": (EspTransformId.ESP_3DES, None, ()),
    "esp-null": (EspTransformId.ESP_NULL, None, ()),
}

#: ESP integrity transforms of ``crypto ipsec transform-set``.
ESP_AUTH_NAMES: dict[str, EspAuthAlgorithm] = {
    "esp-md5-hmac": EspAuthAlgorithm.HMAC_MD5,
    "esp-sha-hmac": EspAuthAlgorithm.HMAC_SHA,
    "esp-sha256-hmac": EspAuthAlgorithm.HMAC_SHA2_256,
    "esp-sha384-hmac": EspAuthAlgorithm.HMAC_SHA2_384,
    "esp-sha512-hmac": EspAuthAlgorithm.HMAC_SHA2_512,
}
