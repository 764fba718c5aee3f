"""The real runtime: the wall-clock twin of ``runtime.sim``.

One :class:`RealRuntime` drives one engine (the dmvpn.sansio contract) over
real descriptors with ``selectors`` (epoll on Linux):

* underlay receive sockets -> ``engine.receive(now, iface, datagram)``;
* TUN devices -> ``engine.receive(now, "Tunnel0", datagram)``;
* the engine's transmits -> the raw send socket (underlay interfaces) or
  the TUN device (tunnel interfaces);
* ``next_deadline`` -> the select timeout, ``handle_timer`` when it is due;
* the control socket -> ``engine.admin(now, command)``, reply to the client;
* log events -> the :class:`LogPrinter`;
* watchers (:class:`Watcher`, e.g. the kernel's routes into the TUNs,
  :mod:`dmvpn.runtime.real.kernel_routes`) -> their own ``readable(now)``
  (once at start, then whenever their descriptor is readable), which feeds
  the engine through whatever the watcher was built with.

Time is ``time.monotonic()`` minus the moment the runtime was built, so an
engine sees small, never-decreasing seconds as it does in the simulator.
Each readable descriptor is drained in batches of up to ``batch`` packets per
wake-up (a TUN read with offloads may hold a whole TCP super-segment: its
packets count toward the batch), handed to the engine in one
``receive_batch`` call when it has one (:class:`BatchEngine`, the router;
else ``receive`` per packet), and transmits are flushed once per batch,
grouped per interface so the TUN can join TCP segments into one write and
the underlay can send runs of ESP in UDP in one GSO ``sendmsg``. What the
devices refused (offloads) is said once in the log.
"""

from __future__ import annotations

import contextlib
import selectors
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TextIO, overload, runtime_checkable

from dmvpn.runtime.real.control import ACCEPT_BACKOFF, IDLE_REPLY, AcceptFailed, BadRequest, ControlServer
from dmvpn.runtime.real.lograte import SUPPRESSED_TAG, LogRateLimit
from dmvpn.runtime.real.tun import TunDevice
from dmvpn.runtime.real.underlay import Receiver, Underlay
from dmvpn.sansio import Engine, LogEvent
from dmvpn.show.debug_log import IosClock, render_line

DEFAULT_BATCH = 64
#: epoll_wait(2) takes milliseconds; a timer closer than this is polled for.
EPOLL_RESOLUTION = 0.001
RUNTIME_SHOW = "show runtime"


class Watcher(Protocol):
    """A descriptor the runtime watches besides the sockets and TUNs."""

    def fileno(self) -> int: ...

    def readable(self, now: float) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class BatchEngine(Protocol):
    """An engine that takes the packets of one drain in one call
    (:meth:`dmvpn.node.router.Router.receive_batch`)."""

    def receive_batch(self, now: float, iface: str, packets: Sequence[bytes]) -> None: ...


class Drained(Sequence[bytes]):
    """The packets of one drain from ``start`` on, as a batch engine sees
    them; iterating records in :attr:`taken` how far the engine got, so
    that after an engine error on one packet the runtime goes on with the
    next (as it does calling ``receive`` per packet)."""

    __slots__ = ("packets", "start", "taken")

    def __init__(self, packets: list[bytes], start: int = 0) -> None:
        self.packets = packets
        self.start = start
        #: index past the last packet handed out
        self.taken = start

    def __len__(self) -> int:
        return len(self.packets) - self.start

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> list[bytes]: ...

    def __getitem__(self, index: int | slice) -> bytes | list[bytes]:
        return self.packets[self.start:][index]

    def __iter__(self) -> Iterator[bytes]:
        packets = self.packets
        for i in range(self.start, len(packets)):
            self.taken = i + 1
            yield packets[i]


