"""ESP ciphers and integrity algorithms, addressed by their registry numbers
(the single definition of both registries; wire/ and config/ re-export them).

* ESP transform IDs (RFC 2407 section 4.4.4, IANA "IPsec ESP Transform
  Identifiers"): 3 3DES (RFC 2451), 11 NULL (RFC 2410), 12 AES-CBC
  (RFC 3602), 18/19/20 AES-GCM with an 8/12/16-byte ICV (RFC 4106).
* Authentication algorithm, IKEv1 phase-2 attribute 5 (RFC 2407 section
  4.5; 5-7 from RFC 4868): 1 HMAC-MD5-96 (RFC 2403), 2 HMAC-SHA-1-96
  (RFC 2404), 5 HMAC-SHA2-256-128, 6 HMAC-SHA2-384-192, 7 HMAC-SHA2-512-256.

Every primitive is from ``cryptography``. The objects here are built once
per SA and reused for every packet (DESIGN.md, "the data plane is the hot
path"): a keyed HMAC context that is ``copy()``-ed per packet, one AESGCM
object, and one long-lived CBC encryptor/decryptor pair (see
:class:`CbcCipher` for why that is sound).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import constant_time, hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

try:  # cryptography >= 43 moved TripleDES to the "decrepit" package
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES


class EspTransformId(IntEnum):
    """ESP transform IDs (RFC 2407 section 4.4.4, IANA)."""

    ESP_DES_IV64 = 1
    ESP_DES = 2
    ESP_3DES = 3
    ESP_RC5 = 4
    ESP_IDEA = 5
    ESP_CAST = 6
    ESP_BLOWFISH = 7
    ESP_3IDEA = 8
    ESP_DES_IV32 = 9
    ESP_RC4 = 10
    ESP_NULL = 11
    ESP_AES_CBC = 12
    ESP_AES_CTR = 13
    ESP_AES_CCM_8 = 14
    ESP_AES_CCM_12 = 15
    ESP_AES_CCM_16 = 16
    ESP_AES_GCM_8 = 18
    ESP_AES_GCM_12 = 19
    ESP_AES_GCM_16 = 20
    ESP_NULL_AUTH_AES_GMAC = 23


class EspAuthAlgorithm(IntEnum):
    """Phase-2 attribute 5 (RFC 2407 4.5, RFC 4868 section 2.4).

    ``NONE`` (0, reserved on the wire) marks an ESP transform without a
    separate integrity algorithm, i.e. combined mode (RFC 4106 section 8.3).
    """

    NONE = 0
    HMAC_MD5 = 1
    HMAC_SHA = 2
    DES_MAC = 3
    KPDK = 4
    HMAC_SHA2_256 = 5
    HMAC_SHA2_384 = 6
    HMAC_SHA2_512 = 7
    AES_XCBC_MAC = 9


class UnsupportedTransform(ValueError):
    """A transform ID, key length or algorithm combination we do not provide."""


GCM_IDS = {
    EspTransformId.ESP_AES_GCM_8: 8,
    EspTransformId.ESP_AES_GCM_12: 12,
    EspTransformId.ESP_AES_GCM_16: 16,
}
GCM_SALT_BYTES = 4  # RFC 4106 section 8.1: key material = key || 4-byte salt

#: The ciphers this data plane runs.
_CIPHERS = {EspTransformId.ESP_NULL, EspTransformId.ESP_3DES, EspTransformId.ESP_AES_CBC, *GCM_IDS}

# auth algorithm -> (hash, key bytes, truncated ICV bytes)
_HMACS: dict[EspAuthAlgorithm, tuple[type[hashes.HashAlgorithm], int, int]] = {
    EspAuthAlgorithm.HMAC_MD5: (hashes.MD5, 16, 12),  # RFC 2403
    EspAuthAlgorithm.HMAC_SHA: (hashes.SHA1, 20, 12),  # RFC 2404
    EspAuthAlgorithm.HMAC_SHA2_256: (hashes.SHA256, 32, 16),  # RFC 4868 2.1
    EspAuthAlgorithm.HMAC_SHA2_384: (hashes.SHA384, 48, 24),
    EspAuthAlgorithm.HMAC_SHA2_512: (hashes.SHA512, 64, 32),
}

_IOS_AUTH = {
    EspAuthAlgorithm.HMAC_MD5: "esp-md5-hmac",
    EspAuthAlgorithm.HMAC_SHA: "esp-sha-hmac",
    EspAuthAlgorithm.HMAC_SHA2_256: "esp-sha256-hmac",
    EspAuthAlgorithm.HMAC_SHA2_384: "esp-sha384-hmac",
    EspAuthAlgorithm.HMAC_SHA2_512: "esp-sha512-hmac",
}


@dataclass(frozen=True, slots=True)
class EspTransform:
    """One negotiated ESP transform: cipher, its key length, integrity.

    ``key_bits`` is the cipher key length without the GCM salt (0 for NULL,
    192 for 3DES). Combined-mode (GCM) transforms take ``auth=NONE``
    (RFC 4106 section 8.3: no separate integrity algorithm).
    """

    encr: EspTransformId
    key_bits: int = 128
    auth: EspAuthAlgorithm = EspAuthAlgorithm.HMAC_SHA2_256

    def __post_init__(self) -> None:
        if self.encr not in _CIPHERS:
            raise UnsupportedTransform(f"ESP transform {self.encr!r} is not supported")
        if self.encr == EspTransformId.ESP_NULL:
            valid = {0}
        elif self.encr == EspTransformId.ESP_3DES:
            valid = {192}
        else:
            valid = {128, 192, 256}
        if self.key_bits not in valid:
            raise UnsupportedTransform(
                f"key length {self.key_bits} bits is not valid for {self.encr.name}"
            )
        if self.is_aead and self.auth != EspAuthAlgorithm.NONE:
            raise UnsupportedTransform(f"{self.encr.name} is combined mode: auth must be NONE")
        if (not self.is_aead and self.auth not in _HMACS
                and (self.encr == EspTransformId.ESP_NULL or self.auth != EspAuthAlgorithm.NONE)):
            raise UnsupportedTransform(
                f"authentication algorithm {self.auth!r} is not supported with {self.encr.name}"
            )

    @property
    def is_aead(self) -> bool:
        """True for combined-mode (AES-GCM) transforms."""
        return self.encr in GCM_IDS

    @property
    def encryption_key_bytes(self) -> int:
        """Bytes of KEYMAT the cipher takes (GCM: key plus 4-byte salt)."""
        n = self.key_bits // 8
        return n + GCM_SALT_BYTES if self.is_aead else n

    @property
    def integrity_key_bytes(self) -> int:
        """Bytes of KEYMAT the integrity algorithm takes."""
        return _HMACS[self.auth][1] if self.auth in _HMACS else 0

    @property
    def keymat_bytes(self) -> int:
        """Total KEYMAT per direction: encryption key first, then integrity key
        (the order RFC 2409 section 5.5 KEYMAT is cut in by IOS and Linux)."""
        return self.encryption_key_bytes + self.integrity_key_bytes

    def split_keymat(self, keymat: bytes) -> tuple[bytes, bytes]:
        """(encryption key, integrity key) from one direction's KEYMAT."""
        if len(keymat) < self.keymat_bytes:
            raise ValueError(f"KEYMAT is {len(keymat)} bytes, {self} needs {self.keymat_bytes}")
        e = self.encryption_key_bytes
        return keymat[:e], keymat[e : e + self.integrity_key_bytes]

    @property
    def iv_bytes(self) -> int:
        """Size of the explicit IV field in each packet."""
        if self.encr == EspTransformId.ESP_NULL:
            return 0
        if self.encr == EspTransformId.ESP_3DES or self.is_aead:
            return 8
        return 16

    @property
    def icv_bytes(self) -> int:
        """Size of the ICV field in each packet."""
        if self.is_aead:
            return GCM_IDS[self.encr]
        return _HMACS[self.auth][2] if self.auth in _HMACS else 0

    @property
    def ios_name(self) -> str:
        """The transform as ``show crypto ipsec sa`` prints it, e.g.
        ``esp-aes esp-sha256-hmac``, ``esp-256-aes esp-sha256-hmac`` or
        ``esp-gcm 256`` (as the genieparser samples of IOS-XE show GCM)."""
        if self.encr == EspTransformId.ESP_AES_CBC:
            cipher = "esp-aes" if self.key_bits == 128 else f"esp-{self.key_bits}-aes"
        elif self.is_aead:
            cipher = "esp-gcm" if self.key_bits == 128 else f"esp-gcm {self.key_bits}"
        elif self.encr == EspTransformId.ESP_3DES:
            cipher = "esp-3des"
        else:
            cipher = "esp-null"
        auth = _IOS_AUTH.get(self.auth)
        return f"{cipher} {auth}" if auth else cipher


