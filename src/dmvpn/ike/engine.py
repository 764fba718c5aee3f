"""The IKEv1 engine of one router: ISAKMP SAs, exchanges, rekeying, DPD.

Sans-I/O (DESIGN.md's one rule): the router hands it UDP payloads
(:meth:`Ikev1Engine.receive`), "acquire" requests when traffic finds no SA
(:meth:`acquire`) and the SAD's lifetime events; it returns UDP datagrams
(:meth:`poll_datagrams`), log events (:meth:`poll_events`) and a deadline.
It installs and deletes SAs in the shared SAD directly (the SAD is its
kernel interface, as charon's kernel_ipsec).

Each exchange is a task owned by its ISAKMP SA (Main Mode on the SA itself,
Quick Mode and Informational as message-ID "nodes"); the steps are in
:mod:`~dmvpn.ike.main_mode`, :mod:`~dmvpn.ike.quick_mode` and
:mod:`~dmvpn.ike.informational`; the lifetime and rekey rules in
:mod:`~dmvpn.ike.rekey`, driven by the
:class:`~dmvpn.ike.profiles.BehaviourProfile`. Here: dispatch, timers,
retransmission, ISAKMP SA bookkeeping and the Quick Mode plumbing.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import count

from dmvpn.config import RouterConfig
from dmvpn.crypto.ike_algorithms import hash_size
from dmvpn.ike.informational import Informational
from dmvpn.ike.isakmp_sa import (
    ChildRequest,
    ChildSa,
    ChildState,
    IsakmpSa,
    QuickModeExchange,
)
from dmvpn.ike.main_mode import MainMode
from dmvpn.ike.manager import IKEV1_MAJOR, ChildSaView, Datagram
from dmvpn.ike.profiles import BehaviourProfile
from dmvpn.ike.proposals import ChildPolicy
from dmvpn.ike.quick_mode import QuickMode
from dmvpn.ike.rekey import Rekeying
from dmvpn.ike.states import IkeEvent, IllegalTransition, MessageSource, Phase1State, QuickModeState
from dmvpn.ike.transport import IkeTransport, Retransmit, RetransmitTimers
from dmvpn.ike.views import child_sa_views, isakmp_sa_view, session_views
from dmvpn.ipsec.events import HardExpired, SadEvent, SoftExpired
from dmvpn.ipsec.sa import Selector
from dmvpn.ipsec.sad import SecurityAssociationDatabase
from dmvpn.sansio import LogEvent, RandomSource
from dmvpn.show.views import CryptoSessionView, IsakmpSaView
from dmvpn.wire.errors import DecodeError
from dmvpn.wire.isakmp import IsakmpMessage, decode_header, decode_message, decrypt_message
from dmvpn.wire.isakmp_payloads import DeletePayload
from dmvpn.wire.isakmp_registry import ExchangeType, ProtocolId

#: Failed negotiations for a flow are not retried on traffic before this many seconds.
ACQUIRE_HOLDOFF = 10.0
FIRST_CONN_ID = 1001

TrafficProbe = Callable[[str], "tuple[float | None, float | None]"]


class Ikev1Engine(MainMode, QuickMode, Informational, Rekeying):
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
        self.force_nat_t = force_nat_t
        self.config = config
        self.sad = sad
        self.random = random
        self.profile = profile
        self.child_policies = child_policies
        self.traffic: TrafficProbe = traffic or (lambda peer: (None, None))
        self.transport = IkeTransport(name, RetransmitTimers(profile.retransmit_initial, profile.retransmit_backoff,
                                                             profile.retransmit_max_interval, profile.retransmit_limit))
        self.sas: list[IsakmpSa] = []
        self.children: list[ChildSa] = []
        self._by_spi_in: dict[int, ChildSa] = {}
        self._by_spi_out: dict[int, ChildSa] = {}
        self._spis_reserved: set[int] = set()
        self._conn_ids = count(FIRST_CONN_ID)
        self._holdoff: dict[tuple[str, Selector], float] = {}
        self._last_heard: dict[str, float] = {}
        self._dpd_sent_at: dict[str, float] = {}
        self._inv_spi_quiet_until: dict[str, float] = {}
        self.stats = {"rekeys_started": 0, "collisions": 0, "p1_failures": 0, "qm_failures": 0}
        period = profile.lifetime_check_period
        if period is not None:
            self._schedule(random.uniform(0.0, period), self._lifetime_check)

    # ================================================================== runtime interface
    def receive(self, now: float, src: str, sport: int, dst: str, dport: int, data: bytes) -> None:
        """An ISAKMP message arrived (UDP payload, without any NAT-T marker).
        A message the state machines have no transition for is dropped with
        the named :class:`IllegalTransition` logged, never raised."""
        try:
            self._receive(now, src, sport, dst, dport, data)
        except IllegalTransition as err:
            self.syslog(now, "%CRYPTO-4-IKMP_BAD_MESSAGE", f"IKE message from {src} dropped: {err}", peer=src)

    def _receive(self, now: float, src: str, sport: int, dst: str, dport: int, data: bytes) -> None:
        try:
            hdr = decode_header(data)
        except DecodeError as err:
            self.syslog(now, "%CRYPTO-4-IKMP_BAD_MESSAGE",
                        f"IKE message from {src} failed its sanity check or is malformed ({err})", peer=src)
            return
        sa = self._lookup(hdr.initiator_cookie, hdr.responder_cookie, src)
        if sa is not None:
            sa.peer_port = sport
            if dport != sa.local_port and sa.state is not Phase1State.IKE_READY:
                sa.local_port = dport  # the peer floated to 4500 (RFC 3947 section 4)
            self.log(now, sa.conn_id if sa.established else 0,
                     f"received packet from {src} dport {dport} sport {sport} Global ({sa.role}) {sa.state.display}",
                     facility="ISAKMP-PAK")
        xchg = hdr.exchange_type
        if xchg == ExchangeType.IDENTITY_PROTECTION:
            if sa is None:
                if hdr.responder_cookie == bytes(8):
                    self._mm_responder_new(now, src, sport, dst, dport, data)
                else:
                    self.log(now, 0, f"Main Mode message from {src} for an unknown ISAKMP SA, dropped")
                return
            if data == sa.last_rx and sa.last_tx:
                self._duplicate_p1(now, sa)
                return
            if sa.initiator:
                self._mm_initiator_receive(now, sa, data)
            else:
                self._mm_responder_receive(now, sa, data)
        elif xchg == ExchangeType.QUICK_MODE:
            if sa is None or not sa.established:
                self.log(now, 0, f"Quick Mode from {src} without an established ISAKMP SA, dropped")
                return
            self._peer_alive(now, sa)
            self._qm_receive(now, sa, hdr.message_id, data)
        elif xchg == ExchangeType.INFORMATIONAL:
            self._info_receive(now, sa, data, hdr)
        else:
            self.log(now, 0, f"exchange type {int(xchg)} from {src} not supported, dropped")

    def acquire(self, now: float, policy: ChildPolicy, peer: str, local: str, selector: Selector) -> None:
        """Traffic for ``selector`` found no outbound SA: negotiate one."""
        flow = (peer, selector)
        if self._holdoff.get(flow, -1.0) > now or self._negotiating(flow, as_initiator=True):
            return
        current = self._current_child(flow)
        if current is not None and current.sa_out.sad is not None:
            return
        self._request(now, ChildRequest(policy, peer, local, selector))

    def sad_events(self, now: float, events: list[SadEvent] | None = None) -> None:
        """Consume the SAD's soft/hard lifetime events (time and volume)."""
        for ev in events if events is not None else self.sad.poll_events():
            if isinstance(ev, SoftExpired):
                self._on_soft(ev.time, ev)
            elif isinstance(ev, HardExpired):
                self._on_hard(ev.time, ev)

    def handle_timer(self, now: float) -> None:
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
            self._delete_child(now, child, send=True, why="clear crypto sa")
        return len(victims)

    # ================================================================== views (KeyManager)
    def isakmp_sa_views(self, now: float) -> list[IsakmpSaView]:
        dpd = self.config.isakmp_keepalive is not None
        return [isakmp_sa_view(sa, now, dpd) for sa in self.sas]

    def session_views(self, now: float) -> list[CryptoSessionView]:
        return session_views(self.sas, self.children, now, self.config.isakmp_keepalive is not None)

    def child_sa_views(self) -> list[ChildSaView]:
        return child_sa_views(self.children)

    # ================================================================== logging
    def log(self, now: float, conn_id: int, text: str, facility: str = "ISAKMP", **fields) -> None:
        """A ``debug crypto isakmp`` line (only when debugging is on)."""
        if self.transport.debug:
            fields["facility"] = facility
            fields["conn_id"] = conn_id
            self.transport.debug_line(now, f"({conn_id}):{text}", fields)

    def syslog(self, now: float, tag: str, text: str, **fields) -> None:
        """A syslog message (always logged, like IOS's %CRYPTO-... lines)."""
        fields["facility"] = tag
        self.transport.event(now, text, fields)

    def events_sa(self, now: float, what: str, child: ChildSa) -> None:
        """A machine-readable SA lifecycle event (category ``ipsec``) for the lab."""
        self.transport.event(now, f"IPsec SA pair {what}: in 0x{child.sa_in.spi:X} "
                                  f"out 0x{child.sa_out.spi:X} peer {child.peer} ({child.reason.value})",
                             {"what": what, "spi_in": child.sa_in.spi, "spi_out": child.sa_out.spi,
                              "peer": child.peer, "initiator": child.initiator,
                              "reason": child.reason.value, "loser": child.loser}, category="ipsec")

    # ================================================================== timers
    def _schedule(self, t: float, fn: Callable[[float], None]) -> None:
        self.transport.schedule(t, fn)

    def _cancel_retransmit(self, rt: Retransmit | None) -> None:
        self.transport.cancel_retransmit(rt)

    def _arm_retransmit(self, now: float, rt: Retransmit, resend: Callable[[float], None],
                        give_up: Callable[[float], None]) -> None:
        self.transport.arm_retransmit(now, rt, resend, give_up)

    # ================================================================== sending
    def _send_raw(self, now: float, sa: IsakmpSa, wire: bytes) -> None:
        self.transport.send(Datagram(sa.local, sa.local_port, sa.peer, sa.peer_port, wire))
        cid = sa.conn_id if sa.established else 0
        self.log(now, cid, f"sending packet to {sa.peer} my_port {sa.local_port} peer_port {sa.peer_port} "
                           f"({sa.role}) {sa.state.display}", facility="ISAKMP-PAK")
        self.log(now, cid, "Sending an IKE IPv4 Packet.")

    def _send_p1(self, now: float, sa: IsakmpSa, wire: bytes, *, retransmit: bool) -> None:
        sa.last_tx = wire
        self._send_raw(now, sa, wire)
        if retransmit:
            self._cancel_retransmit(sa.retransmit)
            sa.retransmit = Retransmit(wire)

            def resend(t: float, s=sa) -> None:
                self.log(t, 0, f"retransmitting phase 1 {s.state.display}...")
                self.log(t, 0, f"incrementing error counter on sa, attempt {s.retransmit.attempts} of "
                               f"{self.profile.retransmit_limit}: retransmit phase 1")
                self._send_raw(t, s, s.last_tx)

            self._arm_retransmit(now, sa.retransmit, resend,
                                 lambda t, s=sa: self._p1_failed(t, s, "Death by retransmission P1: "
                                                                       f"no answer from {s.peer}"))

    def _duplicate_p1(self, now: float, sa: IsakmpSa) -> None:
        self.log(now, 0, "phase 1 packet is a duplicate of a previous packet.")
        if not sa.initiator or sa.established:
            self.log(now, 0, "retransmitting due to retransmit phase 1")
            self._send_raw(now, sa, sa.last_tx)

    def _send_node(self, now: float, sa: IsakmpSa, node: QuickModeExchange, wire: bytes, *, retransmit: bool) -> None:
        self._send_raw(now, sa, wire)
        self._cancel_retransmit(node.retransmit)
        node.retransmit = Retransmit(wire)
        if retransmit:
            def resend(t: float, s=sa, n=node) -> None:
                self.log(t, s.conn_id, f"retransmitting phase 2 QM_IDLE       {n.message_id} ...")
                self._send_raw(t, s, n.retransmit.packet)

            self._arm_retransmit(now, node.retransmit, resend,
                                 lambda t, s=sa, n=node: self._qm_failed(t, s, n, "Death by retransmission P2: "
                                                                                  f"no answer from {s.peer}"))

    # ================================================================== ISAKMP SAs
    def _new_isakmp_sa(self, now: float, *, initiator: bool, local: str, peer: str,
                       cky_i: bytes | None = None) -> IsakmpSa:
        cookie = self._cookie()
        sa = IsakmpSa(next(self._conn_ids), initiator, local, peer,
                      cky_i=cookie if initiator else (cky_i or bytes(8)),
                      cky_r=bytes(8) if initiator else cookie, created=now)
        self.sas.append(sa)
        if not initiator:
            timeout = self.transport.timers.give_up_after()
            self._schedule(now + timeout, lambda t, s=sa: (not s.established and s in self.sas)
                           and self._p1_failed(t, s, f"Main Mode with {s.peer} not completed in time"))
        return sa

    def _cookie(self) -> bytes:
        while True:
            c = self.random.token_bytes(8)
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

    def _isakmp_for(self, peer: str) -> IsakmpSa | None:
        """The newest established, not replaced ISAKMP SA with ``peer``."""
        best = None
        for sa in self.sas:
            if sa.peer == peer and sa.established and not sa.replaced:
                if best is None or (sa.established_at or 0) >= (best.established_at or 0):
                    best = sa
        return best

    def _prf_size(self, sa: IsakmpSa) -> int:
        assert sa.choice is not None
        return hash_size(sa.choice.hash)

    def _new_message_id(self, sa: IsakmpSa) -> int:
        return sa.message_ids.allocate(self.random, sa.nodes)

    def _decode_clear(self, now: float, sa: IsakmpSa | None, data: bytes) -> IsakmpMessage | None:
        try:
            msg = decode_message(data)
        except DecodeError as err:
            peer = sa.peer if sa else "peer"
            self.syslog(now, "%CRYPTO-4-IKMP_BAD_MESSAGE",
                        f"IKE message from {peer} failed its sanity check or is malformed ({err})")
            return None
        if msg.encrypted:
            self.log(now, 0, "unexpected encrypted Main Mode message, dropped")
            return None
        if sa is not None:
            sa.last_rx = data
        return msg

    def _p1_transition(self, now: float, sa: IsakmpSa, source: MessageSource, event: IkeEvent) -> None:
        old, new = sa.transition(source, event)
        cid = sa.conn_id if sa.established else 0
        self.log(now, cid, f"Input = {source.value}, {event.value}")
        self.log(now, cid, f"Old State = {old.value}  New State = {new.value}")

    def _p1_established(self, now: float, sa: IsakmpSa) -> None:
        assert sa.choice is not None
        sa.established_at = now
        sa.expires_at = now + sa.choice.lifetime
        self._cancel_retransmit(sa.retransmit)
        self._last_heard[sa.peer] = now

    def _p1_complete(self, now: float, sa: IsakmpSa) -> None:
        """Main Mode done: arm lifetimes and DPD, run the queued Quick Modes."""
        self._p1_transition(now, sa, MessageSource.IKE_MESG_INTERNAL, IkeEvent.IKE_PHASE1_COMPLETE)
        assert sa.choice is not None and sa.expires_at is not None
        self._schedule(sa.expires_at, lambda t, s=sa: self._p1_expired(t, s))
        if sa.initiator:
            sa.soft_at = now + sa.choice.lifetime * self.profile.phase1_rekey_fraction
            self._schedule(sa.soft_at, lambda t, s=sa: self._p1_rekey(t, s))
        older = [o for o in self.sas if o is not sa and o.peer == sa.peer and o.established and not o.replaced]
        for o in older:
            if o.rekey_started or sa.initiator == o.initiator:
                o.replaced = True
                self._schedule(now + 5.0, lambda t, s=o: self._delete_isakmp(t, s))
        self._dpd_arm(now, sa)
        if sa.nat_detected and self.config.isakmp_nat_keepalive:
            self._schedule(now + self.config.isakmp_nat_keepalive, lambda t, s=sa: self._nat_keepalive(t, s))
        pending, sa.pending = sa.pending, []
        for request in pending:
            if not self._negotiating((request.peer, request.selector), as_initiator=True):
                self._qm_start(now, sa, request)

    def _nat_keepalive(self, now: float, sa: IsakmpSa) -> None:
        """A lone 0xFF on UDP 4500 keeps the NAT mapping open when nothing
        else went to the peer for the keepalive interval (RFC 3948 2.3)."""
        interval = self.config.isakmp_nat_keepalive
        if sa not in self.sas or not interval:
            return
        last_out = self.traffic(sa.peer)[1]
        if last_out is None or now - last_out >= interval:
            self.transport.send(Datagram(sa.local, sa.local_port, sa.peer, sa.peer_port, b"\xff", raw=True))
        self._schedule(now + interval, lambda t, s=sa: self._nat_keepalive(t, s))

    def _p1_failed(self, now: float, sa: IsakmpSa, why: str) -> None:
        if sa not in self.sas:
            return
        self.stats["p1_failures"] += 1
        self.log(now, 0, f'deleting SA reason "{why}" state ({sa.role}) {sa.state.display} (peer {sa.peer})')
        self.syslog(now, "%CRYPTO-6-IKMP_MODE_FAILURE", f"Processing of Main mode failed with peer at {sa.peer}: {why}",
                    peer=sa.peer, reason=why)
        for request in sa.pending:
            self._holdoff[(request.peer, request.selector)] = now + ACQUIRE_HOLDOFF
            if request.rekey_of is not None and request.rekey_of.state is ChildState.REKEYING:
                request.rekey_of.state = ChildState.ACTIVE
        sa.pending = []
        self._remove_isakmp_sa(now, sa)

    def _p1_rekey(self, now: float, sa: IsakmpSa) -> None:
        """Phase-1 rekey: a fresh Main Mode; the IPsec SAs stay (RFC 2409 leaves them independent)."""
        if sa not in self.sas or sa.replaced or not sa.established:
            return
        sa.rekey_started = True
        self.log(now, sa.conn_id, f"ISAKMP SA with {sa.peer} nearing its lifetime: starting a new Main Mode")
        self._mm_start(now, sa.local, sa.peer)

    def _p1_expired(self, now: float, sa: IsakmpSa) -> None:
        if sa in self.sas:
            self.log(now, sa.conn_id, f'deleting SA reason "Lifetime expired" state ({sa.role}) QM_IDLE (peer {sa.peer})')
            self._remove_isakmp_sa(now, sa)

    def _delete_isakmp(self, now: float, sa: IsakmpSa) -> None:
        """DELETE for a replaced ISAKMP SA (its IPsec SAs live on)."""
        if sa not in self.sas:
            return
        self._send_informational(now, sa, [DeletePayload(ProtocolId.ISAKMP, [sa.spi], spi_size=16)])
        self.log(now, sa.conn_id, f'deleting SA reason "Phase1 rekeyed" state ({sa.role}) QM_IDLE (peer {sa.peer})')
        self._remove_isakmp_sa(now, sa)

    def _remove_isakmp_sa(self, now: float, sa: IsakmpSa) -> None:
        if sa in self.sas:
            self.sas.remove(sa)
        self._cancel_retransmit(sa.retransmit)
        for node in sa.nodes.values():
            self._cancel_retransmit(node.retransmit)
            if node.state not in (QuickModeState.IKE_QM_PHASE2_COMPLETE, QuickModeState.IKE_QM_FAILED):
                node.state = QuickModeState.IKE_QM_FAILED
                self._release_request(now, node)

    def _initial_contact(self, now: float, sa: IsakmpSa) -> None:
        """INITIAL-CONTACT (RFC 2407 4.6.3.3): the peer rebooted; drop the state
        with it that is older than this negotiation. SAs negotiated at the same
        time (both peers started a Main Mode at once, each sending
        INITIAL-CONTACT) are not "older": removing them would leave each side
        holding only the ISAKMP SA the other just deleted."""
        older = [s for s in self.sas if s is not sa and s.peer == sa.peer
                 and s.established_at is not None and s.established_at < sa.created]
        for other in older:
            self._remove_isakmp_sa(now, other)
        for child in [c for c in self.children if c.peer == sa.peer and c.sa_in.installed_at < sa.created]:
            self._delete_child(now, child, send=False, why="INITIAL_CONTACT")

    # ================================================================== Quick Mode plumbing
    def _qm_receive(self, now: float, sa: IsakmpSa, mid: int, data: bytes) -> None:
        node = sa.nodes.get(mid)
        if node is not None and data in node.seen:
            self.log(now, sa.conn_id, "phase 2 packet is a duplicate of a previous packet.")
            if node.retransmit is not None and (not node.initiator or node.state is QuickModeState.IKE_QM_PHASE2_COMPLETE):
                self.log(now, sa.conn_id, "retransmitting due to retransmit phase 2")
                self._send_raw(now, sa, node.retransmit.packet)
            return
        if node is None:
            if mid in sa.message_ids:
                self.log(now, sa.conn_id, f"message ID {mid} already used, dropped")
                return
            self._qm_responder_new(now, sa, mid, data)
            return
        assert sa.cipher is not None
        try:
            msg, iv = decrypt_message(data, sa.cipher, sa.enc_key, node.iv)
        except DecodeError as err:
            self.log(now, sa.conn_id, f"Quick Mode message from {sa.peer} does not decrypt: {err}")
            return
        if node.initiator and node.state is QuickModeState.IKE_QM_I_QM1:
            node.seen.add(data)
            node.iv = iv
            self._qm_initiator_reply(now, sa, node, msg)
        elif not node.initiator and node.state is QuickModeState.IKE_QM_R_QM2:
            node.seen.add(data)
            node.iv = iv
            self._qm_responder_final(now, sa, node, msg)
        else:
            self.log(now, sa.conn_id, f"Quick Mode message for node {mid} in state {node.state.value}, dropped")

    def _qm_transition(self, now: float, sa: IsakmpSa, node: QuickModeExchange,
                       source: MessageSource, event: IkeEvent) -> None:
        old, new = node.transition(source, event)
        self.log(now, sa.conn_id, f"Node {node.message_id}, Input = {source.value}, {event.value}")
        self.log(now, sa.conn_id, f"Old State = {old.value}  New State = {new.value}")

    def _qm_failed(self, now: float, sa: IsakmpSa, node: QuickModeExchange, why: str) -> None:
        if node.state in (QuickModeState.IKE_QM_FAILED, QuickModeState.IKE_QM_PHASE2_COMPLETE):
            return
        self.stats["qm_failures"] += 1
        self._cancel_retransmit(node.retransmit)
        node.state = QuickModeState.IKE_QM_FAILED
        self.log(now, sa.conn_id, f'deleting node {node.message_id} error TRUE reason "{why}"')
        self.syslog(now, "%CRYPTO-6-IKMP_MODE_FAILURE", f"Processing of Quick mode failed with peer at {sa.peer}: {why}",
                    peer=sa.peer, reason=why)
        self._release_request(now, node)
        self._node_done(now, sa, node)

    def _release_request(self, now: float, node: QuickModeExchange) -> None:
        request = node.request
        if node.initiator and request is not None:
            self._holdoff[(request.peer, request.selector)] = now + ACQUIRE_HOLDOFF
            child = request.rekey_of
            if child is not None and child.state is ChildState.REKEYING:
                child.state = ChildState.ACTIVE
                if self.profile.lifetime_check_period is None:
                    self._schedule(now + ACQUIRE_HOLDOFF, lambda t, c=child: self._consider_rekey(t, c))

    def _node_done(self, now: float, sa: IsakmpSa, node: QuickModeExchange) -> None:
        """Keep a finished node for duplicates, purge it later (IOS "purging node")."""
        node.deleted_at = now

        def purge(t: float, s=sa, n=node) -> None:
            if s.nodes.get(n.message_id) is n:
                del s.nodes[n.message_id]
                self._cancel_retransmit(n.retransmit)
                self.log(t, s.conn_id, f"purging node {n.message_id}")

        self._schedule(now + self.profile.node_purge_delay, purge)

    def _on_qm_started(self, now: float, sa: IsakmpSa, node: QuickModeExchange) -> None:
        request = node.request
        if request is not None and request.rekey_of is not None:
            self.stats["rekeys_started"] += 1

    def _request(self, now: float, request: ChildRequest) -> None:
        sa = self._isakmp_for(request.peer)
        if sa is not None:
            self._qm_start(now, sa, request)
            return
        for pending in self.sas:
            if pending.peer == request.peer and not pending.established:
                if pending.initiator and not any(r.selector == request.selector for r in pending.pending):
                    pending.pending.append(request)
                return
        self._mm_start(now, request.local, request.peer, request)

    def _negotiating(self, flow: tuple[str, Selector], *, as_initiator: bool | None = None) -> bool:
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
                if (node.request.peer, node.request.selector) == flow and node.state in (
                        QuickModeState.IKE_QM_I_QM1, QuickModeState.IKE_QM_SPI_STARVE,
                        QuickModeState.IKE_QM_IPSEC_INSTALL_AWAIT, QuickModeState.IKE_QM_R_QM2):
                    return True
        return False
