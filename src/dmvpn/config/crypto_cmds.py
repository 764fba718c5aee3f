"""The lines inside ``crypto isakmp policy``, ``crypto ipsec transform-set``,
``crypto ipsec profile`` and ``crypto map`` blocks (IKEv1 phase-1 proposals,
RFC 2409 section 5; phase-2 proposals and lifetimes, RFC 2407 section 4.5)."""

from __future__ import annotations

from dmvpn.config.algorithms import (
    ISAKMP_AUTH_NAMES,
    ISAKMP_ENCRYPTION_NAMES,
    ISAKMP_HASH_NAMES,
    EncapsulationMode,
    EncryptionAlgorithm,
    IkeAuthMethod,
)
from dmvpn.config.builders import (
    MapEntryBuilder,
    PolicyBuilder,
    ProfileBuilder,
    SaSettings,
    TransformSetBuilder,
)
from dmvpn.config.values import LineError, dh_group, integer, ipv4

#: ``lifetime seconds`` / ``kilobytes`` ranges IOS accepts for IPsec SAs.
SA_SECONDS_RANGE = (120, 2_592_000)
SA_KILOBYTES_RANGE = (2560, 4_294_967_295)


def _arg(t: list[str], i: int) -> str | None:
    return t[i] if i < len(t) else None


def policy_line(b: PolicyBuilder, t: list[str], line: int) -> str:
    """One line of ``crypto isakmp policy N``."""
    cmd = t[0]
    if cmd in ("encryption", "encr"):
        b.seen.once("encryption", line)
        alg = _arg(t, 1)
        if alg == "des":
            raise LineError("encryption des: single DES is not supported, expected aes [128|192|256] or 3des")
        if alg not in ISAKMP_ENCRYPTION_NAMES:
            raise LineError(f"encryption: expected aes [128|192|256] or 3des, got '{alg or ''}'")
        b.encryption = ISAKMP_ENCRYPTION_NAMES[alg]
        if b.encryption is EncryptionAlgorithm.AES_CBC:
            bits = _arg(t, 2)
            if bits is not None and bits not in ("128", "192", "256"):
                raise LineError(f"encryption aes: key size must be 128, 192 or 256, got '{bits}'")
            b.key_bits = int(bits) if bits else 128
            extra = 3
        else:
            extra = 2
        if len(t) > extra:
            raise LineError(f"encryption: unexpected '{t[extra]}'")
    elif cmd == "hash":
        b.seen.once("hash", line)
        if len(t) != 2 or t[1] not in ISAKMP_HASH_NAMES:
            raise LineError(f"hash: expected {'|'.join(ISAKMP_HASH_NAMES)}, got '{' '.join(t[1:])}'")
        b.hash = ISAKMP_HASH_NAMES[t[1]]
    elif cmd in ("authentication", "auth"):
        b.seen.once("authentication", line)
        if len(t) != 2 or t[1] not in ISAKMP_AUTH_NAMES:
            raise LineError(f"authentication: expected pre-share, got '{' '.join(t[1:])}'")
        if ISAKMP_AUTH_NAMES[t[1]] is not IkeAuthMethod.PRE_SHARED_KEY:
            raise LineError(f"authentication {t[1]}: only pre-share is supported")
        b.authentication = IkeAuthMethod.PRE_SHARED_KEY
    elif cmd == "group":
        b.seen.once("group", line)
        if len(t) != 2:
            raise LineError("group: expected one DH group number")
        b.group = dh_group(t[1], "group")
    elif cmd == "lifetime":
        b.seen.once("lifetime", line)
        if len(t) != 2:
            raise LineError("lifetime: expected seconds 60-86400")
        b.lifetime = integer(t[1], 60, 86400, "lifetime (seconds)")
    elif cmd == "description":
        return "ignored"
    else:
        return "unknown"
    return "ok"


def transform_set_line(b: TransformSetBuilder, t: list[str], line: int) -> str:
    """One line of ``crypto ipsec transform-set``: ``mode transport|tunnel``."""
    if t[0] != "mode":
        return "unknown"
    b.seen.once("mode", line)
    if len(t) >= 2 and t[1] == "transport" and t[2:] in ([], ["require"]):
        b.mode = EncapsulationMode.TRANSPORT
    elif t[1:] == ["tunnel"]:
        b.mode = EncapsulationMode.TUNNEL
    else:
        raise LineError(f"mode: expected transport or tunnel, got '{' '.join(t[1:])}'")
    return "ok"


