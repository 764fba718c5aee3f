"""The settings that give SA ages meaning: the configured lifetimes, from
``show crypto ipsec profile``, ``show crypto isakmp policy`` or a
running-config (read by :mod:`dmvpn.config`).

``show crypto ipsec profile`` and ``show crypto isakmp policy`` have no
ntc-templates template; these are our own small parsers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dmvpn.analyze.text import Line, Unread
from dmvpn.config import RouterConfig, parse_config


@dataclass(slots=True)
class ProfileShow:
    """One ``IPSEC profile NAME`` of ``show crypto ipsec profile``."""

    name: str
    line: int
    lifetime_kb: int | None = None
    lifetime_s: int | None = None
    volume_disabled: bool = False
    pfs: str = ""
    transform_sets: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class PolicyShow:
    """One ``Protection suite of priority N`` of ``show crypto isakmp policy``."""

    priority: int
    line: int
    encryption: str = ""
    hash: str = ""
    authentication: str = ""
    group: str = ""
    lifetime_s: int | None = None


@dataclass(slots=True)
class Settings:
    """What one router's pasted text says about its configuration."""

    profiles: list[ProfileShow] = field(default_factory=list)
    policies: list[PolicyShow] = field(default_factory=list)
    configs: list[RouterConfig] = field(default_factory=list)
    config_texts: list[str] = field(default_factory=list)  # the text of each of ``configs``
    unread: list[Unread] = field(default_factory=list)
    warnings: list[Unread] = field(default_factory=list)


_PROFILE = re.compile(r"^IPSEC profile (\S+)$")
_PROFILE_LIFE = re.compile(r"^Security association lifetime:\s*(?:(\d+) kilobytes|(.+?))\s*/\s*(\d+) seconds$")
_PROFILE_PFS = re.compile(r"^PFS \(Y/N\):\s*(\S+)")
_PROFILE_TS = re.compile(r"^([\w.\-]+):\s*\{\s*(.*?)\s*\}\s*,?$")
_PROFILE_IGNORE = re.compile(r"^(?:Responder-Only|Mixed-mode|Transform sets\s*=\s*\{|\}|"
                             r"IKEv2 Profile|ISAKMP Profile|Dual Stack|Reverse|DF bit|Security association idle)")


def parse_profiles(lines: list[Line], settings: Settings) -> None:
    """``show crypto ipsec profile`` into ``settings.profiles``."""
    current: ProfileShow | None = None
    for line in lines:
        text = line.text.strip()
        if not text:
            continue
        if m := _PROFILE.match(text):
            current = ProfileShow(m.group(1), line.no)
            settings.profiles.append(current)
        elif current is not None and (m := _PROFILE_LIFE.match(text)):
            current.lifetime_kb = int(m.group(1)) if m.group(1) else None
            current.volume_disabled = m.group(1) is None
            current.lifetime_s = int(m.group(3))
        elif current is not None and (m := _PROFILE_PFS.match(text)):
            current.pfs = m.group(1)
        elif current is not None and (m := _PROFILE_TS.match(text)):
            current.transform_sets[m.group(1)] = " ".join(m.group(2).split())
        elif not _PROFILE_IGNORE.match(text):
            settings.unread.append(Unread(line.source, line.no, line.text,
                                          "not a line of show crypto ipsec profile"))


_SUITE = re.compile(r"^(?:Protection suite of priority (\d+)|Default protection suite)")
_POLICY_FIELD = re.compile(r"^(encryption algorithm|hash algorithm|authentication method|"
                           r"Diffie-Hellman group|lifetime):\s*(.*)$")


def parse_policies(lines: list[Line], settings: Settings) -> None:
    """``show crypto isakmp policy`` into ``settings.policies``."""
    current: PolicyShow | None = None
    for line in lines:
        text = line.text.strip()
        if not text or text in ("Global IKE policy", "Default IKE policy"):
            continue
        if m := _SUITE.match(text):
            current = PolicyShow(int(m.group(1) or 65536), line.no)
            settings.policies.append(current)
        elif current is not None and (m := _POLICY_FIELD.match(text)):
            key, value = m.group(1), m.group(2).strip()
            if key == "lifetime":
                life = re.match(r"(\d+) seconds", value)
                current.lifetime_s = int(life.group(1)) if life else None
            else:
                attr = {"encryption algorithm": "encryption", "hash algorithm": "hash",
                        "authentication method": "authentication",
                        "Diffie-Hellman group": "group"}[key]
                setattr(current, attr, value)
        elif not text.startswith(("encryption", "hash", "authentication", "Diffie", "lifetime")):
            settings.unread.append(Unread(line.source, line.no, line.text,
                                          "not a line of show crypto isakmp policy"))


def parse_config_block(lines: list[Line], settings: Settings) -> None:
    """A running-config (or sections of one) read by :func:`dmvpn.config.parse_config`,
    line numbers kept. A section that names parts not pasted (a profile, an
    interface) gives no model; its errors are reported as warnings."""
    if not lines:
        return
    numbered = [""] * lines[-1].no
    for line in lines:
        numbered[line.no - 1] = line.text
    source = lines[0].source
    text = "\n".join(numbered)
    result = parse_config(text, source)
    if not result.commands_in(text):  # a "!" or a stray word is no config
        return
    if result.config is not None:
        settings.configs.append(result.config)
        settings.config_texts.append("\n".join(numbered) + "\n")
    for err in result.errors:
        text = numbered[err.line - 1] if 0 < err.line <= len(numbered) else ""
        settings.warnings.append(Unread(source, err.line, text, f"config not used: {err.message}"))
    for warning in result.warnings:
        text = numbered[warning.line - 1] if 0 < warning.line <= len(numbered) else ""
        settings.unread.append(Unread(source, warning.line, text, warning.message))


@dataclass(frozen=True, slots=True)
class Lifetime:
    """The IPsec SA lifetime a router applies to a flow, and where it was
    learnt. ``kilobytes`` None: no volume limit."""

    seconds: int
    kilobytes: int | None
    source: str
    assumed: bool = False


def profile_name(crypto_map_tag: str) -> str:
    """``ENS_ipsec_profile-head-1-IPv4`` -> ``ENS_ipsec_profile``: IOS names a
    tunnel protection's crypto map after the profile."""
    return re.sub(r"-head-\d+(?:-IPv[46])?$", "", crypto_map_tag)


def lifetime_for(settings: Settings, crypto_map_tag: str) -> Lifetime | None:
    """The lifetime for SAs shown under ``crypto_map_tag``, from a config or a
    profile show; None when neither says."""
    name = profile_name(crypto_map_tag)
    for config in settings.configs:
        profile = config.ipsec_profiles.get(name)
        if profile is not None:
            return Lifetime(profile.lifetime_seconds, profile.lifetime_kilobytes,
                            f"{config.source}: crypto ipsec profile {name}")
        cmap = config.crypto_maps.get(crypto_map_tag)
        if cmap is not None and cmap.entries:
            e = cmap.entries[0]
            return Lifetime(e.lifetime_seconds, e.lifetime_kilobytes,
                            f"{config.source}: crypto map {crypto_map_tag}")
    for shown in settings.profiles:
        if shown.name == name and shown.lifetime_s is not None:
            return Lifetime(shown.lifetime_s, shown.lifetime_kb,
                            f"show crypto ipsec profile {name} (line {shown.line})")
    return None
