"""The routing part of a router's configuration: OSPFv2 (RFC 2328) and
BGP-4 (RFC 4271) as IOS configures them.

This stack does not run OSPF or BGP itself: in real mode the model is
translated into an FRR configuration (:mod:`dmvpn.routing.frr_config`) and
FRR's daemons run beside the router. The values are those IOS would use,
defaults applied where IOS's defaults and FRR's differ only in the name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from ipaddress import IPv4Address, IPv4Network

#: OSPF interface timers when the config sets none (RFC 2328 appendix C.3,
#: IOS defaults for broadcast and point-to-point networks).
DEFAULT_HELLO_INTERVAL = 10
#: IOS's dead interval is four hellos unless ``ip ospf dead-interval`` says otherwise.
DEAD_INTERVAL_FACTOR = 4
#: ``ip ospf priority`` default (RFC 2328 section 9, Router Priority).
DEFAULT_OSPF_PRIORITY = 1


class OspfNetworkType(Enum):
    """``ip ospf network ...``: the RFC 2328 section 1.2 network types as
    IOS names them; the value is the IOS (and FRR) keyword."""

    BROADCAST = "broadcast"
    NON_BROADCAST = "non-broadcast"
    POINT_TO_POINT = "point-to-point"
    POINT_TO_MULTIPOINT = "point-to-multipoint"


@dataclass(frozen=True, slots=True)
class OspfInterface:
    """The ``ip ospf ...`` lines of one interface; ``None`` means "the IOS
    default" (the network type IOS derives from the interface, the timers
    of that type)."""

    interface: str
    process: int | None = None  # ``ip ospf N area A``
    area: IPv4Address | None = None
    network_type: OspfNetworkType | None = None
    priority: int | None = None
    hello_interval: int | None = None
    dead_interval: int | None = None
    #: RxmtInterval (RFC 2328 appendix C.3): seconds between retransmissions of an unacknowledged LSA.
    retransmit_interval: int | None = None
    cost: int | None = None
    mtu_ignore: bool = False
    line: int = 0


@dataclass(frozen=True, slots=True)
class OspfNetwork:
    """``network ADDRESS WILDCARD area AREA`` (RFC 2328 appendix C.2)."""

    prefix: IPv4Network
    area: IPv4Address
    line: int = 0


@dataclass(frozen=True, slots=True)
class OspfProcess:
    """``router ospf N``. ``passive_default`` is ``passive-interface
    default``; ``passive`` and ``not_passive`` list the interfaces named by
    ``passive-interface IFACE`` and ``no passive-interface IFACE``."""

    process_id: int
    router_id: IPv4Address | None = None
    networks: tuple[OspfNetwork, ...] = ()
    passive_default: bool = False
    passive: tuple[str, ...] = ()
    not_passive: tuple[str, ...] = ()
    redistribute_connected: bool = False
    redistribute_static: bool = False
    default_originate: bool = False
    line: int = 0

    def is_passive(self, interface: str) -> bool:
        if self.passive_default:
            return interface not in self.not_passive
        return interface in self.passive


@dataclass(frozen=True, slots=True)
class BgpNeighbor:
    """``neighbor ADDRESS|PEER-GROUP ...``: one configured peer or peer
    group (RFC 4271 section 8); ``remote_as`` None inherits the group's."""

    name: str  # the address, or the peer group's name
    is_group: bool = False
    remote_as: int | None = None
    peer_group: str | None = None
    update_source: str | None = None
    route_reflector_client: bool = False
    next_hop_self: bool = False
    keepalive: int | None = None
    holdtime: int | None = None
    description: str | None = None
    line: int = 0


@dataclass(frozen=True, slots=True)
class BgpListenRange:
    """``bgp listen range PREFIX peer-group NAME``: dynamic neighbors, what
    a DMVPN hub uses so that spokes need no line of their own."""

    prefix: IPv4Network
    peer_group: str
    line: int = 0


@dataclass(frozen=True, slots=True)
class BgpProcess:
    """``router bgp ASN``."""

    asn: int
    router_id: IPv4Address | None = None
    neighbors: tuple[BgpNeighbor, ...] = ()
    listen_ranges: tuple[BgpListenRange, ...] = ()
    listen_limit: int | None = None
    networks: tuple[IPv4Network, ...] = ()
    redistribute_connected: bool = False
    redistribute_static: bool = False
    line: int = 0

    def neighbor(self, name: str) -> BgpNeighbor | None:
        return next((n for n in self.neighbors if n.name == name), None)


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    """All routing protocol settings of one router; ``ospf_interfaces`` is
    keyed by canonical IOS interface name."""

    ospf: tuple[OspfProcess, ...] = ()
    ospf_interfaces: dict[str, OspfInterface] = field(default_factory=dict)
    bgp: BgpProcess | None = None

    @property
    def empty(self) -> bool:
        return not self.ospf and not self.ospf_interfaces and self.bgp is None
