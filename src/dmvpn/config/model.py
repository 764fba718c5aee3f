"""The typed configuration model: what a router's IOS config means.

Everything here is filled in and validated by :mod:`dmvpn.config.parser`:
IOS defaults are applied, names are resolved, addresses are ``ipaddress``
objects and algorithms are the IKEv1 / IPsec DOI registry enums, so the IKE,
ESP, tunnel and NHRP code can use the values directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from dmvpn.config.algorithms import (
    DhGroup,
    EncapsulationMode,
    EncryptionAlgorithm,
    EspAuthAlgorithm,
    EspTransformId,
    HashAlgorithm,
    IkeAuthMethod,
)
from dmvpn.config.ikev2_model import Ikev2Config
from dmvpn.config.routing_model import RoutingConfig

#: Cisco IPsec SA lifetime defaults (``crypto ipsec security-association lifetime``).
DEFAULT_SA_LIFETIME_SECONDS = 3600
DEFAULT_SA_LIFETIME_KILOBYTES = 4_608_000
#: ISAKMP SA lifetime default (``lifetime`` in ``crypto isakmp policy``).
DEFAULT_ISAKMP_LIFETIME = 86_400
#: ``crypto isakmp keepalive S`` without a retry interval retries every 2 s.
DEFAULT_KEEPALIVE_RETRY = 2
#: Cisco's default ``ip nhrp holdtime``.
DEFAULT_NHRP_HOLDTIME = 7200
#: ``ip nhrp redirect timeout``: seconds between Traffic Indications for one
#: (source, destination) pair; IOS documents 2..30, default 8 [UNVERIFIED].
DEFAULT_NHRP_REDIRECT_TIMEOUT = 8
#: Anti-replay window when ``crypto ipsec security-association replay
#: window-size`` is not set. Cisco documents 64 for classic IOS; the seed's
#: IOS-XE ASR prints ``replay window size: 1024`` with no such line, and the
#: seed is the platform this project models.
DEFAULT_REPLAY_WINDOW = 1024
#: IOS hostname when the config has no ``hostname`` line.
DEFAULT_HOSTNAME = "Router"


class KeepaliveMode(Enum):
    """``crypto isakmp keepalive`` mode: DPD only when traffic needs it
    (on-demand, the default) or at a fixed interval (RFC 3706 section 5)."""

    ON_DEMAND = "on-demand"
    PERIODIC = "periodic"


class TunnelMode(Enum):
    """``tunnel mode``: point-to-point GRE (IOS default) or multipoint GRE."""

    GRE_IP = "gre ip"
    GRE_MULTIPOINT = "gre multipoint"


class AclAction(Enum):
    PERMIT = "permit"
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class IsakmpPolicy:
    """``crypto isakmp policy N``: one phase-1 proposal (RFC 2409 section 5).

    ``defaulted`` names the lines the policy omitted and that took the IOS
    default (``encryption``, ``hash``, ``authentication``, ``group``,
    ``lifetime``)."""

    priority: int
    encryption: EncryptionAlgorithm
    key_bits: int | None
    hash: HashAlgorithm
    authentication: IkeAuthMethod
    group: DhGroup
    lifetime: int
    defaulted: tuple[str, ...] = ()
    line: int = 0

    @property
    def usable(self) -> bool:
        """True when this stack implements every attribute of the policy
        (AES or 3DES, pre-shared keys)."""
        return (
            self.encryption in (EncryptionAlgorithm.AES_CBC, EncryptionAlgorithm.DES3_CBC)
            and self.authentication is IkeAuthMethod.PRE_SHARED_KEY
        )


@dataclass(frozen=True, slots=True)
class IsakmpKey:
    """``crypto isakmp key K address A [M]``; ``address 0.0.0.0`` with no
    mask is the wildcard key."""

    key: str
    address: IPv4Address
    mask: IPv4Address
    line: int = 0

    @property
    def network(self) -> IPv4Network:
        return IPv4Network(f"{self.address}/{self.mask}", strict=False)


@dataclass(frozen=True, slots=True)
class IsakmpKeepalive:
    """``crypto isakmp keepalive S [R] [periodic|on-demand]`` (DPD, RFC 3706)."""

    seconds: int
    retry: int = DEFAULT_KEEPALIVE_RETRY
    mode: KeepaliveMode = KeepaliveMode.ON_DEMAND
    line: int = 0


@dataclass(frozen=True, slots=True)
class TransformSet:
    """``crypto ipsec transform-set NAME ...``: one ESP proposal.

    ``cipher`` is ESP_NULL for an integrity-only set; ``auth`` is None for
    combined-mode (GCM/GMAC) sets; ``key_bits`` is None for fixed-key
    ciphers (3DES, NULL). ``ios_text`` is the transform list as IOS's show
    commands print it, cipher first: ``"esp-aes esp-sha256-hmac"``,
    ``"esp-256-aes esp-sha-hmac"`` (for ``esp-aes 256``), ``"esp-gcm 256"``."""

    name: str
    cipher: EspTransformId
    key_bits: int | None
    auth: EspAuthAlgorithm | None
    mode: EncapsulationMode
    ios_text: str
    line: int = 0


@dataclass(frozen=True, slots=True)
class SaLifetime:
    """An IPsec SA lifetime; ``kilobytes`` None means the volume limit is
    disabled (``kilobytes disable``)."""

    seconds: int = DEFAULT_SA_LIFETIME_SECONDS
    kilobytes: int | None = DEFAULT_SA_LIFETIME_KILOBYTES

    def __str__(self) -> str:
        kb = f"{self.kilobytes} KB" if self.kilobytes is not None else "no volume limit"
        return f"{self.seconds} s / {kb}"


@dataclass(frozen=True, slots=True)
class IpsecProfile:
    """``crypto ipsec profile NAME`` as used by ``tunnel protection``.

    Lifetimes not set in the profile are the global ones. ``idle_time`` is
    ``set security-association idle-time`` (None: SAs are not torn down
    when idle)."""

    name: str
    transform_sets: tuple[str, ...]
    lifetime_seconds: int
    lifetime_kilobytes: int | None
    pfs_group: DhGroup | None = None
    idle_time: int | None = None
    responder_only: bool = False
    line: int = 0
    ikev2_profile: str | None = None

    @property
    def lifetime(self) -> SaLifetime:
        return SaLifetime(self.lifetime_seconds, self.lifetime_kilobytes)


@dataclass(frozen=True, slots=True)
class CryptoMapEntry:
    """``crypto map NAME SEQ ipsec-isakmp``: a site-to-site policy entry."""

    map_name: str
    seq: int
    peers: tuple[IPv4Address, ...]
    transform_sets: tuple[str, ...]
    acl: str | None
    lifetime_seconds: int
    lifetime_kilobytes: int | None
    pfs_group: DhGroup | None = None
    line: int = 0

    @property
    def lifetime(self) -> SaLifetime:
        return SaLifetime(self.lifetime_seconds, self.lifetime_kilobytes)


@dataclass(frozen=True, slots=True)
class CryptoMap:
    """All entries of one crypto map, by ascending sequence number."""

    name: str
    entries: tuple[CryptoMapEntry, ...]
    local_address: str | None = None


@dataclass(frozen=True, slots=True)
class PortMatch:
    """A TCP/UDP port condition of an extended ACL entry (eq, neq, lt, gt,
    range); ``low`` == ``high`` except for ``range``."""

    op: str
    low: int
    high: int

    def matches(self, port: int) -> bool:
        if self.op == "eq":
            return port == self.low
        if self.op == "neq":
            return port != self.low
        if self.op == "lt":
            return port < self.low
        if self.op == "gt":
            return port > self.low
        return self.low <= port <= self.high


@dataclass(frozen=True, slots=True)
class AclEntry:
    """One permit/deny line. ``protocol`` None means any IP protocol."""

    action: AclAction
    protocol: int | None
    source: IPv4Network
    destination: IPv4Network
    source_ports: PortMatch | None = None
    destination_ports: PortMatch | None = None
    line: int = 0


@dataclass(frozen=True, slots=True)
class AccessList:
    """A numbered or named ACL; standard lists match on the source only."""

    name: str
    extended: bool
    entries: tuple[AclEntry, ...]


@dataclass(frozen=True, slots=True)
class NhrpServer:
    """``ip nhrp nhs ADDR [nbma NBMA] [multicast] [priority P]``.

    ``address`` None is ``nhs dynamic`` (learnt from the NBMA address);
    ``nbma`` comes from the line or from a matching ``ip nhrp map``."""

    address: IPv4Address | None
    nbma: IPv4Address | None
    multicast: bool = False
    priority: int = 0
    line: int = 0


@dataclass(frozen=True, slots=True)
class NhrpMap:
    """``ip nhrp map OVERLAY NBMA``: a static overlay -> NBMA mapping."""

    overlay: IPv4Address
    nbma: IPv4Address
    line: int = 0


@dataclass(frozen=True, slots=True)
class NhrpConfig:
    """The ``ip nhrp ...`` lines of an interface (RFC 2332, Cisco DMVPN)."""

    network_id: int | None = None
    holdtime: int = DEFAULT_NHRP_HOLDTIME
    authentication: str | None = None
    redirect: bool = False
    shortcut: bool = False
    nhs: tuple[NhrpServer, ...] = ()
    maps: tuple[NhrpMap, ...] = ()
    multicast_nbma: tuple[IPv4Address, ...] = ()
    multicast_dynamic: bool = False
    registration_timeout: int | None = None
    registration_no_unique: bool = False
    redirect_timeout: int = DEFAULT_NHRP_REDIRECT_TIMEOUT
    responder: str | None = None  # ``ip nhrp responder IFACE``: whose address answers


@dataclass(frozen=True, slots=True)
class TunnelConfig:
    """The ``tunnel ...`` lines of a Tunnel interface.

    ``source_address`` is the resolved underlay address (the source
    interface's primary address, or the literal ``tunnel source A``)."""

    mode: TunnelMode = TunnelMode.GRE_IP
    source_interface: str | None = None
    source_address: IPv4Address | None = None
    destination: IPv4Address | None = None
    key: int | None = None
    protection_profile: str | None = None
    protection_shared: bool = False


@dataclass(frozen=True, slots=True)
class Interface:
    """``interface NAME``; ``tunnel`` is set for Tunnel interfaces only,
    ``nhrp`` when any ``ip nhrp`` line is present."""

    name: str
    address: IPv4Interface | None = None
    mtu: int | None = None
    shutdown: bool = False
    crypto_map: str | None = None
    tunnel: TunnelConfig | None = None
    nhrp: NhrpConfig | None = None
    line: int = 0


@dataclass(frozen=True, slots=True)
class StaticRoute:
    """``ip route PREFIX MASK {NEXTHOP | IFACE [NEXTHOP]} [DIST] [tag T]
    [name N] [permanent]``."""

    prefix: IPv4Network
    next_hop: IPv4Address | None
    interface: str | None
    distance: int = 1
    tag: int | None = None
    name: str | None = None
    permanent: bool = False
    line: int = 0


@dataclass(frozen=True, slots=True)
class RouterConfig:
    """One router's configuration. Mappings are keyed by the IOS name;
    interface names are canonical (``GigabitEthernet0/0/2``, not ``Gi0/0/2``)."""

    source: str
    hostname: str = DEFAULT_HOSTNAME
    isakmp_policies: tuple[IsakmpPolicy, ...] = ()
    isakmp_keys: tuple[IsakmpKey, ...] = ()
    isakmp_keepalive: IsakmpKeepalive | None = None
    isakmp_nat_keepalive: int | None = None
    invalid_spi_recovery: bool = False
    transform_sets: dict[str, TransformSet] = field(default_factory=dict)
    ipsec_sa_lifetime: SaLifetime = SaLifetime()
    replay_window_size: int | None = DEFAULT_REPLAY_WINDOW
    ipsec_profiles: dict[str, IpsecProfile] = field(default_factory=dict)
    crypto_maps: dict[str, CryptoMap] = field(default_factory=dict)
    acls: dict[str, AccessList] = field(default_factory=dict)
    interfaces: dict[str, Interface] = field(default_factory=dict)
    routes: tuple[StaticRoute, ...] = ()
    ikev2: Ikev2Config = field(default_factory=Ikev2Config)
    routing: RoutingConfig = field(default_factory=RoutingConfig)

    def psk_for(self, peer: IPv4Address | str) -> str | None:
        """The pre-shared key for ``peer``: the ``crypto isakmp key`` whose
        address/mask matches it most specifically (0.0.0.0 is the wildcard)."""
        ip = IPv4Address(peer)
        best: IsakmpKey | None = None
        for k in self.isakmp_keys:
            if ip in k.network and (best is None or k.network.prefixlen > best.network.prefixlen):
                best = k
        return best.key if best else None

    def tunnels(self) -> list[Interface]:
        """The interfaces that carry ``tunnel`` settings, in name order."""
        return [i for _, i in sorted(self.interfaces.items()) if i.tunnel is not None]

    def interface_address(self, name: str) -> IPv4Address | None:
        """The primary address of interface ``name`` (canonical name), if any."""
        iface = self.interfaces.get(name)
        return iface.address.ip if iface and iface.address else None