class LogPrinter:
    """Prints log events one line each, IOS style
    (``Nov 29 02:41:07: ISAKMP: (1001):...``), optionally only some
    categories (``None``: every event the engine emits; engines themselves
    gate per-packet debugging behind their ``debug`` commands).

    Syslog messages (a facility such as ``%CRYPTO-4-IKMP_BAD_MESSAGE``) go
    through ``rate_limit`` per tag, the suppressed ones counted in one line
    per interval (:mod:`dmvpn.runtime.real.lograte`); debug lines, which the
    operator asked for, are not limited."""

    def __init__(self, stream: TextIO, clock: IosClock, categories: set[str] | None = None,
                 rate_limit: LogRateLimit | None = None) -> None:
        self.stream: TextIO | None = stream
        self.clock = clock
        self.categories = categories
        self.rate_limit = LogRateLimit() if rate_limit is None else rate_limit

    def __call__(self, event: LogEvent) -> None:
        if self.categories is not None and event.category not in self.categories:
            return
        facility = event.fields.get("facility", event.category.upper())
        if facility.startswith("%"):
            self.tick(event.time)
            if not self.rate_limit.allow(event.time, facility):
                return
        self._write(render_line(event, self.clock) + "\n")

    def tick(self, now: float, *, final: bool = False) -> None:
        """Report the intervals that ended with lines suppressed (``final``:
        every count left)."""
        for cause, n in self.rate_limit.due(now, final=final):
            self._write(f"{self.clock.timestamp(now)}: {SUPPRESSED_TAG}: {n} {cause} message"
                        f"{'s' if n != 1 else ''} suppressed in the last "
                        f"{self.rate_limit.interval:g} s\n")

    def note(self, now: float, text: str) -> None:
        """A line from the runtime itself (start, stop, send errors)."""
        self._write(f"{self.clock.timestamp(now)}: %DMVPN: {text}\n")

    def _write(self, line: str) -> None:
        """A log reader that went away (closed pipe, full disk) must not
        stop the router: printing stops instead."""
        if self.stream is None:
            return
        try:
            self.stream.write(line)
            self.stream.flush()
        except (OSError, ValueError):
            self.stream = None


@dataclass(slots=True)
class RuntimeCounters:
    """What ``show runtime`` reports."""

    wakeups: int = 0
    received: dict[str, int] = field(default_factory=dict)
    transmitted: dict[str, int] = field(default_factory=dict)
    tx_errors: dict[str, int] = field(default_factory=dict)
    timers: int = 0
    admin: int = 0
    non_ipv4: int = 0
    engine_errors: dict[str, int] = field(default_factory=dict)
    control_errors: dict[str, int] = field(default_factory=dict)