class CbcCipher:
    """AES-CBC (RFC 3602) or 3DES-CBC (RFC 2451) with one pair of long-lived
    ``cryptography`` contexts.

    A CBC context carries its chaining block from one ``update`` to the next.
    Encrypting ``R || P`` with a fresh random block ``R`` yields
    ``C0 || CBC_C0(P)``: ``C0 = E(R xor previous block)`` is unpredictable
    (RFC 3602 section 3 asks exactly that of the IV) and is sent as the IV.
    Decrypting ``IV || C`` yields one garbage block and then ``CBC^-1_IV(C)``.
    So no context is created per packet. The ESP fast path calls
    ``encryptor.update`` / ``decryptor.update`` directly. Inputs must be whole blocks, which
    the ESP layer guarantees before calling.
    """

    __slots__ = ("block_size", "decryptor", "encryptor")

    def __init__(self, encr: EspTransformId, key: bytes) -> None:
        if encr == EspTransformId.ESP_AES_CBC:
            alg: algorithms.AES | TripleDES = algorithms.AES(key)
        elif encr == EspTransformId.ESP_3DES:
            alg = TripleDES(key)
        else:
            raise UnsupportedTransform(f"{encr!r} is not a CBC cipher")
        self.block_size = alg.block_size // 8
        zero = bytes(self.block_size)
        self.encryptor = Cipher(alg, modes.CBC(zero)).encryptor()
        self.decryptor = Cipher(alg, modes.CBC(zero)).decryptor()

    def encrypt(self, random_block_and_plaintext: bytes) -> bytes:
        """IV || ciphertext for one block of fresh random bytes followed by
        the plaintext (whole blocks); the IV is derived from the random block."""
        return self.encryptor.update(random_block_and_plaintext)

    def decrypt_raw(self, iv_and_ciphertext: bytes) -> bytes:
        """One junk block || plaintext, for ``IV || ciphertext`` (whole
        blocks). The caller slices (saving a copy on the hot path)."""
        return self.decryptor.update(iv_and_ciphertext)