def sa_lifetime(sa: SaSettings, t: list[str], line: int, prefix: str) -> None:
    """``lifetime seconds N | kilobytes N | kilobytes disable`` (tokens from
    the word ``lifetime`` on)."""
    kind = _arg(t, 1)
    value = _arg(t, 2)
    if len(t) != 3 or kind not in ("seconds", "kilobytes"):
        raise LineError(f"{prefix} lifetime: expected 'seconds N', 'kilobytes N' or 'kilobytes disable'")
    if kind == "seconds":
        sa.seen.once(f"{prefix} lifetime seconds", line)
        sa.lifetime_seconds = integer(value, *SA_SECONDS_RANGE, f"{prefix} lifetime seconds")
    else:
        sa.seen.once(f"{prefix} lifetime kilobytes", line)
        if value == "disable":
            sa.kilobytes_disabled = True
        else:
            sa.lifetime_kilobytes = integer(value, *SA_KILOBYTES_RANGE, f"{prefix} lifetime kilobytes")


def _set_line(sa: SaSettings, t: list[str], line: int) -> bool:
    """``set transform-set ...``, ``set security-association lifetime ...``,
    ``set pfs [groupN]``; False when the line is none of them."""
    what = _arg(t, 1)
    if what == "transform-set":
        sa.seen.once("set transform-set", line)
        names = t[2:]
        if not names or len(names) > 6:
            raise LineError("set transform-set: expected 1 to 6 transform set names")
        if len(set(names)) != len(names):
            raise LineError("set transform-set: a transform set is named twice")
        sa.transform_sets = [(n, line) for n in names]
    elif what == "security-association" and _arg(t, 2) == "lifetime":
        sa_lifetime(sa, t[2:], line, "set security-association")
    elif what == "pfs":
        sa.seen.once("set pfs", line)
        if len(t) > 3:
            raise LineError(f"set pfs: unexpected '{t[3]}'")
        # RFC 2409 section 5.5 PFS; IOS uses group1 when no group is given.
        sa.pfs_group = dh_group(_arg(t, 2) or "group1", "set pfs")
    else:
        return False
    return True


def profile_line(b: ProfileBuilder, t: list[str], line: int) -> str:
    """One line of ``crypto ipsec profile NAME``."""
    if t[0] == "set" and t[1:3] == ["security-association", "idle-time"]:
        b.sa.seen.once("set security-association idle-time", line)
        b.idle_time = integer(_arg(t, 3), 60, 86400, "set security-association idle-time (seconds)")
    elif t[0] == "set" and _set_line(b.sa, t, line):
        pass
    elif t[:2] == ["set", "ikev2-profile"]:
        b.sa.seen.once("set ikev2-profile", line)
        if len(t) != 3:
            raise LineError("set ikev2-profile: expected one crypto ikev2 profile name")
        b.ikev2_profile = (t[2], line)
    elif t == ["responder-only"]:
        b.responder_only = True
    elif t[0] == "description":
        return "ignored"
    else:
        return "unknown"
    return "ok"


def map_entry_line(b: MapEntryBuilder, t: list[str], line: int) -> str:
    """One line of ``crypto map NAME SEQ ipsec-isakmp``."""
    if t[0] == "set" and _arg(t, 1) == "peer":
        if len(t) not in (3, 4) or (len(t) == 4 and t[3] != "default"):
            raise LineError("set peer: expected one IPv4 address [default]")
        peer = ipv4(t[2], "set peer")
        if peer in b.peers:
            raise LineError(f"set peer: duplicate peer {peer}")
        b.peers.append(peer)
    elif t[0] == "set" and _set_line(b.sa, t, line):
        pass
    elif t[0] == "match" and _arg(t, 1) == "address":
        b.sa.seen.once("match address", line)
        if len(t) != 3:
            raise LineError("match address: expected one access-list number or name")
        b.acl = (t[2], line)
    elif t[0] in ("description", "reverse-route"):
        return "ignored"
    else:
        return "unknown"
    return "ok"
