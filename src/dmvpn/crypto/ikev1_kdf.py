"""IKEv1 key derivation, authentication hashes and IVs for pre-shared keys.

Everything here is RFC 2409: section 5 (SKEYID and its three children,
HASH_I/HASH_R), 5.4 (pre-shared key SKEYID), 5.5 (Quick Mode HASH(1..3) and
KEYMAT, with and without PFS), 5.7 (Informational HASH(1)) and appendix B
(encryption key expansion, phase-1 and per-exchange IVs); plus NAT-D from
RFC 3947 section 3.2. ``alg`` is always the negotiated phase-1 hash number
(:class:`dmvpn.crypto.ike_algorithms.HashAlgorithm`).
"""

from __future__ import annotations

from dataclasses import dataclass

from dmvpn.crypto.ike_algorithms import hash_bytes, prf


def _mid(message_id: int) -> bytes:
    return message_id.to_bytes(4, "big")


@dataclass(frozen=True, slots=True)
class Ikev1Keys:
    """SKEYID and its derivatives for one ISAKMP SA (RFC 2409 section 5)."""

    skeyid: bytes
    skeyid_d: bytes
    skeyid_a: bytes
    skeyid_e: bytes


def skeyid_psk(alg: int, psk: bytes, ni_b: bytes, nr_b: bytes) -> bytes:
    """SKEYID = prf(pre-shared-key, Ni_b | Nr_b) (RFC 2409 section 5)."""
    return prf(alg, psk, ni_b + nr_b)


def derive_keys(alg: int, skeyid: bytes, g_xy: bytes, cky_i: bytes, cky_r: bytes) -> Ikev1Keys:
    """SKEYID_d, SKEYID_a, SKEYID_e from SKEYID (RFC 2409 section 5).

    SKEYID_d = prf(SKEYID, g^xy | CKY-I | CKY-R | 0)
    SKEYID_a = prf(SKEYID, SKEYID_d | g^xy | CKY-I | CKY-R | 1)
    SKEYID_e = prf(SKEYID, SKEYID_a | g^xy | CKY-I | CKY-R | 2)
    """
    tail = g_xy + cky_i + cky_r
    d = prf(alg, skeyid, tail + b"\x00")
    a = prf(alg, skeyid, d + tail + b"\x01")
    e = prf(alg, skeyid, a + tail + b"\x02")
    return Ikev1Keys(skeyid, d, a, e)


def derive_keys_psk(
    alg: int, psk: bytes, ni_b: bytes, nr_b: bytes, g_xy: bytes, cky_i: bytes, cky_r: bytes
) -> Ikev1Keys:
    """The whole pre-shared-key derivation: SKEYID then its children."""
    return derive_keys(alg, skeyid_psk(alg, psk, ni_b, nr_b), g_xy, cky_i, cky_r)


def encryption_key(alg: int, skeyid_e: bytes, key_size: int) -> bytes:
    """The phase-1 cipher key from SKEYID_e (RFC 2409 appendix B).

    If SKEYID_e is long enough its leading bytes are used; otherwise
    Ka = K1 | K2 | ... with K1 = prf(SKEYID_e, 0) and Kn = prf(SKEYID_e, Kn-1).
    """
    if len(skeyid_e) >= key_size:
        return skeyid_e[:key_size]
    out = b""
    block = b"\x00"
    while len(out) < key_size:
        block = prf(alg, skeyid_e, block)
        out += block
    return out[:key_size]


def phase1_iv(alg: int, g_xi: bytes, g_xr: bytes, block_size: int) -> bytes:
    """IV for the first encrypted phase-1 message: hash(g^xi | g^xr) (appendix B)."""
    return hash_bytes(alg, g_xi + g_xr)[:block_size]


def exchange_iv(alg: int, last_phase1_block: bytes, message_id: int, block_size: int) -> bytes:
    """IV for a Quick Mode or Informational exchange (RFC 2409 appendix B):
    hash(last phase-1 CBC output block | M-ID), cut to the block size."""
    return hash_bytes(alg, last_phase1_block + _mid(message_id))[:block_size]


