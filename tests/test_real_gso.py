"""UDP GSO on send and GRO on receive for ESP in UDP 4500 (the underlay's
send_batch and GRO drain), with sockets replaced by recorders: runs of
equal-size datagrams to one peer in one sendmsg with UDP_SEGMENT, the
fallback when the kernel refuses, GRO reads cut at the segment size and
rebuilt as IPv4 + UDP (checked with scapy); counters exact."""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct

from scapy.layers.inet import IP, UDP

from dmvpn.runtime.real.underlay import (
    GSO_MAX_SEGMENTS,
    SOL_UDP,
    UDP_GRO,
    UDP_SEGMENT,
    Receiver,
    Underlay,
)
from dmvpn.wire.ipv4 import IpProto, IPv4Header
from dmvpn.wire.udp import encode_udp

LOCAL = "192.0.2.1"


class RecordingSocket:
    """Stands in for the bound UDP 4500 socket."""

    def __init__(self, refuse: int | None = None, reads: list[tuple[bytes, int | None]] | None = None) -> None:
        self.refuse = refuse
        self.sendmsgs: list[tuple[bytes, int, tuple[str, int]]] = []
        self.sendtos: list[tuple[bytes, tuple[str, int]]] = []
        self.reads = list(reads or [])

    def sendmsg(self, buffers, ancillary, flags, address):
        if self.refuse is not None:
            raise OSError(self.refuse, "refused")
        ((level, kind, data),) = ancillary
        assert (level, kind) == (SOL_UDP, UDP_SEGMENT)
        self.sendmsgs.append((b"".join(bytes(b) for b in buffers), struct.unpack("=H", data)[0], address))
        return sum(len(b) for b in buffers)

    def sendto(self, data, address):
        self.sendtos.append((bytes(data), address))
        return len(data)

    def recvmsg_into(self, buffers, ancbufsize):
        if not self.reads:
            raise BlockingIOError
        data, gso_size = self.reads.pop(0)
        buffers[0][:len(data)] = data
        ancillary = [] if gso_size is None else [(SOL_UDP, UDP_GRO, struct.pack("=i", gso_size))]
        return len(data), ancillary, 0, ("192.0.2.9", 4500)

    def close(self) -> None:
        pass


def _esp_in_udp(size: int, dst: str = "192.0.2.2", sport: int = 4500, src: str = LOCAL) -> bytes:
    udp = encode_udp(src, dst, sport, 4500, bytes([size % 251]) * size)
    return IPv4Header(src, dst, IpProto.UDP, ttl=64).encode(udp)


def _underlay(sock: RecordingSocket) -> Underlay:
    underlay = Underlay([])
    underlay._udp_senders[ipaddress.IPv4Address(LOCAL).packed] = sock  # type: ignore[assignment]
    return underlay


def test_runs_to_one_peer_leave_in_one_gso_send():
    sock = RecordingSocket()
    underlay = _underlay(sock)
    packets = [_esp_in_udp(1000)] * 70 + [_esp_in_udp(400)] + [_esp_in_udp(1000, dst="192.0.2.3")] * 2
    sent, errors = underlay.send_batch(packets)
    underlay.close()
    assert (sent, errors) == (73, [])
    # 64 (the kernel's limit), then 6 + the shorter last one, then the other peer
    assert [(len(d), size, addr) for d, size, addr in sock.sendmsgs] == [
        (64 * 1000, 1000, ("192.0.2.2", 4500)), (6 * 1000 + 400, 1000, ("192.0.2.2", 4500)),
        (2000, 1000, ("192.0.2.3", 4500))]
    assert sock.sendmsgs[0][0] == bytes(packets[0][28:]) * 64  # the UDP payloads, headers the kernel's
    c = underlay.counters
    assert (c.sent, c.gso_sends, c.gso_datagrams) == (73, 3, 73)
    assert GSO_MAX_SEGMENTS == 64


