"""The real runtime's loop in-process on loopback (UDP on 127.0.0.1, a port
the kernel picks): datagrams rebuilt for the engine as IPv4 + UDP (checked
with scapy), timers on the wall clock, an engine that raises on a packet does
not stop the daemon, the control socket, stop() and cleanup."""

from __future__ import annotations

import io
import ipaddress
import socket
import threading
import time
from datetime import datetime

from scapy.layers.inet import IP, UDP

from dmvpn.runtime.real.control import ControlServer, send_command
from dmvpn.runtime.real.loop import LogPrinter, RealRuntime
from dmvpn.runtime.real.underlay import Underlay, UnderlaySpec
from dmvpn.sansio import LogEvent, Transmit
from dmvpn.show.debug_log import IosClock


class ProbeEngine:
    """Records what it gets; raises on a payload of b"boom"; wants a timer
    0.05 s after start; answers admin with the command reversed."""

    name = "probe"

    def __init__(self) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.timers: list[float] = []
        self.deadline: float | None = 0.05
        self._tx: list[Transmit] = []
        self._events: list[LogEvent] = []

    def receive(self, now: float, iface: str, packet: bytes) -> None:
        if packet.endswith(b"boom"):
            raise ValueError("boom")
        self.received.append((iface, packet))
        self._events.append(LogEvent(now, self.name, "probe", f"got {len(packet)} bytes"))

    def handle_timer(self, now: float) -> None:
        self.timers.append(now)
        self.deadline = None

    def next_deadline(self) -> float | None:
        return self.deadline

    def admin(self, now: float, command: str) -> str:
        return command[::-1]

    def poll_transmit(self) -> list[Transmit]:
        out, self._tx = self._tx, []
        return out

    def poll_events(self) -> list[LogEvent]:
        out, self._events = self._events, []
        return out


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_loop_on_loopback(tmp_path):
    port = _free_udp_port()
    engine = ProbeEngine()
    underlay = Underlay([UnderlaySpec("lo0", ipaddress.IPv4Address("127.0.0.1"), udp_ports=(port,),
                                      raw_protocols=())])
    control = ControlServer(tmp_path / "probe.sock")
    log = io.StringIO()
    runtime = RealRuntime(engine, underlay, [], control, LogPrinter(log, IosClock(base=datetime(2026, 1, 1))))
    thread = threading.Thread(target=runtime.run)
    thread.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.bind(("127.0.0.1", 0))
            client.sendto(b"boom", ("127.0.0.1", port))
            client.sendto(b"hello ike", ("127.0.0.1", port))
            sport = client.getsockname()[1]
        end = time.monotonic() + 5
        while (not engine.received or not engine.timers) and time.monotonic() < end:
            time.sleep(0.01)
        assert send_command(tmp_path / "probe.sock", "show crypto") == "otpyrc wohs"
        runtime_text = send_command(tmp_path / "probe.sock", "show runtime")
    finally:
        runtime.stop()
        thread.join(5)
    assert not thread.is_alive()
    (iface, packet), = engine.received
    assert iface == "lo0"
    ip = IP(packet)
    assert (ip.src, ip.dst, ip.proto, ip[UDP].sport, ip[UDP].dport) == ("127.0.0.1", "127.0.0.1", 17, sport, port)
    assert bytes(ip[UDP].payload) == b"hello ike"
    rebuilt = IP(packet)
    del rebuilt.chksum, rebuilt[UDP].chksum  # scapy recomputes both: ours must match
    assert IP(bytes(rebuilt)).chksum == ip.chksum and IP(bytes(rebuilt))[UDP].chksum == ip[UDP].chksum
    assert len(engine.timers) == 1 and 0.05 <= engine.timers[0] < 2.0
    assert "lo0: 2 packets in, 0 packets out" in runtime_text
    assert "engine errors ValueError on lo0: 1" in runtime_text
    lines = log.getvalue().splitlines()
    assert "%DMVPN: engine error on a packet from lo0: ValueError: boom" in lines[0]
    assert lines[1].endswith("PROBE: got 37 bytes") and lines[-1].endswith("%DMVPN: stopped")
    assert not (tmp_path / "probe.sock").exists()


