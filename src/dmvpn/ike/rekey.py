"""IPsec SA pairs over their life: soft and hard limits, the decision to
rekey, collisions, and retiring replaced pairs (RFC 2409 leaves all of it to
the implementation; REFERENCE.md "Cisco IPsec SA lifetimes and rekeying").

Everything here reads the :class:`~dmvpn.ike.profiles.BehaviourProfile`:
``cisco-iosxe`` acts on soft events only at its periodic lifetime check,
never rekeys an idle pair, has no collision rule and lets the rekey's
initiator delete the replaced pair tens of seconds later; ``improved`` acts
at once on jittered, role-asymmetric limits, skips rekeys a newer or
negotiating pair makes redundant, and resolves simultaneous Quick Modes by
the lower initiator nonce. A task of :class:`~dmvpn.ike.engine.Ikev1Engine`.
"""

from __future__ import annotations

from typing import Protocol

from dmvpn.ike.context import Flow, Ikev1Context
from dmvpn.ike.informational import Informational
from dmvpn.ike.isakmp_sa import ChildRequest, ChildSa, IsakmpSa, QuickModeExchange
from dmvpn.ike.states import ChildEvent, ChildState, QuickModeState
from dmvpn.ipsec.events import HardExpired, SoftExpired
from dmvpn.ipsec.sa import SaDirection, SaOriginReason, SecurityAssociation

#: A Quick Mode finished this many seconds before another started still counts as its rival.
COLLISION_WINDOW = 5.0


class RekeyOwner(Protocol):
    """What rekeying asks of the engine: start a negotiation for a request."""

    def request(self, now: float, request: ChildRequest) -> None: ...


