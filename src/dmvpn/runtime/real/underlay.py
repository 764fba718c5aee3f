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

UDP reads go into one preallocated buffer (raw ones into a new object each:
see :meth:`Underlay._drain_raw`) and each descriptor is drained in
batches (REFERENCE.md, "What a Python data plane can do here"); socket
buffers are raised past the sysctl caps where root allows
(``SO_RCVBUFFORCE``/``SO_SNDBUFFORCE``, socket(7)).

ESP in UDP 4500 (RFC 3948) takes a faster path with ``offload`` (the
default), udp(7):

* sending: the datagrams the engine built from the interface's address and
  port 4500 go out through the bound UDP 4500 socket instead of the raw one
  (the kernel writes the same IPv4 and UDP headers). Consecutive datagrams
  of one batch to the same peer with the same size (the last may be
  shorter) leave in one ``sendmsg`` with a ``UDP_SEGMENT`` control message
  (generic segmentation offload: one syscall and one stack traversal for up
  to 64 datagrams, cut by the kernel or the device);
* receiving: ``UDP_GRO`` on the 4500 socket lets the kernel hand over
  several datagrams of one peer in one read; the ``UDP_GRO`` control message
  gives the segment size to cut them at;
* the UDP checksum stays on: RFC 3948 section 2.1 lets ESP in UDP over IPv4
  carry a zero one, but the kernel refuses ``UDP_SEGMENT`` on a socket with
  ``SO_NO_CHECK`` (EINVAL: a GSO send needs the checksum), and the device
  offloads the sum anyway.

Whatever arrives on port 4500 reaches the engine with a UDP checksum of zero
(the kernel verified the one that came; RFC 3948 section 2.1 lets ESP in UDP
carry none), so the engine does not sum each datagram a second time.

