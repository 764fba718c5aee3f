"""IKEv2 PRFs, prf+, SKEYSEED and KEYMAT against the NIST CAVP KDF135 IKEv2
vectors (all 900 cases) and NSS's prf+/AES-XCBC vectors; the SK payload
ciphers round-trip, detect tampering, and match RFC 3566's XCBC vectors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dmvpn.crypto.ikev2_algorithms import (
    EncrId,
    IntegId,
    IntegrityError,
    PrfId,
    SkCipher,
    UnsupportedIkev2Algorithm,
    aes_xcbc_mac,
    prf,
    prf_plus,
    prf_size,
)
from dmvpn.crypto.ikev2_kdf import (
    child_keymat,
    derive_ike_keys,
    psk_auth,
    rekey_skeyseed,
    signed_octets,
    skeyseed,
)

VECTORS = Path(__file__).resolve().parents[2] / "shared" / "oracles" / "vectors"
FAX = VECTORS / "nist_cavp_kdf135_ike" / "ikev2.fax"
NSS = VECTORS / "nss_ike_prf"
_PRFS = {"SHA-1": PrfId.HMAC_SHA1, "SHA-256": PrfId.HMAC_SHA2_256,
         "SHA-384": PrfId.HMAC_SHA2_384, "SHA-512": PrfId.HMAC_SHA2_512}


def _cavp_cases() -> list[dict[str, str]]:
    cases: list[dict[str, str]] = []
    section: dict[str, str] = {}
    current: dict[str, str] | None = None
    for line in FAX.read_text().splitlines():
        line = line.strip()
        if m := re.fullmatch(r"\[(.+?)(?: = (.+))?\]", line):
            section[m.group(1) if m.group(2) else "hash"] = m.group(2) or m.group(1)
            continue
        if " = " in line:
            k, v = line.split(" = ", 1)
            if k == "COUNT":
                current = dict(section)
                cases.append(current)
            assert current is not None
            current[k] = v
    return cases


CAVP = _cavp_cases()


def test_all_cavp_cases_parsed() -> None:
    assert len(CAVP) == 900
    assert {c["hash"] for c in CAVP} == set(_PRFS)


def test_cavp_ikev2_kdf_all_900() -> None:
    """SKEYSEED, DKM (prf+ over Ni|Nr|SPIi|SPIr), child DKM with and without
    PFS and the rekey SKEYSEED for every NIST case."""
    for c in CAVP:
        alg = _PRFS[c["hash"]]
        h = {k: bytes.fromhex(v) for k, v in c.items() if k in (
            "Ni", "Nr", "g^ir", "g^ir (new)", "SPIi", "SPIr", "SKEYSEED", "DKM",
            "DKM(Child SA)", "DKM(Child SA D-H)", "SKEYSEED(Rekey)")}
        where = f"{c['hash']} COUNT {c['COUNT']}"
        seed = skeyseed(alg, h["Ni"], h["Nr"], h["g^ir"])
        assert seed == h["SKEYSEED"], where
        dkm = prf_plus(alg, seed, h["Ni"] + h["Nr"] + h["SPIi"] + h["SPIr"], int(c["DKM length"]) // 8)
        assert dkm == h["DKM"], where
        sk_d = dkm[: prf_size(alg)]
        n_child = int(c["Child SA DKM length"]) // 8
        assert prf_plus(alg, sk_d, h["Ni"] + h["Nr"], n_child) == h["DKM(Child SA)"], where
        assert prf_plus(alg, sk_d, h["g^ir (new)"] + h["Ni"] + h["Nr"], n_child) == h["DKM(Child SA D-H)"], where
        assert rekey_skeyseed(alg, sk_d, h["g^ir (new)"], h["Ni"], h["Nr"]) == h["SKEYSEED(Rekey)"], where


def test_cavp_json_first20_agree_with_fax() -> None:
    first = json.loads((VECTORS / "json" / "ikev2_kdf_first20.json").read_text())
    assert len(first) == 20
    for case in first:
        alg = _PRFS[case["hash"]]
        got = skeyseed(alg, bytes.fromhex(case["Ni"]), bytes.fromhex(case["Nr"]), bytes.fromhex(case["g^ir"]))
        assert got.hex() == case["SKEYSEED"]


def test_derive_ike_keys_cuts_dkm_in_rfc_order() -> None:
    c = CAVP[0]  # SHA-1: 20-byte SK_d/SK_pi/SK_pr
    h = {k: bytes.fromhex(c[k]) for k in ("Ni", "Nr", "SPIi", "SPIr", "SKEYSEED", "DKM", "DKM(Child SA)", "g^ir (new)",
                                         "DKM(Child SA D-H)")}
    keys = derive_ike_keys(PrfId.HMAC_SHA1, h["SKEYSEED"], h["Ni"], h["Nr"], h["SPIi"], h["SPIr"], 20, 16)
    dkm = h["DKM"]
    assert keys.sk_d == dkm[:20]
    assert (keys.sk_ai, keys.sk_ar) == (dkm[20:40], dkm[40:60])
    assert (keys.sk_ei, keys.sk_er) == (dkm[60:76], dkm[76:92])
    assert (keys.sk_pi, keys.sk_pr) == (dkm[92:112], dkm[112:132])
    child = child_keymat(PrfId.HMAC_SHA1, keys.sk_d, h["Ni"], h["Nr"], 16, 20)
    km = h["DKM(Child SA)"]
    assert (child.encr_i, child.integ_i, child.encr_r, child.integ_r) == (km[:16], km[16:36], km[36:52], km[52:72])
    pfs = child_keymat(PrfId.HMAC_SHA1, keys.sk_d, h["Ni"], h["Nr"], 16, 20, g_ir_new=h["g^ir (new)"])
    assert pfs.encr_i + pfs.integ_i + pfs.encr_r + pfs.integ_r == h["DKM(Child SA D-H)"][:72]


def _nss_vectors(name: str) -> list[tuple[str, list[str], list[int]]]:
    """(type, strings, trailing ints) of each {..} entry of an NSS header."""
    text = (NSS / name).read_text()
    text = re.sub(r"//[^\n]*", "", text)
    out = []
    for m in re.finditer(r"\{\s*\d+,\s*IkeTestType::(\w+),(.*?)\}", text, re.S):
        fields = [f.strip() for f in re.split(r'"\s*,|,\s*(?=\d|true|false)', m.group(2)) if f.strip()]
        strings = [re.sub(r'[\s"]', "", f) for f in fields if f.startswith('"')]
        ints = [int(f) for f in fields if f.isdigit()]
        out.append((m.group(1), strings, ints))
    return out


@pytest.mark.parametrize(("header", "alg"), [
    ("ike-sha1-vectors.h", PrfId.HMAC_SHA1),
    ("ike-sha256-vectors.h", PrfId.HMAC_SHA2_256),
    ("ike-aesxcbc-vectors.h", PrfId.AES128_XCBC),
])
def test_nss_ikev2_prf_vectors(header: str, alg: PrfId) -> None:
    """NSS's ikeGxy (SKEYSEED), ikeV2Rekey and ikePlus (prf+) cases."""
    checked = 0
    for kind, s, ints in _nss_vectors(header):
        if kind == "ikeGxy":
            assert skeyseed(alg, bytes.fromhex(s[4]), bytes.fromhex(s[5]), bytes.fromhex(s[0])).hex() == s[3]
        elif kind == "ikePlus":
            out_len = ints[-1]
            got = prf_plus(alg, bytes.fromhex(s[0]), bytes.fromhex(s[6]), out_len)
            assert got.hex() == s[3], (header, s[3][:16])
        elif kind == "ikeV2Rekey":
            key = s[0]
            if len(key) % 2:  # NSS's self-generated XCBC rekey case has a 33-digit SK_d: not a usable vector
                continue
            got = rekey_skeyseed(alg, bytes.fromhex(key), bytes.fromhex(s[1]), bytes.fromhex(s[4]), bytes.fromhex(s[5]))
            assert got.hex() == s[3]
        else:
            continue
        checked += 1
    assert checked >= 5


