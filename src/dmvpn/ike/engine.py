"""The IKEv1 engine of one router: ISAKMP SAs, exchanges, rekeying, DPD.

Sans-I/O (DESIGN.md's one rule): the router hands it UDP payloads
(:meth:`Ikev1Engine.receive`), "acquire" requests when traffic finds no SA
(:meth:`acquire`) and the SAD's lifetime events; it returns UDP datagrams
(:meth:`poll_datagrams`), log events (:meth:`poll_events`) and a deadline.
It installs and deletes SAs in the shared SAD directly (the SAD is its
kernel interface, as charon's kernel_ipsec). It is the router's
:class:`~dmvpn.ike.manager.KeyManager` for IKEv1.

The engine is the task manager (charon's ``task_manager_v1``): it owns the
ISAKMP SAs' lifecycle and dispatches each message to its exchange's task,
:class:`~dmvpn.ike.main_mode.MainMode`,
:class:`~dmvpn.ike.quick_mode.QuickMode` or
:class:`~dmvpn.ike.informational.Informational`; the lifetime and rekey
rules are :class:`~dmvpn.ike.rekey.Rekeying`, driven by the
:class:`~dmvpn.ike.profiles.BehaviourProfile`. The tasks share an
:class:`~dmvpn.ike.context.Ikev1Context` over the version-neutral
:class:`~dmvpn.ike.transport.IkeTransport` (timers, outbox, retransmission).
"""

from __future__ import annotations

from dmvpn.config import RouterConfig
from dmvpn.ike.context import ACQUIRE_HOLDOFF, Ikev1Context, TrafficProbe
from dmvpn.ike.informational import Informational
from dmvpn.ike.isakmp_sa import ChildRequest, ChildSa, IsakmpSa, QuickModeExchange
from dmvpn.ike.main_mode import MainMode
from dmvpn.ike.manager import IKEV1_MAJOR, ChildSaView, Datagram
from dmvpn.ike.profiles import BehaviourProfile
from dmvpn.ike.proposals import ChildPolicy
from dmvpn.ike.quick_mode import QuickMode
from dmvpn.ike.rekey import Rekeying
from dmvpn.ike.states import ChildEvent, ChildState, IllegalTransition, Phase1State
from dmvpn.ike.transport import IkeTransport, RetransmitTimers
from dmvpn.ike.views import child_sa_views, isakmp_sa_view, session_views
from dmvpn.ipsec.events import HardExpired, SadEvent, SoftExpired
from dmvpn.ipsec.sa import Selector
from dmvpn.ipsec.sad import SecurityAssociationDatabase
from dmvpn.sansio import LogEvent, RandomSource
from dmvpn.show.views import CryptoSessionView, IsakmpSaView
from dmvpn.wire.errors import DecodeError
from dmvpn.wire.isakmp import decode_header
from dmvpn.wire.isakmp_payloads import DeletePayload
from dmvpn.wire.isakmp_registry import ExchangeType, ProtocolId

#: A replaced ISAKMP SA is deleted this many seconds after its successor is up.
REPLACED_ISAKMP_DELETE_DELAY = 5.0


