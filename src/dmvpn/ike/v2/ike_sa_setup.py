"""Setting an IKE SA up (RFC 7296 1.2, 2.4, 2.6, 2.23): IKE_SA_INIT and
IKE_AUTH in both roles, with the first CHILD_SA; a COOKIE under half-open
load (``crypto ikev2 cookie-challenge N``), a retry with another DH group,
NAT detection (IKE floats to UDP 4500), INITIAL_CONTACT clearing the stale
SAs of a peer that started over, and half-open SAs that never get IKE_AUTH.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from dmvpn.ike.context import ACQUIRE_HOLDOFF
from dmvpn.ike.isakmp_sa import ChildRequest
from dmvpn.ike.manager import Datagram
from dmvpn.ike.v2.child_sas import ChildSas
from dmvpn.ike.v2.context import IKEV2_RETRANSMIT, Ikev2Context
from dmvpn.ike.v2.deletes import Deletes
from dmvpn.ike.v2.ike_auth import IkeAuth
from dmvpn.ike.v2.ike_lifetime import IkeSaLifetime
from dmvpn.ike.v2.ike_sa import Exchange, ExchangeKind, Ikev2Sa
from dmvpn.ike.v2.sa_init import Endpoints, IkeSaInit, InitOutcome
from dmvpn.ike.v2.settings import auth_config, ikev2_profile_for, proposals_for, responder_policy
from dmvpn.ike.v2.states import Ikev2SaEvent, Ikev2SaState
from dmvpn.ike.v2.window import MessageWindow
from dmvpn.ipsec.sa import Selector
from dmvpn.wire.isakmp import IKE_PORT, NAT_T_PORT

K = ExchangeKind


class IkeSaSetup:
    """IKE_SA_INIT and IKE_AUTH of one engine's IKE SAs."""

    def __init__(self, ctx: Ikev2Context, window: MessageWindow, deletes: Deletes, lifetime: IkeSaLifetime,
                 child_sas: ChildSas) -> None:
        self.ctx = ctx
        self.window = window
        self.deletes = deletes
        self.lifetime = lifetime
        self.child_sas = child_sas
        self._cookie: bytes | None = None

    # ------------------------------------------------------------ initiator
    def init_i(self, now: float, request: ChildRequest) -> None:
        """A new IKE SA for ``request``: our IKE_SA_INIT request."""
        ctx = self.ctx
        cfg = auth_config(ctx.config, request.policy, request.local, request.peer)
        proposals = proposals_for(ctx.config, request.local)
        if cfg is None or not proposals:
            ctx.holdoff[(request.peer, request.selector)] = now + ACQUIRE_HOLDOFF
            ctx.syslog(now, f"no IKEv2 profile, keyring key or proposal for peer {request.peer}", peer=request.peer)
            return
        endpoints = Endpoints((IPv4Address(request.local).packed, IKE_PORT),
                              (IPv4Address(request.peer).packed, IKE_PORT))
        init = IkeSaInit(proposals, ctx.random, initiator=True, endpoints=endpoints, force_nat=ctx.force_nat_t)
        sa = ctx.new_sa(now, True, request.local, request.peer, init.sa)
        sa.init, sa.auth, sa.profile = init, cfg, ikev2_profile_for(ctx.config, request.policy, request.peer)
        sa.pending.append(request)
        sa.transition(Ikev2SaEvent.SEND_INIT)
        ctx.log(now, sa, f"Initiating IKE_SA_INIT to {request.peer}")
        self.window.launch(now, sa, Exchange(K.IKE_SA_INIT), init.build_i(now))

    def init_done(self, now: float, sa: Ikev2Sa, exch: Exchange, data: bytes) -> None:
        """The IKE_SA_INIT response: again (COOKIE, INVALID_KE), failed, or on to IKE_AUTH."""
        init = sa.init
        assert init is not None and sa.auth is not None
        outcome = init.process_i(data, now)
        if outcome is InitOutcome.RETRY:
            self.ctx.log(now, sa, f"IKE_SA_INIT retry: {init.sa.notes[-1]}")
            sa.transition(Ikev2SaEvent.SEND_INIT)
            self.window.launch(now, sa, Exchange(K.IKE_SA_INIT), init.build_i(now))
            return
        if outcome is InitOutcome.FAILED:
            self._fail_setup(now, sa, init.sa.error or "IKE_SA_INIT failed")
            return
        sa.transition(Ikev2SaEvent.INIT_DONE)
        sa.next_mid = 1
        if init.nat:  # RFC 7296 2.23: the initiator floats to 4500 for IKE_AUTH
            sa.nat = True
            sa.local_port = sa.peer_port = NAT_T_PORT
            self.ctx.log(now, sa, self._nat_text(init) + f"; floating to port {NAT_T_PORT}")
        self.ctx.export_keys(sa.keys)
        self._auth_i(now, sa)

    def _auth_i(self, now: float, sa: Ikev2Sa) -> None:
        """Our IKE_AUTH request, with the first pending CHILD_SA (and
        INITIAL_CONTACT when we hold no other IKE SA with the peer)."""
        assert sa.auth is not None
        exch_auth = Exchange(K.IKE_AUTH, request=sa.pending[0] if sa.pending else None, message_id=1)
        alone = not any(o is not sa and o.peer == sa.peer and o.established for o in self.ctx.sas)
        exch_auth.task = auth = IkeAuth(sa.keys, sa.auth, self.ctx.random, initial_contact=alone)
        self.ctx.log(now, sa, "Generating IKE_AUTH message")
        self.window.launch(now, sa, exch_auth, auth.build_i(now))

    def auth_done(self, now: float, sa: Ikev2Sa, exch: Exchange, data: bytes) -> None:
        """The IKE_AUTH response: the SA is up with its first CHILD_SA; the
        other pending requests follow as CREATE_CHILD_SA."""
        auth: IkeAuth = exch.task
        if not auth.process_i(data, now) or auth.child is None:
            self._fail_setup(now, sa, auth.error or "IKE_AUTH failed")
            return
        self.lifetime.established(now, sa)
        request = exch.request
        if request is not None:
            sa.pending = [r for r in sa.pending if r is not request]
            self.child_sas.install(now, sa, auth.child, request, initiator=True, nonces=(sa.keys.ni, sa.keys.nr))
        pending, sa.pending = sa.pending, []
        for r in pending:
            self.window.enqueue(now, sa, Exchange(K.CREATE_CHILD, request=r))

    def _fail_setup(self, now: float, sa: Ikev2Sa, why: str) -> None:
        self.ctx.stats["ike_failures"] += 1
        self.ctx.syslog(now, f"IKEv2 negotiation with {sa.peer} failed: {why}", peer=sa.peer, reason=why)
        for r in sa.pending:
            self.ctx.holdoff[(r.peer, r.selector)] = now + ACQUIRE_HOLDOFF
        sa.pending = []
        self.deletes.remove_sa(now, sa, why)

    # ------------------------------------------------------------ responder
    def init_r(self, now: float, src: str, sport: int, dst: str, dport: int, data: bytes) -> None:
        """The peer's IKE_SA_INIT request: a new half-open SA, or a notify and no state (2.6)."""
        ctx = self.ctx
        proposals = proposals_for(ctx.config, dst)
        endpoints = Endpoints((IPv4Address(dst).packed, dport), (IPv4Address(src).packed, sport))
        init = IkeSaInit(proposals, ctx.random, initiator=False, endpoints=endpoints, force_nat=ctx.force_nat_t,
                         cookie_secret=self._cookie_secret())
        init.process_r(data, now, peer=IPv4Address(src).packed)
        reply = init.build_r(now)
        if init.sa.keys is None:  # a notify (COOKIE, INVALID_KE, NO_PROPOSAL_CHOSEN): no state kept (2.6)
            if init.sa.error is None and init.cookie_secret is not None:
                ctx.stats["cookies_sent"] += 1
            ctx.log(now, None, f"IKE_SA_INIT from {src} refused: {init.sa.error or 'notify sent'}")
            ctx.transport.send(Datagram(dst, dport, src, sport, reply))
            return
        sa = ctx.new_sa(now, False, dst, src, init.sa)
        sa.local_port, sa.peer_port, sa.init = dport, sport, init
        if init.nat:
            sa.nat = True
            ctx.log(now, sa, self._nat_text(init))
        sa.profile = ctx.config.ikev2.profile_for(src)
        sa.transition(Ikev2SaEvent.RECV_INIT)
        sa.peer_mid, sa.last_request, sa.last_response = 1, data, reply
        ctx.export_keys(sa.keys)
        ctx.log(now, sa, f"Received IKE_SA_INIT from {src}:{sport}; sending response")
        ctx.send(sa, reply)
        ctx.transport.schedule(now + IKEV2_RETRANSMIT.give_up_after(), lambda t: self._half_open_timeout(t, sa))

    def _nat_text(self, init: IkeSaInit) -> str:
        if self.ctx.force_nat_t:
            return "NAT-T forced: UDP encapsulation as if this router were behind a NAT"
        return "NAT detected: " + ", ".join(w for w, on in (("this router is behind a NAT", init.sa.nat_local),
                                                            ("the peer is behind a NAT", init.sa.nat_peer)) if on)

    def _cookie_secret(self) -> bytes | None:
        """The COOKIE secret (RFC 7296 2.6) while ``crypto ikev2
        cookie-challenge N`` is configured and N half-open SAs (IKE_SA_INIT
        answered, IKE_AUTH awaited) exist; None otherwise. Drawn once, when
        first needed."""
        limit = self.ctx.config.ikev2.cookie_challenge
        if limit is None or sum(sa.state is Ikev2SaState.INIT_DONE for sa in self.ctx.sas) < limit:
            return None
        if self._cookie is None:
            self._cookie = self.ctx.random.token_bytes(32)
        return self._cookie

    def _half_open_timeout(self, now: float, sa: Ikev2Sa) -> None:
        if sa in self.ctx.sas and sa.state is Ikev2SaState.INIT_DONE:
            self.deletes.remove_sa(now, sa, "IKE_AUTH not received in time")

    def auth_r(self, now: float, sa: Ikev2Sa, data: bytes) -> bytes | None:
        """The peer's IKE_AUTH request: the SA is up with its first CHILD_SA, or refused."""
        ctx = self.ctx
        policy = responder_policy(ctx.config, ctx.child_policies, sa.local, sa.peer)
        cfg = auth_config(ctx.config, policy, sa.local, sa.peer) if policy is not None else None
        if policy is None or cfg is None:
            ctx.log(now, sa, f"No IKEv2 profile / keyring matches peer {sa.peer}: IKE_AUTH dropped")
            return None
        sa.auth = cfg
        auth = IkeAuth(sa.keys, cfg, ctx.random)
        auth.process_r(data, now)
        reply = auth.build_r(now)
        if reply is None:
            ctx.log(now, sa, f"IKE_AUTH request undecryptable: {auth.error}")
            return None
        if auth.child is None:
            ctx.log(now, sa, f"IKE_AUTH refused: {auth.error}")
            sa.transition(Ikev2SaEvent.DELETE)
            return reply
        if auth.initial_contact:
            self._initial_contact(now, sa)
        self.lifetime.established(now, sa)
        request = ChildRequest(policy, sa.peer, sa.local, Selector.hosts(sa.local, sa.peer, policy.protocol))
        self.child_sas.install(now, sa, auth.child, request, initiator=False, nonces=(sa.keys.ni, sa.keys.nr))
        return reply

    def _initial_contact(self, now: float, sa: Ikev2Sa) -> None:
        """N(INITIAL_CONTACT) (RFC 7296 2.4): the peer holds no other IKE SA
        with us (it rebooted, or declared us dead): ours with it go, with
        their CHILD_SAs, without a word to it. Only SAs established
        before this one began count: two set up at once (both ends
        initiating) are not stale."""
        stale = [o for o in self.ctx.sas if o is not sa and o.peer == sa.peer and o.established_at is not None
                 and o.established_at < sa.created]
        for other in stale:
            self.ctx.log(now, other, f"INITIAL_CONTACT from {sa.peer}: deleting the stale IKE SA")
            self.deletes.remove_sa(now, other, "INITIAL_CONTACT")
