"""One IPsec SA (RFC 4301 section 4.4.2.1, the SAD entry) as this stack keeps it.

An SA is one direction: the keys and the cipher contexts built from them,
the outbound sequence counter or the inbound replay window, the counters IOS
prints in ``show crypto ipsec sa``, soft and hard lifetimes in seconds and
bytes, a state, and where it came from (who negotiated it, when, replacing
which SA and why) so that the tool can say why an SA exists.

SAs are created by the IKE engine and owned by
:class:`~dmvpn.ipsec.sad.SecurityAssociationDatabase`; the packet path lives
in :mod:`dmvpn.ipsec.esp`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import TYPE_CHECKING

from dmvpn.crypto.esp_algorithms import (
    CbcCipher,
    EspAuthAlgorithm,
    EspTransform,
    EspTransformId,
    GcmCipher,
    HmacIntegrity,
)
from dmvpn.ipsec.replay_window import ReplayWindow
from dmvpn.wire.esp import ESP_HEADER, ESP_HEADER_BYTES, MIN_SPI

if TYPE_CHECKING:
    from dmvpn.ipsec.sad import SecurityAssociationDatabase

KILOBYTE = 1024

# Which ESP code path an SA takes (see dmvpn.ipsec.esp).
KIND_GENERIC = 0  # ESN, NULL cipher, no integrity, truncated GCM ICVs
KIND_CBC_HMAC = 1  # AES/3DES-CBC with HMAC, 32-bit sequence numbers
KIND_GCM16 = 2  # AES-GCM with a 16-byte ICV, 32-bit sequence numbers
# IOS "kilobytes" lifetimes: 4,608,000 KB is ~37.7 Gbit


class SaDirection(Enum):
    """Which way an SA carries traffic, seen from this router."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


class EspMode(IntEnum):
    """Encapsulation mode, numbered as IKEv1 phase-2 attribute 4 (RFC 2407 4.5)."""

    TUNNEL = 1
    TRANSPORT = 2


class SaState(Enum):
    """Life of an SA in the SAD.

    INSTALLING: keys known, not yet used for sending (IKEv1 responder between
    Quick Mode messages 2 and 3). ACTIVE: in use. REKEYED: a replacement was
    installed. EXPIRING: its soft limit passed and no replacement exists yet.
    DELETED: removed (hard limit, DELETE, or clear); kept only by holders of a
    reference.
    """

    INSTALLING = "installing"
    ACTIVE = "active"
    REKEYED = "rekeyed"
    EXPIRING = "expiring"
    DELETED = "deleted"


class SaOriginReason(Enum):
    """Why this SA was negotiated."""

    INITIAL = "initial"
    TIME_REKEY = "time rekey"
    VOLUME_REKEY = "volume rekey"
    PEER_REKEY = "peer's rekey"
    COLLISION = "collision"


@dataclass(frozen=True, slots=True)
class SaOrigin:
    """Where an SA came from: which side started the exchange, what it
    replaced and why. ``replaces_spi`` is the SPI of the same-direction SA
    this one took over from (None for an initial SA)."""

    initiator: bool
    reason: SaOriginReason = SaOriginReason.INITIAL
    replaces_spi: int | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Selector:
    """The traffic an SA protects (RFC 4301 4.4.1.1, reduced to what IKEv1
    Quick Mode IDs carry): local and remote IPv4 networks and an IP
    protocol (0 = any). DMVPN uses host /32s and protocol 47 (GRE)."""

    local: ipaddress.IPv4Network
    remote: ipaddress.IPv4Network
    protocol: int = 0
    #: the fields as plain integers, computed once: the packet path looks
    #: SAs up by (peer, selector) and comparing ipaddress objects per
    #: packet cost more than the rest of the lookup.
    _key: tuple[int, int, int, int, int] = field(init=False, repr=False, default=(0, 0, 0, 0, 0))

    def __post_init__(self) -> None:
        object.__setattr__(self, "_key", (int(self.local.network_address), self.local.prefixlen,
                                          int(self.remote.network_address), self.remote.prefixlen, self.protocol))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Selector):
            return NotImplemented
        return self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    @classmethod
    def hosts(cls, local: str, remote: str, protocol: int = 0) -> Selector:
        """A host-to-host selector, e.g. ``Selector.hosts(a, b, 47)``."""
        return cls(ipaddress.IPv4Network(local), ipaddress.IPv4Network(remote), protocol)


