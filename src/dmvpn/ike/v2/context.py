"""What the parts of the IKEv2 engine share, declared: the context each is
given (as :mod:`dmvpn.ike.context` for IKEv1).

charon hands each task its ``ike_sa_t`` and the daemon's services; here the
parts of :class:`~dmvpn.ike.v2.engine.Ikev2Engine` (the message-ID window,
IKE SA setup, CHILD_SAs, IKE SA lifetime and rekey, deletes, liveness) are
given an :class:`Ikev2Context`: the configuration, the SAD, randomness, the
behaviour profile, the shared :class:`~dmvpn.ike.transport.IkeTransport`,
the IKE SAs, the CHILD_SA pairs (:class:`~dmvpn.ike.context.ChildTable`)
and what the lab and tests read of them, and the logging and sending
helpers every part uses.

Retransmission timers: IOS-XE documents no IKEv2 figures we could find
(REFERENCE.md and IKEV2.md have none). :data:`IKEV2_RETRANSMIT` is a guess
from memory of IOS-XE ``debug crypto ikev2`` traces (about 2 s, doubling,
5 retransmissions before "Maximum number of retransmissions reached").
DPD (``dpd INTERVAL RETRY on-demand|periodic``) retransmits its liveness
check every RETRY seconds (the command's retry interval); the 5 retries
(:data:`DPD_RETRIES`) are a guess too. The ``debug crypto ikev2`` texts
follow the IOS-XE traces we remember (``Sending Packet [To ...]``,
``Initiator SPI : ... Message id: N``, ``IKEv2 IKE_AUTH Exchange
REQUEST``, ``Session with IKE ID PAIR (...) is UP``); the rest are ours.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from dmvpn.ike.context import IkeContext
from dmvpn.ike.isakmp_sa import ChildSa
from dmvpn.ike.manager import Datagram
from dmvpn.ike.transport import RetransmitTimers
from dmvpn.ike.v2.ike_auth import ChildSaResult
from dmvpn.ike.v2.ike_sa import Exchange, Ikev2Sa
from dmvpn.ike.v2.keytable import key_record
from dmvpn.ike.v2.sa_init import IkeSaState
from dmvpn.ipsec.sa import SaDirection, SecurityAssociation
from dmvpn.wire.ikev2_registry import ExchangeType

#: Guessed IOS-XE IKEv2 request retransmission (see the module docstring).
IKEV2_RETRANSMIT = RetransmitTimers(initial=2.0, backoff=2.0, max_interval=32.0, limit=5)
#: How long the winner of an IKE SA rekey collision keeps the loser's redundant SA waiting for the
#: loser's DELETE of it (RFC 7296 2.8.2) before dropping it: charon's 10 s.
REDUNDANT_WAIT = 10.0
#: Liveness checks are retried this many times (a guess) at the ``dpd`` RETRY interval.
DPD_RETRIES = 5


@dataclass(frozen=True, slots=True)
class RekeyOutcome:
    """A CHILD_SA created by rekeying an old one, with its exchange's
    nonces (RFC 7296 2.8.1) and whether we initiated that exchange."""

    new: ChildSa
    nonces: tuple[bytes, bytes]
    ours: bool


@dataclass(frozen=True, slots=True)
class IkeCollisionRecord:
    """How one IKE SA rekey collision was settled here (RFC 7296 2.8.2):
    the old IKE SA, both exchanges' nonces, both new SAs' IDs here, and
    whether ours was the redundant one (and so deleted by us)."""

    old_sa_id: int
    ours_nonces: tuple[bytes, bytes]
    theirs_nonces: tuple[bytes, bytes]
    ours_sa_id: int
    theirs_sa_id: int
    ours_redundant: bool


@dataclass(frozen=True, slots=True)
class CollisionRecord:
    """How one CHILD_SA rekey collision was settled on this side (RFC 7296
    2.8.1), for the lab and tests: the old pair's inbound SPI, both
    exchanges' nonces, both new pairs' inbound SPIs here, and whether ours
    was the redundant one (and so deleted by us)."""

    old_spi_in: int
    ours_nonces: tuple[bytes, bytes]
    theirs_nonces: tuple[bytes, bytes]
    ours_spi_in: int
    theirs_spi_in: int
    ours_redundant: bool


def spi_value(b: bytes) -> int:
    """An SPI of the wire as the SAD's integer."""
    return int.from_bytes(b, "big")


