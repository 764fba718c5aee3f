"""Diffie-Hellman groups for IKE, by their IKE group number.

MODP groups 1, 2 (RFC 2409 section 6), 5 and 14-18 (RFC 3526); ECP groups
19, 20, 21 (RFC 5903). Public values are fixed length: a MODP KE is g^x mod p
padded to the prime's length; an ECP KE is x | y (RFC 5903 section 7) and the
shared secret is the x coordinate alone (RFC 5903 section 9).

The private value is drawn from an injected :class:`RandomSource`, so the lab
can be deterministic; the arithmetic is done by ``cryptography``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from enum import IntEnum

from cryptography.exceptions import UnsupportedAlgorithm as _CryptoUnsupported
from cryptography.hazmat.primitives.asymmetric import dh, ec

from dmvpn.crypto.modp_primes import MODP_GENERATOR, MODP_PRIMES
from dmvpn.sansio import RandomSource


class DhGroup(IntEnum):
    """Phase-1 attribute 4 / phase-2 attribute 3 values (IANA IPsec registry)."""

    MODP_768 = 1
    MODP_1024 = 2
    MODP_1536 = 5
    MODP_2048 = 14
    MODP_3072 = 15
    MODP_4096 = 16
    MODP_6144 = 17
    MODP_8192 = 18
    ECP_256 = 19
    ECP_384 = 20
    ECP_521 = 21


class UnsupportedGroup(ValueError):
    """A DH group number this implementation does not provide."""


class InvalidPublicValue(ValueError):
    """A peer's KE data is not a valid public value for the group."""


_CURVES: dict[int, ec.EllipticCurve] = {
    19: ec.SECP256R1(),
    20: ec.SECP384R1(),
    21: ec.SECP521R1(),
}


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """Static description of a group: number and public-value length."""

    group: DhGroup
    public_length: int
    secret_length: int


def group_info(group: int) -> GroupInfo:
    """Sizes for IKE group ``group``; raises UnsupportedGroup."""
    try:
        g = DhGroup(group)
    except ValueError:
        raise UnsupportedGroup(f"unsupported DH group {group}") from None
    if g in MODP_PRIMES:
        n = (MODP_PRIMES[g].bit_length() + 7) // 8
        return GroupInfo(g, n, n)
    size = (_CURVES[g].key_size + 7) // 8
    return GroupInfo(g, 2 * size, size)


class DhKeyPair:
    """One side's ephemeral DH key for a group, made from injected randomness.

    ``public_value`` is the KE payload data; :meth:`shared_secret` gives g^xy
    as IKE uses it (MODP: padded to the prime length; ECP: x coordinate).
    """

    def __init__(self, group: int, private_value: int) -> None:
        self.info = group_info(group)
        self.group = self.info.group
        if self.group in MODP_PRIMES:
            self._init_modp(private_value)
        else:
            self._ec_key = ec.derive_private_key(private_value, _CURVES[self.group])
            pub = self._ec_key.public_key().public_numbers()
            size = self.info.secret_length
            self.public_value = pub.x.to_bytes(size, "big") + pub.y.to_bytes(size, "big")

    def _init_modp(self, x: int) -> None:
        p = MODP_PRIMES[self.group]
        # cryptography deprecates FFDH; IKEv1 interop still needs MODP groups.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            params = dh.DHParameterNumbers(p, MODP_GENERATOR)
            # The library computes g^x mod p: exchange x with the "public key" g.
            seed = dh.DHPrivateNumbers(x, dh.DHPublicNumbers(MODP_GENERATOR, params)).private_key()
            y = int.from_bytes(seed.exchange(dh.DHPublicNumbers(MODP_GENERATOR, params).public_key()), "big")
            self._dh_key = dh.DHPrivateNumbers(x, dh.DHPublicNumbers(y, params)).private_key()
            self._params = params
        self.public_value = y.to_bytes(self.info.public_length, "big")

    @classmethod
    def generate(cls, group: int, random: RandomSource) -> DhKeyPair:
        """A fresh key pair whose private value comes from ``random``.

        MODP: x is taken from as many random bytes as the prime has and
        reduced into [2, p-2]. ECP: the scalar is drawn by rejection sampling
        (bytes of the curve size, masked to the order's bit length, redrawn if
        the library rejects them as out of range).
        """
        info = group_info(group)
        if info.group in MODP_PRIMES:
            p = MODP_PRIMES[info.group]
            x = int.from_bytes(random.token_bytes(info.public_length), "big") % (p - 3) + 2
            return cls(group, x)
        curve = _CURVES[info.group]
        bits = curve.key_size
        while True:
            raw = int.from_bytes(random.token_bytes(info.secret_length), "big")
            scalar = raw & ((1 << bits) - 1)
            if scalar == 0:
                continue
            try:
                return cls(group, scalar)
            except ValueError:
                continue

    def shared_secret(self, peer_public: bytes) -> bytes:
        """g^xy for the peer's KE data; raises InvalidPublicValue if it is bad."""
        if len(peer_public) != self.info.public_length:
            raise InvalidPublicValue(
                f"group {int(self.group)}: KE of {len(peer_public)} bytes, expected {self.info.public_length}"
            )
        if self.group in MODP_PRIMES:
            y = int.from_bytes(peer_public, "big")
            p = MODP_PRIMES[self.group]
            if not 1 < y < p - 1:
                raise InvalidPublicValue(f"group {int(self.group)}: public value out of range")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    peer = dh.DHPublicNumbers(y, self._params).public_key()
                    secret = self._dh_key.exchange(peer)
                except (ValueError, _CryptoUnsupported) as exc:
                    raise InvalidPublicValue(f"group {int(self.group)}: {exc}") from None
            return secret.rjust(self.info.secret_length, b"\x00")
        try:
            peer_key = ec.EllipticCurvePublicKey.from_encoded_point(_CURVES[self.group], b"\x04" + peer_public)
            return self._ec_key.exchange(ec.ECDH(), peer_key)
        except ValueError as exc:
            raise InvalidPublicValue(f"group {int(self.group)}: {exc}") from None
