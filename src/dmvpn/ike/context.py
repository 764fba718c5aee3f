"""What the IKEv1 exchanges share, declared: the context each task is given.

charon hands each task its ``ike_sa_t`` and the daemon's services; here a
task (:mod:`~dmvpn.ike.main_mode`, :mod:`~dmvpn.ike.quick_mode`,
:mod:`~dmvpn.ike.informational`, :mod:`~dmvpn.ike.rekey`) is given an
:class:`Ikev1Context`: the configuration, the SAD, randomness, the behaviour
profile, the shared :class:`~dmvpn.ike.transport.IkeTransport`, the ISAKMP
SAs and the IPsec SA pairs (:class:`ChildTable`), and the logging and
sending helpers every exchange uses. What a task needs from another task is
a small Protocol in its own module, which the engine implements.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count
from typing import Any, ClassVar, TypeVar

from dmvpn.config import RouterConfig
from dmvpn.crypto.ike_algorithms import hash_size
from dmvpn.ike.isakmp_sa import ChildSa, IsakmpSa
from dmvpn.ike.manager import Datagram
from dmvpn.ike.profiles import BehaviourProfile
from dmvpn.ike.proposals import ChildPolicy
from dmvpn.ike.states import ChildState, QuickModeState
from dmvpn.ike.transport import IkeTransport, TimerHandle
from dmvpn.ipsec.sa import Selector
from dmvpn.ipsec.sad import SecurityAssociationDatabase
from dmvpn.sansio import RandomSource

#: Failed negotiations for a flow are not retried on traffic before this many seconds.
ACQUIRE_HOLDOFF = 10.0
FIRST_CONN_ID = 1001
#: The smallest SPI a negotiation may use (RFC 4303 section 2.1: 1-255 are reserved).
MIN_SPI = 256

_T = TypeVar("_T")

TrafficProbe = Callable[[str], "tuple[float | None, float | None]"]
Flow = tuple[str, Selector]

#: Quick Mode states in which a negotiation for a flow is still running.
_NEGOTIATING = (QuickModeState.IKE_QM_I_QM1, QuickModeState.IKE_QM_SPI_STARVE,
                QuickModeState.IKE_QM_IPSEC_INSTALL_AWAIT, QuickModeState.IKE_QM_R_QM2)


@dataclass(eq=False)
class ChildTable:
    """The IPsec SA pairs the engine holds, indexed by inbound and outbound SPI,
    and the inbound SPIs handed out to running Quick Modes."""

    pairs: list[ChildSa] = field(default_factory=list)
    by_spi_in: dict[int, ChildSa] = field(default_factory=dict)
    by_spi_out: dict[int, ChildSa] = field(default_factory=dict)
    reserved_spis: set[int] = field(default_factory=set)

    def add(self, child: ChildSa) -> None:
        self.pairs.append(child)
        self.by_spi_in[child.sa_in.spi] = child
        self.by_spi_out[child.sa_out.spi] = child

    def remove(self, child: ChildSa) -> None:
        self.pairs.remove(child)
        self.by_spi_in.pop(child.sa_in.spi, None)
        self.by_spi_out.pop(child.sa_out.spi, None)

    def current(self, flow: Flow) -> ChildSa | None:
        """The newest live pair for ``flow`` that is not a collision loser."""
        best = None
        for child in self.pairs:
            if child.flow == flow and child.state in (ChildState.ACTIVE, ChildState.REKEYING) and not child.loser:
                best = child
        return best


@dataclass(eq=False)
class IkeContext:
    """What every IKE engine's parts share, whatever the version: the
    configuration, the SAD, randomness, the behaviour profile, the child
    policies, the traffic probe, the transport, the SA pairs and the
    acquire hold-off (the SA tables of each version are in its subclass)."""

    #: Extra fields of the ``ipsec`` SA events (the lab tells the versions apart by them).
    EVENT_FIELDS: ClassVar[dict[str, str]] = {}

    name: str
    config: RouterConfig
    sad: SecurityAssociationDatabase
    random: RandomSource
    profile: BehaviourProfile
    child_policies: list[ChildPolicy]
    traffic: TrafficProbe
    transport: IkeTransport
    #: Claim a NAT in front of this router (see the engines' ``force_nat_t``).
    force_nat_t: bool = False
    children: ChildTable = field(default_factory=ChildTable)
    #: Flows whose negotiation failed, and until when acquires for them are ignored.
    holdoff: dict[Flow, float] = field(default_factory=dict)

    def sa_event(self, now: float, what: str, child: ChildSa) -> None:
        """A machine-readable SA lifecycle event (category ``ipsec``) for the lab."""
        self.transport.event(now, f"IPsec SA pair {what}: in 0x{child.sa_in.spi:X} "
                                  f"out 0x{child.sa_out.spi:X} peer {child.peer} ({child.reason.value})",
                             {"what": what, "spi_in": child.sa_in.spi, "spi_out": child.sa_out.spi,
                              "peer": child.peer, "initiator": child.initiator,
                              "reason": child.reason.value, "loser": child.loser, **self.EVENT_FIELDS},
                             category="ipsec")

    def schedule(self, t: float, fn: Callable[[float], None]) -> TimerHandle:
        """Call ``fn(now)`` at ``t``, on the transport's timers."""
        return self.transport.schedule(t, fn)

    def next_lifetime_check(self, now: float) -> float:
        """When IOS's periodic SA lifetime check runs next, at this router's
        own phase (the profile's period, jittered)."""
        p = self.profile
        assert p.lifetime_check_period is not None
        jitter = p.lifetime_check_jitter
        return now + p.lifetime_check_period * (1.0 + self.random.uniform(-jitter, jitter))


