"""The IKEv2 engine of one router: IKE SAs, their exchanges, CHILD_SAs in
the SAD, rekeys, collisions, deletes and liveness (RFC 7296).

The router's :class:`~dmvpn.ike.manager.KeyManager` for IKEv2, composed
(not inherited) over the version-neutral
:class:`~dmvpn.ike.transport.IkeTransport` like
:class:`~dmvpn.ike.engine.Ikev1Engine`. It is charon's ``task_manager_v2``:
it routes each message to its IKE SA's message-ID window
(:class:`~dmvpn.ike.v2.window.MessageWindow`: window size 1, retransmission,
cached responses) and each request and response to the part of the engine
whose exchange it is, over the pure exchange tasks of :mod:`dmvpn.ike.v2`:

- :mod:`~dmvpn.ike.v2.ike_sa_setup`: IKE_SA_INIT and IKE_AUTH (COOKIE,
  INVALID_KE retry, NAT-T, INITIAL_CONTACT);
- :mod:`~dmvpn.ike.v2.child_sas`: CREATE_CHILD_SA for CHILD_SAs, their
  rekeys and 2.8.1 collisions, the SAD;
- :mod:`~dmvpn.ike.v2.ike_lifetime`: the IKE SA's lifetime, its rekeys
  and 2.8.2 collisions;
- :mod:`~dmvpn.ike.v2.deletes`: DELETEs of CHILD_SAs and IKE SAs, also
  crossing (1.4.1), and a peer that stopped answering;
- :mod:`~dmvpn.ike.v2.liveness`: DPD (2.4).

They share an :class:`~dmvpn.ike.v2.context.Ikev2Context`; what one asks
of another it is given at construction, or asks the engine through a small
Protocol (:class:`~dmvpn.ike.v2.window.WindowOwner`,
:class:`~dmvpn.ike.v2.deletes.DeleteOwner`), which the engine implements.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address

from dmvpn.config import RouterConfig
from dmvpn.ike.context import TrafficProbe
from dmvpn.ike.isakmp_sa import ChildRequest
from dmvpn.ike.manager import IKEV2_MAJOR, ChildSaView, Datagram
from dmvpn.ike.profiles import BehaviourProfile
from dmvpn.ike.proposals import ChildPolicy
from dmvpn.ike.states import ChildState, IllegalTransition
from dmvpn.ike.transport import IkeTransport
from dmvpn.ike.v2.child_sas import ChildSas
from dmvpn.ike.v2.context import IKEV2_RETRANSMIT, Ikev2Context, exchange_name
from dmvpn.ike.v2.deletes import Deletes
from dmvpn.ike.v2.ike_lifetime import IkeSaLifetime
from dmvpn.ike.v2.ike_rekey import IkeRekey
from dmvpn.ike.v2.ike_sa import Exchange, ExchangeKind, Ikev2Sa
from dmvpn.ike.v2.ike_sa_setup import IkeSaSetup
from dmvpn.ike.v2.liveness import Liveness
from dmvpn.ike.v2.protect import open_message
from dmvpn.ike.v2.settings import proposals_for
from dmvpn.ike.v2.states import Ikev2SaState
from dmvpn.ike.v2.views import child_view, sa_view, with_windows
from dmvpn.ike.v2.window import MessageWindow
from dmvpn.ike.views import child_sa_views
from dmvpn.ipsec.events import HardExpired, SadEvent, SoftExpired
from dmvpn.ipsec.sa import Selector
from dmvpn.ipsec.sad import SecurityAssociationDatabase
from dmvpn.sansio import LogEvent, RandomSource
from dmvpn.show.ikev2_views import Ikev2SaView, Ikev2SessionView
from dmvpn.show.views import CryptoSessionView, IsakmpSaView, SessionIkeSaView
from dmvpn.wire.errors import DecodeError
from dmvpn.wire.ikev2 import Ikev2Header, decode_header
from dmvpn.wire.ikev2_payloads import SaPayload
from dmvpn.wire.ikev2_registry import ExchangeType, NotifyType, ProtocolId
from dmvpn.wire.isakmp import NAT_T_PORT

K = ExchangeKind
#: One part's handler of a response to our request.
Completion = Callable[[float, Ikev2Sa, Exchange, bytes], None]


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
        self.config = config
        self.sad = sad
        self.profile = profile
        self.transport = IkeTransport(name, IKEV2_RETRANSMIT, category="ikev2")
        self.ctx = ctx = Ikev2Context(name, config, sad, random, profile, child_policies,
                                      traffic or (lambda peer: (None, None)), self.transport, force_nat_t)
        #: The tables the lab, the shows and the tests read (shared with the parts).
        self.sas, self.children, self.child_ike, self.results = ctx.sas, ctx.children, ctx.child_ike, ctx.results
        self.collisions, self.ike_collisions, self.key_lines, self.stats = (
            ctx.collisions, ctx.ike_collisions, ctx.key_lines, ctx.stats)
        self.window = MessageWindow(ctx, self)
        self.deletes = Deletes(ctx, self.window, self)
        self.liveness = Liveness(ctx, self.window)
        self.lifetime = IkeSaLifetime(ctx, self.window, self.deletes, self.liveness)
        self.child_sas = ChildSas(ctx, self.window, self.deletes)
        self.setup = IkeSaSetup(ctx, self.window, self.deletes, self.lifetime, self.child_sas)
        self._builders: dict[ExchangeKind, Callable[[float, Ikev2Sa, Exchange], bytes | None]] = {
            K.CREATE_CHILD: self.child_sas.build, K.REKEY_CHILD: self.child_sas.build, K.REKEY_IKE: self.lifetime.build,
            K.DELETE_CHILD: self.deletes.build, K.DELETE_IKE: self.deletes.build, K.LIVENESS: self.liveness.build}
        self._completions: dict[ExchangeKind, Completion] = {
            K.IKE_SA_INIT: self.setup.init_done, K.IKE_AUTH: self.setup.auth_done,
            K.CREATE_CHILD: self.child_sas.done, K.REKEY_CHILD: self.child_sas.done,
            K.REKEY_IKE: self.lifetime.rekey_done, K.DELETE_CHILD: self.deletes.delete_child_done,
            K.DELETE_IKE: self.deletes.delete_ike_done, K.LIVENESS: self.liveness.done}
        period = profile.lifetime_check_period
        if period is not None:
            self.transport.schedule(random.uniform(0.0, period), self.child_sas.lifetime_check)

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
            self.ctx.syslog(now, f"IKEv2 message from {src} dropped: {err}", peer=src)
            return
        try:
            self._receive(now, src, sport, dst, dport, data, hdr)
        except IllegalTransition as err:
            self.ctx.syslog(now, f"IKEv2 message from {src} dropped: {err}", peer=src)

    def acquire(self, now: float, policy: ChildPolicy, peer: str, local: str, selector: Selector) -> None:
        """Traffic for ``selector`` found no outbound SA: IKE_SA_INIT +
        IKE_AUTH, or CREATE_CHILD_SA on an established IKE SA."""
        flow = (peer, selector)
        if self.ctx.holdoff.get(flow, -1.0) > now or self.window.negotiating(flow):
            return
        current = self.children.current(flow)
        if current is not None and current.sa_out.sad is not None:
            return
        self._request(now, ChildRequest(policy, peer, local, selector))

    def invalid_spi(self, now: float, src: str, dst: str, spi: int, iface: str) -> None:
        """ESP for an unknown SPI (RFC 7296 2.21.4: an INVALID_SPI notify is optional; IOS logs it)."""
        self.ctx.syslog(now, f"decaps: rec'd IPSEC packet has invalid spi for destaddr={dst}, prot=50, "
                             f"spi=0x{spi:X}({spi}), srcaddr={src}, input interface={iface}",
                        "%CRYPTO-4-RECVD_PKT_INV_SPI", peer=src)

    def clear(self, now: float, peer: str | None = None) -> int:
        """``clear crypto sa [peer A]``: DELETE the CHILD_SAs (the IKE SAs stay)."""
        victims = [c for c in self.children.pairs if peer is None or c.peer == peer]
        for child in victims:
            self.deletes.delete_child(now, child, "clear crypto sa", send=True)
        return len(victims)

    def clear_ike(self, now: float, peer: str | None = None) -> int:
        """``clear crypto ikev2 sa [remote A]``: DELETE the IKE SAs and with them their CHILD_SAs (1.4.1)."""
        victims = [s for s in self.sas if peer is None or s.peer == peer]
        for sa in victims:
            if sa.established:
                self.deletes.send_ike_delete(now, sa)
            else:
                self.deletes.remove_sa(now, sa, "clear crypto ikev2 sa")
        return len(victims)

    def rekey(self, now: float, peer: str | None = None) -> int:
        """Rekey every current pair (with ``peer``) now, as at its soft lifetime."""
        started = 0
        for child in list(self.children.pairs):
            if (peer is None or child.peer == peer) and child.state is ChildState.ACTIVE and not child.loser:
                child.soft_reason = child.soft_reason or "time"
                started += self.child_sas.rekey(now, child, force=True)
        return started

    def rekey_ike(self, now: float, peer: str | None = None) -> int:
        """Rekey the established IKE SAs (with ``peer``) now (RFC 7296 2.18)."""
        victims = [s for s in self.sas if (peer is None or s.peer == peer) and s.established and not s.rekey_started]
        for sa in victims:
            self.lifetime.rekey(now, sa)
        return len(victims)

    def sad_events(self, now: float, events: list[SadEvent] | None = None) -> None:
        """The SAD's soft limits start rekeys (at once, or at the profile's
        periodic check), its hard limits delete the pair."""
        for ev in events if events is not None else self.sad.poll_events():
            child = self.ctx.pair_of(ev.sa)
            if child is None:
                continue
            if isinstance(ev, SoftExpired) and child.state is ChildState.ACTIVE:
                child.soft_reason = child.soft_reason or ev.reason
                if self.profile.lifetime_check_period is None:
                    self.child_sas.rekey(ev.time, child)
            elif isinstance(ev, HardExpired):
                self.deletes.delete_child(ev.time, child, f"{ev.reason} lifetime expired", send=True)

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

    # ================================================================== views
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
                                               s.sa_id, "", s.sa_id, _left(s, now)) for s in ike)))
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
            out.append(with_windows(view, sa))
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

    # ================================================================== messages
    def _receive(self, now: float, src: str, sport: int, dst: str, dport: int, data: bytes,
                 hdr: Ikev2Header) -> None:
        response = bool(hdr.flags & 0x20)
        xchg = hdr.exchange_type
        sa = self.window.lookup(hdr, src, response)
        if sa is None:
            if xchg == ExchangeType.IKE_SA_INIT and not response and hdr.message_id == 0:
                self.setup.init_r(now, src, sport, dst, dport, data)
            else:
                self.ctx.log(now, None, f"Received packet for an unknown IKE SA from {src}:{sport}, dropped")
            return
        sa.peer_port, sa.last_rx = sport, now
        if sa.nat and dport == NAT_T_PORT and sa.local_port != NAT_T_PORT:  # the initiator floated (2.23)
            sa.local_port = NAT_T_PORT
        self.ctx.log(now, sa, f"Received Packet [From {src}:{sport}/To {dst}:{dport}/VRF i0:f0]\n"
                              f"Initiator SPI : {sa.keys.spi_i.hex().upper()} - Responder SPI : "
                              f"{sa.keys.spi_r.hex().upper()} Message id: {hdr.message_id}\n"
                              f"IKEv2 {exchange_name(xchg)} Exchange {'RESPONSE' if response else 'REQUEST'}")
        if response:
            self.window.response(now, sa, hdr, data)
        else:
            self.window.request(now, sa, hdr, data)

    def _request(self, now: float, request: ChildRequest) -> None:
        """Negotiate a pair: CREATE_CHILD_SA on the peer's IKE SA, queued
        behind an IKE SA being set up, or after a new IKE_SA_INIT."""
        sa = self.ctx.ike_for(request.peer)
        if sa is not None:
            kind = K.REKEY_CHILD if request.rekey_of is not None else K.CREATE_CHILD
            self.window.enqueue(now, sa, Exchange(kind, request=request, child=request.rekey_of))
            return
        for pending in self.sas:
            if pending.peer == request.peer and not pending.established and pending.state is not Ikev2SaState.DELETED:
                if pending.initiator and not any(r.selector == request.selector for r in pending.pending):
                    pending.pending.append(request)
                return
        self.setup.init_i(now, request)

    # ------------------------------------------------------------ WindowOwner, DeleteOwner
    def start(self, now: float, sa: Ikev2Sa, exch: Exchange) -> bytes | None:
        """Build the request of a queued exchange with its message ID."""
        return self._builders[exch.kind](now, sa, exch)

    def completed(self, now: float, sa: Ikev2Sa, exch: Exchange, data: bytes) -> None:
        """The response to our request, to the part whose exchange it is."""
        self._completions[exch.kind](now, sa, exch, data)

    def gave_up(self, now: float, sa: Ikev2Sa, exch: Exchange) -> None:
        self.deletes.gave_up(now, sa, exch)

    def adopt(self, now: float, old: Ikev2Sa, new: Ikev2Sa) -> None:
        self.lifetime.adopt(now, old, new)

    def answer(self, now: float, sa: Ikev2Sa, hdr: Ikev2Header, data: bytes) -> bytes | None:
        """The peer's next request, by exchange type and the IKE SA's state."""
        xchg, mid = hdr.exchange_type, hdr.message_id
        if xchg == ExchangeType.IKE_AUTH and sa.state is Ikev2SaState.INIT_DONE:
            return self.setup.auth_r(now, sa, data)
        if xchg == ExchangeType.CREATE_CHILD_SA and sa.established and not sa.deleting:
            return self._create_child_sa_r(now, sa, mid, data)
        if xchg == ExchangeType.CREATE_CHILD_SA and (sa.state is Ikev2SaState.REKEYED or sa.deleting):
            # RFC 7296 2.25: this SA is rekeyed or being deleted (a delayed crossing rekey, a DELETE crossing it)
            self.ctx.log(now, sa, "CREATE_CHILD_SA on an IKE SA being deleted refused: TEMPORARY_FAILURE")
            self.stats["rekeys_refused"] += 1
            return IkeRekey(sa.keys, proposals_for(self.config, sa.local), self.ctx.random, mid, False).refuse(
                NotifyType.TEMPORARY_FAILURE, "the IKE SA is rekeyed")
        if xchg == ExchangeType.INFORMATIONAL and sa.state in (Ikev2SaState.ESTABLISHED, Ikev2SaState.REKEYED):
            return self.deletes.informational_r(now, sa, mid, data)
        self.ctx.log(now, sa, f"{exchange_name(xchg)} request in state {sa.state.value}, dropped")
        return None

    def _create_child_sa_r(self, now: float, sa: Ikev2Sa, mid: int, data: bytes) -> bytes | None:
        """A CREATE_CHILD_SA request: an IKE SA rekey (SA of protocol IKE)
        or a new/rekeyed CHILD_SA."""
        try:
            peek = open_message(sa.keys, data)
        except DecodeError as exc:
            self.ctx.log(now, sa, f"CREATE_CHILD_SA request undecryptable: {exc}")
            return None
        sas = [p for p in peek.find(SaPayload) if isinstance(p, SaPayload)]
        if sas and sas[0].proposals and sas[0].proposals[0].protocol_id == ProtocolId.IKE:
            return self.lifetime.rekey_r(now, sa, mid, data)
        return self.child_sas.create_r(now, sa, mid, data, peek)


def _left(sa: Ikev2Sa, now: float) -> int:
    """Seconds of the IKE SA's lifetime left."""
    return int(sa.expires_at - now) if sa.expires_at is not None else 0
