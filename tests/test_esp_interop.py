"""Our ESP packets against two independent implementations: scapy's
SecurityAssociation (both directions) and Wireshark's dissector (tshark,
keys given through the esp_sa table), for every transform in transport and
tunnel mode, with and without ESN."""

from __future__ import annotations

import random
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from scapy.all import ICMP, IP, UDP, Raw, raw, wrpcap
from scapy.layers.ipsec import ESP
from scapy.layers.ipsec import SecurityAssociation as ScapySA

from dmvpn.crypto.esp_algorithms import EspAuthAlgorithm as A
from dmvpn.crypto.esp_algorithms import EspTransform
from dmvpn.crypto.esp_algorithms import EspTransformId as E
from dmvpn.ipsec.esp import protect, unprotect
from dmvpn.ipsec.sa import EspMode, SaDirection, SecurityAssociation
from dmvpn.ipsec.sad import SecurityAssociationDatabase
from dmvpn.runtime.randomness import SeededRandomSource
from dmvpn.wire.ipv4 import decode_ipv4

LOCAL, PEER = "192.0.2.1", "198.51.100.2"

SCAPY_CRYPT = {E.ESP_AES_CBC: "AES-CBC", E.ESP_3DES: "3DES", E.ESP_NULL: "NULL",
               E.ESP_AES_GCM_8: "AES-GCM", E.ESP_AES_GCM_12: "AES-GCM", E.ESP_AES_GCM_16: "AES-GCM"}
SCAPY_AUTH = {A.NONE: "NULL", A.HMAC_MD5: "HMAC-MD5-96", A.HMAC_SHA: "HMAC-SHA1-96",
              A.HMAC_SHA2_256: "SHA2-256-128", A.HMAC_SHA2_384: "SHA2-384-192", A.HMAC_SHA2_512: "SHA2-512-256"}
WS_CRYPT = {E.ESP_AES_CBC: "AES-CBC [RFC3602]", E.ESP_3DES: "TripleDES-CBC [RFC2451]", E.ESP_NULL: "NULL",
            E.ESP_AES_GCM_8: "AES-GCM with 8 octet ICV [RFC4106]",
            E.ESP_AES_GCM_12: "AES-GCM with 12 octet ICV [RFC4106]",
            E.ESP_AES_GCM_16: "AES-GCM with 16 octet ICV [RFC4106]"}
WS_AUTH = {A.NONE: "NULL", A.HMAC_MD5: "HMAC-MD5-96 [RFC2403]", A.HMAC_SHA: "HMAC-SHA-1-96 [RFC2404]",
           A.HMAC_SHA2_256: "HMAC-SHA-256-128 [RFC4868]", A.HMAC_SHA2_384: "HMAC-SHA-384-192 [RFC4868]",
           A.HMAC_SHA2_512: "HMAC-SHA-512-256 [RFC4868]"}

TRANSFORMS = [
    EspTransform(E.ESP_AES_CBC, 128, A.HMAC_SHA2_256),  # the seed's esp-aes esp-sha256-hmac
    EspTransform(E.ESP_AES_CBC, 128, A.HMAC_MD5),
    EspTransform(E.ESP_AES_CBC, 128, A.HMAC_SHA),
    EspTransform(E.ESP_AES_CBC, 192, A.HMAC_SHA2_384),
    EspTransform(E.ESP_AES_CBC, 256, A.HMAC_SHA2_512),
    EspTransform(E.ESP_AES_GCM_16, 128, A.NONE),
    EspTransform(E.ESP_AES_GCM_16, 256, A.NONE),
    EspTransform(E.ESP_AES_GCM_12, 128, A.NONE),
    EspTransform(E.ESP_AES_GCM_8, 192, A.NONE),
    EspTransform(E.ESP_NULL, 0, A.HMAC_SHA2_256),
    EspTransform(E.ESP_3DES, 192, A.HMAC_SHA),
]