class Ikev1Engine:
    """IKEv1 for one router (or one shared tunnel-protection SAD): a
    :class:`~dmvpn.ike.manager.KeyManager`."""

    ike_version = IKEV1_MAJOR

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
        """``force_nat_t``: claim a NAT in front of this router (a NAT-D
        hash for a made-up address of ours), so that every negotiation with
        a NAT-T capable peer floats to UDP 4500 and its ESP travels in UDP
        (RFC 3947/3948) even without a NAT: what strongSwan's ``encap =
        yes`` does, for paths that pass UDP but drop IP protocol 50."""
        self.name = name
        self.config = config
        self.sad = sad
        self.profile = profile
        self.child_policies = child_policies
        self.transport = IkeTransport(name, RetransmitTimers(profile.retransmit_initial, profile.retransmit_backoff,
                                                             profile.retransmit_max_interval, profile.retransmit_limit))
        self.ctx = ctx = Ikev1Context(name, config, sad, random, profile, child_policies,
                                      traffic or (lambda peer: (None, None)), self.transport, force_nat_t)
        #: The ISAKMP SAs, the IPsec SA pairs and the counters (shared with the tasks).
        self.sas = ctx.sas
        self.children = ctx.children.pairs
        self.stats = ctx.stats
        self.informational = Informational(ctx, self)
        self.rekeying = Rekeying(ctx, self.informational, self)
        self.quick_mode = QuickMode(ctx, self.informational, self.rekeying)
        self.main_mode = MainMode(ctx, self)
        period = profile.lifetime_check_period
        if period is not None:
            ctx.schedule(random.uniform(0.0, period), self.rekeying.lifetime_check)

    # ================================================================== KeyManager
    def receive(self, now: float, src: str, sport: int, dst: str, dport: int, data: bytes) -> None:
        """An ISAKMP message arrived (UDP payload, without any NAT-T marker).
        A message the state machines have no transition for is dropped with
        the named :class:`IllegalTransition` logged, never raised."""
        try:
            self._receive(now, src, sport, dst, dport, data)
        except IllegalTransition as err:
            self.ctx.syslog(now, "%CRYPTO-4-IKMP_BAD_MESSAGE", f"IKE message from {src} dropped: {err}", peer=src)

    def _receive(self, now: float, src: str, sport: int, dst: str, dport: int, data: bytes) -> None:
        ctx = self.ctx
        try:
            hdr = decode_header(data)
        except DecodeError as err:
            ctx.syslog(now, "%CRYPTO-4-IKMP_BAD_MESSAGE",
                       f"IKE message from {src} failed its sanity check or is malformed ({err})", peer=src)
            return
        sa = self._lookup(hdr.initiator_cookie, hdr.responder_cookie, src)
        if sa is not None:
            sa.peer_port = sport
            if dport != sa.local_port and sa.state is not Phase1State.IKE_READY:
                sa.local_port = dport  # the peer floated to 4500 (RFC 3947 section 4)
            ctx.log(now, sa.conn_id if sa.established else 0,
                    f"received packet from {src} dport {dport} sport {sport} Global ({sa.role}) {sa.state.display}",
                    facility="ISAKMP-PAK")
        xchg = hdr.exchange_type
        if xchg == ExchangeType.IDENTITY_PROTECTION:
            self.main_mode.receive(now, sa, src, sport, dst, dport, hdr.responder_cookie, data)
        elif xchg == ExchangeType.QUICK_MODE:
            if sa is None or not sa.established:
                ctx.log(now, 0, f"Quick Mode from {src} without an established ISAKMP SA, dropped")
                return
            self.informational.peer_alive(now, sa)
            self.quick_mode.receive(now, sa, hdr.message_id, data)
        elif xchg == ExchangeType.INFORMATIONAL:
            self.informational.receive(now, sa, data, hdr)
        else:
            ctx.log(now, 0, f"exchange type {int(xchg)} from {src} not supported, dropped")

    def acquire(self, now: float, policy: ChildPolicy, peer: str, local: str, selector: Selector) -> None:
        """Traffic for ``selector`` found no outbound SA: negotiate one."""
        flow = (peer, selector)
        if self.ctx.holdoff.get(flow, -1.0) > now or self.ctx.negotiating(flow, as_initiator=True):
            return
        current = self.ctx.children.current(flow)
        if current is not None and current.sa_out.sad is not None:
            return
        self.request(now, ChildRequest(policy, peer, local, selector))

    def invalid_spi(self, now: float, src: str, dst: str, spi: int, iface: str) -> None:
        """ESP for an unknown SPI: logged, and with invalid-spi-recovery an INVALID-SPI notify."""
        self.informational.invalid_spi(now, src, dst, spi, iface)

    def sad_events(self, now: float, events: list[SadEvent] | None = None) -> None:
        """Consume the SAD's soft/hard lifetime events (time and volume)."""
        for ev in events if events is not None else self.sad.poll_events():
            if isinstance(ev, SoftExpired):
                self.rekeying.on_soft(ev.time, ev)
            elif isinstance(ev, HardExpired):
                self.rekeying.on_hard(ev.time, ev)

    def handle_timer(self, now: float) -> None:
        """SAD lifetimes first, then the transport's due timers, then the events they caused."""
        self.sad_events(now, self.sad.handle_timer(now))
        self.transport.run_due(now)
        self.sad_events(now)

    def next_deadline(self) -> float | None:
        mine = self.transport.next_deadline()
        sad = self.sad.next_deadline()
        if mine is None:
            return sad
        return mine if sad is None else min(mine, sad)

    def poll_datagrams(self) -> list[Datagram]:
        return self.transport.poll_datagrams()

    def poll_events(self) -> list[LogEvent]:
        return self.transport.poll_events()

    @property
    def debug(self) -> bool:
        """``debug crypto isakmp`` (the transport keeps the switch)."""
        return self.transport.debug

    @debug.setter
    def debug(self, on: bool) -> None:
        self.transport.debug = on

    def clear(self, now: float, peer: str | None = None) -> int:
        """``clear crypto sa [peer A]``: send DELETE for and remove the IPsec
        SA pairs; the ISAKMP SAs stay, as on IOS. Returns how many pairs."""
        victims = [c for c in self.children if peer is None or c.peer == peer]
        for child in victims:
            self.rekeying.delete_child(now, child, send=True, why="clear crypto sa")
        return len(victims)

    def rekey(self, now: float, peer: str | None = None) -> int:
        """Rekey the current pairs (with ``peer``) now; how many Quick Modes started."""
        return self.rekeying.rekey(now, peer)

    def isakmp_sa_views(self, now: float) -> list[IsakmpSaView]:
        dpd = self.config.isakmp_keepalive is not None
        return [isakmp_sa_view(sa, now, dpd) for sa in self.sas]

    def session_views(self, now: float) -> list[CryptoSessionView]:
        return session_views(self.sas, self.children, now, self.config.isakmp_keepalive is not None)

    def child_sa_views(self) -> list[ChildSaView]:
        return child_sa_views(self.children)

    # ================================================================== what the tasks ask of the engine
    def request(self, now: float, request: ChildRequest) -> None:
        """Negotiate a pair: Quick Mode on the peer's ISAKMP SA, queued behind
        a Main Mode in progress, or after a new Main Mode."""
        sa = self.ctx.isakmp_for(request.peer)
        if sa is not None:
            self.quick_mode.build_i(now, sa, request)
            return
        for pending in self.sas:
            if pending.peer == request.peer and not pending.established:
                if pending.initiator and not any(r.selector == request.selector for r in pending.pending):
                    pending.pending.append(request)
                return
        self.main_mode.build_i(now, request.local, request.peer, request)

    def delete_child(self, now: float, child: ChildSa, *, send: bool, why: str) -> None:
        self.rekeying.delete_child(now, child, send=send, why=why)

    def qm_failed(self, now: float, sa: IsakmpSa, node: QuickModeExchange, why: str) -> None:
        self.quick_mode.fail(now, sa, node, why)

    # ================================================================== ISAKMP SAs
    def new_isakmp_sa(self, now: float, *, initiator: bool, local: str, peer: str,
                      cky_i: bytes | None = None) -> IsakmpSa:
        """A new ISAKMP SA with a fresh cookie of ours (RFC 2408 section 2.5.3);
        a responder's gives up when Main Mode does not finish in time."""
        cookie = self._cookie()
        sa = IsakmpSa(next(self.ctx.conn_ids), initiator, local, peer,
                      cky_i=cookie if initiator else (cky_i or bytes(8)),
                      cky_r=bytes(8) if initiator else cookie, created=now)
        self.sas.append(sa)
        if not initiator:
            timeout = self.transport.timers.give_up_after()
            sa.responder_timeout = self.ctx.call_at(now + timeout, self._responder_timeout, sa)
        return sa

    def _responder_timeout(self, now: float, sa: IsakmpSa) -> None:
        if not sa.established and sa in self.sas:
            self.p1_failed(now, sa, f"Main Mode with {sa.peer} not completed in time")

    def _cookie(self) -> bytes:
        while True:
            c = self.ctx.random.token_bytes(8)
            if c != bytes(8) and all(c not in (s.cky_i, s.cky_r) for s in self.sas):
                return c

    def _lookup(self, cky_i: bytes, cky_r: bytes, src: str) -> IsakmpSa | None:
        for sa in self.sas:
            if sa.cky_i != cky_i:
                continue
            if sa.cky_r == cky_r:
                return sa
            if sa.initiator and sa.cky_r == bytes(8) and sa.state is Phase1State.IKE_I_MM1 and sa.peer == src:
                sa.cky_r = cky_r
                return sa
            if not sa.initiator and cky_r == bytes(8) and sa.peer == src:
                return sa
        return None

    def p1_complete(self, now: float, sa: IsakmpSa) -> None:
        """Main Mode done: arm lifetimes and DPD, run the queued Quick Modes."""
        ctx = self.ctx
        self.main_mode.complete(now, sa)
        assert sa.choice is not None and sa.expires_at is not None
        ctx.call_at(sa.expires_at, self._p1_expired, sa)
        if sa.initiator:
            sa.soft_at = now + sa.choice.lifetime * self.profile.phase1_rekey_fraction
            ctx.call_at(sa.soft_at, self._p1_rekey, sa)
        older = [o for o in self.sas if o is not sa and o.peer == sa.peer and o.established and not o.replaced]
        for o in older:
            if o.rekey_started or sa.initiator == o.initiator:
                o.replaced = True
                ctx.call_at(now + REPLACED_ISAKMP_DELETE_DELAY, self._delete_isakmp, o)
        self.informational.dpd_arm(now, sa)
        if sa.nat_detected and self.config.isakmp_nat_keepalive:
            ctx.call_at(now + self.config.isakmp_nat_keepalive, self._nat_keepalive, sa)
        pending, sa.pending = sa.pending, []
        for request in pending:
            if not ctx.negotiating((request.peer, request.selector), as_initiator=True):
                self.quick_mode.build_i(now, sa, request)

    def _nat_keepalive(self, now: float, sa: IsakmpSa) -> None:
        """A lone 0xFF on UDP 4500 keeps the NAT mapping open when nothing
        else went to the peer for the keepalive interval (RFC 3948 2.3)."""
        interval = self.config.isakmp_nat_keepalive
        if sa not in self.sas or not interval:
            return
        last_out = self.ctx.traffic(sa.peer)[1]
        if last_out is None or now - last_out >= interval:
            self.transport.send(Datagram(sa.local, sa.local_port, sa.peer, sa.peer_port, b"\xff", raw=True))
        self.ctx.call_at(now + interval, self._nat_keepalive, sa)

    def p1_failed(self, now: float, sa: IsakmpSa, why: str) -> None:
        """Main Mode failed: log it, hold the queued flows off, drop the SA."""
        ctx = self.ctx
        if sa not in self.sas:
            return
        self.stats["p1_failures"] += 1
        ctx.log(now, 0, f'deleting SA reason "{why}" state ({sa.role}) {sa.state.display} (peer {sa.peer})')
        ctx.syslog(now, "%CRYPTO-6-IKMP_MODE_FAILURE", f"Processing of Main mode failed with peer at {sa.peer}: {why}",
                   peer=sa.peer, reason=why)
        for request in sa.pending:
            ctx.holdoff[(request.peer, request.selector)] = now + ACQUIRE_HOLDOFF
            if request.rekey_of is not None and request.rekey_of.state is ChildState.REKEYING:
                request.rekey_of.transition(ChildEvent.REKEY_FAILED)
        sa.pending = []
        if sa.responder_timeout is not None:  # refused or failed: nothing is left to time out
            self.transport.cancel(sa.responder_timeout)
            sa.responder_timeout = None
        self.remove_isakmp_sa(now, sa)

    def _p1_rekey(self, now: float, sa: IsakmpSa) -> None:
        """Phase-1 rekey: a fresh Main Mode; the IPsec SAs stay (RFC 2409 leaves them independent)."""
        if sa not in self.sas or sa.replaced or not sa.established:
            return
        sa.rekey_started = True
        self.ctx.log(now, sa.conn_id, f"ISAKMP SA with {sa.peer} nearing its lifetime: starting a new Main Mode")
        self.main_mode.build_i(now, sa.local, sa.peer)

    def _p1_expired(self, now: float, sa: IsakmpSa) -> None:
        if sa in self.sas:
            self.ctx.log(now, sa.conn_id,
                         f'deleting SA reason "Lifetime expired" state ({sa.role}) QM_IDLE (peer {sa.peer})')
            self.remove_isakmp_sa(now, sa)

    def _delete_isakmp(self, now: float, sa: IsakmpSa) -> None:
        """DELETE for a replaced ISAKMP SA (its IPsec SAs live on)."""
        if sa not in self.sas:
            return
        self.informational.send(now, sa, [DeletePayload(ProtocolId.ISAKMP, [sa.spi], spi_size=16)])
        self.ctx.log(now, sa.conn_id,
                     f'deleting SA reason "Phase1 rekeyed" state ({sa.role}) QM_IDLE (peer {sa.peer})')
        self.remove_isakmp_sa(now, sa)

    def remove_isakmp_sa(self, now: float, sa: IsakmpSa) -> None:
        """Forget ``sa`` and end its exchanges."""
        if sa in self.sas:
            self.sas.remove(sa)
        self.transport.cancel_retransmit(sa.retransmit)
        self.quick_mode.abandon(now, sa)

    def initial_contact(self, now: float, sa: IsakmpSa) -> None:
        """INITIAL-CONTACT (RFC 2407 4.6.3.3): the peer rebooted; drop the state
        with it that is older than this negotiation. SAs negotiated at the same
        time (both peers started a Main Mode at once, each sending
        INITIAL-CONTACT) are not "older": removing them would leave each side
        holding only the ISAKMP SA the other just deleted."""
        older = [s for s in self.sas if s is not sa and s.peer == sa.peer
                 and s.established_at is not None and s.established_at < sa.created]
        for other in older:
            self.remove_isakmp_sa(now, other)
        for child in [c for c in self.children if c.peer == sa.peer and c.sa_in.installed_at < sa.created]:
            self.rekeying.delete_child(now, child, send=False, why="INITIAL_CONTACT")
