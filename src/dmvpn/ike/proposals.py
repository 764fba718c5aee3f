"""Phase-1 and phase-2 proposals: building them from the configuration and
choosing one the way IOS does.

Phase 1 (RFC 2409 section 5, attributes appendix A): the initiator offers one
ISAKMP proposal with a transform per ``crypto isakmp policy``, in priority
order. The responder walks its own policies by priority and, for each, the
offered transforms in order; a transform matches when encryption (and key
length), hash, authentication and group are equal and the offered lifetime
is no longer than the policy's (Cisco: "the remote peer's policy specifies a
lifetime that is less than or equal to the lifetime in the policy being
compared"; the initiator's lifetime is then used).

Phase 2 (RFC 2409 section 5.5, RFC 2407 section 4.5): one ESP proposal per
transform set; the responder takes the first offered transform that equals
one of its sets (cipher, key length, integrity, mode, PFS group). Lifetimes
are not part of the match: the shorter of the two is used per type and a
responder whose own is shorter says so in RESPONDER-LIFETIME (RFC 2407
4.6.3.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from dmvpn.config import IsakmpPolicy, TransformSet
from dmvpn.config.algorithms import EncapsulationMode, EspAuthAlgorithm, EspTransformId
from dmvpn.crypto.esp_algorithms import EspTransform
from dmvpn.crypto.ike_algorithms import EncryptionAlgorithm, HashAlgorithm
from dmvpn.wire.isakmp_payloads import Attribute, Proposal, SaPayload, Transform
from dmvpn.wire.isakmp_registry import (
    AuthenticationMethod,
    IsakmpTransformId,
    LifeType,
    Phase1Attribute,
    Phase2Attribute,
    ProtocolId,
)

_ENC_NAMES: dict[int, str] = {EncryptionAlgorithm.AES_CBC: "AES-CBC", EncryptionAlgorithm.DES3_CBC: "3DES-CBC"}
_HASH_NAMES: dict[int, str] = {
    HashAlgorithm.MD5: "MD5",
    HashAlgorithm.SHA: "SHA",
    HashAlgorithm.SHA2_256: "SHA256",
    HashAlgorithm.SHA2_384: "SHA384",
    HashAlgorithm.SHA2_512: "SHA512",
}
_ESP_NAMES: dict[int, str] = {
    EspTransformId.ESP_AES_CBC: "ESP_AES",
    EspTransformId.ESP_3DES: "ESP_3DES",
    EspTransformId.ESP_NULL: "ESP_NULL",
    EspTransformId.ESP_AES_GCM_16: "ESP_GCM",
    EspTransformId.ESP_DES: "ESP_DES",
    EspTransformId.ESP_NULL_AUTH_AES_GMAC: "ESP_GMAC",
}
_AUTH_NAMES: dict[int, str] = {
    EspAuthAlgorithm.HMAC_MD5: "HMAC-MD5",
    EspAuthAlgorithm.HMAC_SHA: "HMAC-SHA",
    EspAuthAlgorithm.HMAC_SHA2_256: "HMAC-SHA256",
    EspAuthAlgorithm.HMAC_SHA2_384: "HMAC-SHA384",
    EspAuthAlgorithm.HMAC_SHA2_512: "HMAC-SHA512",
}


# ----------------------------------------------------------------------------- phase 1


@dataclass(frozen=True, slots=True)
class Phase1Choice:
    """The negotiated ISAKMP SA algorithms and lifetime."""

    encryption: int
    key_bits: int | None
    hash: int
    group: int
    lifetime: int
    priority: int


def phase1_transform(number: int, policy: IsakmpPolicy) -> Transform:
    """One KEY_IKE transform for ``policy``, attributes in IOS's order."""
    attrs = [Attribute(Phase1Attribute.ENCRYPTION_ALGORITHM, int(policy.encryption))]
    if policy.encryption is EncryptionAlgorithm.AES_CBC:
        attrs.append(Attribute(Phase1Attribute.KEY_LENGTH, policy.key_bits or 128))
    attrs += [
        Attribute(Phase1Attribute.HASH_ALGORITHM, int(policy.hash)),
        Attribute(Phase1Attribute.GROUP_DESCRIPTION, int(policy.group)),
        Attribute(Phase1Attribute.AUTHENTICATION_METHOD, int(policy.authentication)),
        Attribute(Phase1Attribute.LIFE_TYPE, LifeType.SECONDS),
        Attribute(Phase1Attribute.LIFE_DURATION, policy.lifetime, tlv=True),
    ]
    return Transform(number, IsakmpTransformId.KEY_IKE, attrs)


