"""The NHRP codec against tcpdump's captures and decodes, the golden vectors
of NHRP.md 2.9, tcpdump's fuzz regressions and hypothesis.

tcpdump's ``.out`` files are an independent decoder's reading of the same
bytes: every NHRP line there must match the fields our decoder returns."""

from __future__ import annotations

import contextlib
import ipaddress
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmvpn.wire.errors import DecodeError
from dmvpn.wire.gre import GRE_PROTO_NHRP, decode_gre
from dmvpn.wire.nhrp import (
    END_EXTENSION,
    AuthenticationExtension,
    Cie,
    CieListExtension,
    ExtensionType,
    NhrpPacket,
    PacketType,
    RawExtension,
    VendorPrivateExtension,
    decode_nhrp,
    encode_nhrp,
)
from dmvpn.wire.pcap_reader import ipv4_packet, read_frames

ORACLES = next(
    p / "shared" / "oracles" for p in Path(__file__).resolve().parents if (p / "shared" / "oracles").is_dir()
)
TCPDUMP = ORACLES / "pcaps" / "tcpdump"
CAPTURES = ("NHRP_registration.pcap", "NHRP-responder-address.pcap", "nhrp-trace.pcap", "ios_nhrp.pcap", "nhrp.pcapng")

TYPE_NAMES = {
    "res request": 1, "res reply": 2, "reg request": 3, "reg reply": 4,
    "purge request": 5, "purge reply": 6, "error indication": 7, "traffic indication": 8,
}  # fmt: skip


def ip(raw: bytes) -> str:
    return str(ipaddress.IPv4Address(raw))


def gre_nhrp(path: Path) -> list[tuple[int, int | None, bytes]]:
    """(frame number, GRE key, NHRP bytes) for every GRE/NHRP frame."""
    out = []
    for frame in read_frames(path):
        packet = ipv4_packet(frame)
        assert packet is not None and packet[9] == 47, f"{path.name} frame {frame.number} is not GRE"
        gre, payload = decode_gre(packet[(packet[0] & 15) * 4 :])
        assert gre.protocol == GRE_PROTO_NHRP
        out.append((frame.number, gre.key, payload))
    return out


_LINE = re.compile(
    r"NHRP: (?P<type>[a-z ]+), (?:id (?P<id>\d+)|code <(?P<code>[^>]+)>), hopcnt (?P<hop>\d+), "
    r"src nbma (?P<nbma>[\d.]+), (?P<src>[\d.]+) -> (?P<dst>[\d.]+)"
    r"(?: \(code (?P<cc>\d+), pl (?P<pl>\d+), mtu (?P<mtu>\d+), htime (?P<ht>\d+), pref (?P<pref>\d+)"
    r"(?:, nbma (?P<cnbma>[\d.]+), proto (?P<cproto>[\d.]+))?\))?$"
)
_KEY = re.compile(r"GREv0, Flags \[(?P<flags>[^]]*)\](?:, key=0x(?P<key>[0-9a-f]+))?, length (?P<len>\d+)")


def tcpdump_records(out: Path) -> dict[int, dict[str, str | None]]:
    """Frame number -> the fields tcpdump printed for its GRE and NHRP lines."""
    records: dict[int, dict[str, str | None]] = {}
    number = 0
    for line in out.read_text().splitlines():
        head = re.match(r"\s+(\d+)\s+\d{4}-", line)
        if head:
            number = int(head.group(1))
            continue
        if (m := _KEY.search(line)) is not None:
            records.setdefault(number, {}).update(m.groupdict())
        if (m := _LINE.search(line)) is not None:
            records.setdefault(number, {}).update(m.groupdict())
    return records


