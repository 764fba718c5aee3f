"""Rekeying the IKE SA with CREATE_CHILD_SA (RFC 7296 sections 1.3.2,
2.18, 2.8.2): SK{SA, Ni, KEi} with the new initiator SPI in the proposal,
answered by SK{SA, Nr, KEr} with the new responder SPI. The new SA's
SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr), its keys as in 2.14 with
the new SPIs. The old SA's initiator of *this exchange* becomes the new
SA's initiator. Crossing IKE rekeys are settled like CHILD_SAs
(:func:`dmvpn.ike.v2.child_sa.redundant`, 2.8.2).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from dmvpn.config.ikev2_model import Ikev2Proposal
from dmvpn.crypto.dh_groups import DhKeyPair, InvalidPublicValue, UnsupportedGroup
from dmvpn.crypto.ikev2_kdf import derive_ike_keys, rekey_skeyseed
from dmvpn.ike.v2.proposals import ike_algorithms, ike_sa_payload, select_ike
from dmvpn.ike.v2.protect import open_message, seal
from dmvpn.ike.v2.sa_init import NONCE_SIZE, IkeSaState
from dmvpn.sansio import RandomSource
from dmvpn.wire.errors import DecodeError
from dmvpn.wire.ikev2 import Ikev2Message
from dmvpn.wire.ikev2_payloads import KePayload, NoncePayload, NotifyPayload, Payload, Proposal, SaPayload
from dmvpn.wire.ikev2_registry import ExchangeType, HeaderFlags, NotifyType


class IkeRekey:
    """One IKE SA rekey (charon's ``ike_rekey``); ``initiator`` is this
    exchange's initiator. ``new_sa`` holds the new IKE SA when done."""

    def __init__(
        self, sa: IkeSaState, proposals: Sequence[Ikev2Proposal], random: RandomSource, message_id: int, initiator: bool
    ) -> None:
        self.sa, self.proposals, self.random = sa, list(proposals), random
        self.message_id, self.initiator = message_id, initiator
        self.new_sa: IkeSaState | None = None
        self.error: str | None = None
        self.nonces: tuple[bytes, bytes] | None = None
        self._spi = random.token_bytes(8)
        self._group = next(g for p in self.proposals if p.complete for g in p.groups)
        self._ni = b""
        self._dh: DhKeyPair | None = None
        self._reply: bytes | None = None

    def _message(self, response: bool, payloads: list[Payload]) -> bytes:
        flags = (HeaderFlags.INITIATOR if self.sa.initiator else 0) | (HeaderFlags.RESPONSE if response else 0)
        msg = Ikev2Message(self.sa.spi_i, self.sa.spi_r, ExchangeType.CREATE_CHILD_SA, flags, self.message_id, payloads)
        return seal(self.sa, msg, self.random)

    def build_i(self, now: float) -> bytes:
        self._ni = self._ni or self.random.token_bytes(NONCE_SIZE)
        if self._dh is None or self._dh.group != self._group:
            self._dh = DhKeyPair.generate(self._group, self.random)
        return self._message(
            False,
            [
                ike_sa_payload(self.proposals, self._spi),
                NoncePayload(self._ni),
                KePayload(self._group, self._dh.public_value),
            ],
        )

    def process_i(self, data: bytes, now: float) -> bool | None:
        """True: ``new_sa`` is set; None: build_i again with the group the
        responder asked for; False: failed."""
        try:
            msg = open_message(self.sa, data)
        except DecodeError as exc:
            return self._fail(f"IKE rekey response: {exc}")
        for n in (p for p in msg.payloads if isinstance(p, NotifyPayload) and p.is_error):
            if n.notify_type == NotifyType.INVALID_KE_PAYLOAD and len(n.data) == 2:
                (self._group,) = struct.unpack("!H", n.data)
                return None
            return self._fail(f"peer answered {getattr(n.notify_type, 'name', n.notify_type)}")
        sa, nonce, ke = msg.find(SaPayload), msg.find(NoncePayload), msg.find(KePayload)
        if len(sa) != 1 or len(nonce) != 1 or len(ke) != 1:
            return self._fail("IKE rekey response lacks SA, Nonce or KE")
        assert isinstance(sa[0], SaPayload) and isinstance(nonce[0], NoncePayload) and isinstance(ke[0], KePayload)
        chosen = select_ike(sa[0], self.proposals, spi_size=8)
        if chosen is None:
            return self._fail("the responder chose an IKE proposal we did not offer")
        if ke[0].group != self._group or ike_algorithms(chosen).group != self._group:
            return self._fail("the responder's KE is not of the group we sent")
        return self._finish(chosen, chosen.spi, ke[0], self._ni, nonce[0].data, now)

    def process_r(self, data: bytes, now: float) -> None:
        try:
            msg = open_message(self.sa, data)
        except DecodeError as exc:
            self.error, self._reply = f"IKE rekey request: {exc}", None
            return
        sa, nonce, ke = msg.find(SaPayload), msg.find(NoncePayload), msg.find(KePayload)
        if len(sa) != 1 or len(nonce) != 1 or len(ke) != 1:
            self._answer_error(NotifyType.INVALID_SYNTAX, b"", "request lacks SA, Nonce or KE")
            return
        assert isinstance(sa[0], SaPayload) and isinstance(nonce[0], NoncePayload) and isinstance(ke[0], KePayload)
        chosen = select_ike(sa[0], self.proposals, spi_size=8)
        if chosen is None:
            self._answer_error(NotifyType.NO_PROPOSAL_CHOSEN, b"", "no acceptable IKE proposal")
            return
        group = ike_algorithms(chosen).group
        if ke[0].group != group:
            self._answer_error(NotifyType.INVALID_KE_PAYLOAD, struct.pack("!H", group), "KE of another group")
            return
        self._dh = DhKeyPair.generate(group, self.random)
        nr = self.random.token_bytes(NONCE_SIZE)
        peer_spi = chosen.spi
        chosen.spi = self._spi
        if not self._finish(chosen, peer_spi, ke[0], nonce[0].data, nr, now):
            self._answer_error(NotifyType.INVALID_SYNTAX, b"", self.error or "bad KE")
            return
        self._reply = self._message(
            True, [SaPayload([chosen]), NoncePayload(nr), KePayload(group, self._dh.public_value)]
        )

    def build_r(self, now: float) -> bytes | None:
        return self._reply

    def refuse(self, ntype: int, reason: str) -> bytes:
        """Answer the request with an error notify alone, e.g.
        TEMPORARY_FAILURE when the IKE SA is already rekeyed (RFC 7296 2.25)."""
        self._answer_error(ntype, b"", reason)
        assert self._reply is not None
        return self._reply

    def _finish(self, chosen: Proposal, peer_spi: bytes, ke: KePayload, ni: bytes, nr: bytes, now: float) -> bool:
        """The new IKE SA: SKEYSEED with the *old* SA's PRF, its keys with the new one (2.18)."""
        old_keys, old_algs = self.sa.keys, self.sa.algorithms
        assert self._dh is not None and old_keys is not None and old_algs is not None
        try:
            g_ir = self._dh.shared_secret(ke.data)
        except (InvalidPublicValue, UnsupportedGroup) as exc:
            return self._fail(f"bad KE: {exc}")
        spi_i, spi_r = (self._spi, peer_spi) if self.initiator else (peer_spi, self._spi)
        algs = ike_algorithms(chosen)
        seed = rekey_skeyseed(old_algs.prf, old_keys.sk_d, g_ir, ni, nr)
        c = algs.cipher
        new = IkeSaState(self.initiator, spi_i, spi_r, ni, nr)
        new.algorithms = algs
        new.keys = derive_ike_keys(algs.prf, seed, ni, nr, spi_i, spi_r, c.integ_key_bytes, c.encr_key_bytes)
        new.established_at = now
        self.new_sa, self.nonces = new, (ni, nr)
        return True

    def _answer_error(self, ntype: int, data: bytes, reason: str) -> None:
        self.error = reason
        self._reply = self._message(True, [NotifyPayload(ntype, data=data)])

    def _fail(self, reason: str) -> bool:
        self.error = reason
        return False