# RFC 3566 section 4.6 test cases (key 000102..0f)
_XCBC_KEY = bytes(range(16))


@pytest.mark.parametrize(("n", "mac"), [
    (0, "75f0251d528ac01c4573dfd584d79f29"),
    (3, "5b376580ae2f19afe7219ceef172756f"),
    (16, "d2a246fa349b68a79998a4394ff7a263"),
    (20, "47f51b4564966215b8985c63055ed308"),
    (32, "f54f0ec8d2b9f3d36807734bd5283fd4"),
    (34, "becbb3bccdb518a30677d5481fb6b4d8"),
])
def test_aes_xcbc_rfc3566(n: int, mac: str) -> None:
    assert aes_xcbc_mac(_XCBC_KEY, bytes(range(n))).hex() == mac


@pytest.mark.parametrize(("key", "mac"), [
    # RFC 4434 section 4: AES-XCBC-PRF-128 with 16, 10 and 18 byte keys over 000102..13
    ("000102030405060708090a0b0c0d0e0f", "47f51b4564966215b8985c63055ed308"),
    ("00010203040506070809", "0fa087af7d866e7653434e602fdde835"),
    ("000102030405060708090a0b0c0d0e0fedcb", "8cd3c93ae598a9803006ffb67c40e9e4"),
])
def test_aes_xcbc_prf_rfc4434(key: str, mac: str) -> None:
    assert prf(PrfId.AES128_XCBC, bytes.fromhex(key), bytes(range(20))).hex() == mac