def phase1_sa_payload(policies: tuple[IsakmpPolicy, ...]) -> SaPayload:
    """The initiator's SA payload: one proposal, a transform per usable policy."""
    usable = [p for p in policies if p.usable]
    transforms = [phase1_transform(i + 1, p) for i, p in enumerate(usable)]
    return SaPayload([Proposal(1, ProtocolId.ISAKMP, b"", transforms)])


def _attr_int(t: Transform, kind: int) -> int | None:
    v = t.get(kind)
    return int(v) if isinstance(v, int) else None


def _phase1_lifetime(t: Transform) -> int | None:
    """Seconds from LIFE_TYPE/LIFE_DURATION pairs (a kilobyte pair is ignored)."""
    life_type = None
    for a in t.attributes:
        if a.type == Phase1Attribute.LIFE_TYPE:
            life_type = int(a.value) if isinstance(a.value, int) else None
        elif a.type == Phase1Attribute.LIFE_DURATION and life_type == LifeType.SECONDS:
            return int(a.value) if isinstance(a.value, int) else int.from_bytes(a.value, "big")
    return None


def describe_phase1_transform(t: Transform) -> list[str]:
    """The attribute lines IOS prints under "Checking ISAKMP transform N"."""
    lines = []
    enc = _attr_int(t, Phase1Attribute.ENCRYPTION_ALGORITHM)
    if enc is not None:
        lines.append(f"      encryption {_ENC_NAMES.get(enc, str(enc))}")
    keylen = _attr_int(t, Phase1Attribute.KEY_LENGTH)
    if keylen is not None:
        lines.append(f"      keylength of {keylen}")
    h = _attr_int(t, Phase1Attribute.HASH_ALGORITHM)
    if h is not None:
        lines.append(f"      hash {_HASH_NAMES.get(h, str(h))}")
    g = _attr_int(t, Phase1Attribute.GROUP_DESCRIPTION)
    if g is not None:
        lines.append(f"      default group {g}")
    auth = _attr_int(t, Phase1Attribute.AUTHENTICATION_METHOD)
    if auth is not None:
        lines.append("      auth pre-share" if auth == AuthenticationMethod.PRE_SHARED_KEY else f"      auth {auth}")
    life = _phase1_lifetime(t)
    if life is not None:
        lines.append("      life type in seconds")
        raw = life.to_bytes(4, "big")
        lines.append("      life duration (VPI) of  " + " ".join(f"0x{b:X}" for b in raw))
    return lines


def phase1_mismatch(t: Transform, policy: IsakmpPolicy) -> str | None:
    """Why offered transform ``t`` does not match ``policy`` (IOS wording), or None."""
    if t.transform_id != IsakmpTransformId.KEY_IKE:
        return "Transform ID offered is not KEY_IKE!"
    if _attr_int(t, Phase1Attribute.ENCRYPTION_ALGORITHM) != int(policy.encryption):
        return "Encryption algorithm offered does not match policy!"
    key_length = _attr_int(t, Phase1Attribute.KEY_LENGTH)
    if policy.encryption is EncryptionAlgorithm.AES_CBC and key_length != (policy.key_bits or 128):
        return "Key length offered does not match policy!"
    if _attr_int(t, Phase1Attribute.HASH_ALGORITHM) != int(policy.hash):
        return "Hash algorithm offered does not match policy!"
    if _attr_int(t, Phase1Attribute.AUTHENTICATION_METHOD) != int(policy.authentication):
        return "Authentication method offered does not match policy!"
    if _attr_int(t, Phase1Attribute.GROUP_DESCRIPTION) != int(policy.group):
        return "Diffie-Hellman group offered does not match policy!"
    life = _phase1_lifetime(t)
    if life is not None and life > policy.lifetime:
        return "Lifetime offered is longer than policy!"
    return None


def phase1_choice(t: Transform, policy: IsakmpPolicy) -> Phase1Choice:
    """The agreed algorithms once ``t`` matched ``policy`` (the offered lifetime wins)."""
    life = _phase1_lifetime(t) or policy.lifetime
    return Phase1Choice(
        int(policy.encryption),
        (policy.key_bits or 128) if policy.encryption is EncryptionAlgorithm.AES_CBC else None,
        int(policy.hash),
        int(policy.group),
        min(life, policy.lifetime),
        policy.priority,
    )


# ----------------------------------------------------------------------------- phase 2


