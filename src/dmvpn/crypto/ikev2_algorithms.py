"""IKEv2 transforms addressed by their IANA numbers: PRFs, integrity
algorithms and the ciphers that protect the Encrypted (SK) payload.

Registries ("IKEv2 Transform Type 1/2/3 - ..." at IANA, RFC 7296 section
3.3.2): encryption (type 1) 3 3DES, 11 NULL, 12 AES-CBC (RFC 3602), 13
AES-CTR (RFC 5930), 14-16 AES-CCM and 18-20 AES-GCM with an 8/12/16-byte
ICV (RFC 5282); PRF (type 2) HMAC-MD5/SHA1 (RFC 2104), 4 AES-XCBC-PRF-128
(RFC 4434), 5-7 HMAC-SHA2 (RFC 4868), 8 AES-CMAC-PRF-128 (RFC 4615);
integrity (type 3) 1/2 HMAC-MD5/SHA1-96, 6/7 the untruncated
HMAC-MD5-128/SHA1-160 (RFC 4595), 12-14 HMAC-SHA2-256-128/384-192/512-256
(RFC 4868). The DH group registry (type 4) is :class:`DhGroup`.

The Encrypted payload (RFC 7296 section 3.14) is IV | ciphertext | ICV; the
ICV of a non-AEAD cipher covers the IKE header, the SK payload header, the
IV and the ciphertext; an AEAD cipher takes the IKE header and the SK
payload header as associated data (RFC 5282 section 5.1). Every primitive
is from ``cryptography``; AES-CBC and 3DES reuse IKEv1's payload cipher
(:func:`ike_cipher`), AES-GCM the ESP data plane's :class:`GcmCipher`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import cmac, constant_time, hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from dmvpn.crypto.esp_algorithms import EspTransformId, GcmCipher
from dmvpn.crypto.ike_algorithms import EncryptionAlgorithm, ike_cipher


class EncrId(IntEnum):
    """IKEv2 Transform Type 1, encryption algorithm IDs (RFC 7296 3.3.2, IANA)."""

    DES_IV64 = 1
    DES = 2
    DES3 = 3
    RC5 = 4
    IDEA = 5
    CAST = 6
    BLOWFISH = 7
    IDEA3 = 8
    DES_IV32 = 9
    NULL = 11
    AES_CBC = 12
    AES_CTR = 13
    AES_CCM_8 = 14
    AES_CCM_12 = 15
    AES_CCM_16 = 16
    AES_GCM_8 = 18
    AES_GCM_12 = 19
    AES_GCM_16 = 20
    NULL_AUTH_AES_GMAC = 21
    CAMELLIA_CBC = 23
    CAMELLIA_CTR = 24
    CAMELLIA_CCM_8 = 25
    CAMELLIA_CCM_12 = 26
    CAMELLIA_CCM_16 = 27
    CHACHA20_POLY1305 = 28


class PrfId(IntEnum):
    """IKEv2 Transform Type 2, pseudo-random function IDs (RFC 7296 3.3.2, IANA)."""

    HMAC_MD5 = 1
    HMAC_SHA1 = 2
    HMAC_TIGER = 3
    AES128_XCBC = 4
    HMAC_SHA2_256 = 5
    HMAC_SHA2_384 = 6
    HMAC_SHA2_512 = 7
    AES128_CMAC = 8


class IntegId(IntEnum):
    """IKEv2 Transform Type 3, integrity algorithm IDs (RFC 7296 3.3.2, IANA)."""

    NONE = 0
    HMAC_MD5_96 = 1
    HMAC_SHA1_96 = 2
    DES_MAC = 3
    KPDK_MD5 = 4
    AES_XCBC_96 = 5
    HMAC_MD5_128 = 6
    HMAC_SHA1_160 = 7
    AES_CMAC_96 = 8
    AES_128_GMAC = 9
    AES_192_GMAC = 10
    AES_256_GMAC = 11
    HMAC_SHA2_256_128 = 12
    HMAC_SHA2_384_192 = 13
    HMAC_SHA2_512_256 = 14


class UnsupportedIkev2Algorithm(ValueError):
    """A transform ID or key length this implementation does not provide."""


# --------------------------------------------------------------------------
# PRFs (RFC 7296 section 2.13)

_PRF_HASHES: dict[int, type[hashes.HashAlgorithm]] = {
    PrfId.HMAC_MD5: hashes.MD5,
    PrfId.HMAC_SHA1: hashes.SHA1,
    PrfId.HMAC_SHA2_256: hashes.SHA256,
    PrfId.HMAC_SHA2_384: hashes.SHA384,
    PrfId.HMAC_SHA2_512: hashes.SHA512,
}
_AES_PRFS = {PrfId.AES128_XCBC, PrfId.AES128_CMAC}


def prf_size(prf_id: int) -> int:
    """Output (and preferred key) length in bytes of PRF ``prf_id``."""
    if prf_id in _AES_PRFS:
        return 16
    try:
        return _PRF_HASHES[prf_id]().digest_size
    except KeyError:
        raise UnsupportedIkev2Algorithm(f"unsupported IKEv2 PRF {prf_id}") from None


def _aes_ecb(key: bytes, block: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(block) + enc.finalize()


def aes_xcbc_mac(key: bytes, data: bytes) -> bytes:
    """AES-XCBC-MAC-96's full 128-bit output (RFC 3566 section 4), over
    ``cryptography``'s AES: K1/K2/K3 derived from the key, CBC-MAC with K1,
    the last block mixed with K2 (whole) or K3 (padded with 0x80 00..)."""
    k1 = _aes_ecb(key, b"\x01" * 16)
    k2 = _aes_ecb(key, b"\x02" * 16)
    k3 = _aes_ecb(key, b"\x03" * 16)
    if data and len(data) % 16 == 0:
        head, last, mix = data[:-16], data[-16:], k2
    else:
        cut = len(data) - len(data) % 16
        head, last, mix = data[:cut], (data[cut:] + b"\x80").ljust(16, b"\x00"), k3
    state = bytes(16)
    if head:
        enc = Cipher(algorithms.AES(k1), modes.CBC(bytes(16))).encryptor()
        state = (enc.update(head) + enc.finalize())[-16:]
    return _aes_ecb(k1, bytes(a ^ b ^ c for a, b, c in zip(state, last, mix, strict=True)))


def _aes_cmac(key: bytes, data: bytes) -> bytes:
    mac = cmac.CMAC(algorithms.AES(key))
    mac.update(data)
    return mac.finalize()


def prf(prf_id: int, key: bytes, data: bytes) -> bytes:
    """prf(K, S) for the negotiated PRF (RFC 7296 2.13). The AES PRFs take
    any key length: a key that is not 16 bytes is first reduced with the
    MAC under a zero key (RFC 4434 section 2, RFC 4615 section 3)."""
    if prf_id == PrfId.AES128_XCBC:
        if len(key) != 16:
            key = aes_xcbc_mac(bytes(16), key) if len(key) > 16 else key.ljust(16, b"\x00")
        return aes_xcbc_mac(key, data)
    if prf_id == PrfId.AES128_CMAC:
        if len(key) != 16:
            key = _aes_cmac(bytes(16), key)
        return _aes_cmac(key, data)
    try:
        mac = hmac.HMAC(key, _PRF_HASHES[prf_id]())
    except KeyError:
        raise UnsupportedIkev2Algorithm(f"unsupported IKEv2 PRF {prf_id}") from None
    mac.update(data)
    return mac.finalize()


def prf_plus(prf_id: int, key: bytes, seed: bytes, length: int) -> bytes:
    """prf+ (RFC 7296 2.13): T1 | T2 | ... cut to ``length`` bytes, where
    Tn = prf(K, Tn-1 | S | n) and n is one byte (so at most 255 blocks)."""
    size = prf_size(prf_id)
    if length > 255 * size:
        raise ValueError(f"prf+ can give at most {255 * size} bytes, {length} asked")
    out, block = b"", b""
    n = 1
    while len(out) < length:
        block = prf(prf_id, key, block + seed + bytes([n]))
        out += block
        n += 1
    return out[:length]


# --------------------------------------------------------------------------
# Integrity (RFC 7296 3.3.2 type 3)

# integ id -> (hash, key bytes, ICV bytes)
_INTEG: dict[int, tuple[type[hashes.HashAlgorithm], int, int]] = {
    IntegId.HMAC_MD5_96: (hashes.MD5, 16, 12),  # RFC 2403
    IntegId.HMAC_SHA1_96: (hashes.SHA1, 20, 12),  # RFC 2404
    IntegId.HMAC_MD5_128: (hashes.MD5, 16, 16),  # RFC 4595
    IntegId.HMAC_SHA1_160: (hashes.SHA1, 20, 20),  # RFC 4595
    IntegId.HMAC_SHA2_256_128: (hashes.SHA256, 32, 16),  # RFC 4868 2.1
    IntegId.HMAC_SHA2_384_192: (hashes.SHA384, 48, 24),
    IntegId.HMAC_SHA2_512_256: (hashes.SHA512, 64, 32),
}


def integ_key_size(integ_id: int) -> int:
    """SK_ai / SK_ar length for integrity algorithm ``integ_id`` (0 for NONE)."""
    if integ_id == IntegId.NONE:
        return 0
    try:
        return _INTEG[integ_id][1]
    except KeyError:
        raise UnsupportedIkev2Algorithm(f"unsupported IKEv2 integrity algorithm {integ_id}") from None


def integ_icv_size(integ_id: int) -> int:
    """Bytes of ICV integrity algorithm ``integ_id`` appends (0 for NONE)."""
    if integ_id == IntegId.NONE:
        return 0
    try:
        return _INTEG[integ_id][2]
    except KeyError:
        raise UnsupportedIkev2Algorithm(f"unsupported IKEv2 integrity algorithm {integ_id}") from None


def integ_icv(integ_id: int, key: bytes, data: bytes) -> bytes:
    """The (truncated) HMAC of ``data`` for integrity algorithm ``integ_id``."""
    hash_cls, _size, icv = _INTEG[integ_id]
    mac = hmac.HMAC(key, hash_cls())
    mac.update(data)
    return mac.finalize()[:icv]


# --------------------------------------------------------------------------
# Ciphers for the Encrypted payload

_CBC: dict[int, int] = {EncrId.AES_CBC: 16, EncrId.DES3: 8}  # block = IV size
_CTR_NONCE = 4  # RFC 5930 section 2: 4-byte nonce from the key material
_CCM: dict[int, int] = {EncrId.AES_CCM_8: 8, EncrId.AES_CCM_12: 12, EncrId.AES_CCM_16: 16}
_CCM_SALT = 3  # RFC 5282 section 4
_GCM: dict[int, int] = {EncrId.AES_GCM_8: 8, EncrId.AES_GCM_12: 12, EncrId.AES_GCM_16: 16}
_GCM_SALT = 4
_SALT: dict[int, int] = {EncrId.AES_CTR: _CTR_NONCE, **dict.fromkeys(_CCM, _CCM_SALT), **dict.fromkeys(_GCM, _GCM_SALT)}


def encr_key_size(encr_id: int, key_bits: int | None) -> int:
    """SK_ei / SK_er length: the cipher key plus any salt or nonce the mode
    takes from the key material (CTR 4, CCM 3, GCM 4 bytes)."""
    if encr_id == EncrId.NULL:
        return 0
    if encr_id == EncrId.DES3:
        if key_bits not in (None, 192):
            raise UnsupportedIkev2Algorithm(f"3DES takes no key length, got {key_bits}")
        return 24
    if encr_id not in (EncrId.AES_CBC, EncrId.AES_CTR, *_CCM, *_GCM):
        raise UnsupportedIkev2Algorithm(f"unsupported IKEv2 encryption algorithm {encr_id}")
    if key_bits not in (128, 192, 256):
        raise UnsupportedIkev2Algorithm(f"AES needs a key length of 128, 192 or 256 bits, got {key_bits}")
    return key_bits // 8 + _SALT.get(encr_id, 0)


def constant_time_equal(a: bytes, b: bytes) -> bool:
    """Compare MACs (ICVs, AUTH payloads) without leaking where they differ."""
    return constant_time.bytes_eq(a, b)


class IntegrityError(ValueError):
    """The ICV of an Encrypted payload does not verify (or decryption failed)."""


@dataclass(frozen=True, slots=True)
class SkCipher:
    """The negotiated protection of the Encrypted payload (RFC 7296 3.14).

    ``integ`` is NONE for the AEAD ciphers (RFC 5282 section 8). With
    ``check_icv=False`` an ICV of ``icv_override`` bytes is skipped and not
    verified (Wireshark's "ANY n-bits of Authentication [No Checking]").
    """

    encr: int
    key_bits: int | None = None
    integ: int = IntegId.NONE
    icv_override: int | None = None
    check_icv: bool = True

    def __post_init__(self) -> None:
        encr_key_size(self.encr, self.key_bits)
        if self.is_aead and self.integ != IntegId.NONE:
            raise UnsupportedIkev2Algorithm(f"encryption {self.encr} is combined mode: integrity must be NONE")
        if self.integ != IntegId.NONE:
            integ_icv_size(self.integ)

    @property
    def is_aead(self) -> bool:
        """True for the combined-mode ciphers (CCM, GCM)."""
        return self.encr in _CCM or self.encr in _GCM

    @property
    def encr_key_bytes(self) -> int:
        """Length of SK_ei / SK_er."""
        return encr_key_size(self.encr, self.key_bits)

    @property
    def integ_key_bytes(self) -> int:
        """Length of SK_ai / SK_ar."""
        return integ_key_size(self.integ)

    @property
    def iv_size(self) -> int:
        """Bytes of IV at the start of the Encrypted payload."""
        if self.encr == EncrId.NULL:
            return 0
        return _CBC.get(self.encr, 8)

    @property
    def block_size(self) -> int:
        """The plaintext must be a multiple of this (padding included)."""
        return _CBC.get(self.encr, 1)

    @property
    def icv_size(self) -> int:
        """Bytes of ICV at the end of the Encrypted payload."""
        if self.icv_override is not None:
            return self.icv_override
        if self.encr in _CCM:
            return _CCM[self.encr]
        if self.encr in _GCM:
            return _GCM[self.encr]
        return integ_icv_size(self.integ)

    def padded(self, inner: bytes) -> bytes:
        """The payload chain with zero padding and the Pad Length byte."""
        pad = -(len(inner) + 1) % self.block_size
        return inner + bytes(pad) + bytes([pad])

    def body_length(self, inner_length: int) -> int:
        """Length of IV | ciphertext | ICV for an inner chain of that length."""
        return self.iv_size + len(self.padded(bytes(inner_length))) + self.icv_size

    def seal(self, key_e: bytes, key_a: bytes, iv: bytes, aad: bytes, inner: bytes) -> bytes:
        """IV | ciphertext | ICV for the inner payload chain. ``aad`` is the
        IKE header and SK payload header with their final lengths."""
        if len(iv) != self.iv_size:
            raise ValueError(f"IV must be {self.iv_size} bytes, got {len(iv)}")
        plain = self.padded(inner)
        if self.is_aead:
            return iv + self._aead_seal(key_e, iv, plain, aad)
        ct = self._crypt(key_e, iv, plain, encrypt=True)
        icv = integ_icv(self.integ, key_a, aad + iv + ct) if self.integ != IntegId.NONE else b""
        return iv + ct + icv

    def open(self, key_e: bytes, key_a: bytes, aad: bytes, body: bytes) -> bytes:
        """The inner payload chain (padding removed) of an Encrypted payload
        body; :class:`IntegrityError` if the ICV is wrong or it is malformed."""
        n_iv, n_icv = self.iv_size, self.icv_size
        if len(body) < n_iv + n_icv + 1:
            raise IntegrityError(f"encrypted payload of {len(body)} bytes is shorter than IV, ICV and pad length")
        iv, ct, icv = body[:n_iv], body[n_iv : len(body) - n_icv], body[len(body) - n_icv :]
        if self.is_aead:
            plain = self._aead_open(key_e, iv, ct, icv, aad)
        else:
            if self.check_icv and self.integ != IntegId.NONE:
                expected = integ_icv(self.integ, key_a, aad + iv + ct)
                if not constant_time.bytes_eq(expected, icv):
                    raise IntegrityError("ICV does not verify (wrong SK_a or corrupted message)")
            if len(ct) % self.block_size:
                raise IntegrityError(f"ciphertext of {len(ct)} bytes is not a multiple of {self.block_size}")
            plain = self._crypt(key_e, iv, ct, encrypt=False)
        pad = plain[-1]
        if pad + 1 > len(plain):
            raise IntegrityError(f"pad length {pad} exceeds the {len(plain)} decrypted bytes")
        return plain[: len(plain) - pad - 1]

    def _check_key(self, key_e: bytes) -> None:
        if len(key_e) != self.encr_key_bytes:
            raise ValueError(f"encryption key must be {self.encr_key_bytes} bytes, got {len(key_e)}")

    def _crypt(self, key_e: bytes, iv: bytes, data: bytes, encrypt: bool) -> bytes:
        self._check_key(key_e)
        if self.encr == EncrId.NULL:
            return data
        if self.encr in _CBC:
            v1 = EncryptionAlgorithm.AES_CBC if self.encr == EncrId.AES_CBC else EncryptionAlgorithm.DES3_CBC
            cbc = ike_cipher(v1)
            return cbc.encrypt(key_e, iv, data) if encrypt else cbc.decrypt(key_e, iv, data)
        # AES-CTR (RFC 5930 section 2): counter block = nonce | IV | 1
        nonce = key_e[-_CTR_NONCE:]
        ctx = Cipher(algorithms.AES(key_e[:-_CTR_NONCE]), modes.CTR(nonce + iv + b"\x00\x00\x00\x01"))
        op = ctx.encryptor() if encrypt else ctx.decryptor()
        return op.update(data) + op.finalize()

    def _aead_seal(self, key_e: bytes, iv: bytes, plain: bytes, aad: bytes) -> bytes:
        self._check_key(key_e)
        if self.encr in _GCM:
            return GcmCipher(EspTransformId(int(self.encr)), key_e).seal(iv, plain, aad)
        ccm = AESCCM(key_e[:-_CCM_SALT], tag_length=_CCM[self.encr])
        return ccm.encrypt(key_e[-_CCM_SALT:] + iv, plain, aad)

    def _aead_open(self, key_e: bytes, iv: bytes, ct: bytes, icv: bytes, aad: bytes) -> bytes:
        self._check_key(key_e)
        if self.encr in _GCM:
            plain = GcmCipher(EspTransformId(int(self.encr)), key_e).open(iv, ct + icv, aad)
            if plain is None:
                raise IntegrityError("AES-GCM ICV does not verify")
            return plain
        ccm = AESCCM(key_e[:-_CCM_SALT], tag_length=_CCM[self.encr])
        try:
            return ccm.decrypt(key_e[-_CCM_SALT:] + iv, ct + icv, aad)
        except InvalidTag:
            raise IntegrityError("AES-CCM ICV does not verify") from None
