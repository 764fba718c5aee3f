"""The IKE_SA_INIT exchange as a task (RFC 7296 sections 1.2, 2.6, 2.7,
2.14): the initiator builds HDR, SAi1, KEi, Ni; the responder picks a
proposal and answers HDR, SAr1, KEr, Nr, or asks for a cookie (2.6) or for
another DH group with INVALID_KE_PAYLOAD (1.2); the initiator retries with
what it was told. Both end with the IKE SA's algorithms and keys.

The task is pure: messages are bytes in and out, randomness comes from the
injected :class:`RandomSource`, time from the ``now`` argument. Sending,
retransmission and message IDs belong to the shared IKE transport.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from dmvpn.config.ikev2_model import Ikev2Proposal
from dmvpn.crypto.dh_groups import DhKeyPair, InvalidPublicValue, UnsupportedGroup
from dmvpn.crypto.ikev2_algorithms import PrfId, prf
from dmvpn.crypto.ikev2_kdf import Ikev2Keys, derive_ike_keys, nat_detection_hash, skeyseed
from dmvpn.ike.v2.proposals import IkeAlgorithms, ike_algorithms, ike_sa_payload, select_ike
from dmvpn.sansio import RandomSource
from dmvpn.wire.errors import DecodeError
from dmvpn.wire.ikev2 import Ikev2Message, decode_message
from dmvpn.wire.ikev2_payloads import KePayload, NoncePayload, NotifyPayload, Payload, SaPayload
from dmvpn.wire.ikev2_registry import ExchangeType, HeaderFlags, NotifyType

NONCE_SIZE = 32  # RFC 7296 2.10: at least half the PRF key size, 16..256 bytes
MAX_RETRIES = 3  # INVALID_KE / COOKIE round trips before giving up


class InitOutcome(Enum):
    """What :meth:`IkeSaInit.process_i` concluded."""

    DONE = "done"
    RETRY = "retry"  # build_i again: a cookie or another DH group was asked for
    FAILED = "failed"


@dataclass
class IkeSaState:
    """What IKE_SA_INIT establishes, for IKE_AUTH and the SA itself."""

    initiator: bool
    spi_i: bytes
    spi_r: bytes = bytes(8)
    ni: bytes = b""
    nr: bytes = b""
    request: bytes = b""  # the IKE_SA_INIT request as last sent (RealMessage1)
    response: bytes = b""  # the IKE_SA_INIT response (RealMessage2)
    algorithms: IkeAlgorithms | None = None
    keys: Ikev2Keys | None = None
    established_at: float | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    nat_local: bool = False  # we are behind a NAT (RFC 7296 2.23): float to 4500, send keepalives
    nat_peer: bool = False  # the peer is behind a NAT


@dataclass(frozen=True, slots=True)
class Endpoints:
    """The UDP addresses of the exchange as this side sees them (packed IPv4
    address, port), for NAT detection (RFC 7296 2.23)."""

    local: tuple[bytes, int]
    peer: tuple[bytes, int]


def _notify(msg: Ikev2Message, ntype: int) -> NotifyPayload | None:
    for p in msg.find(NotifyPayload):
        if isinstance(p, NotifyPayload) and p.notify_type == ntype:
            return p
    return None


class IkeSaInit:
    """One IKE_SA_INIT exchange, either role (charon's ``ike_init`` task)."""

    def __init__(
        self,
        proposals: Sequence[Ikev2Proposal],
        random: RandomSource,
        initiator: bool,
        cookie_secret: bytes | None = None,
        endpoints: Endpoints | None = None,
        force_nat: bool = False,
    ) -> None:
        self.proposals = list(proposals)
        self.random = random
        self.sa = IkeSaState(initiator, random.token_bytes(8) if initiator else bytes(8))
        self.cookie_secret = cookie_secret  # responder: demand a cookie (2.6) when set
        self.endpoints = endpoints  # NAT detection when given
        self.force_nat = force_nat  # claim a NAT in front of us (strongSwan's encap = yes)
        self._group = next(g for p in self.proposals if p.complete for g in p.groups) if initiator else 0
        self._dh: DhKeyPair | None = None
        self._cookie = b""
        self._retries = 0
        self._reply: Ikev2Message | None = None

    # -- initiator -------------------------------------------------------

    def build_i(self, now: float) -> bytes:
        """HDR, [N(COOKIE)], SAi1, KEi, Ni (RFC 7296 1.2, 2.6)."""
        if self._dh is None or self._dh.group != self._group:
            self._dh = DhKeyPair.generate(self._group, self.random)
        if not self.sa.ni:
            self.sa.ni = self.random.token_bytes(NONCE_SIZE)
        payloads: list[Payload] = [NotifyPayload(NotifyType.COOKIE, data=self._cookie)] if self._cookie else []
        payloads += [
            ike_sa_payload(self.proposals),
            KePayload(self._group, self._dh.public_value),
            NoncePayload(self.sa.ni),
            *self._nat_notifies(self.sa.spi_i, bytes(8)),
        ]
        msg = Ikev2Message(self.sa.spi_i, bytes(8), ExchangeType.IKE_SA_INIT, HeaderFlags.INITIATOR, 0, payloads)
        self.sa.request = msg.encode()
        return self.sa.request

    def process_i(self, data: bytes, now: float) -> InitOutcome:
        """The response: keys, or a retry with a cookie / another group."""
        try:
            msg = decode_message(data)
        except DecodeError as exc:
            return self._fail(f"malformed IKE_SA_INIT response: {exc}")
        if msg.spi_i != self.sa.spi_i or not msg.is_response or msg.exchange_type != ExchangeType.IKE_SA_INIT:
            return self._fail("not the response to our IKE_SA_INIT")
        cookie = _notify(msg, NotifyType.COOKIE)
        invalid_ke = _notify(msg, NotifyType.INVALID_KE_PAYLOAD)
        if cookie is not None or invalid_ke is not None:
            return self._retry(cookie, invalid_ke)
        errors = [p for p in msg.find(NotifyPayload) if isinstance(p, NotifyPayload) and p.is_error]
        if errors:
            return self._fail(f"peer answered {getattr(errors[0].notify_type, 'name', errors[0].notify_type)}")
        sa, ke, nonce = msg.find(SaPayload), msg.find(KePayload), msg.find(NoncePayload)
        if len(sa) != 1 or len(ke) != 1 or len(nonce) != 1:
            return self._fail("IKE_SA_INIT response lacks SA, KE or Nonce")
        assert isinstance(sa[0], SaPayload) and isinstance(ke[0], KePayload) and isinstance(nonce[0], NoncePayload)
        chosen = select_ike(sa[0], self.proposals)
        if chosen is None or len(sa[0].proposals) != 1:
            return self._fail("the responder chose a proposal we did not offer")
        algs = ike_algorithms(chosen)
        if algs.group != self._group or ke[0].group != self._group:
            return self._fail("the responder's KE is not of the group we sent")
        self.sa.spi_r, self.sa.nr, self.sa.response = msg.spi_r, nonce[0].data, bytes(data)
        self._detect_nat(msg)
        return self._derive(algs, ke[0].data, now)

    def _retry(self, cookie: NotifyPayload | None, invalid_ke: NotifyPayload | None) -> InitOutcome:
        self._retries += 1
        if self._retries > MAX_RETRIES:
            return self._fail("too many COOKIE / INVALID_KE_PAYLOAD round trips")
        if cookie is not None:
            self._cookie = cookie.data
            self.sa.notes.append("cookie requested")
        if invalid_ke is not None:
            if len(invalid_ke.data) != 2:
                return self._fail("INVALID_KE_PAYLOAD without a 2-byte group")
            (group,) = struct.unpack("!H", invalid_ke.data)
            if group not in {int(g) for p in self.proposals for g in p.groups} or group == self._group:
                return self._fail(f"INVALID_KE_PAYLOAD asks for group {group}, which we did not offer")
            self._group = group
            self.sa.notes.append(f"INVALID_KE_PAYLOAD: retrying with group {group}")
        return InitOutcome.RETRY

    # -- responder -------------------------------------------------------

    def process_r(self, data: bytes, now: float, peer: bytes = b"") -> None:
        """Read the request; :meth:`build_r` then gives the answer. ``peer``
        is the initiator's address, bound into the cookie (2.6)."""
        try:
            msg = decode_message(data)
        except DecodeError as exc:
            self._reply_notify(None, NotifyType.INVALID_SYNTAX, b"", str(exc))
            return
        sa, ke, nonce = msg.find(SaPayload), msg.find(KePayload), msg.find(NoncePayload)
        if msg.is_response or len(sa) != 1 or len(ke) != 1 or len(nonce) != 1:
            self._reply_notify(msg, NotifyType.INVALID_SYNTAX, b"", "request lacks SA, KE or Nonce")
            return
        assert isinstance(sa[0], SaPayload) and isinstance(ke[0], KePayload) and isinstance(nonce[0], NoncePayload)
        if self.cookie_secret is not None:
            want = self._cookie_for(nonce[0].data, peer, msg.spi_i)
            got = _notify(msg, NotifyType.COOKIE)
            if got is None or got.data != want:
                self._reply_notify(msg, NotifyType.COOKIE, want, None)
                return
        chosen = select_ike(sa[0], self.proposals)
        if chosen is None:
            self._reply_notify(msg, NotifyType.NO_PROPOSAL_CHOSEN, b"", "no acceptable proposal")
            return
        algs = ike_algorithms(chosen)
        if ke[0].group != algs.group:
            self._reply_notify(msg, NotifyType.INVALID_KE_PAYLOAD, struct.pack("!H", algs.group), None)
            return
        self.sa.spi_i, self.sa.ni, self.sa.request = msg.spi_i, nonce[0].data, bytes(data)
        self.sa.spi_r, self.sa.nr = self.random.token_bytes(8), self.random.token_bytes(NONCE_SIZE)
        self._dh = DhKeyPair.generate(algs.group, self.random)
        self._detect_nat(msg)
        reply = Ikev2Message(
            msg.spi_i,
            self.sa.spi_r,
            ExchangeType.IKE_SA_INIT,
            HeaderFlags.RESPONSE,
            0,
            [
                SaPayload([chosen]),
                KePayload(algs.group, self._dh.public_value),
                NoncePayload(self.sa.nr),
                *self._nat_notifies(msg.spi_i, self.sa.spi_r),
            ],
        )
        self.sa.response = reply.encode()
        if self._derive(algs, ke[0].data, now) is InitOutcome.DONE:
            self._reply = reply
        else:
            self._reply_notify(msg, NotifyType.INVALID_SYNTAX, b"", self.sa.error)

    def build_r(self, now: float) -> bytes:
        """The response to the request :meth:`process_r` read."""
        assert self._reply is not None, "process_r first"
        return self._reply.encode()

    def _cookie_for(self, ni: bytes, peer: bytes, spi_i: bytes) -> bytes:
        # RFC 7296 2.6: Cookie = <VersionIDofSecret> | Hash(Ni | IPi | SPIi | <secret>)
        assert self.cookie_secret is not None
        return b"\x00\x00\x00\x01" + prf(PrfId.HMAC_SHA2_256, self.cookie_secret, ni + peer + spi_i)

    def _reply_notify(self, msg: Ikev2Message | None, ntype: int, data: bytes, error: str | None) -> None:
        spi_i = msg.spi_i if msg else bytes(8)
        self._reply = Ikev2Message(
            spi_i, bytes(8), ExchangeType.IKE_SA_INIT, HeaderFlags.RESPONSE, 0, [NotifyPayload(ntype, data=data)]
        )
        self.sa.error = error

    # -- both ------------------------------------------------------------

    def _nat_notifies(self, spi_i: bytes, spi_r: bytes) -> list[Payload]:
        """NAT_DETECTION_SOURCE_IP and _DESTINATION_IP for our view of the
        addresses (RFC 7296 2.23); none without endpoints."""
        if self.endpoints is None:
            return []
        (lip, lport), (pip, pport) = self.endpoints.local, self.endpoints.peer
        if self.force_nat:  # a hash of no address of ours: the peer sees us behind a NAT
            source = self.random.token_bytes(20)
        else:
            source = nat_detection_hash(spi_i, spi_r, lip, lport)
        return [
            NotifyPayload(NotifyType.NAT_DETECTION_SOURCE_IP, data=source),
            NotifyPayload(NotifyType.NAT_DETECTION_DESTINATION_IP, data=nat_detection_hash(spi_i, spi_r, pip, pport)),
        ]

    def _detect_nat(self, msg: Ikev2Message) -> None:
        """Compare the peer's NAT-D hashes with the addresses we see: its
        DESTINATION hash not matching our address means we are behind a NAT;
        none of its SOURCE hashes matching its address means it is."""
        if self.endpoints is None:
            return
        (lip, lport), (pip, pport) = self.endpoints.local, self.endpoints.peer
        src = [
            p.data
            for p in msg.find(NotifyPayload)
            if isinstance(p, NotifyPayload) and p.notify_type == NotifyType.NAT_DETECTION_SOURCE_IP
        ]
        dst = _notify(msg, NotifyType.NAT_DETECTION_DESTINATION_IP)
        if not src or dst is None:
            return  # the peer does not do NAT detection
        self.sa.nat_local = self.force_nat or dst.data != nat_detection_hash(msg.spi_i, msg.spi_r, lip, lport)
        self.sa.nat_peer = nat_detection_hash(msg.spi_i, msg.spi_r, pip, pport) not in src

    def _derive(self, algs: IkeAlgorithms, peer_public: bytes, now: float) -> InitOutcome:
        assert self._dh is not None
        try:
            g_ir = self._dh.shared_secret(peer_public)
        except (InvalidPublicValue, UnsupportedGroup) as exc:
            return self._fail(f"bad KE: {exc}")
        seed = skeyseed(algs.prf, self.sa.ni, self.sa.nr, g_ir)
        c = algs.cipher
        self.sa.keys = derive_ike_keys(
            algs.prf, seed, self.sa.ni, self.sa.nr, self.sa.spi_i, self.sa.spi_r, c.integ_key_bytes, c.encr_key_bytes
        )
        self.sa.algorithms = algs
        self.sa.established_at = now
        return InitOutcome.DONE

    @property
    def nat(self) -> bool:
        """Either side is behind a NAT (or one is claimed): IKE floats to
        UDP 4500 from IKE_AUTH on and ESP travels in UDP (RFC 7296 2.23)."""
        return self.sa.nat_local or self.sa.nat_peer

    def _fail(self, reason: str) -> InitOutcome:
        self.sa.error = reason
        return InitOutcome.FAILED