@dataclass(frozen=True, slots=True)
class ChildPolicy:
    """What a tunnel protection profile or crypto map entry asks IKE for.

    ``local``/``remote`` None mean "this host" / "the peer host" (the DMVPN
    case: host IDs, ``protocol`` 47). ``peers`` empty means any peer
    (mGRE). ``name`` is the crypto map tag IOS shows
    (``ENS_ipsec_profile-head-1-IPv4``); ``interface`` the interface the SAs
    are installed "on" (``Tunnel0``)."""

    name: str
    interface: str
    transform_sets: tuple[TransformSet, ...]
    lifetime_seconds: int
    lifetime_kilobytes: int | None
    pfs_group: int | None = None
    protocol: int = 0
    local: IPv4Network | None = None
    remote: IPv4Network | None = None
    peers: tuple[IPv4Address, ...] = ()

    def allows_peer(self, peer: str) -> bool:
        return not self.peers or IPv4Address(peer) in self.peers

    def selector_nets(self, local_addr: str, peer: str) -> tuple[IPv4Network, IPv4Network]:
        """(local, remote) networks for traffic with ``peer``."""
        local = self.local or IPv4Network(f"{local_addr}/32")
        remote = self.remote or IPv4Network(f"{peer}/32")
        return local, remote


@dataclass(frozen=True, slots=True)
class Phase2Choice:
    """The agreed ESP transform, mode, lifetimes and PFS group."""

    transform_set: TransformSet
    esp: EspTransform
    mode: int
    lifetime_seconds: int
    lifetime_kilobytes: int | None
    pfs_group: int | None
    responder_lifetime: bool = False


def esp_transform(ts: TransformSet) -> EspTransform:
    """The data-plane transform for a configured set."""
    auth = ts.auth if ts.auth is not None else EspAuthAlgorithm.NONE
    bits = ts.key_bits if ts.key_bits is not None else (192 if ts.cipher == EspTransformId.ESP_3DES else 0)
    return EspTransform(ts.cipher, bits, auth)


#: RFC 3947 section 5.1: UDP-encapsulated tunnel (3) / transport (4); the drafts used 61443/61444.
UDP_MODES = {1: 3, 2: 4}
_UDP_TO_PLAIN = {3: 1, 4: 2, 61443: 1, 61444: 2}


def phase2_transform(ts: TransformSet, lifetime_seconds: int, lifetime_kb: int | None, pfs: int | None,
                     udp: bool = False) -> Transform:
    """One ESP transform for ``ts``, attributes in IOS's order; ``udp`` asks
    for the UDP-encapsulated mode (NAT detected)."""
    mode = UDP_MODES[int(ts.mode)] if udp else int(ts.mode)
    attrs = [
        Attribute(Phase2Attribute.ENCAPSULATION_MODE, mode),
        Attribute(Phase2Attribute.SA_LIFE_TYPE, LifeType.SECONDS),
        Attribute(Phase2Attribute.SA_LIFE_DURATION, lifetime_seconds),
    ]
    if lifetime_kb is not None:
        attrs += [
            Attribute(Phase2Attribute.SA_LIFE_TYPE, LifeType.KILOBYTES),
            Attribute(Phase2Attribute.SA_LIFE_DURATION, lifetime_kb, tlv=True),
        ]
    if pfs is not None:
        attrs.append(Attribute(Phase2Attribute.GROUP_DESCRIPTION, pfs))
    if ts.auth is not None:
        attrs.append(Attribute(Phase2Attribute.AUTHENTICATION_ALGORITHM, int(ts.auth)))
    if ts.key_bits is not None:
        attrs.append(Attribute(Phase2Attribute.KEY_LENGTH, ts.key_bits))
    return Transform(1, int(ts.cipher), attrs)


def phase2_sa_payload(policy: ChildPolicy, spi: int, udp: bool = False) -> SaPayload:
    """The initiator's SA payload: one ESP proposal per transform set."""
    spi_b = spi.to_bytes(4, "big")
    proposals = [
        Proposal(i + 1, ProtocolId.IPSEC_ESP, spi_b,
                 [phase2_transform(ts, policy.lifetime_seconds, policy.lifetime_kilobytes, policy.pfs_group, udp)])
        for i, ts in enumerate(policy.transform_sets)
    ]
    return SaPayload(proposals)


@dataclass(frozen=True, slots=True)
class OfferedTransform:
    """The decoded attributes of one offered ESP transform."""

    cipher: int
    key_bits: int | None
    auth: int | None
    mode: int | None
    lifetime_seconds: int | None
    lifetime_kilobytes: int | None
    group: int | None


def read_phase2_transform(t: Transform) -> OfferedTransform:
    """Attributes of an ESP transform (RFC 2407 4.5: a life type applies to
    the life duration that follows it)."""
    secs = kb = group = mode = auth = keylen = None
    life_type = None
    for a in t.attributes:
        v = a.value if isinstance(a.value, int) else int.from_bytes(a.value, "big") if a.value else 0
        if a.type == Phase2Attribute.SA_LIFE_TYPE:
            life_type = v
        elif a.type == Phase2Attribute.SA_LIFE_DURATION:
            if life_type == LifeType.SECONDS:
                secs = v
            elif life_type == LifeType.KILOBYTES:
                kb = v
        elif a.type == Phase2Attribute.ENCAPSULATION_MODE:
            mode = v
        elif a.type == Phase2Attribute.AUTHENTICATION_ALGORITHM:
            auth = v
        elif a.type == Phase2Attribute.KEY_LENGTH:
            keylen = v
        elif a.type == Phase2Attribute.GROUP_DESCRIPTION:
            group = v
    return OfferedTransform(int(t.transform_id), keylen, auth, mode, secs, kb, group)