@dataclass
class Case:
    tf: EspTransform
    mode: EspMode
    esn: bool
    spi: int
    ekey: bytes
    akey: bytes

    @property
    def id(self) -> str:
        name = self.tf.ios_name.replace(" ", "+")
        if self.tf.is_aead:
            name += f"-icv{self.tf.icv_bytes}"
        return f"{name}-{self.mode.name.lower()}{'-esn' if self.esn else ''}"


def make_cases() -> list[Case]:
    rng = random.Random(4303)
    cases = []
    for tf in TRANSFORMS:
        for mode in (EspMode.TRANSPORT, EspMode.TUNNEL):
            for esn in (False, True):
                if esn and tf.encr in (E.ESP_NULL, E.ESP_3DES):
                    continue
                cases.append(Case(tf, mode, esn, 0x10000 + len(cases), rng.randbytes(tf.encryption_key_bytes),
                                  rng.randbytes(tf.integrity_key_bytes)))
    return cases


CASES = make_cases()
ESN_HIGH = 7  # ESN cases start past 2^32 so the high half matters


def our_pair(case: Case) -> tuple[SecurityAssociationDatabase, SecurityAssociation, SecurityAssociation]:
    sad = SecurityAssociationDatabase(SeededRandomSource(1, case.id))
    kw = dict(peer=PEER, local=LOCAL, transform=case.tf, encryption_key=case.ekey, integrity_key=case.akey,
              mode=case.mode, esn=case.esn)
    out = SecurityAssociation(spi=case.spi, direction=SaDirection.OUTBOUND, **kw)  # type: ignore[arg-type]
    inb = SecurityAssociation(spi=case.spi, direction=SaDirection.INBOUND, **kw)  # type: ignore[arg-type]
    sad.install_pair(0.0, inb, out)
    if case.esn:
        out.seq = (ESN_HIGH << 32) + 10
        inb.replay.top = (ESN_HIGH << 32)  # type: ignore[union-attr]
    return sad, inb, out


def scapy_sa(case: Case) -> ScapySA:
    return ScapySA(
        ESP, spi=case.spi, crypt_algo=SCAPY_CRYPT[case.tf.encr], crypt_key=case.ekey or None,
        crypt_icv_size=case.tf.icv_bytes if case.tf.is_aead else None,
        auth_algo=SCAPY_AUTH[case.tf.auth], auth_key=case.akey or None,
        tunnel_header=IP(src=LOCAL, dst=PEER) if case.mode is EspMode.TUNNEL else None,
        esn_en=case.esn, esn=ESN_HIGH if case.esn else 0, seq_num=11,
    )


def inner_packet(i: int, size: int) -> bytes:
    """An ICMP echo between the two endpoints (transport mode protects its
    payload, tunnel mode the whole datagram)."""
    return raw(IP(src=LOCAL, dst=PEER, id=i) / ICMP(id=77, seq=i) / Raw((bytes(range(256)) * 6)[:size]))


# scapy hands truncated GCM tags to cryptography's AESGCM, which only takes
# 16-byte tags, so 8/12-byte ICVs are checked by tshark and the RFC 4106
# vectors (test_esp_vectors.py) instead.
SCAPY_CASES = [c for c in CASES if not (c.tf.is_aead and c.tf.icv_bytes != 16)]


@pytest.mark.parametrize("case", SCAPY_CASES, ids=lambda c: c.id)
def test_scapy_decrypts_ours_and_we_decrypt_scapys(case: Case) -> None:
    sad, inb, out = our_pair(case)
    theirs = scapy_sa(case)
    for i, size in enumerate((0, 1, 13, 100, 1400)):
        inner = inner_packet(i, size)
        ours = protect(out, 1.0, inner)
        assert IP(ours).proto == 50
        decrypted = theirs.decrypt(IP(ours))
        assert raw(decrypted).endswith(inner[20:])
        if case.mode is EspMode.TUNNEL:
            assert raw(decrypted)[-len(inner):] == inner
        # and the other way: scapy encrypts, we decapsulate
        theirs.seq_num = (out.seq & 0xFFFFFFFF) + 1000
        sealed = raw(theirs.encrypt(IP(inner)))
        sa, plain = unprotect(sad, 2.0, sealed)
        assert sa is inb
        if case.mode is EspMode.TUNNEL:
            assert plain == inner
        else:
            header, payload = decode_ipv4(plain)
            assert header.protocol == 1 and payload == inner[20:]
    assert inb.pkts_decaps == 5 and inb.recv_errors == 0 and out.pkts_encaps == 5


