"""The ``crypto ikev2 ...`` commands of an IOS-XE config: the global lines
that open the blocks, the lines inside them, and the second pass that
checks references and adds the smart defaults (:mod:`dmvpn.config.ikev2_model`).

Each handler raises :class:`LineError` for a bad line (the parser turns it
into ``FILE:LINE: error: ...``) and returns "ok", "ignored" or "unknown"
like the other block handlers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Protocol, TypeVar

from dmvpn.config.builders import Settings
from dmvpn.config.ikev2_model import (
    DEFAULT_IKEV2_LIFETIME,
    DEFAULT_POLICY,
    DEFAULT_PROPOSAL,
    DpdMode,
    Ikev2Config,
    Ikev2Dpd,
    Ikev2Encryption,
    Ikev2Keyring,
    Ikev2KeyringPeer,
    Ikev2Policy,
    Ikev2Profile,
    Ikev2Proposal,
)
from dmvpn.config.values import LineError, address_mask, dh_group, integer, ipv4
from dmvpn.crypto.dh_groups import DhGroup
from dmvpn.crypto.ikev2_algorithms import EncrId, IntegId, PrfId

#: ``encryption`` keywords of ``crypto ikev2 proposal`` (IOS-XE).
ENCRYPTION_NAMES: dict[str, Ikev2Encryption] = {
    "aes-cbc-128": Ikev2Encryption(EncrId.AES_CBC, 128, "aes-cbc-128"),
    "aes-cbc-192": Ikev2Encryption(EncrId.AES_CBC, 192, "aes-cbc-192"),
    "aes-cbc-256": Ikev2Encryption(EncrId.AES_CBC, 256, "aes-cbc-256"),
    "aes-gcm-128": Ikev2Encryption(EncrId.AES_GCM_16, 128, "aes-gcm-128"),
    "aes-gcm-256": Ikev2Encryption(EncrId.AES_GCM_16, 256, "aes-gcm-256"),
    "3des": Ikev2Encryption(EncrId.DES3, None, "3des"),
}
#: ``integrity`` keywords (RFC 4868 truncations for SHA-2).
INTEGRITY_NAMES: dict[str, IntegId] = {
    "md5": IntegId.HMAC_MD5_96,
    "sha1": IntegId.HMAC_SHA1_96,
    "sha256": IntegId.HMAC_SHA2_256_128,
    "sha384": IntegId.HMAC_SHA2_384_192,
    "sha512": IntegId.HMAC_SHA2_512_256,
}
#: ``prf`` keywords.
PRF_NAMES: dict[str, PrfId] = {
    "md5": PrfId.HMAC_MD5,
    "sha1": PrfId.HMAC_SHA1,
    "sha256": PrfId.HMAC_SHA2_256,
    "sha384": PrfId.HMAC_SHA2_384,
    "sha512": PrfId.HMAC_SHA2_512,
}
#: The PRF IOS-XE takes for each integrity algorithm when a proposal has no ``prf`` line.
PRF_OF_INTEGRITY = {INTEGRITY_NAMES[k]: PRF_NAMES[k] for k in INTEGRITY_NAMES}


def _names(tokens: list[str], table: dict[str, object], what: str) -> list[str]:
    if not tokens:
        raise LineError(f"{what}: expected one or more of {'|'.join(table)}")
    for tok in tokens:
        if tok not in table:
            raise LineError(f"{what}: expected {'|'.join(table)}, got '{tok}'")
    if len(set(tokens)) != len(tokens):
        raise LineError(f"{what}: an algorithm is named twice")
    return tokens


@dataclass
class ProposalBuilder:
    name: str
    line: int
    encryption: list[Ikev2Encryption] = field(default_factory=list)
    integrity: list[IntegId] = field(default_factory=list)
    prf: list[PrfId] = field(default_factory=list)
    groups: list[DhGroup] = field(default_factory=list)


def proposal_line(b: ProposalBuilder, t: list[str], line: int) -> str:
    """One line of ``crypto ikev2 proposal NAME`` (each may list several
    algorithms; a second line of the same kind adds to the list, as IOS-XE does)."""
    cmd, args = t[0], t[1:]
    if cmd in ("encryption", "encr"):
        b.encryption += [ENCRYPTION_NAMES[n] for n in _names(args, dict(ENCRYPTION_NAMES), "encryption")]
    elif cmd == "integrity":
        b.integrity += [INTEGRITY_NAMES[n] for n in _names(args, dict(INTEGRITY_NAMES), "integrity")]
    elif cmd == "prf":
        b.prf += [PRF_NAMES[n] for n in _names(args, dict(PRF_NAMES), "prf")]
    elif cmd == "group":
        if not args:
            raise LineError("group: expected one or more DH group numbers")
        b.groups += [dh_group(a, "group") for a in args]
    elif cmd == "description":
        return "ignored"
    else:
        return "unknown"
    return "ok"


@dataclass
class PolicyBuilder:
    name: str
    line: int
    proposals: list[tuple[str, int]] = field(default_factory=list)
    match_fvrf_any: bool = False
    match_local: list[IPv4Address] = field(default_factory=list)


def policy_line(b: PolicyBuilder, t: list[str], line: int) -> str:
    """``proposal NAME``, ``match fvrf any``, ``match address local A``."""
    if t[0] == "proposal":
        if len(t) != 2:
            raise LineError("proposal: expected one proposal name")
        if any(n == t[1] for n, _ in b.proposals):
            raise LineError(f"proposal {t[1]}: named twice in this policy")
        b.proposals.append((t[1], line))
    elif t[:2] == ["match", "fvrf"]:
        if t[2:] != ["any"]:
            raise LineError("match fvrf: only 'any' is supported (no VRFs)")
        b.match_fvrf_any = True
    elif t[:3] == ["match", "address", "local"]:
        if len(t) != 4:
            raise LineError("match address local: expected one IPv4 address")
        b.match_local.append(ipv4(t[3], "match address local"))
    elif t[0] == "description":
        return "ignored"
    else:
        return "unknown"
    return "ok"


@dataclass
class PeerBuilder:
    name: str
    line: int
    address: tuple[IPv4Address, IPv4Address] | None = None
    local_key: str | None = None
    remote_key: str | None = None
    seen: Settings = field(default_factory=Settings)
    broken: bool = False  # one of its lines failed: not reported again as incomplete


@dataclass
class KeyringBuilder:
    name: str
    line: int
    peers: list[PeerBuilder] = field(default_factory=list)


def _psk(b: PeerBuilder, t: list[str], line: int) -> None:
    """``pre-shared-key [local|remote] [0|6] KEY``."""
    rest = t[1:]
    side = rest[0] if rest and rest[0] in ("local", "remote") else None
    if side:
        rest = rest[1:]
    if len(rest) == 2 and rest[0] in ("0", "6"):
        if rest[0] == "6":
            raise LineError("pre-shared-key 6: encrypted keys cannot be read, give the key in clear text")
        rest = rest[1:]
    if len(rest) != 1:
        raise LineError("pre-shared-key: expected [local|remote] KEY")
    for s in (side,) if side else ("local", "remote"):
        b.seen.once(f"pre-shared-key {s}", line)
        if s == "local":
            b.local_key = rest[0]
        else:
            b.remote_key = rest[0]


def keyring_line(b: KeyringBuilder, t: list[str], line: int) -> str:
    """``peer NAME`` opens a peer; ``address``, ``pre-shared-key``,
    ``description`` and ``identity`` lines belong to the last one."""
    if t[0] == "peer":
        if len(t) != 2:
            raise LineError("peer: expected one name")
        if any(p.name == t[1] for p in b.peers):
            raise LineError(f"duplicate peer {t[1]} in keyring {b.name}")
        b.peers.append(PeerBuilder(t[1], line))
        return "ok"
    if not b.peers:
        if t[0] in ("address", "pre-shared-key"):
            raise LineError(f"{t[0]}: must follow a 'peer NAME' line")
        return "unknown"
    peer = b.peers[-1]
    try:
        return _peer_line(peer, t, line)
    except LineError:
        peer.broken = True
        raise


def _peer_line(peer: PeerBuilder, t: list[str], line: int) -> str:
    if t[0] == "address":
        peer.seen.once("address", line)
        if len(t) not in (2, 3):
            raise LineError("address: expected an IPv4 address [MASK]")
        addr = ipv4(t[1], "address")
        peer.address = (addr, address_mask(addr, t[2] if len(t) == 3 else None, "address mask"))
    elif t[0] == "pre-shared-key":
        _psk(peer, t, line)
    elif t[0] in ("description", "identity"):
        return "ignored"
    else:
        return "unknown"
    return "ok"


@dataclass
class ProfileBuilder:
    name: str
    line: int
    match_remote: list[IPv4Network] = field(default_factory=list)
    keyring: tuple[str, int] | None = None
    auth_local: str | None = None
    auth_remote: str | None = None
    dpd: Ikev2Dpd | None = None
    lifetime: int = DEFAULT_IKEV2_LIFETIME
    seen: Settings = field(default_factory=Settings)


def _authentication(b: ProfileBuilder, t: list[str], line: int) -> None:
    if len(t) != 3 or t[1] not in ("local", "remote"):
        raise LineError("authentication: expected 'local pre-share' or 'remote pre-share'")
    if t[2] != "pre-share":
        raise LineError(f"authentication {t[1]} {t[2]}: only pre-share is supported")
    b.seen.once(f"authentication {t[1]}", line)
    if t[1] == "local":
        b.auth_local = "pre-share"
    else:
        b.auth_remote = "pre-share"


def profile_line(b: ProfileBuilder, t: list[str], line: int) -> str:
    """One line of ``crypto ikev2 profile NAME``."""
    if t[:3] == ["match", "identity", "remote"]:
        if t[3:4] != ["address"] or len(t) not in (5, 6):
            raise LineError("match identity remote: expected 'address A [MASK]' (other identities are not supported)")
        addr = ipv4(t[4], "match identity remote address")
        mask = address_mask(addr, t[5] if len(t) == 6 else None, "match identity remote address mask")
        b.match_remote.append(IPv4Network(f"{addr}/{mask}", strict=False))
    elif t[0] == "authentication":
        _authentication(b, t, line)
    elif t[:2] == ["keyring", "local"]:
        b.seen.once("keyring", line)
        if len(t) != 3:
            raise LineError("keyring local: expected one keyring name")
        b.keyring = (t[2], line)
    elif t[0] == "keyring":
        raise LineError("keyring: only 'keyring local NAME' is supported")
    elif t[0] == "dpd":
        b.seen.once("dpd", line)
        if len(t) != 4 or t[3] not in ("on-demand", "periodic"):
            raise LineError("dpd: expected INTERVAL RETRY on-demand|periodic")
        b.dpd = Ikev2Dpd(integer(t[1], 10, 3600, "dpd interval"), integer(t[2], 2, 60, "dpd retry"), DpdMode(t[3]))
    elif t[0] == "lifetime":
        b.seen.once("lifetime", line)
        if len(t) != 2:
            raise LineError("lifetime: expected seconds 120-86400")
        b.lifetime = integer(t[1], 120, 86400, "lifetime (seconds)")
    elif t[0] in ("description", "identity"):
        return "ignored"
    else:
        return "unknown"
    return "ok"


@dataclass
class Ikev2Builders:
    """What the first pass collected under ``crypto ikev2``."""

    proposals: dict[str, ProposalBuilder] = field(default_factory=dict)
    policies: dict[str, PolicyBuilder] = field(default_factory=dict)
    keyrings: dict[str, KeyringBuilder] = field(default_factory=dict)
    profiles: dict[str, ProfileBuilder] = field(default_factory=dict)
    cookie_challenge: int | None = None

    def cookie_line(self, t: list[str]) -> None:
        """``crypto ikev2 cookie-challenge N`` (IOS-XE: 1-1000 half-open SAs)."""
        if len(t) != 4:
            raise LineError("crypto ikev2 cookie-challenge: expected one number of half-open SAs 1-1000")
        self.cookie_challenge = integer(t[3], 1, 1000, "crypto ikev2 cookie-challenge")

    def open(self, t: list[str], line: int) -> BlockHandler:
        """The handler for the block a ``crypto ikev2 KIND NAME`` line opens."""
        kind = t[2] if len(t) > 2 else None
        if kind not in ("proposal", "policy", "keyring", "profile"):
            raise LineError("crypto ikev2: expected proposal|policy|keyring|profile NAME or cookie-challenge N, "
                            f"got '{' '.join(t[2:])}'")
        if len(t) != 4:
            raise LineError(f"crypto ikev2 {kind}: expected one NAME")
        name = t[3]
        if kind == "proposal":
            return _add(self.proposals, ProposalBuilder(name, line), proposal_line, kind)
        if kind == "policy":
            return _add(self.policies, PolicyBuilder(name, line), policy_line, kind)
        if kind == "keyring":
            return _add(self.keyrings, KeyringBuilder(name, line), keyring_line, kind)
        return _add(self.profiles, ProfileBuilder(name, line), profile_line, kind)


class _Named(Protocol):
    name: str
    line: int


B = TypeVar("B", bound=_Named)
BlockHandler = Callable[[list[str], int], str]


def _add(table: dict[str, B], b: B, handler: Callable[[B, list[str], int], str], kind: str) -> BlockHandler:
    if b.name in table:
        raise LineError(f"duplicate crypto ikev2 {kind} '{b.name}' (first at line {table[b.name].line})")
    table[b.name] = b
    return lambda tok, ln: handler(b, tok, ln)


Report = Callable[[int, str], None]


def _proposal(b: ProposalBuilder, warn: Report) -> Ikev2Proposal:
    prf = list(b.prf)
    if not prf and b.integrity:
        prf = [PRF_OF_INTEGRITY[i] for i in b.integrity]
    p = Ikev2Proposal(b.name, tuple(b.encryption), tuple(b.integrity), tuple(prf), tuple(b.groups), b.line)
    aead = [e for e in p.encryption if e.is_aead]
    if aead and len(aead) != len(p.encryption):
        raise LineError(f"crypto ikev2 proposal {b.name}: aes-gcm and aes-cbc cannot be mixed in one proposal")
    if aead and p.integrity:
        raise LineError(f"crypto ikev2 proposal {b.name}: aes-gcm takes no 'integrity' (RFC 5282), give 'prf'")
    if not p.complete:
        warn(
            b.line,
            f"crypto ikev2 proposal {b.name} is incomplete (needs encryption, group and "
            f"{'prf' if aead else 'integrity'}): IOS-XE does not use it",
        )
    return p


def _keyring(b: KeyringBuilder, error: Report) -> Ikev2Keyring:
    peers = []
    for pb in b.peers:
        if pb.broken:
            continue
        if pb.address is None:
            error(pb.line, f"keyring {b.name} peer {pb.name}: no 'address' line")
        elif pb.local_key is None or pb.remote_key is None:
            error(pb.line, f"keyring {b.name} peer {pb.name}: needs a pre-shared-key for both local and remote")
        else:
            peers.append(Ikev2KeyringPeer(pb.name, pb.address[0], pb.address[1], pb.local_key, pb.remote_key, pb.line))
    return Ikev2Keyring(b.name, tuple(peers), b.line)


def _profile(b: ProfileBuilder, keyring_names: set[str], error: Report, warn: Report) -> Ikev2Profile:
    if b.keyring and b.keyring[0] not in keyring_names:
        error(b.keyring[1], f"keyring local: crypto ikev2 keyring '{b.keyring[0]}' is not defined")
    if not b.match_remote:
        warn(b.line, f"crypto ikev2 profile {b.name} has no 'match identity remote': it matches no peer")
    if b.auth_local is None or b.auth_remote is None:
        warn(b.line, f"crypto ikev2 profile {b.name} lacks 'authentication local/remote pre-share'")
    if b.keyring is None:
        warn(b.line, f"crypto ikev2 profile {b.name} has no 'keyring local': no pre-shared key to use")
    return Ikev2Profile(
        b.name,
        tuple(b.match_remote),
        b.keyring[0] if b.keyring else None,
        b.auth_local or "pre-share",
        b.auth_remote or "pre-share",
        b.dpd,
        b.lifetime,
        b.line,
    )


def build_ikev2(b: Ikev2Builders, error: Report, warn: Report) -> Ikev2Config:
    """Freeze the builders, check names, add the smart defaults (a
    ``default`` proposal unless one is configured under that name; the
    ``default`` policy when no policy is configured)."""
    proposals: dict[str, Ikev2Proposal] = {}
    for name, pb in b.proposals.items():
        try:
            proposals[name] = _proposal(pb, warn)
        except LineError as exc:
            error(pb.line, str(exc))
    defaulted = []
    if "default" not in proposals:
        proposals["default"] = DEFAULT_PROPOSAL
        defaulted.append("proposal default")
    policies: dict[str, Ikev2Policy] = {}
    for name, pol in b.policies.items():
        for ref, line in pol.proposals:
            if ref not in proposals and ref not in b.proposals:
                error(line, f"proposal: crypto ikev2 proposal '{ref}' is not defined")
        if not pol.proposals:
            warn(pol.line, f"crypto ikev2 policy {name} names no proposal")
        policies[name] = Ikev2Policy(
            name,
            tuple(n for n, _ in pol.proposals),
            pol.match_fvrf_any or not pol.match_local,
            tuple(pol.match_local),
            pol.line,
        )
    if not policies:
        policies["default"] = DEFAULT_POLICY
        defaulted.append("policy default")
    used = {n for pol in policies.values() for n in pol.proposals}
    for name, pb in b.proposals.items():
        if name not in used:
            warn(pb.line, f"crypto ikev2 proposal {name} is in no crypto ikev2 policy: IOS-XE does not offer it")
    keyrings = {name: _keyring(kb, error) for name, kb in b.keyrings.items()}
    profiles = {name: _profile(pb, set(keyrings), error, warn) for name, pb in b.profiles.items()}
    return Ikev2Config(proposals, policies, keyrings, profiles, tuple(defaulted), b.cookie_challenge)
