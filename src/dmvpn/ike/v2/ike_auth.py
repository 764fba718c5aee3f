"""The IKE_AUTH exchange with pre-shared keys as a task (RFC 7296 sections
1.2, 2.15, 2.17, 1.3.1 USE_TRANSPORT_MODE): the initiator sends
SK{IDi, AUTH, SAi2, TSi, TSr}, the responder checks AUTH with the peer's
key, picks an ESP transform and answers SK{IDr, AUTH, SAr2, TSi, TSr};
both derive the first CHILD_SA's KEYMAT. A wrong AUTH is answered with
AUTHENTICATION_FAILED, no acceptable ESP proposal with NO_PROPOSAL_CHOSEN.

Pure like :mod:`dmvpn.ike.v2.sa_init`: bytes in and out, injected
randomness for IVs and SPIs, explicit ``now``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address

from dmvpn.crypto.esp_algorithms import EspTransform
from dmvpn.crypto.ikev2_algorithms import constant_time_equal
from dmvpn.crypto.ikev2_kdf import ChildKeys, child_keymat, psk_auth, signed_octets
from dmvpn.ike.v2.proposals import esp_of, esp_sa_payload, select_esp
from dmvpn.ike.v2.protect import open_message, seal
from dmvpn.ike.v2.sa_init import IkeSaState
from dmvpn.sansio import RandomSource
from dmvpn.wire.errors import DecodeError
from dmvpn.wire.ikev2 import Ikev2Message
from dmvpn.wire.ikev2_payloads import AuthPayload, IdPayload, NotifyPayload, SaPayload, TrafficSelector, TsPayload
from dmvpn.wire.ikev2_registry import AuthMethod, ExchangeType, HeaderFlags, NotifyType, PayloadType

GRE = 47  # DMVPN protects GRE between the two NBMA addresses (transport mode)


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """One side's IKE_AUTH settings: its identity and the keyring's keys
    (``local`` signs our AUTH, ``remote`` checks the peer's), the ESP
    transforms it offers or accepts, and the addresses the selectors cover."""

    local_address: IPv4Address
    peer_address: IPv4Address
    local_psk: bytes
    remote_psk: bytes
    esp: Sequence[EspTransform]
    transport: bool = True
    protocol: int = GRE


@dataclass(frozen=True, slots=True)
class ChildSaResult:
    """The first CHILD_SA: SPIs each side receives on, transform, KEYMAT (2.17)."""

    spi_i: bytes  # the initiator's inbound SPI
    spi_r: bytes  # the responder's inbound SPI
    esp: EspTransform
    keys: ChildKeys
    transport: bool


def selectors(config: AuthConfig, initiator: bool) -> tuple[TsPayload, TsPayload]:
    """TSi and TSr of an exchange we start (``initiator``) or answer: the
    two NBMA addresses and the protected protocol (RFC 7296 2.9)."""
    i_addr, r_addr = (
        (config.local_address, config.peer_address) if initiator else (config.peer_address, config.local_address)
    )
    return (
        TsPayload([TrafficSelector.ipv4(str(i_addr), str(i_addr), config.protocol)], PayloadType.TSI),
        TsPayload([TrafficSelector.ipv4(str(r_addr), str(r_addr), config.protocol)], PayloadType.TSR),
    )


class IkeAuth:
    """One IKE_AUTH exchange over an established IKE_SA_INIT (charon's
    ``ike_auth`` + ``child_create`` tasks, PSK only)."""

    def __init__(self, sa: IkeSaState, config: AuthConfig, random: RandomSource,
                 initial_contact: bool = False) -> None:
        """``initial_contact``: the initiator has no other IKE SA with the
        peer and says so with N(INITIAL_CONTACT) (RFC 7296 2.4)."""
        assert sa.keys is not None and sa.algorithms is not None, "IKE_SA_INIT must be done"
        self.sa, self.config, self.random = sa, config, random
        self.initial_contact = initial_contact  # responder: set when the request carried it
        self.child: ChildSaResult | None = None
        self.error: str | None = None
        self._spi = random.token_bytes(4)  # our inbound ESP SPI
        self._reply: bytes | None = None

    # -- helpers ---------------------------------------------------------

    def _auth(self, psk: bytes, ident: IdPayload, from_initiator: bool) -> bytes:
        """AUTH of the initiator (its request, Nr, prf(SK_pi, IDi')) or the
        responder (its response, Ni, prf(SK_pr, IDr')) (RFC 7296 2.15)."""
        keys, algs = self.sa.keys, self.sa.algorithms
        assert keys is not None and algs is not None
        if from_initiator:
            octets = signed_octets(algs.prf, self.sa.request, self.sa.nr, keys.sk_pi, ident.encode_body())
        else:
            octets = signed_octets(algs.prf, self.sa.response, self.sa.ni, keys.sk_pr, ident.encode_body())
        return psk_auth(algs.prf, psk, octets)

    def _seal(self, msg: Ikev2Message) -> bytes:
        return seal(self.sa, msg, self.random)

    def _open(self, data: bytes) -> Ikev2Message:
        return open_message(self.sa, data)

    def _keymat(self, esp: EspTransform, spi_i: bytes, spi_r: bytes) -> ChildSaResult:
        keys, algs = self.sa.keys, self.sa.algorithms
        assert keys is not None and algs is not None
        km = child_keymat(
            algs.prf, keys.sk_d, self.sa.ni, self.sa.nr, esp.encryption_key_bytes, esp.integrity_key_bytes
        )
        return ChildSaResult(spi_i, spi_r, esp, km, self.config.transport)

    def _header(self, flags: int) -> Ikev2Message:
        return Ikev2Message(self.sa.spi_i, self.sa.spi_r, ExchangeType.IKE_AUTH, flags, 1)

    # -- initiator -------------------------------------------------------

    def build_i(self, now: float) -> bytes:
        """HDR, SK{IDi, AUTH, SAi2, TSi, TSr, [N(USE_TRANSPORT_MODE)]}."""
        ident = IdPayload.ipv4(str(self.config.local_address), PayloadType.IDI)
        tsi, tsr = selectors(self.config, self.sa.initiator)
        msg = self._header(HeaderFlags.INITIATOR)
        msg.payloads = [
            ident,
            AuthPayload(AuthMethod.SHARED_KEY_MIC, self._auth(self.config.local_psk, ident, True)),
            esp_sa_payload(self.config.esp, self._spi),
            tsi,
            tsr,
        ]
        if self.initial_contact:
            msg.payloads.insert(1, NotifyPayload(NotifyType.INITIAL_CONTACT))
        if self.config.transport:
            msg.payloads.append(NotifyPayload(NotifyType.USE_TRANSPORT_MODE))
        return self._seal(msg)

    def process_i(self, data: bytes, now: float) -> bool:
        """Verify the responder's AUTH and take the CHILD_SA; False (and
        ``error``) if it failed."""
        try:
            msg = self._open(data)
        except DecodeError as exc:
            return self._fail(f"IKE_AUTH response: {exc}")
        errors = [p for p in msg.find(NotifyPayload) if isinstance(p, NotifyPayload) and p.is_error]
        if errors:
            return self._fail(f"peer answered {getattr(errors[0].notify_type, 'name', errors[0].notify_type)}")
        idr = [p for p in msg.find(IdPayload) if isinstance(p, IdPayload) and p.payload_type == PayloadType.IDR]
        auth, sa = msg.find(AuthPayload), msg.find(SaPayload)
        if len(idr) != 1 or len(auth) != 1 or len(sa) != 1:
            return self._fail("IKE_AUTH response lacks IDr, AUTH or SA")
        assert isinstance(auth[0], AuthPayload) and isinstance(sa[0], SaPayload)
        if not self._auth_ok(auth[0], idr[0], from_initiator=False):
            return self._fail("the responder's AUTH does not verify with our remote pre-shared key")
        chosen = select_esp(sa[0], self.config.esp)
        if chosen is None or len(sa[0].proposals) != 1:
            return self._fail("the responder chose an ESP proposal we did not offer")
        self.child = self._keymat(esp_of(chosen[0]), self._spi, chosen[0].spi)
        self.sa.established_at = now
        return True

    # -- responder -------------------------------------------------------

    def process_r(self, data: bytes, now: float) -> None:
        """Check the request; :meth:`build_r` gives the answer."""
        try:
            msg = self._open(data)
        except DecodeError as exc:
            self.error = f"IKE_AUTH request: {exc}"
            self._reply = None  # an undecryptable request gets no answer (RFC 7296 2.21.2)
            return
        self.initial_contact = any(
            isinstance(p, NotifyPayload) and p.notify_type == NotifyType.INITIAL_CONTACT for p in msg.payloads
        )
        idi = [p for p in msg.find(IdPayload) if isinstance(p, IdPayload) and p.payload_type == PayloadType.IDI]
        auth, sa = msg.find(AuthPayload), msg.find(SaPayload)
        if len(idi) != 1 or len(auth) != 1 or len(sa) != 1:
            self._answer_notify(NotifyType.INVALID_SYNTAX, "IKE_AUTH request lacks IDi, AUTH or SA")
            return
        assert isinstance(auth[0], AuthPayload) and isinstance(sa[0], SaPayload)
        if not self._auth_ok(auth[0], idi[0], from_initiator=True):
            self._answer_notify(NotifyType.AUTHENTICATION_FAILED, "the initiator's AUTH does not verify")
            return
        chosen = select_esp(sa[0], self.config.esp)
        if chosen is None:
            self._answer_notify(NotifyType.NO_PROPOSAL_CHOSEN, "no acceptable ESP proposal")
            return
        proposal, esp = chosen
        self.child = self._keymat(esp, proposal.spi, self._spi)
        ident = IdPayload.ipv4(str(self.config.local_address), PayloadType.IDR)
        tsi, tsr = selectors(self.config, self.sa.initiator)
        proposal.spi = self._spi
        reply = self._header(HeaderFlags.RESPONSE)
        reply.payloads = [
            ident,
            AuthPayload(AuthMethod.SHARED_KEY_MIC, self._auth(self.config.local_psk, ident, False)),
            SaPayload([proposal]),
            tsi,
            tsr,
        ]
        if self.config.transport and any(
            isinstance(p, NotifyPayload) and p.notify_type == NotifyType.USE_TRANSPORT_MODE for p in msg.payloads
        ):
            reply.payloads.append(NotifyPayload(NotifyType.USE_TRANSPORT_MODE))
        self._reply = self._seal(reply)
        self.sa.established_at = now

    def build_r(self, now: float) -> bytes | None:
        """The response, or None when the request is to be dropped."""
        return self._reply

    # -- both ------------------------------------------------------------

    def _auth_ok(self, auth: AuthPayload, ident: IdPayload, from_initiator: bool) -> bool:
        if auth.method != AuthMethod.SHARED_KEY_MIC:
            return False
        return constant_time_equal(auth.data, self._auth(self.config.remote_psk, ident, from_initiator))

    def _answer_notify(self, ntype: int, reason: str) -> None:
        self.error = reason
        reply = self._header(HeaderFlags.RESPONSE)
        reply.payloads = [NotifyPayload(ntype)]
        self._reply = self._seal(reply)

    def _fail(self, reason: str) -> bool:
        self.error = reason
        return False
