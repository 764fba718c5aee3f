"""The IKE engine's records: one ISAKMP SA (RFC 2408 section 2.4) with its
phase-1 keys and IV chain, its Quick Mode / Informational exchanges
("nodes" in IOS speak, keyed by message ID) and the IPsec SA pairs it made.

Encryption follows RFC 2409 appendix B: Main Mode messages 5 and 6 chain
from hash(g^xi | g^xr); every later exchange starts from hash(last phase-1
CBC block | M-ID) and chains within itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dmvpn.crypto.dh_groups import DhKeyPair
from dmvpn.crypto.ike_algorithms import IkeCipher, cipher_key_size, ike_cipher
from dmvpn.crypto.ikev1_kdf import Ikev1Keys, encryption_key, exchange_iv, phase1_iv
from dmvpn.ike.proposals import ChildPolicy, Phase1Choice, Phase2Choice
from dmvpn.ike.states import (
    ChildEvent,
    ChildState,
    IkeEvent,
    MessageSource,
    Phase1State,
    QuickModeState,
    next_child,
    next_phase1,
    next_quick_mode,
)
from dmvpn.ike.transport import MessageIds, ReceivedMessages, Retransmit, TimerHandle
from dmvpn.ipsec.sa import SaOriginReason, SecurityAssociation, Selector
from dmvpn.wire.isakmp import IKE_PORT, IsakmpMessage, decrypt_message, encrypt_message


@dataclass(eq=False, slots=True)
class IsakmpSa:
    """One ISAKMP SA, from Main Mode message 1 to deletion."""

    conn_id: int
    initiator: bool
    local: str
    peer: str
    cky_i: bytes
    cky_r: bytes = bytes(8)
    local_port: int = IKE_PORT
    peer_port: int = IKE_PORT
    state: Phase1State = Phase1State.IKE_READY
    created: float = 0.0
    psk: bytes = b""
    sai_b: bytes = b""
    choice: Phase1Choice | None = None
    dh: DhKeyPair | None = None
    g_xi: bytes = b""
    g_xr: bytes = b""
    ni: bytes = b""
    nr: bytes = b""
    keys: Ikev1Keys | None = None
    cipher: IkeCipher | None = None
    enc_key: bytes = b""
    iv: bytes = b""
    p1_last_block: bytes = b""
    established_at: float | None = None
    soft_at: float | None = None
    expires_at: float | None = None
    rekey_started: bool = False
    replaced: bool = False
    retransmit: Retransmit | None = None
    #: A responder's give-up timer (Main Mode not finished in time).
    responder_timeout: TimerHandle | None = None
    last_rx: bytes = b""
    last_tx: bytes = b""
    peer_dpd: bool = False
    peer_natt: bool = False
    nat_detected: bool = False
    pending: list[ChildRequest] = field(default_factory=list)
    nodes: dict[int, QuickModeExchange] = field(default_factory=dict)
    message_ids: MessageIds = field(default_factory=MessageIds)
    dpd_seq: int = 0
    dpd_outstanding: int | None = None
    dpd_attempts: int = 0

    @property
    def established(self) -> bool:
        return self.state is Phase1State.IKE_P1_COMPLETE

    @property
    def role(self) -> str:
        """``I`` or ``R`` as the PAK debug lines print it."""
        return "I" if self.initiator else "R"

    @property
    def spi(self) -> bytes:
        """The ISAKMP SPI: CKY-I | CKY-R (RFC 2408 section 3.15)."""
        return self.cky_i + self.cky_r

    def transition(self, source: MessageSource, event: IkeEvent) -> tuple[Phase1State, Phase1State]:
        """Apply one Main Mode input; returns (old, new) for the debug line."""
        old = self.state
        self.state = next_phase1(old, source, event)
        return old, self.state

    # -- keys and IVs (RFC 2409 appendix B) ---------------------------------
    def install_keys(self, keys: Ikev1Keys) -> None:
        """Set SKEYID_* and the phase-1 cipher key and first IV."""
        assert self.choice is not None
        self.keys = keys
        self.cipher = ike_cipher(self.choice.encryption)
        size = cipher_key_size(self.choice.encryption, self.choice.key_bits)
        self.enc_key = encryption_key(self.choice.hash, keys.skeyid_e, size)
        self.iv = phase1_iv(self.choice.hash, self.g_xi, self.g_xr, self.cipher.block_size)

    def encrypt_phase1(self, message: IsakmpMessage) -> bytes:
        """Encrypt Main Mode message 5 or 6 along the phase-1 IV chain."""
        assert self.cipher is not None
        wire, self.iv = encrypt_message(message, self.cipher, self.enc_key, self.iv)
        self.p1_last_block = self.iv
        return wire

    def decrypt_phase1(self, data: bytes) -> IsakmpMessage:
        """Decrypt Main Mode message 5 or 6; the chain advances only on success."""
        assert self.cipher is not None
        message, iv = decrypt_message(data, self.cipher, self.enc_key, self.iv)
        self.iv = iv
        self.p1_last_block = iv
        return message

    def exchange_iv(self, message_id: int) -> bytes:
        """First IV of a Quick Mode or Informational exchange."""
        assert self.choice is not None and self.cipher is not None
        return exchange_iv(self.choice.hash, self.p1_last_block, message_id, self.cipher.block_size)


@dataclass(slots=True)
class ChildRequest:
    """Traffic that needs an IPsec SA pair (an "acquire", or a rekey)."""

    policy: ChildPolicy
    peer: str
    local: str
    selector: Selector
    reason: SaOriginReason = SaOriginReason.INITIAL
    rekey_of: ChildSa | None = None


@dataclass(eq=False, slots=True)
class QuickModeExchange:
    """One Quick Mode (RFC 2409 5.5) or Informational (5.7) exchange."""

    message_id: int
    initiator: bool
    informational: bool = False
    state: QuickModeState = QuickModeState.IKE_QM_READY
    iv: bytes = b""
    request: ChildRequest | None = None
    spi_in: int = 0
    spi_out: int = 0
    ni: bytes = b""
    nr: bytes = b""
    dh: DhKeyPair | None = None
    g_qm: bytes | None = None
    choice: Phase2Choice | None = None
    retransmit: Retransmit | None = None
    seen: ReceivedMessages = field(default_factory=ReceivedMessages)
    started: float = 0.0
    deleted_at: float | None = None
    child: ChildSa | None = None
    lost_tiebreak: bool = False

    def transition(self, source: MessageSource, event: IkeEvent) -> tuple[QuickModeState, QuickModeState]:
        """Apply one Quick Mode input; returns (old, new) for the debug line."""
        old = self.state
        self.state = next_quick_mode(old, source, event, responder=not self.initiator)
        return old, self.state

    def give_up(self) -> None:
        """The exchange failed (IKE_PHASE2_DEL: no debug line, as on IOS)."""
        self.transition(MessageSource.IKE_MESG_INTERNAL, IkeEvent.IKE_PHASE2_DEL)


@dataclass(eq=False, slots=True)
class ChildSa:
    """An inbound/outbound SA pair made by one Quick Mode."""

    peer: str
    local: str
    selector: Selector
    policy: ChildPolicy
    sa_in: SecurityAssociation
    sa_out: SecurityAssociation
    initiator: bool
    nonce_i: bytes
    created: float
    reason: SaOriginReason
    state: ChildState = ChildState.ACTIVE
    soft_reason: str | None = None
    replaced_by: ChildSa | None = None
    replaces: ChildSa | None = None
    loser: bool = False
    delete_scheduled: bool = False
    keys: tuple[bytes, bytes, bytes, bytes] = (b"", b"", b"", b"")

    def transition(self, event: ChildEvent) -> ChildState:
        """Apply one lifecycle event (through :data:`~dmvpn.ike.states.CHILD_TRANSITIONS`)."""
        self.state = next_child(self.state, event)
        return self.state

    @property
    def rekeying(self) -> bool:
        return self.state is ChildState.REKEYING

    @property
    def flow(self) -> tuple[str, Selector]:
        return (self.peer, self.selector)

    @property
    def idle(self) -> bool:
        """Neither half has carried a packet (IOS does not rekey such a pair)."""
        return self.sa_in.idle and self.sa_out.idle
