"""Sealing and opening the messages of an established IKE SA (RFC 7296
3.14): the sender's SK_e/SK_a pair, a fresh IV from the injected
randomness, and the check that a received message really was encrypted."""

from __future__ import annotations

from dmvpn.ike.v2.sa_init import IkeSaState
from dmvpn.sansio import RandomSource
from dmvpn.wire.errors import DecodeError
from dmvpn.wire.ikev2 import Ikev2Message, decrypt_message, encrypt_message


def seal(sa: IkeSaState, msg: Ikev2Message, random: RandomSource) -> bytes:
    """``msg`` with its payloads inside an SK payload, under our keys."""
    keys, algs = sa.keys, sa.algorithms
    assert keys is not None and algs is not None, "IKE_SA_INIT must be done"
    ke, ka = (keys.sk_ei, keys.sk_ai) if sa.initiator else (keys.sk_er, keys.sk_ar)
    return encrypt_message(msg, algs.cipher, ke, ka, random.token_bytes(algs.cipher.iv_size))


def open_message(sa: IkeSaState, data: bytes) -> Ikev2Message:
    """The decrypted message from the peer; DecodeError if it is not one
    of this SA's (SPIs), was not encrypted, or does not verify."""
    keys, algs = sa.keys, sa.algorithms
    assert keys is not None and algs is not None, "IKE_SA_INIT must be done"
    ke, ka = (keys.sk_er, keys.sk_ar) if sa.initiator else (keys.sk_ei, keys.sk_ai)
    msg = decrypt_message(data, algs.cipher, ke, ka)
    if (msg.spi_i, msg.spi_r) != (sa.spi_i, sa.spi_r):
        raise DecodeError(0, "message of another IKE SA")
    if msg.inner is None:
        raise DecodeError(0, "message without an Encrypted payload")
    return msg
