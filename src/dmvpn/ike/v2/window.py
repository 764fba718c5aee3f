"""The message-ID windows of the IKE SAs (RFC 7296 2.1-2.3), charon's
``task_manager_v2`` without the tasks: window size 1 both ways (one
request of ours in flight, the rest queued), each request retransmitted
until answered or given up, a response matched to the request in flight
by message ID and exchange type, the peer's next request handed to the
engine and its retransmission answered from the cached response, never
processed twice.
"""

from __future__ import annotations

from typing import Protocol

from dmvpn.ike.context import Flow
from dmvpn.ike.transport import Retransmit, RetransmitTimers
from dmvpn.ike.v2.context import DPD_RETRIES, Ikev2Context, exchange_name
from dmvpn.ike.v2.ike_sa import Exchange, ExchangeKind, Ikev2Sa
from dmvpn.ike.v2.states import Ikev2SaState
from dmvpn.wire.ikev2 import Ikev2Header
from dmvpn.wire.ikev2_registry import ExchangeType


class WindowOwner(Protocol):
    """What the window asks of the engine: the exchanges themselves."""

    def start(self, now: float, sa: Ikev2Sa, exch: Exchange) -> bytes | None:
        """The request of a queued exchange (None: it is moot now)."""
        ...

    def completed(self, now: float, sa: Ikev2Sa, exch: Exchange, data: bytes) -> None:
        """The response to our request ``exch`` arrived."""
        ...

    def answer(self, now: float, sa: Ikev2Sa, hdr: Ikev2Header, data: bytes) -> bytes | None:
        """The response to the peer's next request (None: drop it)."""
        ...

    def gave_up(self, now: float, sa: Ikev2Sa, exch: Exchange) -> None:
        """Our request ``exch`` was never answered."""
        ...


class MessageWindow:
    """Requests and responses of every IKE SA of one engine."""

    def __init__(self, ctx: Ikev2Context, owner: WindowOwner) -> None:
        self.ctx = ctx
        self.owner = owner

    def lookup(self, hdr: Ikev2Header, src: str, response: bool) -> Ikev2Sa | None:
        """The IKE SA a message belongs to, by its SPIs (the responder's is
        still zero in an IKE_SA_INIT request and unknown to its initiator)."""
        for sa in self.ctx.sas:
            if sa.keys.spi_i != hdr.spi_i or sa.peer != src:
                continue
            if sa.keys.spi_r == hdr.spi_r:
                return sa
            if hdr.exchange_type == ExchangeType.IKE_SA_INIT and (
                    (response and sa.state is Ikev2SaState.INIT_SENT)
                    or (not response and hdr.spi_r == bytes(8))):
                return sa
        return None

    def response(self, now: float, sa: Ikev2Sa, hdr: Ikev2Header, data: bytes) -> None:
        """A response: the one to our request in flight completes it, and the next queued request starts."""
        exch = sa.outstanding
        if exch is None or hdr.message_id != exch.message_id:
            self.ctx.log(now, sa, f"Response with message id {hdr.message_id} matches no request, dropped")
            return
        if hdr.exchange_type != exch.kind.exchange_type:  # charon too: "received X response, but expected Y"
            self.ctx.log(now, sa, f"{exchange_name(hdr.exchange_type)} response to our {exch.kind.value} request, "
                                  f"dropped")
            return
        self.ctx.transport.cancel_retransmit(exch.retransmit)
        sa.outstanding = None
        if exch.kind is not ExchangeKind.IKE_SA_INIT:
            sa.next_mid += 1
        self.owner.completed(now, sa, exch, data)
        self.kick(now, sa)

    def request(self, now: float, sa: Ikev2Sa, hdr: Ikev2Header, data: bytes) -> None:
        """A request of the peer: the next one is processed, a retransmission
        of the last one answered from the cache (RFC 7296 2.1), others dropped."""
        mid = hdr.message_id
        if mid == sa.peer_mid - 1 and sa.last_response:
            self.ctx.log(now, sa, f"Retransmitted request (message id {mid}): resending the cached response")
            self.ctx.send(sa, sa.last_response)
            return
        if mid != sa.peer_mid:
            self.ctx.log(now, sa, f"Request with message id {mid} outside the window (expected {sa.peer_mid}), "
                                  f"dropped")
            return
        reply = self.owner.answer(now, sa, hdr, data)
        if reply is None:
            return  # not decryptable or not for this state: no answer, the window does not move (2.21.2)
        sa.peer_mid += 1
        sa.last_request, sa.last_response = data, reply
        self.ctx.send(sa, reply)
        if sa.state is Ikev2SaState.DELETED and not sa.deletes_crossed:
            self.forget(sa)

    def enqueue(self, now: float, sa: Ikev2Sa, exch: Exchange) -> None:
        """Queue a request of ours on ``sa``; it starts when the window is free."""
        sa.queue.append(exch)
        self.kick(now, sa)

    def kick(self, now: float, sa: Ikev2Sa) -> None:
        """Window size 1 (RFC 7296 2.3): start the next queued request when none is in flight."""
        while sa.outstanding is None and sa.queue and sa in self.ctx.sas:
            exch = sa.queue.pop(0)
            exch.message_id = sa.next_mid
            packet = self.owner.start(now, sa, exch)
            if packet is None:
                continue
            self.launch(now, sa, exch, packet)

    def launch(self, now: float, sa: Ikev2Sa, exch: Exchange, packet: bytes) -> None:
        """Send our request and retransmit it until answered (2.1); a
        liveness check at the ``dpd`` RETRY interval."""
        exch.packet = packet
        sa.outstanding = exch
        self.ctx.send(sa, packet, now, exch)
        exch.retransmit = rt = Retransmit(packet)
        timers = None
        if exch.kind is ExchangeKind.LIVENESS and sa.profile is not None and sa.profile.dpd is not None:
            retry = float(sa.profile.dpd.retry)
            timers = RetransmitTimers(retry, 1.0, retry, DPD_RETRIES)

        def resend(t: float) -> None:
            self.ctx.stats["retransmits"] += 1
            self.ctx.log(t, sa, f"Retransmitting packet (message id {exch.message_id}, {exch.kind.value})")
            self.ctx.send(sa, exch.packet)

        def give_up(t: float) -> None:
            if sa.outstanding is exch:
                self.owner.gave_up(t, sa, exch)

        self.ctx.transport.arm_retransmit(now, rt, resend, give_up, timers)

    def forget(self, sa: Ikev2Sa) -> None:
        """``sa`` out of the table, its request in flight and queue dropped."""
        if sa.outstanding is not None:
            self.ctx.transport.cancel_retransmit(sa.outstanding.retransmit)
            sa.outstanding = None
        sa.queue.clear()
        if sa in self.ctx.sas:
            self.ctx.sas.remove(sa)

    def negotiating(self, flow: Flow) -> bool:
        """A negotiation for ``flow`` waits for IKE_AUTH, is queued or in flight."""
        for sa in self.ctx.sas:
            if sa.peer != flow[0]:
                continue
            if any((r.peer, r.selector) == flow for r in sa.pending):
                return True
            for exch in ([sa.outstanding] if sa.outstanding else []) + sa.queue:
                r = exch.request
                if r is not None and (r.peer, r.selector) == flow:
                    return True
        return False
