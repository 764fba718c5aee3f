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

:class:`QuickMode` is the task, in charon's ``quick_mode.c`` shape: the
initiator's :meth:`~QuickMode.build_i` (message 1), :meth:`~QuickMode.process_i`
and :meth:`~QuickMode.build_i3` (messages 2 and 3); the responder's
:meth:`~QuickMode.process_r` and :meth:`~QuickMode.build_r` (messages 1 and 2)
and :meth:`~QuickMode.process_r3` (message 3). Each exchange's state is its
:class:`~dmvpn.ike.isakmp_sa.QuickModeExchange` ("node").
"""

from __future__ import annotations

import hmac as _consttime
from ipaddress import IPv4Address, IPv4Network
from typing import Protocol

from dmvpn.crypto.dh_groups import DhKeyPair, InvalidPublicValue
from dmvpn.crypto.ikev1_kdf import keymat, quick_mode_hash1, quick_mode_hash2, quick_mode_hash3
from dmvpn.ike.context import ACQUIRE_HOLDOFF, MIN_SPI, Ikev1Context
from dmvpn.ike.informational import Informational
from dmvpn.ike.isakmp_sa import ChildRequest, ChildSa, IsakmpSa, QuickModeExchange
from dmvpn.ike.profiles import BehaviourProfile
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
from dmvpn.ike.rekey import Rekeying
from dmvpn.ike.states import ChildEvent, ChildState, IkeEvent, MessageSource, QuickModeState
from dmvpn.ike.transport import Retransmit
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
from dmvpn.sansio import RandomSource
from dmvpn.wire.errors import DecodeError
from dmvpn.wire.isakmp import IsakmpMessage, decrypt_message, encode_payloads, encrypt_message
from dmvpn.wire.isakmp_payloads import (
    HashPayload,
    IdPayload,
    KePayload,
    NoncePayload,
    NotifyPayload,
    Payload,
    Proposal,
    SaPayload,
    Transform,
    decode_attributes,
)
from dmvpn.wire.isakmp_registry import ExchangeType, IdType, NotifyType, ProtocolId

NONCE_BYTES = 20


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


class QuickModeOwner(Protocol):
    """What a Quick Mode needs of the engine that owns the ISAKMP SAs."""

    def remove_isakmp_sa(self, now: float, sa: IsakmpSa) -> None: ...


class QuickMode:
    """Quick Mode exchanges of one engine, over its ISAKMP SAs."""

    def __init__(self, ctx: Ikev1Context, informational: Informational, rekeying: Rekeying,
                 owner: QuickModeOwner) -> None:
        self.ctx = ctx
        self.informational = informational
        self.rekeying = rekeying
        self.owner = owner

    # ------------------------------------------------------------------ dispatch
    def receive(self, now: float, sa: IsakmpSa, mid: int, data: bytes) -> None:
        """A Quick Mode message on an established ``sa``: a duplicate is
        answered by resending, a new message ID starts a responder exchange,
        a known one continues its exchange."""
        ctx = self.ctx
        node = sa.nodes.get(mid)
        if node is not None and data in node.seen:
            ctx.log(now, sa.conn_id, "phase 2 packet is a duplicate of a previous packet.")
            if node.retransmit is not None and (not node.initiator
                                                or node.state is QuickModeState.IKE_QM_PHASE2_COMPLETE):
                ctx.log(now, sa.conn_id, "retransmitting due to retransmit phase 2")
                ctx.send_raw(now, sa, node.retransmit.packet)
            return
        if node is None:
            if mid in sa.message_ids:
                ctx.log(now, sa.conn_id, f"message ID {mid} already used, dropped")
                return
            self.process_r(now, sa, mid, data)
            return
        assert sa.cipher is not None
        try:
            msg, iv = decrypt_message(data, sa.cipher, sa.enc_key, node.iv)
        except DecodeError as err:
            ctx.log(now, sa.conn_id, f"Quick Mode message from {sa.peer} does not decrypt: {err}")
            return
        if node.initiator and node.state is QuickModeState.IKE_QM_I_QM1:
            node.seen.add(data)
            node.iv = iv
            self.process_i(now, sa, node, msg)
        elif not node.initiator and node.state is QuickModeState.IKE_QM_R_QM2:
            node.seen.add(data)
            node.iv = iv
            self.process_r3(now, sa, node, msg)
        else:
            ctx.log(now, sa.conn_id, f"Quick Mode message for node {mid} in state {node.state.value}, dropped")

    # ------------------------------------------------------------------ initiator
    def build_i(self, now: float, sa: IsakmpSa, request: ChildRequest) -> None:
        """Message 1: HASH(1), SA, Ni [, KE], IDci, IDcr."""
        ctx = self.ctx
        cid = sa.conn_id
        ctx.log(now, cid, "set new node 0 to QM_IDLE")
        ctx.log(now, cid, f"SA has outstanding requests  (local {sa.local} port {sa.local_port}, "
                          f"remote {sa.peer} port {sa.peer_port})")
        ctx.log(now, cid, "sitting IDLE. Starting QM immediately (QM_IDLE      )")
        node = QuickModeExchange(ctx.new_message_id(sa), initiator=True, request=request, started=now)
        sa.nodes[node.message_id] = node
        ctx.log(now, cid, f"beginning Quick Mode exchange, M-ID of {node.message_id}")
        node.spi_in = ctx.allocate_spi()
        ctx.log(now, cid, "QM Initiator gets spi")
        node.ni = ctx.random.token_bytes(NONCE_BYTES)
        policy = request.policy
        payloads: list[Payload] = [HashPayload(bytes(ctx.prf_size(sa))),
                                   phase2_sa_payload(policy, node.spi_in, udp=sa.nat_detected), NoncePayload(node.ni)]
        if policy.pfs_group is not None:
            node.dh = DhKeyPair.generate(policy.pfs_group, ctx.random)
            payloads.append(KePayload(node.dh.public_value))
        payloads += [id_payload(request.selector.local, request.selector.protocol),
                     id_payload(request.selector.remote, request.selector.protocol)]
        assert sa.keys is not None and sa.choice is not None
        payloads[0] = HashPayload(quick_mode_hash1(sa.choice.hash, sa.keys.skeyid_a, node.message_id,
                                                   encode_payloads(payloads[1:])))
        wire = self._encrypt(sa, node, payloads, sa.exchange_iv(node.message_id))
        self._send(now, sa, node, wire, retransmit=True)
        self._transition(now, sa, node, MessageSource.IKE_MESG_INTERNAL, IkeEvent.IKE_INIT_QM)
        if request.rekey_of is not None:
            ctx.stats["rekeys_started"] += 1

    def process_i(self, now: float, sa: IsakmpSa, node: QuickModeExchange, msg: IsakmpMessage) -> None:
        """Message 2: check HASH(2), the choice and IDs; install; answer with :meth:`build_i3`."""
        ctx = self.ctx
        cid, mid = sa.conn_id, node.message_id
        assert sa.keys is not None and sa.choice is not None and node.request is not None
        if not msg.payloads or not isinstance(msg.payloads[0], HashPayload):
            ctx.log(now, cid, f"Quick Mode message 2 without HASH, message ID = {mid}")
            return
        ctx.log(now, cid, f"processing HASH payload. message ID = {mid}")
        nonce = next(iter(msg.find(NoncePayload)), None)
        if nonce is None:
            ctx.log(now, cid, f"Quick Mode message 2 without NONCE, message ID = {mid}")
            return
        expected = quick_mode_hash2(sa.choice.hash, sa.keys.skeyid_a, mid, node.ni, b"".join(msg.raw_payloads[1:]))
        if not _consttime.compare_digest(expected, msg.payloads[0].data):
            ctx.log(now, cid, f"hash from {sa.peer} does not verify, message ID = {mid}")
            return
        sa_payload = next(iter(msg.find(SaPayload)), None)
        ctx.log(now, cid, f"processing SA payload. message ID = {mid}")
        if sa_payload is None or len(sa_payload.proposals) != 1 or len(sa_payload.proposals[0].transforms) != 1:
            self.fail(now, sa, node, "responder's SA payload does not hold exactly one transform")
            return
        proposal = sa_payload.proposals[0]
        t = proposal.transforms[0]
        ctx.log(now, cid, f"Checking IPSec proposal {proposal.number}")
        for line in describe_phase2_transform(t):
            ctx.log(now, cid, line)
        offer = read_phase2_transform(t)
        ts = phase2_match(offer, node.request.policy)
        if ts is None or len(proposal.spi) != 4 or int.from_bytes(proposal.spi, "big") < MIN_SPI:
            self.fail(now, sa, node, "responder chose a transform that was not offered")
            return
        ctx.log(now, cid, "atts are acceptable.")
        ctx.log(now, cid, f"processing NONCE payload. message ID = {mid}")
        node.nr = nonce.data
        node.spi_out = int.from_bytes(proposal.spi, "big")
        policy = node.request.policy
        seconds, kb = policy.lifetime_seconds, policy.lifetime_kilobytes
        for n in msg.find(NotifyPayload):
            if n.notify_type == NotifyType.RESPONDER_LIFETIME:
                ctx.log(now, cid, f"processing NOTIFY RESPONDER_LIFETIME protocol {int(n.protocol_id)}")
                seconds, kb = _responder_lifetime(n.data, seconds, kb)
                ctx.log(now, cid, f"Responder lifetime: {seconds} seconds, {kb} kilobytes")
        node.choice = Phase2Choice(ts, esp_transform(ts), int(ts.mode), seconds, kb, policy.pfs_group)
        if not self._pfs(now, sa, node, msg):
            return
        for _ in msg.find(IdPayload):
            ctx.log(now, cid, f"processing ID payload. message ID = {mid}")
        self._transition(now, sa, node, MessageSource.IKE_MESG_FROM_PEER, IkeEvent.IKE_QM_EXCH)
        ctx.log(now, cid, "Received IPSec Install callback... proceeding with the negotiation")
        self._install_child(now, sa, node)
        self.build_i3(now, sa, node)

    def build_i3(self, now: float, sa: IsakmpSa, node: QuickModeExchange) -> None:
        """Message 3: HASH(3); the exchange is done."""
        assert sa.keys is not None and sa.choice is not None
        mid = node.message_id
        h3 = quick_mode_hash3(sa.choice.hash, sa.keys.skeyid_a, mid, node.ni, node.nr)
        wire = self._encrypt(sa, node, [HashPayload(h3)], node.iv)
        self._send(now, sa, node, wire, retransmit=False)
        self.ctx.log(now, sa.conn_id, f'deleting node {mid} error FALSE reason "No Error"')
        self._transition(now, sa, node, MessageSource.IKE_MESG_FROM_IPSEC, IkeEvent.IPSEC_INSTALL_DONE)
        self.node_done(now, sa, node)

    # ------------------------------------------------------------------ responder
    def process_r(self, now: float, sa: IsakmpSa, mid: int, data: bytes) -> None:
        """Message 1 of a new exchange: authenticate it, read the proposed
        selectors, pick a policy and a transform; answer with :meth:`build_r`."""
        opened = self._open_first(now, sa, mid, data)
        if opened is None or self._over_limit(now, sa, mid):
            return
        msg, iv = opened
        node = self._new_responder_node(now, sa, mid, data, iv)
        sa_payload = next(iter(msg.find(SaPayload)), None)
        nonce = next(iter(msg.find(NoncePayload)), None)
        ids = msg.find(IdPayload)
        if sa_payload is None or nonce is None or len(ids) not in (0, 2):
            self._reject(now, sa, node, None, "Quick Mode message 1 lacks SA or NONCE, or has one ID")
            return
        local, remote, protocol, policy = self._proposed_flow(sa, ids)
        chosen, first_spi = self._choose_proposal(now, sa, policy, sa_payload.proposals)
        if chosen is None or policy is None or local is None or remote is None:
            self.ctx.log(now, sa.conn_id, "IPSec policy invalidated proposal with error 256")
            self._reject(now, sa, node, first_spi,
                         f"phase 2 SA policy not acceptable! (local {sa.local} remote {sa.peer})")
            return
        proposal, t, choice = chosen
        if not self._accept(now, sa, node, msg, nonce.data, proposal, choice,
                            ChildRequest(policy, sa.peer, sa.local, Selector(local, remote, protocol),
                                         SaOriginReason.PEER_REKEY)):
            return
        for _ in ids:
            self.ctx.log(now, sa.conn_id, f"processing ID payload. message ID = {mid}")
        self.build_r(now, sa, node, proposal.number, t, ids)

    def _over_limit(self, now: float, sa: IsakmpSa, mid: int) -> bool:
        """True (and the message dropped) when the peer already has the
        profile's maximum of Quick Modes open with us as responder."""
        done = (QuickModeState.IKE_QM_FAILED, QuickModeState.IKE_QM_PHASE2_COMPLETE)
        open_now = sum(1 for s in self.ctx.sas if s.peer == sa.peer
                       for n in s.nodes.values() if not n.initiator and n.state not in done)
        if open_now < self.ctx.profile.max_quick_modes_in_flight:
            return False
        self.ctx.stats["qm_limit_drops"] += 1
        self.ctx.log(now, sa.conn_id, f"{open_now} Quick Modes already open with {sa.peer}: "
                                      f"message ID = {mid} dropped")
        return True

    def _open_first(self, now: float, sa: IsakmpSa, mid: int, data: bytes) -> tuple[IsakmpMessage, bytes] | None:
        """Decrypt message 1 and check its HASH(1) (RFC 2409 section 5.5)."""
        cid = sa.conn_id
        assert sa.keys is not None and sa.choice is not None and sa.cipher is not None
        try:
            msg, iv = decrypt_message(data, sa.cipher, sa.enc_key, sa.exchange_iv(mid))
        except DecodeError as err:
            self.ctx.log(now, cid, f"Quick Mode message from {sa.peer} does not decrypt: {err}")
            return None
        if not msg.payloads or not isinstance(msg.payloads[0], HashPayload):
            self.ctx.log(now, cid, f"Quick Mode message 1 without HASH, message ID = {mid}")
            return None
        expected = quick_mode_hash1(sa.choice.hash, sa.keys.skeyid_a, mid, b"".join(msg.raw_payloads[1:]))
        if not _consttime.compare_digest(expected, msg.payloads[0].data):
            self.ctx.log(now, cid, f"hash from {sa.peer} does not verify, message ID = {mid}")
            return None
        return msg, iv

    def _new_responder_node(self, now: float, sa: IsakmpSa, mid: int, data: bytes, iv: bytes) -> QuickModeExchange:
        """The responder's node for an authenticated message 1."""
        cid = sa.conn_id
        node = QuickModeExchange(mid, initiator=False, iv=iv, started=now)
        node.seen.add(data)
        sa.nodes[mid] = node
        sa.message_ids.claim(mid)
        self.ctx.log(now, cid, f"set new node {mid} to QM_IDLE")
        self.ctx.log(now, cid, f"processing HASH payload. message ID = {mid}")
        self.ctx.log(now, cid, f"processing SA payload. message ID = {mid}")
        return node

    def _proposed_flow(self, sa: IsakmpSa, ids: list[IdPayload]
                       ) -> tuple[IPv4Network | None, IPv4Network | None, int, ChildPolicy | None]:
        """(local, remote, protocol) the initiator's IDs name (RFC 2409 5.5:
        none means the ISAKMP endpoints), and the policy that mirrors them."""
        if ids:
            remote, local = id_network(ids[0]), id_network(ids[1])
            protocol = ids[0].protocol_id
        else:
            remote, local, protocol = IPv4Network(f"{sa.peer}/32"), IPv4Network(f"{sa.local}/32"), 0
        policy = self._find_child_policy(sa, local, remote, protocol)
        if policy is not None and sa.nat_detected and policy.local is None:
            local, remote = policy.selector_nets(sa.local, sa.peer)
        return local, remote, protocol, policy

    def _choose_proposal(self, now: float, sa: IsakmpSa, policy: ChildPolicy | None, proposals: list[Proposal]
                         ) -> tuple[tuple[Proposal, Transform, Phase2Choice] | None, bytes | None]:
        """The first ESP transform the policy accepts, and the first offered SPI
        (for the NO-PROPOSAL-CHOSEN notify when none is accepted)."""
        cid = sa.conn_id
        first_spi = None
        for proposal in proposals:
            if (proposal.protocol_id != ProtocolId.IPSEC_ESP or len(proposal.spi) != 4 or not proposal.transforms
                    or int.from_bytes(proposal.spi, "big") < MIN_SPI):
                continue
            first_spi = first_spi or proposal.spi
            self.ctx.log(now, cid, f"Checking IPSec proposal {proposal.number}")
            for t in proposal.transforms:
                for line in describe_phase2_transform(t):
                    self.ctx.log(now, cid, line)
                offer = read_phase2_transform(t)
                ts = phase2_match(offer, policy) if policy is not None else None
                if ts is None or policy is None:
                    self.ctx.log(now, cid, "atts not acceptable.")
                    continue
                self.ctx.log(now, cid, "atts are acceptable.")
                seconds, kb, shorter = agreed_lifetimes(offer, policy)
                return (proposal, t, Phase2Choice(ts, esp_transform(ts), int(ts.mode), seconds, kb,
                                                  offer.group, shorter)), first_spi
        return None, first_spi

    def _accept(self, now: float, sa: IsakmpSa, node: QuickModeExchange, msg: IsakmpMessage, ni: bytes,
                proposal: Proposal, choice: Phase2Choice, request: ChildRequest) -> bool:
        """Take the initiator's nonce, SPI and (PFS) KE for the chosen proposal."""
        self.ctx.log(now, sa.conn_id, f"processing NONCE payload. message ID = {node.message_id}")
        node.ni = ni
        node.choice = choice
        node.spi_out = int.from_bytes(proposal.spi, "big")
        node.request = request
        return self._pfs(now, sa, node, msg)

    def build_r(self, now: float, sa: IsakmpSa, node: QuickModeExchange, proposal_number: int, t: Transform,
                ids: list[IdPayload]) -> None:
        """Message 2: get an SPI, install the pair (inbound usable at once) and
        answer HASH(2), SA, Nr [, KE] [, IDci, IDcr] [, RESPONDER-LIFETIME]."""
        ctx = self.ctx
        assert sa.keys is not None and sa.choice is not None and node.choice is not None
        choice = node.choice
        ctx.log(now, sa.conn_id, "QM Responder gets spi")
        self._transition(now, sa, node, MessageSource.IKE_MESG_FROM_PEER, IkeEvent.IKE_QM_EXCH)
        node.spi_in = ctx.allocate_spi()
        node.nr = ctx.random.token_bytes(NONCE_BYTES)
        self._transition(now, sa, node, MessageSource.IKE_MESG_INTERNAL, IkeEvent.IKE_GOT_SPI)
        ctx.log(now, sa.conn_id, "Received IPSec Install callback... proceeding with the negotiation")
        self._install_child(now, sa, node)
        reply_sa = SaPayload([Proposal(proposal_number, ProtocolId.IPSEC_ESP, node.spi_in.to_bytes(4, "big"), [t])])
        payloads: list[Payload] = [HashPayload(bytes(ctx.prf_size(sa))), reply_sa, NoncePayload(node.nr)]
        if node.dh is not None:
            payloads.append(KePayload(node.dh.public_value))
        payloads += ids
        if choice.responder_lifetime:
            payloads.append(NotifyPayload(NotifyType.RESPONDER_LIFETIME, ProtocolId.IPSEC_ESP,
                                          node.spi_out.to_bytes(4, "big"),
                                          responder_lifetime_attributes(choice.lifetime_seconds,
                                                                        choice.lifetime_kilobytes)))
        payloads[0] = HashPayload(quick_mode_hash2(sa.choice.hash, sa.keys.skeyid_a, node.message_id, node.ni,
                                                   encode_payloads(payloads[1:])))
        wire = self._encrypt(sa, node, payloads, node.iv)
        self._send(now, sa, node, wire, retransmit=True)
        self._transition(now, sa, node, MessageSource.IKE_MESG_FROM_IPSEC, IkeEvent.IPSEC_INSTALL_DONE)

    def process_r3(self, now: float, sa: IsakmpSa, node: QuickModeExchange, msg: IsakmpMessage) -> None:
        """Message 3: HASH(3) makes the outbound half usable."""
        assert sa.keys is not None and sa.choice is not None
        cid, mid = sa.conn_id, node.message_id
        expected = quick_mode_hash3(sa.choice.hash, sa.keys.skeyid_a, mid, node.ni, node.nr)
        if not msg.payloads or not isinstance(msg.payloads[0], HashPayload) or not _consttime.compare_digest(
                expected, msg.payloads[0].data):
            self.ctx.log(now, cid, f"HASH(3) from {sa.peer} does not verify, message ID = {mid}")
            return
        self.ctx.log(now, cid, f'deleting node {mid} error FALSE reason "QM done (await)"')
        self._transition(now, sa, node, MessageSource.IKE_MESG_FROM_PEER, IkeEvent.IKE_QM_EXCH)
        self.ctx.transport.cancel_retransmit(node.retransmit)
        node.retransmit = None
        child = node.child
        if child is not None and child.state is not ChildState.DELETED and not child.loser:
            self.ctx.sad.activate(child.sa_out)
        self.node_done(now, sa, node)

    # ------------------------------------------------------------------ ends of an exchange
    def fail(self, now: float, sa: IsakmpSa, node: QuickModeExchange, why: str) -> None:
        """Give the exchange up (retransmissions spent, a bad reply, NO-PROPOSAL-CHOSEN)."""
        ctx = self.ctx
        if node.state in (QuickModeState.IKE_QM_FAILED, QuickModeState.IKE_QM_PHASE2_COMPLETE):
            return
        ctx.stats["qm_failures"] += 1
        ctx.transport.cancel_retransmit(node.retransmit)
        node.give_up()
        ctx.log(now, sa.conn_id, f'deleting node {node.message_id} error TRUE reason "{why}"')
        ctx.syslog(now, "%CRYPTO-6-IKMP_MODE_FAILURE", f"Processing of Quick mode failed with peer at {sa.peer}: {why}",
                   peer=sa.peer, reason=why)
        self.release_request(now, node)
        self.node_done(now, sa, node)

    def abandon(self, now: float, sa: IsakmpSa) -> None:
        """The ISAKMP SA is gone: stop its exchanges' retransmissions, fail the running ones."""
        for node in sa.nodes.values():
            self.ctx.transport.cancel_retransmit(node.retransmit)
            if node.state not in (QuickModeState.IKE_QM_PHASE2_COMPLETE, QuickModeState.IKE_QM_FAILED):
                node.give_up()
                self.release_request(now, node)

    def release_request(self, now: float, node: QuickModeExchange) -> None:
        """A failed initiator's flow waits :data:`ACQUIRE_HOLDOFF`; a failed rekey's pair is live again."""
        request = node.request
        if node.initiator and request is not None:
            self.ctx.holdoff[(request.peer, request.selector)] = now + ACQUIRE_HOLDOFF
            child = request.rekey_of
            if child is not None and child.state is ChildState.REKEYING:
                child.transition(ChildEvent.REKEY_FAILED)
                if self.ctx.profile.lifetime_check_period is None:
                    self.ctx.call_at(now + ACQUIRE_HOLDOFF, self.rekeying.consider_rekey, child)

    def node_done(self, now: float, sa: IsakmpSa, node: QuickModeExchange) -> None:
        """Keep a finished node for duplicates, purge it later (IOS "purging node")."""
        node.deleted_at = now

        def purge(t: float, s: IsakmpSa = sa, n: QuickModeExchange = node) -> None:
            if s.nodes.get(n.message_id) is n:
                del s.nodes[n.message_id]
                self.ctx.transport.cancel_retransmit(n.retransmit)
                self.ctx.log(t, s.conn_id, f"purging node {n.message_id}")

        self.ctx.schedule(now + self.ctx.profile.node_purge_delay, purge)

    # ------------------------------------------------------------------ shared steps
    def _transition(self, now: float, sa: IsakmpSa, node: QuickModeExchange,
                    source: MessageSource, event: IkeEvent) -> None:
        old, new = node.transition(source, event)
        self.ctx.log(now, sa.conn_id, f"Node {node.message_id}, Input = {source.value}, {event.value}")
        self.ctx.log(now, sa.conn_id, f"Old State = {old.value}  New State = {new.value}")

    def _send(self, now: float, sa: IsakmpSa, node: QuickModeExchange, wire: bytes, *, retransmit: bool) -> None:
        """Send ``wire`` for ``node``; keep it to answer duplicates, and
        retransmit it until answered when ``retransmit``."""
        ctx = self.ctx
        ctx.send_raw(now, sa, wire)
        ctx.transport.cancel_retransmit(node.retransmit)
        rt = node.retransmit = Retransmit(wire)
        if retransmit:
            def resend(t: float, s: IsakmpSa = sa, n: QuickModeExchange = node) -> None:
                ctx.log(t, s.conn_id, f"retransmitting phase 2 QM_IDLE       {n.message_id} ...")
                ctx.send_raw(t, s, rt.packet)

            def give_up(t: float) -> None:
                self.fail(t, sa, node, f"Death by retransmission P2: no answer from {sa.peer}")
                if ctx.profile.phase2_timeout_drops_phase1 and sa in ctx.sas:
                    # RFC 7296 2.4's rule, applied to IKEv1: a peer that answers
                    # nothing on the ISAKMP SA may have lost it (a restart): start
                    # afresh with Main Mode instead of retrying on a dead SA.
                    ctx.log(t, sa.conn_id, f"ISAKMP SA with {sa.peer} dropped: its Quick Mode got no answer")
                    self.owner.remove_isakmp_sa(t, sa)

            ctx.transport.arm_retransmit(now, rt, resend, give_up)

    def _pfs(self, now: float, sa: IsakmpSa, node: QuickModeExchange, msg: IsakmpMessage) -> bool:
        """PFS: a KE payload for the agreed group gives g(qm)^xy (RFC 2409 5.5)."""
        assert node.choice is not None
        group = node.choice.pfs_group
        ke = next(iter(msg.find(KePayload)), None)
        if group is None:
            return True
        if ke is None:
            self.fail(now, sa, node, f"PFS group {group} agreed but no KE payload")
            return False
        self.ctx.log(now, sa.conn_id, f"processing KE payload. message ID = {node.message_id}")
        if node.dh is None:
            node.dh = DhKeyPair.generate(group, self.ctx.random)
        try:
            node.g_qm = node.dh.shared_secret(ke.data)
        except InvalidPublicValue as err:
            self.fail(now, sa, node, f"bad PFS KE payload: {err}")
            return False
        return True

    def _encrypt(self, sa: IsakmpSa, node: QuickModeExchange, payloads: list[Payload], iv: bytes) -> bytes:
        assert sa.cipher is not None
        msg = IsakmpMessage(sa.cky_i, sa.cky_r, ExchangeType.QUICK_MODE, message_id=node.message_id, payloads=payloads)
        wire, node.iv = encrypt_message(msg, sa.cipher, sa.enc_key, iv)
        return wire

    def _reject(self, now: float, sa: IsakmpSa, node: QuickModeExchange, spi: bytes | None, why: str) -> None:
        """NO-PROPOSAL-CHOSEN back to the initiator (RFC 2408 3.14.1)."""
        self.ctx.log(now, sa.conn_id, why)
        self.informational.send(now, sa, [NotifyPayload(NotifyType.NO_PROPOSAL_CHOSEN, ProtocolId.IPSEC_ESP,
                                                         spi or b"")])
        self.ctx.syslog(now, "%CRYPTO-6-IKMP_MODE_FAILURE",
                    f"Processing of Quick mode failed with peer at {sa.peer}: {why} "
                    "(NO_PROPOSAL_CHOSEN sent)", peer=sa.peer)
        node.give_up()
        self.node_done(now, sa, node)

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
        for policy in self.ctx.child_policies:
            if not policy.allows_peer(sa.peer) or policy.protocol != protocol:
                continue
            mine_local, mine_remote = policy.selector_nets(sa.local, sa.peer)
            theirs_local, theirs_remote = (host_local, host_remote) if policy.local is None else (local, remote)
            if theirs_local.subnet_of(mine_local) and theirs_remote.subnet_of(mine_remote):
                return policy
        return None

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
        old = request.rekey_of if node.initiator else self.ctx.children.current(flow)
        collided, loser = self.rekeying.collision(now, sa, node, flow)
        reason = request.reason if node.initiator else (
            SaOriginReason.PEER_REKEY if old is not None else SaOriginReason.INITIAL)
        if collided:
            reason = SaOriginReason.COLLISION
        lifetime = self._sa_lifetime(choice.lifetime_seconds, choice.lifetime_kilobytes, node.initiator)
        mode = EspMode(choice.mode)

        def half(spi: int, direction: SaDirection, enc: bytes, auth: bytes,
                 replaces: int | None) -> SecurityAssociation:
            return SecurityAssociation(spi=spi, direction=direction, encryption_key=enc, integrity_key=auth,
                                       origin=SaOrigin(node.initiator, reason, replaces),
                                       peer=request.peer, local=request.local, transform=esp, mode=mode,
                                       selector=request.selector, lifetime=lifetime, ike_sa=sa.conn_id,
                                       replay_window_size=self.ctx.config.replay_window_size or 64,
                                       udp_encap=(sa.local_port, sa.peer_port) if sa.nat_detected else None)

        sa_in = half(node.spi_in, SaDirection.INBOUND, enc_in, auth_in, old.sa_in.spi if old else None)
        sa_out = half(node.spi_out, SaDirection.OUTBOUND, enc_out, auth_out, old.sa_out.spi if old else None)
        self.ctx.children.reserved_spis.discard(node.spi_in)
        self.ctx.sad.install_pair(now, sa_in, sa_out,
                              replaces=(old.sa_in, old.sa_out) if old is not None else None,
                              outbound_active=node.initiator and not loser)
        child = ChildSa(request.peer, request.local, request.selector, request.policy, sa_in, sa_out,
                        node.initiator, node.ni, now, reason, replaces=old, loser=loser)
        child.keys = (enc_in, auth_in, enc_out, auth_out)
        node.child = child
        self.ctx.children.add(child)
        self.ctx.log(now, sa.conn_id,
                     f"Successfully installed IPSEC SA (SPI:0x{node.spi_in:X}) on {request.policy.interface}")
        self.ctx.sa_event(now, "installed", child)
        if old is not None and not loser:
            if old.state in (ChildState.ACTIVE, ChildState.REKEYING):
                old.transition(ChildEvent.REPLACED)
                old.replaced_by = child
            if node.initiator and old.state is not ChildState.DELETED:
                self.rekeying.schedule_replaced_delete(now, old)
        if loser and node.initiator:
            self.rekeying.schedule_loser_delete(now, child)
        return child

    def _sa_lifetime(self, seconds: int, kilobytes: int | None, initiator: bool) -> SaLifetime:
        return sa_lifetime(self.ctx.profile, self.ctx.random, seconds, kilobytes, initiator)


def sa_lifetime(profile: BehaviourProfile, random: RandomSource, seconds: int, kilobytes: int | None,
                initiator: bool) -> SaLifetime:
    """Soft and hard limits for a new pair, by the behaviour profile (the
    same rule for IKEv1 and IKEv2 pairs)."""
    p = profile
    hard_s = float(seconds)
    soft_s = hard_s - p.soft_seconds_before - (random.uniform(0, p.soft_jitter_seconds)
                                               if p.soft_jitter_seconds else 0.0)
    if not initiator:
        soft_s += p.responder_soft_delay_seconds
    soft_s = min(max(soft_s, hard_s * 0.5), hard_s - 1.0)
    if kilobytes is None:
        return SaLifetime(hard_s, soft_s, None, None)
    hard_b = kilobytes * KILOBYTE
    frac = p.soft_volume_fraction - (random.uniform(0, p.soft_jitter_fraction)
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
