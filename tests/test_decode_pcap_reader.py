"""The capture reader: pcap (both byte orders, micro/nano seconds), pcapng,
gzip, several link types; frame numbering agrees with tshark."""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import CookedLinux, Ether
from scapy.utils import PcapWriter, wrpcapng

from dmvpn.wire.errors import DecodeError
from dmvpn.wire.pcap_reader import CaptureError, Frame, read_frames, udp_datagram

PCAPS = Path(__file__).resolve().parents[2] / "shared" / "oracles" / "pcaps"


def _pkts():
    return [IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=500, dport=4500) / (bytes([i]) * (i + 1)) for i in range(5)]


def _payloads(path: Path) -> list[bytes]:
    return [d.payload for f in read_frames(path) if (d := udp_datagram(f)) is not None]


@pytest.mark.parametrize("endianness,nano", [("<", False), (">", False), ("<", True), (">", True)])
def test_pcap_variants(tmp_path, endianness: str, nano: bool) -> None:
    path = tmp_path / "x.pcap"
    with PcapWriter(str(path), endianness=endianness, nano=nano, linktype=1) as w:
        for p in _pkts():
            frame = Ether() / p
            frame.time = 1700000000.5
            w.write(frame)
    frames = list(read_frames(path))
    assert [f.number for f in frames] == [1, 2, 3, 4, 5]
    assert frames[0].timestamp == pytest.approx(1700000000.5)
    assert _payloads(path) == [bytes([i]) * (i + 1) for i in range(5)]


def test_pcapng_gzip_and_cooked(tmp_path) -> None:
    ng = tmp_path / "x.pcapng"
    wrpcapng(str(ng), [CookedLinux(proto=0x0800) / p for p in _pkts()])
    assert _payloads(ng) == [bytes([i]) * (i + 1) for i in range(5)]
    gz = tmp_path / "x.pcapng.gz"
    gz.write_bytes(gzip.compress(ng.read_bytes()))
    assert _payloads(gz) == _payloads(ng)
    d = udp_datagram(next(iter(read_frames(gz))))
    assert (d.src, d.dst, d.sport, d.dport) == ("10.0.0.1", "10.0.0.2", 500, 4500)


def test_truncated_file_stops_cleanly(tmp_path) -> None:
    path = tmp_path / "t.pcap"
    with PcapWriter(str(path), linktype=101) as w:
        for p in _pkts():
            w.write(p)
    path.write_bytes(path.read_bytes()[:-3])
    assert len(list(read_frames(path))) == 4


def test_bad_files_are_capture_errors(tmp_path) -> None:
    (tmp_path / "e").write_bytes(b"")
    with pytest.raises(CaptureError, match="not a pcap"):
        list(read_frames(tmp_path / "e"))
    (tmp_path / "g.gz").write_bytes(b"\x1f\x8bnot gzip")
    with pytest.raises(CaptureError, match="gzip"):
        list(read_frames(tmp_path / "g.gz"))
    with pytest.raises(CaptureError):
        list(read_frames(tmp_path / "missing"))


def test_bad_ip_headers_are_decode_errors() -> None:
    with pytest.raises(DecodeError):
        udp_datagram(Frame(1, 0.0, 101, b"\x45\x00\x00"))
    with pytest.raises(DecodeError, match="UDP length"):
        short_udp = b"\x01\xf4\x01\xf4\x00\x02" + bytes(2)
        udp_datagram(Frame(1, 0.0, 101, bytes(IP(src="1.1.1.1", dst="2.2.2.2", proto=17) / short_udp)))
    assert udp_datagram(Frame(1, 0.0, 101, bytes(IP(proto=47) / b"xx"))) is None


def test_frame_numbers_and_udp_count_agree_with_tshark() -> None:
    tshark = shutil.which("tshark")
    assert tshark, "tshark is required for this test (apt-get install tshark)"
    env = dict(os.environ, HOME="/nonexistent-home")
    names = ["strongswan/ike_v1_strongswan.pcap", "tcpdump/isakmp4500.pcap", "tcpdump/nhrp.pcapng",
             "wireshark/ikev1-bug-12610.pcapng.gz", "wireshark/esp-bug-12671.pcapng.gz", "scapy/ikev2_nat_t.pcapng",
             "tcpdump/espudp1.pcap"]
    for path in (PCAPS / n for n in names):
        whole_udp = "udp && !icmp && !(ip.flags.mf == 1) && ip.frag_offset == 0"
        out = subprocess.run([tshark, "-r", str(path), "-Y", whole_udp,
                              "-T", "fields", "-e", "frame.number"],
                             capture_output=True, text=True, env=env).stdout.split()
        ours = []
        for f in read_frames(path):
            try:
                if udp_datagram(f) is not None:
                    ours.append(f.number)
            except DecodeError:
                pass
        assert ours == [int(x) for x in out], path.name


def test_mutated_capture_files_give_frames_or_clear_errors() -> None:
    import random

    from dmvpn.wire.pcap_reader import parse_capture

    rng = random.Random(99)
    images = [gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
              for p in (PCAPS / "strongswan/ike_v1_strongswan.pcap", PCAPS / "tcpdump/nhrp.pcapng",
                        PCAPS / "wireshark/ikev1-bug-12610.pcapng.gz")]
    for i in range(3000):
        b = bytearray(images[i % len(images)])
        for _ in range(rng.randint(1, 6)):
            pos = rng.randrange(min(len(b), 400 if rng.random() < 0.7 else len(b)))
            b[pos] = rng.randrange(256)
        if rng.random() < 0.3:
            del b[rng.randrange(len(b)):]
        try:
            for f in parse_capture(bytes(b)):
                with contextlib.suppress(DecodeError):
                    udp_datagram(f)
        except CaptureError:
            pass
