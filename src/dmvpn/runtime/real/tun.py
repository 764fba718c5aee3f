"""A Linux TUN device for a tunnel interface (Documentation/networking/tuntap).

The device is opened with ``IFF_TUN | IFF_NO_PI``: every read returns one
whole IPv4 datagram the kernel routed into the device, every write injects
one datagram into the kernel's stack. The ``offload`` modes
(:mod:`dmvpn.wire.tcp_offload`):

* ``gro``: opened with ``IFF_VNET_HDR``; reads stay one packet each (behind
  a plain ``virtio_net_hdr``), and the packets of one flush are written as
  few TCP super-segments (GRO done here): the kernel's TCP takes dozens of
  segments in one traversal and acknowledges them at once;
* ``tso``: ``gro``, and ``TUNSETOFFLOAD`` turns on checksum and TCPv4
  segmentation offload: a read is then up to 64 KB of one TCP flow, cut
  here into tunnel-MTU packets (and partial checksums finished here);
* ``none``: neither.

A kernel that refuses gets the plain device and :attr:`TunDevice.note`
says so once. Offload reads go into one preallocated buffer.

The kernel side of the device is the
router's "local host": it gets the tunnel interface's address and ``ip mtu``
and the ``ip route`` entries that point into the tunnel (set over rtnetlink
with pyroute2). A crypto map's device has no address, only routes (see
:mod:`dmvpn.node.crypto_map`). The device is not persistent, so closing
the descriptor removes it.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import os
import struct
from dataclasses import dataclass

from dmvpn.runtime.real.errors import RuntimeSetupError
from dmvpn.wire.tcp_offload import (
    VNET_HDR_LEN,
    OffloadError,
    coalesce,
    decode_vnet_header,
    packets_from_read,
)

TUN_CLONE_DEVICE = "/dev/net/tun"
TUNSETIFF = 0x400454CA  # _IOW('T', 202, int)
TUNSETOFFLOAD = 0x400454D0  # _IOW('T', 208, unsigned int)
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_OFFLOAD_MODES = ("none", "gro", "tso")
IFNAMSIZ = 16
#: one read: a virtio_net_hdr and the largest IPv4 datagram
READ_BUFFER = VNET_HDR_LEN + 65535
#: the kernel's queue toward the daemon (packets); the default 500 drops
#: bursts the loop drains a batch at a time
TX_QUEUE_LEN = 5000


@dataclass(frozen=True, slots=True)
class TunSpec:
    """What to create: ``iface`` is the engine's name for it (``Tunnel0``),
    ``name`` the Linux device name, ``address`` the kernel side's address
    (None: none, as for a crypto map's device)."""

    iface: str
    name: str
    address: ipaddress.IPv4Interface | None
    mtu: int
    #: Kernel routes into the device: (prefix, next hop or None), from the
    #: config's ``ip route`` lines that point into this tunnel, or a crypto
    #: map's protected destinations.
    routes: tuple[tuple[ipaddress.IPv4Network, ipaddress.IPv4Address | None], ...] = ()


def check_ifname(name: str) -> None:
    """Linux accepts 1-15 bytes, no '/', ':' or whitespace (dev_valid_name)."""
    if not 0 < len(name.encode()) < IFNAMSIZ or any(c in name for c in "/: \t\n"):
        raise RuntimeSetupError(f"invalid interface name {name!r}: 1-15 characters, no '/', ':' or spaces")


class TunDevice:
    """An open TUN device, configured and up. Use :meth:`close` to remove it."""

    def __init__(self, spec: TunSpec, clone_device: str = TUN_CLONE_DEVICE, *, offload: str = "none") -> None:
        check_ifname(spec.name)
        self.spec = spec
        #: what the runtime logs once about the device's offloads (None: nothing to say)
        self.note: str | None = None
        #: reads that were not IPv4 packets the segmenter could cut (counted, dropped)
        self.bad_reads = 0
        #: TCP super-segments written (joined writes) and the packets in them
        self.joined_writes = 0
        self.joined_packets = 0
        self._buffer = bytearray(READ_BUFFER)
        self._view = memoryview(self._buffer)
        self.offload = False
        self.fd = -1
        try:
            if offload != "none":
                self.offload = self._open(clone_device, IFF_TUN | IFF_NO_PI | IFF_VNET_HDR, offload == "tso")
            if not self.offload:
                self._open(clone_device, IFF_TUN | IFF_NO_PI)
            self._configure()
        except OSError as exc:
            self.close()
            if exc.errno == errno.EBUSY:
                raise RuntimeSetupError(f"TUN device {spec.name} is already in use") from None
            if exc.errno == errno.EPERM:
                raise RuntimeSetupError(f"permission denied creating TUN device {spec.name}: "
                                        f"run as root (CAP_NET_ADMIN)") from None
            raise RuntimeSetupError(f"cannot create TUN device {spec.name}: {exc.strerror}") from None
        except RuntimeSetupError:
            self.close()
            raise

    def _open(self, clone_device: str, flags: int, tso: bool = False) -> bool:
        """Create the device with ``flags``; with IFF_VNET_HDR and ``tso``
        also ask for the read offloads; on refusal close it again (False,
        :attr:`note` set) so the caller opens the plain device."""
        try:
            self.fd = os.open(clone_device, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise RuntimeSetupError(f"{clone_device} does not exist: the kernel has no TUN driver "
                                    f"(modprobe tun, or give the container /dev/net/tun)") from None
        except PermissionError:
            raise RuntimeSetupError(f"permission denied opening {clone_device}: run as root "
                                    f"(CAP_NET_ADMIN)") from None
        ifreq = struct.pack("16sH22x", self.spec.name.encode(), flags)
        try:
            fcntl.ioctl(self.fd, TUNSETIFF, ifreq)
            if not flags & IFF_VNET_HDR:
                return False
        except OSError as exc:
            os.close(self.fd)
            self.fd = -1
            if not flags & IFF_VNET_HDR or exc.errno != errno.EINVAL:
                raise
            self.note = f"{self.spec.name}: the kernel refused IFF_VNET_HDR: one packet per read and write"
            return False
        if not tso:
            return True
        try:
            fcntl.ioctl(self.fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4)
        except OSError as exc:
            os.close(self.fd)
            self.fd = -1
            self.note = (f"{self.spec.name}: the kernel refused TUN offloads ({exc.strerror}): "
                         f"one packet per read and write")
            return False
        return True

    def _configure(self) -> None:
        """Address, MTU and link up over rtnetlink."""
        from pyroute2 import IPRoute
        from pyroute2.netlink.exceptions import NetlinkError

        spec = self.spec
        with IPRoute() as ipr:
            try:
                (index,) = ipr.link_lookup(ifname=spec.name)
                self._disable_ipv6()
                ipr.link("set", index=index, mtu=spec.mtu, txqlen=TX_QUEUE_LEN)
                if spec.address is not None:
                    ipr.addr("add", index=index, address=str(spec.address.ip),
                             prefixlen=spec.address.network.prefixlen)
                ipr.link("set", index=index, state="up")
            except NetlinkError as exc:
                raise RuntimeSetupError(f"cannot configure {spec.name} ({spec.address or 'no address'}, "
                                        f"mtu {spec.mtu}): "
                                        f"{os.strerror(exc.code)}") from None
            for prefix, next_hop in spec.routes:
                via = {"gateway": str(next_hop)} if next_hop is not None else {}
                try:
                    ipr.route("add", dst=str(prefix), oif=index, **via)
                except NetlinkError as exc:
                    raise RuntimeSetupError(f"cannot add route {prefix}{f' via {next_hop}' if next_hop else ''} "
                                            f"dev {spec.name}: {os.strerror(exc.code)}") from None

    def _disable_ipv6(self) -> None:
        """The tunnel carries IPv4 only: keep the kernel from sending IPv6
        router solicitations and DAD probes into it (best effort: a kernel
        without IPv6 has no such switch, and the runtime drops non-IPv4
        reads anyway)."""
        try:
            with open(f"/proc/sys/net/ipv6/conf/{self.spec.name}/disable_ipv6", "w") as switch:
                switch.write("1")
        except OSError:
            pass

    def read_batch(self, limit: int) -> list[bytes]:
        """The datagrams the kernel has waiting, read until none is or
        ``limit`` are in hand (with offloads, a read is a TCP super-segment's
        packets, all taken: the last read may pass ``limit``; a read the
        segmenter refuses is counted in :attr:`bad_reads` and yields none)."""
        fd = self.fd
        if not self.offload:  # os.read: one allocation, cheaper than readv and a copy (0.7 vs 1.05 us)
            out: list[bytes] = []
            read, append = os.read, out.append
            try:
                for _ in range(limit):
                    append(read(fd, READ_BUFFER))
            except BlockingIOError:
                pass
            return out
        out = []
        while len(out) < limit:
            try:
                n = os.readv(fd, (self._buffer,))
            except BlockingIOError:
                break
            try:
                out += packets_from_read(self._view[:n])
            except OffloadError:
                self.bad_reads += 1
        return out

    def write_batch(self, packets: list[bytes]) -> tuple[int, list[str]]:
        """Inject ``packets`` (in order; with offloads, in-order segments of
        a TCP flow joined into one write): how many went in, and the
        reason for each one that did not."""
        errors: list[str] = []
        write, fd = os.write, self.fd
        if not self.offload:  # one packet a write
            for data in packets:
                try:
                    write(fd, data)
                except OSError as exc:
                    errors.append(exc.strerror or str(exc))
            return len(packets) - len(errors), errors
        done = 0
        for data in coalesce(packets):
            count = _segments(data)
            try:
                write(fd, data)
            except OSError as exc:
                errors += [exc.strerror or str(exc)] * count
                continue
            done += count
            if count > 1:
                self.joined_writes += 1
                self.joined_packets += count
        return done, errors

    def close(self) -> None:
        """Close the descriptor; the kernel removes the device."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _segments(write: bytes) -> int:
    """How many packets one TUN write (virtio_net_hdr first) carries."""
    vnet = decode_vnet_header(write)
    if not vnet.gso_type:
        return 1
    return -(-(len(write) - VNET_HDR_LEN - vnet.hdr_len) // vnet.gso_size)
