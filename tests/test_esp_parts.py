"""The data path's ESP shortcuts give the same packets as the plain calls
(issue 16): ``encapsulate(prefix=)`` joins the tunnel's GRE header into
the plaintext, ``decapsulate(offset=)`` reads the ESP packet inside its
datagram, :func:`open_datagram` skips the outer checksum only when told the
kernel checked it, and a :class:`HeaderTemplate` remembers its headers by
length. Packets are checked with ``cryptography``'s primitives directly
(AES-CBC and HMAC-SHA-256, AES-GCM: RFC 4303 2, RFC 4106 3-5), not with our
decoder."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from dmvpn.crypto.esp_algorithms import EspAuthAlgorithm, EspTransform, EspTransformId
from dmvpn.ipsec.esp import PREFIX_STRIPPED, DropReason, EspDrop, decapsulate, encapsulate, open_datagram
from dmvpn.ipsec.sa import EspMode, SaDirection, SecurityAssociation
from dmvpn.ipsec.sad import SecurityAssociationDatabase
from dmvpn.runtime.randomness import SeededRandomSource
from dmvpn.tunnel.interface import TunnelInterface
from dmvpn.wire.errors import DecodeError
from dmvpn.wire.ipv4 import HEADER_CACHE_SIZE, IpProto, IPv4Header, decode_ipv4, header_template
from dmvpn.wire.udp import decode_udp, encode_udp, udp_header_template

CBC_SHA = EspTransform(EspTransformId.ESP_AES_CBC, 128, EspAuthAlgorithm.HMAC_SHA2_256)
GCM = EspTransform(EspTransformId.ESP_AES_GCM_16, 128, EspAuthAlgorithm.NONE)
NULL_SHA = EspTransform(EspTransformId.ESP_NULL, 0, EspAuthAlgorithm.HMAC_SHA2_256)
AKEY = bytes(range(32))
LOCAL, PEER = "192.0.2.1", "192.0.2.2"
GRE = bytes.fromhex("2000080000000001")  # the seed tunnel's header: key 1, IPv4


def pair(tf: EspTransform, esn: bool = False) -> tuple[SecurityAssociation, SecurityAssociation]:
    sad = SecurityAssociationDatabase(SeededRandomSource(5, "parts"))
    ekey = bytes(range(100, 100 + tf.encryption_key_bytes))
    kw = dict(peer=PEER, local=LOCAL, transform=tf, encryption_key=ekey, esn=esn,
              integrity_key=b"" if tf is GCM else AKEY)
    inb = SecurityAssociation(spi=0x1234, direction=SaDirection.INBOUND, **kw)  # type: ignore[arg-type]
    out = SecurityAssociation(spi=0x1234, direction=SaDirection.OUTBOUND, **kw)  # type: ignore[arg-type]
    sad.install_pair(0.0, inb, out)
    return inb, out


def open_with_primitives(tf: EspTransform, packet: bytes) -> bytes:
    """The plaintext (payload, padding, pad length, next header) of an ESP
    packet, by the RFCs and ``cryptography`` alone."""
    ekey = bytes(range(100, 100 + tf.encryption_key_bytes))
    if tf.encr is EspTransformId.ESP_AES_GCM_16:
        nonce = ekey[16:] + packet[8:16]  # RFC 4106 4: salt || IV
        return AESGCM(ekey[:16]).decrypt(nonce, packet[16:], packet[:8])  # AAD: SPI || seq (5)
    body, icv = packet[:-16], packet[-16:]  # HMAC-SHA-256-128 (RFC 4868)
    assert hmac.compare_digest(hmac.new(AKEY, body, hashlib.sha256).digest()[:16], icv)
    if tf.encr is EspTransformId.ESP_NULL:
        return body[8:]
    decryptor = Cipher(algorithms.AES(ekey), modes.CBC(body[8:24])).decryptor()
    return decryptor.update(body[24:]) + decryptor.finalize()


@pytest.mark.parametrize("tf", [CBC_SHA, GCM, NULL_SHA], ids=["cbc-hmac", "gcm", "null-hmac"])
def test_prefix_joins_the_gre_header_into_the_plaintext(tf: EspTransform) -> None:
    inb, out = pair(tf)
    overlay = bytes(range(256)) * 5 + b"tail"
    outer = header_template(LOCAL, PEER, 50, 255)
    datagram = encapsulate(out, 1.0, overlay, 47, outer, GRE)
    assert decode_ipv4(datagram)[0].total_length == len(datagram)  # checksum verified too
    plain = open_with_primitives(tf, datagram[20:])
    pad = plain[-2]
    assert plain[-1] == 47 and plain[:-2 - pad] == GRE + overlay
    assert out.bytes == len(GRE) + len(overlay) and out.pkts_encaps == 1
    # the receiver strips the same prefix, or keeps it when it is not asked to
    assert decapsulate(inb, 1.0, datagram, GRE, 20) == (47 | PREFIX_STRIPPED, overlay)
    again = encapsulate(out, 1.0, overlay, 47, None, GRE)
    assert decapsulate(inb, 1.0, again) == (47, GRE + overlay)
    assert inb.bytes == 2 * (len(GRE) + len(overlay))


def test_prefix_on_the_generic_path_esn() -> None:
    inb, out = pair(CBC_SHA, esn=True)
    packet = encapsulate(out, 1.0, b"inner", 47, None, GRE)
    assert decapsulate(inb, 1.0, packet) == (47, GRE + b"inner")


@pytest.mark.parametrize("tf", [CBC_SHA, GCM], ids=["cbc-hmac", "gcm"])
def test_offset_reads_the_packet_in_place_and_keeps_the_replay_window(tf: EspTransform) -> None:
    inb, out = pair(tf)
    header = b"\x45" + bytes(19)
    packets = [encapsulate(out, 1.0, bytes([i]) * 100, 47) for i in range(3)]
    assert decapsulate(inb, 1.0, header + packets[1], b"", 20) == (47, b"\x01" * 100)
    assert decapsulate(inb, 1.0, packets[0]) == (47, b"\x00" * 100)  # older, inside the window
    with pytest.raises(EspDrop) as err:
        decapsulate(inb, 1.0, header + packets[1], b"", 20)
    assert err.value.reason is DropReason.REPLAY_DUPLICATE
    forged = bytearray(header + packets[2])
    forged[-1] ^= 1
    with pytest.raises(EspDrop) as err:
        decapsulate(inb, 1.0, bytes(forged), b"", 20)
    assert err.value.reason is DropReason.INTEGRITY
    assert decapsulate(inb, 1.0, header + packets[2], b"", 20) == (47, b"\x02" * 100)
    assert (inb.pkts_decaps, inb.replay_drops, inb.integrity_failures) == (3, 1, 1)


def sealed_datagram(out: SecurityAssociation, payload: bytes) -> bytes:
    return encapsulate(out, 1.0, payload, 47, header_template(PEER, LOCAL, 50, 64))


def test_open_datagram_checks_the_checksum_unless_the_kernel_did() -> None:
    inb, out = pair(CBC_SHA)
    sad = inb.sad
    assert sad is not None
    bad = bytearray(sealed_datagram(out, b"one"))
    bad[10] ^= 0xFF
    with pytest.raises(DecodeError, match="checksum"):
        open_datagram(sad, 1.0, bytes(bad))
    assert inb.pkts_decaps == 0
    sa, hlen, next_header, payload = open_datagram(sad, 1.0, bytes(bad), None, verify_checksum=False)
    assert (sa, hlen, next_header, payload) == (inb, 20, 47, b"one")


def test_open_datagram_other_shapes_take_the_general_path() -> None:
    inb, out = pair(CBC_SHA)
    sad = inb.sad
    assert sad is not None
    esp = encapsulate(out, 1.0, b"padded", 47)
    padded = IPv4Header(PEER, LOCAL, IpProto.ESP).encode(esp) + b"\x00" * 6  # link-layer padding
    assert open_datagram(sad, 1.0, padded)[1:] == (20, 47, b"padded")
    options = IPv4Header(PEER, LOCAL, IpProto.ESP, options=b"\x01\x01\x01\x00").encode(
        encapsulate(out, 1.0, b"options", 47))
    assert open_datagram(sad, 1.0, options)[1:] == (24, 47, b"options")
    udp = IPv4Header(PEER, LOCAL, IpProto.UDP, options=b"\x01\x01\x01\x00").encode(
        encode_udp(PEER, LOCAL, 4500, 4500, encapsulate(out, 1.0, b"in udp", 47)))
    assert open_datagram(sad, 1.0, udp)[1:] == (24, 47, b"in udp")
    with pytest.raises(DecodeError, match="truncated"):
        open_datagram(sad, 1.0, IPv4Header(PEER, LOCAL, IpProto.ESP).encode(b"\x00\x00\x12"))
    with pytest.raises(DecodeError, match="not ESP"):
        open_datagram(sad, 1.0, IPv4Header(PEER, LOCAL, IpProto.GRE).encode(bytes(12)))
    assert inb.pkts_decaps == 3


def test_tunnel_mode_sa_refuses_a_non_ip_payload() -> None:
    sad = SecurityAssociationDatabase(SeededRandomSource(5, "tunnel"))
    kw = dict(peer=PEER, local=LOCAL, transform=GCM, encryption_key=bytes(20), mode=EspMode.TUNNEL)
    inb = SecurityAssociation(spi=0x777, direction=SaDirection.INBOUND, **kw)  # type: ignore[arg-type]
    out = SecurityAssociation(spi=0x777, direction=SaDirection.OUTBOUND, **kw)  # type: ignore[arg-type]
    sad.install_pair(0.0, inb, out)
    with pytest.raises(EspDrop, match="next header 47 in tunnel mode"):
        open_datagram(sad, 1.0, sealed_datagram(out, b"gre"))
    assert inb.invalid_prot_drops == 1


def test_header_template_remembers_headers_and_starts_over() -> None:
    template = header_template("10.0.0.1", "10.0.0.2", 50, 255)
    for length in [*range(HEADER_CACHE_SIZE + 40), 1400, 65515]:
        header = template.header(length)
        assert header == IPv4Header("10.0.0.1", "10.0.0.2", IpProto.ESP, ttl=255).encode(bytes(length))[:20]
        assert template.header(length) is header  # built once
    with pytest.raises(ValueError, match="exceeds 65535"):
        template.header(65516)


def test_udp_header_template_is_ipv4_and_udp_with_checksum_zero() -> None:
    """RFC 3948 2.1: ESP in UDP goes with a zero UDP checksum; the IPv4
    header is the one IPv4Header builds, its checksum right."""
    template = udp_header_template("10.0.0.1", "10.0.0.2", 4500, 4501, 255, 0x20)
    for length in [*range(HEADER_CACHE_SIZE + 40), 1400, 65507]:
        datagram = template.encode(bytes(length))
        header, payload = decode_ipv4(datagram)
        assert (header.protocol, header.ttl, header.tos, header.total_length) == (IpProto.UDP, 255, 0x20, 28 + length)
        assert datagram[:20] == IPv4Header("10.0.0.1", "10.0.0.2", IpProto.UDP, ttl=255, tos=0x20).encode(
            bytes(8 + length))[:20]
        udp = decode_udp(payload, "10.0.0.1", "10.0.0.2")
        assert (udp.src_port, udp.dst_port, udp.checksum, len(udp.payload)) == (4500, 4501, 0, length)
        assert template.header(length) is template.header(length)
    with pytest.raises(ValueError, match="exceeds 65535"):
        template.header(65508)
    with pytest.raises(ValueError, match="out of range"):
        udp_header_template("10.0.0.1", "10.0.0.2", 4500, 70000)


def test_open_datagram_reads_esp_in_udp_in_place_when_no_checksum_needs_checking() -> None:
    inb, out = pair(CBC_SHA)
    sad = inb.sad
    assert sad is not None
    zero = encapsulate(out, 1.0, b"zero", 47, udp_header_template(PEER, LOCAL, 4500, 4500))
    assert open_datagram(sad, 1.0, zero)[1:] == (20, 47, b"zero")
    summed = IPv4Header(PEER, LOCAL, IpProto.UDP).encode(
        encode_udp(PEER, LOCAL, 4500, 4500, encapsulate(out, 1.0, b"summed", 47)))
    assert summed[26:28] != b"\x00\x00"
    assert open_datagram(sad, 1.0, summed)[1:] == (20, 47, b"summed")  # the general path
    short = bytearray(encapsulate(out, 1.0, b"short", 47, udp_header_template(PEER, LOCAL, 4500, 4500)))
    short[24:26] = (len(short) - 21).to_bytes(2, "big")  # UDP length one short: its payload ends a byte early
    with pytest.raises(EspDrop, match="do not fit"):
        open_datagram(sad, 1.0, bytes(short), None, False)
    assert inb.pkts_decaps == 2 and inb.invalid_len_drops == 1


def test_plain_output_counts_as_encapsulate_does() -> None:
    tunnel = TunnelInterface("Tunnel0", address="10.2.2.2/24", source="172.17.3.2", key=1,
                             static_maps={"10.2.2.1": "172.17.3.1"})
    assert tunnel.plain_header == GRE
    assert tunnel.plain_output(b"x" * 10, "10.2.2.1") == "172.17.3.1"
    assert tunnel.encapsulate(b"y" * 5, "10.2.2.1") == ("172.17.3.1", GRE + b"y" * 5)
    assert (tunnel.counters.output_packets, tunnel.counters.output_bytes) == (2, 15)
    assert tunnel.plain_output(b"x", "10.2.2.9") is None  # no NBMA: encapsulate names the drop
    tunnel.shutdown = True
    assert tunnel.plain_output(b"x", "10.2.2.1") is None
    assert (tunnel.counters.output_packets, tunnel.counters.output_drops) == (2, 0)
    sequenced = TunnelInterface("Tunnel1", address="10.3.3.2/24", source="172.17.3.2", sequence=True,
                                static_maps={"10.3.3.1": "172.17.3.1"})
    assert sequenced.plain_output(b"x", "10.3.3.1") is None  # its header varies