@dataclass(eq=False)
class Ikev1Context(IkeContext):
    """The state and services one IKEv1 engine's tasks share."""

    sas: list[IsakmpSa] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=lambda: {"rekeys_started": 0, "collisions": 0,
                                                           "p1_failures": 0, "qm_failures": 0,
                                                           "qm_limit_drops": 0})
    #: When each peer last sent us an IKE message (for DPD, RFC 3706).
    last_heard: dict[str, float] = field(default_factory=dict)
    conn_ids: count[int] = field(default_factory=lambda: count(FIRST_CONN_ID))

    # ------------------------------------------------------------ logging
    def log(self, now: float, conn_id: int, text: str, facility: str = "ISAKMP", **fields: Any) -> None:
        """A ``debug crypto isakmp`` line (only when debugging is on)."""
        if self.transport.debug:
            fields["facility"] = facility
            fields["conn_id"] = conn_id
            self.transport.debug_line(now, f"({conn_id}):{text}", fields)

    def syslog(self, now: float, tag: str, text: str, **fields: Any) -> None:
        """A syslog message (always logged, like IOS's %CRYPTO-... lines)."""
        fields["facility"] = tag
        self.transport.event(now, text, fields)

    # ------------------------------------------------------------ timers and sending
    def call_at(self, t: float, fn: Callable[[float, _T], None], arg: _T) -> TimerHandle:
        """Call ``fn(now, arg)`` at ``t`` (``arg`` bound now, not when it fires)."""
        return self.transport.schedule(t, lambda now: fn(now, arg))

    def send_raw(self, now: float, sa: IsakmpSa, wire: bytes) -> None:
        """One ISAKMP message to the peer of ``sa``, on the SA's ports."""
        self.transport.send(Datagram(sa.local, sa.local_port, sa.peer, sa.peer_port, wire))
        cid = sa.conn_id if sa.established else 0
        self.log(now, cid, f"sending packet to {sa.peer} my_port {sa.local_port} peer_port {sa.peer_port} "
                           f"({sa.role}) {sa.state.display}", facility="ISAKMP-PAK")
        self.log(now, cid, "Sending an IKE IPv4 Packet.")

    # ------------------------------------------------------------ lookups
    def isakmp_for(self, peer: str) -> IsakmpSa | None:
        """The newest established, not replaced ISAKMP SA with ``peer``."""
        best = None
        for sa in self.sas:
            if (sa.peer == peer and sa.established and not sa.replaced
                    and (best is None or (sa.established_at or 0) >= (best.established_at or 0))):
                best = sa
        return best

    def new_message_id(self, sa: IsakmpSa) -> int:
        """A fresh message ID for an exchange on ``sa`` (RFC 2409 section 5.5)."""
        return sa.message_ids.allocate(self.random, sa.nodes)

    def prf_size(self, sa: IsakmpSa) -> int:
        assert sa.choice is not None
        return hash_size(sa.choice.hash)

    def allocate_spi(self) -> int:
        """A random SPI >= 256 not in use inbound (RFC 4303 section 2.1)."""
        while True:
            spi = int.from_bytes(self.random.token_bytes(4), "big")
            if spi >= MIN_SPI and self.sad.lookup_inbound(spi) is None and spi not in self.children.reserved_spis:
                self.children.reserved_spis.add(spi)
                return spi

    def negotiating(self, flow: Flow, *, as_initiator: bool | None = None) -> bool:
        """A Quick Mode for ``flow`` is in progress (in the given role, or any)."""
        for sa in self.sas:
            if sa.peer != flow[0]:
                continue
            if as_initiator is not False and not sa.established and any(
                    (r.peer, r.selector) == flow for r in sa.pending):
                return True
            for node in sa.nodes.values():
                if node.informational or node.request is None:
                    continue
                if as_initiator is not None and node.initiator != as_initiator:
                    continue
                if (node.request.peer, node.request.selector) == flow and node.state in _NEGOTIATING:
                    return True
        return False