class RealRuntime:
    """Drives ``engine`` over ``underlay``, ``tuns`` and ``control`` until
    :meth:`stop` (or SIGTERM/SIGINT when :meth:`run` is on the main thread).
    The runtime owns the descriptors it is given and closes them on exit."""

    def __init__(self, engine: Engine, underlay: Underlay, tuns: list[TunDevice],
                 control: ControlServer | None, printer: LogPrinter, *,
                 shutdown_command: str | None = None, batch: int = DEFAULT_BATCH,
                 clock: Callable[[], float] = time.monotonic, start: float | None = None,
                 watchers: tuple[Watcher, ...] = ()) -> None:
        self.engine = engine
        self.underlay = underlay
        self.tuns = {t.spec.iface: t for t in tuns}
        self.watchers = watchers
        self.control = control
        self.printer = printer
        self.shutdown_command = shutdown_command
        self.batch = batch
        self.clock = clock
        self.start = clock() if start is None else start
        self.counters = RuntimeCounters()
        self._receive_batch: Callable[[float, str, Sequence[bytes]], None] | None = (
            engine.receive_batch if isinstance(engine, BatchEngine) else None)
        self.selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stop = False
        #: when the control listener is watched again after accept(2) failed
        self._accept_resume: float | None = None
        #: why the loop ended on an unexpected exception (None: it did not)
        self.failed: str | None = None
        self.selector.register(self._wake_r, selectors.EVENT_READ, ("wake", None))
        for receiver in underlay.receivers:
            self.selector.register(receiver.sock, selectors.EVENT_READ, ("underlay", receiver))
        for tun in tuns:
            self.selector.register(tun.fd, selectors.EVENT_READ, ("tun", tun))
        if control is not None:
            self.selector.register(control.sock, selectors.EVENT_READ, ("accept", None))
        for watcher in watchers:
            self.selector.register(watcher.fileno(), selectors.EVENT_READ, ("watcher", watcher))

    def now(self) -> float:
        """Seconds since the runtime started (monotonic)."""
        return self.clock() - self.start

    # -- control ------------------------------------------------------------
    def stop(self) -> None:
        """Ask the loop to finish (safe from another thread or a signal)."""
        self._stop = True
        with contextlib.suppress(OSError):  # the loop is already gone
            self._wake_w.send(b"\x00")

    def run(self) -> None:
        """The loop; returns after :meth:`stop` and the shutdown, having
        closed every descriptor (the TUN devices and the control socket are
        removed)."""
        on_main = threading.current_thread() is threading.main_thread()
        previous = {}
        if on_main:
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, lambda *_: self.stop())
        try:
            try:
                self._loop()
            except Exception as exc:  # a runtime bug: still say goodbye to the peers
                self.failed = f"{type(exc).__name__}: {exc}"
                self.printer.note(self.now(), f"runtime loop failed ({self.failed}); shutting down")
            self._shutdown()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.close()

    def _loop(self) -> None:
        engine = self.engine
        for tun in self.tuns.values():
            if tun.note is not None:
                self.printer.note(self.now(), tun.note)
        self._flush(self.now())
        for watcher in self.watchers:
            self._from_watcher(watcher)
        while not self._stop:
            deadline = self._next_wakeup(engine.next_deadline())
            now = self.now()
            timeout = None if deadline is None else deadline - now
            if timeout is not None and timeout < EPOLL_RESOLUTION:
                timeout = 0.0  # epoll rounds up to whole milliseconds: poll instead of oversleeping
            ready = self.selector.select(timeout)
            self.counters.wakeups += 1
            for key, _ in ready:
                kind, obj = key.data
                if kind == "underlay":
                    self._from_underlay(obj)
                elif kind == "tun":
                    self._from_tun(obj)
                elif kind == "accept":
                    self._accept()
                elif kind == "conn":
                    self._from_client(obj)
                elif kind == "watcher":
                    self._from_watcher(obj)
                else:
                    self._drain_wakeup()
            if self.control is not None:
                self._control_timers(self.now())
            self.printer.tick(self.now())
            deadline = engine.next_deadline()
            now = self.now()
            if deadline is not None and deadline <= now:
                self.counters.timers += 1
                engine.handle_timer(now)
                self._flush(now)

    def _shutdown(self) -> None:
        now = self.now()
        if self.shutdown_command is not None:
            reply = self.engine.admin(now, self.shutdown_command)
            if reply:
                self.printer.note(now, f"shutdown: {reply}")
            self._flush(now)
        self.printer.tick(now, final=True)  # the last counts, before "stopped"
        self.printer.note(now, "stopped")

    # -- inputs ---------------------------------------------------------------
    def _from_underlay(self, receiver: Receiver) -> None:
        packets = self.underlay.drain(receiver, self.batch)
        if not packets:
            return
        now = self.now()
        self._deliver(now, receiver.iface, packets)
        self._count(self.counters.received, receiver.iface, len(packets))
        self._flush(now)

    def _from_tun(self, tun: TunDevice) -> None:
        read = tun.read_batch(self.batch)
        packets = [packet for packet in read if packet and packet[0] >> 4 == 4]  # the engines speak IPv4 only
        if len(packets) < len(read):
            self.counters.non_ipv4 += len(read) - len(packets)
        if packets:
            now = self.now()
            iface = tun.spec.iface
            self._deliver(now, iface, packets)
            self._count(self.counters.received, iface, len(packets))
            self._flush(now)

    def _deliver(self, now: float, iface: str, packets: list[bytes]) -> None:
        """The packets of one drain to the engine: one ``receive_batch``
        (or ``receive`` each). An engine error on a packet is counted and
        logged (:meth:`_engine_error`) and the rest go on: one bad packet
        must not take the daemon down, nor the packets behind it."""
        receive_batch = self._receive_batch
        if receive_batch is None:
            receive = self.engine.receive
            for packet in packets:
                try:
                    receive(now, iface, packet)
                except Exception as exc:
                    self._engine_error(now, iface, exc)
            return
        drained = Drained(packets)
        while True:
            try:
                receive_batch(now, iface, drained)
                return
            except Exception as exc:
                self._engine_error(now, iface, exc)
            # the packet that raised is the last one taken (none taken: the first)
            rest = max(drained.taken, drained.start + 1)
            if rest >= len(packets):
                return
            drained = Drained(packets, rest)

    def _from_watcher(self, watcher: Watcher) -> None:
        try:
            watcher.readable(self.now())
        except Exception as exc:  # a watcher's failure must not take the daemon down
            self._engine_error(self.now(), type(watcher).__name__, exc)
        self._flush(self.now())

    def _accept(self) -> None:
        assert self.control is not None
        now = self.now()
        try:
            while (conn := self.control.accept(now)) is not None:
                self.selector.register(conn, selectors.EVENT_READ, ("conn", conn))
        except AcceptFailed as exc:
            # no descriptor left (EMFILE/ENFILE) or the like: stop watching the
            # listener for a moment (it stays readable: the loop would spin)
            self.selector.unregister(self.control.sock)
            self._accept_resume = now + ACCEPT_BACKOFF
            key = f"accept: {exc}"
            first = key not in self.counters.control_errors
            self._count(self.counters.control_errors, key, 1)
            if first:
                self.printer.note(now, f"control socket accept failed: {exc}; "
                                       f"not accepting for {ACCEPT_BACKOFF:g} s")

    def _next_wakeup(self, deadline: float | None) -> float | None:
        """The engine's deadline, or sooner a control client's idle timeout
        or the end of an accept back-off."""
        if self.control is None:
            return deadline
        times = [t for t in (deadline, self.control.next_expiry(), self._accept_resume) if t is not None]
        return min(times) if times else None

    def _control_timers(self, now: float) -> None:
        """Drop the clients that sent no line in time; watch the listener
        again once the back-off is over."""
        assert self.control is not None
        for conn in self.control.expired(now):
            self._count(self.counters.control_errors, "idle timeout", 1)
            self.selector.unregister(conn)
            self.control.reply(conn, IDLE_REPLY)
        if self._accept_resume is not None and now >= self._accept_resume:
            self._accept_resume = None
            self.selector.register(self.control.sock, selectors.EVENT_READ, ("accept", None))

    def _from_client(self, conn: socket.socket) -> None:
        assert self.control is not None
        try:
            command = self.control.read(conn)
        except BadRequest as bad:
            command, reply = None, str(bad)
        else:
            if command is None:
                return
            reply = self.admin(command)
        self.selector.unregister(conn)
        self.control.reply(conn, reply)

    def admin(self, command: str) -> str:
        """Run an operator command: ``show runtime`` here, all else in the
        engine (which answers bad input with an IOS error line)."""
        now = self.now()
        self.counters.admin += 1
        if " ".join(command.split()) == RUNTIME_SHOW:
            return self.show_runtime()
        try:
            reply = self.engine.admin(now, command)
        except Exception as exc:  # an engine bug must not take the daemon down
            reply = f"% Internal error running '{command}': {type(exc).__name__}: {exc}"
        self._flush(now)
        return reply

    def show_runtime(self) -> str:
        """Counters of the runtime (not an IOS command)."""
        c = self.counters
        lines = [f"Runtime for {self.engine.name}: up {self.now():.1f} s, {c.wakeups} wake-ups, "
                 f"{c.timers} timers, {c.admin} admin commands"]
        for iface in sorted(set(c.received) | set(c.transmitted)):
            lines.append(f"  {iface}: {c.received.get(iface, 0)} packets in, "
                         f"{c.transmitted.get(iface, 0)} packets out")
        u = self.underlay.counters
        if u.fragmented:
            lines.append(f"  {u.fragmented} datagrams over the path MTU sent fragmented")
        if u.gso_sends or u.gro_reads:
            lines.append(f"  UDP GSO: {u.gso_datagrams} datagrams in {u.gso_sends} sends; "
                         f"UDP GRO: {u.gro_datagrams} datagrams in {u.gro_reads} reads")
        for tun in self.tuns.values():
            if tun.joined_writes:
                lines.append(f"  {tun.spec.name}: {tun.joined_packets} TCP segments written joined "
                             f"in {tun.joined_writes} writes")
            if tun.bad_reads:
                lines.append(f"  {tun.bad_reads} offload reads from {tun.spec.name} not cut into packets")
        if c.non_ipv4:
            lines.append(f"  {c.non_ipv4} non-IPv4 packets from TUN dropped")
        for name, n in sorted(c.engine_errors.items()):
            lines.append(f"  engine errors {name}: {n}")
        for name, n in sorted(self.printer.rate_limit.total_suppressed.items()):
            lines.append(f"  log lines suppressed {name}: {n}")
        for name, n in sorted(c.control_errors.items()):
            lines.append(f"  control socket {name}: {n}")
        for name, n in sorted(c.tx_errors.items()):
            lines.append(f"  transmit errors {name}: {n}")
        return "\n".join(lines)

    def _drain_wakeup(self) -> None:
        try:
            while self._wake_r.recv(64):
                pass
        except BlockingIOError:
            pass

    # -- outputs ----------------------------------------------------------------
    def _flush(self, now: float) -> None:
        """Send the engine's transmits (each interface's in one batch, in
        the engine's order); print its log events."""
        engine = self.engine
        tuns, underlay, sent = self.tuns, self.underlay, self.counters.transmitted
        pending: dict[str, list[bytes]] = {}
        for tx in engine.poll_transmit():
            iface = tx.iface
            out = pending.get(iface)
            if out is None:
                if iface not in tuns and iface not in underlay.ifaces:
                    self._tx_error(now, iface, "no such interface in this runtime")
                    continue
                out = pending[iface] = []
            out.append(tx.packet)
        for iface, packets in pending.items():
            tun = tuns.get(iface)
            done, errors = tun.write_batch(packets) if tun is not None else underlay.send_batch(packets)
            if done:
                sent[iface] = sent.get(iface, 0) + done
            for reason in errors:
                self._tx_error(now, iface, reason)
        if underlay.notes:
            for note in underlay.notes:
                self.printer.note(now, note)
            underlay.notes.clear()
        for event in engine.poll_events():
            self.printer(event)

    def _engine_error(self, now: float, iface: str, exc: Exception) -> None:
        """The engine raised on a received packet (an engine bug): count it,
        print the first of each kind, go on with the next packet."""
        key = f"{type(exc).__name__} on {iface}"
        first = key not in self.counters.engine_errors
        self._count(self.counters.engine_errors, key, 1)
        if first:
            self.printer.note(now, f"engine error on a packet from {iface}: {type(exc).__name__}: {exc}")

    def _tx_error(self, now: float, iface: str, reason: str) -> None:
        key = f"{iface} {reason}"
        first = key not in self.counters.tx_errors
        self._count(self.counters.tx_errors, key, 1)
        if first:  # one line per kind, the counters keep the rest
            self.printer.note(now, f"transmit on {iface} failed: {reason}")

    @staticmethod
    def _count(table: dict[str, int], key: str, n: int) -> None:
        table[key] = table.get(key, 0) + n

    def close(self) -> None:
        """Close every descriptor; removes the TUN devices and the control socket."""
        self.selector.close()
        if self.control is not None:
            self.control.close()
        for tun in self.tuns.values():
            tun.close()
        for watcher in self.watchers:
            watcher.close()
        self.underlay.close()
        self._wake_r.close()
        self._wake_w.close()

