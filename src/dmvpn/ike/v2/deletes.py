"""Deleting CHILD_SAs and IKE SAs (RFC 7296 1.4, 1.4.1, 2.4): our DELETEs,
the peer's, the two crossing, and the IKE SA of a peer that stopped
answering. A pair we delete loses its outbound half at once and its
inbound half when the peer answers (so packets in flight are still
accepted); a pair both ends delete at once loses its outbound half when
the peer's request comes and its inbound half with the answer to ours; an
IKE SA goes with all its CHILD_SAs, and when both ends delete it at once
it stays (its CHILD_SAs gone) only to answer a retransmission of the
peer's DELETE until ours is answered.
"""

from __future__ import annotations

from typing import Protocol

from dmvpn.ike.isakmp_sa import ChildSa
from dmvpn.ike.states import ChildEvent, ChildState
from dmvpn.ike.v2.context import IKEV2_RETRANSMIT, Ikev2Context, spi_value
from dmvpn.ike.v2.ike_sa import Exchange, ExchangeKind, Ikev2Sa
from dmvpn.ike.v2.informational import Informational, PairHalf
from dmvpn.ike.v2.states import Ikev2SaEvent, Ikev2SaState
from dmvpn.ike.v2.window import MessageWindow

K = ExchangeKind


class DeleteOwner(Protocol):
    """What deletes ask of the engine: an IKE SA rekey's new SA takes over."""

    def adopt(self, now: float, old: Ikev2Sa, new: Ikev2Sa) -> None: ...


