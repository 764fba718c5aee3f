"""Informational exchanges (RFC 2409 section 5.7) and Dead Peer Detection
(RFC 3706).

Protected informationals are ``HDR*, HASH(1), N/D`` with HASH(1) =
prf(SKEYID_a, M-ID | N/D), each a one-message exchange with its own message
ID and IV. They carry DELETE (IPsec SPIs or the ISAKMP cookie pair),
NO-PROPOSAL-CHOSEN, INVALID-SPI (sent only with ``crypto isakmp
invalid-spi-recovery``, off by default as on IOS) and the DPD R-U-THERE /
R-U-THERE-ACK pair whose notification data is a 32-bit sequence number.

DPD as ``crypto isakmp keepalive S R [on-demand|periodic]``: on-demand sends
R-U-THERE only when traffic went to the peer and nothing came back for S
seconds; periodic whenever nothing came back for S seconds. Unanswered, it is
retried every R seconds, ``dpd_retries`` times (IOS: 5), then the peer is
declared dead and every SA with it is removed.
"""

from __future__ import annotations

import hmac as _consttime
from typing import Protocol

from dmvpn.config import KeepaliveMode
from dmvpn.crypto.ikev1_kdf import informational_hash
from dmvpn.ike.context import Ikev1Context
from dmvpn.ike.isakmp_sa import ChildSa, IsakmpSa, QuickModeExchange
from dmvpn.ike.states import IkeEvent, MessageSource, Phase1State, QuickModeState
from dmvpn.wire.errors import DecodeError
from dmvpn.wire.isakmp import (
    IsakmpHeader,
    IsakmpMessage,
    decode_message,
    decrypt_message,
    encode_payloads,
    encrypt_message,
)
from dmvpn.wire.isakmp_payloads import DeletePayload, HashPayload, NotifyPayload, Payload
from dmvpn.wire.isakmp_registry import ExchangeType, NotifyType, ProtocolId, name_of

#: IOS logs an invalid SPI from one peer at most once a minute.
INVALID_SPI_LOG_INTERVAL = 60.0


class InformationalOwner(Protocol):
    """What the informational task asks of the engine (phase-1 and pair lifecycles)."""

    def delete_child(self, now: float, child: ChildSa, *, send: bool, why: str) -> None: ...
    def qm_failed(self, now: float, sa: IsakmpSa, node: QuickModeExchange, why: str) -> None: ...
    def remove_isakmp_sa(self, now: float, sa: IsakmpSa) -> None: ...
    def initial_contact(self, now: float, sa: IsakmpSa) -> None: ...
    def p1_failed(self, now: float, sa: IsakmpSa, why: str) -> None: ...


