"""IKE payload ciphers (AES-CBC, 3DES) and DH groups against the oracles:
RFC 3602/SP 800-38A AES-CBC, RFC 2409/3526 MODP primes, RFC 5903 section 8
ECP exchanges and strongSwan's ECP test vectors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dmvpn.crypto.dh_groups import DhGroup, DhKeyPair, InvalidPublicValue, UnsupportedGroup, group_info
from dmvpn.crypto.ike_algorithms import EncryptionAlgorithm, UnsupportedAlgorithm, cipher_key_size, ike_cipher
from dmvpn.crypto.modp_primes import MODP_PRIMES

VECTORS = Path(__file__).resolve().parents[2] / "shared" / "oracles" / "vectors" / "json"


def _load(name: str) -> list[dict]:
    path = VECTORS / name
    assert path.is_file(), f"oracle missing: {path}"
    return json.loads(path.read_text())


class FixedRandom:
    """A RandomSource replaying given bytes (deterministic private values)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def token_bytes(self, n: int) -> bytes:
        out, self.data = self.data[:n], self.data[n:]
        assert len(out) == n, "FixedRandom ran out"
        return out

    def uniform(self, a: float, b: float) -> float:
        return a


@pytest.mark.parametrize("case", _load("aes_cbc_rfc3602_sp800_38a.json"), ids=lambda c: c["name"])
def test_aes_cbc_vectors(case: dict) -> None:
    c = ike_cipher(EncryptionAlgorithm.AES_CBC)
    key, iv = bytes.fromhex(case["key"]), bytes.fromhex(case["iv"])
    pt, ct = bytes.fromhex(case["plaintext"]), bytes.fromhex(case["ciphertext"])
    assert c.encrypt(key, iv, pt) == ct
    assert c.decrypt(key, iv, ct) == pt


def test_3des_roundtrip_and_key_sizes() -> None:
    c = ike_cipher(5)
    assert c.block_size == 8
    ct = c.encrypt(bytes(range(24)), bytes(8), b"A" * 16)
    assert c.decrypt(bytes(range(24)), bytes(8), ct) == b"A" * 16
    assert cipher_key_size(7, None) == 16 and cipher_key_size(7, 256) == 32
    with pytest.raises(UnsupportedAlgorithm):
        cipher_key_size(7, 100)
    with pytest.raises(UnsupportedAlgorithm):
        ike_cipher(1)


@pytest.mark.parametrize("case", _load("modp_groups_rfc2409_rfc3526.json"), ids=lambda c: str(c["ike_group"]))
def test_modp_primes_and_agreement(case: dict) -> None:
    group = case["ike_group"]
    p = int(case["prime_hex"], 16)
    assert MODP_PRIMES[group] == p and case["generator"] == 2
    assert group_info(group).public_length == case["bits"] // 8
    x, y = 0x1234567 + group, 0xABCDEF0123 + group
    a, b = DhKeyPair(group, x), DhKeyPair(group, y)
    # independent arithmetic oracle (tests only): g^x mod p
    assert a.public_value == pow(2, x, p).to_bytes(case["bits"] // 8, "big")
    assert a.shared_secret(b.public_value) == b.shared_secret(a.public_value) == pow(2, x * y, p).to_bytes(
        case["bits"] // 8, "big")


@pytest.mark.parametrize("case", [c for c in _load("ecp_rfc5903_rfc5114.json") if "ike_group" in c],
                         ids=lambda c: str(c["ike_group"]))
def test_ecp_rfc5903_section8(case: dict) -> None:
    i = DhKeyPair(case["ike_group"], int(case["i"], 16))
    r = DhKeyPair(case["ike_group"], int(case["r"], 16))
    assert i.public_value.hex() == case["gix"] + case["giy"] == case["ike_ke_payload_i"]
    assert r.public_value.hex() == case["grx"] + case["gry"]
    assert i.shared_secret(r.public_value).hex() == case["shared_secret_girx"] == case["girx"]
    assert r.shared_secret(i.public_value).hex() == case["girx"]


@pytest.mark.parametrize("case", [c for c in _load("ecp_rfc5903_rfc5114.json")
                                  if c.get("method") in ("ECP_256_BIT", "ECP_384_BIT", "ECP_521_BIT")],
                         ids=lambda c: c["name"])
def test_ecp_strongswan_vectors(case: dict) -> None:
    group = {"ECP_256_BIT": 19, "ECP_384_BIT": 20, "ECP_521_BIT": 21}[case["method"]]
    seed = bytes.fromhex(case["seed_priv_i_then_r"])
    half = len(seed) // 2
    i = DhKeyPair(group, int.from_bytes(seed[:half], "big"))
    r = DhKeyPair(group, int.from_bytes(seed[half:], "big"))
    assert i.public_value.hex() == case["pub_i"]
    assert r.public_value.hex() == case["pub_r"]
    assert i.shared_secret(r.public_value).hex() == case["shared"]


@pytest.mark.parametrize("group", [1, 2, 14, 19, 20, 21])
def test_generate_is_deterministic_from_injected_random(group: int) -> None:
    a1 = DhKeyPair.generate(group, FixedRandom(bytes(range(256)) * 8))
    a2 = DhKeyPair.generate(group, FixedRandom(bytes(range(256)) * 8))
    b = DhKeyPair.generate(group, FixedRandom(bytes(range(255, -1, -1)) * 8))
    assert a1.public_value == a2.public_value != b.public_value
    assert a1.shared_secret(b.public_value) == b.shared_secret(a1.public_value)
    assert len(a1.shared_secret(b.public_value)) == group_info(group).secret_length


def test_bad_public_values_are_clear_errors() -> None:
    a = DhKeyPair(DhGroup.MODP_1024, 12345)
    with pytest.raises(InvalidPublicValue, match="expected 128"):
        a.shared_secret(b"\x01" * 10)
    with pytest.raises(InvalidPublicValue):
        a.shared_secret(b"\x00" * 127 + b"\x01")
    e = DhKeyPair(DhGroup.ECP_256, 12345)
    with pytest.raises(InvalidPublicValue):
        e.shared_secret(b"\x01" * 64)
    with pytest.raises(UnsupportedGroup):
        group_info(22)