def describe_phase2_transform(t: Transform) -> list[str]:
    """The lines IOS prints for an offered ESP transform (seed debug format)."""
    lines = [f"transform {t.number}, {_ESP_NAMES.get(int(t.transform_id), str(int(t.transform_id)))}",
             "   attributes in transform:"]
    life_type = None
    for a in t.attributes:
        v = a.value if isinstance(a.value, int) else int.from_bytes(a.value, "big") if a.value else 0
        if a.type == Phase2Attribute.ENCAPSULATION_MODE:
            name = {1: "Tunnel", 2: "Transport", 3: "Tunnel-UDP", 4: "Transport-UDP"}.get(v, "UDP")
            lines.append(f"      encaps is {v} ({name})")
        elif a.type == Phase2Attribute.SA_LIFE_TYPE:
            life_type = v
            lines.append(f"      SA life type in {'seconds' if v == LifeType.SECONDS else 'kilobytes'}")
        elif a.type == Phase2Attribute.SA_LIFE_DURATION and not a.tlv and life_type == LifeType.SECONDS:
            lines.append(f"      SA life duration (basic) of {v}")
        elif a.type == Phase2Attribute.AUTHENTICATION_ALGORITHM:
            lines.append(f"      authenticator is {_AUTH_NAMES.get(v, str(v))}")
        elif a.type == Phase2Attribute.KEY_LENGTH:
            lines.append(f"      key length is {v}")
        elif a.type == Phase2Attribute.GROUP_DESCRIPTION:
            lines.append(f"      group is {v}")
    return lines


def phase2_match(offer: OfferedTransform, policy: ChildPolicy) -> TransformSet | None:
    """The local transform set equal to ``offer`` (RFC 2409 5.5), or None."""
    if policy.pfs_group is not None and offer.group != policy.pfs_group:
        return None
    mode = offer.mode or int(EncapsulationMode.TUNNEL)
    mode = _UDP_TO_PLAIN.get(mode, mode)
    for ts in policy.transform_sets:
        if (int(ts.cipher) == offer.cipher and ts.key_bits == offer.key_bits
                and (int(ts.auth) if ts.auth is not None else None) == offer.auth
                and int(ts.mode) == mode):
            return ts
    return None


def agreed_lifetimes(offer: OfferedTransform, policy: ChildPolicy) -> tuple[int, int | None, bool]:
    """(seconds, kilobytes, responder-lifetime needed): the shorter of each type.
    A zero duration counts as absent (RFC 2407 4.5: the default applies)."""
    if offer.lifetime_seconds == 0 or offer.lifetime_kilobytes == 0:
        offer = OfferedTransform(offer.cipher, offer.key_bits, offer.auth, offer.mode,
                                 offer.lifetime_seconds or None, offer.lifetime_kilobytes or None, offer.group)
    secs = policy.lifetime_seconds
    if offer.lifetime_seconds is not None:
        secs = min(offer.lifetime_seconds, policy.lifetime_seconds)
    kbs = [k for k in (offer.lifetime_kilobytes, policy.lifetime_kilobytes) if k is not None]
    kb = min(kbs) if kbs else None
    shorter = (offer.lifetime_seconds is not None and policy.lifetime_seconds < offer.lifetime_seconds) or (
        policy.lifetime_kilobytes is not None
        and (offer.lifetime_kilobytes is None or policy.lifetime_kilobytes < offer.lifetime_kilobytes)
    )
    return secs, kb, shorter


def responder_lifetime_attributes(seconds: int, kilobytes: int | None) -> bytes:
    """RESPONDER-LIFETIME notification data: life type/duration attributes (RFC 2407 4.6.3.1)."""
    attrs = [Attribute(Phase2Attribute.SA_LIFE_TYPE, LifeType.SECONDS),
             Attribute(Phase2Attribute.SA_LIFE_DURATION, seconds, tlv=True)]
    if kilobytes is not None:
        attrs += [Attribute(Phase2Attribute.SA_LIFE_TYPE, LifeType.KILOBYTES),
                  Attribute(Phase2Attribute.SA_LIFE_DURATION, kilobytes, tlv=True)]
    return b"".join(a.encode() for a in attrs)
