"""The config-only shows: ``show crypto isakmp policy``, ``show crypto ipsec
profile`` and ``show crypto ipsec transform-set``, rendered from the typed
config model (IOS-XE 16 layout, as in the seed's
``show_crypto_policies_and_profiles.txt``), and the transform names IOS
uses in show output.

IOS always has a built-in ``default`` transform set (``esp-aes
esp-sha-hmac``, transport mode) and a ``default`` IPsec profile that uses
it; both are listed here unless the config redefines them.
"""

from __future__ import annotations

from typing import Any

from dmvpn.config.algorithms import (
    ESP_AUTH_NAMES,
    DhGroup,
    EncapsulationMode,
    EncryptionAlgorithm,
    EspAuthAlgorithm,
    EspTransformId,
    HashAlgorithm,
    IkeAuthMethod,
)
from dmvpn.config.model import IpsecProfile, IsakmpPolicy, RouterConfig, TransformSet
from dmvpn.show.iosfmt import yes_no

DEFAULT_TRANSFORM_SET = TransformSet(
    name="default",
    cipher=EspTransformId.ESP_AES_CBC,
    key_bits=128,
    auth=EspAuthAlgorithm.HMAC_SHA,
    mode=EncapsulationMode.TRANSPORT,
    ios_text="esp-aes esp-sha-hmac",
)

_ESP_AUTH_WORDS = {auth: word for word, auth in ESP_AUTH_NAMES.items()}

_ENCRYPTION_TEXT = {
    EncryptionAlgorithm.DES_CBC: "DES - Data Encryption Standard (56 bit keys).",
    EncryptionAlgorithm.DES3_CBC: "Three key triple DES",
}
_HASH_TEXT = {
    HashAlgorithm.MD5: "Message Digest 5",
    HashAlgorithm.SHA: "Secure Hash Standard",
    HashAlgorithm.SHA2_256: "Secure Hash Standard 2 (256 bit)",
    HashAlgorithm.SHA2_384: "Secure Hash Standard 2 (384 bit)",
    HashAlgorithm.SHA2_512: "Secure Hash Standard 2 (512 bit)",
}
_AUTH_TEXT = {
    IkeAuthMethod.PRE_SHARED_KEY: "Pre-Shared Key",
    IkeAuthMethod.DSS_SIGNATURES: "DSS Signature",
    IkeAuthMethod.RSA_SIGNATURES: "Rivest-Shamir-Adleman Signature",
    IkeAuthMethod.RSA_ENCRYPTION: "Rivest-Shamir-Adleman Encryption",
}
#: Group sizes as ``Diffie-Hellman group:`` prints them (RFC 2409, 3526, 5903).
_DH_TEXT = {
    DhGroup.MODP_768: "768 bit",
    DhGroup.MODP_1024: "1024 bit",
    DhGroup.MODP_1536: "1536 bit",
    DhGroup.MODP_2048: "2048 bit",
    DhGroup.MODP_3072: "3072 bit",
    DhGroup.MODP_4096: "4096 bit",
    DhGroup.MODP_6144: "6144 bit",
    DhGroup.MODP_8192: "8192 bit",
    DhGroup.ECP_256: "256 bit ecp",
    DhGroup.ECP_384: "384 bit ecp",
    DhGroup.ECP_521: "521 bit ecp",
}


def transform_text(ts: TransformSet) -> str:
    """The transforms as show output names them (``esp-256-aes
    esp-sha256-hmac``, ``esp-gcm 256``): the AES-CBC key size moves into
    the name, the GCM/GMAC size follows it, the default 128 is not shown."""
    words: list[str] = []
    bits = ts.key_bits
    if ts.cipher is EspTransformId.ESP_AES_CBC:
        words.append("esp-aes" if bits in (None, 128) else f"esp-{bits}-aes")
    elif ts.cipher in (EspTransformId.ESP_AES_GCM_16, EspTransformId.ESP_NULL_AUTH_AES_GMAC):
        base = "esp-gcm" if ts.cipher is EspTransformId.ESP_AES_GCM_16 else "esp-gmac"
        words.append(base if bits in (None, 128) else f"{base} {bits}")
    elif ts.cipher is EspTransformId.ESP_3DES:
        words.append("esp-3des")
    elif ts.cipher is EspTransformId.ESP_DES:
        words.append("esp-des")
    elif ts.auth is None:
        words.append("esp-null")
    if ts.auth is not None:
        words.append(_ESP_AUTH_WORDS[ts.auth])
    return " ".join(words)


def mode_text(mode: EncapsulationMode) -> str:
    """``Tunnel`` or ``Transport`` (RFC 2407 section 4.5, attribute 4)."""
    return "Transport" if mode is EncapsulationMode.TRANSPORT else "Tunnel"


def dh_group_name(group: DhGroup | None) -> str:
    """``group14`` as IOS names a PFS group, ``none`` without PFS."""
    return f"group{int(group)}" if group is not None else "none"


def transform_sets(config: RouterConfig) -> list[TransformSet]:
    """The config's transform sets plus IOS's built-in ``default``, by name."""
    sets = dict(config.transform_sets)
    sets.setdefault(DEFAULT_TRANSFORM_SET.name, DEFAULT_TRANSFORM_SET)
    return [sets[name] for name in sorted(sets)]


