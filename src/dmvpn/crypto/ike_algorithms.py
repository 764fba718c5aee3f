"""IKEv1 phase-1 algorithms addressed by their registry numbers.

RFC 2409 appendix A assigns the Oakley attribute values: encryption algorithm
(attribute 1: 5 3DES-CBC, 7 AES-CBC per RFC 3602/IANA) and hash algorithm
(attribute 2: 1 MD5, 2 SHA, 4 SHA2-256, 5 SHA2-384, 6 SHA2-512). The IKEv1
PRF is HMAC with the negotiated hash (RFC 2409 section 4). Every primitive is
from ``cryptography``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

try:  # cryptography >= 43 moved TripleDES to the "decrepit" package
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES


class EncryptionAlgorithm(IntEnum):
    """Phase-1 attribute 1 values (RFC 2409 appendix A; 7 from IANA/RFC 3602)."""

    DES_CBC = 1
    IDEA_CBC = 2
    BLOWFISH_CBC = 3
    RC5_R16_B64_CBC = 4
    DES3_CBC = 5
    CAST_CBC = 6
    AES_CBC = 7
    CAMELLIA_CBC = 8


class HashAlgorithm(IntEnum):
    """Phase-1 attribute 2 values (RFC 2409 appendix A; 4-6 from RFC 4868/IANA)."""

    MD5 = 1
    SHA = 2
    TIGER = 3
    SHA2_256 = 4
    SHA2_384 = 5
    SHA2_512 = 6


class UnsupportedAlgorithm(ValueError):
    """An algorithm number this implementation does not provide."""


_HASHES: dict[HashAlgorithm, type[hashes.HashAlgorithm]] = {
    HashAlgorithm.MD5: hashes.MD5,
    HashAlgorithm.SHA: hashes.SHA1,
    HashAlgorithm.SHA2_256: hashes.SHA256,
    HashAlgorithm.SHA2_384: hashes.SHA384,
    HashAlgorithm.SHA2_512: hashes.SHA512,
}


def _hash_class(alg: int) -> type[hashes.HashAlgorithm]:
    try:
        return _HASHES[HashAlgorithm(alg)]
    except (ValueError, KeyError):
        raise UnsupportedAlgorithm(f"unsupported IKE hash algorithm {alg}") from None


def hash_size(alg: int) -> int:
    """Output length in bytes of hash ``alg`` (and of its HMAC PRF)."""
    return _hash_class(alg)().digest_size


def hash_bytes(alg: int, data: bytes) -> bytes:
    """The negotiated hash itself, as used for the phase-1 IV and NAT-D."""
    h = hashes.Hash(_hash_class(alg)())
    h.update(data)
    return h.finalize()


def prf(alg: int, key: bytes, data: bytes) -> bytes:
    """IKEv1 pseudo-random function: HMAC with the negotiated hash (RFC 2409 s4)."""
    mac = hmac.HMAC(key, _hash_class(alg)())
    mac.update(data)
    return mac.finalize()


@dataclass(frozen=True, slots=True)
class IkeCipher:
    """A CBC block cipher for ISAKMP payload encryption (RFC 2409 appendix B).

    ``key_sizes`` lists the allowed key lengths in bytes; ``default_key_size``
    is used when no Key Length attribute was negotiated.
    """

    algorithm: EncryptionAlgorithm
    block_size: int
    key_sizes: tuple[int, ...]
    default_key_size: int

    def _cipher(self, key: bytes, iv: bytes) -> Cipher[modes.CBC]:
        if len(key) not in self.key_sizes:
            raise ValueError(f"{self.algorithm.name}: key of {len(key)} bytes, expected one of {self.key_sizes}")
        if len(iv) != self.block_size:
            raise ValueError(f"{self.algorithm.name}: IV of {len(iv)} bytes, expected {self.block_size}")
        if self.algorithm is EncryptionAlgorithm.AES_CBC:
            return Cipher(algorithms.AES(key), modes.CBC(iv))
        return Cipher(TripleDES(key), modes.CBC(iv))

    def encrypt(self, key: bytes, iv: bytes, plaintext: bytes) -> bytes:
        """CBC-encrypt ``plaintext`` (already a multiple of the block size)."""
        if len(plaintext) % self.block_size:
            raise ValueError(f"{self.algorithm.name}: plaintext is not a multiple of {self.block_size} bytes")
        enc = self._cipher(key, iv).encryptor()
        return enc.update(plaintext) + enc.finalize()

    def decrypt(self, key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
        """CBC-decrypt ``ciphertext`` (a multiple of the block size)."""
        if len(ciphertext) % self.block_size:
            raise ValueError(f"{self.algorithm.name}: ciphertext is not a multiple of {self.block_size} bytes")
        dec = self._cipher(key, iv).decryptor()
        return dec.update(ciphertext) + dec.finalize()


_CIPHERS: dict[EncryptionAlgorithm, IkeCipher] = {
    EncryptionAlgorithm.AES_CBC: IkeCipher(EncryptionAlgorithm.AES_CBC, 16, (16, 24, 32), 16),
    EncryptionAlgorithm.DES3_CBC: IkeCipher(EncryptionAlgorithm.DES3_CBC, 8, (24,), 24),
}


def ike_cipher(alg: int) -> IkeCipher:
    """The ISAKMP payload cipher for phase-1 encryption algorithm ``alg``."""
    try:
        return _CIPHERS[EncryptionAlgorithm(alg)]
    except (ValueError, KeyError):
        raise UnsupportedAlgorithm(f"unsupported IKE encryption algorithm {alg}") from None


def cipher_key_size(alg: int, key_length_bits: int | None) -> int:
    """Key size in bytes for ``alg`` given the Key Length attribute (14), if any.

    RFC 3602 / RFC 2409 appendix A: AES needs a key length (128 when absent,
    as strongSwan and IOS assume); fixed-size ciphers reject a different one.
    """
    cipher = ike_cipher(alg)
    if key_length_bits is None:
        return cipher.default_key_size
    if key_length_bits % 8 or key_length_bits // 8 not in cipher.key_sizes:
        raise UnsupportedAlgorithm(f"{cipher.algorithm.name}: unsupported key length {key_length_bits} bits")
    return key_length_bits // 8
