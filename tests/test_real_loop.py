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