def tshark() -> str:
    path = shutil.which("tshark")
    assert path, "tshark is required for this oracle test (apt-get install tshark)"
    return path


def test_tshark_decrypts_and_verifies_ours(tmp_path: Path) -> None:
    """One capture with a few packets of every case; Wireshark gets all
    keys and must decrypt each, verify each HMAC ICV and find the ICMP
    echo inside with the right sequence."""
    packets, uat, expect = [], [], {}
    for case in CASES:
        if case.esn:
            continue  # Wireshark's ESP dissector has no ESN setting
        _, _, out = our_pair(case)
        uat += ["-o", "uat:esp_sa:" + ",".join(f'"{v}"' for v in (
            "IPv4", LOCAL, PEER, f"0x{case.spi:08x}", WS_CRYPT[case.tf.encr],
            "0x" + case.ekey.hex() if case.ekey else "", WS_AUTH[case.tf.auth],
            "0x" + case.akey.hex() if case.akey else ""))]
        for i, size in enumerate((3, 700)):
            packets.append(IP(protect(out, 1.0, inner_packet(i, size))))
            expect[(case.spi, i + 1)] = (case, i)
    pcap = tmp_path / "ours.pcap"
    wrpcap(str(pcap), packets)
    home = tmp_path / "home"
    home.mkdir()
    result = subprocess.run(
        [tshark(), "-r", str(pcap), "-o", "esp.enable_encryption_decode:TRUE",
         "-o", "esp.enable_authentication_check:TRUE", *uat,
         "-T", "fields", "-E", "occurrence=l", "-e", "esp.spi", "-e", "esp.sequence", "-e", "esp.protocol",
         "-e", "esp.icv_good", "-e", "icmp.seq", "-e", "icmp.type"],
        capture_output=True, text=True, env={"HOME": str(home), "PATH": "/usr/bin:/bin"}, timeout=60, check=True,
    )
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert len(rows) == len(packets)
    seen = set()
    for spi, seq, proto, icv_good, icmp_seq, icmp_type in rows:
        case, i = expect[(int(spi, 16), int(seq))]
        assert int(proto, 0) == (4 if case.mode is EspMode.TUNNEL else 1), case.id
        assert (int(icmp_seq), int(icmp_type)) == (i, 8), case.id
        if not case.tf.is_aead:
            assert icv_good == "1", case.id
        seen.add(case.id)
    assert len(seen) == len([c for c in CASES if not c.esn])


def test_udp_encapsulated_esp_rfc3948_both_ways() -> None:
    """ESP in UDP 4500 (NAT-T, what strongSwan's userspace data plane uses)."""
    case = next(c for c in CASES if c.mode is EspMode.TUNNEL and not c.esn and c.tf.encr == E.ESP_AES_CBC)
    sad, inb, out = our_pair(case)
    out.udp_encap = inb.udp_encap = (4500, 4500)
    theirs = ScapySA(
        ESP, spi=case.spi, crypt_algo="AES-CBC", crypt_key=case.ekey, auth_algo=SCAPY_AUTH[case.tf.auth],
        auth_key=case.akey, tunnel_header=IP(src=LOCAL, dst=PEER), nat_t_header=UDP(sport=4500, dport=4500))
    inner = inner_packet(1, 200)
    ours = IP(protect(out, 1.0, inner))
    assert ours.proto == 17 and ours[UDP].dport == 4500 and raw(ours[UDP].payload)[:4] == case.spi.to_bytes(4, "big")
    assert raw(theirs.decrypt(ours)).endswith(inner)
    theirs.seq_num = 50
    assert unprotect(sad, 2.0, raw(theirs.encrypt(IP(inner))))[1] == inner
