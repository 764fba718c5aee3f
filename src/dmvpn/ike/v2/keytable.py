"""IKE SA keys in Wireshark's ``ikev2_decryption_table`` format.

One record per IKE SA, as the ISAKMP dissector's IKEv2 decryption table
(UAT) stores it: ``SPIi,SPIr,SK_ei,SK_er,"encryption",SK_ai,SK_ar,"integrity"``,
SPIs and keys in hex, the algorithms by Wireshark's own names. The same
lines go into ``~/.config/wireshark/ikev2_decryption_table`` or, one record
each, into ``tshark -o uat:ikev2_decryption_table:RECORD``. We read them to
decrypt captures (``dmvpn decode --ikev2-keys``) and write them from our own
SAs so that tshark can decrypt what we send.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from dmvpn.crypto.ikev2_algorithms import EncrId, IntegId, SkCipher, UnsupportedIkev2Algorithm
from dmvpn.crypto.ikev2_kdf import Ikev2Keys


def _encr_names() -> dict[tuple[int, int | None], str]:
    names: dict[tuple[int, int | None], str] = {
        (EncrId.DES3, None): "3DES [RFC2451]",
        (EncrId.NULL, None): "NULL [RFC2410]",
    }
    for bits in (128, 192, 256):
        names[(EncrId.AES_CBC, bits)] = f"AES-CBC-{bits} [RFC3602]"
        names[(EncrId.AES_CTR, bits)] = f"AES-CTR-{bits} [RFC5930]"
        for icv, gcm, ccm in (
            (8, EncrId.AES_GCM_8, EncrId.AES_CCM_8),
            (12, EncrId.AES_GCM_12, EncrId.AES_CCM_12),
            (16, EncrId.AES_GCM_16, EncrId.AES_CCM_16),
        ):
            names[(gcm, bits)] = f"AES-GCM-{bits} with {icv} octet ICV [RFC5282]"
            names[(ccm, bits)] = f"AES-CCM-{bits} with {icv} octet ICV [RFC5282]"
    return names


ENCR_NAMES = _encr_names()
INTEG_NAMES: dict[int, str] = {
    IntegId.NONE: "NONE [RFC4306]",
    IntegId.HMAC_MD5_96: "HMAC_MD5_96 [RFC2403]",
    IntegId.HMAC_SHA1_96: "HMAC_SHA1_96 [RFC2404]",
    IntegId.HMAC_MD5_128: "HMAC_MD5_128 [RFC4595]",
    IntegId.HMAC_SHA1_160: "HMAC_SHA1_160 [RFC4595]",
    IntegId.HMAC_SHA2_256_128: "HMAC_SHA2_256_128 [RFC4868]",
    IntegId.HMAC_SHA2_384_192: "HMAC_SHA2_384_192 [RFC4868]",
    IntegId.HMAC_SHA2_512_256: "HMAC_SHA2_512_256 [RFC4868]",
}
_ENCR_BY_NAME = {v: k for k, v in ENCR_NAMES.items()}
_INTEG_BY_NAME = {v: k for k, v in INTEG_NAMES.items()}
#: Wireshark's "ANY n-bits of Authentication [No Checking]": skip n bits of ICV unchecked.
_ANY_BITS = {f"ANY {n}-bits of Authentication [No Checking]": n for n in (64, 96, 128, 160, 192, 256)}


class KeyTableError(ValueError):
    """A bad key table record (the message names the file and line)."""


@dataclass(frozen=True, slots=True)
class Ikev2KeyRecord:
    """The keys that decrypt one IKE SA's Encrypted payloads."""

    spi_i: bytes
    spi_r: bytes
    cipher: SkCipher
    sk_ei: bytes
    sk_er: bytes
    sk_ai: bytes
    sk_ar: bytes

    def keys_for(self, from_initiator: bool) -> tuple[bytes, bytes]:
        """(SK_e, SK_a) protecting messages sent by the initiator or the responder."""
        return (self.sk_ei, self.sk_ai) if from_initiator else (self.sk_er, self.sk_ar)

    def line(self) -> str:
        """The record as one ``ikev2_decryption_table`` line."""
        c = self.cipher
        encr = ENCR_NAMES[(c.encr, None if c.encr in (EncrId.DES3, EncrId.NULL) else c.key_bits)]
        integ = INTEG_NAMES[c.integ] if c.check_icv else f"ANY {c.icv_size * 8}-bits of Authentication [No Checking]"
        return (
            f'{self.spi_i.hex()},{self.spi_r.hex()},{self.sk_ei.hex()},{self.sk_er.hex()},"{encr}",'
            f'{self.sk_ai.hex()},{self.sk_ar.hex()},"{integ}"'
        )


