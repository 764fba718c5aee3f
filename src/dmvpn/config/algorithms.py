"""Algorithm names as IOS spells them, mapped to IKEv1 / IPsec DOI numbers.

The enums are defined once, lower down, and re-exported here: encryption,
hash, DH group, ESP transform ID and ESP authentication algorithm by the
crypto layer (:mod:`dmvpn.crypto.ike_algorithms`, :mod:`dmvpn.crypto.dh_groups`,
:mod:`dmvpn.crypto.esp_algorithms`), the phase-1
authentication method (RFC 2409 appendix A, attribute 3) and the
encapsulation mode (RFC 2407 section 4.5, attribute 4) by
:mod:`dmvpn.wire.isakmp_registry`.
"""

from __future__ import annotations

from dmvpn.crypto.dh_groups import DhGroup
from dmvpn.crypto.esp_algorithms import EspAuthAlgorithm, EspTransformId
from dmvpn.crypto.ike_algorithms import EncryptionAlgorithm, HashAlgorithm
from dmvpn.wire.isakmp_registry import AuthenticationMethod as IkeAuthMethod
from dmvpn.wire.isakmp_registry import EncapsulationMode

__all__ = [
    "ESP_AUTH_NAMES",
    "ESP_CIPHER_NAMES",
    "IOS_DH_GROUPS",
    "ISAKMP_AUTH_NAMES",
    "ISAKMP_ENCRYPTION_KEYWORDS",
    "ISAKMP_ENCRYPTION_NAMES",
    "ISAKMP_HASH_KEYWORDS",
    "ISAKMP_HASH_NAMES",
    "DhGroup",
    "EncapsulationMode",
    "EncryptionAlgorithm",
    "EspAuthAlgorithm",
    "EspTransformId",
    "HashAlgorithm",
    "IkeAuthMethod",
]


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

#: The keyword IOS prints for a phase-1 cipher or hash (``show crypto isakmp
#: sa detail``, the config summary): the maps above reversed, plus DES,
#: which IOS names although this stack does not run it.
ISAKMP_ENCRYPTION_KEYWORDS: dict[EncryptionAlgorithm, str] = {
    **{alg: word for word, alg in ISAKMP_ENCRYPTION_NAMES.items()}, EncryptionAlgorithm.DES_CBC: "des"}
ISAKMP_HASH_KEYWORDS: dict[HashAlgorithm, str] = {alg: word for word, alg in ISAKMP_HASH_NAMES.items()}

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