class Rekeying:
    """Lifetimes, rekeys and collisions of one engine's IPsec SA pairs."""

    def __init__(self, ctx: Ikev1Context, informational: Informational, owner: RekeyOwner) -> None:
        self.ctx = ctx
        self.informational = informational
        self.owner = owner
    def rekey(self, now: float, peer: str | None = None) -> int:
        """Start a rekey of every current pair (with ``peer``) now, as if its
        soft limit had passed and the lifetime check had just run. Returns
        how many Quick Modes were started."""
        started = 0
        for child in list(self.ctx.children.pairs):
            if (peer is None or child.peer == peer) and child.state is ChildState.ACTIVE:
                child.soft_reason = child.soft_reason or "time"
                self.consider_rekey(now, child)
                started += child.rekeying
        return started

    def _rival(self, node: QuickModeExchange, flow: Flow) -> QuickModeExchange | None:
        """A Quick Mode for the same flow in the other role that overlaps
        ``node``: still running, or finished within :data:`COLLISION_WINDOW`
        seconds of ``node``'s start (IKEv1 has no collision rule, RFC 2409)."""
        rival = None
        for sa in self.ctx.sas:
            for other in sa.nodes.values():
                if other is node or other.request is None or other.initiator == node.initiator:
                    continue
                if (other.request.peer, other.request.selector) != flow or other.state is QuickModeState.IKE_QM_FAILED:
                    continue
                if other.deleted_at is not None and other.deleted_at < node.started - COLLISION_WINDOW:
                    continue
                rival = other
        return rival

    def collision(self, now: float, sa: IsakmpSa, node: QuickModeExchange, flow: Flow) -> tuple[bool, bool]:
        """(collided, ``node`` loses). With the profile's tie-break the
        exchange with the higher initiator nonce loses on both sides alike;
        a rival pair already installed as the winner is demoted."""
        rival = self._rival(node, flow)
        if rival is None:
            return False, False
        if node.initiator:
            self.ctx.stats["collisions"] += 1
        if not self.ctx.profile.collision_tiebreak:
            return True, False
        loses = node.ni > rival.ni
        self.ctx.log(now, sa.conn_id, f"Quick Mode collision for {flow[0]}: node {node.message_id} "
                                  f"{'loses' if loses else 'wins'} against node {rival.message_id} (lower nonce wins)")
        if not loses and rival.child is not None and not rival.child.loser:
            rival.child.loser = True
            if rival.initiator:
                self.schedule_loser_delete(now, rival.child)
        return True, loses

    def delete_child(self, now: float, child: ChildSa, *, send: bool, why: str) -> None:
        if child.state is ChildState.DELETED:
            return
        child.transition(ChildEvent.DELETED)
        self.ctx.sad.delete(child.sa_in, now)
        self.ctx.sad.delete(child.sa_out, now)
        self.ctx.children.remove(child)
        self.ctx.sa_event(now, f"deleted ({why})", child)
        if send:
            self.informational.send_delete(now, self.ctx.isakmp_for(child.peer), [child.sa_in.spi])

    def schedule_replaced_delete(self, now: float, old: ChildSa) -> None:
        window = self.ctx.profile.delete_replaced_after
        if window is None or old.delete_scheduled:
            return
        old.delete_scheduled = True
        delay = self.ctx.random.uniform(*window) if window[0] != window[1] else window[0]
        self.ctx.call_at(now + delay, self._delete_replaced, old)

    def schedule_loser_delete(self, now: float, child: ChildSa) -> None:
        self.ctx.call_at(now + (self.ctx.profile.delete_replaced_after or (5.0, 5.0))[0], self._delete_loser, child)

    def _delete_replaced(self, now: float, child: ChildSa) -> None:
        self.delete_child(now, child, send=True, why="replaced")

    def _delete_loser(self, now: float, child: ChildSa) -> None:
        self.delete_child(now, child, send=True, why="lost a rekey collision")

    def _pair_of(self, sa: SecurityAssociation) -> ChildSa | None:
        table = self.ctx.children
        return (table.by_spi_in if sa.direction is SaDirection.INBOUND else table.by_spi_out).get(sa.spi)

    def on_soft(self, now: float, ev: SoftExpired) -> None:
        child = self._pair_of(ev.sa)
        if child is None or child.state is not ChildState.ACTIVE:
            return
        child.soft_reason = child.soft_reason or ev.reason
        if self.ctx.profile.lifetime_check_period is None:
            self.consider_rekey(now, child)

    def lifetime_check(self, now: float) -> None:
        """IOS's periodic SA lifetime check, at this router's own phase."""
        for child in list(self.ctx.children.pairs):
            if child.soft_reason is not None and child.state is ChildState.ACTIVE:
                self.consider_rekey(now, child)
        self.ctx.schedule(self.ctx.next_lifetime_check(now), self.lifetime_check)

    def consider_rekey(self, now: float, child: ChildSa) -> None:
        """Rekey ``child`` if the profile's rules allow (REFERENCE.md: never
        an idle SA, not one a newer pair replaced)."""
        p = self.ctx.profile
        if child.state is not ChildState.ACTIVE or child.loser:
            return
        if child.idle and not p.rekey_idle:
            return
        flow = child.flow
        newest = self.ctx.children.current(flow)
        if p.skip_rekey_if_newer and newest is not None and newest is not child and newest.created > child.created:
            child.transition(ChildEvent.REPLACED)
            child.replaced_by = newest
            return
        if p.skip_rekey_if_negotiating and self.ctx.negotiating(flow, as_initiator=False):
            return
        if self.ctx.negotiating(flow, as_initiator=True):
            return
        child.transition(ChildEvent.REKEY_STARTED)
        reason = SaOriginReason.VOLUME_REKEY if child.soft_reason == "volume" else SaOriginReason.TIME_REKEY
        self.owner.request(now, ChildRequest(child.policy, child.peer, child.local, child.selector, reason, child))

    def on_hard(self, now: float, ev: HardExpired) -> None:
        sa = ev.sa
        child = self._pair_of(sa)
        if child is None:
            return
        self.ctx.log(now, 0, f"IPSEC SA (SPI:0x{sa.spi:X}) reached its {ev.reason} lifetime")
        self.delete_child(now, child, send=True, why=f"{ev.reason} lifetime expired")
