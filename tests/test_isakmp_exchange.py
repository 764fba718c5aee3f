"""A whole IKEv1 PSK exchange built with our crypto + wire API (Main Mode,
Quick Mode with PFS, Informational DELETE), checked two ways: the receiving
side re-verifies every hash from the bytes it received, and tshark, given
only the initiator cookie and our derived encryption key, decrypts every
message along its own IV chain to the same payloads and hash values."""

from __future__ import annotations

import os
import shutil
import subprocess

from scapy.layers.inet import IP, UDP
from scapy.utils import wrpcap

from dmvpn.cli.decode_cmd import decode_capture, load_ikev1_keys
from dmvpn.crypto import ikev1_kdf as kdf
from dmvpn.crypto.dh_groups import DhKeyPair
from dmvpn.crypto.ike_algorithms import EncryptionAlgorithm, HashAlgorithm, ike_cipher
from dmvpn.wire.isakmp import IsakmpMessage, add_non_esp_marker, decrypt_message, encode_payloads, encrypt_message
from dmvpn.wire.isakmp_payloads import (
    Attribute,
    DeletePayload,
    HashPayload,
    IdPayload,
    KePayload,
    NoncePayload,
    Proposal,
    SaPayload,
    Transform,
)
from dmvpn.wire.isakmp_registry import (
    AuthenticationAlgorithm,
    AuthenticationMethod,
    EncapsulationMode,
    EspTransformId,
    IsakmpTransformId,
    LifeType,
    ProtocolId,
)
from dmvpn.wire.isakmp_registry import (
    ExchangeType as X,
)
from dmvpn.wire.isakmp_registry import (
    Phase1Attribute as P1,
)
from dmvpn.wire.isakmp_registry import (
    Phase2Attribute as P2,
)

HASH = HashAlgorithm.SHA
PSK = b"lab-psk-123"
CKY_I, CKY_R = bytes.fromhex("1111222233334444"), bytes.fromhex("5555666677778888")
QM_ID, INFO_ID = 0x2AB3C4D5, 0x01020304


class Counter:
    """A deterministic RandomSource."""

    def __init__(self, start: int) -> None:
        self.n = start

    def token_bytes(self, n: int) -> bytes:
        out = bytes((self.n + i) % 251 for i in range(n))
        self.n += 17
        return out

    def uniform(self, a: float, b: float) -> float:
        return a


def _sa_p1() -> SaPayload:
    t = Transform(1, IsakmpTransformId.KEY_IKE, [
        Attribute(P1.ENCRYPTION_ALGORITHM, EncryptionAlgorithm.AES_CBC), Attribute(P1.KEY_LENGTH, 256),
        Attribute(P1.HASH_ALGORITHM, HASH), Attribute(P1.AUTHENTICATION_METHOD, AuthenticationMethod.PRE_SHARED_KEY),
        Attribute(P1.GROUP_DESCRIPTION, 14), Attribute(P1.LIFE_TYPE, LifeType.SECONDS),
        Attribute(P1.LIFE_DURATION, 3600)])
    return SaPayload([Proposal(1, ProtocolId.ISAKMP, b"", [t])])


def _sa_p2(spi: bytes) -> SaPayload:
    t = Transform(1, EspTransformId.ESP_AES_CBC, [
        Attribute(P2.ENCAPSULATION_MODE, EncapsulationMode.TRANSPORT),
        Attribute(P2.AUTHENTICATION_ALGORITHM, AuthenticationAlgorithm.HMAC_SHA2_256),
        Attribute(P2.KEY_LENGTH, 128), Attribute(P2.GROUP_DESCRIPTION, 2),
        Attribute(P2.SA_LIFE_TYPE, LifeType.SECONDS), Attribute(P2.SA_LIFE_DURATION, 3600)])
    return SaPayload([Proposal(1, ProtocolId.IPSEC_ESP, spi, [t])])


