"""TunDevice's offload modes with the kernel's calls replaced by a
recorder: the kernel refusing TUNSETOFFLOAD or IFF_VNET_HDR gets the plain
device and one note; reads and writes with the virtio_net_hdr (segments
counted one by one, also when a joined write fails)."""

from __future__ import annotations

import errno
import os
import struct

import pytest
from scapy.layers.inet import IP, TCP

from dmvpn.runtime.real import tun as tun_module
from dmvpn.runtime.real.tun import IFF_VNET_HDR, TUNSETIFF, TUNSETOFFLOAD, TunDevice, TunSpec
from dmvpn.wire.tcp_offload import PLAIN_VNET_HDR, decode_vnet_header, segment


class FakeKernel:
    def __init__(self, refuse: dict[str, int] | None = None) -> None:
        self.refuse = refuse or {}
        self.calls: list[tuple[str, int]] = []
        self.written: list[bytes] = []
        self.fail_writes = 0
        self.reads: list[bytes] = []

    def open(self, path, flags):
        self.calls.append(("open", 0))
        return 99

    def close(self, fd):
        self.calls.append(("close", fd))

    def ioctl(self, fd, request, arg):
        if request == TUNSETIFF:
            flags = struct.unpack("16sH22x", arg)[1]
            self.calls.append(("TUNSETIFF", flags))
            if flags & IFF_VNET_HDR and "vnet" in self.refuse:
                raise OSError(self.refuse["vnet"], os.strerror(self.refuse["vnet"]))
        elif request == TUNSETOFFLOAD:
            self.calls.append(("TUNSETOFFLOAD", arg))
            if "offload" in self.refuse:
                raise OSError(self.refuse["offload"], os.strerror(self.refuse["offload"]))
        return 0

    def write(self, fd, data):
        if self.fail_writes:
            self.fail_writes -= 1
            raise OSError(errno.ENOBUFS, "No buffer space available")
        self.written.append(bytes(data))
        return len(data)

    def readv(self, fd, buffers):
        if not self.reads:
            raise BlockingIOError
        data = self.reads.pop(0)
        buffers[0][:len(data)] = data
        return len(data)


@pytest.fixture
def kernel(monkeypatch):
    fake = FakeKernel()
    monkeypatch.setattr(tun_module.os, "open", fake.open)
    monkeypatch.setattr(tun_module.os, "close", fake.close)
    monkeypatch.setattr(tun_module.os, "write", fake.write)
    monkeypatch.setattr(tun_module.os, "readv", fake.readv)
    monkeypatch.setattr(tun_module.fcntl, "ioctl", fake.ioctl)
    monkeypatch.setattr(TunDevice, "_configure", lambda self: None)
    return fake


SPEC = TunSpec("Tunnel0", "tun-x", None, 1400)


def _segments() -> list[bytes]:
    packet = bytes(IP(src="10.1.1.1", dst="10.2.2.1") / TCP(flags="A", seq=1) / os.urandom(4000))
    return segment(packet, 1000)


def test_tso_mode_asks_for_the_offloads(kernel):
    device = TunDevice(SPEC, offload="tso")
    assert device.offload and device.note is None
    assert kernel.calls == [("open", 0), ("TUNSETIFF", 0x1001 | IFF_VNET_HDR), ("TUNSETOFFLOAD", 0x03)]


def test_gro_mode_has_the_header_but_no_read_offloads(kernel):
    device = TunDevice(SPEC, offload="gro")
    assert device.offload and [c for c in kernel.calls if c[0] == "TUNSETOFFLOAD"] == []
    packets = _segments()
    assert device.write_batch(packets) == (4, [])
    (write,) = kernel.written
    assert decode_vnet_header(write).gso_size == 1000
    kernel.reads.append(PLAIN_VNET_HDR + packets[0])
    assert device.read_batch(64) == [packets[0]]
    assert device.read_batch(64) == []


@pytest.mark.parametrize("refuse", [{"offload": errno.EINVAL}, {"vnet": errno.EINVAL}])
def test_refused_offloads_fall_back_to_the_plain_device_with_one_note(kernel, refuse):
    kernel.refuse = refuse
    device = TunDevice(SPEC, offload="tso")
    assert not device.offload
    assert device.note is not None and "refused" in device.note and "tun-x" in device.note
    assert kernel.calls[-1] == ("TUNSETIFF", 0x1001) and ("close", 99) in kernel.calls
    packets = _segments()
    assert device.write_batch(packets) == (4, [])
    assert kernel.written == packets  # no header, one write each


def test_other_errors_still_fail_setup(kernel):
    kernel.refuse = {"vnet": errno.EBUSY}
    with pytest.raises(tun_module.RuntimeSetupError, match="already in use"):
        TunDevice(SPEC, offload="tso")


def test_a_failed_joined_write_counts_every_segment(kernel):
    device = TunDevice(SPEC, offload="gro")
    kernel.fail_writes = 1
    done, errors = device.write_batch([*_segments(), bytes(IP(dst="10.2.2.1", proto=1) / (b"\x08" + b"\x00" * 7))])
    assert done == 1 and errors == ["No buffer space available"] * 4


def test_a_read_the_segmenter_refuses_is_counted(kernel):
    device = TunDevice(SPEC, offload="tso")
    kernel.reads.append(struct.pack("=BBHHHH", 0, 3, 0, 100, 0, 0) + _segments()[0])
    assert device.read_batch(64) == [] and device.bad_reads == 1
