"""CHILD_SAs in the SAD (RFC 7296 1.3, 2.8, 2.8.1, 2.17, 2.25): new ones
and rekeys by CREATE_CHILD_SA, either side's, and two rekeys of one pair
that cross.

They go into the shared SAD as IKEv1's do (same
:class:`~dmvpn.ipsec.sa.SecurityAssociation` objects, lifetimes from the
behaviour profile, transport-mode GRE selectors for DMVPN). A rekey's
responder installs the new outbound SA inactive and switches to it when
the initiator deletes the old pair (strongSwan does the same, so no packet
is sent on an SA the initiator cannot read yet). Two rekeys of one pair
that cross are settled by 2.8.1 (:func:`~dmvpn.ike.v2.child_sa.redundant`):
the new pair whose exchange used the lowest nonce is deleted by its
initiator, and the surviving pair's initiator deletes the old one. A rekey
of a pair being deleted is refused TEMPORARY_FAILURE, of an unknown one
CHILD_SA_NOT_FOUND (2.25).
"""

from __future__ import annotations

from dmvpn.ike.context import ACQUIRE_HOLDOFF
from dmvpn.ike.isakmp_sa import ChildRequest, ChildSa
from dmvpn.ike.quick_mode import sa_lifetime
from dmvpn.ike.states import ChildEvent, ChildState
from dmvpn.ike.v2.child_sa import CreateChildSa, CreatedChild, redundant
from dmvpn.ike.v2.context import CollisionRecord, Ikev2Context, RekeyOutcome, spi_value
from dmvpn.ike.v2.deletes import Deletes
from dmvpn.ike.v2.ike_auth import ChildSaResult
from dmvpn.ike.v2.ike_sa import Exchange, ExchangeKind, Ikev2Sa
from dmvpn.ike.v2.settings import auth_config, responder_policy
from dmvpn.ike.v2.window import MessageWindow
from dmvpn.ipsec.sa import EspMode, SaDirection, SaOrigin, SaOriginReason, SecurityAssociation, Selector
from dmvpn.wire.ikev2 import Ikev2Message
from dmvpn.wire.ikev2_payloads import NotifyPayload
from dmvpn.wire.ikev2_registry import NotifyType

K = ExchangeKind
#: A pair's keys as this side uses them: (encryption in, integrity in, encryption out, integrity out).
PairKeys = tuple[bytes, bytes, bytes, bytes]