@pytest.mark.parametrize("name", CAPTURES)
def test_captures_decode_to_what_tcpdump_prints(name: str) -> None:
    out = TCPDUMP / (name.rsplit(".", 1)[0] + ".out")
    expected = tcpdump_records(out)
    frames = gre_nhrp(TCPDUMP / name)
    assert len(frames) == len(expected) > 0
    for number, key, raw in frames:
        want = expected[number]
        pkt = decode_nhrp(raw)
        assert (key is None) == (want["key"] is None), number
        if key is not None:
            assert want["key"] == f"{key:x}"
        assert int(str(want["len"])) == len(raw) + (8 if key is not None else 4)
        assert pkt.type == TYPE_NAMES[str(want["type"])]
        assert pkt.hop_count == int(str(want["hop"]))
        assert (ip(pkt.src_nbma), ip(pkt.src_protocol), ip(pkt.dst_protocol)) == (
            want["nbma"],
            want["src"],
            want["dst"],
        )
        if pkt.type == PacketType.TRAFFIC_INDICATION:
            assert want["code"] == "NHRP traffic redirect/indirection" and pkt.flags == 0
            continue
        assert pkt.request_id == int(str(want["id"]))
        cie = pkt.cies[0]
        got = (cie.code, cie.prefix_length, cie.mtu, cie.holding_time, cie.preference)
        assert got == tuple(int(str(want[k])) for k in ("cc", "pl", "mtu", "ht", "pref"))
        if want["cnbma"] is not None:
            assert (ip(cie.client_nbma), ip(cie.client_protocol)) == (want["cnbma"], want["cproto"])
        else:
            assert cie.client_nbma == cie.client_protocol == b""


@pytest.mark.parametrize("name", CAPTURES)
def test_captures_reencode_byte_exactly(name: str) -> None:
    for number, _key, raw in gre_nhrp(TCPDUMP / name):
        assert encode_nhrp(decode_nhrp(raw)) == raw, number


def test_golden_vector_registration_request() -> None:
    """NHRP.md 2.9, NHRP_registration #1, field by field."""
    raw = gre_nhrp(TCPDUMP / "NHRP_registration.pcap")[0][2]
    pkt = decode_nhrp(raw)
    assert raw.hex().startswith("000108000000000000ff006c197b00340103040004048002")
    assert (pkt.flags, pkt.checksum, len(raw)) == (0x8002, 0x197B, 108)
    assert pkt.cies == (Cie(0, 32, 17912, 7200),)
    auth = pkt.extension(ExtensionType.AUTHENTICATION)
    assert auth == AuthenticationExtension(1, b"NHRPAUTH")
    nat = pkt.extension(ExtensionType.NAT_ADDRESS)
    assert nat == CieListExtension(
        9, (Cie(0, 32, 17912, 0, bytes([169, 254, 100, 5]), b"", bytes([155, 1, 0, 5])),), False
    )
    assert [e.type for e in pkt.extensions] == [3, 4, 5, 7, 9, 0]


def test_golden_vector_traffic_indication_and_reply() -> None:
    """NHRP.md 2.9, nhrp-trace #1 and #4."""
    frames = gre_nhrp(TCPDUMP / "nhrp-trace.pcap")
    ti = decode_nhrp(frames[0][2])
    assert ti.payload.hex() == "4500006400050000ff01a78f0affff030affff020800325b00010000"
    assert ti.extension(ExtensionType.AUTHENTICATION) == AuthenticationExtension(1, b"secret")
    assert ti.extension(ExtensionType.RESPONDER_ADDRESS) is None
    rep = decode_nhrp(frames[3][2])
    fwd = rep.extension(ExtensionType.FORWARD_TRANSIT_NHS)
    assert isinstance(fwd, CieListExtension)
    assert [ip(c.client_protocol) for c in fwd.cies] == ["10.255.255.1"]
    assert rep.flags == 0xF802 and rep.request_id == 5


def test_bad_checksum_is_a_decode_error() -> None:
    raw = bytearray(gre_nhrp(TCPDUMP / "ios_nhrp.pcap")[0][2])
    raw[12] ^= 1
    with pytest.raises(DecodeError, match="checksum"):
        decode_nhrp(bytes(raw))
    assert decode_nhrp(bytes(raw), verify_checksum=False).request_id == 5


