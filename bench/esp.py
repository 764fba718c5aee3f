"""Benchmark the ESP data plane against the bare ``cryptography`` calls it needs.

For payloads of 64, 512 and 1400 bytes and for ``esp-aes esp-sha256-hmac``
(the seed's transform set) and AES-GCM-128 with a 16-byte ICV, measure in one
process:

* ``encap_pps`` / ``decap_pps``: :func:`dmvpn.ipsec.esp.encapsulate` and
  :func:`~dmvpn.ipsec.esp.decapsulate` on installed SAs (sequence numbers,
  padding, replay window, counters and volume accounting included);
* ``bare_crypto_encap_pps`` / ``bare_crypto_decap_pps``: only the
  ``cryptography`` calls the transform needs per packet, on reused contexts
  (CBC: one cipher update and one HMAC copy/update/finalize/compare; GCM:
  one AESGCM encrypt or decrypt).

Each row runs the four loops interleaved for several rounds and keeps the
best round of each, so load from other processes hits both figures alike.
Prints one JSON list. Usage: ``python bench/esp.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable

from cryptography.hazmat.primitives import constant_time, hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from dmvpn.crypto.esp_algorithms import EspAuthAlgorithm, EspTransform, EspTransformId
from dmvpn.ipsec.esp import decapsulate, encapsulate
from dmvpn.ipsec.sa import SaDirection, SaLifetime, SecurityAssociation
from dmvpn.ipsec.sad import SecurityAssociationDatabase
from dmvpn.runtime.randomness import SystemRandomSource

PAYLOADS = (64, 512, 1400)
POOL = 20000  # packets per timed loop
TRANSFORMS = {
    "esp-aes esp-sha256-hmac": EspTransform(EspTransformId.ESP_AES_CBC, 128, EspAuthAlgorithm.HMAC_SHA2_256),
    "esp-gcm (AES-GCM-128, 16-byte ICV)": EspTransform(EspTransformId.ESP_AES_GCM_16, 128, EspAuthAlgorithm.NONE),
}


def per_second(loop: Callable[[], None]) -> float:
    """Packets per second of ``loop`` (which handles ``POOL`` packets)."""
    t0 = time.perf_counter()
    loop()
    return POOL / (time.perf_counter() - t0)


def bare_loops(
    tf: EspTransform, ek: bytes, ak: bytes, payload: bytes, pool: list[bytes]
) -> tuple[Callable[[], None], Callable[[], None]]:
    """(encrypt loop, decrypt loop) doing only the ``cryptography`` calls;
    the decrypt loop walks packets of the same size as ours."""
    n = len(payload)
    if tf.is_aead:
        aead = AESGCM(ek[:-4])
        nonce, aad = os.urandom(12), os.urandom(8)
        plain = payload + bytes(-(n + 2) % 4 + 2)
        sealed = [aead.encrypt(nonce, plain, aad) for _ in range(POOL)]

        def gcm_encap() -> None:
            for _ in range(POOL):
                aead.encrypt(nonce, plain, aad)

        def gcm_decap() -> None:
            for ct in sealed:
                aead.decrypt(nonce, ct, aad)

        return gcm_encap, gcm_decap

    zero = bytes(16)
    enc = Cipher(algorithms.AES(ek), modes.CBC(zero)).encryptor()
    dec = Cipher(algorithms.AES(ek), modes.CBC(zero)).decryptor()
    mac = hmac.HMAC(ak, hashes.SHA256())
    block = os.urandom(16) + payload + bytes(-(n + 2) % 16 + 2)
    cbc_pool = [p[8:-16] for p in pool]  # IV..ciphertext, whole blocks
    icv = bytes(16)

    def cbc_encap() -> None:
        for _ in range(POOL):
            h = mac.copy()
            h.update(enc.update(block))
            h.finalize()

    def cbc_decap() -> None:
        for body in cbc_pool:
            h = mac.copy()
            h.update(body)
            constant_time.bytes_eq(h.finalize()[:16], icv)
            dec.update(body)

    return cbc_encap, cbc_decap


def measure(name: str, tf: EspTransform, size: int, rounds: int) -> dict[str, object]:
    """One row of the table."""
    ek, ak = os.urandom(tf.encryption_key_bytes), os.urandom(tf.integrity_key_bytes)
    sad = SecurityAssociationDatabase(SystemRandomSource())
    unlimited = SaLifetime(None, None, None, None)

    def new_sa(spi: int, direction: SaDirection) -> SecurityAssociation:
        sa = SecurityAssociation(spi=spi, direction=direction, peer="192.0.2.2", local="192.0.2.1",
                                 transform=tf, encryption_key=ek, integrity_key=ak, lifetime=unlimited)
        return sad.install(0.0, sa)

    out_sa = new_sa(0x1001, SaDirection.OUTBOUND)
    payload = os.urandom(size)
    # distinct, in-order packets; each round decapsulates them on a fresh SA
    pool = [encapsulate(out_sa, 1.0, payload, 47) for _ in range(POOL)]
    bare_encap, bare_decap = bare_loops(tf, ek, ak, payload, pool)

    def encap_loop() -> None:
        for _ in range(POOL):
            encapsulate(out_sa, 1.0, payload, 47)

    best = {"encap": 0.0, "decap": 0.0, "bare_e": 0.0, "bare_d": 0.0}
    for r in range(rounds):
        in_sa = new_sa(0x2000 + r, SaDirection.INBOUND)

        def decap_loop(in_sa: SecurityAssociation = in_sa) -> None:  # this round's SA
            for packet in pool:
                decapsulate(in_sa, 1.0, packet)

        for key, loop in (("encap", encap_loop), ("bare_e", bare_encap), ("decap", decap_loop), ("bare_d", bare_decap)):
            best[key] = max(best[key], per_second(loop))
    return {
        "transform": name,
        "payload_bytes": size,
        "encap_pps": round(best["encap"]),
        "decap_pps": round(best["decap"]),
        "bare_crypto_encap_pps": round(best["bare_e"]),
        "bare_crypto_decap_pps": round(best["bare_d"]),
        "encap_vs_bare": round(best["encap"] / best["bare_e"], 2),
        "decap_vs_bare": round(best["decap"] / best["bare_d"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per row (default 5)")
    args = parser.parse_args()
    rows = [measure(name, tf, size, args.rounds) for name, tf in TRANSFORMS.items() for size in PAYLOADS]
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
