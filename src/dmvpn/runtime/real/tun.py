"""A Linux TUN device for a tunnel interface (Documentation/networking/tuntap).

The device is opened with ``IFF_TUN | IFF_NO_PI``: every read returns one
whole IPv4 datagram the kernel routed into the device, every write injects
one datagram into the kernel's stack. The kernel side of the device is the
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

TUN_CLONE_DEVICE = "/dev/net/tun"
TUNSETIFF = 0x400454CA  # _IOW('T', 202, int)
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFNAMSIZ = 16


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

    def __init__(self, spec: TunSpec, clone_device: str = TUN_CLONE_DEVICE) -> None:
        check_ifname(spec.name)
        self.spec = spec
        try:
            self.fd = os.open(clone_device, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise RuntimeSetupError(f"{clone_device} does not exist: the kernel has no TUN driver "
                                    f"(modprobe tun, or give the container /dev/net/tun)") from None
        except PermissionError:
            raise RuntimeSetupError(f"permission denied opening {clone_device}: run as root "
                                    f"(CAP_NET_ADMIN)") from None
        try:
            ifreq = struct.pack("16sH22x", spec.name.encode(), IFF_TUN | IFF_NO_PI)
            fcntl.ioctl(self.fd, TUNSETIFF, ifreq)
            self._configure()
        except OSError as exc:
            os.close(self.fd)
            if exc.errno == errno.EBUSY:
                raise RuntimeSetupError(f"TUN device {spec.name} is already in use") from None
            if exc.errno == errno.EPERM:
                raise RuntimeSetupError(f"permission denied creating TUN device {spec.name}: "
                                        f"run as root (CAP_NET_ADMIN)") from None
            raise RuntimeSetupError(f"cannot create TUN device {spec.name}: {exc.strerror}") from None
        except RuntimeSetupError:
            os.close(self.fd)
            raise

    def _configure(self) -> None:
        """Address, MTU and link up over rtnetlink."""
        from pyroute2 import IPRoute
        from pyroute2.netlink.exceptions import NetlinkError

        spec = self.spec
        with IPRoute() as ipr:
            try:
                (index,) = ipr.link_lookup(ifname=spec.name)
                self._disable_ipv6()
                ipr.link("set", index=index, mtu=spec.mtu)
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

    def read(self) -> bytes | None:
        """One datagram from the kernel, or None when none is waiting."""
        try:
            return os.read(self.fd, 65535)
        except BlockingIOError:
            return None

    def write(self, packet: bytes) -> None:
        """Inject one IPv4 datagram into the kernel."""
        os.write(self.fd, packet)

    def close(self) -> None:
        """Close the descriptor; the kernel removes the device."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
