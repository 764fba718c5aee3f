"""IKEv2 key derivation and pre-shared-key authentication (RFC 7296).

* SKEYSEED = prf(Ni | Nr, g^ir) and the seven keys
  {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} =
  prf+(SKEYSEED, Ni | Nr | SPIi | SPIr) (section 2.14).
* Rekeyed IKE SA: SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr) (2.18).
* CHILD_SA KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr), cut in the order
  initiator-to-responder encryption, integrity, then the other direction
  (2.17).
* NAT detection: SHA-1(SPIi | SPIr | IP | port) (2.23).
* AUTH for a shared key: prf(prf(Shared Secret, "Key Pad for IKEv2"),
  <SignedOctets>), where the signed octets are the sender's first message,
  the peer's nonce and prf(SK_px, ID payload body) (2.15).

The PRF and its key/output sizes come from :mod:`dmvpn.crypto.ikev2_algorithms`.
"""

from __future__ import annotations

from dataclasses import dataclass

from dmvpn.crypto.ike_algorithms import HashAlgorithm, hash_bytes
from dmvpn.crypto.ikev2_algorithms import PrfId, prf, prf_plus, prf_size

KEY_PAD = b"Key Pad for IKEv2"  # RFC 7296 section 2.15


@dataclass(frozen=True, slots=True)
class Ikev2Keys:
    """The keys of one IKE SA (RFC 7296 section 2.14)."""

    sk_d: bytes
    sk_ai: bytes
    sk_ar: bytes
    sk_ei: bytes
    sk_er: bytes
    sk_pi: bytes
    sk_pr: bytes


def prf_nonce_key(prf_id: int, ni: bytes, nr: bytes) -> bytes:
    """The PRF key Ni | Nr; the AES PRFs key with the first 8 bytes of each
    nonce (RFC 7296 section 2.14: "only the first 64 bits of Ni and Nr")."""
    if prf_id in (PrfId.AES128_XCBC, PrfId.AES128_CMAC):
        return ni[:8] + nr[:8]
    return ni + nr


def skeyseed(prf_id: int, ni: bytes, nr: bytes, g_ir: bytes) -> bytes:
    """SKEYSEED = prf(Ni | Nr, g^ir) (RFC 7296 section 2.14)."""
    return prf(prf_id, prf_nonce_key(prf_id, ni, nr), g_ir)


def rekey_skeyseed(prf_id: int, old_sk_d: bytes, g_ir_new: bytes, ni: bytes, nr: bytes) -> bytes:
    """SKEYSEED of a rekeyed IKE SA = prf(SK_d (old), g^ir (new) | Ni | Nr)
    (RFC 7296 section 2.18), with the nonces of the CREATE_CHILD_SA exchange."""
    return prf(prf_id, old_sk_d, g_ir_new + ni + nr)


def derive_ike_keys(
    prf_id: int,
    seed: bytes,
    ni: bytes,
    nr: bytes,
    spi_i: bytes,
    spi_r: bytes,
    integ_key_bytes: int,
    encr_key_bytes: int,
) -> Ikev2Keys:
    """SK_d, SK_ai, SK_ar, SK_ei, SK_er, SK_pi, SK_pr from SKEYSEED (2.14).

    SK_d, SK_pi and SK_pr are the PRF's preferred key length (its output
    size); the others are what the negotiated integrity and encryption
    algorithms take (0 for an AEAD cipher's integrity keys)."""
    n = prf_size(prf_id)
    sizes = (n, integ_key_bytes, integ_key_bytes, encr_key_bytes, encr_key_bytes, n, n)
    stream = prf_plus(prf_id, seed, ni + nr + spi_i + spi_r, sum(sizes))
    parts = []
    at = 0
    for size in sizes:
        parts.append(stream[at : at + size])
        at += size
    return Ikev2Keys(*parts)


@dataclass(frozen=True, slots=True)
class ChildKeys:
    """KEYMAT of one CHILD_SA cut per direction (RFC 7296 section 2.17):
    ``*_i`` protect initiator-to-responder traffic, ``*_r`` the reverse."""

    encr_i: bytes
    integ_i: bytes
    encr_r: bytes
    integ_r: bytes


def child_keymat(
    prf_id: int,
    sk_d: bytes,
    ni: bytes,
    nr: bytes,
    encr_key_bytes: int,
    integ_key_bytes: int,
    g_ir_new: bytes = b"",
) -> ChildKeys:
    """KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr) (RFC 7296 section 2.17):
    encryption key then integrity key for the initiator's direction, then
    the responder's. ``g_ir_new`` is the shared secret of a
    CREATE_CHILD_SA with PFS; empty otherwise."""
    per_dir = encr_key_bytes + integ_key_bytes
    km = prf_plus(prf_id, sk_d, g_ir_new + ni + nr, 2 * per_dir)
    return ChildKeys(
        km[:encr_key_bytes],
        km[encr_key_bytes:per_dir],
        km[per_dir : per_dir + encr_key_bytes],
        km[per_dir + encr_key_bytes :],
    )


def signed_octets(prf_id: int, first_message: bytes, peer_nonce: bytes, sk_p: bytes, id_body: bytes) -> bytes:
    """<InitiatorSignedOctets> or <ResponderSignedOctets> (RFC 7296 2.15):
    the sender's IKE_SA_INIT message, the peer's nonce data, and
    prf(SK_pi or SK_pr, the sender's ID payload body without its generic
    header)."""
    return first_message + peer_nonce + prf(prf_id, sk_p, id_body)


def psk_auth(prf_id: int, shared_secret: bytes, octets: bytes) -> bytes:
    """AUTH = prf(prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>)
    for authentication method 2, Shared Key Message Integrity Code (2.15)."""
    return prf(prf_id, prf(prf_id, shared_secret, KEY_PAD), octets)


def nat_detection_hash(spi_i: bytes, spi_r: bytes, address: bytes, port: int) -> bytes:
    """The data of NAT_DETECTION_SOURCE_IP / _DESTINATION_IP: SHA-1 of the
    SPIs (SPIr zero in the first request), the packed IP address and the
    port (RFC 7296 section 2.23)."""
    return hash_bytes(HashAlgorithm.SHA, spi_i + spi_r + address + port.to_bytes(2, "big"))
