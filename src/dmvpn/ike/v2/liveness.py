"""Liveness checks (RFC 7296 2.4), IOS-XE's ``dpd INTERVAL RETRY
periodic|on-demand``: an empty INFORMATIONAL request the peer must
answer, retried every RETRY seconds (:data:`~dmvpn.ike.v2.context.DPD_RETRIES`
times) by the message window; a peer that never answers loses the IKE SA
(:meth:`~dmvpn.ike.v2.deletes.Deletes.gave_up`).
"""

from __future__ import annotations

from dmvpn.ike.v2.context import Ikev2Context
from dmvpn.ike.v2.ike_sa import Exchange, ExchangeKind, Ikev2Sa
from dmvpn.ike.v2.informational import Informational
from dmvpn.ike.v2.window import MessageWindow


class Liveness:
    """DPD of one engine's IKE SAs."""

    def __init__(self, ctx: Ikev2Context, window: MessageWindow) -> None:
        self.ctx = ctx
        self.window = window

    def arm(self, now: float, sa: Ikev2Sa) -> None:
        """Start the ``dpd`` timer of a new IKE SA."""
        dpd = sa.profile.dpd if sa.profile is not None else None
        if dpd is not None:
            self.ctx.transport.schedule(now + dpd.interval, lambda t: self._check(t, sa))

    def _check(self, now: float, sa: Ikev2Sa) -> None:
        """``dpd INTERVAL RETRY periodic``: a liveness check after INTERVAL
        without a message from the peer; ``on-demand``: only while we send
        to it and hear nothing back (RFC 7296 2.4)."""
        if sa not in self.ctx.sas or not sa.established or sa.profile is None or sa.profile.dpd is None:
            return
        dpd = sa.profile.dpd
        last_in, last_out = self.ctx.traffic(sa.peer)
        heard = max(sa.last_rx, last_in or 0.0)
        quiet = now - heard >= dpd.interval
        wanted = quiet if dpd.mode.value == "periodic" else quiet and last_out is not None and last_out > heard
        if wanted and sa.outstanding is None and not sa.queue:
            self.window.enqueue(now, sa, Exchange(ExchangeKind.LIVENESS))
        self.ctx.transport.schedule(now + dpd.interval, lambda t: self._check(t, sa))

    def build(self, now: float, sa: Ikev2Sa, exch: Exchange) -> bytes:
        """The liveness check: an INFORMATIONAL request without payloads."""
        exch.task = info = Informational(sa.keys, self.ctx.random, exch.message_id, True)
        self.ctx.log(now, sa, "Sending DPD/liveness query")
        return info.build_i(now)

    def done(self, now: float, sa: Ikev2Sa, exch: Exchange, data: bytes) -> None:
        """The peer answered: it is alive."""
        info: Informational = exch.task
        if info.process_i(data, now):
            self.ctx.log(now, sa, "Received DPD/liveness response")
