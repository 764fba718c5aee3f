"""IKEv1 pre-shared-key key derivation against NIST CAVP (KDF135 IKEv1 PSK),
all 1700 cases, plus the RFC 2409 appendix B expansions."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from dmvpn.crypto import ikev1_kdf as kdf
from dmvpn.crypto.ike_algorithms import HashAlgorithm

ORACLES = Path(__file__).resolve().parents[2] / "shared" / "oracles" / "vectors"
FAX = ORACLES / "nist_cavp_kdf135_ike" / "ikev1_psk.fax"
HASHES = {"SHA-1": HashAlgorithm.SHA, "SHA-256": HashAlgorithm.SHA2_256,
          "SHA-384": HashAlgorithm.SHA2_384, "SHA-512": HashAlgorithm.SHA2_512}


def _nist_cases() -> list[dict[str, str]]:
    assert FAX.is_file(), f"oracle missing: {FAX}"
    cases, current, section = [], None, {}
    for line in FAX.read_text().splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            key = line[1:-1]
            if key in HASHES:
                section["hash"] = key
            continue
        if not line or line.startswith("#") or "=" not in line:
            continue
        k, v = (x.strip() for x in line.split("=", 1))
        if k == "COUNT":
            current = {"hash": section["hash"]}
            cases.append(current)
        current[k] = v
    return cases


NIST = _nist_cases()


def test_all_nist_cases_present() -> None:
    assert len(NIST) == 1700


def test_nist_ikev1_psk_all_cases() -> None:
    failures = []
    for c in NIST:
        alg = HASHES[c["hash"]]
        b = bytes.fromhex
        keys = kdf.derive_keys_psk(alg, b(c["pre-shared-key"]), b(c["Ni"]), b(c["Nr"]),
                                   b(c["g^xy"]), b(c["CKY_I"]), b(c["CKY_R"]))
        got = (keys.skeyid.hex(), keys.skeyid_d.hex(), keys.skeyid_a.hex(), keys.skeyid_e.hex())
        want = (c["SKEYID"], c["SKEYID_d"], c["SKEYID_a"], c["SKEYID_e"])
        if got != want:
            failures.append((c["hash"], c["COUNT"]))
    assert failures == []


def test_nist_first20_json_agrees() -> None:
    data = json.loads((ORACLES / "json" / "ikev1_psk_kdf_first20.json").read_text())
    for c in data:
        alg = HASHES[c["hash"]]
        b = bytes.fromhex
        keys = kdf.derive_keys_psk(alg, b(c["pre-shared-key"]), b(c["Ni"]), b(c["Nr"]),
                                   b(c["g^xy"]), b(c["CKY_I"]), b(c["CKY_R"]))
        assert keys.skeyid_e.hex() == c["SKEYID_e"]


def _hm(key: bytes, data: bytes, h=hashlib.sha1) -> bytes:
    return hmac.new(key, data, h).digest()


def test_encryption_key_expansion_appendix_b() -> None:
    e = bytes(range(20))  # SHA-1 SKEYID_e, 20 bytes: AES-256 needs 32
    k1 = _hm(e, b"\x00")
    k2 = _hm(e, k1)
    assert kdf.encryption_key(HashAlgorithm.SHA, e, 32) == (k1 + k2)[:32]
    assert kdf.encryption_key(HashAlgorithm.SHA, e, 16) == e[:16]


def test_keymat_with_and_without_pfs() -> None:
    d, ni, nr, spi = b"d" * 20, b"n" * 16, b"r" * 16, bytes.fromhex("c0ffee01")
    seed = bytes([3]) + spi + ni + nr
    k1 = _hm(d, seed)
    k2 = _hm(d, k1 + seed)
    assert kdf.keymat(HashAlgorithm.SHA, d, 3, spi, ni, nr, 36) == (k1 + k2)[:36]
    g = b"\x07" * 128
    p1 = _hm(d, g + seed)
    assert kdf.keymat(HashAlgorithm.SHA, d, 3, spi, ni, nr, 20, g_qm_xy=g) == p1


def test_quick_mode_and_phase1_hashes() -> None:
    a, mid = b"a" * 32, 0x0F2B7862
    m = mid.to_bytes(4, "big")
    sha = hashlib.sha256
    assert kdf.quick_mode_hash1(HashAlgorithm.SHA2_256, a, mid, b"rest") == _hm(a, m + b"rest", sha)
    assert kdf.quick_mode_hash2(HashAlgorithm.SHA2_256, a, mid, b"NI", b"rest") == _hm(a, m + b"NI" + b"rest", sha)
    assert kdf.quick_mode_hash3(HashAlgorithm.SHA2_256, a, mid, b"NI", b"NR") == _hm(a, b"\0" + m + b"NINR", sha)
    assert kdf.informational_hash(HashAlgorithm.SHA2_256, a, mid, b"N") == _hm(a, m + b"N", sha)
    s = b"s" * 32
    assert kdf.hash_i(HashAlgorithm.SHA2_256, s, b"XI", b"XR", b"I" * 8, b"R" * 8, b"SA", b"ID") == _hm(
        s, b"XIXR" + b"I" * 8 + b"R" * 8 + b"SAID", sha)
    assert kdf.hash_r(HashAlgorithm.SHA2_256, s, b"XI", b"XR", b"I" * 8, b"R" * 8, b"SA", b"ID") == _hm(
        s, b"XRXI" + b"R" * 8 + b"I" * 8 + b"SAID", sha)


def test_ivs_and_nat_d() -> None:
    assert kdf.phase1_iv(HashAlgorithm.SHA, b"x", b"y", 16) == hashlib.sha1(b"xy").digest()[:16]
    assert kdf.exchange_iv(HashAlgorithm.MD5, b"L" * 16, 1, 8) == hashlib.md5(b"L" * 16 + b"\0\0\0\1").digest()[:8]
    assert kdf.nat_d_hash(HashAlgorithm.SHA, b"I" * 8, b"R" * 8, bytes([10, 0, 0, 1]), 500) == hashlib.sha1(
        b"I" * 8 + b"R" * 8 + bytes([10, 0, 0, 1]) + b"\x01\xf4").digest()


def test_unsupported_hash_is_a_clear_error() -> None:
    from dmvpn.crypto.ike_algorithms import UnsupportedAlgorithm, prf
    with pytest.raises(UnsupportedAlgorithm, match="hash algorithm 3"):
        prf(3, b"k", b"d")