def _exchange():
    """Returns (datagrams as (src, dst, bytes), encryption key, keys)."""
    rnd_i, rnd_r = Counter(1), Counter(100)
    out = []
    sa_i = _sa_p1()
    m1 = IsakmpMessage(CKY_I, bytes(8), X.IDENTITY_PROTECTION, payloads=[sa_i])
    m2 = IsakmpMessage(CKY_I, CKY_R, X.IDENTITY_PROTECTION, payloads=[_sa_p1()])
    dh_i, dh_r = DhKeyPair.generate(14, rnd_i), DhKeyPair.generate(14, rnd_r)
    ni, nr = rnd_i.token_bytes(32), rnd_r.token_bytes(32)
    m3 = IsakmpMessage(CKY_I, CKY_R, X.IDENTITY_PROTECTION, payloads=[KePayload(dh_i.public_value), NoncePayload(ni)])
    m4 = IsakmpMessage(CKY_I, CKY_R, X.IDENTITY_PROTECTION, payloads=[KePayload(dh_r.public_value), NoncePayload(nr)])
    out += [("i", m1.encode()), ("r", m2.encode()), ("i", m3.encode()), ("r", m4.encode())]

    g_xy = dh_i.shared_secret(dh_r.public_value)
    assert g_xy == dh_r.shared_secret(dh_i.public_value)
    keys = kdf.derive_keys_psk(HASH, PSK, ni, nr, g_xy, CKY_I, CKY_R)
    cipher = ike_cipher(EncryptionAlgorithm.AES_CBC)
    ka = kdf.encryption_key(HASH, keys.skeyid_e, 32)
    iv = kdf.phase1_iv(HASH, dh_i.public_value, dh_r.public_value, cipher.block_size)

    sai_b = sa_i.encode_body()
    id_i, id_r = IdPayload.ipv4("192.0.2.1", 17, 500), IdPayload.ipv4("192.0.2.2", 17, 500)
    h_i = kdf.hash_i(HASH, keys.skeyid, dh_i.public_value, dh_r.public_value, CKY_I, CKY_R, sai_b, id_i.encode_body())
    h_r = kdf.hash_r(HASH, keys.skeyid, dh_i.public_value, dh_r.public_value, CKY_I, CKY_R, sai_b, id_r.encode_body())
    w5, iv = encrypt_message(IsakmpMessage(CKY_I, CKY_R, X.IDENTITY_PROTECTION, payloads=[id_i, HashPayload(h_i)]),
                             cipher, ka, iv)
    w6, iv = encrypt_message(IsakmpMessage(CKY_I, CKY_R, X.IDENTITY_PROTECTION, payloads=[id_r, HashPayload(h_r)]),
                             cipher, ka, iv)
    last_p1 = iv
    out += [("i", w5), ("r", w6)]

    # Quick Mode with PFS (group 2), DMVPN-style GRE host IDs
    qdh_i, qdh_r = DhKeyPair.generate(2, rnd_i), DhKeyPair.generate(2, rnd_r)
    qni, qnr = rnd_i.token_bytes(16), rnd_r.token_bytes(16)
    spi_i, spi_r = bytes.fromhex("c0000001"), bytes.fromhex("c0000002")
    ids = [IdPayload.ipv4("192.0.2.1", 47), IdPayload.ipv4("192.0.2.2", 47)]
    rest1 = [_sa_p2(spi_i), NoncePayload(qni), KePayload(qdh_i.public_value), *ids]
    rest2 = [_sa_p2(spi_r), NoncePayload(qnr), KePayload(qdh_r.public_value), *ids]
    h1 = kdf.quick_mode_hash1(HASH, keys.skeyid_a, QM_ID, encode_payloads(rest1))
    h2 = kdf.quick_mode_hash2(HASH, keys.skeyid_a, QM_ID, qni, encode_payloads(rest2))
    h3 = kdf.quick_mode_hash3(HASH, keys.skeyid_a, QM_ID, qni, qnr)
    qiv = kdf.exchange_iv(HASH, last_p1, QM_ID, cipher.block_size)
    q1, qiv = encrypt_message(IsakmpMessage(CKY_I, CKY_R, X.QUICK_MODE, message_id=QM_ID,
                                            payloads=[HashPayload(h1), *rest1]), cipher, ka, qiv)
    q2, qiv = encrypt_message(IsakmpMessage(CKY_I, CKY_R, X.QUICK_MODE, message_id=QM_ID,
                                            payloads=[HashPayload(h2), *rest2]), cipher, ka, qiv)
    q3, qiv = encrypt_message(IsakmpMessage(CKY_I, CKY_R, X.QUICK_MODE, message_id=QM_ID,
                                            payloads=[HashPayload(h3)]), cipher, ka, qiv)
    out += [("i", q1), ("r", q2), ("i", q3)]

    delete = DeletePayload(ProtocolId.IPSEC_ESP, [spi_i])
    hd = kdf.informational_hash(HASH, keys.skeyid_a, INFO_ID, encode_payloads([delete]))
    d1, _ = encrypt_message(IsakmpMessage(CKY_I, CKY_R, X.INFORMATIONAL, message_id=INFO_ID,
                                          payloads=[HashPayload(hd), delete]),
                            cipher, ka, kdf.exchange_iv(HASH, last_p1, INFO_ID, cipher.block_size))
    out.append(("r", d1))
    ctx = dict(keys=keys, ka=ka, cipher=cipher, dh=(dh_i, dh_r), qdh=(qdh_i, qdh_r), n=(ni, nr), qn=(qni, qnr),
               sai_b=sai_b, last_p1=last_p1, spis=(spi_i, spi_r))
    return out, ctx


