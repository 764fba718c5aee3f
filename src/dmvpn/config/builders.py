"""Mutable per-block state while a config is being read.

Each ``crypto ...``/``interface``/``ip access-list`` block collects its
lines here; :mod:`dmvpn.config.parser` turns the builders into the frozen
model once the whole file is read (references can point forward)."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface

from dmvpn.config.algorithms import (
    DhGroup,
    EncapsulationMode,
    EncryptionAlgorithm,
    HashAlgorithm,
    IkeAuthMethod,
)
from dmvpn.config.model import AclEntry, NhrpMap, NhrpServer, TunnelMode
from dmvpn.config.transforms import TransformList
from dmvpn.config.values import LineError


@dataclass
class Settings:
    """Remembers where each single-valued setting of a block was given, so
    a second ``hash`` line in one policy is reported as a duplicate."""

    lines: dict[str, int] = field(default_factory=dict)

    def once(self, key: str, line: int) -> None:
        prev = self.lines.get(key)
        if prev is not None:
            raise LineError(f"duplicate '{key}' (already set at line {prev})")
        self.lines[key] = line


@dataclass
class PolicyBuilder:
    priority: int
    line: int
    seen: Settings = field(default_factory=Settings)
    encryption: EncryptionAlgorithm | None = None
    key_bits: int | None = None
    hash: HashAlgorithm | None = None
    authentication: IkeAuthMethod | None = None
    group: DhGroup | None = None
    lifetime: int | None = None


@dataclass
class TransformSetBuilder:
    name: str
    transforms: TransformList
    line: int
    seen: Settings = field(default_factory=Settings)
    mode: EncapsulationMode = EncapsulationMode.TUNNEL


@dataclass
class SaSettings:
    """The ``set ...`` lines shared by IPsec profiles and crypto map entries."""

    seen: Settings = field(default_factory=Settings)
    transform_sets: list[tuple[str, int]] = field(default_factory=list)
    lifetime_seconds: int | None = None
    lifetime_kilobytes: int | None = None
    kilobytes_disabled: bool = False
    pfs_group: DhGroup | None = None


@dataclass
class ProfileBuilder:
    name: str
    line: int
    sa: SaSettings = field(default_factory=SaSettings)
    idle_time: int | None = None
    responder_only: bool = False
    ikev2_profile: tuple[str, int] | None = None


@dataclass
class MapEntryBuilder:
    map_name: str
    seq: int
    line: int
    sa: SaSettings = field(default_factory=SaSettings)
    peers: list[IPv4Address] = field(default_factory=list)
    acl: tuple[str, int] | None = None


@dataclass
class AclBuilder:
    name: str
    extended: bool
    line: int
    entries: list[AclEntry] = field(default_factory=list)


@dataclass
class InterfaceBuilder:
    name: str
    line: int
    seen: Settings = field(default_factory=Settings)
    address: IPv4Interface | None = None
    mtu: int | None = None
    shutdown: bool = False
    crypto_map: tuple[str, int] | None = None
    # tunnel
    has_tunnel_lines: bool = False
    tunnel_mode: TunnelMode = TunnelMode.GRE_IP
    tunnel_source: tuple[str, int] | None = None
    tunnel_destination: IPv4Address | None = None
    tunnel_destination_line: int = 0
    tunnel_key: int | None = None
    protection: tuple[str, int] | None = None
    protection_shared: bool = False
    # nhrp
    has_nhrp_lines: bool = False
    nhrp_network_id: int | None = None
    nhrp_holdtime: int | None = None
    nhrp_authentication: str | None = None
    nhrp_redirect: bool = False
    nhrp_redirect_timeout: int | None = None
    nhrp_responder: str | None = None
    nhrp_shortcut: bool = False
    nhrp_nhs: list[NhrpServer] = field(default_factory=list)
    nhrp_maps: list[NhrpMap] = field(default_factory=list)
    nhrp_multicast: list[IPv4Address] = field(default_factory=list)
    nhrp_multicast_dynamic: bool = False
    nhrp_registration_timeout: int | None = None
    nhrp_registration_no_unique: bool = False

    @property
    def is_tunnel(self) -> bool:
        return self.name.startswith("Tunnel")
