"""ISAKMP encode/decode round trips, encryption along the IV chain, NAT-T
framing, and what independent decoders (scapy, tshark) read from our bytes."""

from __future__ import annotations

import shutil
import struct
import subprocess

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.isakmp import ISAKMP
from scapy.utils import wrpcap

import isakmp_samples as S
from dmvpn.crypto.ike_algorithms import ike_cipher
from dmvpn.wire.errors import DecodeError
from dmvpn.wire.isakmp import (
    HEADER_LEN,
    Udp4500Kind,
    add_non_esp_marker,
    classify_udp4500,
    decode_message,
    decrypt_message,
    encode_payloads,
    encrypt_message,
    strip_non_esp_marker,
)
from dmvpn.wire.isakmp_payloads import Attribute, SaPayload
from dmvpn.wire.isakmp_registry import (
    EncapsulationMode,
    EspTransformId,
    HeaderFlags,
    LifeType,
    Phase1Attribute,
    Phase2Attribute,
)


@pytest.mark.parametrize("build", S.ALL, ids=lambda f: f.__name__)
def test_roundtrip(build) -> None:
    msg = build()
    wire = msg.encode()
    assert struct.unpack_from("!I", wire, 24)[0] == len(wire)
    back = decode_message(wire)
    assert back.payloads == msg.payloads
    assert (back.initiator_cookie, back.responder_cookie, back.exchange_type, back.message_id) == (
        msg.initiator_cookie, msg.responder_cookie, msg.exchange_type, msg.message_id)
    assert b"".join(back.raw_payloads) == wire[HEADER_LEN:]
    assert b"".join(back.raw_payloads[1:]) == encode_payloads(msg.payloads[1:])
    assert back.encode() == wire


def test_attributes_decode_to_typed_values() -> None:
    back = decode_message(S.quick_mode_1().encode())
    sa = back.payloads[1]
    assert isinstance(sa, SaPayload)
    t = sa.proposals[0].transforms[0]
    assert t.transform_id is EspTransformId.ESP_AES_CBC
    assert t.get(Phase2Attribute.ENCAPSULATION_MODE) is EncapsulationMode.TRANSPORT
    assert t.attributes[1] == Attribute(Phase2Attribute.SA_LIFE_DURATION, 3600, tlv=True)
    assert t.attributes[3] == Attribute(Phase2Attribute.SA_LIFE_DURATION, 4608000)
    p1 = decode_message(S.main_mode_1().encode()).payloads[0].proposals[0].transforms[0]
    assert p1.get(Phase1Attribute.LIFE_TYPE) is LifeType.SECONDS
    assert p1.get(Phase1Attribute.LIFE_DURATION) == 86400
    assert type(p1.attributes[0].type) is Phase1Attribute


@pytest.mark.parametrize("alg,key", [(7, bytes(range(16))), (7, bytes(range(32))), (5, bytes(range(24)))])
def test_encrypt_decrypt_iv_chain(alg: int, key: bytes) -> None:
    cipher = ike_cipher(alg)
    iv = bytes(cipher.block_size)
    wire, next_iv = encrypt_message(S.quick_mode_1(), cipher, key, iv)
    assert wire[19] & HeaderFlags.ENCRYPTION
    assert (len(wire) - HEADER_LEN) % cipher.block_size == 0
    assert next_iv == wire[-cipher.block_size:]
    clear = decode_message(wire)
    assert clear.payloads == [] and clear.encrypted_body == wire[HEADER_LEN:]
    msg, iv2 = decrypt_message(wire, cipher, key, iv)
    assert msg.payloads == S.quick_mode_1().payloads and iv2 == next_iv
    wire2, _ = encrypt_message(S.dpd(), cipher, key, next_iv)
    assert decrypt_message(wire2, cipher, key, iv2)[0].payloads == S.dpd().payloads


def test_wrong_key_is_a_decode_error() -> None:
    cipher = ike_cipher(7)
    wire, _ = encrypt_message(S.quick_mode_1(), cipher, bytes(16), bytes(16))
    with pytest.raises(DecodeError):
        decrypt_message(wire, cipher, b"\x01" * 16, bytes(16))
    with pytest.raises(DecodeError, match="multiple of 16"):
        decrypt_message(wire[:24] + struct.pack("!I", len(wire) - 1) + wire[28:-1], cipher, bytes(16), bytes(16))


def test_nat_t_framing() -> None:
    wire = S.main_mode_5().encode()
    framed = add_non_esp_marker(wire)
    assert classify_udp4500(framed) is Udp4500Kind.IKE
    assert strip_non_esp_marker(framed) == wire
    assert classify_udp4500(b"\xff") is Udp4500Kind.NAT_KEEPALIVE
    assert classify_udp4500(b"\x00\x00\x10\x01\x00\x00\x00\x01") is Udp4500Kind.ESP
    with pytest.raises(DecodeError):
        classify_udp4500(b"\x01\x02")
    with pytest.raises(DecodeError):
        strip_non_esp_marker(b"\x00\x00\x10\x01" + wire)


