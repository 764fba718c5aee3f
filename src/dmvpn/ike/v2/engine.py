"""The IKEv2 engine of one router: IKE SAs, their exchanges, CHILD_SAs in
the SAD, rekeys, collisions, deletes and liveness (RFC 7296).

The router's :class:`~dmvpn.ike.manager.KeyManager` for IKEv2, composed
(not inherited) over the version-neutral
:class:`~dmvpn.ike.transport.IkeTransport` like
:class:`~dmvpn.ike.engine.Ikev1Engine`. It is charon's ``task_manager_v2``:
it owns the message-ID windows (2.3, size 1: one request of ours in flight,
the rest queued), retransmits its request until answered (2.1), answers a
retransmitted request from its cached response, and hands every message
to the pure exchange tasks of :mod:`dmvpn.ike.v2` (IKE_SA_INIT, IKE_AUTH,
CREATE_CHILD_SA for CHILD and IKE SAs, INFORMATIONAL).

CHILD_SAs go into the shared SAD as IKEv1's do (same
:class:`~dmvpn.ipsec.sa.SecurityAssociation` objects, lifetimes from the
behaviour profile, transport-mode GRE selectors for DMVPN). A rekey's
responder installs the new outbound SA inactive and switches to it when
the initiator deletes the old pair (strongSwan does the same, so no packet
is sent on an SA the initiator cannot read yet); the initiator deletes the
old outbound half at once and the old inbound half when the peer answers
the DELETE (1.4.1), so packets in flight are still accepted. Two rekeys of
one pair that cross are settled by RFC 7296 2.8.1 (:func:`redundant`): the
new pair whose exchange used the lowest nonce is deleted by its initiator,
and the surviving pair's initiator deletes the old one. Deletes that
cross (both ends delete the same pair, or the IKE SA, at once: 1.4.1) are
each answered without naming what both delete; a crossed pair loses its
outbound half at once and its inbound half with the answer to our DELETE,
a crossed IKE SA its CHILD_SAs at once and itself with that answer.

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

from dataclasses import dataclass, replace
from ipaddress import IPv4Address
from typing import Any

from dmvpn.config import RouterConfig
from dmvpn.ike.context import ACQUIRE_HOLDOFF, ChildTable, Flow, TrafficProbe
from dmvpn.ike.isakmp_sa import ChildRequest, ChildSa
from dmvpn.ike.manager import IKEV2_MAJOR, ChildSaView, Datagram
from dmvpn.ike.profiles import BehaviourProfile
from dmvpn.ike.proposals import ChildPolicy
from dmvpn.ike.quick_mode import sa_lifetime
from dmvpn.ike.states import ChildEvent, ChildState, IllegalTransition
from dmvpn.ike.transport import IkeTransport, Retransmit, RetransmitTimers
from dmvpn.ike.v2.child_sa import CreateChildSa, CreatedChild, redundant
from dmvpn.ike.v2.ike_auth import ChildSaResult, IkeAuth
from dmvpn.ike.v2.ike_rekey import IkeRekey
from dmvpn.ike.v2.ike_sa import Exchange, ExchangeKind, Ikev2Sa
from dmvpn.ike.v2.informational import Informational, PairHalf
from dmvpn.ike.v2.keytable import key_record
from dmvpn.ike.v2.protect import open_message
from dmvpn.ike.v2.sa_init import Endpoints, IkeSaInit, IkeSaState, InitOutcome
from dmvpn.ike.v2.settings import auth_config, ikev2_profile_for, proposals_for, responder_policy
from dmvpn.ike.v2.states import Ikev2SaEvent, Ikev2SaState
from dmvpn.ike.v2.views import child_view, sa_view
from dmvpn.ike.views import child_sa_views
from dmvpn.ipsec.events import HardExpired, SadEvent, SoftExpired
from dmvpn.ipsec.sa import (
    EspMode,
    SaDirection,
    SaOrigin,
    SaOriginReason,
    SecurityAssociation,
    Selector,
)
from dmvpn.ipsec.sad import SecurityAssociationDatabase
from dmvpn.sansio import LogEvent, RandomSource
from dmvpn.show.ikev2_views import Ikev2SaView, Ikev2SessionView
from dmvpn.show.views import CryptoSessionView, IsakmpSaView, SessionIkeSaView
from dmvpn.wire.errors import DecodeError
from dmvpn.wire.ikev2 import Ikev2Header, Ikev2Message, decode_header
from dmvpn.wire.ikev2_payloads import NotifyPayload, SaPayload
from dmvpn.wire.ikev2_registry import ExchangeType, NotifyType, ProtocolId
from dmvpn.wire.isakmp import IKE_PORT, NAT_T_PORT

#: Guessed IOS-XE IKEv2 request retransmission (see the module docstring).
IKEV2_RETRANSMIT = RetransmitTimers(initial=2.0, backoff=2.0, max_interval=32.0, limit=5)
#: How long the winner of an IKE SA rekey collision keeps the loser's redundant SA waiting for the
#: loser's DELETE of it (RFC 7296 2.8.2) before dropping it: charon's 10 s.
REDUNDANT_WAIT = 10.0
#: Liveness checks are retried this many times (a guess) at the ``dpd`` RETRY interval.
DPD_RETRIES = 5

K = ExchangeKind


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


def _spi(b: bytes) -> int:
    return int.from_bytes(b, "big")


class Ikev2Engine:
    """IKEv2 for one router: a :class:`~dmvpn.ike.manager.KeyManager`."""

    ike_version = IKEV2_MAJOR

    def __init__(
        self,
        name: str,
        config: RouterConfig,
        sad: SecurityAssociationDatabase,
        random: RandomSource,
        profile: BehaviourProfile,
        child_policies: list[ChildPolicy],
        traffic: TrafficProbe | None = None,
        force_nat_t: bool = False,
    ) -> None:
        """``force_nat_t``: claim a NAT in front of this router (a
        NAT_DETECTION_SOURCE_IP hash of no address of ours, RFC 7296 2.23),
        so IKE floats to UDP 4500 and ESP travels in UDP (RFC 3948), as
        :class:`~dmvpn.ike.engine.Ikev1Engine` does with the same flag."""
        self.name = name
        self.force_nat_t = force_nat_t
        self.config = config
        self.sad = sad
        self.random = random
        self.profile = profile
        self.child_policies = child_policies
        self.traffic = traffic or (lambda peer: (None, None))
        self.transport = IkeTransport(name, IKEV2_RETRANSMIT, category="ikev2")
        self.sas: list[Ikev2Sa] = []
        self.children = ChildTable()
        self.child_ike: dict[ChildSa, Ikev2Sa] = {}
        self.results: dict[ChildSa, ChildSaResult] = {}
        #: old pair -> the pairs rekeying it created (two when rekeys crossed)
        self.rekeys: dict[ChildSa, list[RekeyOutcome]] = {}
        self.holdoff: dict[Flow, float] = {}
        self.collisions: list[CollisionRecord] = []
        self.ike_collisions: list[IkeCollisionRecord] = []
        #: Every IKE SA's Wireshark decryption line, in establishment order.
        self.key_lines: list[str] = []
        self.stats = {"collisions": 0, "redundant_deleted": 0, "ike_failures": 0, "retransmits": 0,
                      "rekeys_refused": 0, "cookies_sent": 0}
        self._sa_ids = 0
        self._cookie: bytes | None = None
        period = profile.lifetime_check_period
        if period is not None:
            self.transport.schedule(random.uniform(0.0, period), self._lifetime_check)

    # ================================================================== KeyManager
    @property
    def debug(self) -> bool:
        """``debug crypto ikev2`` (the transport keeps the switch)."""
        return self.transport.debug

    @debug.setter
    def debug(self, on: bool) -> None:
        self.transport.debug = on

    def receive(self, now: float, src: str, sport: int, dst: str, dport: int, data: bytes) -> None:
        """An IKEv2 message (UDP payload). Malformed or unexpected messages
        are logged and dropped, never raised."""
        try:
            hdr = decode_header(data)
        except DecodeError as err:
            self._syslog(now, f"IKEv2 message from {src} dropped: {err}", peer=src)
            return
        try:
            self._receive(now, src, sport, dst, dport, data, hdr)
        except IllegalTransition as err:
            self._syslog(now, f"IKEv2 message from {src} dropped: {err}", peer=src)

    def acquire(self, now: float, policy: ChildPolicy, peer: str, local: str, selector: Selector) -> None:
        """Traffic for ``selector`` found no outbound SA: IKE_SA_INIT +
        IKE_AUTH, or CREATE_CHILD_SA on an established IKE SA."""
        flow = (peer, selector)
        if self.holdoff.get(flow, -1.0) > now or self._negotiating(flow):
            return
        current = self.children.current(flow)
        if current is not None and current.sa_out.sad is not None:
            return
        self._request(now, ChildRequest(policy, peer, local, selector))

    def invalid_spi(self, now: float, src: str, dst: str, spi: int, iface: str) -> None:
        """ESP for an unknown SPI (RFC 7296 2.21.4: an INVALID_SPI notify is optional; IOS logs it)."""
        self._syslog(now, f"decaps: rec'd IPSEC packet has invalid spi for destaddr={dst}, prot=50, "
                          f"spi=0x{spi:X}({spi}), srcaddr={src}, input interface={iface}",
                     "%CRYPTO-4-RECVD_PKT_INV_SPI", peer=src)

    def clear(self, now: float, peer: str | None = None) -> int:
        """``clear crypto sa [peer A]``: DELETE the CHILD_SAs (the IKE SAs stay)."""
        victims = [c for c in self.children.pairs if peer is None or c.peer == peer]
        for child in victims:
            self._delete_child(now, child, "clear crypto sa", send=True)
        return len(victims)

    def clear_ike(self, now: float, peer: str | None = None) -> int:
        """``clear crypto ikev2 sa [remote A]``: DELETE the IKE SAs and with them their CHILD_SAs (1.4.1)."""
        victims = [s for s in self.sas if peer is None or s.peer == peer]
        for sa in victims:
            if sa.established:
                self._send_ike_delete(now, sa)
            else:
                self._remove_sa(now, sa, "clear crypto ikev2 sa")
        return len(victims)

    def rekey(self, now: float, peer: str | None = None) -> int:
        """Rekey every current pair (with ``peer``) now, as at its soft lifetime."""
        started = 0
        for child in list(self.children.pairs):
            if (peer is None or child.peer == peer) and child.state is ChildState.ACTIVE and not child.loser:
                child.soft_reason = child.soft_reason or "time"
                started += self._rekey_child(now, child, force=True)
        return started

    def rekey_ike(self, now: float, peer: str | None = None) -> int:
        """Rekey the established IKE SAs (with ``peer``) now (RFC 7296 2.18)."""
        victims = [s for s in self.sas if (peer is None or s.peer == peer) and s.established and not s.rekey_started]
        for sa in victims:
            self._ike_rekey(now, sa)
        return len(victims)

    def sad_events(self, now: float, events: list[SadEvent] | None = None) -> None:
        for ev in events if events is not None else self.sad.poll_events():
            child = self._pair_of(ev.sa)
            if child is None:
                continue
            if isinstance(ev, SoftExpired) and child.state is ChildState.ACTIVE:
                child.soft_reason = child.soft_reason or ev.reason
                if self.profile.lifetime_check_period is None:
                    self._rekey_child(ev.time, child)
            elif isinstance(ev, HardExpired):
                self._delete_child(ev.time, child, f"{ev.reason} lifetime expired", send=True)

    def handle_timer(self, now: float) -> None:
        self.sad_events(now, self.sad.handle_timer(now))
        self.transport.run_due(now)
        self.sad_events(now)

    def next_deadline(self) -> float | None:
        mine, sad = self.transport.next_deadline(), self.sad.next_deadline()
        if mine is None:
            return sad
        return mine if sad is None else min(mine, sad)

    def poll_datagrams(self) -> list[Datagram]:
        return self.transport.poll_datagrams()

    def poll_events(self) -> list[LogEvent]:
        return self.transport.poll_events()

    def isakmp_sa_views(self, now: float) -> list[IsakmpSaView]:
        """``show crypto isakmp sa`` lists IKEv1 SAs only (IOS-XE)."""
        return []

    def session_views(self, now: float) -> list[CryptoSessionView]:
        by_peer: dict[str, list[Ikev2Sa]] = {}
        for sa in self.sas:
            by_peer.setdefault(sa.peer, []).append(sa)
        views = []
        for peer, ike in by_peer.items():
            starts = [s.established_at for s in ike if s.established_at is not None]
            interface = next((c.policy.interface for c in self.children.pairs if c.peer == peer), "(unknown)")
            views.append(CryptoSessionView(
                interface=interface, peer=peer, peer_port=ike[0].peer_port,
                status="UP-IDLE" if any(s.established for s in ike) else "DOWN-NEGOTIATING",
                uptime_sec=int(now - min(starts)) if starts else None, phase1_id=peer,
                ike_sas=tuple(SessionIkeSaView(s.local, s.local_port, s.peer, s.peer_port, s.established, "IKEv2",
                                               s.sa_id, "", s.sa_id, self._left(s, now)) for s in ike)))
        return views

    def child_sa_views(self) -> list[ChildSaView]:
        return child_sa_views(self.children.pairs)

    def ikev2_sa_views(self, now: float) -> list[Ikev2SaView]:
        """``show crypto ikev2 sa [detail]``: the established IKE SAs."""
        out = []
        for sa in self.sas:
            if sa.keys.algorithms is None or sa.established_at is None:
                continue
            life = sa.profile.lifetime if sa.profile else 86400
            view = sa_view(sa.keys, sa.sa_id, (IPv4Address(sa.local), sa.local_port),
                           (IPv4Address(sa.peer), sa.peer_port), now, life, sa.local, sa.peer)
            out.append(_with_windows(view, sa))
        return out

    def ikev2_session_views(self, now: float) -> list[Ikev2SessionView]:
        """``show crypto ikev2 session``: each IKE SA with its CHILD_SAs."""
        out = []
        by_id = {v.tunnel_id: v for v in self.ikev2_sa_views(now)}
        for sa in self.sas:
            view = by_id.get(sa.sa_id)
            if view is None:
                continue
            kids = [child_view(self.results[c], c.initiator, IPv4Address(c.local), IPv4Address(c.peer))
                    for c in sa.children if c in self.results and c.state is not ChildState.DELETED]
            out.append(Ikev2SessionView(sa.sa_id, view, kids, "UP-ACTIVE" if kids else "UP-NO-IPSEC"))
        return out

    # ================================================================== receive
    def _receive(self, now: float, src: str, sport: int, dst: str, dport: int, data: bytes,
                 hdr: Ikev2Header) -> None:
        response = bool(hdr.flags & 0x20)
        xchg = hdr.exchange_type
        sa = self._lookup(hdr, src, response)
        if sa is None:
            if xchg == ExchangeType.IKE_SA_INIT and not response and hdr.message_id == 0:
                self._init_r(now, src, sport, dst, dport, data)
            else:
                self._log(now, None, f"Received packet for an unknown IKE SA from {src}:{sport}, dropped")
            return
        sa.peer_port, sa.last_rx = sport, now
        if sa.nat and dport == NAT_T_PORT and sa.local_port != NAT_T_PORT:  # the initiator floated (2.23)
            sa.local_port = NAT_T_PORT
        self._log(now, sa, f"Received Packet [From {src}:{sport}/To {dst}:{dport}/VRF i0:f0]\n"
                           f"Initiator SPI : {sa.keys.spi_i.hex().upper()} - Responder SPI : "
                           f"{sa.keys.spi_r.hex().upper()} Message id: {hdr.message_id}\n"
                           f"IKEv2 {_xname(xchg)} Exchange {'RESPONSE' if response else 'REQUEST'}")
        if response:
            self._response(now, sa, hdr, data)
        else:
            self._request_in(now, sa, hdr, data)

    def _lookup(self, hdr: Ikev2Header, src: str, response: bool) -> Ikev2Sa | None:
        for sa in self.sas:
            if sa.keys.spi_i != hdr.spi_i or sa.peer != src:
                continue
            if sa.keys.spi_r == hdr.spi_r:
                return sa
            if hdr.exchange_type == ExchangeType.IKE_SA_INIT and (
                    (response and sa.state is Ikev2SaState.INIT_SENT)
                    or (not response and hdr.spi_r == bytes(8))):
                return sa
        return None

    def _response(self, now: float, sa: Ikev2Sa, hdr: Ikev2Header, data: bytes) -> None:
        exch = sa.outstanding
        if exch is None or hdr.message_id != exch.message_id:
            self._log(now, sa, f"Response with message id {hdr.message_id} matches no request, dropped")
            return
        if hdr.exchange_type != exch.kind.exchange_type:  # charon too: "received X response, but expected Y"
            self._log(now, sa, f"{_xname(hdr.exchange_type)} response to our {exch.kind.value} request, dropped")
            return
        self.transport.cancel_retransmit(exch.retransmit)
        sa.outstanding = None
        if exch.kind is not K.IKE_SA_INIT:
            sa.next_mid += 1
        handler = {
            K.IKE_SA_INIT: self._init_done, K.IKE_AUTH: self._auth_done,
            K.CREATE_CHILD: self._child_done, K.REKEY_CHILD: self._child_done,
            K.REKEY_IKE: self._ike_rekey_done, K.DELETE_CHILD: self._delete_child_done,
            K.DELETE_IKE: self._delete_ike_done, K.LIVENESS: self._liveness_done,
        }[exch.kind]
        handler(now, sa, exch, data)
        self._kick(now, sa)

    def _request_in(self, now: float, sa: Ikev2Sa, hdr: Ikev2Header, data: bytes) -> None:
        """A request of the peer: the next one is processed, a retransmission
        of the last one answered from the cache (RFC 7296 2.1), others dropped."""
        mid = hdr.message_id
        if mid == sa.peer_mid - 1 and sa.last_response:
            self._log(now, sa, f"Retransmitted request (message id {mid}): resending the cached response")
            self._send(sa, sa.last_response)
            return
        if mid != sa.peer_mid:
            self._log(now, sa, f"Request with message id {mid} outside the window (expected {sa.peer_mid}), dropped")
            return
        xchg = hdr.exchange_type
        reply: bytes | None
        if xchg == ExchangeType.IKE_AUTH and sa.state is Ikev2SaState.INIT_DONE:
            reply = self._auth_r(now, sa, data)
        elif xchg == ExchangeType.CREATE_CHILD_SA and sa.established and not self._deleting(sa):
            reply = self._create_child_r(now, sa, mid, data)
        elif xchg == ExchangeType.CREATE_CHILD_SA and (sa.state is Ikev2SaState.REKEYED or self._deleting(sa)):
            # RFC 7296 2.25: this SA is rekeyed or being deleted (a delayed crossing rekey, a DELETE crossing it)
            self._log(now, sa, "CREATE_CHILD_SA on an IKE SA being deleted refused: TEMPORARY_FAILURE")
            self.stats["rekeys_refused"] += 1
            reply = IkeRekey(sa.keys, proposals_for(self.config, sa.local), self.random, mid, False).refuse(
                NotifyType.TEMPORARY_FAILURE, "the IKE SA is rekeyed")
        elif xchg == ExchangeType.INFORMATIONAL and sa.state in (Ikev2SaState.ESTABLISHED, Ikev2SaState.REKEYED):
            reply = self._informational_r(now, sa, mid, data)
        else:
            self._log(now, sa, f"{_xname(xchg)} request in state {sa.state.value}, dropped")
            return
        if reply is None:
            return  # not decryptable: no answer, the window does not move (2.21.2)
        sa.peer_mid += 1
        sa.last_request, sa.last_response = data, reply
        self._send(sa, reply)
        if sa.state is Ikev2SaState.DELETED and not self._deletes_crossed(sa):
            self._forget(sa)

    # ================================================================== requests of ours
    def _request(self, now: float, request: ChildRequest) -> None:
        """Negotiate a pair: CREATE_CHILD_SA on the peer's IKE SA, queued
        behind an IKE SA being set up, or after a new IKE_SA_INIT."""
        sa = self._ike_for(request.peer)
        if sa is not None:
            kind = K.REKEY_CHILD if request.rekey_of is not None else K.CREATE_CHILD
            self._enqueue(now, sa, Exchange(kind, request=request, child=request.rekey_of))
            return
        for pending in self.sas:
            if pending.peer == request.peer and not pending.established and pending.state is not Ikev2SaState.DELETED:
                if pending.initiator and not any(r.selector == request.selector for r in pending.pending):
                    pending.pending.append(request)
                return
        self._init_i(now, request)

    def _enqueue(self, now: float, sa: Ikev2Sa, exch: Exchange) -> None:
        sa.queue.append(exch)
        self._kick(now, sa)

    def _kick(self, now: float, sa: Ikev2Sa) -> None:
        """Window size 1 (RFC 7296 2.3): start the next queued request when none is in flight."""
        while sa.outstanding is None and sa.queue and sa in self.sas:
            exch = sa.queue.pop(0)
            exch.message_id = sa.next_mid
            packet = self._start(now, sa, exch)
            if packet is None:
                continue
            self._launch(now, sa, exch, packet)

    def _launch(self, now: float, sa: Ikev2Sa, exch: Exchange, packet: bytes) -> None:
        exch.packet = packet
        sa.outstanding = exch
        self._send(sa, packet, now, exch)
        exch.retransmit = rt = Retransmit(packet)
        timers = None
        if exch.kind is K.LIVENESS and sa.profile is not None and sa.profile.dpd is not None:
            retry = float(sa.profile.dpd.retry)
            timers = RetransmitTimers(retry, 1.0, retry, DPD_RETRIES)

        def resend(t: float) -> None:
            self.stats["retransmits"] += 1
            self._log(t, sa, f"Retransmitting packet (message id {exch.message_id}, {exch.kind.value})")
            self._send(sa, exch.packet)

        def give_up(t: float) -> None:
            if sa.outstanding is exch:
                self._gave_up(t, sa, exch)

        self.transport.arm_retransmit(now, rt, resend, give_up, timers)

    def _start(self, now: float, sa: Ikev2Sa, exch: Exchange) -> bytes | None:
        """Build the request of a queued exchange with its message ID."""
        keys, mid = sa.keys, exch.message_id
        if exch.kind in (K.CREATE_CHILD, K.REKEY_CHILD):
            request = exch.request
            assert request is not None
            old = request.rekey_of
            if old is not None and (old.state is not ChildState.REKEYING or old not in self.children.pairs):
                return None  # deleted or replaced while queued
            cfg = auth_config(self.config, request.policy, sa.local, sa.peer)
            if cfg is None:
                return None
            rekey_spi = old.sa_in.spi.to_bytes(4, "big") if old is not None else None
            exch.task = task = CreateChildSa(keys, cfg, self.random, mid, True, rekey_spi, request.policy.pfs_group)
            self._log(now, sa, f"Sending {'rekey' if old else 'new'} CHILD_SA request"
                               + (f" for SPI 0x{old.sa_in.spi:X}" if old else ""))
            return task.build_i(now)
        if exch.kind is K.REKEY_IKE:
            if not sa.established:
                return None  # the peer's rekey replaced it while ours was queued
            exch.task = rekey = IkeRekey(keys, proposals_for(self.config, sa.local), self.random, mid, True)
            self._log(now, sa, "Sending IKE SA rekey request")
            return rekey.build_i(now)
        info = Informational(keys, self.random, mid, True)
        exch.task = info
        if exch.kind is K.DELETE_CHILD:
            assert exch.child is not None
            self._log(now, sa, f"Sending DELETE INFO message for IPsec SA [SPI: 0x{exch.child.sa_in.spi:X}]")
            return info.build_i(now, [exch.child.sa_in.spi.to_bytes(4, "big")])
        if exch.kind is K.DELETE_IKE:
            self._log(now, sa, "Sending DELETE INFO message for IKEv2 SA")
            return info.build_i(now, delete_ike=True)
        self._log(now, sa, "Sending DPD/liveness query")
        return info.build_i(now)

    def _gave_up(self, now: float, sa: Ikev2Sa, exch: Exchange) -> None:
        """Retransmissions spent: the peer is gone (RFC 7296 2.4); the IKE
        SA and its CHILD_SAs are deleted without a word to it."""
        self._log(now, sa, "Maximum number of retransmissions reached")
        self.stats["ike_failures"] += 1
        if exch.kind is K.DELETE_CHILD and exch.child is not None:
            self._drop_halves(now, exch.child)
        self._syslog(now, f"IKEv2 peer {sa.peer} did not answer {exch.kind.value}: deleting the IKE SA",
                     "%IKEV2-5-SA_DOWN", peer=sa.peer)
        self._remove_sa(now, sa, "no response")

    # ================================================================== IKE_SA_INIT / IKE_AUTH
    def _new_sa(self, now: float, initiator: bool, local: str, peer: str, keys: IkeSaState) -> Ikev2Sa:
        self._sa_ids += 1
        sa = Ikev2Sa(self._sa_ids, initiator, local, peer, keys, now, last_rx=now)
        self.sas.append(sa)
        return sa

    def _init_i(self, now: float, request: ChildRequest) -> None:
        cfg = auth_config(self.config, request.policy, request.local, request.peer)
        proposals = proposals_for(self.config, request.local)
        if cfg is None or not proposals:
            self.holdoff[(request.peer, request.selector)] = now + ACQUIRE_HOLDOFF
            self._syslog(now, f"no IKEv2 profile, keyring key or proposal for peer {request.peer}",
                         peer=request.peer)
            return
        endpoints = Endpoints((IPv4Address(request.local).packed, IKE_PORT),
                              (IPv4Address(request.peer).packed, IKE_PORT))
        init = IkeSaInit(proposals, self.random, initiator=True, endpoints=endpoints, force_nat=self.force_nat_t)
        sa = self._new_sa(now, True, request.local, request.peer, init.sa)
        sa.init, sa.auth, sa.profile = init, cfg, ikev2_profile_for(self.config, request.policy, request.peer)
        sa.pending.append(request)
        sa.transition(Ikev2SaEvent.SEND_INIT)
        self._log(now, sa, f"Initiating IKE_SA_INIT to {request.peer}")
        self._launch(now, sa, Exchange(K.IKE_SA_INIT), init.build_i(now))

    def _init_done(self, now: float, sa: Ikev2Sa, exch: Exchange, data: bytes) -> None:
        init = sa.init
        assert init is not None and sa.auth is not None
        outcome = init.process_i(data, now)
        if outcome is InitOutcome.RETRY:
            self._log(now, sa, f"IKE_SA_INIT retry: {init.sa.notes[-1]}")
            sa.transition(Ikev2SaEvent.SEND_INIT)
            self._launch(now, sa, Exchange(K.IKE_SA_INIT), init.build_i(now))
            return
        if outcome is InitOutcome.FAILED:
            self._fail_setup(now, sa, init.sa.error or "IKE_SA_INIT failed")
            return
        sa.transition(Ikev2SaEvent.INIT_DONE)
        sa.next_mid = 1
        if init.nat:  # RFC 7296 2.23: the initiator floats to 4500 for IKE_AUTH
            sa.nat = True
            sa.local_port = sa.peer_port = NAT_T_PORT
            self._log(now, sa, self._nat_text(init) + f"; floating to port {NAT_T_PORT}")
        self._export_keys(sa.keys)
        exch_auth = Exchange(K.IKE_AUTH, request=sa.pending[0] if sa.pending else None, message_id=1)
        alone = not any(o is not sa and o.peer == sa.peer and o.established for o in self.sas)
        exch_auth.task = auth = IkeAuth(sa.keys, sa.auth, self.random, initial_contact=alone)
        self._log(now, sa, "Generating IKE_AUTH message")
        self._launch(now, sa, exch_auth, auth.build_i(now))

    def _auth_done(self, now: float, sa: Ikev2Sa, exch: Exchange, data: bytes) -> None:
        auth: IkeAuth = exch.task
        if not auth.process_i(data, now) or auth.child is None:
            self._fail_setup(now, sa, auth.error or "IKE_AUTH failed")
            return
        self._established(now, sa)
        request = exch.request
        if request is not None:
            sa.pending = [r for r in sa.pending if r is not request]
            self._install(now, sa, auth.child, request, initiator=True, nonces=(sa.keys.ni, sa.keys.nr))
        pending, sa.pending = sa.pending, []
        for r in pending:
            self._enqueue(now, sa, Exchange(K.CREATE_CHILD, request=r))

    def _init_r(self, now: float, src: str, sport: int, dst: str, dport: int, data: bytes) -> None:
        proposals = proposals_for(self.config, dst)
        endpoints = Endpoints((IPv4Address(dst).packed, dport), (IPv4Address(src).packed, sport))
        init = IkeSaInit(proposals, self.random, initiator=False, endpoints=endpoints, force_nat=self.force_nat_t,
                         cookie_secret=self._cookie_secret())
        init.process_r(data, now, peer=IPv4Address(src).packed)
        reply = init.build_r(now)
        if init.sa.keys is None:  # a notify (COOKIE, INVALID_KE, NO_PROPOSAL_CHOSEN): no state kept (2.6)
            if init.sa.error is None and init.cookie_secret is not None:
                self.stats["cookies_sent"] += 1
            self._log(now, None, f"IKE_SA_INIT from {src} refused: {init.sa.error or 'notify sent'}")
            self.transport.send(Datagram(dst, dport, src, sport, reply))
            return
        sa = self._new_sa(now, False, dst, src, init.sa)
        sa.local_port, sa.peer_port, sa.init = dport, sport, init
        if init.nat:
            sa.nat = True
            self._log(now, sa, self._nat_text(init))
        sa.profile = self.config.ikev2.profile_for(src)
        sa.transition(Ikev2SaEvent.RECV_INIT)
        sa.peer_mid, sa.last_request, sa.last_response = 1, data, reply
        self._export_keys(sa.keys)
        self._log(now, sa, f"Received IKE_SA_INIT from {src}:{sport}; sending response")
        self._send(sa, reply)
        self.transport.schedule(now + IKEV2_RETRANSMIT.give_up_after(), lambda t: self._half_open_timeout(t, sa))

    def _nat_text(self, init: IkeSaInit) -> str:
        if self.force_nat_t:
            return "NAT-T forced: UDP encapsulation as if this router were behind a NAT"
        return "NAT detected: " + ", ".join(w for w, on in (("this router is behind a NAT", init.sa.nat_local),
                                                            ("the peer is behind a NAT", init.sa.nat_peer)) if on)

    def _cookie_secret(self) -> bytes | None:
        """The COOKIE secret (RFC 7296 2.6) while ``crypto ikev2
        cookie-challenge N`` is configured and N half-open SAs (IKE_SA_INIT
        answered, IKE_AUTH awaited) exist; None otherwise. Drawn once, when
        first needed."""
        limit = self.config.ikev2.cookie_challenge
        if limit is None or sum(sa.state is Ikev2SaState.INIT_DONE for sa in self.sas) < limit:
            return None
        if self._cookie is None:
            self._cookie = self.random.token_bytes(32)
        return self._cookie

    def _half_open_timeout(self, now: float, sa: Ikev2Sa) -> None:
        if sa in self.sas and sa.state is Ikev2SaState.INIT_DONE:
            self._remove_sa(now, sa, "IKE_AUTH not received in time")

    def _auth_r(self, now: float, sa: Ikev2Sa, data: bytes) -> bytes | None:
        policy = responder_policy(self.config, self.child_policies, sa.local, sa.peer)
        cfg = auth_config(self.config, policy, sa.local, sa.peer) if policy is not None else None
        if policy is None or cfg is None:
            self._log(now, sa, f"No IKEv2 profile / keyring matches peer {sa.peer}: IKE_AUTH dropped")
            return None
        sa.auth = cfg
        auth = IkeAuth(sa.keys, cfg, self.random)
        auth.process_r(data, now)
        reply = auth.build_r(now)
        if reply is None:
            self._log(now, sa, f"IKE_AUTH request undecryptable: {auth.error}")
            return None
        if auth.child is None:
            self._log(now, sa, f"IKE_AUTH refused: {auth.error}")
            sa.transition(Ikev2SaEvent.DELETE)
            return reply
        if auth.initial_contact:
            self._initial_contact(now, sa)
        self._established(now, sa)
        request = ChildRequest(policy, sa.peer, sa.local, Selector.hosts(sa.local, sa.peer, policy.protocol))
        self._install(now, sa, auth.child, request, initiator=False, nonces=(sa.keys.ni, sa.keys.nr))
        return reply

    def _initial_contact(self, now: float, sa: Ikev2Sa) -> None:
        """N(INITIAL_CONTACT) (RFC 7296 2.4): the peer holds no other IKE SA
        with us (it rebooted, or declared us dead): ours with it go, with
        their CHILD_SAs, without a word to it. Only SAs established
        before this one began count: two set up at once (both ends
        initiating) are not stale."""
        stale = [o for o in self.sas if o is not sa and o.peer == sa.peer and o.established_at is not None
                 and o.established_at < sa.created]
        for other in stale:
            self._log(now, other, f"INITIAL_CONTACT from {sa.peer}: deleting the stale IKE SA")
            self._remove_sa(now, other, "INITIAL_CONTACT")

    def _established(self, now: float, sa: Ikev2Sa, event: Ikev2SaEvent = Ikev2SaEvent.AUTH_DONE) -> None:
        sa.transition(event)
        sa.established_at = now
        life = float(sa.profile.lifetime if sa.profile else 86400)
        sa.expires_at = now + life
        self._log(now, sa, f"Session with IKE ID PAIR ({sa.local}, {sa.peer}) is UP")
        self._syslog(now, f"SA UP  local {sa.local}:{sa.local_port} remote {sa.peer}:{sa.peer_port}",
                     "%IKEV2-5-SA_UP", peer=sa.peer)
        self.transport.schedule(sa.expires_at, lambda t: self._ike_expired(t, sa))
        if sa.initiator:
            self.transport.schedule(now + life * self.profile.phase1_rekey_fraction, lambda t: self._ike_rekey(t, sa))
        self._dpd_arm(now, sa)

    def _fail_setup(self, now: float, sa: Ikev2Sa, why: str) -> None:
        self.stats["ike_failures"] += 1
        self._syslog(now, f"IKEv2 negotiation with {sa.peer} failed: {why}", peer=sa.peer, reason=why)
        for r in sa.pending:
            self.holdoff[(r.peer, r.selector)] = now + ACQUIRE_HOLDOFF
        sa.pending = []
        self._remove_sa(now, sa, why)

    # ================================================================== CHILD_SAs
    def _create_child_r(self, now: float, sa: Ikev2Sa, mid: int, data: bytes) -> bytes | None:
        """A CREATE_CHILD_SA request: an IKE SA rekey (SA of protocol IKE)
        or a new/rekeyed CHILD_SA."""
        try:
            peek = open_message(sa.keys, data)
        except DecodeError as exc:
            self._log(now, sa, f"CREATE_CHILD_SA request undecryptable: {exc}")
            return None
        sas = [p for p in peek.find(SaPayload) if isinstance(p, SaPayload)]
        if sas and sas[0].proposals and sas[0].proposals[0].protocol_id == ProtocolId.IKE:
            return self._ike_rekey_r(now, sa, mid, data)
        policy = responder_policy(self.config, self.child_policies, sa.local, sa.peer)
        cfg = auth_config(self.config, policy, sa.local, sa.peer) if policy is not None else None
        if policy is None or cfg is None:
            return None
        task = CreateChildSa(sa.keys, cfg, self.random, mid, False, pfs_group=policy.pfs_group)
        race = self._rekey_race(peek)
        if race is not None:
            self._log(now, sa, f"CREATE_CHILD_SA rekey refused: {race[1]}")
            self.stats["rekeys_refused"] += 1
            return task.refuse(*race)
        task.process_r(data, now)
        reply = task.build_r(now)
        if reply is None or task.result is None:
            self._log(now, sa, f"CREATE_CHILD_SA refused: {task.error}")
            return reply
        flow = (sa.peer, Selector.hosts(sa.local, sa.peer, policy.protocol))
        old = self.children.by_spi_out.get(_spi(task.result.rekeyed_spi)) if task.result.rekeyed_spi else None
        request = ChildRequest(policy, sa.peer, sa.local, flow[1], SaOriginReason.PEER_REKEY if old else
                               SaOriginReason.INITIAL, old)
        self._log(now, sa, f"Received {'rekey' if old else 'new'} CHILD_SA request"
                           + (f" for SPI 0x{old.sa_in.spi:X}" if old else ""))
        self._child_created(now, sa, task.result, request, initiator=False)
        return reply

    def _rekey_race(self, request: Ikev2Message) -> tuple[int, str] | None:
        """RFC 7296 2.25: a rekey of a CHILD_SA we are deleting is answered
        TEMPORARY_FAILURE, of one we do not have CHILD_SA_NOT_FOUND."""
        for n in request.find(NotifyPayload):
            if isinstance(n, NotifyPayload) and n.notify_type == NotifyType.REKEY_SA:
                old = self.children.by_spi_out.get(_spi(n.spi)) if len(n.spi) == 4 else None
                if old is None:
                    return NotifyType.CHILD_SA_NOT_FOUND, f"no CHILD_SA with SPI 0x{n.spi.hex().upper()}"
                if old.state is ChildState.DELETED:
                    return NotifyType.TEMPORARY_FAILURE, f"CHILD_SA 0x{old.sa_in.spi:X} is being deleted"
        return None

    def _child_done(self, now: float, sa: Ikev2Sa, exch: Exchange, data: bytes) -> None:
        task: CreateChildSa = exch.task
        request = exch.request
        assert request is not None
        ok = task.process_i(data, now)
        if ok is None:  # INVALID_KE_PAYLOAD: again with the group asked for (1.3), next message ID
            self._log(now, sa, f"CREATE_CHILD_SA: INVALID_KE_PAYLOAD, retrying with group {task.pfs_group}")
            task.message_id = sa.next_mid
            retry = Exchange(exch.kind, request=request, child=exch.child, message_id=sa.next_mid, task=task)
            self._launch(now, sa, retry, task.build_i(now))
            return
        if not ok or task.result is None:
            self._log(now, sa, f"CREATE_CHILD_SA failed: {task.error}")
            if request.rekey_of is None:
                self.holdoff[(request.peer, request.selector)] = now + ACQUIRE_HOLDOFF
            elif request.rekey_of.state is ChildState.REKEYING:
                request.rekey_of.transition(ChildEvent.REKEY_FAILED)
            return
        self._child_created(now, sa, task.result, request, initiator=True)

    def _child_created(self, now: float, sa: Ikev2Sa, created: CreatedChild, request: ChildRequest, *,
                       initiator: bool) -> None:
        """Install a CHILD_SA from CREATE_CHILD_SA and settle the rekey it
        completes: RFC 7296 2.8.1 when another rekey of the same pair crossed it."""
        old = request.rekey_of
        child = self._install(now, sa, created.child, request, initiator=initiator, nonces=(created.ni, created.nr))
        if old is None or child is None:
            return
        outcomes = self.rekeys.setdefault(old, [])
        outcomes.append(RekeyOutcome(child, (created.ni, created.nr), initiator))
        if old.state in (ChildState.ACTIVE, ChildState.REKEYING):
            old.transition(ChildEvent.REPLACED)
            old.replaced_by = child
        if not initiator:
            return  # the initiator settles it; ours, if any, is still in flight
        rivals = [o for o in outcomes if not o.ours]  # its pair may be deleted already: the peer settled first
        if not rivals:
            self._delete_child(now, old, "rekeyed", send=True)
            return
        theirs = rivals[0]
        self.stats["collisions"] += 1
        mine_lost = redundant((created.ni, created.nr), theirs.nonces)
        self.collisions.append(CollisionRecord(old.sa_in.spi, (created.ni, created.nr), theirs.nonces,
                                               child.sa_in.spi, theirs.new.sa_in.spi, mine_lost))
        self._log(now, sa, f"CHILD_SA rekey collision for SPI 0x{old.sa_in.spi:X}: ours (in 0x{child.sa_in.spi:X}) "
                           f"{'is redundant (lowest nonce), deleting it' if mine_lost else 'survives'} "
                           f"(RFC 7296 2.8.1)")
        if mine_lost:
            child.loser = True
            self.stats["redundant_deleted"] += 1
            self._delete_child(now, child, "redundant rekey (RFC 7296 2.8.1)", send=True)
        else:
            theirs.new.loser = True
            self._delete_child(now, old, "rekeyed", send=True)

    def _install(self, now: float, sa: Ikev2Sa, result: ChildSaResult, request: ChildRequest, *,
                 initiator: bool, nonces: tuple[bytes, bytes]) -> ChildSa | None:
        """Put a CHILD_SA pair into the SAD (RFC 7296 2.17 KEYMAT: the first
        keys protect initiator-to-responder traffic)."""
        keys = result.keys
        if initiator:
            spi_in, spi_out = _spi(result.spi_i), _spi(result.spi_r)
            enc_in, auth_in, enc_out, auth_out = keys.encr_r, keys.integ_r, keys.encr_i, keys.integ_i
        else:
            spi_in, spi_out = _spi(result.spi_r), _spi(result.spi_i)
            enc_in, auth_in, enc_out, auth_out = keys.encr_i, keys.integ_i, keys.encr_r, keys.integ_r
        old = request.rekey_of
        reason = request.reason
        if not initiator and old is not None:
            reason = SaOriginReason.PEER_REKEY
        if old is not None and old.state is ChildState.REKEYING and not initiator:
            reason = SaOriginReason.COLLISION
        policy = request.policy
        lifetime = sa_lifetime(self.profile, self.random, policy.lifetime_seconds, policy.lifetime_kilobytes,
                               initiator)
        mode = EspMode.TRANSPORT if result.transport else EspMode.TUNNEL

        def half(spi: int, direction: SaDirection, enc: bytes, auth: bytes, replaces: int | None
                 ) -> SecurityAssociation:
            return SecurityAssociation(spi=spi, direction=direction, encryption_key=enc, integrity_key=auth,
                                       origin=SaOrigin(initiator, reason, replaces), peer=request.peer,
                                       local=request.local, transform=result.esp, mode=mode,
                                       selector=request.selector, lifetime=lifetime, ike_sa=sa.sa_id,
                                       replay_window_size=self.config.replay_window_size or 64,
                                       udp_encap=(sa.local_port, sa.peer_port) if sa.nat else None)

        try:
            sa_in = half(spi_in, SaDirection.INBOUND, enc_in, auth_in, old.sa_in.spi if old else None)
            sa_out = half(spi_out, SaDirection.OUTBOUND, enc_out, auth_out, old.sa_out.spi if old else None)
            self.sad.install_pair(now, sa_in, sa_out, replaces=(old.sa_in, old.sa_out) if old else None,
                                  outbound_active=initiator or old is None)
        except ValueError as exc:
            self._syslog(now, f"IPsec SA with {request.peer} not installed: {exc}", peer=request.peer)
            return None
        child = ChildSa(request.peer, request.local, request.selector, policy, sa_in, sa_out, initiator,
                        nonces[0], now, reason, replaces=old)
        child.keys = (enc_in, auth_in, enc_out, auth_out)
        self.children.add(child)
        self.child_ike[child] = sa
        self.results[child] = result
        sa.children.append(child)
        self._log(now, sa, f"Installed IPsec SA: in SPI 0x{spi_in:X} out SPI 0x{spi_out:X} on {policy.interface}")
        self._sa_event(now, "installed", child)
        return child

    def _rekey_child(self, now: float, child: ChildSa, force: bool = False) -> int:
        """Start a CHILD_SA rekey if the behaviour profile allows (never an
        idle pair on IOS; not one a newer pair already replaced). 1 if started."""
        p = self.profile
        if child.state is not ChildState.ACTIVE or child.loser:
            return 0
        if child.idle and not p.rekey_idle and not force:
            return 0
        newest = self.children.current(child.flow)
        if p.skip_rekey_if_newer and newest is not None and newest is not child and newest.created > child.created:
            child.transition(ChildEvent.REPLACED)
            child.replaced_by = newest
            return 0
        sa = self.child_ike.get(child)
        if sa is None or not sa.established:
            sa = self._ike_for(child.peer)
            if sa is None:
                return 0
            self.child_ike[child] = sa
        child.transition(ChildEvent.REKEY_STARTED)
        reason = SaOriginReason.VOLUME_REKEY if child.soft_reason == "volume" else SaOriginReason.TIME_REKEY
        request = ChildRequest(child.policy, child.peer, child.local, child.selector, reason, child)
        self._enqueue(now, sa, Exchange(K.REKEY_CHILD, request=request, child=child))
        return 1

    def _lifetime_check(self, now: float) -> None:
        """IOS's periodic SA lifetime check (the ``cisco-iosxe`` profile)."""
        for child in list(self.children.pairs):
            if child.soft_reason is not None and child.state is ChildState.ACTIVE:
                self._rekey_child(now, child)
        p = self.profile
        assert p.lifetime_check_period is not None
        jitter = p.lifetime_check_jitter
        self.transport.schedule(now + p.lifetime_check_period * (1.0 + self.random.uniform(-jitter, jitter)),
                                self._lifetime_check)

    # ================================================================== deletes
    def _delete_child(self, now: float, child: ChildSa, why: str, *, send: bool) -> None:
        """Retire a pair. With ``send``: its outbound half now, a DELETE of
        its inbound SPI to the peer, the inbound half when the peer answers."""
        if child.state is ChildState.DELETED:
            return
        child.transition(ChildEvent.DELETED)
        self._sa_event(now, f"deleted ({why})", child)
        sa = self.child_ike.get(child)
        if not send or sa is None or not sa.established:
            self._drop_halves(now, child)
            return
        self.sad.delete(child.sa_out, now)
        self._enqueue(now, sa, Exchange(K.DELETE_CHILD, child=child))

    def _drop_halves(self, now: float, child: ChildSa) -> None:
        """Both halves out of the SAD and the pair out of the tables. A pair
        we answered the rekey of ``child`` with starts sending now: the
        rekey's initiator deleting the old pair is the sign that it has the
        new one (so the loser of a collision never sends on the winner's
        pair before the winner installed it)."""
        if child.state is not ChildState.DELETED:
            child.transition(ChildEvent.DELETED)
        self.sad.delete(child.sa_in, now)
        self.sad.delete(child.sa_out, now)
        if child in self.children.pairs:
            self.children.remove(child)
        sa = self.child_ike.pop(child, None)
        if sa is not None and child in sa.children:
            sa.children.remove(child)
        self.results.pop(child, None)
        if child in self.rekeys:  # kept while a rekey of it that crossed may still complete
            self.transport.schedule(now + IKEV2_RETRANSMIT.give_up_after(), lambda t: self._forget_rekeys(child))
        for successor in self.children.pairs:
            if successor.replaces is child and not successor.loser:
                self.sad.activate(successor.sa_out)

    def _forget_rekeys(self, child: ChildSa) -> None:
        self.rekeys.pop(child, None)

    def _delete_child_done(self, now: float, sa: Ikev2Sa, exch: Exchange, data: bytes) -> None:
        info: Informational = exch.task
        info.process_i(data, now)
        if exch.child is not None:
            self._drop_halves(now, exch.child)

    def _informational_r(self, now: float, sa: Ikev2Sa, mid: int, data: bytes) -> bytes | None:
        """DELETE of CHILD_SAs or of the IKE SA, or a liveness check (1.4, 2.4)."""

        def pairs(spi: bytes) -> PairHalf | None:
            child = self.children.by_spi_out.get(_spi(spi))
            if child is None:
                return None
            return PairHalf(child.sa_in.spi.to_bytes(4, "big"), child.state is ChildState.DELETED)

        info = Informational(sa.keys, self.random, mid, False)
        info.process_r(data, now, pairs)
        reply = info.build_r(now)
        if reply is None:
            self._log(now, sa, f"INFORMATIONAL request undecryptable: {info.error}")
            return None
        for spi in info.result.deleted_child_spis:
            child = self.children.by_spi_out.get(_spi(spi))
            if child is not None:
                self._log(now, sa, f"Received DELETE for IPsec SA [SPI: 0x{_spi(spi):X}]")
                if child.state is not ChildState.DELETED:
                    child.transition(ChildEvent.DELETED)
                    self._sa_event(now, "deleted (peer's DELETE)", child)
                self._drop_halves(now, child)
        for spi in info.result.crossed_child_spis:
            self._crossing_child_delete(now, sa, _spi(spi))
        if info.result.delete_ike:
            self._log(now, sa, "Received DELETE for the IKEv2 SA")
            if sa.rival is not None:  # only the winner of a crossing rekey deletes the old SA (2.8.2)
                rival, sa.rival = sa.rival[0], None
                self._log(now, sa, f"IKE SA rekey collision: the peer's DELETE of the old SA came first, "
                                   f"its rekey (SA ID {rival.sa_id}) survives (RFC 7296 2.8.2)")
                self._adopt(now, sa, rival)
            self._remove_children(now, sa, "peer deleted the IKE SA")
            if sa.state is not Ikev2SaState.DELETED:
                sa.transition(Ikev2SaEvent.DELETE)
            if self._deletes_crossed(sa):
                self._crossing_ike_delete(now, sa)
        elif not info.result.deleted_child_spis and not info.result.crossed_child_spis:
            self._log(now, sa, "Received DPD/liveness query; answering")
        return reply

    def _crossing_child_delete(self, now: float, sa: Ikev2Sa, spi_out: int) -> None:
        """The peer deletes a pair whose DELETE we sent (or queued) too
        (RFC 7296 1.4.1): the outbound half goes while processing its
        request (ours went when we decided), the inbound half with the
        answer to our own DELETE."""
        child = self.children.by_spi_out[spi_out]
        self._log(now, sa, f"Received crossing DELETE for IPsec SA [SPI: 0x{spi_out:X}] that we delete too: "
                           f"outbound SA gone, inbound SA goes with the answer to ours (RFC 7296 1.4.1)")
        self.sad.delete(child.sa_out, now)

    def _deletes_crossed(self, sa: Ikev2Sa) -> bool:
        """The peer deleted ``sa`` while our DELETE of it is in flight (RFC 7296 1.4.1)."""
        ours = sa.outstanding
        return sa.state is Ikev2SaState.DELETED and ours is not None and ours.kind is K.DELETE_IKE

    def _crossing_ike_delete(self, now: float, sa: Ikev2Sa) -> None:
        """Both ends delete the IKE SA at once (1.4.1): the peer's request,
        just answered, says it is deleting the SA, so ours needs no more
        retransmissions. The SA (its CHILD_SAs gone) stays only to answer a
        retransmission of the peer's DELETE from the cache (2.1), until our
        DELETE is answered or the peer's retransmissions would have ended."""
        ours = sa.outstanding
        assert ours is not None
        self.transport.cancel_retransmit(ours.retransmit)
        self._log(now, sa, "Our DELETE of the IKEv2 SA crossed the peer's (RFC 7296 1.4.1): not retransmitting it")

        def linger_over(t: float) -> None:
            if sa in self.sas:
                self._remove_sa(t, sa, "deleted by both ends, our DELETE unanswered")
        self.transport.schedule(now + IKEV2_RETRANSMIT.give_up_after(), linger_over)

    @staticmethod
    def _deleting(sa: Ikev2Sa) -> bool:
        """Our DELETE of the IKE SA is in flight or queued."""
        return any(e.kind is K.DELETE_IKE for e in ([sa.outstanding] if sa.outstanding else []) + sa.queue)

    def _send_ike_delete(self, now: float, sa: Ikev2Sa) -> None:
        self._enqueue(now, sa, Exchange(K.DELETE_IKE))

    def _delete_ike_done(self, now: float, sa: Ikev2Sa, exch: Exchange, data: bytes) -> None:
        self._remove_sa(now, sa, "deleted by both ends" if sa.state is Ikev2SaState.DELETED else "deleted")

    def _remove_children(self, now: float, sa: Ikev2Sa, why: str) -> None:
        for child in list(sa.children):
            if child.state is not ChildState.DELETED:
                child.transition(ChildEvent.DELETED)
                self._sa_event(now, f"deleted ({why})", child)
            self._drop_halves(now, child)

    def _remove_sa(self, now: float, sa: Ikev2Sa, why: str) -> None:
        """Forget an IKE SA and (unless a rekey moved them) its CHILD_SAs."""
        self._remove_children(now, sa, why)
        if sa.state is not Ikev2SaState.DELETED:
            sa.transition(Ikev2SaEvent.DELETE)
        self._forget(sa)
        self._log(now, sa, f"Deleting IKEv2 SA ({why})")

    def _forget(self, sa: Ikev2Sa) -> None:
        if sa.outstanding is not None:
            self.transport.cancel_retransmit(sa.outstanding.retransmit)
            sa.outstanding = None
        sa.queue.clear()
        if sa in self.sas:
            self.sas.remove(sa)

    # ================================================================== IKE SA rekey and lifetime
    def _ike_rekey(self, now: float, sa: Ikev2Sa) -> None:
        if sa in self.sas and sa.established and not sa.rekey_started:
            sa.rekey_started = True
            self._enqueue(now, sa, Exchange(K.REKEY_IKE))

    def _ike_rekey_done(self, now: float, sa: Ikev2Sa, exch: Exchange, data: bytes) -> None:
        """Our IKE SA rekey was answered. When the peer's rekey of the same
        SA crossed it (``sa.rival``), RFC 7296 2.8.2 settles which new SA
        survives: the one whose exchange used the lowest nonce is redundant
        and deleted by its initiator; the survivor inherits the CHILD_SAs
        and its initiator deletes the old SA."""
        task: IkeRekey = exch.task
        ok = task.process_i(data, now)
        if ok is None:
            task.message_id = sa.next_mid
            self._launch(now, sa, Exchange(K.REKEY_IKE, message_id=sa.next_mid, task=task), task.build_i(now))
            return
        rival, sa.rival = sa.rival, None
        if not ok or task.new_sa is None or task.nonces is None:
            self._log(now, sa, f"IKE SA rekey failed: {task.error}")
            sa.rekey_started = False
            if rival is not None:  # the peer's crossing rekey stands alone; the peer deletes the old SA
                self._adopt(now, sa, rival[0])
            return
        mine = self._rekeyed_sa(now, sa, task.new_sa)
        if rival is None:
            self._adopt(now, sa, mine)
            self._send_ike_delete(now, sa)
            return
        theirs, their_nonces = rival
        mine_lost = redundant(task.nonces, their_nonces)
        self.ike_collisions.append(IkeCollisionRecord(sa.sa_id, task.nonces, their_nonces, mine.sa_id, theirs.sa_id,
                                                      mine_lost))
        self._log(now, sa, f"IKE SA rekey collision: ours (SA ID {mine.sa_id}) "
                           f"{'is redundant (lowest nonce), deleting it' if mine_lost else 'survives'} "
                           f"(RFC 7296 2.8.2)")
        if mine_lost:
            self._adopt(now, sa, theirs)
            self._send_ike_delete(now, mine)
        else:
            self._adopt(now, sa, mine)
            self._send_ike_delete(now, sa)
            # The loser may never have set up its redundant SA: strongSwan 5.9 drops a response whose
            # message ID is that of the request it is processing and then, on our DELETE of the old SA,
            # destroys its own new SA silently ("peer did not notice IKE_SA rekey collision").
            self._expect_delete(now, theirs, REDUNDANT_WAIT)

    def _ike_rekey_r(self, now: float, sa: Ikev2Sa, mid: int, data: bytes) -> bytes | None:
        """The peer rekeys the IKE SA. While our own rekey of it is in
        flight the new SA waits as ``sa.rival`` for 2.8.2 to settle."""
        task = IkeRekey(sa.keys, proposals_for(self.config, sa.local), self.random, mid, False)
        task.process_r(data, now)
        reply = task.build_r(now)
        if reply is None or task.new_sa is None or task.nonces is None:
            return reply
        new = self._rekeyed_sa(now, sa, task.new_sa)
        ours = sa.outstanding
        if ours is not None and ours.kind is K.REKEY_IKE:
            self._log(now, sa, f"IKE SA rekey collision: the peer's rekey (SA ID {new.sa_id}) crossed ours")
            sa.rival = (new, task.nonces)
        else:
            self._adopt(now, sa, new)
        return reply

    def _rekeyed_sa(self, now: float, old: Ikev2Sa, keys: IkeSaState) -> Ikev2Sa:
        """The new IKE SA of a rekey of ``old`` (RFC 7296 2.18), established, without CHILD_SAs yet."""
        new = self._new_sa(now, keys.initiator, old.local, old.peer, keys)
        new.local_port, new.peer_port, new.auth, new.profile = old.local_port, old.peer_port, old.auth, old.profile
        new.nat = old.nat
        self._export_keys(keys)
        self._established(now, new, Ikev2SaEvent.TAKE_OVER)
        return new

    def _adopt(self, now: float, old: Ikev2Sa, new: Ikev2Sa) -> None:
        """``new`` replaces ``old``: it inherits the CHILD_SAs; the old one
        only waits for its DELETE (ours, or the peer's: then not forever)."""
        for child in old.children:
            self.child_ike[child] = new
        new.children, old.children = new.children + old.children, []
        old.transition(Ikev2SaEvent.REKEYED)
        self._log(now, old, f"IKE SA rekeyed: new SA ID {new.sa_id}")
        if not new.initiator:
            self._expect_delete(now, old)

    def _expect_delete(self, now: float, sa: Ikev2Sa, wait: float | None = None) -> None:
        """The peer is to delete ``sa`` (a rekeyed or redundant IKE SA, 2.8.2);
        if its DELETE never comes, the SA goes (without a word) after
        ``wait``, by default when the peer's retransmissions would have
        given up."""
        def give_up(t: float) -> None:
            if sa in self.sas and sa.state is not Ikev2SaState.DELETED:
                self._remove_sa(t, sa, "the peer's DELETE never came")
        self.transport.schedule(now + (IKEV2_RETRANSMIT.give_up_after() if wait is None else wait), give_up)

    def _ike_expired(self, now: float, sa: Ikev2Sa) -> None:
        if sa in self.sas and sa.expires_at is not None and now >= sa.expires_at:
            self._remove_sa(now, sa, "lifetime expired")

    # ================================================================== DPD
    def _dpd_arm(self, now: float, sa: Ikev2Sa) -> None:
        dpd = sa.profile.dpd if sa.profile is not None else None
        if dpd is not None:
            self.transport.schedule(now + dpd.interval, lambda t: self._dpd_check(t, sa))

    def _dpd_check(self, now: float, sa: Ikev2Sa) -> None:
        """``dpd INTERVAL RETRY periodic``: a liveness check after INTERVAL
        without a message from the peer; ``on-demand``: only while we send
        to it and hear nothing back (RFC 7296 2.4)."""
        if sa not in self.sas or not sa.established or sa.profile is None or sa.profile.dpd is None:
            return
        dpd = sa.profile.dpd
        last_in, last_out = self.traffic(sa.peer)
        heard = max(sa.last_rx, last_in or 0.0)
        quiet = now - heard >= dpd.interval
        wanted = quiet if dpd.mode.value == "periodic" else quiet and last_out is not None and last_out > heard
        if wanted and sa.outstanding is None and not sa.queue:
            self._enqueue(now, sa, Exchange(K.LIVENESS))
        self.transport.schedule(now + dpd.interval, lambda t: self._dpd_check(t, sa))

    def _liveness_done(self, now: float, sa: Ikev2Sa, exch: Exchange, data: bytes) -> None:
        info: Informational = exch.task
        if info.process_i(data, now):
            self._log(now, sa, "Received DPD/liveness response")

    # ================================================================== helpers
    def _ike_for(self, peer: str) -> Ikev2Sa | None:
        best = None
        for sa in self.sas:
            if sa.peer == peer and sa.established:
                best = sa
        return best

    def _negotiating(self, flow: Flow) -> bool:
        for sa in self.sas:
            if sa.peer != flow[0]:
                continue
            if any((r.peer, r.selector) == flow for r in sa.pending):
                return True
            for exch in ([sa.outstanding] if sa.outstanding else []) + sa.queue:
                r = exch.request
                if r is not None and (r.peer, r.selector) == flow:
                    return True
        return False

    def _pair_of(self, sa: SecurityAssociation) -> ChildSa | None:
        table = self.children
        return (table.by_spi_in if sa.direction is SaDirection.INBOUND else table.by_spi_out).get(sa.spi)

    def _left(self, sa: Ikev2Sa, now: float) -> int:
        return int(sa.expires_at - now) if sa.expires_at is not None else 0

    def _export_keys(self, keys: IkeSaState) -> None:
        if keys.keys is not None and keys.algorithms is not None:
            self.key_lines.append(key_record(keys.spi_i, keys.spi_r, keys.algorithms.cipher, keys.keys).line())

    def _send(self, sa: Ikev2Sa, packet: bytes, now: float | None = None, exch: Exchange | None = None) -> None:
        self.transport.send(Datagram(sa.local, sa.local_port, sa.peer, sa.peer_port, packet))
        if now is not None and exch is not None:
            self._log(now, sa, f"Sending Packet [To {sa.peer}:{sa.peer_port}/From {sa.local}:{sa.local_port}/"
                               f"VRF i0:f0]\nInitiator SPI : {sa.keys.spi_i.hex().upper()} - Responder SPI : "
                               f"{sa.keys.spi_r.hex().upper()} Message id: {exch.message_id}\n"
                               f"IKEv2 {exch.kind.value.split(' ')[0]} Exchange REQUEST")

    def _log(self, now: float, sa: Ikev2Sa | None, text: str, **fields: Any) -> None:
        """A ``debug crypto ikev2`` line, IOS-XE's prefix
        ``(SESSION ID = n,SA ID = n):`` (the texts are our guesses at IOS-XE's)."""
        if self.transport.debug:
            sid = sa.sa_id if sa is not None else 0
            fields.update(facility="IKEv2", sa_id=sid)
            self.transport.debug_line(now, f"(SESSION ID = {sid},SA ID = {sid}):{text}", fields)

    def _syslog(self, now: float, text: str, tag: str = "%IKEV2-3-NEG_ABORT", **fields: Any) -> None:
        """A syslog message (always logged); ``tag`` is the IOS-XE mnemonic
        (SA_UP, SA_DOWN, NEG_ABORT: the names we know; texts are ours)."""
        fields["facility"] = tag
        self.transport.event(now, text, fields)

    def _sa_event(self, now: float, what: str, child: ChildSa) -> None:
        """A machine-readable SA lifecycle event (category ``ipsec``), as IKEv1's."""
        self.transport.event(now, f"IPsec SA pair {what}: in 0x{child.sa_in.spi:X} out 0x{child.sa_out.spi:X} "
                                  f"peer {child.peer} ({child.reason.value})",
                             {"what": what, "spi_in": child.sa_in.spi, "spi_out": child.sa_out.spi,
                              "peer": child.peer, "initiator": child.initiator, "reason": child.reason.value,
                              "loser": child.loser, "ike": "v2"}, category="ipsec")


def _xname(xchg: int) -> str:
    try:
        return ExchangeType(xchg).name
    except ValueError:
        return str(xchg)


def _with_windows(view: Ikev2SaView, sa: Ikev2Sa) -> Ikev2SaView:
    """The detail fields only the engine knows: message IDs and DPD settings."""
    dpd = sa.profile.dpd if sa.profile is not None else None
    return replace(view, local_next_msg_id=sa.next_mid, remote_next_msg_id=sa.peer_mid,
                   local_req_msg_id=max(sa.next_mid - 1, 0), remote_req_msg_id=max(sa.peer_mid - 1, 0),
                   local_req_queued=len(sa.queue), dpd_interval=dpd.interval if dpd else 0,
                   dpd_retry=dpd.retry if dpd else 0)