def _payloads_at_every_offset(path: Path) -> list[bytes]:
    out = []
    for frame in read_frames(path):
        for off in range(0, len(frame.data), 2):
            out.append(frame.data[off:])
    return out


def test_fuzz_regressions_never_crash() -> None:
    """pb_nhrp_1 (NHRP straight over IP protocol 54, invalid: tcpdump prints
    "(invalid)") and the GRE heap-overflow regressions, at every offset."""
    pb = next(iter(read_frames(TCPDUMP / "pb_nhrp_1.pcap")))
    packet = ipv4_packet(pb)
    assert packet is not None and packet[9] == 54
    for verify in (True, False):
        with pytest.raises(DecodeError):
            decode_nhrp(packet[(packet[0] & 15) * 4 :], verify_checksum=verify)
    inputs = _payloads_at_every_offset(TCPDUMP / "pb_nhrp_1.pcap")
    for name in ("gre-heapoverflow-1.pcap", "gre-heapoverflow-2.pcap"):
        inputs += _payloads_at_every_offset(TCPDUMP / "fuzz_regressions" / name)
    for data in inputs:
        for verify in (True, False):
            with contextlib.suppress(DecodeError):
                decode_nhrp(data, verify_checksum=verify)


SEEDS = [raw for name in CAPTURES for _n, _k, raw in gre_nhrp(TCPDUMP / name)]


@settings(max_examples=3000, deadline=None)
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6),
    st.integers(0, 140),
)
def test_mutated_captures_give_a_packet_or_decode_error(seed: bytes, edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(seed)
    for pos, value in edits:
        if pos < len(data):
            data[pos] = value
    try:
        pkt = decode_nhrp(bytes(data[: len(data) - cut if cut < len(data) else 0]), verify_checksum=False)
    except DecodeError:
        return
    encode_nhrp(pkt)  # whatever decodes must encode again


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=160))
def test_random_bytes_give_a_packet_or_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_nhrp(data, verify_checksum=False)


addr = st.binary(min_size=0, max_size=16)
cies = st.builds(
    Cie, st.integers(0, 255), st.integers(0, 255), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF),
    addr, st.binary(max_size=4), addr, st.integers(0, 255), st.integers(0, 0xFFFF), st.booleans(),
)  # fmt: skip
extensions = st.one_of(
    st.builds(CieListExtension, st.sampled_from([3, 4, 5, 9]), st.lists(cies, max_size=3).map(tuple), st.booleans()),
    st.builds(AuthenticationExtension, st.integers(0, 0xFFFFFFFF), st.binary(max_size=12), st.booleans()),
    st.builds(VendorPrivateExtension, st.integers(0, 0xFFFFFF), st.binary(max_size=8), st.booleans()),
    st.builds(RawExtension, st.sampled_from([1, 2, 6, 10, 0x3FFF]), st.binary(max_size=8), st.booleans()),
)


@st.composite
def packets(draw: st.DrawFn) -> NhrpPacket:
    ptype = draw(st.integers(1, 8))
    embedded = ptype in (7, 8)
    exts = draw(st.lists(extensions, max_size=5))
    return NhrpPacket(
        ptype, draw(addr), draw(addr), draw(addr), draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 0xFFFFFFFF)),
        () if embedded else tuple(draw(st.lists(cies, max_size=3))),
        draw(st.binary(max_size=40)) if embedded else b"",
        (*tuple(exts), END_EXTENSION) if exts or draw(st.booleans()) else (),
        draw(st.integers(0, 255)), 1, 0x0800, bytes(5), 1, draw(st.binary(max_size=4)), draw(st.booleans()),
    )  # fmt: skip


@settings(max_examples=1500, deadline=None)
@given(packets())
def test_encode_decode_round_trip(pkt: NhrpPacket) -> None:
    raw = encode_nhrp(pkt)
    back = decode_nhrp(raw)
    assert back == pkt
    assert encode_nhrp(back) == raw