def test_a_shorter_datagram_ends_a_run_and_singles_use_sendto():
    sock = RecordingSocket()
    underlay = _underlay(sock)
    sent, _ = underlay.send_batch([_esp_in_udp(500), _esp_in_udp(900), _esp_in_udp(900), _esp_in_udp(300),
                                   _esp_in_udp(900)])
    underlay.close()
    assert sent == 5
    assert [len(d) for d, _ in sock.sendtos] == [500, 900]
    assert [(len(d), size) for d, size, _ in sock.sendmsgs] == [(2100, 900)]  # 900, 900, then the short 300


def test_gso_refused_falls_back_once_and_says_so():
    sock = RecordingSocket(refuse=errno.EIO)
    underlay = _underlay(sock)
    sent, errors = underlay.send_batch([_esp_in_udp(800)] * 5)
    assert (sent, errors) == (5, [])
    assert len(sock.sendtos) == 5 and not underlay.gso
    assert len(underlay.notes) == 1 and "UDP GSO refused" in underlay.notes[0]
    sent, _ = underlay.send_batch([_esp_in_udp(800)] * 3)  # no second try, no second note
    underlay.close()
    assert sent == 3 and len(sock.sendtos) == 8 and len(underlay.notes) == 1
    assert underlay.counters.sent == 8 and underlay.counters.gso_sends == 0


def test_other_datagrams_go_out_raw_never_through_the_udp_socket():
    sock = RecordingSocket()
    underlay = _underlay(sock)
    raw_sent: list[bytes] = []
    underlay.send = lambda packet: raw_sent.append(packet)  # type: ignore[method-assign]
    ike500 = _esp_in_udp(200, sport=500)
    foreign = _esp_in_udp(200, src="198.51.100.7")
    esp = IPv4Header(LOCAL, "192.0.2.2", IpProto.ESP).encode(b"\x00" * 100)
    sent, _ = underlay.send_batch([ike500, foreign, esp, _esp_in_udp(600)])
    underlay.close()
    assert raw_sent == [ike500, foreign, esp] and sent == 4
    assert [len(d) for d, _ in sock.sendtos] == [600]


def test_gro_read_is_cut_at_the_segment_size_and_rebuilt():
    payloads = [bytes([i]) * 700 for i in range(5)] + [b"\xee" * 123]
    sock = RecordingSocket(reads=[(b"".join(payloads), 700), (b"single", None)])
    underlay = Underlay([])
    receiver = Receiver("Gi0", sock, LOCAL, 4500, gro=True)  # type: ignore[arg-type]
    out = underlay.drain(receiver, 64)
    underlay.close()
    assert len(out) == 7
    for packet, payload in zip(out, [*payloads, b"single"], strict=True):
        ip = IP(packet)
        assert (ip.src, ip.dst, ip.proto, ip[UDP].sport, ip[UDP].dport) == ("192.0.2.9", LOCAL, 17, 4500, 4500)
        assert bytes(ip[UDP].payload) == payload and ip[UDP].len == 8 + len(payload) and ip[UDP].chksum == 0
        again = IP(packet)
        del again.chksum
        assert IP(bytes(again)).chksum == ip.chksum
    c = underlay.counters
    assert (c.received, c.gro_reads, c.gro_datagrams) == (7, 1, 6)


def test_gro_on_a_real_socket_pair_in_this_namespace():
    """The kernel's side on loopback: GSO send, GRO receive (or, where the
    kernel does neither, one datagram per read): the same datagrams arrive."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rx.bind(("127.0.0.1", 0))
        rx.setsockopt(SOL_UDP, UDP_GRO, 1)
        rx.setblocking(False)
        payloads = [bytes([i]) * 1200 for i in range(10)] + [b"z" * 50]
        tx.sendmsg(payloads, [(SOL_UDP, UDP_SEGMENT, struct.pack("=H", 1200))], 0, rx.getsockname())
        underlay = Underlay([])
        receiver = Receiver("lo", rx, "127.0.0.1", 4500, gro=True)
        got = underlay.drain(receiver, 64)
        underlay.close()
        assert [bytes(IP(p)[UDP].payload) for p in got] == payloads
    finally:
        rx.close()
        tx.close()
