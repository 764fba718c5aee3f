"""A wire between TUN devices in different namespaces, for the FRR tests:
``python tun_relay.py NS1 DEV1 NS2 DEV2 [NS3 DEV3 ...]`` creates TUN
device DEVi in namespace NSi (setns(2) around TUNSETIFF) and copies every
datagram read from one device into all the others: a multipoint tunnel
that replicates multicast and unicast alike, like an NHRP multicast map
to every peer. Prints ``ready`` once the devices exist; runs until killed
(the devices go with its descriptors)."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import select
import struct
import sys

CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TUN_NO_PI = 0x0001 | 0x1000

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")


def open_tuns(pairs: list[tuple[str, str]]) -> list[int]:
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    fds = []
    try:
        for ns, dev in pairs:
            target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            _setns(target)
            os.close(target)
            fd = os.open("/dev/net/tun", os.O_RDWR)
            fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", dev.encode(), IFF_TUN_NO_PI))
            fds.append(fd)
    finally:
        _setns(home)
        os.close(home)
    return fds


def main(argv: list[str]) -> None:
    fds = open_tuns(list(zip(argv[0::2], argv[1::2], strict=True)))
    print("ready", flush=True)
    while True:
        readable, _, _ = select.select(fds, [], [])
        for fd in readable:
            packet = os.read(fd, 65535)
            for other in fds:
                if other != fd:
                    # EIO: that device is still down; the packet is lost, as on a wire
                    with contextlib.suppress(OSError):
                        os.write(other, packet)


if __name__ == "__main__":
    main(sys.argv[1:])
