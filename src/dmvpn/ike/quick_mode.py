"""Quick Mode (RFC 2409 section 5.5):

    I -> R  HDR*, HASH(1), SA, Ni [, KE] [, IDci, IDcr]
    R -> I  HDR*, HASH(2), SA, Nr [, KE] [, IDci, IDcr] [, N(RESPONDER-LIFETIME)]
    I -> R  HDR*, HASH(3)

As IOS does, the responder installs the inbound SA before it answers (its
outbound half waits for HASH(3) before carrying traffic: the SAD's
INSTALLING state), the initiator installs both halves when message 2 checks
out. IDs: host addresses with protocol 47 for DMVPN's GRE (transport mode),
subnets from a crypto map ACL (tunnel mode). The debug lines and states are
IOS's, in IOS's order (shared/seed/*_debug_crypto_isakmp.txt).
"""

from __future__ import annotations

import hmac as _consttime
from ipaddress import IPv4Address, IPv4Network

from dmvpn.crypto.dh_groups import DhKeyPair, InvalidPublicValue
from dmvpn.crypto.ikev1_kdf import keymat, quick_mode_hash1, quick_mode_hash2, quick_mode_hash3
from dmvpn.ike.isakmp_sa import ChildRequest, ChildSa, ChildState, IsakmpSa, QuickModeExchange
from dmvpn.ike.proposals import (
    ChildPolicy,
    Phase2Choice,
    agreed_lifetimes,
    describe_phase2_transform,
    esp_transform,
    phase2_match,
    phase2_sa_payload,
    read_phase2_transform,
    responder_lifetime_attributes,
)
from dmvpn.ike.states import IkeEvent, MessageSource, QuickModeState
from dmvpn.ipsec.sa import (
    KILOBYTE,
    EspMode,
    SaDirection,
    SaLifetime,
    SaOrigin,
    SaOriginReason,
    SecurityAssociation,
    Selector,
)
from dmvpn.wire.errors import DecodeError
from dmvpn.wire.isakmp import IsakmpMessage, decrypt_message, encode_payloads, encrypt_message
from dmvpn.wire.isakmp_payloads import (
    HashPayload,
    IdPayload,
    KePayload,
    NoncePayload,
    NotifyPayload,
    Proposal,
    SaPayload,
    decode_attributes,
)
from dmvpn.wire.isakmp_registry import ExchangeType, IdType, NotifyType, ProtocolId

NONCE_BYTES = 20
MIN_SPI = 256


def id_payload(net: IPv4Network, protocol: int) -> IdPayload:
    """ID_IPV4_ADDR for a host, ID_IPV4_ADDR_SUBNET otherwise (RFC 2407 4.6.2)."""
    if net.prefixlen == 32:
        return IdPayload.ipv4(str(net.network_address), protocol, 0)
    return IdPayload.ipv4_subnet(str(net), protocol, 0)


def id_network(idp: IdPayload) -> IPv4Network | None:
    """The network an ID payload names, or None for types we do not use."""
    d = idp.data
    if idp.id_type == IdType.IPV4_ADDR and len(d) == 4:
        return IPv4Network(f"{IPv4Address(d)}/32")
    if idp.id_type == IdType.IPV4_ADDR_SUBNET and len(d) == 8:
        try:
            return IPv4Network(f"{IPv4Address(d[:4])}/{IPv4Address(d[4:])}")
        except ValueError:
            return None
    return None


