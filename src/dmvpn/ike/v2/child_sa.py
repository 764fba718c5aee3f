"""CREATE_CHILD_SA for a new or rekeyed CHILD_SA as a task (RFC 7296
sections 1.3.1, 1.3.3, 2.17, 2.8.1), and the rule that settles two rekeys
that cross.

Request: SK{[N(REKEY_SA)], SA, Ni, [KEi], TSi, TSr, [N(USE_TRANSPORT_MODE)]};
response: SK{SA, Nr, [KEr], TSi, TSr, ...}. With PFS both sides add a KE of
the group in the proposal and KEYMAT = prf+(SK_d, g^ir (new) | Ni | Nr);
a responder wanting another group answers INVALID_KE_PAYLOAD (1.3). The
message ID comes from the caller: the shared IKE transport owns the window.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from dmvpn.crypto.dh_groups import DhKeyPair, InvalidPublicValue, UnsupportedGroup
from dmvpn.crypto.esp_algorithms import EspTransform
from dmvpn.crypto.ikev2_kdf import child_keymat
from dmvpn.ike.v2.ike_auth import AuthConfig, ChildSaResult, selectors
from dmvpn.ike.v2.proposals import esp_of, esp_sa_payload, select_esp
from dmvpn.ike.v2.protect import open_message, seal
from dmvpn.ike.v2.sa_init import NONCE_SIZE, IkeSaState
from dmvpn.sansio import RandomSource
from dmvpn.wire.errors import DecodeError
from dmvpn.wire.ikev2 import Ikev2Message
from dmvpn.wire.ikev2_payloads import (
    KePayload,
    NoncePayload,
    NotifyPayload,
    Payload,
    SaPayload,
)
from dmvpn.wire.ikev2_registry import ExchangeType, HeaderFlags, NotifyType, ProtocolId


@dataclass(frozen=True, slots=True)
class CreatedChild:
    """A CHILD_SA from CREATE_CHILD_SA, with the exchange's nonces (2.8.1)."""

    child: ChildSaResult
    ni: bytes
    nr: bytes
    rekeyed_spi: bytes | None  # the SPI of REKEY_SA: the SA this one replaces


def redundant(ours: tuple[bytes, bytes], theirs: tuple[bytes, bytes]) -> bool:
    """RFC 7296 2.8.1: of two CHILD_SAs created by crossing rekeys, the one
    whose exchange used the lowest of the four nonces is redundant and is
    deleted by its initiator. True if that is the SA of *our* exchange
    (``ours`` = its (Ni, Nr)). Nonces compare as unsigned big-endian byte
    strings, a shorter one being a prefix-smaller value."""
    return min(ours) < min(theirs)


