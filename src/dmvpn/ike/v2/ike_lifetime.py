"""An IKE SA's life once established (RFC 7296 2.8, 2.8.2, 2.18): its
lifetime, the rekey its initiator starts before the end of it
(``phase1_rekey_fraction`` of the behaviour profile), the peer's rekey,
two rekeys that cross (the new SA whose exchange used the lowest nonce is
redundant and deleted by its initiator; the survivor inherits the
CHILD_SAs and its initiator deletes the old SA) and the wait for a
rekeyed SA's DELETE.
"""

from __future__ import annotations

from dmvpn.ike.v2.child_sa import redundant
from dmvpn.ike.v2.context import IKEV2_RETRANSMIT, REDUNDANT_WAIT, IkeCollisionRecord, Ikev2Context
from dmvpn.ike.v2.deletes import Deletes
from dmvpn.ike.v2.ike_rekey import IkeRekey
from dmvpn.ike.v2.ike_sa import Exchange, ExchangeKind, Ikev2Sa
from dmvpn.ike.v2.liveness import Liveness
from dmvpn.ike.v2.sa_init import IkeSaState
from dmvpn.ike.v2.settings import proposals_for
from dmvpn.ike.v2.states import Ikev2SaEvent, Ikev2SaState
from dmvpn.ike.v2.window import MessageWindow

K = ExchangeKind