def hash_i(
    alg: int, skeyid: bytes, g_xi: bytes, g_xr: bytes, cky_i: bytes, cky_r: bytes, sai_b: bytes, idii_b: bytes
) -> bytes:
    """HASH_I = prf(SKEYID, g^xi | g^xr | CKY-I | CKY-R | SAi_b | IDii_b) (section 5).

    ``sai_b`` is the initiator's SA payload body and ``idii_b`` the ID payload
    body, both without their generic headers."""
    return prf(alg, skeyid, g_xi + g_xr + cky_i + cky_r + sai_b + idii_b)


def hash_r(
    alg: int, skeyid: bytes, g_xi: bytes, g_xr: bytes, cky_i: bytes, cky_r: bytes, sai_b: bytes, idir_b: bytes
) -> bytes:
    """HASH_R = prf(SKEYID, g^xr | g^xi | CKY-R | CKY-I | SAi_b | IDir_b) (section 5)."""
    return prf(alg, skeyid, g_xr + g_xi + cky_r + cky_i + sai_b + idir_b)


def quick_mode_hash1(alg: int, skeyid_a: bytes, message_id: int, rest: bytes) -> bytes:
    """HASH(1) = prf(SKEYID_a, M-ID | SA | Ni [| KE] [| IDci | IDcr]) (section 5.5).

    ``rest`` is every payload after the HASH payload, generic headers included,
    exactly as sent."""
    return prf(alg, skeyid_a, _mid(message_id) + rest)


def quick_mode_hash2(alg: int, skeyid_a: bytes, message_id: int, ni_b: bytes, rest: bytes) -> bytes:
    """HASH(2) = prf(SKEYID_a, M-ID | Ni_b | SA | Nr [| KE] [| IDci | IDcr]) (section 5.5)."""
    return prf(alg, skeyid_a, _mid(message_id) + ni_b + rest)


def quick_mode_hash3(alg: int, skeyid_a: bytes, message_id: int, ni_b: bytes, nr_b: bytes) -> bytes:
    """HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b) (section 5.5)."""
    return prf(alg, skeyid_a, b"\x00" + _mid(message_id) + ni_b + nr_b)


def informational_hash(alg: int, skeyid_a: bytes, message_id: int, rest: bytes) -> bytes:
    """Informational HASH(1) = prf(SKEYID_a, M-ID | N/D) (section 5.7).

    ``rest`` is the notify or delete payload(s) after the HASH, as sent."""
    return prf(alg, skeyid_a, _mid(message_id) + rest)


def keymat(
    alg: int,
    skeyid_d: bytes,
    protocol: int,
    spi: bytes,
    ni_b: bytes,
    nr_b: bytes,
    length: int,
    g_qm_xy: bytes | None = None,
) -> bytes:
    """KEYMAT for one SA direction (RFC 2409 section 5.5).

    Without PFS: KEYMAT = prf(SKEYID_d, protocol | SPI | Ni_b | Nr_b); with
    PFS g(qm)^xy is prepended to the data. Expanded to ``length`` bytes as
    K1 | K2 | ... with Kn = prf(SKEYID_d, Kn-1 | seed). ``spi`` is the SPI of
    the SA being keyed (the receiver's), ``protocol`` its protocol ID.
    """
    seed = (g_qm_xy or b"") + bytes([protocol]) + spi + ni_b + nr_b
    out = b""
    block = b""
    while len(out) < length:
        block = prf(alg, skeyid_d, block + seed)
        out += block
    return out[:length]


def nat_d_hash(alg: int, cky_i: bytes, cky_r: bytes, address: bytes, port: int) -> bytes:
    """NAT-D = HASH(CKY-I | CKY-R | IP | Port) (RFC 3947 section 3.2)."""
    return hash_bytes(alg, cky_i + cky_r + address + port.to_bytes(2, "big"))