class CreateChildSa:
    """One CREATE_CHILD_SA exchange for a CHILD_SA (either role; charon's
    ``child_create`` / ``child_rekey``). ``initiator`` is this exchange's
    initiator, which need not be the IKE SA's."""

    def __init__(
        self,
        sa: IkeSaState,
        config: AuthConfig,
        random: RandomSource,
        message_id: int,
        initiator: bool,
        rekey_spi: bytes | None = None,
        pfs_group: int | None = None,
    ) -> None:
        self.sa, self.config, self.random = sa, config, random
        self.message_id, self.initiator = message_id, initiator
        self.rekey_spi, self.pfs_group = rekey_spi, pfs_group
        self.result: CreatedChild | None = None
        self.error: str | None = None
        self._spi = random.token_bytes(4)
        self._ni = b""
        self._dh: DhKeyPair | None = None
        self._reply: bytes | None = None

    def _message(self, response: bool, payloads: list[Payload]) -> Ikev2Message:
        # Initiator flag: set on messages from the original IKE SA initiator (RFC 7296 3.1)
        flags = HeaderFlags.INITIATOR if self.sa.initiator else 0
        if response:
            flags |= HeaderFlags.RESPONSE
        return Ikev2Message(
            self.sa.spi_i, self.sa.spi_r, ExchangeType.CREATE_CHILD_SA, flags, self.message_id, payloads
        )

    def _transport(self) -> list[Payload]:
        return [NotifyPayload(NotifyType.USE_TRANSPORT_MODE)] if self.config.transport else []

    # -- initiator -------------------------------------------------------

    def build_i(self, now: float) -> bytes:
        """The request; a rekey names the old SA in REKEY_SA (1.3.3)."""
        self._ni = self._ni or self.random.token_bytes(NONCE_SIZE)
        payloads: list[Payload] = []
        if self.rekey_spi is not None:
            payloads.append(NotifyPayload(NotifyType.REKEY_SA, ProtocolId.ESP, self.rekey_spi))
        payloads += [esp_sa_payload(self.config.esp, self._spi, self.pfs_group), NoncePayload(self._ni)]
        if self.pfs_group is not None:
            if self._dh is None or self._dh.group != self.pfs_group:
                self._dh = DhKeyPair.generate(self.pfs_group, self.random)
            payloads.append(KePayload(self.pfs_group, self._dh.public_value))
        payloads += [*selectors(self.config, True), *self._transport()]
        return seal(self.sa, self._message(False, payloads), self.random)

    def process_i(self, data: bytes, now: float) -> bool | None:
        """True: the new CHILD_SA is in ``result``; None: build_i again (the
        responder asked for another DH group); False: failed (``error``)."""
        try:
            msg = open_message(self.sa, data)
        except DecodeError as exc:
            return self._fail(f"CREATE_CHILD_SA response: {exc}")
        for n in (p for p in msg.payloads if isinstance(p, NotifyPayload) and p.is_error):
            if n.notify_type == NotifyType.INVALID_KE_PAYLOAD and len(n.data) == 2 and self.pfs_group is not None:
                (self.pfs_group,) = struct.unpack("!H", n.data)
                return None
            return self._fail(f"peer answered {getattr(n.notify_type, 'name', n.notify_type)}")
        sa, nonce, ke = msg.find(SaPayload), msg.find(NoncePayload), msg.find(KePayload)
        if len(sa) != 1 or len(nonce) != 1:
            return self._fail("CREATE_CHILD_SA response lacks SA or Nonce")
        assert isinstance(sa[0], SaPayload) and isinstance(nonce[0], NoncePayload)
        chosen = select_esp(sa[0], self.config.esp, self.pfs_group)
        if chosen is None or len(sa[0].proposals) != 1:
            return self._fail("the responder chose an ESP proposal we did not offer")
        g_ir = self._shared(ke[0] if ke else None)
        if g_ir is None:
            return False
        child = self._keymat(esp_of(chosen[0]), self._spi, chosen[0].spi, self._ni, nonce[0].data, g_ir)
        self.result = CreatedChild(child, self._ni, nonce[0].data, self.rekey_spi)
        return True

    # -- responder -------------------------------------------------------

    def process_r(self, data: bytes, now: float) -> None:
        """Read the request; :meth:`build_r` gives the answer."""
        try:
            msg = open_message(self.sa, data)
        except DecodeError as exc:
            self.error, self._reply = f"CREATE_CHILD_SA request: {exc}", None
            return
        rekey = [p for p in msg.payloads if isinstance(p, NotifyPayload) and p.notify_type == NotifyType.REKEY_SA]
        self.rekey_spi = rekey[0].spi if rekey else None
        sa, nonce, ke = msg.find(SaPayload), msg.find(NoncePayload), msg.find(KePayload)
        if len(sa) != 1 or len(nonce) != 1:
            self._answer_error(NotifyType.INVALID_SYNTAX, b"", "request lacks SA or Nonce")
            return
        assert isinstance(sa[0], SaPayload) and isinstance(nonce[0], NoncePayload)
        kei = ke[0] if ke and isinstance(ke[0], KePayload) else None
        # Our PFS group, or without one the group of the initiator's KE, must be in the proposal (3.3.2).
        group = self.pfs_group if self.pfs_group is not None else (int(kei.group) if kei is not None else None)
        chosen = select_esp(sa[0], self.config.esp, group)
        if chosen is None and not (self.pfs_group is not None and select_esp(sa[0], self.config.esp)):
            self._answer_error(NotifyType.NO_PROPOSAL_CHOSEN, b"", "no acceptable ESP proposal")
            return
        if self.pfs_group is not None and (chosen is None or kei is None or kei.group != self.pfs_group):
            # acceptable but for the group (1.3): ask for ours
            self._answer_error(
                NotifyType.INVALID_KE_PAYLOAD,
                struct.pack("!H", self.pfs_group),
                "the initiator's KE is not of our PFS group",
            )
            return
        nr = self.random.token_bytes(NONCE_SIZE)
        payloads: list[Payload] = []
        if kei is not None:
            self._dh = DhKeyPair.generate(int(kei.group), self.random)
        g_ir = self._shared(kei)
        if g_ir is None:
            self._answer_error(NotifyType.INVALID_SYNTAX, b"", self.error or "bad KE")
            return
        assert chosen is not None
        proposal, esp = chosen
        child = self._keymat(esp, proposal.spi, self._spi, nonce[0].data, nr, g_ir)
        self.result = CreatedChild(child, nonce[0].data, nr, self.rekey_spi)
        proposal.spi = self._spi
        payloads += [SaPayload([proposal]), NoncePayload(nr)]
        if self._dh is not None:
            payloads.append(KePayload(self._dh.group, self._dh.public_value))
        payloads += [*selectors(self.config, False), *self._transport()]
        self._reply = seal(self.sa, self._message(True, payloads), self.random)

    def build_r(self, now: float) -> bytes | None:
        """The response, or None when the request is to be dropped."""
        return self._reply

    def refuse(self, ntype: int, reason: str) -> bytes:
        """Answer the request with an error notify and nothing else, e.g.
        TEMPORARY_FAILURE or CHILD_SA_NOT_FOUND when the SA it rekeys is
        being deleted or gone (RFC 7296 2.25)."""
        self._answer_error(ntype, b"", reason)
        assert self._reply is not None
        return self._reply

    # -- both ------------------------------------------------------------

    def _shared(self, ke: Payload | None) -> bytes | None:
        if ke is None:
            if self._dh is not None and self.initiator:
                self.error = "PFS was asked for but the response has no KE"
                return None
            return b""
        assert isinstance(ke, KePayload)
        if self._dh is None or int(ke.group) != self._dh.group:
            self.error = f"KE of group {int(ke.group)} does not match"
            return None
        try:
            return self._dh.shared_secret(ke.data)
        except (InvalidPublicValue, UnsupportedGroup) as exc:
            self.error = f"bad KE: {exc}"
            return None

    def _keymat(
        self, esp: EspTransform, spi_i: bytes, spi_r: bytes, ni: bytes, nr: bytes, g_ir: bytes
    ) -> ChildSaResult:
        keys, algs = self.sa.keys, self.sa.algorithms
        assert keys is not None and algs is not None
        km = child_keymat(algs.prf, keys.sk_d, ni, nr, esp.encryption_key_bytes, esp.integrity_key_bytes, g_ir)
        return ChildSaResult(spi_i, spi_r, esp, km, self.config.transport)

    def _answer_error(self, ntype: int, data: bytes, reason: str) -> None:
        self.error = reason
        self._reply = seal(self.sa, self._message(True, [NotifyPayload(ntype, data=data)]), self.random)

    def _fail(self, reason: str) -> bool:
        self.error = reason
        return False