def test_receiver_verifies_every_hash_from_received_bytes() -> None:
    msgs, c = _exchange()
    keys, ka, cipher = c["keys"], c["ka"], c["cipher"]
    dh_i, dh_r = c["dh"]
    iv = kdf.phase1_iv(HASH, dh_i.public_value, dh_r.public_value, 16)
    m5, iv = decrypt_message(msgs[4][1], cipher, ka, iv)
    idii_b = m5.raw_payloads[0][4:]
    assert m5.payloads[1].data == kdf.hash_i(HASH, keys.skeyid, dh_i.public_value, dh_r.public_value,
                                             CKY_I, CKY_R, c["sai_b"], idii_b)
    _m6, iv = decrypt_message(msgs[5][1], cipher, ka, iv)
    assert iv == c["last_p1"]
    qiv = kdf.exchange_iv(HASH, iv, QM_ID, 16)
    q1, qiv = decrypt_message(msgs[6][1], cipher, ka, qiv)
    assert q1.payloads[0].data == kdf.quick_mode_hash1(HASH, keys.skeyid_a, QM_ID, b"".join(q1.raw_payloads[1:]))
    q2, qiv = decrypt_message(msgs[7][1], cipher, ka, qiv)
    qni = q1.payloads[2].data
    assert q2.payloads[0].data == kdf.quick_mode_hash2(HASH, keys.skeyid_a, QM_ID, qni, b"".join(q2.raw_payloads[1:]))
    q3, _ = decrypt_message(msgs[8][1], cipher, ka, qiv)
    assert q3.payloads[0].data == kdf.quick_mode_hash3(HASH, keys.skeyid_a, QM_ID, qni, q2.payloads[2].data)
    # KEYMAT with PFS is the same on both sides
    qdh_i, qdh_r = c["qdh"]
    g_qm = qdh_r.shared_secret(q1.payloads[3].data)
    assert g_qm == qdh_i.shared_secret(qdh_r.public_value)
    km_r = kdf.keymat(HASH, keys.skeyid_d, 3, c["spis"][1], *c["qn"], 16 + 32, g_qm)
    assert len(km_r) == 48 and km_r != kdf.keymat(HASH, keys.skeyid_d, 3, c["spis"][1], *c["qn"], 48)


def test_tshark_decrypts_our_exchange(tmp_path) -> None:
    tshark = shutil.which("tshark")
    assert tshark, "tshark is required for this test (apt-get install tshark)"
    msgs, c = _exchange()
    addr = {"i": ("192.0.2.1", "192.0.2.2"), "r": ("192.0.2.2", "192.0.2.1")}
    pkts = []
    for n, (who, wire) in enumerate(msgs):
        src, dst = addr[who]
        if n < 4:
            pkts.append(IP(src=src, dst=dst) / UDP(sport=500, dport=500) / wire)
        else:  # NAT-T float, as strongSwan does here
            pkts.append(IP(src=src, dst=dst) / UDP(sport=4500, dport=4500) / add_non_esp_marker(wire))
    pcap = tmp_path / "exchange.pcap"
    wrpcap(str(pcap), pkts)
    keyfile = tmp_path / "keys"
    keyfile.write_text(f"{CKY_I.hex()},{c['ka'].hex()}\n")
    args = [tshark, "-r", str(pcap), "-o", f"uat:ikev1_decryption_table:{CKY_I.hex()},{c['ka'].hex()}",
            "-T", "fields", "-e", "frame.number", "-e", "isakmp.typepayload", "-e", "isakmp.hash"]
    env = dict(os.environ, HOME=str(tmp_path))
    rows = [line.split("\t") for line in subprocess.run(args, capture_output=True, text=True, env=env,
                                                        check=True).stdout.splitlines()]
    assert len(rows) == len(msgs)
    ours = decode_capture(pcap, load_ikev1_keys(keyfile))
    assert len(ours) == len(msgs) and all(r.get("decrypted") for r in ours[4:])
    for row, rec in zip(rows, ours, strict=False):
        _frame, types, hashes = row
        flat = []
        for p in rec["payloads"]:
            flat.append(p["type_number"])
            for pr in p.get("proposals", []):
                flat += [2] + [3] * len(pr["transforms"])
        assert [int(t) for t in types.split(",")] == flat
        assert (hashes.split(",") if hashes else []) == [p["data"] for p in rec["payloads"] if p["type_number"] == 8]
    assert rows[-1][1] == "8,12"
    expert = subprocess.run([*args[:5], "-Y", "_ws.malformed || _ws.expert.severity >= 6291456"],
                            capture_output=True, text=True, env=env, check=True).stdout.strip()
    assert expert == ""
