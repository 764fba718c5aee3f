"""The underlay (physical) interfaces on real sockets.

Engines see whole IPv4 datagrams per interface, exactly as in the simulator.
Here that maps to the kernel as follows:

* sending: one raw socket (``IPPROTO_RAW``, which implies ``IP_HDRINCL``,
  raw(7)) carries every datagram the engine built, header included;
* receiving UDP 500 and 4500 (RFC 2408, RFC 3947/3948): ordinary UDP sockets
  bound to the interface address, so the kernel does not answer "port
  unreachable"; each datagram is rebuilt as IPv4 + UDP (RFC 791, RFC 768)
  for the engine. UDP-encapsulated ESP on 4500 arrives this way too;
* receiving other IP protocols (ESP = 50; GRE = 47; ICMP for the echo
  engine): a raw socket per protocol, bound to the address so only datagrams
  addressed to it arrive; the kernel hands them over with their IPv4 header.
  GRE in clear is the engine's to judge (a protected tunnel drops and counts
  it); without a GRE socket the kernel would answer each one with an ICMP
  "protocol unreachable" in clear, and its ICMP rate limit, spent on those,
  would then hold back the host's own replies (RFC 1122 3.2.2.1).

Reads go into one preallocated buffer and each descriptor is drained in
batches (REFERENCE.md, "What a Python data plane can do here").
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

from dmvpn.runtime.real.errors import RuntimeSetupError
from dmvpn.runtime.real.fragmentation import CannotFragment, fragment
from dmvpn.wire.ipv4 import IpProto, IPv4Header
from dmvpn.wire.isakmp import IKE_PORT, NAT_T_PORT
from dmvpn.wire.udp import encode_udp

RECV_BUFFER = 65535
SOCKET_BUFFER = 4 * 1024 * 1024
IP_MTU = getattr(socket, "IP_MTU", 14)  # Linux <linux/in.h>
DISCARD_PORT = 9


@dataclass(frozen=True, slots=True)
class UnderlaySpec:
    """One underlay interface: the engine's name for it and its address."""

    iface: str
    address: ipaddress.IPv4Address
    udp_ports: tuple[int, ...] = (IKE_PORT, NAT_T_PORT)
    raw_protocols: tuple[int, ...] = (int(IpProto.ESP), int(IpProto.GRE))


@dataclass(slots=True)
class Receiver:
    """One receiving socket and how to turn what it reads into a datagram."""

    iface: str
    sock: socket.socket
    local: str
    udp_port: int | None  # None: raw socket, the kernel gives the IPv4 header
    ttl: int = 64


@dataclass(slots=True)
class UnderlayCounters:
    """Send failures by errno name (no route, message too long ...)."""

    sent: int = 0
    received: int = 0
    fragmented: int = 0
    send_errors: dict[str, int] = field(default_factory=dict)


def _permission(what: str) -> RuntimeSetupError:
    return RuntimeSetupError(f"permission denied opening {what}: run as root (CAP_NET_RAW, CAP_NET_BIND_SERVICE)")


def _bind_error(exc: OSError, address: str, what: str) -> RuntimeSetupError:
    if exc.errno == errno.EADDRINUSE:
        return RuntimeSetupError(f"address {address} {what} is already in use (another IKE daemon running?)")
    if exc.errno == errno.EADDRNOTAVAIL:
        return RuntimeSetupError(f"address {address} is not configured on any interface here "
                                 f"(needed for {what})")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return _permission(f"{what} on {address}")
    return RuntimeSetupError(f"cannot bind {address} {what}: {exc.strerror}")


