"""The router's contract with a key manager, for any IKE version.

strongSwan's ``ike_sa_manager`` plays this role in charon: the one object the
rest of the daemon asks for keys, whichever of ``task_manager_v1``/``_v2``
runs the exchanges underneath. Here the router (and the show adapter and the
lab) talk to a :class:`KeyManager` only; :class:`~dmvpn.ike.engine.Ikev1Engine`
implements it for IKEv1 and an IKEv2 engine will implement it too. The
router tells them apart on UDP 500/4500 with :func:`ike_major_version`.

Sans-I/O like every engine (``dmvpn.sansio``): the key manager is given UDP
payloads, acquires, SAD events and the time; it hands back
:class:`Datagram` objects and log events, and it installs and deletes SAs in
the SAD it was built with (its kernel interface, as charon's kernel_ipsec).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from dmvpn.ike.proposals import ChildPolicy
from dmvpn.ipsec.events import SadEvent
from dmvpn.ipsec.sa import SecurityAssociation, Selector
from dmvpn.sansio import LogEvent
from dmvpn.show.ikev2_views import Ikev2SaView, Ikev2SessionView
from dmvpn.show.views import CryptoSessionView, IsakmpSaView
from dmvpn.wire.isakmp import VERSION_OFFSET

#: Major versions as the IKE header's Version octet carries them in its high nibble.
IKEV1_MAJOR = 1
IKEV2_MAJOR = 2


def ike_major_version(payload: bytes) -> int | None:
    """The major version of an ISAKMP (RFC 2408 section 3.1) or IKEv2 (RFC
    7296 section 3.1) message: the high nibble of header octet 17 (0x10 is
    IKEv1, 0x20 IKEv2). None when the payload is too short to carry one.
    For the router's demux of UDP 500/4500 (after the non-ESP marker is
    stripped); it checks nothing else, the engine's decoder does."""
    if len(payload) <= VERSION_OFFSET:
        return None
    return payload[VERSION_OFFSET] >> 4


@dataclass(frozen=True, slots=True)
class Datagram:
    """A UDP datagram a key manager wants sent."""

    src: str
    sport: int
    dst: str
    dport: int
    payload: bytes
    #: True for a NAT keepalive (RFC 3948 section 2.3): sent as is, without the non-ESP marker.
    raw: bool = False


@dataclass(frozen=True, slots=True)
class ChildSaView:
    """One IPsec SA pair a key manager negotiated, as ``show crypto ipsec
    sa`` and ``show crypto session`` group them: the two SAD entries and the
    policy (interface, crypto map tag, PFS group) they were made for."""

    peer: str
    interface: str
    crypto_map: str
    pfs_group: int | None
    sa_in: SecurityAssociation
    sa_out: SecurityAssociation


class KeyManager(Protocol):
    """What the router, the show adapter and the lab need from IKE."""

    #: :data:`IKEV1_MAJOR` or :data:`IKEV2_MAJOR`: the messages this manager takes.
    ike_version: int
    #: ``debug crypto isakmp`` (or ``ikev2``): emit the debug lines as LogEvents.
    debug: bool

    def receive(self, now: float, src: str, sport: int, dst: str, dport: int, data: bytes) -> None:
        """An IKE message arrived on UDP 500 or 4500 (RFC 2408 section 3.1,
        RFC 3947 section 4: without the non-ESP marker). Bad input is logged
        and dropped, never raised."""
        ...

    def acquire(self, now: float, policy: ChildPolicy, peer: str, local: str, selector: Selector) -> None:
        """Traffic for ``selector`` found no outbound SA: negotiate a pair
        (the kernel's ACQUIRE, RFC 4301 section 5.2 step 3b's "negotiate")."""
        ...

    def invalid_spi(self, now: float, src: str, dst: str, spi: int, iface: str) -> None:
        """An ESP packet arrived for an SPI the SAD does not know (RFC 4303
        section 3.4.2): log it and, if configured, tell the peer (RFC 2408
        section 3.14.1 INVALID-SPI notify)."""
        ...

    def clear(self, now: float, peer: str | None = None) -> int:
        """``clear crypto sa [peer A]``: delete the IPsec SA pairs (with
        DELETE, RFC 2408 section 3.15); returns how many pairs."""
        ...

    def rekey(self, now: float, peer: str | None = None) -> int:
        """Rekey every current pair (with ``peer``) now, as at its soft
        lifetime (RFC 2401 section 4.4.2's soft limit); returns how many
        exchanges were started."""
        ...

    def sad_events(self, now: float, events: list[SadEvent] | None = None) -> None:
        """Consume the SAD's soft/hard lifetime events (``events``, or the
        SAD's queue when None) (RFC 4301 section 4.4.2.1)."""
        ...

    def handle_timer(self, now: float) -> None:
        """Run what is due at ``now``: retransmissions, lifetimes, DPD."""
        ...

    def next_deadline(self) -> float | None:
        """The earliest time this manager (or its SAD) wants :meth:`handle_timer`."""
        ...

    def poll_datagrams(self) -> list[Datagram]:
        """UDP datagrams to send, oldest first; the queue is emptied."""
        ...

    def poll_events(self) -> list[LogEvent]:
        """Log events (debug lines, syslog, SA lifecycle), oldest first; emptied."""
        ...

    def isakmp_sa_views(self, now: float) -> Sequence[IsakmpSaView]:
        """The IKE SAs for ``show crypto isakmp sa [detail]``."""
        ...

    def session_views(self, now: float) -> Sequence[CryptoSessionView]:
        """One ``show crypto session`` block per peer with IKE SAs, filled in
        with what IKE knows (peer port, uptime, the IKE SA lines and the
        interface its pairs are on); ``flows`` empty and ``status`` from the
        IKE SAs alone: the show adapter adds the SAD's side."""
        ...

    def child_sa_views(self) -> Sequence[ChildSaView]:
        """The IPsec SA pairs this manager installed and still holds."""
        ...


@runtime_checkable
class Ikev2Manager(Protocol):
    """What an IKEv2 key manager adds to :class:`KeyManager`: ``show crypto
    ikev2 sa [detail]`` / ``session`` and ``clear crypto ikev2 sa``. The
    router and show adapter find it with ``isinstance`` and never name the
    concrete engine."""

    def ikev2_sa_views(self, now: float) -> Sequence[Ikev2SaView]:
        """The established IKEv2 SAs."""
        ...

    def ikev2_session_views(self, now: float) -> Sequence[Ikev2SessionView]:
        """Each IKEv2 SA with its CHILD_SAs."""
        ...

    def clear_ike(self, now: float, peer: str | None = None) -> int:
        """Delete the IKE SAs (with ``peer``) and their CHILD_SAs; how many IKE SAs."""
        ...

    def rekey_ike(self, now: float, peer: str | None = None) -> int:
        """Rekey the established IKE SAs (with ``peer``) now (RFC 7296
        2.18), as at their rekey time; how many rekeys were started."""
        ...