def ipsec_profiles(config: RouterConfig) -> list[IpsecProfile]:
    """The config's IPsec profiles plus IOS's built-in ``default``, by name."""
    profiles = dict(config.ipsec_profiles)
    profiles.setdefault(
        "default",
        IpsecProfile(
            name="default",
            transform_sets=(DEFAULT_TRANSFORM_SET.name,),
            lifetime_seconds=config.ipsec_sa_lifetime.seconds,
            lifetime_kilobytes=config.ipsec_sa_lifetime.kilobytes,
        ),
    )
    return [profiles[name] for name in sorted(profiles)]


def _find_transform_set(config: RouterConfig, name: str) -> TransformSet | None:
    return {ts.name: ts for ts in transform_sets(config)}.get(name)


# ------------------------------------------------------- show crypto isakmp policy


def _encryption_text(policy: IsakmpPolicy) -> str:
    if policy.encryption is EncryptionAlgorithm.AES_CBC:
        return f"AES - Advanced Encryption Standard ({policy.key_bits or 128} bit keys)."
    return _ENCRYPTION_TEXT.get(policy.encryption, policy.encryption.name)


def render_isakmp_policy(config: RouterConfig) -> str:
    """``Global IKE policy`` and one ``Protection suite`` per policy, by
    priority (RFC 2409 section 5 proposals)."""
    lines = ["", "Global IKE policy"]
    for p in sorted(config.isakmp_policies, key=lambda p: p.priority):
        lines += [
            f"Protection suite of priority {p.priority}",
            f"        encryption algorithm:   {_encryption_text(p)}",
            f"        hash algorithm:         {_HASH_TEXT.get(p.hash, p.hash.name)}",
            f"        authentication method:  {_AUTH_TEXT[p.authentication]}",
            f"        Diffie-Hellman group:   #{int(p.group)} ({_DH_TEXT[p.group]})",
            f"        lifetime:               {p.lifetime} seconds, no volume limit",
        ]
    return "\n".join(lines) + "\n"


def isakmp_policy_json(config: RouterConfig) -> dict[str, Any]:
    return {
        "isakmp_policy": {
            str(p.priority): {
                "encryption": p.encryption.name,
                "key_bits": p.key_bits,
                "encryption_text": _encryption_text(p),
                "hash": p.hash.name,
                "authentication": p.authentication.name,
                "dh_group": int(p.group),
                "lifetime": p.lifetime,
                "defaulted": list(p.defaulted),
            }
            for p in sorted(config.isakmp_policies, key=lambda p: p.priority)
        }
    }


# ------------------------------------------------------- show crypto ipsec profile


def _lifetime_text(profile: IpsecProfile) -> str:
    if profile.lifetime_kilobytes is None:
        return f"{profile.lifetime_seconds} seconds"
    return f"{profile.lifetime_kilobytes} kilobytes/{profile.lifetime_seconds} seconds"


def render_ipsec_profiles(config: RouterConfig) -> str:
    lines: list[str] = []
    for prof in ipsec_profiles(config):
        lines += [
            f"IPSEC profile {prof.name}",
            f"        Security association lifetime: {_lifetime_text(prof)}",
            f"        Responder-Only (Y/N): {yes_no(prof.responder_only)}",
            f"        PFS (Y/N): {yes_no(prof.pfs_group is not None)}",
        ]
        if prof.pfs_group is not None:
            lines.append(f"        DH group:  {dh_group_name(prof.pfs_group)}")
        lines += ["        Mixed-mode : Disabled", "        Transform sets={"]
        for name in prof.transform_sets:
            ts = _find_transform_set(config, name)
            text = transform_text(ts) if ts is not None else ""
            lines.append(f"                {name}:  {{ {text}  }} ,")
        lines += ["        }", ""]
    return "\n".join(lines) + "\n"


def ipsec_profile_json(config: RouterConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for prof in ipsec_profiles(config):
        sets: dict[str, Any] = {}
        for name in prof.transform_sets:
            ts = _find_transform_set(config, name)
            sets[name] = {"transforms": transform_text(ts) if ts else "", "mode": mode_text(ts.mode) if ts else ""}
        out[prof.name] = {
            "security_association_lifetime": _lifetime_text(prof),
            "lifetime_seconds": prof.lifetime_seconds,
            "lifetime_kilobytes": prof.lifetime_kilobytes,
            "responder_only": yes_no(prof.responder_only),
            "pfs": yes_no(prof.pfs_group is not None),
            "dh_group": dh_group_name(prof.pfs_group),
            "mixed_mode": "Disabled",
            "transform_sets": sets,
        }
    return {"ipsec_profile_name": out}


# ------------------------------------------------ show crypto ipsec transform-set


def render_transform_sets(config: RouterConfig) -> str:
    lines: list[str] = []
    for ts in transform_sets(config):
        lines += [
            f"Transform set {ts.name}: {{ {transform_text(ts)}  }}",
            f"   will negotiate = {{ {mode_text(ts.mode)},  }},",
            "",
        ]
    return "\n".join(lines) + "\n"


def transform_set_json(config: RouterConfig) -> dict[str, Any]:
    return {
        "transform_set": {
            ts.name: {
                "transforms": transform_text(ts),
                "mode": mode_text(ts.mode),
                "cipher": ts.cipher.name,
                "key_bits": ts.key_bits,
                "auth": ts.auth.name if ts.auth is not None else None,
            }
            for ts in transform_sets(config)
        }
    }
