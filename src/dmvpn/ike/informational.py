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

from dmvpn.config import KeepaliveMode
from dmvpn.crypto.ikev1_kdf import informational_hash
from dmvpn.ike.isakmp_sa import IsakmpSa
from dmvpn.ike.states import Phase1State
from dmvpn.wire.errors import DecodeError
from dmvpn.wire.isakmp import IsakmpMessage, decode_message, decrypt_message, encode_payloads, encrypt_message
from dmvpn.wire.isakmp_payloads import DeletePayload, HashPayload, NotifyPayload
from dmvpn.wire.isakmp_registry import ExchangeType, NotifyType, ProtocolId, name_of


class Informational:
    """Informational and DPD steps (mixed into :class:`Ikev1Engine`)."""

    def _send_informational(self, now: float, sa: IsakmpSa, body: list) -> None:
        """One protected informational message on ``sa``."""
        assert sa.keys is not None and sa.choice is not None and sa.cipher is not None
        mid = self._new_message_id(sa)
        self.log(now, sa.conn_id, f"set new node {mid} to QM_IDLE")
        h = informational_hash(sa.choice.hash, sa.keys.skeyid_a, mid, encode_payloads(body))
        msg = IsakmpMessage(sa.cky_i, sa.cky_r, ExchangeType.INFORMATIONAL, message_id=mid,
                            payloads=[HashPayload(h), *body])
        wire, _iv = encrypt_message(msg, sa.cipher, sa.enc_key, sa.exchange_iv(mid))
        self._send_raw(now, sa, wire)
        self.log(now, sa.conn_id, f'deleting node {mid} error FALSE reason "Informational (out) state 1"')

    def send_delete(self, now: float, sa: IsakmpSa | None, spis: list[int]) -> None:
        """DELETE for our inbound SPIs (RFC 2408 3.15) so the peer drops the pair."""
        if sa is None or not spis:
            return
        for spi in spis:
            self.log(now, sa.conn_id, f"sending DELETE for IPSEC SA (SPI:0x{spi:X})")
        self._send_informational(now, sa, [DeletePayload(ProtocolId.IPSEC_ESP, [s.to_bytes(4, "big") for s in spis])])

    def _info_receive(self, now: float, sa: IsakmpSa | None, data: bytes, hdr) -> None:
        if not hdr.flags & 1:
            self._info_clear(now, sa, data)
            return
        if sa is None or sa.cipher is None or sa.keys is None or sa.choice is None or not sa.p1_last_block:
            self.log(now, 0, "encrypted informational for an unknown or incomplete ISAKMP SA, dropped")
            return
        mid = hdr.message_id
        try:
            msg, _iv = decrypt_message(data, sa.cipher, sa.enc_key, sa.exchange_iv(mid))
        except DecodeError as err:
            self.log(now, sa.conn_id, f"informational from {sa.peer} does not decrypt: {err}")
            return
        if not msg.payloads or not isinstance(msg.payloads[0], HashPayload):
            self.log(now, sa.conn_id, f"informational without HASH from {sa.peer}, dropped")
            return
        expected = informational_hash(sa.choice.hash, sa.keys.skeyid_a, mid, b"".join(msg.raw_payloads[1:]))
        if not _consttime.compare_digest(expected, msg.payloads[0].data):
            self.log(now, sa.conn_id, f"hash of informational from {sa.peer} does not verify, dropped")
            return
        if not sa.message_ids.claim(mid):
            self.log(now, sa.conn_id, f"informational message ID {mid} seen before, dropped")
            return
        self._peer_alive(now, sa)
        cid = sa.conn_id
        self.log(now, cid, f"set new node {mid} to QM_IDLE")
        self.log(now, cid, f"processing HASH payload. message ID = {mid}")
        for p in msg.payloads[1:]:
            if isinstance(p, DeletePayload):
                self.log(now, cid, f"processing DELETE payload. message ID = {mid}")
                self._process_delete(now, sa, p)
            elif isinstance(p, NotifyPayload):
                self._process_notify(now, sa, p, mid)
        self.log(now, cid, f'deleting node {mid} error FALSE reason "Informational (in) state 1"')

    def _info_clear(self, now: float, sa: IsakmpSa | None, data: bytes) -> None:
        """An unprotected notify during Main Mode (e.g. NO-PROPOSAL-CHOSEN)."""
        try:
            msg = decode_message(data)
        except DecodeError as err:
            self.syslog(now, "%CRYPTO-4-IKMP_BAD_MESSAGE", f"unprotected informational is malformed: {err}")
            return
        if sa is None or sa.established:
            self.log(now, 0, "unprotected informational outside Main Mode, dropped")
            return
        for p in msg.find(NotifyPayload):
            name = name_of(p.notify_type)
            self.log(now, 0, f"processing NOTIFY {name} protocol {int(p.protocol_id)}")
            if sa.initiator:
                self._p1_failed(now, sa, f"peer {sa.peer} refused Main Mode with {name}")
                return

    def _process_delete(self, now: float, sa: IsakmpSa, p: DeletePayload) -> None:
        if p.protocol_id == ProtocolId.ISAKMP:
            for spi in p.spis:
                target = next((s for s in self.sas if s.spi == spi and s.peer == sa.peer), None)
                if target is not None:
                    self.log(now, target.conn_id, f'deleting SA reason "Receive delete" state ({target.role}) '
                                                  f'{target.state.display} (peer {target.peer})')
                    self._remove_isakmp_sa(now, target)
            return
        if p.protocol_id != ProtocolId.IPSEC_ESP:
            return
        self.log(now, sa.conn_id, "peer does not do paranoid keepalives.")
        for raw in p.spis:
            spi = int.from_bytes(raw, "big")
            self.log(now, sa.conn_id, f"Enqueued KEY_MGR_DELETE_SAS for IPSEC SA (SPI:0x{spi:X})")
            child = self._by_spi_out.get(spi)
            if child is not None and child.peer == sa.peer:
                self._delete_child(now, child, send=False, why="DELETE from peer")

    def _process_notify(self, now: float, sa: IsakmpSa, p: NotifyPayload, mid: int) -> None:
        cid = sa.conn_id
        kind = p.notify_type
        if kind == NotifyType.R_U_THERE:
            seq = int.from_bytes(p.data[:4], "big") if len(p.data) >= 4 else 0
            self.log(now, cid, f"received DPD_R_U_THERE from peer {sa.peer}, sequence 0x{seq:X}")
            self._send_informational(now, sa, [NotifyPayload(NotifyType.R_U_THERE_ACK, ProtocolId.ISAKMP,
                                                             sa.spi, seq.to_bytes(4, "big"))])
            self.log(now, cid, f"DPD/R_U_THERE_ACK sent to {sa.peer}, sequence 0x{seq:X}")
        elif kind == NotifyType.R_U_THERE_ACK:
            seq = int.from_bytes(p.data[:4], "big") if len(p.data) >= 4 else -1
            self.log(now, cid, f"DPD/R_U_THERE_ACK received from peer {sa.peer}, sequence 0x{seq:X}")
            if seq == sa.dpd_outstanding:
                sa.dpd_outstanding = None
                sa.dpd_attempts = 0
        elif kind == NotifyType.NO_PROPOSAL_CHOSEN:
            spi = int.from_bytes(p.spi, "big") if len(p.spi) == 4 else None
            self.log(now, cid, f"processing NOTIFY NO_PROPOSAL_CHOSEN protocol {int(p.protocol_id)}"
                               f" spi {spi}, message ID = {mid}")
            for node in list(sa.nodes.values()):
                if node.initiator and node.state.name == "IKE_QM_I_QM1" and (spi is None or node.spi_in == spi):
                    self._qm_failed(now, sa, node, f"peer {sa.peer} answered NO_PROPOSAL_CHOSEN: "
                                                   "no matching transform set, PFS group or proxy identities")
        elif kind == NotifyType.INVALID_SPI:
            spi = int.from_bytes(p.spi, "big") if len(p.spi) == 4 else None
            self.log(now, cid, f"processing NOTIFY INVALID_SPI protocol {int(p.protocol_id)} spi {spi}")
            child = self._by_spi_out.get(spi) if spi is not None else None
            if child is not None and child.peer == sa.peer:
                self._delete_child(now, child, send=False, why="INVALID_SPI from peer")
        elif kind == NotifyType.INITIAL_CONTACT:
            self._initial_contact(now, sa)
        else:
            self.log(now, cid, f"processing NOTIFY {name_of(kind)} protocol {int(p.protocol_id)}, ignored")

    def invalid_spi(self, now: float, src: str, dst: str, spi: int, iface: str) -> None:
        """An ESP packet for an SPI we do not have (IOS %CRYPTO-4-RECVD_PKT_INV_SPI,
        rate-limited); with invalid-spi-recovery, tell the peer over an ISAKMP SA."""
        if now >= self._inv_spi_quiet_until.get(src, -1.0):
            self._inv_spi_quiet_until[src] = now + 60.0
            self.syslog(now, "%CRYPTO-4-RECVD_PKT_INV_SPI",
                        f"decaps: rec'd IPSEC packet has invalid spi for destaddr={dst}, prot=50, "
                        f"spi=0x{spi:X}({spi}), srcaddr={src}, input interface={iface}", peer=src, spi=spi)
        if self.config.invalid_spi_recovery:
            sa = self._isakmp_for(src)
            if sa is not None:
                self._send_informational(now, sa, [NotifyPayload(NotifyType.INVALID_SPI, ProtocolId.IPSEC_ESP,
                                                                 spi.to_bytes(4, "big"))])

    # ------------------------------------------------------------------ DPD (RFC 3706)
    def _dpd_arm(self, now: float, sa: IsakmpSa) -> None:
        ka = self.config.isakmp_keepalive
        if ka is None or not sa.peer_dpd:
            return
        self._schedule(now + ka.seconds, lambda t, s=sa: self._dpd_tick(t, s))

    def _peer_alive(self, now: float, sa: IsakmpSa) -> None:
        self._last_heard[sa.peer] = now

    def _dpd_tick(self, now: float, sa: IsakmpSa) -> None:
        ka = self.config.isakmp_keepalive
        if ka is None or sa not in self.sas or not sa.established or sa.replaced:
            return
        last_in, last_out = self.traffic(sa.peer)
        heard = max(last_in if last_in is not None else -1.0, self._last_heard.get(sa.peer, -1.0),
                    sa.established_at or 0.0)
        if sa.dpd_outstanding is not None:
            if heard > self._dpd_sent_at.get(sa.peer, now):
                sa.dpd_outstanding, sa.dpd_attempts = None, 0
            elif sa.dpd_attempts >= self.profile.dpd_retries:
                self._peer_dead(now, sa)
                return
            else:
                sa.dpd_attempts += 1
                self.log(now, sa.conn_id, f"DPD: retransmitting R_U_THERE to {sa.peer}, "
                                          f"attempt {sa.dpd_attempts} of {self.profile.dpd_retries}")
                self._send_r_u_there(now, sa)
                self._schedule(now + ka.retry, lambda t, s=sa: self._dpd_tick(t, s))
                return
        quiet = now - heard
        wanted = quiet >= ka.seconds and (
            ka.mode is KeepaliveMode.PERIODIC or (last_out is not None and last_out > heard))
        if wanted:
            self._send_r_u_there(now, sa)
            self._schedule(now + ka.retry, lambda t, s=sa: self._dpd_tick(t, s))
            return
        nxt = heard + ka.seconds if quiet < ka.seconds else now + ka.seconds
        if ka.mode is KeepaliveMode.ON_DEMAND and last_out is not None and last_out <= heard:
            nxt = max(nxt, now + min(ka.retry, ka.seconds))
        self._schedule(max(nxt, now + 0.001), lambda t, s=sa: self._dpd_tick(t, s))

    def _send_r_u_there(self, now: float, sa: IsakmpSa) -> None:
        sa.dpd_seq = (sa.dpd_seq + 1) & 0xFFFFFFFF
        sa.dpd_outstanding = sa.dpd_seq
        self._dpd_sent_at[sa.peer] = now
        self.log(now, sa.conn_id, f"DPD/R_U_THERE sent to {sa.peer}, sequence 0x{sa.dpd_seq:X}")
        self._send_informational(now, sa, [NotifyPayload(NotifyType.R_U_THERE, ProtocolId.ISAKMP, sa.spi,
                                                         sa.dpd_seq.to_bytes(4, "big"))])

    def _peer_dead(self, now: float, sa: IsakmpSa) -> None:
        """No R-U-THERE-ACK after every retry: remove all SAs with the peer."""
        peer = sa.peer
        self.syslog(now, "%CRYPTO-5-IKE_DPD_PEER_DEAD",
                    f"peer {peer} did not answer {self.profile.dpd_retries + 1} DPD R_U_THERE messages: "
                    "declared dead, its IKE and IPsec SAs are removed", peer=peer)
        for child in [c for c in self.children if c.peer == peer]:
            self._delete_child(now, child, send=False, why="DPD: peer dead")
        for other in [s for s in self.sas if s.peer == peer]:
            other.state = Phase1State.IKE_DEST_SA
            self._remove_isakmp_sa(now, other)
