"""Main Mode with pre-shared keys (RFC 2409 section 5, identity protection):

    I -> R  HDR, SA, VID...                 (MM1)
    R -> I  HDR, SA, VID...                 (MM2)
    I -> R  HDR, KE, Ni [, NAT-D, NAT-D]    (MM3)
    R -> I  HDR, KE, Nr [, NAT-D, NAT-D]    (MM4)
    I -> R  HDR*, IDii, HASH_I [, N(INITIAL-CONTACT)]   (MM5)
    R -> I  HDR*, IDir, HASH_R              (MM6)

Each step is a build or process method of :class:`MainMode`, a task of the
engine (strongSwan's task shape: the engine owns the ISAKMP SA, the steps
act on it; what the task needs of the engine is :class:`Phase1Owner`).
Vendor IDs: DPD (RFC 3706) and RFC 3947 NAT-T; NAT-D payloads
(RFC 3947 section 3.2) are exchanged when both sides sent the NAT-T VID.
"""

from __future__ import annotations

import hmac as _consttime
from ipaddress import IPv4Address
from typing import Protocol

from dmvpn.crypto.dh_groups import DhKeyPair, InvalidPublicValue
from dmvpn.crypto.ikev1_kdf import derive_keys_psk, hash_i, hash_r, nat_d_hash
from dmvpn.ike.context import Ikev1Context
from dmvpn.ike.isakmp_sa import ChildRequest, IsakmpSa
from dmvpn.ike.proposals import (
    describe_phase1_transform,
    phase1_choice,
    phase1_mismatch,
    phase1_sa_payload,
)
from dmvpn.ike.states import IkeEvent, MessageSource, Phase1State
from dmvpn.ike.transport import Retransmit
from dmvpn.wire.errors import DecodeError
from dmvpn.wire.isakmp import IKE_PORT, NAT_T_PORT, IsakmpMessage, decode_message
from dmvpn.wire.isakmp_payloads import (
    HashPayload,
    IdPayload,
    KePayload,
    NatDPayload,
    NoncePayload,
    NotifyPayload,
    Payload,
    Proposal,
    SaPayload,
    VendorIdPayload,
)
from dmvpn.wire.isakmp_registry import ExchangeType, NotifyType, ProtocolId

VID_DPD = bytes.fromhex("afcad71368a1f1c96b8696fc77570100")
VID_RFC3947 = bytes.fromhex("4a131c81070358455c5728f20e95452f")
NONCE_BYTES = 20
PHASE1_ID_PROTOCOL = 17  # IOS sends its address ID with UDP/500
PHASE1_ID_PORT = IKE_PORT


class Phase1Owner(Protocol):
    """What Main Mode asks of the engine: the ISAKMP SAs' lifecycle."""

    def new_isakmp_sa(self, now: float, *, initiator: bool, local: str, peer: str,
                      cky_i: bytes | None = None) -> IsakmpSa: ...
    def p1_failed(self, now: float, sa: IsakmpSa, why: str) -> None: ...
    def p1_complete(self, now: float, sa: IsakmpSa) -> None: ...
    def initial_contact(self, now: float, sa: IsakmpSa) -> None: ...