def test_header_errors_name_offsets() -> None:
    wire = S.main_mode_1().encode()
    with pytest.raises(DecodeError) as e:
        decode_message(wire[:20])
    assert e.value.offset == 0
    bad = wire[:17] + b"\x20" + wire[18:]
    with pytest.raises(DecodeError, match="not IKEv1"):
        decode_message(bad)
    with pytest.raises(DecodeError, match="exceeds"):
        decode_message(wire[:-1])


# ----------------------------------------------------------------- scapy


@pytest.mark.parametrize("build", S.ALL, ids=lambda f: f.__name__)
def test_scapy_reads_same_fields(build) -> None:
    msg = build()
    pkt = ISAKMP(msg.encode())
    assert pkt.init_cookie == msg.initiator_cookie and pkt.resp_cookie == msg.responder_cookie
    assert pkt.exch_type == msg.exchange_type and pkt.id == msg.message_id
    assert pkt.length == len(msg.encode()) and pkt.next_payload == msg.payloads[0].payload_type
    layer = pkt.payload
    for p in msg.payloads:
        assert layer.next_payload == (msg.payloads[msg.payloads.index(p) + 1].payload_type
                                      if p is not msg.payloads[-1] else 0)
        assert layer.length == 4 + len(p.encode_body())
        if isinstance(p, SaPayload):
            prop = layer.prop
            assert prop.proto == p.proposals[0].protocol_id and p.proposals[0].spi == prop.SPI
            assert prop.trans_nb == len(p.proposals[0].transforms)
            assert prop.trans.transform_id == p.proposals[0].transforms[0].transform_id
        for field_name in ("ke", "nonce", "hash", "VendorID"):
            if layer.fields.get(field_name) is not None:
                assert layer.fields[field_name] == p.data
        if layer.fields.get("IdentData") is not None:
            assert (layer.IDtype, layer.ProtoID, layer.Port) == (p.id_type, p.protocol_id, p.port)
            assert layer.IdentData == p.describe()
        layer = layer.payload


def test_scapy_reads_phase1_attributes() -> None:
    pkt = ISAKMP(S.main_mode_1().encode())
    assert pkt.payload.prop.trans.transforms == [
        ("Encryption", "AES-CBC"), ("KeyLength", 256), ("Hash", "SHA2-256"), ("Authentication", "PSK"),
        ("GroupDesc", "2048MODPgr"), ("LifeType", "Seconds"), ("LifeDuration", 86400)]


# ----------------------------------------------------------------- tshark


def _tshark() -> str:
    path = shutil.which("tshark")
    assert path, "tshark is required for this test (apt-get install tshark)"
    return path


def test_tshark_decodes_our_packets_cleanly(tmp_path) -> None:
    msgs = [b() for b in S.ALL]
    pkts = [IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=500, dport=500) / m.encode() for m in msgs]
    cipher = ike_cipher(7)
    enc, _ = encrypt_message(S.quick_mode_1(), cipher, bytes(16), bytes(16))
    pkts.append(IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=4500, dport=4500) / add_non_esp_marker(enc))
    path = tmp_path / "ours.pcap"
    wrpcap(str(path), pkts)
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([_tshark(), "-r", str(path), "-T", "fields", "-e", "frame.number", "-e",
                          "isakmp.typepayload", "-e", "isakmp.messageid", "-e", "isakmp.exchangetype"],
                         capture_output=True, text=True, env=env, check=True).stdout.splitlines()
    assert len(out) == len(pkts)
    from dmvpn.cli.decode_cmd import payload_type_sequence
    for line, m in zip(out, msgs, strict=False):
        _n, types, mid, xchg = line.split("\t")
        assert [int(x) for x in types.split(",")] == payload_type_sequence(m)
        assert int(mid, 16) == m.message_id and int(xchg) == m.exchange_type
    assert out[-1].split("\t")[3] == "32"
    expert = subprocess.run([_tshark(), "-r", str(path), "-Y", "_ws.malformed || _ws.expert.severity >= 6291456",
                             "-T", "fields", "-e", "frame.number", "-e", "_ws.expert.message"],
                            capture_output=True, text=True, env=env, check=True).stdout.strip()
    assert expert == ""
    verbose = subprocess.run([_tshark(), "-r", str(path), "-V"], capture_output=True, text=True, env=env,
                             check=True).stdout
    assert "Malformed" not in verbose and "Expert Info" not in verbose
    assert "IKE Attribute (t=12,l=4): Life-Duration: 86400" in verbose
    assert "IPsec Attribute (t=2,l=4): SA-Life-Duration: 3600" in verbose
    assert "SA-Life-Duration: 4608000" in verbose
    assert "Encapsulation-Mode: Transport" in verbose
    assert "R-U-THERE" in verbose