def test_psk_auth_is_prf_of_keypad_then_octets() -> None:
    """RFC 7296 2.15 spelled out with HMAC-SHA-256 from the hash itself."""
    import hashlib
    import hmac as std_hmac

    octets = signed_octets(PrfId.HMAC_SHA2_256, b"msg", b"nonce", b"k" * 32, b"\x01\x00\x00\x00\x0a\x00\x00\x01")
    idmac = std_hmac.new(b"k" * 32, b"\x01\x00\x00\x00\x0a\x00\x00\x01", hashlib.sha256).digest()
    assert octets == b"msgnonce" + idmac
    inner = std_hmac.new(b"secret", b"Key Pad for IKEv2", hashlib.sha256).digest()
    expected = std_hmac.new(inner, octets, hashlib.sha256).digest()
    assert psk_auth(PrfId.HMAC_SHA2_256, b"secret", octets) == expected


SK_CASES = [
    SkCipher(EncrId.AES_CBC, 128, IntegId.HMAC_SHA1_96),
    SkCipher(EncrId.AES_CBC, 256, IntegId.HMAC_SHA2_256_128),
    SkCipher(EncrId.AES_CBC, 192, IntegId.HMAC_SHA2_512_256),
    SkCipher(EncrId.DES3, None, IntegId.HMAC_SHA1_160),
    SkCipher(EncrId.AES_CTR, 128, IntegId.HMAC_SHA2_384_192),
    SkCipher(EncrId.AES_GCM_16, 256),
    SkCipher(EncrId.AES_GCM_8, 128),
    SkCipher(EncrId.AES_CCM_12, 128),
]


@pytest.mark.parametrize("sk", SK_CASES, ids=lambda s: f"{s.encr.name}-{s.key_bits}-{IntegId(s.integ).name}")
@pytest.mark.parametrize("size", [0, 1, 15, 16, 100])
def test_sk_cipher_round_trip_and_tamper(sk: SkCipher, size: int) -> None:
    ke, ka = bytes(range(sk.encr_key_bytes)), bytes(range(100, 100 + sk.integ_key_bytes))
    iv = bytes(range(7, 7 + sk.iv_size))
    aad = b"H" * 32
    inner = bytes(range(size))
    body = sk.seal(ke, ka, iv, aad, inner)
    assert len(body) == sk.body_length(size)
    assert (len(body) - sk.iv_size - sk.icv_size) % sk.block_size == 0
    assert sk.open(ke, ka, aad, body) == inner
    with pytest.raises(IntegrityError):
        sk.open(ke, ka, b"X" + aad[1:], body)  # the header is authenticated too
    bad = bytearray(body)
    bad[sk.iv_size] ^= 1
    with pytest.raises(IntegrityError):
        sk.open(ke, ka, aad, bytes(bad))


def test_sk_cipher_rejects_bad_combinations() -> None:
    with pytest.raises(UnsupportedIkev2Algorithm):
        SkCipher(EncrId.AES_GCM_16, 128, IntegId.HMAC_SHA1_96)
    with pytest.raises(UnsupportedIkev2Algorithm):
        SkCipher(EncrId.AES_CBC, None, IntegId.HMAC_SHA1_96)
    with pytest.raises(UnsupportedIkev2Algorithm):
        SkCipher(EncrId.CHACHA20_POLY1305, 256)
    with pytest.raises(UnsupportedIkev2Algorithm):
        prf(PrfId.HMAC_TIGER, b"k", b"d")