class QuickMode:
    """Quick Mode build/process steps (mixed into :class:`Ikev1Engine`)."""

    # ------------------------------------------------------------------ initiator
    def _qm_start(self, now: float, sa: IsakmpSa, request: ChildRequest) -> None:
        cid = sa.conn_id
        self.log(now, cid, "set new node 0 to QM_IDLE")
        self.log(now, cid, f"SA has outstanding requests  (local {sa.local} port {sa.local_port}, "
                           f"remote {sa.peer} port {sa.peer_port})")
        self.log(now, cid, "sitting IDLE. Starting QM immediately (QM_IDLE      )")
        node = QuickModeExchange(self._new_message_id(sa), initiator=True, request=request, started=now)
        sa.nodes[node.message_id] = node
        self.log(now, cid, f"beginning Quick Mode exchange, M-ID of {node.message_id}")
        node.spi_in = self._allocate_spi()
        self.log(now, cid, "QM Initiator gets spi")
        node.ni = self.random.token_bytes(NONCE_BYTES)
        policy = request.policy
        payloads: list = [HashPayload(bytes(self._prf_size(sa))),
                          phase2_sa_payload(policy, node.spi_in, udp=sa.nat_detected), NoncePayload(node.ni)]
        if policy.pfs_group is not None:
            node.dh = DhKeyPair.generate(policy.pfs_group, self.random)
            payloads.append(KePayload(node.dh.public_value))
        payloads += [id_payload(request.selector.local, request.selector.protocol),
                     id_payload(request.selector.remote, request.selector.protocol)]
        assert sa.keys is not None and sa.choice is not None
        payloads[0] = HashPayload(quick_mode_hash1(sa.choice.hash, sa.keys.skeyid_a, node.message_id,
                                                   encode_payloads(payloads[1:])))
        wire = self._qm_encrypt(sa, node, payloads, sa.exchange_iv(node.message_id))
        self._send_node(now, sa, node, wire, retransmit=True)
        self._qm_transition(now, sa, node, MessageSource.IKE_MESG_INTERNAL, IkeEvent.IKE_INIT_QM)
        self._on_qm_started(now, sa, node)

    def _qm_initiator_reply(self, now: float, sa: IsakmpSa, node: QuickModeExchange, msg: IsakmpMessage) -> None:
        """Quick Mode message 2: check HASH(2), the choice and IDs; install; send HASH(3)."""
        cid, mid = sa.conn_id, node.message_id
        assert sa.keys is not None and sa.choice is not None and node.request is not None
        if not msg.payloads or not isinstance(msg.payloads[0], HashPayload):
            self.log(now, cid, f"Quick Mode message 2 without HASH, message ID = {mid}")
            return
        self.log(now, cid, f"processing HASH payload. message ID = {mid}")
        nonce = next(iter(msg.find(NoncePayload)), None)
        if nonce is None:
            self.log(now, cid, f"Quick Mode message 2 without NONCE, message ID = {mid}")
            return
        expected = quick_mode_hash2(sa.choice.hash, sa.keys.skeyid_a, mid, node.ni, b"".join(msg.raw_payloads[1:]))
        if not _consttime.compare_digest(expected, msg.payloads[0].data):
            self.log(now, cid, f"hash from {sa.peer} does not verify, message ID = {mid}")
            return
        sa_payload = next(iter(msg.find(SaPayload)), None)
        self.log(now, cid, f"processing SA payload. message ID = {mid}")
        if sa_payload is None or len(sa_payload.proposals) != 1 or len(sa_payload.proposals[0].transforms) != 1:
            self._qm_failed(now, sa, node, "responder's SA payload does not hold exactly one transform")
            return
        proposal = sa_payload.proposals[0]
        t = proposal.transforms[0]
        self.log(now, cid, f"Checking IPSec proposal {proposal.number}")
        for line in describe_phase2_transform(t):
            self.log(now, cid, line)
        offer = read_phase2_transform(t)
        ts = phase2_match(offer, node.request.policy)
        if ts is None or len(proposal.spi) != 4 or int.from_bytes(proposal.spi, "big") < MIN_SPI:
            self._qm_failed(now, sa, node, "responder chose a transform that was not offered")
            return
        self.log(now, cid, "atts are acceptable.")
        self.log(now, cid, f"processing NONCE payload. message ID = {mid}")
        node.nr = nonce.data
        node.spi_out = int.from_bytes(proposal.spi, "big")
        policy = node.request.policy
        seconds, kb = policy.lifetime_seconds, policy.lifetime_kilobytes
        for n in msg.find(NotifyPayload):
            if n.notify_type == NotifyType.RESPONDER_LIFETIME:
                self.log(now, cid, f"processing NOTIFY RESPONDER_LIFETIME protocol {int(n.protocol_id)}")
                seconds, kb = _responder_lifetime(n.data, seconds, kb)
                self.log(now, cid, f"Responder lifetime: {seconds} seconds, {kb} kilobytes")
        node.choice = Phase2Choice(ts, esp_transform(ts), int(ts.mode), seconds, kb, policy.pfs_group)
        if not self._qm_pfs(now, sa, node, msg):
            return
        for _ in msg.find(IdPayload):
            self.log(now, cid, f"processing ID payload. message ID = {mid}")
        self._qm_transition(now, sa, node, MessageSource.IKE_MESG_FROM_PEER, IkeEvent.IKE_QM_EXCH)
        self.log(now, cid, "Received IPSec Install callback... proceeding with the negotiation")
        self._install_child(now, sa, node)
        h3 = quick_mode_hash3(sa.choice.hash, sa.keys.skeyid_a, mid, node.ni, node.nr)
        wire = self._qm_encrypt(sa, node, [HashPayload(h3)], node.iv)
        self._send_node(now, sa, node, wire, retransmit=False)
        self.log(now, cid, f'deleting node {mid} error FALSE reason "No Error"')
        self._qm_transition(now, sa, node, MessageSource.IKE_MESG_FROM_IPSEC, IkeEvent.IPSEC_INSTALL_DONE)
        self._node_done(now, sa, node)

    # ------------------------------------------------------------------ responder
    def _qm_responder_new(self, now: float, sa: IsakmpSa, mid: int, data: bytes) -> None:
        cid = sa.conn_id
        assert sa.keys is not None and sa.choice is not None and sa.cipher is not None
        try:
            msg, iv = decrypt_message(data, sa.cipher, sa.enc_key, sa.exchange_iv(mid))
        except DecodeError as err:
            self.log(now, cid, f"Quick Mode message from {sa.peer} does not decrypt: {err}")
            return
        if not msg.payloads or not isinstance(msg.payloads[0], HashPayload):
            self.log(now, cid, f"Quick Mode message 1 without HASH, message ID = {mid}")
            return
        expected = quick_mode_hash1(sa.choice.hash, sa.keys.skeyid_a, mid, b"".join(msg.raw_payloads[1:]))
        if not _consttime.compare_digest(expected, msg.payloads[0].data):
            self.log(now, cid, f"hash from {sa.peer} does not verify, message ID = {mid}")
            return
        node = QuickModeExchange(mid, initiator=False, iv=iv, started=now)
        node.seen.add(data)
        sa.nodes[mid] = node
        sa.message_ids.claim(mid)
        self.log(now, cid, f"set new node {mid} to QM_IDLE")
        self.log(now, cid, f"processing HASH payload. message ID = {mid}")
        self.log(now, cid, f"processing SA payload. message ID = {mid}")
        sa_payload = next(iter(msg.find(SaPayload)), None)
        nonce = next(iter(msg.find(NoncePayload)), None)
        ids = msg.find(IdPayload)
        if sa_payload is None or nonce is None or len(ids) not in (0, 2):
            self._qm_reject(now, sa, node, None, "Quick Mode message 1 lacks SA or NONCE, or has one ID")
            return
        if ids:
            remote, local = id_network(ids[0]), id_network(ids[1])
            protocol = ids[0].protocol_id
        else:
            remote, local, protocol = IPv4Network(f"{sa.peer}/32"), IPv4Network(f"{sa.local}/32"), 0
        policy = self._find_child_policy(sa, local, remote, protocol)
        if policy is not None and sa.nat_detected:
            local, remote = policy.selector_nets(sa.local, sa.peer) if policy.local is None else (local, remote)
        chosen = None
        first_spi = None
        for proposal in sa_payload.proposals:
            if (proposal.protocol_id != ProtocolId.IPSEC_ESP or len(proposal.spi) != 4 or not proposal.transforms
                    or int.from_bytes(proposal.spi, "big") < MIN_SPI):
                continue
            first_spi = first_spi or proposal.spi
            self.log(now, cid, f"Checking IPSec proposal {proposal.number}")
            for t in proposal.transforms:
                for line in describe_phase2_transform(t):
                    self.log(now, cid, line)
                offer = read_phase2_transform(t)
                ts = phase2_match(offer, policy) if policy is not None else None
                if ts is None:
                    self.log(now, cid, "atts not acceptable.")
                    continue
                self.log(now, cid, "atts are acceptable.")
                seconds, kb, shorter = agreed_lifetimes(offer, policy)
                chosen = (proposal, t, Phase2Choice(ts, esp_transform(ts), int(ts.mode), seconds, kb,
                                                     offer.group, shorter))
                break
            if chosen:
                break
        if chosen is None or policy is None or local is None or remote is None:
            self.log(now, cid, "IPSec policy invalidated proposal with error 256")
            self._qm_reject(now, sa, node, first_spi,
                            f"phase 2 SA policy not acceptable! (local {sa.local} remote {sa.peer})")
            return
        proposal, t, choice = chosen
        self.log(now, cid, f"processing NONCE payload. message ID = {mid}")
        node.ni = nonce.data
        node.choice = choice
        node.spi_out = int.from_bytes(proposal.spi, "big")
        node.request = ChildRequest(policy, sa.peer, sa.local, Selector(local, remote, protocol),
                                    SaOriginReason.PEER_REKEY)
        if not self._qm_pfs(now, sa, node, msg):
            return
        for _ in ids:
            self.log(now, cid, f"processing ID payload. message ID = {mid}")
        self.log(now, cid, "QM Responder gets spi")
        self._qm_transition(now, sa, node, MessageSource.IKE_MESG_FROM_PEER, IkeEvent.IKE_QM_EXCH)
        node.spi_in = self._allocate_spi()
        node.nr = self.random.token_bytes(NONCE_BYTES)
        self._qm_transition(now, sa, node, MessageSource.IKE_MESG_INTERNAL, IkeEvent.IKE_GOT_SPI)
        self.log(now, cid, "Received IPSec Install callback... proceeding with the negotiation")
        self._install_child(now, sa, node)
        reply_sa = SaPayload([Proposal(proposal.number, ProtocolId.IPSEC_ESP, node.spi_in.to_bytes(4, "big"), [t])])
        payloads: list = [HashPayload(bytes(self._prf_size(sa))), reply_sa, NoncePayload(node.nr)]
        if node.dh is not None:
            payloads.append(KePayload(node.dh.public_value))
        payloads += ids
        if choice.responder_lifetime:
            payloads.append(NotifyPayload(NotifyType.RESPONDER_LIFETIME, ProtocolId.IPSEC_ESP,
                                          node.spi_out.to_bytes(4, "big"),
                                          responder_lifetime_attributes(choice.lifetime_seconds,
                                                                        choice.lifetime_kilobytes)))
        payloads[0] = HashPayload(quick_mode_hash2(sa.choice.hash, sa.keys.skeyid_a, mid, node.ni,
                                                   encode_payloads(payloads[1:])))
        wire = self._qm_encrypt(sa, node, payloads, node.iv)
        self._send_node(now, sa, node, wire, retransmit=True)
        self._qm_transition(now, sa, node, MessageSource.IKE_MESG_FROM_IPSEC, IkeEvent.IPSEC_INSTALL_DONE)

    def _qm_responder_final(self, now: float, sa: IsakmpSa, node: QuickModeExchange, msg: IsakmpMessage) -> None:
        """Quick Mode message 3: HASH(3) makes the outbound half usable."""
        assert sa.keys is not None and sa.choice is not None
        cid, mid = sa.conn_id, node.message_id
        expected = quick_mode_hash3(sa.choice.hash, sa.keys.skeyid_a, mid, node.ni, node.nr)
        if not msg.payloads or not isinstance(msg.payloads[0], HashPayload) or not _consttime.compare_digest(
                expected, msg.payloads[0].data):
            self.log(now, cid, f"HASH(3) from {sa.peer} does not verify, message ID = {mid}")
            return
        self.log(now, cid, f'deleting node {mid} error FALSE reason "QM done (await)"')
        self._qm_transition(now, sa, node, MessageSource.IKE_MESG_FROM_PEER, IkeEvent.IKE_QM_EXCH)
        self._cancel_retransmit(node.retransmit)
        node.retransmit = None
        child = node.child
        if child is not None and child.state is not ChildState.DELETED and not child.loser:
            self.sad.activate(child.sa_out)
        self._node_done(now, sa, node)

    # ------------------------------------------------------------------ shared
    def _qm_pfs(self, now: float, sa: IsakmpSa, node: QuickModeExchange, msg: IsakmpMessage) -> bool:
        """PFS: a KE payload for the agreed group gives g(qm)^xy (RFC 2409 5.5)."""
        assert node.choice is not None
        group = node.choice.pfs_group
        ke = next(iter(msg.find(KePayload)), None)
        if group is None:
            return True
        if ke is None:
            self._qm_failed(now, sa, node, f"PFS group {group} agreed but no KE payload")
            return False
        self.log(now, sa.conn_id, f"processing KE payload. message ID = {node.message_id}")
        if node.dh is None:
            node.dh = DhKeyPair.generate(group, self.random)
        try:
            node.g_qm = node.dh.shared_secret(ke.data)
        except InvalidPublicValue as err:
            self._qm_failed(now, sa, node, f"bad PFS KE payload: {err}")
            return False
        return True

    def _qm_encrypt(self, sa: IsakmpSa, node: QuickModeExchange, payloads: list, iv: bytes) -> bytes:
        assert sa.cipher is not None
        msg = IsakmpMessage(sa.cky_i, sa.cky_r, ExchangeType.QUICK_MODE, message_id=node.message_id, payloads=payloads)
        wire, node.iv = encrypt_message(msg, sa.cipher, sa.enc_key, iv)
        return wire

    def _qm_reject(self, now: float, sa: IsakmpSa, node: QuickModeExchange, spi: bytes | None, why: str) -> None:
        """NO-PROPOSAL-CHOSEN back to the initiator (RFC 2408 3.14.1)."""
        self.log(now, sa.conn_id, why)
        self._send_informational(now, sa, [NotifyPayload(NotifyType.NO_PROPOSAL_CHOSEN, ProtocolId.IPSEC_ESP,
                                                         spi or b"")])
        self.syslog(now, "%CRYPTO-6-IKMP_MODE_FAILURE",
                    f"Processing of Quick mode failed with peer at {sa.peer}: {why} "
                    "(NO_PROPOSAL_CHOSEN sent)", peer=sa.peer)
        node.state = QuickModeState.IKE_QM_FAILED
        self._node_done(now, sa, node)

    def _find_child_policy(self, sa: IsakmpSa, local: IPv4Network | None, remote: IPv4Network | None,
                           protocol: int) -> ChildPolicy | None:
        """The local policy whose selectors are the mirror of the initiator's IDs."""
        if local is None or remote is None:
            return None
        host_local, host_remote = local, remote
        if sa.nat_detected:
            # RFC 3947 section 5.2: behind a NAT the peer names its private
            # address; for host-to-host policies (no ACL: DMVPN) host IDs
            # stand for the ISAKMP endpoints. A crypto map's ACL networks
            # are compared as sent.
            if remote.prefixlen == 32:
                host_remote = IPv4Network(f"{sa.peer}/32")
            if local.prefixlen == 32:
                host_local = IPv4Network(f"{sa.local}/32")
        for policy in self.child_policies:
            if not policy.allows_peer(sa.peer) or policy.protocol != protocol:
                continue
            mine_local, mine_remote = policy.selector_nets(sa.local, sa.peer)
            theirs_local, theirs_remote = (host_local, host_remote) if policy.local is None else (local, remote)
            if theirs_local.subnet_of(mine_local) and theirs_remote.subnet_of(mine_remote):
                return policy
        return None

    def _allocate_spi(self) -> int:
        """A random SPI >= 256 not in use inbound (RFC 4303 2.1)."""
        while True:
            spi = int.from_bytes(self.random.token_bytes(4), "big")
            if spi >= MIN_SPI and self.sad.lookup_inbound(spi) is None and spi not in self._spis_reserved:
                self._spis_reserved.add(spi)
                return spi

    def _install_child(self, now: float, sa: IsakmpSa, node: QuickModeExchange) -> ChildSa:
        """Derive KEYMAT and put the pair in the SAD (RFC 2409 5.5)."""
        assert sa.keys is not None and sa.choice is not None and node.choice is not None
        request = node.request
        assert request is not None
        choice = node.choice
        esp = choice.esp
        n = esp.keymat_bytes
        spi_in_b, spi_out_b = node.spi_in.to_bytes(4, "big"), node.spi_out.to_bytes(4, "big")
        ni, nr = (node.ni, node.nr)
        km_in = keymat(sa.choice.hash, sa.keys.skeyid_d, ProtocolId.IPSEC_ESP, spi_in_b, ni, nr, n, node.g_qm)
        km_out = keymat(sa.choice.hash, sa.keys.skeyid_d, ProtocolId.IPSEC_ESP, spi_out_b, ni, nr, n, node.g_qm)
        enc_in, auth_in = esp.split_keymat(km_in)
        enc_out, auth_out = esp.split_keymat(km_out)
        flow = (request.peer, request.selector)
        old = request.rekey_of if node.initiator else self._current_child(flow)
        collided, loser = self._collision(now, sa, node, flow)
        reason = request.reason if node.initiator else (
            SaOriginReason.PEER_REKEY if old is not None else SaOriginReason.INITIAL)
        if collided:
            reason = SaOriginReason.COLLISION
        lifetime = self._sa_lifetime(choice.lifetime_seconds, choice.lifetime_kilobytes, node.initiator)
        mode = EspMode(choice.mode)
        common = dict(peer=request.peer, local=request.local, transform=esp, mode=mode,
                      selector=request.selector, lifetime=lifetime, ike_sa=sa.conn_id,
                      replay_window_size=self.config.replay_window_size or 64,
                      udp_encap=(sa.local_port, sa.peer_port) if sa.nat_detected else None)
        sa_in = SecurityAssociation(spi=node.spi_in, direction=SaDirection.INBOUND, encryption_key=enc_in,
                                    integrity_key=auth_in,
                                    origin=SaOrigin(node.initiator, reason, old.sa_in.spi if old else None),
                                    **common)
        sa_out = SecurityAssociation(spi=node.spi_out, direction=SaDirection.OUTBOUND, encryption_key=enc_out,
                                     integrity_key=auth_out,
                                     origin=SaOrigin(node.initiator, reason, old.sa_out.spi if old else None),
                                     **common)
        self._spis_reserved.discard(node.spi_in)
        self.sad.install_pair(now, sa_in, sa_out,
                              replaces=(old.sa_in, old.sa_out) if old is not None else None,
                              outbound_active=node.initiator and not loser)
        child = ChildSa(request.peer, request.local, request.selector, request.policy, sa_in, sa_out,
                        node.initiator, node.ni, now, reason, replaces=old, loser=loser)
        child.keys = (enc_in, auth_in, enc_out, auth_out)
        node.child = child
        self._add_child(child)
        self.log(now, sa.conn_id, f"Successfully installed IPSEC SA (SPI:0x{node.spi_in:X}) on {request.policy.interface}")
        self.events_sa(now, "installed", child)
        if old is not None and not loser:
            if old.state in (ChildState.ACTIVE, ChildState.REKEYING):
                old.state = ChildState.REPLACED
                old.replaced_by = child
            if node.initiator and old.state is not ChildState.DELETED:
                self._schedule_replaced_delete(now, old)
        if loser and node.initiator:
            self._schedule_loser_delete(now, child)
        return child

    def _sa_lifetime(self, seconds: int, kilobytes: int | None, initiator: bool) -> SaLifetime:
        """Soft and hard limits for a new pair, by the behaviour profile."""
        p = self.profile
        hard_s = float(seconds)
        soft_s = hard_s - p.soft_seconds_before - (self.random.uniform(0, p.soft_jitter_seconds)
                                                   if p.soft_jitter_seconds else 0.0)
        if not initiator:
            soft_s += p.responder_soft_delay_seconds
        soft_s = min(max(soft_s, hard_s * 0.5), hard_s - 1.0)
        if kilobytes is None:
            return SaLifetime(hard_s, soft_s, None, None)
        hard_b = kilobytes * KILOBYTE
        frac = p.soft_volume_fraction - (self.random.uniform(0, p.soft_jitter_fraction)
                                         if p.soft_jitter_fraction else 0.0)
        if not initiator:
            frac += p.responder_soft_extra_fraction
        frac = min(max(frac, 0.5), 0.99)
        return SaLifetime(hard_s, soft_s, hard_b, int(hard_b * frac))


def _responder_lifetime(data: bytes, seconds: int, kb: int | None) -> tuple[int, int | None]:
    """Apply RESPONDER-LIFETIME attributes (RFC 2407 4.6.3.1): the shorter wins."""
    try:
        attrs = decode_attributes(data, 0, len(data), "p2")
    except DecodeError:
        return seconds, kb
    life_type = None
    for a in attrs:
        value = a.value if isinstance(a.value, int) else int.from_bytes(a.value, "big")
        if int(a.type) == 1:
            life_type = value
        elif int(a.type) == 2 and life_type == 1:
            seconds = min(seconds, value)
        elif int(a.type) == 2 and life_type == 2:
            kb = value if kb is None else min(kb, value)
    return seconds, kb
