"""ISAKMP / IKEv1 registry numbers as enums.

Sources: RFC 2408 section 3.1 (exchange types), 3.1 (flags), 3.4 (DOI),
3.14.1 (notify message types); RFC 2407 section 4.2 (situation), 4.4.1
(protocol IDs), 4.5 (IPsec SA attributes), 4.6.2.1
(ID types), 4.6.3 (IPsec notify status); RFC 2409 appendix A (Oakley
attributes); RFC 3706 (DPD); RFC 3947 (NAT-D, NAT-OA); IANA "ISAKMP Payload
Types". The ESP transform IDs (4.4.4) and the phase-2 authentication
algorithm (4.5, attribute 5) are the crypto layer's enums, re-exported here.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

from dmvpn.crypto.esp_algorithms import EspAuthAlgorithm
from dmvpn.crypto.esp_algorithms import EspTransformId as EspTransformId  # re-export

#: Phase-2 attribute 5 (RFC 2407 4.5); one enum with the data plane's.
AuthenticationAlgorithm = EspAuthAlgorithm


class PayloadType(IntEnum):
    """Next Payload values (RFC 2408 section 3.1, IANA; 130/131 from the NAT-T drafts)."""

    NONE = 0
    SA = 1
    PROPOSAL = 2
    TRANSFORM = 3
    KE = 4
    ID = 5
    CERT = 6
    CR = 7
    HASH = 8
    SIG = 9
    NONCE = 10
    NOTIFY = 11
    DELETE = 12
    VENDOR_ID = 13
    ATTRIBUTE = 14
    SAK = 15
    SAT = 16
    KD = 17
    SEQ = 18
    POP = 19
    NAT_D = 20
    NAT_OA = 21
    NAT_D_DRAFT = 130
    NAT_OA_DRAFT = 131
    FRAGMENT = 132


class ExchangeType(IntEnum):
    """Exchange types (RFC 2408 section 3.1; RFC 2409 section 5; 6 Transaction from IANA)."""

    NONE = 0
    BASE = 1
    IDENTITY_PROTECTION = 2  # Main Mode
    AUTHENTICATION_ONLY = 3
    AGGRESSIVE = 4
    INFORMATIONAL = 5
    TRANSACTION = 6  # mode config
    QUICK_MODE = 32
    NEW_GROUP_MODE = 33


class HeaderFlags(IntFlag):
    """ISAKMP header flags (RFC 2408 section 3.1)."""

    ENCRYPTION = 1
    COMMIT = 2
    AUTHENTICATION_ONLY = 4


class Doi(IntEnum):
    """Domain of interpretation (RFC 2408 section 3.4, RFC 2407)."""

    ISAKMP = 0
    IPSEC = 1


class Situation(IntFlag):
    """IPsec DOI situation bitmap (RFC 2407 section 4.2)."""

    IDENTITY_ONLY = 1
    SECRECY = 2
    INTEGRITY = 4


class ProtocolId(IntEnum):
    """Protocol IDs (RFC 2407 section 4.4.1)."""

    RESERVED = 0
    ISAKMP = 1
    IPSEC_AH = 2
    IPSEC_ESP = 3
    IPCOMP = 4


class IsakmpTransformId(IntEnum):
    """Transform IDs under PROTO_ISAKMP (RFC 2407 section 4.4.2)."""

    KEY_IKE = 1


class AhTransformId(IntEnum):
    """AH transform IDs (RFC 2407 section 4.4.3)."""

    AH_MD5 = 2
    AH_SHA = 3
    AH_DES = 4
    AH_SHA2_256 = 5
    AH_SHA2_384 = 6
    AH_SHA2_512 = 7


class Phase1Attribute(IntEnum):
    """Oakley SA attribute classes (RFC 2409 appendix A)."""

    ENCRYPTION_ALGORITHM = 1
    HASH_ALGORITHM = 2
    AUTHENTICATION_METHOD = 3
    GROUP_DESCRIPTION = 4
    GROUP_TYPE = 5
    GROUP_PRIME = 6
    GROUP_GENERATOR_ONE = 7
    GROUP_GENERATOR_TWO = 8
    GROUP_CURVE_A = 9
    GROUP_CURVE_B = 10
    LIFE_TYPE = 11
    LIFE_DURATION = 12
    PRF = 13
    KEY_LENGTH = 14
    FIELD_SIZE = 15
    GROUP_ORDER = 16


class AuthenticationMethod(IntEnum):
    """Phase-1 attribute 3 values (RFC 2409 appendix A; XAUTH from the draft)."""

    PRE_SHARED_KEY = 1
    DSS_SIGNATURES = 2
    RSA_SIGNATURES = 3
    RSA_ENCRYPTION = 4
    RSA_REVISED_ENCRYPTION = 5
    ECDSA_SHA256 = 9
    ECDSA_SHA384 = 10
    ECDSA_SHA512 = 11
    XAUTH_INIT_PRE_SHARED = 65001
    XAUTH_RESP_PRE_SHARED = 65002


class LifeType(IntEnum):
    """Life type values for phase 1 (attribute 11) and phase 2 (attribute 1)."""

    SECONDS = 1
    KILOBYTES = 2


class Phase2Attribute(IntEnum):
    """IPsec DOI SA attributes (RFC 2407 section 4.5)."""

    SA_LIFE_TYPE = 1
    SA_LIFE_DURATION = 2
    GROUP_DESCRIPTION = 3
    ENCAPSULATION_MODE = 4
    AUTHENTICATION_ALGORITHM = 5
    KEY_LENGTH = 6
    KEY_ROUNDS = 7
    COMPRESS_DICTIONARY_SIZE = 8
    COMPRESS_PRIVATE_ALGORITHM = 9
    ECN_TUNNEL = 10
    EXTENDED_SEQUENCE_NUMBER = 11


class EncapsulationMode(IntEnum):
    """Phase-2 attribute 4 (RFC 2407 4.5; 3/4 RFC 3947; 61443/61444 NAT-T drafts)."""

    TUNNEL = 1
    TRANSPORT = 2
    UDP_TUNNEL = 3
    UDP_TRANSPORT = 4
    UDP_TUNNEL_DRAFT = 61443
    UDP_TRANSPORT_DRAFT = 61444


class IdType(IntEnum):
    """Identification types (RFC 2407 section 4.6.2.1)."""

    IPV4_ADDR = 1
    FQDN = 2
    USER_FQDN = 3
    IPV4_ADDR_SUBNET = 4
    IPV6_ADDR = 5
    IPV6_ADDR_SUBNET = 6
    IPV4_ADDR_RANGE = 7
    IPV6_ADDR_RANGE = 8
    DER_ASN1_DN = 9
    DER_ASN1_GN = 10
    KEY_ID = 11


class CertEncoding(IntEnum):
    """Certificate encodings (RFC 2408 section 3.9)."""

    NONE = 0
    PKCS7 = 1
    PGP = 2
    DNS_SIGNED_KEY = 3
    X509_SIGNATURE = 4
    X509_KEY_EXCHANGE = 5
    KERBEROS = 6
    CRL = 7
    ARL = 8
    SPKI = 9
    X509_ATTRIBUTE = 10


class NotifyType(IntEnum):
    """Notify message types (RFC 2408 3.14.1, RFC 2407 4.6.3, RFC 3706)."""

    INVALID_PAYLOAD_TYPE = 1
    DOI_NOT_SUPPORTED = 2
    SITUATION_NOT_SUPPORTED = 3
    INVALID_COOKIE = 4
    INVALID_MAJOR_VERSION = 5
    INVALID_MINOR_VERSION = 6
    INVALID_EXCHANGE_TYPE = 7
    INVALID_FLAGS = 8
    INVALID_MESSAGE_ID = 9
    INVALID_PROTOCOL_ID = 10
    INVALID_SPI = 11
    INVALID_TRANSFORM_ID = 12
    ATTRIBUTES_NOT_SUPPORTED = 13
    NO_PROPOSAL_CHOSEN = 14
    BAD_PROPOSAL_SYNTAX = 15
    PAYLOAD_MALFORMED = 16
    INVALID_KEY_INFORMATION = 17
    INVALID_ID_INFORMATION = 18
    INVALID_CERT_ENCODING = 19
    INVALID_CERTIFICATE = 20
    CERT_TYPE_UNSUPPORTED = 21
    INVALID_CERT_AUTHORITY = 22
    INVALID_HASH_INFORMATION = 23
    AUTHENTICATION_FAILED = 24
    INVALID_SIGNATURE = 25
    ADDRESS_NOTIFICATION = 26
    NOTIFY_SA_LIFETIME = 27
    CERTIFICATE_UNAVAILABLE = 28
    UNSUPPORTED_EXCHANGE_TYPE = 29
    UNEQUAL_PAYLOAD_LENGTHS = 30
    CONNECTED = 16384
    RESPONDER_LIFETIME = 24576
    REPLAY_STATUS = 24577
    INITIAL_CONTACT = 24578
    R_U_THERE = 36136
    R_U_THERE_ACK = 36137


def enum_or_int(enum: type[IntEnum], value: int) -> int:
    """``enum(value)`` when the number is registered, else the plain int."""
    try:
        return enum(value)
    except ValueError:
        return value


def name_of(value: int) -> str:
    """``NAME`` for an enum member, the decimal number otherwise."""
    name = getattr(value, "name", None)
    return name if isinstance(name, str) else str(int(value))
