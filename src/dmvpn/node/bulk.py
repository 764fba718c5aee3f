"""What bulk traffic asks of a router: the node-side protocol of the lab's
fluid flows (:mod:`dmvpn.lab.fluid`, DESIGN.md "Time, lifetimes and rekey").

A fluid flow is not packetised: it credits the bytes it carries to the
sender's outbound SA and the receiver's inbound SA with the same SPI, and
wakes the routers when an SA will cross a volume limit. It does that only
through :class:`BulkPort`, which :class:`~dmvpn.node.router.Router`
implements, never through the router's tables or its SAD: the path to a
destination is what the router's own transmit path would choose
(:class:`TunnelPath`: routing table, then the tunnel's NBMA map).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from dmvpn.ike.proposals import ChildPolicy
from dmvpn.ipsec.sa import SecurityAssociation, Selector


@dataclass(frozen=True, slots=True)
class TunnelPath:
    """How the router sends overlay traffic to one destination: out of
    tunnel ``interface`` to NBMA ``peer`` from ``local``, protected by an
    SA for ``selector`` that IKE negotiates with ``policy`` (None: the
    tunnel is not protected); ``gre_bytes`` is the GRE header each packet
    carries (RFC 2784 plus the RFC 2890 key)."""

    interface: str
    peer: str
    local: str
    selector: Selector
    policy: ChildPolicy | None
    gre_bytes: int


class BulkPort(Protocol):
    """The router as bulk traffic sees it."""

    name: str

    def tunnel_path(self, overlay_destination: str) -> TunnelPath:
        """The path to ``overlay_destination``; ValueError if there is none."""
        ...

    def outbound_sa(self, path: TunnelPath) -> SecurityAssociation | None:
        """The SA the transmit path would use now on ``path``."""
        ...

    def inbound_sa(self, spi: int) -> SecurityAssociation | None:
        """The installed inbound SA with ``spi``."""
        ...

    def request_sa(self, now: float, path: TunnelPath) -> None:
        """Ask key management for an SA on ``path`` (as a dropped packet would)."""
        ...

    def credit_sent(self, now: float, sa: SecurityAssociation, peer: str, nbytes: int, packets: int) -> bool:
        """Account bytes sent through ``sa`` to ``peer``; False (nothing
        credited) if ``sa`` is no longer installed."""
        ...

    def credit_received(self, now: float, sa: SecurityAssociation, peer: str, nbytes: int, packets: int) -> None:
        """Account bytes received through inbound ``sa`` from ``peer``."""
        ...

    def next_volume_crossing(self, now: float, sa: SecurityAssociation, byte_rate: float) -> float | None:
        """When ``sa``, credited ``byte_rate`` bytes/s from ``now``, crosses its next volume limit."""
        ...

    def add_fluid(self, flow: BulkFlow) -> None:
        """Sync ``flow`` at every interaction and wake for its events."""
        ...


class BulkFlow(Protocol):
    """What the router calls on a bulk flow it sends or receives."""

    def sync(self, router: BulkPort, now: float) -> None:
        """Credit everything up to ``now`` for ``router``'s end (before the
        router handles anything at ``now``)."""
        ...

    def after_interaction(self, router: BulkPort, now: float) -> None:
        """The router has handled something at ``now`` (its SAs may have changed)."""
        ...

    def next_event(self, router: BulkPort) -> float | None:
        """When ``router`` must sync next, or None."""
        ...