def exchange_name(xchg: int) -> str:
    """The registry name of an exchange type, or its number."""
    try:
        return ExchangeType(xchg).name
    except ValueError:
        return str(xchg)


@dataclass(eq=False)
class Ikev2Context(IkeContext):
    """The state and services the parts of one IKEv2 engine share."""

    EVENT_FIELDS: ClassVar[dict[str, str]] = {"ike": "v2"}

    sas: list[Ikev2Sa] = field(default_factory=list)
    child_ike: dict[ChildSa, Ikev2Sa] = field(default_factory=dict)
    results: dict[ChildSa, ChildSaResult] = field(default_factory=dict)
    #: old pair -> the pairs rekeying it created (two when rekeys crossed)
    rekeys: dict[ChildSa, list[RekeyOutcome]] = field(default_factory=dict)
    collisions: list[CollisionRecord] = field(default_factory=list)
    ike_collisions: list[IkeCollisionRecord] = field(default_factory=list)
    #: Every IKE SA's Wireshark decryption line, in establishment order.
    key_lines: list[str] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=lambda: {
        "collisions": 0, "redundant_deleted": 0, "ike_failures": 0, "retransmits": 0, "rekeys_refused": 0,
        "cookies_sent": 0})
    sa_ids: int = 0

    # ------------------------------------------------------------ the tables
    def new_sa(self, now: float, initiator: bool, local: str, peer: str, keys: IkeSaState) -> Ikev2Sa:
        """A new IKE SA with the next SA ID, in the table."""
        self.sa_ids += 1
        sa = Ikev2Sa(self.sa_ids, initiator, local, peer, keys, now, last_rx=now)
        self.sas.append(sa)
        return sa

    def ike_for(self, peer: str) -> Ikev2Sa | None:
        """The newest established IKE SA with ``peer``."""
        best = None
        for sa in self.sas:
            if sa.peer == peer and sa.established:
                best = sa
        return best

    def pair_of(self, sa: SecurityAssociation) -> ChildSa | None:
        """The CHILD_SA pair ``sa`` is a half of."""
        table = self.children
        return (table.by_spi_in if sa.direction is SaDirection.INBOUND else table.by_spi_out).get(sa.spi)

    def export_keys(self, keys: IkeSaState) -> None:
        """Keep the IKE SA's Wireshark decryption line."""
        if keys.keys is not None and keys.algorithms is not None:
            self.key_lines.append(key_record(keys.spi_i, keys.spi_r, keys.algorithms.cipher, keys.keys).line())

    # ------------------------------------------------------------ sending and logging
    def send(self, sa: Ikev2Sa, packet: bytes, now: float | None = None, exch: Exchange | None = None) -> None:
        """One message to the peer of ``sa`` on the SA's ports; a request of ours (``exch``) is logged."""
        self.transport.send(Datagram(sa.local, sa.local_port, sa.peer, sa.peer_port, packet))
        if now is not None and exch is not None:
            self.log(now, sa, f"Sending Packet [To {sa.peer}:{sa.peer_port}/From {sa.local}:{sa.local_port}/"
                              f"VRF i0:f0]\nInitiator SPI : {sa.keys.spi_i.hex().upper()} - Responder SPI : "
                              f"{sa.keys.spi_r.hex().upper()} Message id: {exch.message_id}\n"
                              f"IKEv2 {exch.kind.value.split(' ')[0]} Exchange REQUEST")

    def log(self, now: float, sa: Ikev2Sa | None, text: str, **fields: Any) -> None:
        """A ``debug crypto ikev2`` line, IOS-XE's prefix
        ``(SESSION ID = n,SA ID = n):`` (the texts are our guesses at IOS-XE's)."""
        if self.transport.debug:
            sid = sa.sa_id if sa is not None else 0
            fields.update(facility="IKEv2", sa_id=sid)
            self.transport.debug_line(now, f"(SESSION ID = {sid},SA ID = {sid}):{text}", fields)

    def syslog(self, now: float, text: str, tag: str = "%IKEV2-3-NEG_ABORT", **fields: Any) -> None:
        """A syslog message (always logged); ``tag`` is the IOS-XE mnemonic
        (SA_UP, SA_DOWN, NEG_ABORT: the names we know; texts are ours)."""
        fields["facility"] = tag
        self.transport.event(now, text, fields)
