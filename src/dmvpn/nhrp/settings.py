"""The per-interface settings the NHRP engine runs with, from the parsed
configuration (``interface Tunnel`` + its ``ip nhrp`` lines), and the
routing view it asks (the router's overlay routing table).

Defaults are IOS's where known: holdtime 7200 s; registrations every
holdtime/3 unless ``ip nhrp registration timeout`` (RFC 2332 5.2.3 suggests
1/3); CIE MTU = the tunnel IP MTU (17916, or 17912 with a GRE key, as the
captures show, NHRP.md 2.3); ``ip nhrp redirect timeout`` 8 s between
indications for one (source, destination) pair (IOS's documented default as
recalled; [UNVERIFIED] in NHRP.md 6.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Protocol

from dmvpn.config.model import DEFAULT_NHRP_HOLDTIME, Interface, NhrpMap, NhrpServer

DEFAULT_REDIRECT_TIMEOUT = 8
TUNNEL_MTU_NO_KEY = 17916
TUNNEL_MTU_KEY = 17912


@dataclass(frozen=True, slots=True)
class NhrpSettings:
    """Everything one interface's NHRP engine needs to know."""

    interface: str
    tunnel_address: IPv4Address
    nbma_address: IPv4Address
    network_id: int = 1
    holdtime: int = DEFAULT_NHRP_HOLDTIME
    authentication: bytes | None = None
    nhs: tuple[NhrpServer, ...] = ()
    maps: tuple[NhrpMap, ...] = ()
    redirect: bool = False
    redirect_timeout: int = DEFAULT_REDIRECT_TIMEOUT
    shortcut: bool = False
    registration_timeout: int | None = None
    unique: bool = True
    mtu: int = TUNNEL_MTU_NO_KEY
    protected: bool = False
    protection_profile: str | None = None
    responder_address: IPv4Address | None = None  # ``ip nhrp responder``; None: the tunnel address
    multicast_dynamic: bool = False
    multicast_nbma: tuple[IPv4Address, ...] = field(default=())

    @property
    def registration_interval(self) -> float:
        """Seconds between registrations: the configured timeout or holdtime/3."""
        return float(self.registration_timeout or self.holdtime / 3)


def settings_from_interface(iface: Interface, interfaces: Mapping[str, Interface] | None = None) -> NhrpSettings | None:
    """The settings of a Tunnel interface with ``ip nhrp`` lines, or None.
    ``interfaces`` (the router's) resolves ``ip nhrp responder IFACE``."""
    tunnel, nhrp = iface.tunnel, iface.nhrp
    if tunnel is None or nhrp is None or iface.address is None or tunnel.source_address is None:
        return None
    responder = (interfaces or {}).get(nhrp.responder or "")
    default_mtu = TUNNEL_MTU_KEY if tunnel.key is not None else TUNNEL_MTU_NO_KEY
    return NhrpSettings(
        interface=iface.name,
        tunnel_address=iface.address.ip,
        nbma_address=tunnel.source_address,
        network_id=nhrp.network_id or 0,
        holdtime=nhrp.holdtime,
        authentication=nhrp.authentication.encode() if nhrp.authentication else None,
        nhs=nhrp.nhs,
        maps=nhrp.maps,
        redirect=nhrp.redirect,
        redirect_timeout=nhrp.redirect_timeout,
        shortcut=nhrp.shortcut,
        registration_timeout=nhrp.registration_timeout,
        unique=not nhrp.registration_no_unique,
        mtu=iface.mtu or default_mtu,
        protected=tunnel.protection_profile is not None,
        protection_profile=tunnel.protection_profile,
        responder_address=responder.address.ip if responder is not None and responder.address else None,
        multicast_dynamic=nhrp.multicast_dynamic,
        multicast_nbma=nhrp.multicast_nbma,
    )


@dataclass(frozen=True, slots=True)
class RouteLookup:
    """The router's answer for one destination: the matching prefix, its
    next hop (None when directly connected) and the interface it leaves by."""

    prefix: IPv4Network
    next_hop: IPv4Address | None
    interface: str


class RouteView(Protocol):
    """The overlay routing table as the NHRP engine sees it (read-only)."""

    def route_for(self, address: IPv4Address) -> RouteLookup | None:
        """The longest-prefix match for ``address``, or None."""
        ...
