"""What the NHRP engine asks of the router (its outputs), as plain data.

The router drains :meth:`NhrpEngine.poll_outputs` after every call and acts:

* :class:`SendNhrp`: GRE-encapsulate ``packet`` (protocol 0x2001, the
  tunnel key) toward NBMA ``nbma``, protected by the SA to that peer when
  the tunnel has ``tunnel protection``. The engine has already held it back
  until :meth:`NhrpEngine.sa_up` for that NBMA (NHRP.md section 1).
* :class:`NeedSa`: bring up IKE and an SA pair to ``nbma``; NHRP to that
  peer waits for it.
* :class:`MappingAdded` / :class:`EntryGone`: an overlay address now maps
  to an NBMA address / no longer does (the router may tear down SAs to
  ``nbma`` when no entry uses it, as IOS does).
* :class:`RouteAdded` / :class:`RouteRemoved`: an NHRP route (IOS code
  ``H``, ``override`` False) or a next-hop override of an existing route
  (``%``, ``override`` True) on ``interface``.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network


@dataclass(frozen=True, slots=True)
class SendNhrp:
    """Send one NHRP packet (bytes after the GRE header) to NBMA ``nbma``."""

    nbma: IPv4Address
    packet: bytes
    packet_type: int


@dataclass(frozen=True, slots=True)
class NeedSa:
    """Bring up IPsec to ``nbma`` before NHRP can be sent there."""

    nbma: IPv4Address


@dataclass(frozen=True, slots=True)
class MappingAdded:
    """Overlay ``address`` is reachable at NBMA ``nbma`` on ``interface``."""

    address: IPv4Address
    nbma: IPv4Address
    interface: str


@dataclass(frozen=True, slots=True)
class EntryGone:
    """The entry mapping ``address`` to ``nbma`` went away."""

    address: IPv4Address
    nbma: IPv4Address
    interface: str


@dataclass(frozen=True, slots=True)
class RouteAdded:
    """An NHRP route ``prefix via next_hop`` (H) or a next-hop override (%)."""

    prefix: IPv4Network
    next_hop: IPv4Address
    interface: str
    override: bool


@dataclass(frozen=True, slots=True)
class RouteRemoved:
    """The NHRP route or next-hop override for ``prefix`` is gone."""

    prefix: IPv4Network
    next_hop: IPv4Address
    interface: str
    override: bool


NhrpOutput = SendNhrp | NeedSa | MappingAdded | EntryGone | RouteAdded | RouteRemoved