class Informational:
    """Informational exchanges and DPD for one engine: one-message tasks
    (build: :meth:`send`; process: :meth:`receive`)."""

    def __init__(self, ctx: Ikev1Context, owner: InformationalOwner) -> None:
        self.ctx = ctx
        self.owner = owner
        self._dpd_sent_at: dict[str, float] = {}
        self._inv_spi_quiet_until: dict[str, float] = {}
    def send(self, now: float, sa: IsakmpSa, body: list[Payload]) -> None:
        """One protected informational message on ``sa``."""
        assert sa.keys is not None and sa.choice is not None and sa.cipher is not None
        mid = self.ctx.new_message_id(sa)
        self.ctx.log(now, sa.conn_id, f"set new node {mid} to QM_IDLE")
        h = informational_hash(sa.choice.hash, sa.keys.skeyid_a, mid, encode_payloads(body))
        msg = IsakmpMessage(sa.cky_i, sa.cky_r, ExchangeType.INFORMATIONAL, message_id=mid,
                            payloads=[HashPayload(h), *body])
        wire, _iv = encrypt_message(msg, sa.cipher, sa.enc_key, sa.exchange_iv(mid))
        self.ctx.send_raw(now, sa, wire)
        self.ctx.log(now, sa.conn_id, f'deleting node {mid} error FALSE reason "Informational (out) state 1"')

    def send_delete(self, now: float, sa: IsakmpSa | None, spis: list[int]) -> None:
        """DELETE for our inbound SPIs (RFC 2408 3.15) so the peer drops the pair."""
        if sa is None or not spis:
            return
        for spi in spis:
            self.ctx.log(now, sa.conn_id, f"sending DELETE for IPSEC SA (SPI:0x{spi:X})")
        self.send(now, sa, [DeletePayload(ProtocolId.IPSEC_ESP, [s.to_bytes(4, "big") for s in spis])])

    def receive(self, now: float, sa: IsakmpSa | None, data: bytes, hdr: IsakmpHeader) -> None:
        """An Informational exchange (RFC 2409 section 5.7) on ``sa``."""
        if not hdr.flags & 1:
            self._receive_clear(now, sa, data)
            return
        if sa is None or sa.cipher is None or sa.keys is None or sa.choice is None or not sa.p1_last_block:
            self.ctx.log(now, 0, "encrypted informational for an unknown or incomplete ISAKMP SA, dropped")
            return
        mid = hdr.message_id
        try:
            msg, _iv = decrypt_message(data, sa.cipher, sa.enc_key, sa.exchange_iv(mid))
        except DecodeError as err:
            self.ctx.log(now, sa.conn_id, f"informational from {sa.peer} does not decrypt: {err}")
            return
        if not msg.payloads or not isinstance(msg.payloads[0], HashPayload):
            self.ctx.log(now, sa.conn_id, f"informational without HASH from {sa.peer}, dropped")
            return
        expected = informational_hash(sa.choice.hash, sa.keys.skeyid_a, mid, b"".join(msg.raw_payloads[1:]))
        if not _consttime.compare_digest(expected, msg.payloads[0].data):
            self.ctx.log(now, sa.conn_id, f"hash of informational from {sa.peer} does not verify, dropped")
            return
        if not sa.message_ids.claim(mid):
            self.ctx.log(now, sa.conn_id, f"informational message ID {mid} seen before, dropped")
            return
        self.peer_alive(now, sa)
        cid = sa.conn_id
        self.ctx.log(now, cid, f"set new node {mid} to QM_IDLE")
        self.ctx.log(now, cid, f"processing HASH payload. message ID = {mid}")
        for p in msg.payloads[1:]:
            if isinstance(p, DeletePayload):
                self.ctx.log(now, cid, f"processing DELETE payload. message ID = {mid}")
                self._process_delete(now, sa, p)
            elif isinstance(p, NotifyPayload):
                self._process_notify(now, sa, p, mid)
        self.ctx.log(now, cid, f'deleting node {mid} error FALSE reason "Informational (in) state 1"')

    def _receive_clear(self, now: float, sa: IsakmpSa | None, data: bytes) -> None:
        """An unprotected notify during Main Mode (e.g. NO-PROPOSAL-CHOSEN)."""
        try:
            msg = decode_message(data)
        except DecodeError as err:
            self.ctx.syslog(now, "%CRYPTO-4-IKMP_BAD_MESSAGE", f"unprotected informational is malformed: {err}")
            return
        if sa is None or sa.established:
            self.ctx.log(now, 0, "unprotected informational outside Main Mode, dropped")
            return
        for p in msg.find(NotifyPayload):
            name = name_of(p.notify_type)
            self.ctx.log(now, 0, f"processing NOTIFY {name} protocol {int(p.protocol_id)}")
            if sa.initiator:
                self.owner.p1_failed(now, sa, f"peer {sa.peer} refused Main Mode with {name}")
                return

    def _process_delete(self, now: float, sa: IsakmpSa, p: DeletePayload) -> None:
        if p.protocol_id == ProtocolId.ISAKMP:
            for cookies in p.spis:
                target = next((s for s in self.ctx.sas if s.spi == cookies and s.peer == sa.peer), None)
                if target is not None:
                    self.ctx.log(now, target.conn_id, f'deleting SA reason "Receive delete" state ({target.role}) '
                                                  f'{target.state.display} (peer {target.peer})')
                    self.owner.remove_isakmp_sa(now, target)
            return
        if p.protocol_id != ProtocolId.IPSEC_ESP:
            return
        self.ctx.log(now, sa.conn_id, "peer does not do paranoid keepalives.")
        for raw in p.spis:
            spi = int.from_bytes(raw, "big")
            self.ctx.log(now, sa.conn_id, f"Enqueued KEY_MGR_DELETE_SAS for IPSEC SA (SPI:0x{spi:X})")
            child = self.ctx.children.by_spi_out.get(spi)
            if child is not None and child.peer == sa.peer:
                self.owner.delete_child(now, child, send=False, why="DELETE from peer")

    def _process_notify(self, now: float, sa: IsakmpSa, p: NotifyPayload, mid: int) -> None:
        cid = sa.conn_id
        kind = p.notify_type
        if kind == NotifyType.R_U_THERE:
            seq = int.from_bytes(p.data[:4], "big") if len(p.data) >= 4 else 0
            self.ctx.log(now, cid, f"received DPD_R_U_THERE from peer {sa.peer}, sequence 0x{seq:X}")
            self.send(now, sa, [NotifyPayload(NotifyType.R_U_THERE_ACK, ProtocolId.ISAKMP,
                                                             sa.spi, seq.to_bytes(4, "big"))])
            self.ctx.log(now, cid, f"DPD/R_U_THERE_ACK sent to {sa.peer}, sequence 0x{seq:X}")
        elif kind == NotifyType.R_U_THERE_ACK:
            seq = int.from_bytes(p.data[:4], "big") if len(p.data) >= 4 else -1
            self.ctx.log(now, cid, f"DPD/R_U_THERE_ACK received from peer {sa.peer}, sequence 0x{seq:X}")
            if seq == sa.dpd_outstanding:
                sa.dpd_outstanding = None
                sa.dpd_attempts = 0
        elif kind == NotifyType.NO_PROPOSAL_CHOSEN:
            spi = int.from_bytes(p.spi, "big") if len(p.spi) == 4 else None
            self.ctx.log(now, cid, f"processing NOTIFY NO_PROPOSAL_CHOSEN protocol {int(p.protocol_id)}"
                               f" spi {spi}, message ID = {mid}")
            for node in list(sa.nodes.values()):
                if node.initiator and node.state is QuickModeState.IKE_QM_I_QM1 and (spi is None or node.spi_in == spi):
                    self.owner.qm_failed(now, sa, node, f"peer {sa.peer} answered NO_PROPOSAL_CHOSEN: "
                                                   "no matching transform set, PFS group or proxy identities")
        elif kind == NotifyType.INVALID_SPI:
            spi = int.from_bytes(p.spi, "big") if len(p.spi) == 4 else None
            self.ctx.log(now, cid, f"processing NOTIFY INVALID_SPI protocol {int(p.protocol_id)} spi {spi}")
            child = self.ctx.children.by_spi_out.get(spi) if spi is not None else None
            if child is not None and child.peer == sa.peer:
                self.owner.delete_child(now, child, send=False, why="INVALID_SPI from peer")
        elif kind == NotifyType.INITIAL_CONTACT:
            self.owner.initial_contact(now, sa)
        else:
            self.ctx.log(now, cid, f"processing NOTIFY {name_of(kind)} protocol {int(p.protocol_id)}, ignored")

    def invalid_spi(self, now: float, src: str, dst: str, spi: int, iface: str) -> None:
        """An ESP packet for an SPI we do not have (IOS %CRYPTO-4-RECVD_PKT_INV_SPI,
        rate-limited); with invalid-spi-recovery, tell the peer over an ISAKMP SA."""
        if now >= self._inv_spi_quiet_until.get(src, -1.0):
            self._inv_spi_quiet_until[src] = now + INVALID_SPI_LOG_INTERVAL
            self.ctx.syslog(now, "%CRYPTO-4-RECVD_PKT_INV_SPI",
                        f"decaps: rec'd IPSEC packet has invalid spi for destaddr={dst}, prot=50, "
                        f"spi=0x{spi:X}({spi}), srcaddr={src}, input interface={iface}", peer=src, spi=spi)
        if self.ctx.config.invalid_spi_recovery:
            sa = self.ctx.isakmp_for(src)
            if sa is not None:
                self.send(now, sa, [NotifyPayload(NotifyType.INVALID_SPI, ProtocolId.IPSEC_ESP,
                                                                 spi.to_bytes(4, "big"))])

    # ------------------------------------------------------------------ DPD (RFC 3706)
    def dpd_arm(self, now: float, sa: IsakmpSa) -> None:
        ka = self.ctx.config.isakmp_keepalive
        if ka is None or not sa.peer_dpd:
            return
        self.ctx.call_at(now + ka.seconds, self._dpd_tick, sa)

    def peer_alive(self, now: float, sa: IsakmpSa) -> None:
        self.ctx.last_heard[sa.peer] = now

    def _dpd_tick(self, now: float, sa: IsakmpSa) -> None:
        ka = self.ctx.config.isakmp_keepalive
        if ka is None or sa not in self.ctx.sas or not sa.established or sa.replaced:
            return
        last_in, last_out = self.ctx.traffic(sa.peer)
        heard = max(last_in if last_in is not None else -1.0, self.ctx.last_heard.get(sa.peer, -1.0),
                    sa.established_at or 0.0)
        if sa.dpd_outstanding is not None:
            if heard > self._dpd_sent_at.get(sa.peer, now):
                sa.dpd_outstanding, sa.dpd_attempts = None, 0
            elif sa.dpd_attempts >= self.ctx.profile.dpd_retries:
                self._peer_dead(now, sa)
                return
            else:
                sa.dpd_attempts += 1
                self.ctx.log(now, sa.conn_id, f"DPD: retransmitting R_U_THERE to {sa.peer}, "
                                          f"attempt {sa.dpd_attempts} of {self.ctx.profile.dpd_retries}")
                self._send_r_u_there(now, sa)
                self.ctx.call_at(now + ka.retry, self._dpd_tick, sa)
                return
        quiet = now - heard
        wanted = quiet >= ka.seconds and (
            ka.mode is KeepaliveMode.PERIODIC or (last_out is not None and last_out > heard))
        if wanted:
            self._send_r_u_there(now, sa)
            self.ctx.call_at(now + ka.retry, self._dpd_tick, sa)
            return
        nxt = heard + ka.seconds if quiet < ka.seconds else now + ka.seconds
        if ka.mode is KeepaliveMode.ON_DEMAND and last_out is not None and last_out <= heard:
            nxt = max(nxt, now + min(ka.retry, ka.seconds))
        self.ctx.call_at(max(nxt, now + 0.001), self._dpd_tick, sa)

    def _send_r_u_there(self, now: float, sa: IsakmpSa) -> None:
        sa.dpd_seq = (sa.dpd_seq + 1) & 0xFFFFFFFF
        sa.dpd_outstanding = sa.dpd_seq
        self._dpd_sent_at[sa.peer] = now
        self.ctx.log(now, sa.conn_id, f"DPD/R_U_THERE sent to {sa.peer}, sequence 0x{sa.dpd_seq:X}")
        self.send(now, sa, [NotifyPayload(NotifyType.R_U_THERE, ProtocolId.ISAKMP, sa.spi,
                                                         sa.dpd_seq.to_bytes(4, "big"))])

    def _peer_dead(self, now: float, sa: IsakmpSa) -> None:
        """No R-U-THERE-ACK after every retry: remove all SAs with the peer."""
        peer = sa.peer
        self.ctx.syslog(now, "%CRYPTO-5-IKE_DPD_PEER_DEAD",
                    f"peer {peer} did not answer {self.ctx.profile.dpd_retries + 1} DPD R_U_THERE messages: "
                    "declared dead, its IKE and IPsec SAs are removed", peer=peer)
        for child in [c for c in self.ctx.children.pairs if c.peer == peer]:
            self.owner.delete_child(now, child, send=False, why="DPD: peer dead")
        for other in [s for s in self.ctx.sas if s.peer == peer]:
            if other.state is not Phase1State.IKE_DEST_SA:
                other.transition(MessageSource.IKE_MESG_INTERNAL, IkeEvent.IKE_PHASE1_DEL)
            self.owner.remove_isakmp_sa(now, other)
