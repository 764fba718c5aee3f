"""``dmvpn decode`` on IKEv2: the Wireshark decrypt captures decrypt with
their key table (``--ikev2-keys``); the key lines we export from our own SA
keys let tshark decrypt our messages (whole and fragmented) without a
warning; bad key tables give one-line errors."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from dmvpn.cli.main import main
from dmvpn.crypto.ikev2_algorithms import EncrId, IntegId, PrfId, SkCipher
from dmvpn.crypto.ikev2_kdf import derive_ike_keys, skeyseed
from dmvpn.ike.v2.keytable import KeyTableError, key_record, load_key_table, parse_record
from dmvpn.runtime.sim.pcap import PcapWriter
from dmvpn.wire.ikev2 import Ikev2Message, encrypt_fragments, encrypt_message
from dmvpn.wire.ikev2_payloads import AuthPayload, IdPayload, NotifyPayload
from dmvpn.wire.ikev2_registry import AuthMethod, ExchangeType, HeaderFlags, NotifyType, PayloadType
from dmvpn.wire.ipv4 import IPv4Header
from dmvpn.wire.udp import encode_udp

PCAPS = Path(__file__).resolve().parents[2] / "shared" / "oracles" / "pcaps"
WS_TABLE = PCAPS / "wireshark" / "config" / "ikev2_decryption_table.tmpl"
WS_DECRYPT = sorted((PCAPS / "wireshark").glob("ikev2-decrypt-*"))


def _run(*args: str):
    return CliRunner().invoke(main, ["decode", *args])


def _tshark() -> str:
    path = shutil.which("tshark")
    assert path, "tshark is required for this test (apt-get install tshark)"
    return path


@pytest.mark.parametrize("capture", WS_DECRYPT, ids=lambda p: p.name)
def test_cli_decrypts_wireshark_captures(capture: Path) -> None:
    r = _run(str(capture), "--ikev2-keys", str(WS_TABLE), "--json")
    assert r.exit_code == 0, r.output
    recs = json.loads(r.output)
    encrypted = [x for x in recs if x["payloads"] and x["exchange"] != "IKE_SA_INIT"]
    assert encrypted and all(x.get("decrypted") for x in encrypted), [x.get("decrypt_error") for x in encrypted]
    auth = [p["data"] for x in recs for p in x["payloads"] if p["type"] == "AUTH"]
    # what tshark decrypted from the same capture with the same table (VERIFY.txt)
    verify = (PCAPS / "VERIFY.txt").read_text()
    block = verify.split(f"wireshark/{capture.name} -Tfields -e isakmp.auth.data\n", 1)[1].split("$ ", 1)[0]
    assert auth == [x for x in block.split("\n") if re.fullmatch(r"[0-9a-f]+", x)]


def test_cli_text_without_keys_shows_sk() -> None:
    r = _run(str(PCAPS / "tcpdump" / "ikev2four.pcap"))
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[0] == (
        "frame 1 192.168.1.2:500 -> 192.168.1.1:500 IKE_SA_INIT(34) spi_i=a88875a8198992a6 "
        "spi_r=0000000000000000 msgid=00000000 flags=INITIATOR")
    assert "transform ENCR AES_CBC key_length=128" in r.output
    assert "NOTIFY(41) notify=COOKIE" in r.output
    assert "SK(46) length=204" in r.output


@pytest.mark.parametrize("text", [
    "1234,5678",
    '0011223344556677,8899aabbccddeeff,00,00,"AES-CBC-128 [RFC3602]",00,00,"HMAC_SHA1_96 [RFC2404]"',
    '0011223344556677,8899aabbccddeeff,zz,00,"NULL [RFC2410]",,,"NONE [RFC4306]"',
    '0011223344556677,8899aabbccddeeff,,,"ROT13",,,"NONE [RFC4306]"',
    '00112233,8899aabbccddeeff,,,"NULL [RFC2410]",,,"NONE [RFC4306]"',
])
def test_bad_key_table_lines(tmp_path: Path, text: str) -> None:
    f = tmp_path / "keys"
    f.write_text("# comment\n\n" + text + "\n")
    with pytest.raises(KeyTableError, match=r":3: "):
        load_key_table(f)
    r = _run(str(PCAPS / "tcpdump" / "ikev2four.pcap"), "--ikev2-keys", str(f))
    assert r.exit_code != 0 and len(r.output.strip().splitlines()) == 1 and ":3:" in r.output


def test_key_table_lines_round_trip() -> None:
    for rec in load_key_table(WS_TABLE).values():
        assert parse_record(rec.line()) == rec


SPI_I, SPI_R = bytes.fromhex("1122334455667788"), bytes.fromhex("99aabbccddeeff00")


def _our_sa(cipher: SkCipher):
    seed = skeyseed(PrfId.HMAC_SHA2_256, b"N" * 32, b"R" * 32, b"G" * 256)
    keys = derive_ike_keys(PrfId.HMAC_SHA2_256, seed, b"N" * 32, b"R" * 32, SPI_I, SPI_R,
                           cipher.integ_key_bytes, cipher.encr_key_bytes)
    return keys, key_record(SPI_I, SPI_R, cipher, keys).line()


def _auth_msg(auth: bytes) -> Ikev2Message:
    return Ikev2Message(SPI_I, SPI_R, ExchangeType.IKE_AUTH, HeaderFlags.INITIATOR, 1, [
        IdPayload.ipv4("192.0.2.1"),
        NotifyPayload(NotifyType.INITIAL_CONTACT),
        IdPayload.ipv4("192.0.2.2", PayloadType.IDR),
        AuthPayload(AuthMethod.SHARED_KEY_MIC, auth),
    ])


class _Rng:
    def token_bytes(self, n: int) -> bytes:
        return os.urandom(n)

    def uniform(self, a: float, b: float) -> float:
        return a


def _write_pcap(path: Path, messages: list[bytes]) -> None:
    buf = io.BytesIO()
    w = PcapWriter(buf)
    for i, m in enumerate(messages):
        w.record(float(i), b"\x02" * 6, b"\x04" * 6,
                 IPv4Header("192.0.2.1", "192.0.2.2", 17).encode(encode_udp("192.0.2.1", "192.0.2.2", 500, 500, m)))
    path.write_bytes(buf.getvalue())


@pytest.mark.parametrize("cipher", [
    SkCipher(EncrId.AES_CBC, 256, IntegId.HMAC_SHA2_256_128),
    SkCipher(EncrId.AES_CBC, 128, IntegId.HMAC_SHA1_96),
    SkCipher(EncrId.AES_GCM_16, 256),
], ids=["aes256-sha256", "aes128-sha1", "gcm16-256"])
@pytest.mark.parametrize("fragmented", [False, True], ids=["whole", "fragments"])
def test_tshark_decrypts_our_messages_with_our_key_line(tmp_path: Path, cipher: SkCipher, fragmented: bool) -> None:
    keys, line = _our_sa(cipher)
    auth = bytes(range(32))
    msg = _auth_msg(auth)
    if fragmented:
        wires = encrypt_fragments(msg, cipher, keys.sk_ei, keys.sk_ai, 100, _Rng())
        assert len(wires) >= 2
    else:
        wires = [encrypt_message(msg, cipher, keys.sk_ei, keys.sk_ai, os.urandom(cipher.iv_size))]
    cap = tmp_path / "ours.pcap"
    _write_pcap(cap, wires)
    env = dict(os.environ, HOME=str(tmp_path))  # no user prefs: keys only from -o
    out = subprocess.run(
        [_tshark(), "-r", str(cap), "-o", f"uat:ikev2_decryption_table:{line}", "-T", "fields",
         "-e", "isakmp.auth.data", "-e", "_ws.expert.message"],
        capture_output=True, text=True, env=env, check=True)
    rows = [r.split("\t") for r in out.stdout.splitlines()]
    assert [r[0] for r in rows if r[0]] == [auth.hex()], out.stdout
    assert not [r[1] for r in rows if len(r) > 1 and r[1]], out.stdout  # no expert info: no warning
    # and our own decoder agrees, with the same line in a table file
    table = tmp_path / "keys"
    table.write_text(line + "\n")
    r = _run(str(cap), "--ikev2-keys", str(table), "--json")
    recs = json.loads(r.output)
    assert recs[-1].get("decrypted")
    assert [p["data"] for p in recs[-1]["payloads"] if p["type"] == "AUTH"] == [auth.hex()]