def _start(tmp_path, engine, control, **kw):
    log = io.StringIO()
    runtime = RealRuntime(engine, Underlay([]), [], control,
                          LogPrinter(log, IosClock(base=datetime(2026, 1, 1))), **kw)
    thread = threading.Thread(target=runtime.run)
    thread.start()
    return runtime, thread, log


def test_control_connections_capped_and_idle_ones_dropped(tmp_path):
    """Issue 17: idle control connections were never timed out and had no cap
    (20,000 of them exhausted the descriptors). Over the cap a client is
    answered at once; an idle one is dropped after the timeout."""
    path = tmp_path / "cap.sock"
    runtime, thread, _ = _start(tmp_path, ProbeEngine(), ControlServer(path, max_clients=3, idle_timeout=0.5))
    idle = []
    try:
        for _ in range(3):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            s.connect(str(path))
            idle.append(s)
        time.sleep(0.1)
        extra = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        extra.settimeout(5)
        extra.connect(str(path))
        assert extra.recv(200) == b"% Too many control connections (at most 3 at once)\n"
        extra.close()
        started = time.monotonic()
        assert idle[0].recv(200).startswith(b"% Timed out waiting for a command")
        assert 0.3 < time.monotonic() - started < 3
        assert send_command(path, "show x") == "x wohs"          # the slots are free again
        assert "control socket idle timeout: 3" in send_command(path, "show runtime")
    finally:
        for s in idle:
            s.close()
        runtime.stop()
        thread.join(5)
    assert not thread.is_alive()


class _NoDescriptors:
    """A listener whose accept(2) fails as when the process is out of descriptors."""

    def __init__(self, real: socket.socket) -> None:
        self.real = real
        self.calls = 0

    def accept(self):
        self.calls += 1
        raise OSError(24, "Too many open files")

    def fileno(self) -> int:
        return self.real.fileno()

    def close(self) -> None:
        self.real.close()


def test_accept_out_of_descriptors_does_not_kill_the_loop(tmp_path):
    """Issue 17: ControlServer.accept caught only BlockingIOError, so EMFILE
    killed the loop. Now: one log line, the listener rests, the daemon runs."""
    path = tmp_path / "emfile.sock"
    control = ControlServer(path)
    fake = _NoDescriptors(control.sock)
    control.sock = fake  # type: ignore[assignment]  # the loop only calls accept/fileno/close
    runtime, thread, log = _start(tmp_path, ProbeEngine(), control)
    try:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(str(path))      # queued in the backlog: the listener is readable
        time.sleep(1.2)
        assert thread.is_alive()
        assert 2 <= fake.calls <= 6        # retried after each 0.5 s back-off, not spinning
        client.close()
    finally:
        runtime.stop()
        thread.join(5)
    assert not thread.is_alive() and runtime.failed is None
    lines = log.getvalue().splitlines()
    assert sum("control socket accept failed: Too many open files" in line for line in lines) == 1
    assert lines[-1].endswith("%DMVPN: stopped")


class _BrokenEngine(ProbeEngine):
    """Raises from next_deadline once armed: a bug in the loop's own path."""

    armed = False
    shutdowns: list[str]

    def next_deadline(self) -> float | None:
        if self.armed:
            self.armed = False
            raise RuntimeError("deadline bug")
        return None

    def admin(self, now: float, command: str) -> str:
        self.shutdowns = [*getattr(self, "shutdowns", []), command]
        return "DELETE sent"


def test_loop_failure_still_runs_the_shutdown(tmp_path):
    """Issue 17: the loop dying sent no DELETE. Now the shutdown path runs
    (its command reaches the engine), one line says why, run() reports it."""
    engine = _BrokenEngine()
    runtime, thread, log = _start(tmp_path, engine, ControlServer(tmp_path / "b.sock"),
                                  shutdown_command="clear crypto sa")
    engine.armed = True
    runtime.stop()                      # wakes the loop, which calls next_deadline
    thread.join(5)
    assert not thread.is_alive()
    assert engine.shutdowns == ["clear crypto sa"]
    assert runtime.failed == "RuntimeError: deadline bug"
    lines = log.getvalue().splitlines()
    assert any("runtime loop failed (RuntimeError: deadline bug); shutting down" in x for x in lines)
    assert lines[-1].endswith("%DMVPN: stopped") and not (tmp_path / "b.sock").exists()