def key_record(spi_i: bytes, spi_r: bytes, cipher: SkCipher, keys: Ikev2Keys) -> Ikev2KeyRecord:
    """The table record for one of our IKE SAs (what the engine exports)."""
    return Ikev2KeyRecord(spi_i, spi_r, cipher, keys.sk_ei, keys.sk_er, keys.sk_ai, keys.sk_ar)


def _hex(text: str, what: str) -> bytes:
    t = text.strip()
    t = t[2:] if t.lower().startswith("0x") else t
    try:
        return bytes.fromhex(t)
    except ValueError:
        raise KeyTableError(f"{what} is not hex: {text!r}") from None


def parse_record(text: str) -> Ikev2KeyRecord:
    """One record (a table line or a ``-o uat:`` value); KeyTableError says what is wrong."""
    fields = next(csv.reader([text], skipinitialspace=True))
    if len(fields) != 8:
        raise KeyTableError(
            f"expected 8 comma-separated fields (SPIi,SPIr,SK_ei,SK_er,encr,SK_ai,SK_ar,integ), got {len(fields)}"
        )
    spi_i, spi_r = _hex(fields[0], "SPIi"), _hex(fields[1], "SPIr")
    if len(spi_i) != 8 or len(spi_r) != 8:
        raise KeyTableError("SPIi and SPIr must be 8 bytes (16 hex digits) each")
    encr = _ENCR_BY_NAME.get(fields[4])
    if encr is None:
        raise KeyTableError(f"unknown encryption algorithm {fields[4]!r}")
    integ_name = fields[7]
    try:
        if integ_name in _ANY_BITS:
            cipher = SkCipher(encr[0], encr[1], IntegId.NONE, icv_override=_ANY_BITS[integ_name] // 8, check_icv=False)
        elif integ_name in _INTEG_BY_NAME:
            cipher = SkCipher(encr[0], encr[1], _INTEG_BY_NAME[integ_name])
        else:
            raise KeyTableError(f"unknown integrity algorithm {integ_name!r}")
    except UnsupportedIkev2Algorithm as exc:
        raise KeyTableError(str(exc)) from None
    rec = Ikev2KeyRecord(
        spi_i,
        spi_r,
        cipher,
        _hex(fields[2], "SK_ei"),
        _hex(fields[3], "SK_er"),
        _hex(fields[5], "SK_ai"),
        _hex(fields[6], "SK_ar"),
    )
    for name, key, size in (
        ("SK_ei", rec.sk_ei, cipher.encr_key_bytes),
        ("SK_er", rec.sk_er, cipher.encr_key_bytes),
        ("SK_ai", rec.sk_ai, cipher.integ_key_bytes),
        ("SK_ar", rec.sk_ar, cipher.integ_key_bytes),
    ):
        if len(key) != size:
            raise KeyTableError(f"{name} is {len(key)} bytes, {fields[4]} / {integ_name} needs {size}")
    return rec


def load_key_table(path: str | Path) -> dict[tuple[bytes, bytes], Ikev2KeyRecord]:
    """Every record of a key table file, by (SPIi, SPIr); ``#`` lines and
    blank lines are skipped."""
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyTableError(f"{path}: cannot read key table ({exc})") from None
    table: dict[tuple[bytes, bytes], Ikev2KeyRecord] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            rec = parse_record(line)
        except KeyTableError as exc:
            raise KeyTableError(f"{path}:{n}: {exc}") from None
        table[(rec.spi_i, rec.spi_r)] = rec
    if not table:  # an empty file given on purpose is a mistake worth naming
        raise KeyTableError(f"{path}: no 'SPIi,SPIr,SK_ei,SK_er,...' record in the key table")
    return table
