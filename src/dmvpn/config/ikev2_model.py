"""The IOS-XE IKEv2 configuration as typed, validated dataclasses:
``crypto ikev2 proposal``, ``policy``, ``keyring``, ``profile`` (RFC 7296
transforms by their IANA numbers, section 3.3.2).

IOS-XE's "smart defaults" apply where a section is absent: a proposal named
``default`` and a policy named ``default`` that matches any front-door VRF
and offers it. The default proposal is what IOS-XE lists under ``show
crypto ikev2 proposal default``; we take it from genieparser's golden
samples of that command (``iosxe/tests/ShowCryptoIkev2Proposal/cli/equal/
golden_output_expected.py``: AES-CBC-256; integrity SHA512 SHA384; PRF
SHA512 SHA384; DH groups 19, 14, 21, 5) and of ``show crypto ikev2 policy``
(``ShowCryptoIkev2Policy``: policy ``default``, match fvrf any, proposal
default). The newest sample (``golden_output_1_expected.py``) is of a
release that dropped group 5 and added an optional ML-KEM exchange, which
is not modelled here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from ipaddress import IPv4Address, IPv4Network

from dmvpn.crypto.dh_groups import DhGroup
from dmvpn.crypto.ikev2_algorithms import EncrId, IntegId, PrfId

DEFAULT_IKEV2_LIFETIME = 86400  # seconds, IOS-XE "lifetime" default in an IKEv2 profile


class DpdMode(Enum):
    """``dpd INTERVAL RETRY on-demand|periodic`` (RFC 7296 2.4 liveness checks)."""

    ON_DEMAND = "on-demand"
    PERIODIC = "periodic"


@dataclass(frozen=True, slots=True)
class Ikev2Encryption:
    """One ``encryption`` keyword: the ENCR transform and its key length."""

    encr: EncrId
    key_bits: int | None
    ios_name: str

    @property
    def is_aead(self) -> bool:
        return self.encr in (EncrId.AES_GCM_8, EncrId.AES_GCM_12, EncrId.AES_GCM_16)


@dataclass(frozen=True, slots=True)
class Ikev2Proposal:
    """``crypto ikev2 proposal NAME``: the IKE SA transforms it offers, in
    order. With no ``prf`` line a non-AEAD proposal uses its integrity
    algorithms as PRFs, as IOS-XE does."""

    name: str
    encryption: tuple[Ikev2Encryption, ...]
    integrity: tuple[IntegId, ...]
    prf: tuple[PrfId, ...]
    groups: tuple[DhGroup, ...]
    line: int = 0

    @property
    def complete(self) -> bool:
        """IOS-XE uses only complete proposals (encryption, group, and
        integrity for a non-AEAD cipher or a PRF for an AEAD one)."""
        if not self.encryption or not self.groups:
            return False
        aead = all(e.is_aead for e in self.encryption)
        return bool(self.prf) if aead else bool(self.integrity)


@dataclass(frozen=True, slots=True)
class Ikev2Policy:
    """``crypto ikev2 policy NAME``: which proposals apply to which local
    addresses / front-door VRFs."""

    name: str
    proposals: tuple[str, ...]
    match_fvrf_any: bool = True
    match_local: tuple[IPv4Address, ...] = ()
    line: int = 0


@dataclass(frozen=True, slots=True)
class Ikev2KeyringPeer:
    """``peer NAME`` in a keyring: address/mask and the pre-shared keys
    (``local`` signs our AUTH, ``remote`` checks the peer's, RFC 7296 2.15)."""

    name: str
    address: IPv4Address
    mask: IPv4Address
    local_key: str
    remote_key: str
    line: int = 0

    @property
    def network(self) -> IPv4Network:
        return IPv4Network(f"{self.address}/{self.mask}", strict=False)


@dataclass(frozen=True, slots=True)
class Ikev2Keyring:
    """``crypto ikev2 keyring NAME``."""

    name: str
    peers: tuple[Ikev2KeyringPeer, ...]
    line: int = 0

    def peer_for(self, address: IPv4Address | str) -> Ikev2KeyringPeer | None:
        """The most specific peer entry whose address/mask holds ``address``."""
        ip = IPv4Address(address)
        best: Ikev2KeyringPeer | None = None
        for p in self.peers:
            if ip in p.network and (best is None or p.network.prefixlen > best.network.prefixlen):
                best = p
        return best


@dataclass(frozen=True, slots=True)
class Ikev2Dpd:
    """``dpd INTERVAL RETRY MODE`` of an IKEv2 profile."""

    interval: int
    retry: int
    mode: DpdMode = DpdMode.ON_DEMAND


@dataclass(frozen=True, slots=True)
class Ikev2Profile:
    """``crypto ikev2 profile NAME``: which peers it matches and how both
    sides authenticate (only pre-shared keys here)."""

    name: str
    match_remote: tuple[IPv4Network, ...]
    keyring: str | None
    auth_local: str = "pre-share"
    auth_remote: str = "pre-share"
    dpd: Ikev2Dpd | None = None
    lifetime: int = DEFAULT_IKEV2_LIFETIME
    line: int = 0

    def matches(self, peer: IPv4Address | str) -> bool:
        ip = IPv4Address(peer)
        return any(ip in n for n in self.match_remote)


DEFAULT_PROPOSAL = Ikev2Proposal(
    "default",
    (Ikev2Encryption(EncrId.AES_CBC, 256, "aes-cbc-256"),),
    (IntegId.HMAC_SHA2_512_256, IntegId.HMAC_SHA2_384_192),
    (PrfId.HMAC_SHA2_512, PrfId.HMAC_SHA2_384),
    (DhGroup.ECP_256, DhGroup.MODP_2048, DhGroup.ECP_521, DhGroup.MODP_1536),
)
DEFAULT_POLICY = Ikev2Policy("default", ("default",), match_fvrf_any=True)


@dataclass(frozen=True, slots=True)
class Ikev2Config:
    """All IKEv2 sections of one router, smart defaults included;
    ``defaulted`` names the default sections that were added."""

    proposals: dict[str, Ikev2Proposal] = field(default_factory=lambda: {"default": DEFAULT_PROPOSAL})
    policies: dict[str, Ikev2Policy] = field(default_factory=lambda: {"default": DEFAULT_POLICY})
    keyrings: dict[str, Ikev2Keyring] = field(default_factory=dict)
    profiles: dict[str, Ikev2Profile] = field(default_factory=dict)
    defaulted: tuple[str, ...] = ("proposal default", "policy default")
    #: ``crypto ikev2 cookie-challenge N``: demand a COOKIE (RFC 7296 2.6) once N half-open SAs exist
    cookie_challenge: int | None = None

    @property
    def configured(self) -> bool:
        """True if the config has any IKEv2 section of its own."""
        user = any(p.line for p in self.proposals.values()) or any(p.line for p in self.policies.values())
        return bool(self.keyrings or self.profiles or user)

    def profile_for(self, peer: IPv4Address | str) -> Ikev2Profile | None:
        """The first profile (in name order) whose ``match identity remote`` holds ``peer``."""
        for _, p in sorted(self.profiles.items()):
            if p.matches(peer):
                return p
        return None