class _BadMessageEngine(ProbeEngine):
    """Logs a syslog message per datagram, as the IKE engine does for a
    malformed ISAKMP datagram."""

    def receive(self, now: float, iface: str, packet: bytes) -> None:
        self.received.append((iface, packet))
        self._events.append(LogEvent(now, self.name, "isakmp", f"IKE message dropped ({len(packet)} bytes)",
                                     {"facility": "%CRYPTO-4-IKMP_BAD_MESSAGE"}))


def test_a_flood_of_bad_datagrams_writes_a_few_log_lines(tmp_path):
    """Issue 17: one log line per malformed packet, with no limit. 3,000 bad
    datagrams through the real loop: at most 10 lines a second of that cause
    plus the counts of the rest."""
    port = _free_udp_port()
    engine = _BadMessageEngine()
    underlay = Underlay([UnderlaySpec("lo0", ipaddress.IPv4Address("127.0.0.1"), udp_ports=(port,),
                                      raw_protocols=())])
    log = io.StringIO()
    runtime = RealRuntime(engine, underlay, [], None, LogPrinter(log, IosClock(base=datetime(2026, 1, 1))))
    thread = threading.Thread(target=runtime.run)
    thread.start()
    started = time.monotonic()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            for i in range(3000):
                client.sendto(b"bad isakmp %d" % i, ("127.0.0.1", port))
                if i % 200 == 0:
                    time.sleep(0.005)      # let the loop drain: the socket buffer must not drop them
        wait_end = time.monotonic() + 10
        while len(engine.received) < 3000 and time.monotonic() < wait_end:
            time.sleep(0.01)
    finally:
        runtime.stop()
        thread.join(5)
    elapsed = time.monotonic() - started
    lines = log.getvalue().splitlines()
    kept = [x for x in lines if "IKMP_BAD_MESSAGE: IKE message dropped" in x]
    counts = [int(x.split("LOG_SUPPRESSED: ")[1].split()[0]) for x in lines if "LOG_SUPPRESSED" in x]
    assert len(engine.received) == 3000
    assert 10 <= len(kept) <= 10 * (int(elapsed) + 2)
    assert len(kept) + sum(counts) == 3000
    assert lines[-1].endswith("%DMVPN: stopped")


class _BatchEngine(ProbeEngine):
    """Takes a drain in one call, as the router does; raises on b"boom" (a
    packet) or on an empty batch (not a packet's fault: before the first)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def receive_batch(self, now: float, iface: str, packets) -> None:
        self.calls.append(len(packets))
        if packets[0] == b"broken":
            raise RuntimeError("before any packet")
        for packet in packets:
            self.receive(now, iface, packet)


def test_a_batch_engine_gets_one_call_per_drain_and_the_packets_after_an_error():
    """One receive_batch per drain; a packet that raises is counted and
    logged once per kind, and the packets behind it still arrive, in order
    (what receive per packet did)."""
    engine = _BatchEngine()
    log = io.StringIO()
    runtime = RealRuntime(engine, Underlay([]), [], None, LogPrinter(log, IosClock(base=datetime(2026, 1, 1))))
    try:
        runtime._deliver(1.0, "lo0", [b"a", b"b"])
        assert engine.calls == [2]
        runtime._deliver(1.0, "lo0", [b"c", b"boom", b"broken", b"d", b"boom", b"e"])
    finally:
        runtime.close()
    assert [p for _, p in engine.received] == [b"a", b"b", b"c", b"d", b"e"]
    assert engine.calls == [2, 6, 4, 3, 1]  # resumed after each packet that raised
    assert runtime.counters.engine_errors == {"ValueError on lo0": 2, "RuntimeError on lo0": 1}
    assert log.getvalue().count("engine error on a packet from lo0") == 2