class GcmCipher:
    """AES-GCM for ESP (RFC 4106): nonce = 4-byte salt || 8-byte explicit IV,
    ICV of 8, 12 or 16 bytes; the salt is the last 4 bytes of the key
    material (section 8.1)."""

    __slots__ = ("aead", "icv_size", "salt")

    def __init__(self, encr: EspTransformId, key_with_salt: bytes) -> None:
        if encr not in GCM_IDS:
            raise UnsupportedTransform(f"{encr!r} is not AES-GCM")
        self.salt = key_with_salt[-GCM_SALT_BYTES:]
        self.icv_size = GCM_IDS[encr]
        self.aead = AESGCM(key_with_salt[:-GCM_SALT_BYTES])  # the ESP fast path uses it directly

    def seal(self, iv8: bytes, plaintext: bytes, aad: bytes) -> bytes:
        """Ciphertext || ICV."""
        out = self.aead.encrypt(self.salt + iv8, plaintext, aad)
        if self.icv_size == 16:
            return out
        return out[: len(out) - 16 + self.icv_size]

    def open(self, iv8: bytes, ciphertext_and_icv: bytes, aad: bytes) -> bytes | None:
        """Plaintext, or None if the ICV does not verify."""
        if self.icv_size != 16:
            # cryptography's AESGCM checks only full tags; verify a truncated
            # ICV by recomputing: decrypt with the CTR keystream, then re-seal.
            return self._open_truncated(iv8, ciphertext_and_icv, aad)
        try:
            return self.aead.decrypt(self.salt + iv8, ciphertext_and_icv, aad)
        except InvalidTag:
            return None

    def _open_truncated(self, iv8: bytes, data: bytes, aad: bytes) -> bytes | None:
        n = len(data) - self.icv_size
        if n < 0:
            return None
        ct, icv = data[:n], bytes(data[n:])
        # GCM encryption is CTR starting at counter 2 (NIST SP 800-38D 7.1):
        # applying it again to the ciphertext gives the plaintext.
        plaintext = self.aead.encrypt(self.salt + iv8, ct, aad)[:n]
        expected = self.aead.encrypt(self.salt + iv8, plaintext, aad)[n : n + self.icv_size]
        if not constant_time.bytes_eq(expected, icv):
            return None
        return plaintext


class HmacIntegrity:
    """HMAC-*-N for ESP (RFC 2403, 2404, 4868): a keyed context built once,
    copied per packet, its output truncated to the ICV length."""

    __slots__ = ("base", "icv_size")

    def __init__(self, auth: EspAuthAlgorithm, key: bytes) -> None:
        if auth not in _HMACS:
            raise UnsupportedTransform(f"authentication algorithm {auth!r} is not supported")
        hash_cls, _key_len, self.icv_size = _HMACS[auth]
        self.base = hmac.HMAC(key, hash_cls())  # keyed; copy() per packet

    def icv(self, data: bytes) -> bytes:
        """The truncated HMAC of ``data``."""
        h = self.base.copy()
        h.update(data)
        return h.finalize()[: self.icv_size]

    def verify(self, data: bytes, icv: bytes) -> bool:
        """Constant-time comparison of ``icv`` with the ICV of ``data``."""
        h = self.base.copy()
        h.update(data)
        return constant_time.bytes_eq(h.finalize()[: self.icv_size], icv)