@dataclass(frozen=True, slots=True)
class SaLifetime:
    """Soft and hard limits; None means no limit of that kind.

    Volume limits are in bytes of protected payload. The soft limits are
    chosen by the behaviour profile (IOS: 30 s before the time limit, about
    90% of the volume) and handed in here already computed.
    """

    hard_seconds: float | None = 3600.0
    soft_seconds: float | None = 3570.0
    hard_bytes: int | None = 4_608_000 * KILOBYTE
    soft_bytes: int | None = int(4_608_000 * KILOBYTE * 0.9)

    def __post_init__(self) -> None:
        if (self.hard_seconds is not None and self.soft_seconds is not None
                and self.soft_seconds > self.hard_seconds):
            raise ValueError("soft time limit is after the hard time limit")
        if self.hard_bytes is not None and self.soft_bytes is not None and self.soft_bytes > self.hard_bytes:
            raise ValueError("soft volume limit exceeds the hard volume limit")


class SecurityAssociation:
    """One direction of an ESP SA: keys, contexts, counters, limits, state."""

    __slots__ = (
        # identity
        "spi", "direction", "peer", "local", "selector", "mode", "transform",
        "lifetime", "origin", "ike_sa", "esn", "replay_window_size", "udp_encap",
        # set by the SAD
        "conn_id", "state", "installed_at", "deleted_at", "sad",
        # IOS counters
        "pkts_encaps", "pkts_decaps", "send_errors", "recv_errors",
        "bytes", "replay_drops", "integrity_failures",
        "invalid_len_drops", "decaps_failures", "invalid_prot_drops",
        "first_packet_time", "last_packet_time",
        # limits bookkeeping
        "soft_fired", "hard_fired", "volume_mark",
        # data plane
        "seq", "seq_limit", "replay", "cipher", "integrity", "hmac_base", "header",
        "block", "iv_size", "icv_size", "overhead", "aead", "null_cipher", "iv_take",
        "kind", "cbc_encrypt", "cbc_decrypt", "gcm", "salt",
    )

    def __init__(
        self,
        *,
        spi: int,
        direction: SaDirection,
        peer: str,
        local: str,
        transform: EspTransform,
        encryption_key: bytes,
        integrity_key: bytes = b"",
        mode: EspMode = EspMode.TRANSPORT,
        selector: Selector | None = None,
        lifetime: SaLifetime = SaLifetime(),
        origin: SaOrigin = SaOrigin(initiator=True),
        ike_sa: object = None,
        esn: bool = False,
        replay_window_size: int = 1024,
        udp_encap: tuple[int, int] | None = None,
    ) -> None:
        if not MIN_SPI <= spi <= 0xFFFFFFFF:
            raise ValueError(f"SPI {spi} is reserved or out of range (256..2^32-1)")
        if len(encryption_key) != transform.encryption_key_bytes:
            raise ValueError(
                f"{transform.ios_name} takes a {transform.encryption_key_bytes}-byte"
                f" encryption key, got {len(encryption_key)}"
            )
        if len(integrity_key) != transform.integrity_key_bytes:
            raise ValueError(
                f"{transform.ios_name} takes a {transform.integrity_key_bytes}-byte"
                f" integrity key, got {len(integrity_key)}"
            )
        self.spi = spi
        self.direction = direction
        self.peer = peer
        self.local = local
        self.selector = selector
        self.mode = mode
        self.transform = transform
        self.lifetime = lifetime
        self.origin = origin
        self.ike_sa = ike_sa
        self.esn = esn
        self.replay_window_size = replay_window_size
        self.udp_encap = udp_encap

        self.conn_id = 0
        self.state = SaState.INSTALLING
        self.installed_at = 0.0
        self.deleted_at: float | None = None
        self.sad: SecurityAssociationDatabase | None = None
        self.iv_take: Callable[[int], bytes] | None = None  # the SAD's IV pool

        self.pkts_encaps = self.pkts_decaps = 0
        self.send_errors = self.recv_errors = 0
        #: the rest of ``recv_errors`` (with ``replay_drops`` and
        #: ``integrity_failures``), as IOS's detail form breaks it down:
        #: ``invalid len (rcv)``, ``decaps failed (rcv)``, ``invalid prot (recv)``
        self.invalid_len_drops = self.decaps_failures = self.invalid_prot_drops = 0
        self.bytes = self.replay_drops = self.integrity_failures = 0
        self.first_packet_time: float | None = None
        self.last_packet_time: float | None = None

        self.soft_fired = False
        self.hard_fired = False
        self.volume_mark = _first_volume_mark(lifetime)

        self.seq = 0
        self.seq_limit = (1 << 64) - 1 if esn else (1 << 32) - 1
        self.replay = ReplayWindow(replay_window_size, esn) if direction is SaDirection.INBOUND else None
        self.header = ESP_HEADER.pack(spi, 0)[:4]
        self.aead = transform.is_aead
        self.null_cipher = transform.encr == EspTransformId.ESP_NULL
        self.iv_size = transform.iv_bytes
        self.icv_size = transform.icv_bytes
        self.overhead = ESP_HEADER_BYTES + self.iv_size + self.icv_size
        self.cipher: CbcCipher | GcmCipher | None
        if self.aead:
            self.cipher = GcmCipher(transform.encr, encryption_key)
            self.block = 4
        elif self.null_cipher:
            self.cipher = None
            self.block = 4
        else:
            self.cipher = CbcCipher(transform.encr, encryption_key)
            self.block = self.cipher.block_size
        self.integrity = (
            HmacIntegrity(transform.auth, integrity_key)
            if transform.auth != EspAuthAlgorithm.NONE
            else None
        )
        self.hmac_base = self.integrity.base if self.integrity is not None else None
        # Fast paths in dmvpn.ipsec.esp for the common transforms without ESN.
        self.cbc_encrypt = self.cbc_decrypt = self.gcm = None
        self.salt = b""
        self.kind = KIND_GENERIC
        if isinstance(self.cipher, CbcCipher):
            self.cbc_encrypt = self.cipher.encryptor.update
            self.cbc_decrypt = self.cipher.decryptor.update
            if self.hmac_base is not None and not esn:
                self.kind = KIND_CBC_HMAC
        elif isinstance(self.cipher, GcmCipher):
            self.gcm, self.salt = self.cipher.aead, self.cipher.salt
            if self.icv_size == 16 and not esn:
                self.kind = KIND_GCM16

    def release_keys(self) -> None:
        """Drop the cipher and integrity contexts (and with them the keys) of
        a deleted SA: its record stays for show and explain, its key material
        need not, and a long run must not keep a context per rekey."""
        self.cipher = self.integrity = self.hmac_base = None
        self.cbc_encrypt = self.cbc_decrypt = self.gcm = None
        self.salt = b""
        self.kind = KIND_GENERIC

    def __repr__(self) -> str:
        return (
            f"<SA {self.direction.value} spi=0x{self.spi:08X} peer={self.peer}"
            f" conn_id={self.conn_id} {self.state.value}>"
        )

    @property
    def idle(self) -> bool:
        """True if the SA has never carried a packet."""
        return self.first_packet_time is None

    # IOS prints encaps/encrypt/digest and decaps/decrypt/verify; every packet
    # we process successfully is all three, so one counter each way suffices.
    @property
    def pkts_encrypt(self) -> int:
        """``#pkts encrypt``."""
        return self.pkts_encaps

    @property
    def pkts_digest(self) -> int:
        """``#pkts digest`` (packets that got an ICV)."""
        return self.pkts_encaps if self.icv_size else 0

    @property
    def pkts_decrypt(self) -> int:
        """``#pkts decrypt``."""
        return self.pkts_decaps

    @property
    def pkts_verify(self) -> int:
        """``#pkts verify`` (packets whose ICV was checked)."""
        return self.pkts_decaps if self.icv_size else 0

    @property
    def packets(self) -> int:
        """Packets successfully processed (encapsulated or decapsulated)."""
        return self.pkts_encaps + self.pkts_decaps

    def remaining(self, now: float) -> tuple[int | None, float | None]:
        """IOS ``remaining key lifetime (k/sec)``: (kilobytes, seconds) until
        the hard limits, None for a limit that is not set."""
        lt = self.lifetime
        kb = None if lt.hard_bytes is None else max(0, lt.hard_bytes - self.bytes) // KILOBYTE
        secs = None if lt.hard_seconds is None else max(0.0, self.installed_at + lt.hard_seconds - now)
        return kb, secs

    def account(self, now: float, nbytes: int, npackets: int) -> None:
        """Count ``nbytes`` of payload in ``npackets`` packets at ``now``
        (fluid credits land here; the ESP packet path does the same inline) and
        raise the soft/hard volume events when a limit is reached."""
        if self.first_packet_time is None and npackets:
            self.first_packet_time = now
        self.last_packet_time = now
        total = self.bytes + nbytes
        self.bytes = total
        if total >= self.volume_mark and self.sad is not None:
            self.sad.volume_crossed(self, now)


NO_VOLUME_LIMIT = 1 << 80


def _first_volume_mark(lt: SaLifetime) -> int:
    if lt.soft_bytes is not None:
        return lt.soft_bytes
    return lt.hard_bytes if lt.hard_bytes is not None else NO_VOLUME_LIMIT