class ChildSas:
    """The CHILD_SAs of one engine: creation, rekeys, collisions."""

    def __init__(self, ctx: Ikev2Context, window: MessageWindow, deletes: Deletes) -> None:
        self.ctx = ctx
        self.window = window
        self.deletes = deletes

    # ------------------------------------------------------------ the peer's requests
    def create_r(self, now: float, sa: Ikev2Sa, mid: int, data: bytes, peek: Ikev2Message) -> bytes | None:
        """A CREATE_CHILD_SA request for a new or rekeyed CHILD_SA (``peek``: it decrypted)."""
        ctx = self.ctx
        policy = responder_policy(ctx.config, ctx.child_policies, sa.local, sa.peer)
        cfg = auth_config(ctx.config, policy, sa.local, sa.peer) if policy is not None else None
        if policy is None or cfg is None:
            return None
        task = CreateChildSa(sa.keys, cfg, ctx.random, mid, False, pfs_group=policy.pfs_group)
        race = self._rekey_race(peek)
        if race is not None:
            ctx.log(now, sa, f"CREATE_CHILD_SA rekey refused: {race[1]}")
            ctx.stats["rekeys_refused"] += 1
            return task.refuse(*race)
        task.process_r(data, now)
        reply = task.build_r(now)
        if reply is None or task.result is None:
            ctx.log(now, sa, f"CREATE_CHILD_SA refused: {task.error}")
            return reply
        flow = (sa.peer, Selector.hosts(sa.local, sa.peer, policy.protocol))
        old = ctx.children.by_spi_out.get(spi_value(task.result.rekeyed_spi)) if task.result.rekeyed_spi else None
        request = ChildRequest(policy, sa.peer, sa.local, flow[1], SaOriginReason.PEER_REKEY if old else
                               SaOriginReason.INITIAL, old)
        ctx.log(now, sa, f"Received {'rekey' if old else 'new'} CHILD_SA request"
                         + (f" for SPI 0x{old.sa_in.spi:X}" if old else ""))
        self._created(now, sa, task.result, request, initiator=False)
        return reply

    def _rekey_race(self, request: Ikev2Message) -> tuple[int, str] | None:
        """RFC 7296 2.25: a rekey of a CHILD_SA we are deleting is answered
        TEMPORARY_FAILURE, of one we do not have CHILD_SA_NOT_FOUND."""
        for n in request.find(NotifyPayload):
            if isinstance(n, NotifyPayload) and n.notify_type == NotifyType.REKEY_SA:
                old = self.ctx.children.by_spi_out.get(spi_value(n.spi)) if len(n.spi) == 4 else None
                if old is None:
                    return NotifyType.CHILD_SA_NOT_FOUND, f"no CHILD_SA with SPI 0x{n.spi.hex().upper()}"
                if old.state is ChildState.DELETED:
                    return NotifyType.TEMPORARY_FAILURE, f"CHILD_SA 0x{old.sa_in.spi:X} is being deleted"
        return None

    # ------------------------------------------------------------ our requests
    def build(self, now: float, sa: Ikev2Sa, exch: Exchange) -> bytes | None:
        """Our CREATE_CHILD_SA request (None: the pair to rekey was deleted or replaced while queued)."""
        request = exch.request
        assert request is not None
        old = request.rekey_of
        if old is not None and (old.state is not ChildState.REKEYING or old not in self.ctx.children.pairs):
            return None
        cfg = auth_config(self.ctx.config, request.policy, sa.local, sa.peer)
        if cfg is None:
            return None
        rekey_spi = old.sa_in.spi.to_bytes(4, "big") if old is not None else None
        exch.task = task = CreateChildSa(sa.keys, cfg, self.ctx.random, exch.message_id, True, rekey_spi,
                                         request.policy.pfs_group)
        self.ctx.log(now, sa, f"Sending {'rekey' if old else 'new'} CHILD_SA request"
                              + (f" for SPI 0x{old.sa_in.spi:X}" if old else ""))
        return task.build_i(now)

    def done(self, now: float, sa: Ikev2Sa, exch: Exchange, data: bytes) -> None:
        """The answer to our CREATE_CHILD_SA: retried with the group the
        peer asks for (INVALID_KE_PAYLOAD), failed, or installed."""
        task: CreateChildSa = exch.task
        request = exch.request
        assert request is not None
        ok = task.process_i(data, now)
        if ok is None:  # INVALID_KE_PAYLOAD: again with the group asked for (1.3), next message ID
            self.ctx.log(now, sa, f"CREATE_CHILD_SA: INVALID_KE_PAYLOAD, retrying with group {task.pfs_group}")
            task.message_id = sa.next_mid
            retry = Exchange(exch.kind, request=request, child=exch.child, message_id=sa.next_mid, task=task)
            self.window.launch(now, sa, retry, task.build_i(now))
            return
        if not ok or task.result is None:
            self.ctx.log(now, sa, f"CREATE_CHILD_SA failed: {task.error}")
            if request.rekey_of is None:
                self.ctx.holdoff[(request.peer, request.selector)] = now + ACQUIRE_HOLDOFF
            elif request.rekey_of.state is ChildState.REKEYING:
                request.rekey_of.transition(ChildEvent.REKEY_FAILED)
            return
        self._created(now, sa, task.result, request, initiator=True)

    def _created(self, now: float, sa: Ikev2Sa, created: CreatedChild, request: ChildRequest, *,
                 initiator: bool) -> None:
        """Install a CHILD_SA from CREATE_CHILD_SA and settle the rekey it
        completes: RFC 7296 2.8.1 when another rekey of the same pair crossed it."""
        old = request.rekey_of
        child = self.install(now, sa, created.child, request, initiator=initiator, nonces=(created.ni, created.nr))
        if old is None or child is None:
            return
        outcomes = self.ctx.rekeys.setdefault(old, [])
        outcomes.append(RekeyOutcome(child, (created.ni, created.nr), initiator))
        if old.state in (ChildState.ACTIVE, ChildState.REKEYING):
            old.transition(ChildEvent.REPLACED)
            old.replaced_by = child
        if not initiator:
            return  # the initiator settles it; ours, if any, is still in flight
        rivals = [o for o in outcomes if not o.ours]  # its pair may be deleted already: the peer settled first
        if not rivals:
            self.deletes.delete_child(now, old, "rekeyed", send=True)
            return
        self._settle_collision(now, sa, old, child, (created.ni, created.nr), rivals[0])

    def _settle_collision(self, now: float, sa: Ikev2Sa, old: ChildSa, child: ChildSa, nonces: tuple[bytes, bytes],
                          theirs: RekeyOutcome) -> None:
        """RFC 7296 2.8.1: the new pair whose exchange used the lowest nonce
        is deleted by its initiator; the survivor's initiator deletes the old pair."""
        ctx = self.ctx
        ctx.stats["collisions"] += 1
        mine_lost = redundant(nonces, theirs.nonces)
        ctx.collisions.append(CollisionRecord(old.sa_in.spi, nonces, theirs.nonces, child.sa_in.spi,
                                              theirs.new.sa_in.spi, mine_lost))
        ctx.log(now, sa, f"CHILD_SA rekey collision for SPI 0x{old.sa_in.spi:X}: ours (in 0x{child.sa_in.spi:X}) "
                         f"{'is redundant (lowest nonce), deleting it' if mine_lost else 'survives'} "
                         f"(RFC 7296 2.8.1)")
        if mine_lost:
            child.loser = True
            ctx.stats["redundant_deleted"] += 1
            self.deletes.delete_child(now, child, "redundant rekey (RFC 7296 2.8.1)", send=True)
        else:
            theirs.new.loser = True
            self.deletes.delete_child(now, old, "rekeyed", send=True)

    # ------------------------------------------------------------ the SAD
    def install(self, now: float, sa: Ikev2Sa, result: ChildSaResult, request: ChildRequest, *,
                initiator: bool, nonces: tuple[bytes, bytes]) -> ChildSa | None:
        """Put a CHILD_SA pair into the SAD (RFC 7296 2.17 KEYMAT: the first
        keys protect initiator-to-responder traffic)."""
        spi_in, spi_out, pair_keys = _spis_and_keys(result, initiator)
        enc_in, auth_in, enc_out, auth_out = pair_keys
        old = request.rekey_of
        reason = _reason(request, initiator)
        policy = request.policy
        lifetime = sa_lifetime(self.ctx.profile, self.ctx.random, policy.lifetime_seconds, policy.lifetime_kilobytes,
                               initiator)
        mode = EspMode.TRANSPORT if result.transport else EspMode.TUNNEL

        def half(spi: int, direction: SaDirection, enc: bytes, auth: bytes, replaces: int | None
                 ) -> SecurityAssociation:
            return SecurityAssociation(spi=spi, direction=direction, encryption_key=enc, integrity_key=auth,
                                       origin=SaOrigin(initiator, reason, replaces), peer=request.peer,
                                       local=request.local, transform=result.esp, mode=mode,
                                       selector=request.selector, lifetime=lifetime, ike_sa=sa.sa_id,
                                       replay_window_size=self.ctx.config.replay_window_size or 64,
                                       udp_encap=(sa.local_port, sa.peer_port) if sa.nat else None)

        try:
            sa_in = half(spi_in, SaDirection.INBOUND, enc_in, auth_in, old.sa_in.spi if old else None)
            sa_out = half(spi_out, SaDirection.OUTBOUND, enc_out, auth_out, old.sa_out.spi if old else None)
            self.ctx.sad.install_pair(now, sa_in, sa_out, replaces=(old.sa_in, old.sa_out) if old else None,
                                      outbound_active=initiator or old is None)
        except ValueError as exc:
            self.ctx.syslog(now, f"IPsec SA with {request.peer} not installed: {exc}", peer=request.peer)
            return None
        child = ChildSa(request.peer, request.local, request.selector, policy, sa_in, sa_out, initiator,
                        nonces[0], now, reason, replaces=old)
        child.keys = pair_keys
        self._add(now, sa, child, result)
        return child

    def _add(self, now: float, sa: Ikev2Sa, child: ChildSa, result: ChildSaResult) -> None:
        """A pair just installed into the tables, under its IKE SA."""
        self.ctx.children.add(child)
        self.ctx.child_ike[child] = sa
        self.ctx.results[child] = result
        sa.children.append(child)
        self.ctx.log(now, sa, f"Installed IPsec SA: in SPI 0x{child.sa_in.spi:X} out SPI 0x{child.sa_out.spi:X} "
                              f"on {child.policy.interface}")
        self.ctx.sa_event(now, "installed", child)

    # ------------------------------------------------------------ rekeying
    def rekey(self, now: float, child: ChildSa, force: bool = False) -> int:
        """Start a CHILD_SA rekey if the behaviour profile allows (never an
        idle pair on IOS; not one a newer pair already replaced). 1 if started."""
        p = self.ctx.profile
        if child.state is not ChildState.ACTIVE or child.loser:
            return 0
        if child.idle and not p.rekey_idle and not force:
            return 0
        newest = self.ctx.children.current(child.flow)
        if p.skip_rekey_if_newer and newest is not None and newest is not child and newest.created > child.created:
            child.transition(ChildEvent.REPLACED)
            child.replaced_by = newest
            return 0
        sa = self.ctx.child_ike.get(child)
        if sa is None or not sa.established:
            sa = self.ctx.ike_for(child.peer)
            if sa is None:
                return 0
            self.ctx.child_ike[child] = sa
        child.transition(ChildEvent.REKEY_STARTED)
        reason = SaOriginReason.VOLUME_REKEY if child.soft_reason == "volume" else SaOriginReason.TIME_REKEY
        request = ChildRequest(child.policy, child.peer, child.local, child.selector, reason, child)
        self.window.enqueue(now, sa, Exchange(K.REKEY_CHILD, request=request, child=child))
        return 1

    def lifetime_check(self, now: float) -> None:
        """IOS's periodic SA lifetime check (the ``cisco-iosxe`` profile)."""
        for child in list(self.ctx.children.pairs):
            if child.soft_reason is not None and child.state is ChildState.ACTIVE:
                self.rekey(now, child)
        self.ctx.schedule(self.ctx.next_lifetime_check(now), self.lifetime_check)


def _spis_and_keys(result: ChildSaResult, initiator: bool) -> tuple[int, int, PairKeys]:
    """Our inbound and outbound SPIs and the pair's keys as we use them (RFC 7296 2.17)."""
    keys = result.keys
    if initiator:
        return (spi_value(result.spi_i), spi_value(result.spi_r),
                (keys.encr_r, keys.integ_r, keys.encr_i, keys.integ_i))
    return spi_value(result.spi_r), spi_value(result.spi_i), (keys.encr_i, keys.integ_i, keys.encr_r, keys.integ_r)


def _reason(request: ChildRequest, initiator: bool) -> SaOriginReason:
    """Why the pair exists: the request's reason, the peer's rekey, or a
    rekey of the peer's that crossed ours (2.8.1)."""
    old = request.rekey_of
    reason = request.reason
    if not initiator and old is not None:
        reason = SaOriginReason.PEER_REKEY
    if old is not None and old.state is ChildState.REKEYING and not initiator:
        reason = SaOriginReason.COLLISION
    return reason