class Deletes:
    """The DELETEs of one engine's CHILD_SAs and IKE SAs."""

    def __init__(self, ctx: Ikev2Context, window: MessageWindow, owner: DeleteOwner) -> None:
        self.ctx = ctx
        self.window = window
        self.owner = owner

    # ------------------------------------------------------------ CHILD_SAs
    def delete_child(self, now: float, child: ChildSa, why: str, *, send: bool) -> None:
        """Retire a pair. With ``send``: its outbound half now, a DELETE of
        its inbound SPI to the peer, the inbound half when the peer answers."""
        if child.state is ChildState.DELETED:
            return
        child.transition(ChildEvent.DELETED)
        self.ctx.sa_event(now, f"deleted ({why})", child)
        sa = self.ctx.child_ike.get(child)
        if not send or sa is None or not sa.established:
            self.drop_halves(now, child)
            return
        self.ctx.sad.delete(child.sa_out, now)
        self.window.enqueue(now, sa, Exchange(K.DELETE_CHILD, child=child))

    def drop_halves(self, now: float, child: ChildSa) -> None:
        """Both halves out of the SAD and the pair out of the tables. A pair
        we answered the rekey of ``child`` with starts sending now: the
        rekey's initiator deleting the old pair is the sign that it has the
        new one (so the loser of a collision never sends on the winner's
        pair before the winner installed it)."""
        ctx = self.ctx
        if child.state is not ChildState.DELETED:
            child.transition(ChildEvent.DELETED)
        ctx.sad.delete(child.sa_in, now)
        ctx.sad.delete(child.sa_out, now)
        if child in ctx.children.pairs:
            ctx.children.remove(child)
        sa = ctx.child_ike.pop(child, None)
        if sa is not None and child in sa.children:
            sa.children.remove(child)
        ctx.results.pop(child, None)
        if child in ctx.rekeys:  # kept while a rekey of it that crossed may still complete
            ctx.transport.schedule(now + IKEV2_RETRANSMIT.give_up_after(), lambda t: self._forget_rekeys(child))
        for successor in ctx.children.pairs:
            if successor.replaces is child and not successor.loser:
                ctx.sad.activate(successor.sa_out)

    def _forget_rekeys(self, child: ChildSa) -> None:
        self.ctx.rekeys.pop(child, None)

    def delete_child_done(self, now: float, sa: Ikev2Sa, exch: Exchange, data: bytes) -> None:
        """The peer answered our DELETE of a pair: its inbound half goes too."""
        info: Informational = exch.task
        info.process_i(data, now)
        if exch.child is not None:
            self.drop_halves(now, exch.child)

    # ------------------------------------------------------------ the peer's INFORMATIONAL requests
    def informational_r(self, now: float, sa: Ikev2Sa, mid: int, data: bytes) -> bytes | None:
        """DELETE of CHILD_SAs or of the IKE SA, or a liveness check (1.4, 2.4)."""

        def pairs(spi: bytes) -> PairHalf | None:
            child = self.ctx.children.by_spi_out.get(spi_value(spi))
            if child is None:
                return None
            return PairHalf(child.sa_in.spi.to_bytes(4, "big"), child.state is ChildState.DELETED)

        info = Informational(sa.keys, self.ctx.random, mid, False)
        info.process_r(data, now, pairs)
        reply = info.build_r(now)
        if reply is None:
            self.ctx.log(now, sa, f"INFORMATIONAL request undecryptable: {info.error}")
            return None
        for spi in info.result.deleted_child_spis:
            self._peer_deleted_child(now, sa, spi_value(spi))
        for spi in info.result.crossed_child_spis:
            self._crossing_child_delete(now, sa, spi_value(spi))
        if info.result.delete_ike:
            self._peer_deleted_ike(now, sa)
        elif not info.result.deleted_child_spis and not info.result.crossed_child_spis:
            self.ctx.log(now, sa, "Received DPD/liveness query; answering")
        return reply

    def _peer_deleted_child(self, now: float, sa: Ikev2Sa, spi_out: int) -> None:
        """The peer deletes a pair (1.4.1): both its halves go here."""
        child = self.ctx.children.by_spi_out.get(spi_out)
        if child is not None:
            self.ctx.log(now, sa, f"Received DELETE for IPsec SA [SPI: 0x{spi_out:X}]")
            if child.state is not ChildState.DELETED:
                child.transition(ChildEvent.DELETED)
                self.ctx.sa_event(now, "deleted (peer's DELETE)", child)
            self.drop_halves(now, child)

    def _crossing_child_delete(self, now: float, sa: Ikev2Sa, spi_out: int) -> None:
        """The peer deletes a pair whose DELETE we sent (or queued) too
        (RFC 7296 1.4.1): the outbound half goes while processing its
        request (ours went when we decided), the inbound half with the
        answer to our own DELETE."""
        child = self.ctx.children.by_spi_out[spi_out]
        self.ctx.log(now, sa, f"Received crossing DELETE for IPsec SA [SPI: 0x{spi_out:X}] that we delete too: "
                              f"outbound SA gone, inbound SA goes with the answer to ours (RFC 7296 1.4.1)")
        self.ctx.sad.delete(child.sa_out, now)

    def _peer_deleted_ike(self, now: float, sa: Ikev2Sa) -> None:
        """The peer deletes the IKE SA (1.4.1): its CHILD_SAs go, unless a
        crossing rekey's surviving SA takes them (2.8.2)."""
        self.ctx.log(now, sa, "Received DELETE for the IKEv2 SA")
        if sa.rival is not None:  # only the winner of a crossing rekey deletes the old SA (2.8.2)
            rival, sa.rival = sa.rival[0], None
            self.ctx.log(now, sa, f"IKE SA rekey collision: the peer's DELETE of the old SA came first, "
                                  f"its rekey (SA ID {rival.sa_id}) survives (RFC 7296 2.8.2)")
            self.owner.adopt(now, sa, rival)
        self.remove_children(now, sa, "peer deleted the IKE SA")
        if sa.state is not Ikev2SaState.DELETED:
            sa.transition(Ikev2SaEvent.DELETE)
        if sa.deletes_crossed:
            self._crossing_ike_delete(now, sa)

    def _crossing_ike_delete(self, now: float, sa: Ikev2Sa) -> None:
        """Both ends delete the IKE SA at once (1.4.1): the peer's request,
        just answered, says it is deleting the SA, so ours needs no more
        retransmissions. The SA (its CHILD_SAs gone) stays only to answer a
        retransmission of the peer's DELETE from the cache (2.1), until our
        DELETE is answered or the peer's retransmissions would have ended."""
        ours = sa.outstanding
        assert ours is not None
        self.ctx.transport.cancel_retransmit(ours.retransmit)
        self.ctx.log(now, sa, "Our DELETE of the IKEv2 SA crossed the peer's (RFC 7296 1.4.1): not retransmitting it")

        def linger_over(t: float) -> None:
            if sa in self.ctx.sas:
                self.remove_sa(t, sa, "deleted by both ends, our DELETE unanswered")
        self.ctx.transport.schedule(now + IKEV2_RETRANSMIT.give_up_after(), linger_over)

    # ------------------------------------------------------------ IKE SAs
    def send_ike_delete(self, now: float, sa: Ikev2Sa) -> None:
        """Queue our DELETE of the IKE SA."""
        self.window.enqueue(now, sa, Exchange(K.DELETE_IKE))

    def delete_ike_done(self, now: float, sa: Ikev2Sa, exch: Exchange, data: bytes) -> None:
        """The peer answered our DELETE of the IKE SA."""
        self.remove_sa(now, sa, "deleted by both ends" if sa.state is Ikev2SaState.DELETED else "deleted")

    def remove_children(self, now: float, sa: Ikev2Sa, why: str) -> None:
        """Every CHILD_SA of ``sa`` out of the SAD."""
        for child in list(sa.children):
            if child.state is not ChildState.DELETED:
                child.transition(ChildEvent.DELETED)
                self.ctx.sa_event(now, f"deleted ({why})", child)
            self.drop_halves(now, child)

    def remove_sa(self, now: float, sa: Ikev2Sa, why: str) -> None:
        """Forget an IKE SA and (unless a rekey moved them) its CHILD_SAs."""
        self.remove_children(now, sa, why)
        if sa.state is not Ikev2SaState.DELETED:
            sa.transition(Ikev2SaEvent.DELETE)
        self.window.forget(sa)
        self.ctx.log(now, sa, f"Deleting IKEv2 SA ({why})")

    def gave_up(self, now: float, sa: Ikev2Sa, exch: Exchange) -> None:
        """Retransmissions spent: the peer is gone (RFC 7296 2.4); the IKE
        SA and its CHILD_SAs are deleted without a word to it."""
        self.ctx.log(now, sa, "Maximum number of retransmissions reached")
        self.ctx.stats["ike_failures"] += 1
        if exch.kind is K.DELETE_CHILD and exch.child is not None:
            self.drop_halves(now, exch.child)
        self.ctx.syslog(now, f"IKEv2 peer {sa.peer} did not answer {exch.kind.value}: deleting the IKE SA",
                        "%IKEV2-5-SA_DOWN", peer=sa.peer)
        self.remove_sa(now, sa, "no response")

    def build(self, now: float, sa: Ikev2Sa, exch: Exchange) -> bytes:
        """Our DELETE request: of a pair (its inbound SPI) or of the IKE SA."""
        exch.task = info = Informational(sa.keys, self.ctx.random, exch.message_id, True)
        if exch.kind is K.DELETE_CHILD:
            assert exch.child is not None
            self.ctx.log(now, sa, f"Sending DELETE INFO message for IPsec SA [SPI: 0x{exch.child.sa_in.spi:X}]")
            return info.build_i(now, [exch.child.sa_in.spi.to_bytes(4, "big")])
        self.ctx.log(now, sa, "Sending DELETE INFO message for IKEv2 SA")
        return info.build_i(now, delete_ike=True)