A kernel or device that refuses either is used without it, said once in
:attr:`Underlay.notes`.
"""

from __future__ import annotations

import errno
import ipaddress
import select
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from dmvpn.runtime.real.errors import RuntimeSetupError
from dmvpn.runtime.real.fragmentation import CannotFragment, fragment
from dmvpn.wire.ipv4 import IpProto, IPv4Header, header_template
from dmvpn.wire.isakmp import IKE_PORT, NAT_T_PORT
from dmvpn.wire.udp import encode_udp

RECV_BUFFER = 65535
#: wireguard-go's 7 MB (f26efb6: fewer drops and retransmits under bursts)
SOCKET_BUFFER = 7 * 1024 * 1024
IP_MTU = getattr(socket, "IP_MTU", 14)  # Linux <linux/in.h>
SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)  # <asm-generic/socket.h>
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
SOL_UDP = 17
UDP_SEGMENT = 103  # <linux/udp.h>
UDP_GRO = 104
#: the kernel's UDP_MAX_SEGMENTS (64 before Linux 6.9)
GSO_MAX_SEGMENTS = 64
#: the largest UDP payload of one IPv4 datagram (the GSO send is one)
GSO_MAX_BYTES = 65535 - 20 - 8
GRO_CMSG_SPACE = socket.CMSG_SPACE(4)
_UDP_HEADER = struct.Struct("!HHHH")
#: how many destination addresses :meth:`Underlay.send` keeps as sendto addresses
ADDRESS_CACHE = 1024
_GSO_SIZE = struct.Struct("=H")
_GRO_SIZE = struct.Struct("=i")
#: errno values meaning "this kernel or device does not do UDP GSO" (udp(7))
GSO_REFUSED = (errno.EIO, errno.EINVAL, errno.ENOPROTOOPT, errno.EOPNOTSUPP)
#: how long a send waits for room in a full UDP socket buffer
SEND_WAIT = 0.05
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
    #: UDP_GRO is on: a read may hold several datagrams of one peer
    gro: bool = False


@dataclass(slots=True)
class UnderlayCounters:
    """Send failures by errno name (no route, message too long ...)."""

    sent: int = 0
    received: int = 0
    fragmented: int = 0
    #: sendmsg calls that carried several datagrams (UDP_SEGMENT), and those datagrams
    gso_sends: int = 0
    gso_datagrams: int = 0
    #: reads that returned several datagrams (UDP_GRO), and those datagrams
    gro_reads: int = 0
    gro_datagrams: int = 0
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

    def __init__(self, specs: Iterable[UnderlaySpec], *, offload: bool = True) -> None:
        self.receivers: list[Receiver] = []
        self.counters = UnderlayCounters()
        self.ifaces: set[str] = set()
        #: what the runtime logs once (offloads refused); it empties the list
        self.notes: list[str] = []
        self.offload = offload
        self.gso = offload
        #: the UDP 4500 socket of each local address (4 bytes), which sends
        #: the ESP in UDP built from it (offload only)
        self._udp_senders: dict[bytes, socket.socket] = {}
        self._path_mtu: dict[str, int] = {}
        #: sendto addresses of the destinations sent to (4 bytes -> (dotted quad, 0))
        self._addresses: dict[bytes, tuple[str, int]] = {}
        self._buffer = bytearray(RECV_BUFFER)
        self._view = memoryview(self._buffer)
        try:
            self.sender = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        except PermissionError:
            raise _permission("a raw IP socket") from None
        try:
            _buffer_size(self.sender, SO_SNDBUFFORCE, socket.SO_SNDBUF)
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
            receiver = Receiver(spec.iface, sock, address, port)
            self.receivers.append(receiver)
            try:
                _buffer_size(sock, SO_RCVBUFFORCE, socket.SO_RCVBUF)
                sock.bind((address, port))
            except OSError as exc:
                raise _bind_error(exc, address, f"UDP port {port}") from None
            sock.setblocking(False)
            if self.offload and port == NAT_T_PORT:
                _buffer_size(sock, SO_SNDBUFFORCE, socket.SO_SNDBUF)
                self._udp_senders[spec.address.packed] = sock
                try:
                    sock.setsockopt(SOL_UDP, UDP_GRO, 1)
                    receiver.gro = True
                except OSError as exc:
                    self.notes.append(f"UDP GRO refused on {address}:{port} ({exc.strerror}): one datagram per read")
        for proto in spec.raw_protocols:
            name = _proto_name(proto)
            try:
                sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, proto)
            except PermissionError:
                raise _permission(f"a raw {name} socket") from None
            self.receivers.append(Receiver(spec.iface, sock, address, None))
            try:
                _buffer_size(sock, SO_RCVBUFFORCE, socket.SO_RCVBUF)
                sock.bind((address, 0))
            except OSError as exc:
                raise _bind_error(exc, address, f"raw {name}") from None
            sock.setblocking(False)

    def drain(self, receiver: Receiver, limit: int) -> list[bytes]:
        """Up to ``limit`` reads waiting on ``receiver``, as whole IPv4
        datagrams addressed to the interface (a GRO read gives several)."""
        if receiver.gro:
            return self._drain_gro(receiver, limit)
        out: list[bytes] = []
        sock, view, buffer = receiver.sock, self._view, self._buffer
        port = receiver.udp_port
        if port is None:  # the datagram carries its addresses: as it came, no address tuple
            return self._drain_raw(sock, limit)
        for _ in range(limit):
            try:
                n, (src, sport) = sock.recvfrom_into(buffer)
            except BlockingIOError:
                break
            except OSError:  # e.g. ECONNREFUSED reported for an earlier send: nothing to read
                continue
            if port == NAT_T_PORT:  # checksum zero, as from a GRO read
                out.append(header_template(src, receiver.local, IpProto.UDP, receiver.ttl).encode(
                    _UDP_HEADER.pack(sport, port, 8 + n, 0) + view[:n]))
            else:
                udp = encode_udp(src, receiver.local, sport, port, bytes(view[:n]))
                out.append(IPv4Header(src, receiver.local, IpProto.UDP, receiver.ttl).encode(udp))
        self.counters.received += len(out)
        return out

    def _drain_raw(self, sock: socket.socket, limit: int) -> list[bytes]:
        """A raw socket's reads, each a whole IPv4 datagram. ``recv`` into a
        new object, not ``recv_into`` the shared buffer: the engine needs
        its own bytes anyway, and the copy costs more than the allocation
        (0.38 against 0.54 us a datagram on loopback)."""
        out: list[bytes] = []
        recv, append = sock.recv, out.append
        for _ in range(limit):
            try:
                append(recv(RECV_BUFFER))
            except BlockingIOError:
                break
            except OSError:
                continue
        self.counters.received += len(out)
        return out

    def _drain_gro(self, receiver: Receiver, limit: int) -> list[bytes]:
        """The UDP_GRO reads: each cut at the segment size its control
        message gives, each piece rebuilt as IPv4 + UDP (checksum zero,
        RFC 3948 section 2.1; the kernel checked the one that came)."""
        out: list[bytes] = []
        sock, view, buffer, port, local = receiver.sock, self._view, self._buffer, receiver.udp_port, receiver.local
        assert port is not None
        counters = self.counters
        for _ in range(limit):
            try:
                n, ancillary, _flags, (src, sport) = sock.recvmsg_into((buffer,), GRO_CMSG_SPACE)
            except BlockingIOError:
                break
            except OSError:
                continue
            size = n
            for level, kind, data in ancillary:
                if level == SOL_UDP and kind == UDP_GRO:
                    size = _GRO_SIZE.unpack_from(data)[0]
            template = header_template(src, local, IpProto.UDP, receiver.ttl)
            if size >= n or size <= 0:
                out.append(template.encode(_UDP_HEADER.pack(sport, port, 8 + n, 0) + view[:n]))
                continue
            counters.gro_reads += 1
            start = len(out)
            for offset in range(0, n, size):
                piece = view[offset:min(offset + size, n)]
                out.append(template.encode(_UDP_HEADER.pack(sport, port, 8 + len(piece), 0) + piece))
            counters.gro_datagrams += len(out) - start
        counters.received += len(out)
        return out

    def send_batch(self, packets: list[bytes]) -> tuple[int, list[str]]:
        """Send the engine-built datagrams of one flush, in order: ESP in
        UDP from a local 4500 socket's address through that socket, runs of
        equal-size datagrams to one peer in one GSO ``sendmsg``; the rest
        as :meth:`send` does. Returns how many went out and the reason for
        each one the kernel refused."""
        errors: list[str] = []
        sent = 0
        run: list[memoryview] = []
        run_sock: socket.socket | None = None
        run_addr: tuple[str, int] = ("", 0)
        run_size = 0
        run_bytes = 0
        senders = self._udp_senders
        for packet in packets:
            # UDP from port 4500 of a local socket, TOS 0, unfragmented
            sock = senders.get(packet[12:16]) if senders and len(packet) >= 28 and packet[9] == 17 else None
            if (sock is None or packet[0] != 0x45 or packet[1] or packet[6] & 0x3F or packet[7]
                    or packet[20:22] != b"\x11\x94"):
                if run:
                    sent += self._send_run(run_sock, run_addr, run, run_size, errors)
                    run = []
                error = self.send(packet)
                if error is None:
                    sent += 1
                else:
                    errors.append(error)
                continue
            addr = (socket.inet_ntoa(packet[16:20]), (packet[22] << 8) | packet[23])
            payload = memoryview(packet)[28:]
            size = len(payload)
            if (run and sock is run_sock and addr == run_addr and size <= run_size and len(run[-1]) == run_size
                    and len(run) < GSO_MAX_SEGMENTS and run_bytes + size <= GSO_MAX_BYTES and self.gso):
                run.append(payload)
                run_bytes += size
                continue
            if run:
                sent += self._send_run(run_sock, run_addr, run, run_size, errors)
            run, run_sock, run_addr, run_size, run_bytes = [payload], sock, addr, size, size
        if run:
            sent += self._send_run(run_sock, run_addr, run, run_size, errors)
        return sent, errors

    def _send_run(self, sock: socket.socket | None, addr: tuple[str, int], run: list[memoryview], size: int,
                  errors: list[str]) -> int:
        """One run of datagrams: one sendmsg with UDP_SEGMENT when it holds
        several; without GSO (refused: turned off, said once) one each."""
        assert sock is not None
        if len(run) > 1 and self.gso:
            try:
                _with_room(sock, sock.sendmsg, run, [(SOL_UDP, UDP_SEGMENT, _GSO_SIZE.pack(size))], 0, addr)
            except OSError as exc:
                if exc.errno not in GSO_REFUSED:
                    name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
                    for _ in run:
                        errors.append(self._error(name))
                    return 0
                self.gso = False
                self.notes.append(f"UDP GSO refused sending to {addr[0]} ({exc.strerror}): one datagram per send")
            else:
                self.counters.sent += len(run)
                self.counters.gso_sends += 1
                self.counters.gso_datagrams += len(run)
                return len(run)
        sent = 0
        for payload in run:
            try:
                _with_room(sock, sock.sendto, payload, addr)
            except OSError as exc:
                errors.append(self._error(errno.errorcode.get(exc.errno or 0, str(exc.errno))))
                continue
            sent += 1
        self.counters.sent += sent
        return sent

    def send(self, packet: bytes) -> str | None:
        """Send one engine-built datagram; returns None, or the reason the
        kernel refused it (counted, never raised: a peer that is unreachable
        must not stop the daemon). A datagram longer than the route's MTU is
        fragmented here when DF allows (see :mod:`fragmentation`)."""
        if len(packet) < 20:
            return self._error("EINVAL")
        packed = packet[16:20]
        address = self._addresses.get(packed)
        if address is None:
            if len(self._addresses) >= ADDRESS_CACHE:  # hosts answered at random must not grow it
                self._addresses.clear()
            address = self._addresses[packed] = (socket.inet_ntoa(packed), 0)
        try:
            self.sender.sendto(packet, address)
        except OSError as exc:
            if exc.errno != errno.EMSGSIZE:
                return self._error(errno.errorcode.get(exc.errno or 0, str(exc.errno)))
            return self._send_fragments(packet, address[0])
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


def _buffer_size(sock: socket.socket, force: int, option: int) -> None:
    """``SOCKET_BUFFER`` bytes of send or receive buffer: past the
    ``net.core.[rw]mem_max`` cap with the FORCE option (CAP_NET_ADMIN),
    else as much as the cap allows."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, force, SOCKET_BUFFER)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)


def _with_room(sock: socket.socket, send: Callable[..., int], *args: object) -> None:
    """``send(*args)`` on the non-blocking ``sock``, waiting (briefly) for
    room once when its buffer is full."""
    try:
        send(*args)
    except BlockingIOError:
        select.select([], [sock], [], SEND_WAIT)
        send(*args)


def _proto_name(proto: int) -> str:
    try:
        return IpProto(proto).name
    except ValueError:
        return f"protocol {proto}"