class IkeSaLifetime:
    """Lifetimes and rekeys of one engine's IKE SAs."""

    def __init__(self, ctx: Ikev2Context, window: MessageWindow, deletes: Deletes, liveness: Liveness) -> None:
        self.ctx = ctx
        self.window = window
        self.deletes = deletes
        self.liveness = liveness

    def established(self, now: float, sa: Ikev2Sa, event: Ikev2SaEvent = Ikev2SaEvent.AUTH_DONE) -> None:
        """``sa`` is up: its lifetime, rekey and DPD timers start."""
        sa.transition(event)
        sa.established_at = now
        life = float(sa.profile.lifetime if sa.profile else 86400)
        sa.expires_at = now + life
        self.ctx.log(now, sa, f"Session with IKE ID PAIR ({sa.local}, {sa.peer}) is UP")
        self.ctx.syslog(now, f"SA UP  local {sa.local}:{sa.local_port} remote {sa.peer}:{sa.peer_port}",
                        "%IKEV2-5-SA_UP", peer=sa.peer)
        self.ctx.transport.schedule(sa.expires_at, lambda t: self._expired(t, sa))
        if sa.initiator:
            self.ctx.transport.schedule(now + life * self.ctx.profile.phase1_rekey_fraction,
                                        lambda t: self.rekey(t, sa))
        self.liveness.arm(now, sa)

    def rekey(self, now: float, sa: Ikev2Sa) -> None:
        """Queue our rekey of ``sa`` (once)."""
        if sa in self.ctx.sas and sa.established and not sa.rekey_started:
            sa.rekey_started = True
            self.window.enqueue(now, sa, Exchange(K.REKEY_IKE))

    def build(self, now: float, sa: Ikev2Sa, exch: Exchange) -> bytes | None:
        """Our rekey request (None: the peer's rekey replaced ``sa`` while ours was queued)."""
        if not sa.established:
            return None
        exch.task = rekey = IkeRekey(sa.keys, proposals_for(self.ctx.config, sa.local), self.ctx.random,
                                     exch.message_id, True)
        self.ctx.log(now, sa, "Sending IKE SA rekey request")
        return rekey.build_i(now)

    def rekey_done(self, now: float, sa: Ikev2Sa, exch: Exchange, data: bytes) -> None:
        """Our IKE SA rekey was answered: retried with the group the peer
        asks for (INVALID_KE_PAYLOAD), failed, or done; when the peer's
        rekey of the same SA crossed it (``sa.rival``), 2.8.2 settles it."""
        task: IkeRekey = exch.task
        ok = task.process_i(data, now)
        if ok is None:
            task.message_id = sa.next_mid
            self.window.launch(now, sa, Exchange(K.REKEY_IKE, message_id=sa.next_mid, task=task), task.build_i(now))
            return
        rival, sa.rival = sa.rival, None
        if not ok or task.new_sa is None or task.nonces is None:
            self.ctx.log(now, sa, f"IKE SA rekey failed: {task.error}")
            sa.rekey_started = False
            if rival is not None:  # the peer's crossing rekey stands alone; the peer deletes the old SA
                self.adopt(now, sa, rival[0])
            return
        mine = self._rekeyed_sa(now, sa, task.new_sa)
        if rival is None:
            self.adopt(now, sa, mine)
            self.deletes.send_ike_delete(now, sa)
            return
        self._settle_collision(now, sa, mine, task.nonces, rival)

    def _settle_collision(self, now: float, sa: Ikev2Sa, mine: Ikev2Sa, nonces: tuple[bytes, bytes],
                          rival: tuple[Ikev2Sa, tuple[bytes, bytes]]) -> None:
        """RFC 7296 2.8.2: the new SA whose exchange used the lowest nonce
        is redundant and deleted by its initiator; the survivor inherits
        the CHILD_SAs and its initiator deletes the old SA."""
        theirs, their_nonces = rival
        mine_lost = redundant(nonces, their_nonces)
        self.ctx.ike_collisions.append(IkeCollisionRecord(sa.sa_id, nonces, their_nonces, mine.sa_id, theirs.sa_id,
                                                          mine_lost))
        self.ctx.log(now, sa, f"IKE SA rekey collision: ours (SA ID {mine.sa_id}) "
                              f"{'is redundant (lowest nonce), deleting it' if mine_lost else 'survives'} "
                              f"(RFC 7296 2.8.2)")
        if mine_lost:
            self.adopt(now, sa, theirs)
            self.deletes.send_ike_delete(now, mine)
        else:
            self.adopt(now, sa, mine)
            self.deletes.send_ike_delete(now, sa)
            # The loser may never have set up its redundant SA: strongSwan 5.9 drops a response whose
            # message ID is that of the request it is processing and then, on our DELETE of the old SA,
            # destroys its own new SA silently ("peer did not notice IKE_SA rekey collision").
            self._expect_delete(now, theirs, REDUNDANT_WAIT)

    def rekey_r(self, now: float, sa: Ikev2Sa, mid: int, data: bytes) -> bytes | None:
        """The peer rekeys the IKE SA. While our own rekey of it is in
        flight the new SA waits as ``sa.rival`` for 2.8.2 to settle."""
        task = IkeRekey(sa.keys, proposals_for(self.ctx.config, sa.local), self.ctx.random, mid, False)
        task.process_r(data, now)
        reply = task.build_r(now)
        if reply is None or task.new_sa is None or task.nonces is None:
            return reply
        new = self._rekeyed_sa(now, sa, task.new_sa)
        ours = sa.outstanding
        if ours is not None and ours.kind is K.REKEY_IKE:
            self.ctx.log(now, sa, f"IKE SA rekey collision: the peer's rekey (SA ID {new.sa_id}) crossed ours")
            sa.rival = (new, task.nonces)
        else:
            self.adopt(now, sa, new)
        return reply

    def _rekeyed_sa(self, now: float, old: Ikev2Sa, keys: IkeSaState) -> Ikev2Sa:
        """The new IKE SA of a rekey of ``old`` (RFC 7296 2.18), established, without CHILD_SAs yet."""
        new = self.ctx.new_sa(now, keys.initiator, old.local, old.peer, keys)
        new.local_port, new.peer_port, new.auth, new.profile = old.local_port, old.peer_port, old.auth, old.profile
        new.nat = old.nat
        self.ctx.export_keys(keys)
        self.established(now, new, Ikev2SaEvent.TAKE_OVER)
        return new

    def adopt(self, now: float, old: Ikev2Sa, new: Ikev2Sa) -> None:
        """``new`` replaces ``old``: it inherits the CHILD_SAs; the old one
        only waits for its DELETE (ours, or the peer's: then not forever)."""
        for child in old.children:
            self.ctx.child_ike[child] = new
        new.children, old.children = new.children + old.children, []
        old.transition(Ikev2SaEvent.REKEYED)
        self.ctx.log(now, old, f"IKE SA rekeyed: new SA ID {new.sa_id}")
        if not new.initiator:
            self._expect_delete(now, old)

    def _expect_delete(self, now: float, sa: Ikev2Sa, wait: float | None = None) -> None:
        """The peer is to delete ``sa`` (a rekeyed or redundant IKE SA, 2.8.2);
        if its DELETE never comes, the SA goes (without a word) after
        ``wait``, by default when the peer's retransmissions would have
        given up."""
        def give_up(t: float) -> None:
            if sa in self.ctx.sas and sa.state is not Ikev2SaState.DELETED:
                self.deletes.remove_sa(t, sa, "the peer's DELETE never came")
        self.ctx.transport.schedule(now + (IKEV2_RETRANSMIT.give_up_after() if wait is None else wait), give_up)

    def _expired(self, now: float, sa: Ikev2Sa) -> None:
        if sa in self.ctx.sas and sa.expires_at is not None and now >= sa.expires_at:
            self.deletes.remove_sa(now, sa, "lifetime expired")