class MainMode:
    """Main Mode exchanges of one engine: build/process steps per message."""

    def __init__(self, ctx: Ikev1Context, owner: Phase1Owner) -> None:
        self.ctx = ctx
        self.owner = owner

    def receive(self, now: float, sa: IsakmpSa | None, src: str, sport: int, dst: str, dport: int,
                responder_cookie: bytes, data: bytes) -> None:
        """A Main Mode message: a new responder SA, a duplicate, or the next step of ``sa``."""
        if sa is None:
            if responder_cookie == bytes(8):
                self.process_r1(now, src, sport, dst, dport, data)
            else:
                self.ctx.log(now, 0, f"Main Mode message from {src} for an unknown ISAKMP SA, dropped")
            return
        if data == sa.last_rx and sa.last_tx:
            self._duplicate(now, sa)
            return
        if sa.initiator:
            self.process_i(now, sa, data)
        else:
            self.process_r(now, sa, data)

    # ------------------------------------------------------------------ initiator
    def build_i(self, now: float, local: str, peer: str, request: ChildRequest | None = None) -> IsakmpSa | None:
        """Begin Main Mode toward ``peer`` (IOS: IKE_SA_REQ_MM); ``request``
        is the Quick Mode to run once phase 1 is up (None for a phase-1 rekey)."""
        psk = self.ctx.config.psk_for(peer)
        if psk is None:
            self.ctx.log(now, 0, f"No pre-shared key with {peer}!")
            self.ctx.syslog(now, "%CRYPTO-4-IKMP_NO_PRESHARED_KEY",
                        f"no pre-shared key configured for peer {peer}", peer=peer)
            return None
        sa = self.owner.new_isakmp_sa(now, initiator=True, local=local, peer=peer)
        sa.psk = psk.encode()
        if request is not None:
            sa.pending.append(request)
        self.ctx.log(now, 0, f"found peer pre-shared key matching {peer}")
        sa_payload = phase1_sa_payload(self.ctx.config.isakmp_policies)
        sa.sai_b = sa_payload.encode_body()
        msg = IsakmpMessage(sa.cky_i, bytes(8), ExchangeType.IDENTITY_PROTECTION,
                            payloads=[sa_payload, VendorIdPayload(VID_RFC3947), VendorIdPayload(VID_DPD)])
        self.ctx.log(now, 0, "constructed NAT-T vendor-rfc3947 ID")
        self._transition(now, sa, MessageSource.IKE_MESG_FROM_IPSEC, IkeEvent.IKE_SA_REQ_MM)
        self.ctx.log(now, 0, "beginning Main Mode exchange")
        self._send(now, sa, msg.encode(), retransmit=True)
        return sa

    def process_i(self, now: float, sa: IsakmpSa, data: bytes) -> None:
        if sa.state is Phase1State.IKE_I_MM1:
            msg = self._decode_clear(now, sa, data)
            if msg is None:
                return
            self._transition(now, sa, MessageSource.IKE_MESG_FROM_PEER, IkeEvent.IKE_MM_EXCH)
            if not self._mm_process_mm2(now, sa, msg):
                return
            self._transition(now, sa, MessageSource.IKE_MESG_INTERNAL, IkeEvent.IKE_PROCESS_MAIN_MODE)
            self._mm_send_ke(now, sa)
        elif sa.state is Phase1State.IKE_I_MM3:
            msg = self._decode_clear(now, sa, data)
            if msg is None or not self._mm_process_ke(now, sa, msg):
                return
            self._transition(now, sa, MessageSource.IKE_MESG_FROM_PEER, IkeEvent.IKE_MM_EXCH)
            self._transition(now, sa, MessageSource.IKE_MESG_INTERNAL, IkeEvent.IKE_PROCESS_MAIN_MODE)
            self._mm_send_id(now, sa)
        elif sa.state is Phase1State.IKE_I_MM5:
            saved_iv = sa.iv
            try:
                msg = sa.decrypt_phase1(data)
            except DecodeError as err:
                self._auth_failed(now, sa, f"MM6 did not decrypt ({err})")
                return
            idp = next(iter(msg.find(IdPayload)), None)
            hp = next(iter(msg.find(HashPayload)), None)
            if idp is None or hp is None:
                self._auth_failed(now, sa, "MM6 lacks ID or HASH payload")
                return
            self.ctx.log(now, 0, "processing ID payload. message ID = 0")
            self.ctx.log(now, 0, "processing HASH payload. message ID = 0")
            assert sa.keys is not None and sa.choice is not None
            expected = hash_r(sa.choice.hash, sa.keys.skeyid, sa.g_xi, sa.g_xr, sa.cky_i, sa.cky_r,
                              sa.sai_b, idp.encode_body())
            if not _consttime.compare_digest(expected, hp.data):
                sa.iv = saved_iv
                self._auth_failed(now, sa, "hash HASH_R did not verify")
                return
            self.ctx.log(now, 0, "SA authentication status:\n\tauthenticated")
            self._transition(now, sa, MessageSource.IKE_MESG_FROM_PEER, IkeEvent.IKE_MM_EXCH)
            self._established(now, sa)
            self._transition(now, sa, MessageSource.IKE_MESG_INTERNAL, IkeEvent.IKE_PROCESS_COMPLETE)
            self.owner.p1_complete(now, sa)

    def _mm_process_mm2(self, now: float, sa: IsakmpSa, msg: IsakmpMessage) -> bool:
        sa_payloads = msg.find(SaPayload)
        self.ctx.log(now, 0, "processing SA payload. message ID = 0")
        self._mm_vendor_ids(now, sa, msg)
        if not sa_payloads or not sa_payloads[0].proposals or len(sa_payloads[0].proposals[0].transforms) != 1:
            self.owner.p1_failed(now, sa, "responder's SA payload does not hold exactly one transform")
            return False
        t = sa_payloads[0].proposals[0].transforms[0]
        for policy in self.ctx.config.isakmp_policies:
            if policy.usable and phase1_mismatch(t, policy) is None:
                sa.choice = phase1_choice(t, policy)
                self.ctx.log(now, 0, f"Checking ISAKMP transform {t.number} against priority {policy.priority} policy")
                for line in describe_phase1_transform(t):
                    self.ctx.log(now, 0, "  " + line.strip())
                self.ctx.log(now, 0, "atts are acceptable. Next payload is 0")
                return True
        self.owner.p1_failed(now, sa, "responder chose a transform that was not offered")
        return False

    def _mm_send_ke(self, now: float, sa: IsakmpSa) -> None:
        assert sa.choice is not None
        sa.dh = DhKeyPair.generate(sa.choice.group, self.ctx.random)
        sa.ni = self.ctx.random.token_bytes(NONCE_BYTES)
        sa.g_xi = sa.dh.public_value
        payloads: list[Payload] = [KePayload(sa.g_xi), NoncePayload(sa.ni), *self._nat_d(sa)]
        msg = IsakmpMessage(sa.cky_i, sa.cky_r, ExchangeType.IDENTITY_PROTECTION, payloads=payloads)
        self._send(now, sa, msg.encode(), retransmit=True)

    def _mm_send_id(self, now: float, sa: IsakmpSa) -> None:
        assert sa.keys is not None and sa.choice is not None
        idp = IdPayload.ipv4(sa.local, PHASE1_ID_PROTOCOL, PHASE1_ID_PORT)
        h = hash_i(sa.choice.hash, sa.keys.skeyid, sa.g_xi, sa.g_xr, sa.cky_i, sa.cky_r, sa.sai_b, idp.encode_body())
        payloads: list[Payload] = [idp, HashPayload(h)]
        if not any(o is not sa and o.peer == sa.peer and o.established for o in self.ctx.sas):
            payloads.append(NotifyPayload(NotifyType.INITIAL_CONTACT, ProtocolId.ISAKMP, sa.spi))
            self.ctx.log(now, 0, "sending INITIAL_CONTACT notify")
        self.ctx.log(now, 0, "SA is doing pre-shared key authentication using id type ID_IPV4_ADDR")
        msg = IsakmpMessage(sa.cky_i, sa.cky_r, ExchangeType.IDENTITY_PROTECTION, payloads=payloads)
        self._send(now, sa, sa.encrypt_phase1(msg), retransmit=True)

    # ------------------------------------------------------------------ responder
    def process_r1(self, now: float, src: str, sport: int, dst: str, dport: int,
                          data: bytes) -> None:
        msg = self._decode_clear(now, None, data)
        if msg is None:
            return
        half_open = sum(1 for s in self.ctx.sas if not s.initiator and not s.established)
        if half_open >= self.ctx.profile.max_half_open:
            self.ctx.syslog(now, "%CRYPTO-4-IKE_HALF_OPEN_LIMIT",
                        f"{half_open} half-open IKE SAs: dropping Main Mode from {src}", peer=src)
            return
        psk = self.ctx.config.psk_for(src)
        sa = self.owner.new_isakmp_sa(now, initiator=False, local=dst, peer=src, cky_i=msg.initiator_cookie)
        sa.local_port, sa.peer_port = dport, sport
        sa.last_rx = data
        self._transition(now, sa, MessageSource.IKE_MESG_FROM_PEER, IkeEvent.IKE_MM_EXCH)
        if psk is None:
            self.ctx.log(now, 0, f"No pre-shared key with {src}!")
            self._p1_reject(now, sa, NotifyType.INVALID_KEY_INFORMATION,
                            f"no pre-shared key configured for peer {src}")
            return
        sa.psk = psk.encode()
        self.ctx.log(now, 0, "processing SA payload. message ID = 0")
        self._mm_vendor_ids(now, sa, msg)
        sa_payloads = msg.find(SaPayload)
        if not sa_payloads or not sa_payloads[0].proposals:
            self._p1_reject(now, sa, NotifyType.PAYLOAD_MALFORMED, "Main Mode message 1 has no SA proposal")
            return
        sa.sai_b = msg.raw_payloads[msg.payloads.index(sa_payloads[0])][4:]
        self.ctx.log(now, 0, f"found peer pre-shared key matching {src}")
        offered = sa_payloads[0].proposals[0].transforms
        for policy in self.ctx.config.isakmp_policies:
            if not policy.usable:
                continue
            for t in offered:
                self.ctx.log(now, 0, f"Checking ISAKMP transform {t.number} against priority {policy.priority} policy")
                for line in describe_phase1_transform(t):
                    self.ctx.log(now, 0, "  " + line.strip())
                why = phase1_mismatch(t, policy)
                if why is None:
                    sa.choice = phase1_choice(t, policy)
                    self.ctx.log(now, 0, "atts are acceptable. Next payload is 0")
                    self._transition(now, sa, MessageSource.IKE_MESG_INTERNAL, IkeEvent.IKE_PROCESS_MAIN_MODE)
                    vids = [VendorIdPayload(VID_RFC3947)] if sa.peer_natt else []
                    chosen = SaPayload([Proposal(1, ProtocolId.ISAKMP, b"", [t])])
                    reply = IsakmpMessage(sa.cky_i, sa.cky_r, ExchangeType.IDENTITY_PROTECTION,
                                          payloads=[chosen, *vids, VendorIdPayload(VID_DPD)])
                    self._send(now, sa, reply.encode(), retransmit=False)
                    return
                self.ctx.log(now, 0, why)
                self.ctx.log(now, 0, f"atts are not acceptable. Next payload is {3 if t is not offered[-1] else 0}")
        self.ctx.log(now, 0, "no offers accepted!")
        self.ctx.log(now, 0, f"phase 1 SA policy not acceptable! (local {dst} remote {src})")
        self._p1_reject(now, sa, NotifyType.NO_PROPOSAL_CHOSEN,
                        "no ISAKMP policy matches the peer's proposal (NO_PROPOSAL_CHOSEN)")

    def process_r(self, now: float, sa: IsakmpSa, data: bytes) -> None:
        if sa.state is Phase1State.IKE_R_MM2:
            msg = self._decode_clear(now, sa, data)
            if msg is None or not self._mm_process_ke(now, sa, msg):
                return
            sa.last_rx = data
            self._transition(now, sa, MessageSource.IKE_MESG_FROM_PEER, IkeEvent.IKE_MM_EXCH)
            self._transition(now, sa, MessageSource.IKE_MESG_INTERNAL, IkeEvent.IKE_PROCESS_MAIN_MODE)
            assert sa.choice is not None and sa.dh is not None
            payloads: list[Payload] = [KePayload(sa.g_xr), NoncePayload(sa.nr), *self._nat_d(sa)]
            msg = IsakmpMessage(sa.cky_i, sa.cky_r, ExchangeType.IDENTITY_PROTECTION, payloads=payloads)
            self._send(now, sa, msg.encode(), retransmit=False)
        elif sa.state is Phase1State.IKE_R_MM4:
            saved_iv = sa.iv
            try:
                msg = sa.decrypt_phase1(data)
            except DecodeError as err:
                self._auth_failed(now, sa, f"MM5 did not decrypt ({err})")
                return
            idp = next(iter(msg.find(IdPayload)), None)
            hp = next(iter(msg.find(HashPayload)), None)
            if idp is None or hp is None:
                sa.iv = saved_iv
                self._auth_failed(now, sa, "MM5 lacks ID or HASH payload")
                return
            self.ctx.log(now, 0, "processing ID payload. message ID = 0")
            self.ctx.log(now, 0, "processing HASH payload. message ID = 0")
            assert sa.keys is not None and sa.choice is not None
            expected = hash_i(sa.choice.hash, sa.keys.skeyid, sa.g_xi, sa.g_xr, sa.cky_i, sa.cky_r,
                              sa.sai_b, idp.encode_body())
            if not _consttime.compare_digest(expected, hp.data):
                sa.iv = saved_iv
                self._auth_failed(now, sa, "hash HASH_I did not verify")
                return
            sa.last_rx = data
            self.ctx.log(now, 0, "SA authentication status:\n\tauthenticated")
            initial_contact = any(isinstance(p, NotifyPayload) and p.notify_type == NotifyType.INITIAL_CONTACT
                                  for p in msg.payloads)
            self._transition(now, sa, MessageSource.IKE_MESG_FROM_PEER, IkeEvent.IKE_MM_EXCH)
            self._established(now, sa)
            self._transition(now, sa, MessageSource.IKE_MESG_INTERNAL, IkeEvent.IKE_PROCESS_COMPLETE)
            own = IdPayload.ipv4(sa.local, PHASE1_ID_PROTOCOL, PHASE1_ID_PORT)
            h = hash_r(sa.choice.hash, sa.keys.skeyid, sa.g_xi, sa.g_xr, sa.cky_i, sa.cky_r, sa.sai_b,
                       own.encode_body())
            reply = IsakmpMessage(sa.cky_i, sa.cky_r, ExchangeType.IDENTITY_PROTECTION,
                                  payloads=[own, HashPayload(h)])
            self._send(now, sa, sa.encrypt_phase1(reply), retransmit=False)
            if initial_contact:
                self.ctx.log(now, sa.conn_id, f"received INITIAL_CONTACT from {sa.peer}: deleting older SAs with it")
                self.owner.initial_contact(now, sa)
            self.owner.p1_complete(now, sa)

    # ------------------------------------------------------------------ shared steps
    def _mm_vendor_ids(self, now: float, sa: IsakmpSa, msg: IsakmpMessage) -> None:
        for vid in msg.find(VendorIdPayload):
            if vid.data == VID_DPD:
                sa.peer_dpd = True
                self.ctx.log(now, 0, "processing vendor id payload")
                self.ctx.log(now, 0, "vendor ID is DPD")
            elif vid.data == VID_RFC3947:
                sa.peer_natt = True
                self.ctx.log(now, 0, "processing vendor id payload")
                self.ctx.log(now, 0, "vendor ID is NAT-T RFC 3947")

    def _mm_process_ke(self, now: float, sa: IsakmpSa, msg: IsakmpMessage) -> bool:
        """Take the peer's KE and nonce, compute g^xy and SKEYID_* (RFC 2409 5, 5.4)."""
        ke = next(iter(msg.find(KePayload)), None)
        nonce = next(iter(msg.find(NoncePayload)), None)
        if ke is None or nonce is None:
            self.ctx.log(now, 0, "KE or NONCE payload missing")
            return False
        assert sa.choice is not None
        self.ctx.log(now, 0, "processing KE payload. message ID = 0")
        self.ctx.log(now, 0, "processing NONCE payload. message ID = 0")
        if sa.initiator:
            sa.g_xr, sa.nr = ke.data, nonce.data
        else:
            sa.dh = DhKeyPair.generate(sa.choice.group, self.ctx.random)
            sa.g_xi, sa.ni = ke.data, nonce.data
            sa.g_xr = sa.dh.public_value
            sa.nr = self.ctx.random.token_bytes(NONCE_BYTES)
        assert sa.dh is not None
        try:
            g_xy = sa.dh.shared_secret(ke.data)
        except InvalidPublicValue as err:
            self.owner.p1_failed(now, sa, f"bad KE payload: {err}")
            return False
        sa.install_keys(derive_keys_psk(sa.choice.hash, sa.psk, sa.ni, sa.nr, g_xy, sa.cky_i, sa.cky_r))
        self._nat_check(now, sa, msg)
        return True

    def _nat_d(self, sa: IsakmpSa) -> list[NatDPayload]:
        """NAT-D payloads: the peer's address/port first, then ours (RFC 3947 3.2)."""
        if not sa.peer_natt or sa.choice is None:
            return []
        remote = nat_d_hash(sa.choice.hash, sa.cky_i, sa.cky_r, IPv4Address(sa.peer).packed, sa.peer_port)
        if self.ctx.force_nat_t:  # a hash of no address of ours: the peer sees us behind a NAT
            local = self.ctx.random.token_bytes(len(remote))
        else:
            local = nat_d_hash(sa.choice.hash, sa.cky_i, sa.cky_r, IPv4Address(sa.local).packed, sa.local_port)
        return [NatDPayload(remote), NatDPayload(local)]

    def _nat_check(self, now: float, sa: IsakmpSa, msg: IsakmpMessage) -> None:
        nat_ds = msg.find(NatDPayload)
        if not nat_ds or sa.choice is None:
            return
        mine = nat_d_hash(sa.choice.hash, sa.cky_i, sa.cky_r, IPv4Address(sa.local).packed, sa.local_port)
        theirs = nat_d_hash(sa.choice.hash, sa.cky_i, sa.cky_r, IPv4Address(sa.peer).packed, sa.peer_port)
        if nat_ds[0].data == mine and any(p.data == theirs for p in nat_ds[1:]) and not self.ctx.force_nat_t:
            self.ctx.log(now, 0, "No NAT Found for self or peer")
            return
        sa.nat_detected = True
        if self.ctx.force_nat_t:
            self.ctx.log(now, 0, "NAT-T forced: UDP encapsulation as if this router were behind a NAT")
        else:
            self.ctx.log(now, 0, "NAT found, the peer or this router is behind a NAT")
        if sa.initiator:  # RFC 3947 section 4: float to 4500 from Main Mode message 5 on
            sa.local_port = sa.peer_port = NAT_T_PORT
            self.ctx.log(now, 0, f"Detected port floating to port = {NAT_T_PORT}")

    def _p1_reject(self, now: float, sa: IsakmpSa, notify: int, why: str) -> None:
        """Refuse Main Mode message 1: unencrypted notify, then drop the SA."""
        info = IsakmpMessage(sa.cky_i, sa.cky_r, ExchangeType.INFORMATIONAL,
                             message_id=int.from_bytes(self.ctx.random.token_bytes(4), "big"),
                             payloads=[NotifyPayload(notify, ProtocolId.ISAKMP, sa.spi)])
        self.ctx.send_raw(now, sa, info.encode())
        self.owner.p1_failed(now, sa, why)

    def _auth_failed(self, now: float, sa: IsakmpSa, detail: str) -> None:
        self.ctx.syslog(now, "%CRYPTO-4-IKMP_BAD_MESSAGE",
                    f"IKE message from {sa.peer} failed its sanity check or is malformed", peer=sa.peer)
        self.ctx.log(now, 0, f"phase 1 authentication with {sa.peer} failed: {detail}; pre-shared key mismatch?")
        if sa.initiator:
            self.owner.p1_failed(now, sa, f"authentication failed ({detail}): check the pre-shared key")
        else:
            self.ctx.syslog(now, "%CRYPTO-6-IKMP_MODE_FAILURE",
                        f"Processing of Main mode failed with peer at {sa.peer}: {detail}; "
                        "pre-shared key mismatch?", peer=sa.peer)

    # ------------------------------------------------------------------ transport and state
    def complete(self, now: float, sa: IsakmpSa) -> None:
        """Phase 1 is up (IOS's IKE_PHASE1_COMPLETE input)."""
        self._transition(now, sa, MessageSource.IKE_MESG_INTERNAL, IkeEvent.IKE_PHASE1_COMPLETE)

    def _send(self, now: float, sa: IsakmpSa, wire: bytes, *, retransmit: bool) -> None:
        """Send a Main Mode message; the initiator retransmits it until answered."""
        ctx = self.ctx
        sa.last_tx = wire
        ctx.send_raw(now, sa, wire)
        if retransmit:
            ctx.transport.cancel_retransmit(sa.retransmit)
            rt = sa.retransmit = Retransmit(wire)

            def resend(t: float, s: IsakmpSa = sa) -> None:
                ctx.log(t, 0, f"retransmitting phase 1 {s.state.display}...")
                ctx.log(t, 0, f"incrementing error counter on sa, attempt {rt.attempts} of "
                              f"{ctx.profile.retransmit_limit}: retransmit phase 1")
                ctx.send_raw(t, s, s.last_tx)

            def give_up(t: float) -> None:
                self.owner.p1_failed(t, sa, f"Death by retransmission P1: no answer from {sa.peer}")

            ctx.transport.arm_retransmit(now, rt, resend, give_up)

    def _duplicate(self, now: float, sa: IsakmpSa) -> None:
        self.ctx.log(now, 0, "phase 1 packet is a duplicate of a previous packet.")
        if not sa.initiator or sa.established:
            self.ctx.log(now, 0, "retransmitting due to retransmit phase 1")
            self.ctx.send_raw(now, sa, sa.last_tx)

    def _decode_clear(self, now: float, sa: IsakmpSa | None, data: bytes) -> IsakmpMessage | None:
        try:
            msg = decode_message(data)
        except DecodeError as err:
            peer = sa.peer if sa else "peer"
            self.ctx.syslog(now, "%CRYPTO-4-IKMP_BAD_MESSAGE",
                            f"IKE message from {peer} failed its sanity check or is malformed ({err})")
            return None
        if msg.encrypted:
            self.ctx.log(now, 0, "unexpected encrypted Main Mode message, dropped")
            return None
        if sa is not None:
            sa.last_rx = data
        return msg

    def _transition(self, now: float, sa: IsakmpSa, source: MessageSource, event: IkeEvent) -> None:
        old, new = sa.transition(source, event)
        cid = sa.conn_id if sa.established else 0
        self.ctx.log(now, cid, f"Input = {source.value}, {event.value}")
        self.ctx.log(now, cid, f"Old State = {old.value}  New State = {new.value}")

    def _established(self, now: float, sa: IsakmpSa) -> None:
        assert sa.choice is not None
        sa.established_at = now
        sa.expires_at = now + sa.choice.lifetime
        self.ctx.transport.cancel_retransmit(sa.retransmit)
        self.ctx.last_heard[sa.peer] = now