class Underlay:
    """The sending raw socket and the receiving sockets of every underlay
    interface. :meth:`close` releases them all."""

    def __init__(self, specs: Iterable[UnderlaySpec]) -> None:
        self.receivers: list[Receiver] = []
        self.counters = UnderlayCounters()
        self.ifaces: set[str] = set()
        self._path_mtu: dict[str, int] = {}
        self._buffer = bytearray(RECV_BUFFER)
        self._view = memoryview(self._buffer)
        try:
            self.sender = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        except PermissionError:
            raise _permission("a raw IP socket") from None
        try:
            self.sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
            for spec in specs:
                self._open(spec)
        except BaseException:
            self.close()
            raise

    def _open(self, spec: UnderlaySpec) -> None:
        address = str(spec.address)
        self.ifaces.add(spec.iface)
        for port in spec.udp_ports:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.receivers.append(Receiver(spec.iface, sock, address, port))
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
                sock.bind((address, port))
            except OSError as exc:
                raise _bind_error(exc, address, f"UDP port {port}") from None
            sock.setblocking(False)
        for proto in spec.raw_protocols:
            name = _proto_name(proto)
            try:
                sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, proto)
            except PermissionError:
                raise _permission(f"a raw {name} socket") from None
            self.receivers.append(Receiver(spec.iface, sock, address, None))
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
                sock.bind((address, 0))
            except OSError as exc:
                raise _bind_error(exc, address, f"raw {name}") from None
            sock.setblocking(False)

    def drain(self, receiver: Receiver, limit: int) -> list[bytes]:
        """Up to ``limit`` datagrams waiting on ``receiver``, as whole IPv4
        datagrams addressed to the interface."""
        out: list[bytes] = []
        sock, view, buffer = receiver.sock, self._view, self._buffer
        port = receiver.udp_port  # None: the datagram carries its addresses: recv_into, no address tuple
        for _ in range(limit):
            try:
                if port is None:
                    n = sock.recv_into(buffer)
                else:
                    n, (src, sport) = sock.recvfrom_into(buffer)
            except BlockingIOError:
                break
            except OSError:  # e.g. ECONNREFUSED reported for an earlier send: nothing to read
                continue
            if port is None:
                out.append(bytes(view[:n]))
                continue
            udp = encode_udp(src, receiver.local, sport, port, bytes(view[:n]))
            out.append(IPv4Header(src, receiver.local, IpProto.UDP, receiver.ttl).encode(udp))
        self.counters.received += len(out)
        return out

    def send(self, packet: bytes) -> str | None:
        """Send one engine-built datagram; returns None, or the reason the
        kernel refused it (counted, never raised: a peer that is unreachable
        must not stop the daemon). A datagram longer than the route's MTU is
        fragmented here when DF allows (see :mod:`fragmentation`)."""
        if len(packet) < 20:
            return self._error("EINVAL")
        dst = socket.inet_ntoa(packet[16:20])
        try:
            self.sender.sendto(packet, (dst, 0))
        except OSError as exc:
            if exc.errno != errno.EMSGSIZE:
                return self._error(errno.errorcode.get(exc.errno or 0, str(exc.errno)))
            return self._send_fragments(packet, dst)
        self.counters.sent += 1
        return None

    def _send_fragments(self, packet: bytes, dst: str) -> str | None:
        try:
            pieces = fragment(packet, self.path_mtu(dst))
        except (CannotFragment, OSError) as exc:
            return self._error(f"EMSGSIZE ({exc})")
        try:
            for piece in pieces:
                self.sender.sendto(piece, (dst, 0))
        except OSError as exc:
            return self._error(errno.errorcode.get(exc.errno or 0, str(exc.errno)))
        self.counters.sent += 1
        self.counters.fragmented += 1
        return None

    def path_mtu(self, dst: str) -> int:
        """The kernel's MTU for the route to ``dst`` (IP_MTU on a connected
        UDP socket, ip(7)); asked once per destination."""
        mtu = self._path_mtu.get(dst)
        if mtu is None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.connect((dst, DISCARD_PORT))
                mtu = probe.getsockopt(socket.IPPROTO_IP, IP_MTU)
            self._path_mtu[dst] = mtu
        return mtu

    def _error(self, name: str) -> str:
        self.counters.send_errors[name] = self.counters.send_errors.get(name, 0) + 1
        return name

    def close(self) -> None:
        for receiver in self.receivers:
            receiver.sock.close()
        self.receivers.clear()
        sender = getattr(self, "sender", None)
        if sender is not None:
            sender.close()


def _proto_name(proto: int) -> str:
    try:
        return IpProto(proto).name
    except ValueError:
        return f"protocol {proto}"
