"""What the router's send path needs about one NBMA peer of one tunnel,
worked out once (DESIGN.md "How data flows": GRE encapsulate -> pick the
outbound SA for that peer -> ESP -> send).

Everything a GRE packet to the peer needs except the SA follows from the
configuration: the tunnel's IPsec policy (``tunnel protection``), the GRE
host-pair selector the SA is negotiated for (RFC 4301 4.4.1.1, protocol
47), the underlay interface that owns the tunnel source, and the outer IPv4
headers (protocol 50 for transport-mode ESP, RFC 4303 3.1.1, or 47 for GRE
in clear) as :class:`~dmvpn.wire.ipv4.HeaderTemplate`.

The SA is the SAD's choice (:meth:`SecurityAssociationDatabase.outbound_for`)
remembered with the SAD's ``generation``: the choice can move only when an
SA is installed, activated or deleted, and each of those bumps the counter,
so a packet asks the SAD again only after one of them (a hard volume expiry
inside a batch included: the next packet sees the new generation).
``direct`` is that SA when the packet needs nothing but ESP behind a
fixed outer header, ``outer`` (transport mode, RFC 4303 3.1.1: the GRE
packet's header with protocol 50, or for ESP in UDP, RFC 3948 2.1, that
header with protocol 17 and the UDP header of the SA's ports, checksum
zero), and an underlay to leave by: the router's batch path then calls ESP
itself.
"""

from __future__ import annotations

from dmvpn.ike.proposals import ChildPolicy
from dmvpn.ipsec.sa import EspMode, SecurityAssociation, Selector
from dmvpn.ipsec.sad import SecurityAssociationDatabase
from dmvpn.wire.ipv4 import HeaderTemplate, header_template
from dmvpn.wire.udp import udp_header_template

_ESP, _GRE = 50, 47
#: TTL of the outer header of GRE packets (IOS sends tunnel packets with 255).
TUNNEL_TTL = 255


class PeerPath:
    """The fixed parts of sending GRE from ``local`` to NBMA ``peer``:
    ``underlay`` is the interface name that owns ``local`` (None: no such
    interface, the packet is dropped), ``policy`` the tunnel's IPsec policy
    (None: GRE goes in clear)."""

    __slots__ = ("direct", "esp_header", "generation", "gre_header", "local", "outer", "peer", "policy", "sa",
                 "selector", "underlay")

    def __init__(self, local: str, peer: str, underlay: str | None, policy: ChildPolicy | None,
                 selector: Selector) -> None:
        self.local = local
        self.peer = peer
        self.underlay = underlay
        self.policy = policy
        self.selector = selector
        self.esp_header: HeaderTemplate = header_template(local, peer, _ESP, TUNNEL_TTL)
        self.gre_header: HeaderTemplate = header_template(local, peer, _GRE, TUNNEL_TTL)
        #: the SAD's choice and the SAD generation it was made at (-1: not yet)
        self.sa: SecurityAssociation | None = None
        self.direct: SecurityAssociation | None = None
        self.outer: HeaderTemplate = self.esp_header
        self.generation = -1

    def outbound_sa(self, sad: SecurityAssociationDatabase) -> SecurityAssociation | None:
        """The SA to protect the next packet with (None: there is none)."""
        if self.generation != sad.generation:
            sa = self.sa = sad.outbound_for(self.peer, self.selector)
            self.generation = sad.generation
            if sa is None or sa.mode is not EspMode.TRANSPORT or self.underlay is None:
                self.direct = None
            else:
                self.direct = sa
                ports = sa.udp_encap
                self.outer = (self.esp_header if ports is None
                              else udp_header_template(self.local, self.peer, ports[0], ports[1], TUNNEL_TTL))
        return self.sa
