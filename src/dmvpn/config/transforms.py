"""``crypto ipsec transform-set NAME T1 [T2 [T3]]``: the transform list.

A set holds at most one ESP cipher and one ESP integrity transform (IOS
rejects two of either); the combined-mode ciphers AES-GCM (RFC 4106) and
AES-GMAC (RFC 4543) carry their own ICV and take no integrity transform. A
set with an integrity transform and no cipher is ESP with NULL encryption
(RFC 2410)."""

from __future__ import annotations

from dataclasses import dataclass

from dmvpn.config.algorithms import (
    ESP_AUTH_NAMES,
    ESP_CIPHER_NAMES,
    EspAuthAlgorithm,
    EspTransformId,
)
from dmvpn.config.values import LineError

_UNSUPPORTED = {
    "esp-des": "single DES is not supported",
    "esp-seal": "SEAL is not supported",
    "ah-md5-hmac": "AH is not supported (ESP only)",
    "ah-sha-hmac": "AH is not supported (ESP only)",
    "ah-sha256-hmac": "AH is not supported (ESP only)",
    "ah-sha384-hmac": "AH is not supported (ESP only)",
    "ah-sha512-hmac": "AH is not supported (ESP only)",
    "comp-lzs": "IP compression is not supported",
}

_COMBINED = (EspTransformId.ESP_AES_GCM_16, EspTransformId.ESP_NULL_AUTH_AES_GMAC)


@dataclass(frozen=True, slots=True)
class TransformList:
    """The parsed transforms of one set."""

    cipher: EspTransformId
    key_bits: int | None
    auth: EspAuthAlgorithm | None
    ios_text: str


def parse_transforms(tokens: list[str]) -> TransformList:
    """Parse the transform words after the set's name."""
    if not tokens:
        raise LineError("transform-set: expected at least one transform (e.g. esp-aes esp-sha256-hmac)")
    cipher: EspTransformId | None = None
    key_bits: int | None = None
    auth: EspAuthAlgorithm | None = None
    cipher_word = ""
    auth_word = ""
    i = 0
    while i < len(tokens):
        name = tokens[i].lower()
        i += 1
        if name in _UNSUPPORTED:
            raise LineError(f"transform '{name}': {_UNSUPPORTED[name]}")
        if name in ESP_CIPHER_NAMES:
            if cipher is not None:
                raise LineError(f"transform '{name}': the set already has an ESP cipher")
            cipher, default_bits, allowed = ESP_CIPHER_NAMES[name]
            key_bits = default_bits
            word = name
            if allowed and i < len(tokens) and tokens[i].isdigit():
                bits = int(tokens[i])
                if bits not in allowed:
                    raise LineError(
                        f"transform '{name}': key size {bits} is not one of {'|'.join(map(str, allowed))}"
                    )
                key_bits = bits
                i += 1
                # As show output prints it: "esp-aes", "esp-256-aes", "esp-gcm 256".
                if bits != default_bits:
                    word = f"esp-{bits}-aes" if name == "esp-aes" else f"{name} {bits}"
            cipher_word = word
        elif name in ESP_AUTH_NAMES:
            if auth is not None:
                raise LineError(f"transform '{name}': the set already has an ESP integrity transform")
            auth = ESP_AUTH_NAMES[name]
            auth_word = name
        else:
            known = " ".join([*ESP_CIPHER_NAMES, *ESP_AUTH_NAMES])
            raise LineError(f"unknown transform '{tokens[i - 1]}', expected one of: {known}")
    if cipher in _COMBINED and auth is not None:
        raise LineError(f"transform-set: {cipher_word} is a combined-mode cipher and takes no integrity transform")
    if cipher is None:
        cipher = EspTransformId.ESP_NULL
    if cipher is EspTransformId.ESP_NULL and auth is None:
        raise LineError("transform-set: esp-null needs an integrity transform (e.g. esp-sha256-hmac)")
    # IOS lists the cipher first whatever order the line used.
    return TransformList(cipher, key_bits, auth, " ".join(w for w in (cipher_word, auth_word) if w))
