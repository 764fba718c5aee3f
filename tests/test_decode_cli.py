"""``dmvpn decode``: text and JSON output, decryption with a keys file, error
lines for bad packets, one-line errors for bad arguments."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from dmvpn.cli.main import main

PCAPS = Path(__file__).resolve().parents[2] / "shared" / "oracles" / "pcaps"
SS = PCAPS / "strongswan" / "ike_v1_strongswan.pcap"
SS_KEYS = Path(__file__).parent / "data" / "isakmp" / "ike_v1_strongswan.keys"
WS_TABLE = PCAPS / "wireshark" / "tshark_home" / ".config" / "wireshark" / "ikev1_decryption_table"


def _run(*args: str):
    return CliRunner().invoke(main, ["decode", *args])


def test_text_output_without_keys() -> None:
    r = _run(str(SS))
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].startswith("frame 3 192.0.2.1:500 -> 192.0.2.2:500 IDENTITY_PROTECTION(2) icookie=202424eec7e4e60d")
    assert "transform #1 KEY_IKE ENCRYPTION_ALGORITHM=AES_CBC KEY_LENGTH=128 HASH_ALGORITHM=SHA" in r.output
    assert "GROUP_DESCRIPTION=MODP_3072" in r.output
    assert "frame 7 192.0.2.1:4500 -> 192.0.2.2:4500 IDENTITY_PROTECTION(2)" in r.output
    assert "<80 encrypted bytes>" in r.output
    assert "QUICK_MODE(32)" in r.output and "msgid=bc5a53e5" in r.output


def test_text_output_with_keys_decrypts() -> None:
    r = _run(str(SS), "--ikev1-keys", str(SS_KEYS))
    assert r.exit_code == 0, r.output
    assert r.output.count("[decrypted]") == 5
    assert "ID(5) id_type=IPV4_ADDR protocol=0 port=0 id=192.0.2.1" in r.output
    assert "NOTIFY(11) notify=INITIAL_CONTACT" in r.output
    assert "ENCAPSULATION_MODE=UDP_TUNNEL" in r.output


def test_json_output() -> None:
    r = _run(str(PCAPS / "wireshark" / "ikev1-bug-12620.pcapng.gz"), "--ikev1-keys", str(WS_TABLE), "--json")
    assert r.exit_code == 0, r.output
    recs = json.loads(r.output)
    assert [x["frame"] for x in recs] == list(range(1, 11))
    assert recs[0]["exchange"] == "AGGRESSIVE" and recs[0]["message_id"] == "00000000"
    assert all(x.get("decrypted") for x in recs[3:])
    assert recs[3]["exchange"] == "INFORMATIONAL" and [p["type"] for p in recs[3]["payloads"]] == ["HASH", "NOTIFY"]
    assert recs[4]["exchange"] == "TRANSACTION" and recs[4]["payloads"][1]["type"] == "ATTRIBUTE"


def test_bad_packets_become_error_lines_and_run_goes_on() -> None:
    r = _run(str(PCAPS / "tcpdump" / "fuzz_regressions" / "isakmp-pointer-loop.pcap"))
    assert r.exit_code == 0
    assert "ERROR offset 24: ISAKMP length 0 < header size 28" in r.output
    r = _run(str(PCAPS / "tcpdump" / "ikev2-id-short.pcap"))  # IKEv2 now decodes; a short ID is an error line
    assert r.exit_code == 0 and "ERROR offset 32: ID type: need 4 bytes, 1 left" in r.output


def test_decrypt_problems_are_reported_per_message(tmp_path) -> None:
    keys = tmp_path / "k"
    keys.write_text("202424eec7e4e60d,00112233445566778899aabbccddeeff\n")
    r = _run(str(SS), "--ikev1-keys", str(keys))
    assert r.exit_code == 0
    assert "(not decrypted: offset" in r.output


def test_argument_errors_are_one_line(tmp_path) -> None:
    bad = tmp_path / "bad.keys"
    bad.write_text("# comment\n\nnot-hex,zz\n")
    r = _run(str(SS), "--ikev1-keys", str(bad))
    assert r.exit_code != 0 and r.output.strip().splitlines() == [f"Error: {bad} line 3: cookie and key must be hex"]
    short = tmp_path / "short.keys"
    short.write_text("0102,0304\n")
    r = _run(str(SS), "--ikev1-keys", str(short))
    assert "line 1: initiator cookie must be 8 bytes" in r.output
    notpcap = tmp_path / "x.pcap"
    notpcap.write_bytes(b"hello world")
    r = _run(str(notpcap))
    assert r.exit_code != 0 and "not a pcap or pcapng file" in r.output and "Traceback" not in r.output
    r = _run(str(tmp_path / "missing.pcap"))
    assert r.exit_code != 0 and "No such file" in r.output


def test_decryptor_survives_mutated_exchanges() -> None:
    """Mutated copies of a keyed capture: every record is a message or an
    error, never an exception (SA, KE and ciphertext all get hit)."""
    import random

    from dmvpn.cli.decode_cmd import CaptureDecryptor, decode_datagram, load_ikev1_keys
    from dmvpn.wire.pcap_reader import UdpDatagram, read_frames, udp_datagram

    dgrams = [d for f in read_frames(SS) if (d := udp_datagram(f)) is not None][:9]
    keys = load_ikev1_keys(SS_KEYS)
    rng = random.Random(5)
    for _ in range(400):
        dec = CaptureDecryptor(keys)
        for d in dgrams:
            b = bytearray(d.payload)
            if rng.random() < 0.5:
                for _ in range(rng.randint(1, 3)):
                    b[rng.randrange(len(b))] = rng.randrange(256)
            rec = decode_datagram(UdpDatagram(d.frame, 0.0, d.src, d.dst, d.sport, d.dport, bytes(b)), dec)
            assert rec is None or "frame" in rec


def test_truncated_capture_prints_what_is_there_and_fails(tmp_path) -> None:
    """Issue 17: a truncated capture printed part of itself and exited 0 with
    no warning. Now the frames before the cut, then one error line, exit 1."""
    whole = _run(str(SS))
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(SS.read_bytes()[:-5])
    r = CliRunner().invoke(main, ["decode", str(cut)])
    assert r.exit_code == 1
    errors = [x for x in r.output.splitlines() if x.startswith("Error:")]
    assert len(errors) == 1 and "truncated after frame" in errors[0] and str(cut) in errors[0]
    printed = [x for x in r.output.splitlines() if not x.startswith("Error:")]
    assert printed and printed == whole.output.splitlines()[:len(printed)]
    assert len(printed) <= len(whole.output.splitlines())
