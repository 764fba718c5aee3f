"""IKEv2 registry numbers as enums (IANA "Internet Key Exchange Version 2
(IKEv2) Parameters").

Sources: RFC 7296 sections 3.1 (exchange types, flags), 3.2 (payload
types), 3.3.1-3.3.5 (protocol IDs, transform types and attributes), 3.5 (ID
types), 3.8 (authentication methods), 3.10.1 (notify message types), 3.13.1
(traffic selector types); RFC 7383 (Encrypted Fragment payload,
IKEV2_FRAGMENTATION_SUPPORTED); RFC 5685 (REDIRECT); RFC 4555 (MOBIKE).
The transform IDs of types 1-3 are the crypto layer's enums and the DH
groups (type 4) are :class:`DhGroup`, re-exported here.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

from dmvpn.crypto.dh_groups import DhGroup as DhGroup  # re-export: transform type 4
from dmvpn.crypto.ikev2_algorithms import EncrId as EncrId  # re-export: transform type 1
from dmvpn.crypto.ikev2_algorithms import IntegId as IntegId  # re-export: transform type 3
from dmvpn.crypto.ikev2_algorithms import PrfId as PrfId  # re-export: transform type 2

IKEV2_VERSION = 0x20  # major 2, minor 0 (RFC 7296 3.1)


class ExchangeType(IntEnum):
    """IKEv2 exchange types (RFC 7296 3.1; 38 RFC 5723; 43 RFC 9242)."""

    IKE_SA_INIT = 34
    IKE_AUTH = 35
    CREATE_CHILD_SA = 36
    INFORMATIONAL = 37
    IKE_SESSION_RESUME = 38
    IKE_INTERMEDIATE = 43


class HeaderFlags(IntFlag):
    """IKEv2 header flags (RFC 7296 3.1): bit 3 Initiator, 4 Version, 5 Response."""

    INITIATOR = 0x08
    VERSION = 0x10
    RESPONSE = 0x20


class PayloadType(IntEnum):
    """IKEv2 Next Payload values (RFC 7296 3.2; 53 RFC 7383)."""

    NONE = 0
    SA = 33
    KE = 34
    IDI = 35
    IDR = 36
    CERT = 37
    CERTREQ = 38
    AUTH = 39
    NONCE = 40
    NOTIFY = 41
    DELETE = 42
    VENDOR_ID = 43
    TSI = 44
    TSR = 45
    SK = 46
    CP = 47
    EAP = 48
    GSPM = 49
    SKF = 53


class ProtocolId(IntEnum):
    """Security protocol identifiers (RFC 7296 3.3.1)."""

    NONE = 0
    IKE = 1
    AH = 2
    ESP = 3


class TransformType(IntEnum):
    """Transform types (RFC 7296 3.3.2)."""

    ENCR = 1
    PRF = 2
    INTEG = 3
    DH = 4
    ESN = 5


class EsnId(IntEnum):
    """Transform type 5, Extended Sequence Numbers (RFC 7296 3.3.2)."""

    NO_ESN = 0
    ESN = 1


class TransformAttribute(IntEnum):
    """Transform attribute types (RFC 7296 3.3.5)."""

    KEY_LENGTH = 14


class IdType(IntEnum):
    """IKEv2 identification types (RFC 7296 3.5; 12 RFC 4595; 13 RFC 7619)."""

    IPV4_ADDR = 1
    FQDN = 2
    RFC822_ADDR = 3
    IPV6_ADDR = 5
    DER_ASN1_DN = 9
    DER_ASN1_GN = 10
    KEY_ID = 11
    FC_NAME = 12
    NULL = 13


class AuthMethod(IntEnum):
    """Authentication methods (RFC 7296 3.8; 9-11 RFC 4754; 12 RFC 6467; 13 RFC 7619; 14 RFC 7427)."""

    RSA_SIG = 1
    SHARED_KEY_MIC = 2
    DSS_SIG = 3
    ECDSA_SHA256_P256 = 9
    ECDSA_SHA384_P384 = 10
    ECDSA_SHA512_P521 = 11
    GENERIC_SECURE_PASSWORD = 12
    NULL_AUTH = 13
    DIGITAL_SIGNATURE = 14


class CertEncoding(IntEnum):
    """Certificate encodings (RFC 7296 3.6)."""

    PKCS7_X509 = 1
    PGP = 2
    DNS_SIGNED_KEY = 3
    X509_SIGNATURE = 4
    KERBEROS_TOKEN = 6
    CRL = 7
    ARL = 8
    SPKI = 9
    X509_ATTRIBUTE = 10
    RAW_RSA_KEY = 11
    HASH_URL_X509_CERT = 12
    HASH_URL_X509_BUNDLE = 13


class TsType(IntEnum):
    """Traffic selector types (RFC 7296 3.13.1)."""

    IPV4_ADDR_RANGE = 7
    IPV6_ADDR_RANGE = 8


class NotifyType(IntEnum):
    """Notify message types (RFC 7296 3.10.1 and the IANA registry): errors
    below 16384, status types from 16384."""

    UNSUPPORTED_CRITICAL_PAYLOAD = 1
    INVALID_IKE_SPI = 4
    INVALID_MAJOR_VERSION = 5
    INVALID_SYNTAX = 7
    INVALID_MESSAGE_ID = 9
    INVALID_SPI = 11
    NO_PROPOSAL_CHOSEN = 14
    INVALID_KE_PAYLOAD = 17
    AUTHENTICATION_FAILED = 24
    SINGLE_PAIR_REQUIRED = 34
    NO_ADDITIONAL_SAS = 35
    INTERNAL_ADDRESS_FAILURE = 36
    FAILED_CP_REQUIRED = 37
    TS_UNACCEPTABLE = 38
    INVALID_SELECTORS = 39
    UNACCEPTABLE_ADDRESSES = 40
    UNEXPECTED_NAT_DETECTED = 41
    USE_ASSIGNED_HOA = 42
    TEMPORARY_FAILURE = 43
    CHILD_SA_NOT_FOUND = 44
    INVALID_GROUP_ID = 45
    AUTHORIZATION_FAILED = 46
    STATE_NOT_FOUND = 47
    INITIAL_CONTACT = 16384
    SET_WINDOW_SIZE = 16385
    ADDITIONAL_TS_POSSIBLE = 16386
    IPCOMP_SUPPORTED = 16387
    NAT_DETECTION_SOURCE_IP = 16388
    NAT_DETECTION_DESTINATION_IP = 16389
    COOKIE = 16390
    USE_TRANSPORT_MODE = 16391
    HTTP_CERT_LOOKUP_SUPPORTED = 16392
    REKEY_SA = 16393
    ESP_TFC_PADDING_NOT_SUPPORTED = 16394
    NON_FIRST_FRAGMENTS_ALSO = 16395
    MOBIKE_SUPPORTED = 16396
    ADDITIONAL_IP4_ADDRESS = 16397
    ADDITIONAL_IP6_ADDRESS = 16398
    NO_ADDITIONAL_ADDRESSES = 16399
    UPDATE_SA_ADDRESSES = 16400
    COOKIE2 = 16401
    NO_NATS_ALLOWED = 16402
    AUTH_LIFETIME = 16403
    MULTIPLE_AUTH_SUPPORTED = 16404
    ANOTHER_AUTH_FOLLOWS = 16405
    REDIRECT_SUPPORTED = 16406
    REDIRECT = 16407
    REDIRECTED_FROM = 16408
    TICKET_LT_OPAQUE = 16409
    TICKET_REQUEST = 16410
    TICKET_ACK = 16411
    TICKET_NACK = 16412
    TICKET_OPAQUE = 16413
    LINK_ID = 16414
    USE_WESP_MODE = 16415
    ROHC_SUPPORTED = 16416
    EAP_ONLY_AUTHENTICATION = 16417
    CHILDLESS_IKEV2_SUPPORTED = 16418
    QUICK_CRASH_DETECTION = 16419
    IKEV2_MESSAGE_ID_SYNC_SUPPORTED = 16420
    IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED = 16421
    IKEV2_MESSAGE_ID_SYNC = 16422
    IPSEC_REPLAY_COUNTER_SYNC = 16423
    SECURE_PASSWORD_METHODS = 16424
    PSK_PERSIST = 16425
    PSK_CONFIRM = 16426
    ERX_SUPPORTED = 16427
    IFOM_CAPABILITY = 16428
    SENDER_REQUEST_ID = 16429
    IKEV2_FRAGMENTATION_SUPPORTED = 16430
    SIGNATURE_HASH_ALGORITHMS = 16431
