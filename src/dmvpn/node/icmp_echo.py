"""A trivial engine: ICMP echo responder and pinger (RFC 792).

It answers Echo requests addressed to any of its interface addresses and
runs ``ping`` sessions started by an admin command. It proves the runtime
loop end to end (packets, timers, admin, log events) without any IPsec.

Admin commands (IOS-like):

* ``ping A.B.C.D [repeat N] [size N] [timeout S] [interval S] [source
  A.B.C.D|IFACE]`` starts a session and returns the IOS banner. The Echo
  leaves by the interface whose network holds the destination, else the one
  the ``route`` hook (the router's routing table) names; ``source`` sets the
  source address (one of ours) as IOS's extended ping does. Without
  ``interval`` each Echo is sent when the previous one is answered or
  timed out, as IOS does; with it,
  Echos leave every S seconds (a scheduled pinger). Results accumulate in
  the background because the runtime cannot block.
* ``show ping`` prints the latest session as IOS prints a finished ping
  (``!!.!!`` then the success-rate line).
* ``show ip traffic`` prints the ICMP counters.
* ``debug ip icmp`` / ``undebug all`` switch per-packet log events.
"""

from __future__ import annotations

import ipaddress
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from dmvpn.sansio import LogEvent, RandomSource, Transmit
from dmvpn.show.commands import INVALID_INPUT
from dmvpn.wire.errors import DecodeError
from dmvpn.wire.icmp import IcmpMessage, IcmpType, decode_icmp
from dmvpn.wire.ipv4 import IPV4_MIN_HEADER, IpProto, IPv4Header, decode_ipv4

ICMP_ECHO_OVERHEAD = IPV4_MIN_HEADER + 8
# Plain ints for the per-packet comparisons (IntEnum compares are slower).
_PROTO_ICMP = int(IpProto.ICMP)
_ECHO_REQUEST = int(IcmpType.ECHO_REQUEST)
_ECHO_REPLY = int(IcmpType.ECHO_REPLY)


@dataclass(slots=True)
class IcmpCounters:
    """What ``show ip traffic`` reports in its ICMP section."""

    format_errors: int = 0
    checksum_errors: int = 0
    echo_rcvd: int = 0
    echo_reply_rcvd: int = 0
    echo_sent: int = 0
    echo_reply_sent: int = 0


@dataclass(slots=True)
class PingSession:
    """One ``ping`` command: sent Echos, outstanding ones, results."""

    destination: str
    source: str
    iface: str
    identifier: int
    repeat: int
    size: int
    timeout: float
    interval: float | None
    next_send: float
    sent: int = 0
    outstanding: dict[int, float] = field(default_factory=dict)
    order: deque[int] = field(default_factory=deque)
    results: list[str] = field(default_factory=list)
    #: replies received and their round trips in whole ms (min, sum, max):
    #: what the summary line prints, kept as running figures, not a list.
    received: int = 0
    rtt_ms: tuple[int, int, int] | None = None
    data: bytes = b""

    def __post_init__(self) -> None:
        # IOS fills Echo data with the 0xABCD pattern.
        length = self.size - ICMP_ECHO_OVERHEAD
        self.data = (b"\xab\xcd" * (length // 2 + 1))[:length]

    @property
    def finished(self) -> bool:
        return self.sent == self.repeat and not self.outstanding

    def note_reply(self, rtt: float) -> None:
        ms = round(rtt * 1000)
        self.received += 1
        low, total, high = self.rtt_ms if self.rtt_ms is not None else (ms, 0, ms)
        self.rtt_ms = (min(low, ms), total + ms, max(high, ms))

    def deadline(self) -> float | None:
        times = []
        if self.sent < self.repeat and (self.interval is not None or not self.outstanding):
            times.append(self.next_send)
        while self.order and self.order[0] not in self.outstanding:
            self.order.popleft()
        if self.order:
            times.append(self.outstanding[self.order[0]] + self.timeout)
        return min(times) if times else None

    def banner(self) -> str:
        return (f"Type escape sequence to abort.\n"
                f"Sending {self.repeat}, {self.size}-byte ICMP Echos to {self.destination}, "
                f"timeout is {self.timeout:g} seconds:")

    def summary(self) -> str:
        pct = 100 * self.received // self.repeat if self.repeat else 0
        line = f"Success rate is {pct} percent ({self.received}/{self.repeat})"
        if self.rtt_ms is not None:
            low, total, high = self.rtt_ms
            line += f", round-trip min/avg/max = {low}/{round(total / self.received)}/{high} ms"
        return line


class IcmpEchoEngine:
    """ICMP echo responder + pinger on a set of IPv4 interfaces.

    ``interfaces`` maps interface name to ``"A.B.C.D/len"``.
    """

    def __init__(self, name: str, interfaces: dict[str, str], random: RandomSource,
                 route: Callable[[ipaddress.IPv4Address], str | None] | None = None) -> None:
        self.name = name
        self.random = random
        self.route = route
        self.interfaces = {iface: ipaddress.IPv4Interface(spec) for iface, spec in interfaces.items()}
        self.addresses = {str(i.ip) for i in self.interfaces.values()}
        self.counters = IcmpCounters()
        self.debug = False
        self.sessions: list[PingSession] = []
        self.last: PingSession | None = None
        self._ip_id = int.from_bytes(random.token_bytes(2), "big")
        self._tx: list[Transmit] = []
        self._events: list[LogEvent] = []
        self._deadline: float | None = None
        self._deadline_stale = False

    # -- Engine interface ----------------------------------------------------
    def receive(self, now: float, iface: str, packet: bytes) -> None:
        """Answer Echo to our addresses; match Echo Replies to sessions."""
        try:
            header, payload = decode_ipv4(packet)
            if header.dst not in self.addresses or header.protocol != _PROTO_ICMP:
                return
            message = decode_icmp(payload)
        except DecodeError as err:
            if "checksum" in err.reason:
                self.counters.checksum_errors += 1
            else:
                self.counters.format_errors += 1
            self._log(now, f"ICMP: bad packet on {iface}: {err}", {"error": str(err)})
            return
        if message.type == _ECHO_REQUEST:
            self.counters.echo_rcvd += 1
            reply = IcmpMessage(_ECHO_REPLY, 0, message.rest, message.data)
            self._send(iface, header.dst, header.src, reply)
            self.counters.echo_reply_sent += 1
            if self.debug:
                self._log(now, f"ICMP: echo reply sent, src {header.dst}, dst {header.src}",
                          {"src": header.dst, "dst": header.src, "seq": message.sequence})
        elif message.type == _ECHO_REPLY:
            self.counters.echo_reply_rcvd += 1
            if self.debug:
                self._log(now, f"ICMP: echo reply rcvd, src {header.src}, dst {header.dst}",
                          {"src": header.src, "dst": header.dst, "seq": message.sequence})
            self._match_reply(now, header.src, message)

    def handle_timer(self, now: float) -> None:
        """Time out Echos and send due ones."""
        self._deadline_stale = True
        for session in list(self.sessions):
            while session.order and (session.order[0] not in session.outstanding
                                     or session.outstanding[session.order[0]] + session.timeout <= now):
                seq = session.order.popleft()
                if session.outstanding.pop(seq, None) is not None:
                    session.results[seq] = "."
                    if session.interval is None:
                        session.next_send = now
            while session.sent < session.repeat and session.next_send <= now:
                if session.interval is None and session.outstanding:
                    break
                self._send_echo(now, session)
            self._maybe_finish(now, session)

    def next_deadline(self) -> float | None:
        if self._deadline_stale:  # only timers, replies and admin move it
            deadlines = [d for s in self.sessions if (d := s.deadline()) is not None]
            self._deadline = min(deadlines) if deadlines else None
            self._deadline_stale = False
        return self._deadline

    def admin(self, now: float, command: str) -> str:
        words = command.split()
        if words[:1] == ["ping"]:
            return self._ping(now, words[1:])
        if words == ["show", "ping"]:
            if self.last is None:
                return "% No ping has been run"
            return "\n".join((self.last.banner(), "".join(self.last.results), self.last.summary()))
        if words == ["show", "ip", "traffic"]:
            c = self.counters
            return ("ICMP statistics:\n"
                    f"  Rcvd: {c.format_errors} format errors, {c.checksum_errors} checksum errors\n"
                    f"        {c.echo_rcvd} echo, {c.echo_reply_rcvd} echo reply\n"
                    f"  Sent: {c.echo_sent} echo, {c.echo_reply_sent} echo reply")
        if words == ["debug", "ip", "icmp"]:
            self.debug = True
            return "ICMP packet debugging is on"
        if words in (["undebug", "all"], ["no", "debug", "ip", "icmp"]):
            self.debug = False
            return "ICMP packet debugging is off"
        return INVALID_INPUT

    def poll_transmit(self) -> list[Transmit]:
        out, self._tx = self._tx, []
        return out

    def poll_events(self) -> list[LogEvent]:
        out, self._events = self._events, []
        return out

    # -- internals -------------------------------------------------------------
    def _ping(self, now: float, args: list[str]) -> str:
        if not args:
            return "% Incomplete command."
        try:
            destination = ipaddress.IPv4Address(args[0])
        except ValueError:
            return f"% Unrecognized host or address, or protocol not running: {args[0]}"
        options = {"repeat": 5.0, "size": 100.0, "timeout": 2.0}
        interval: float | None = None
        source: str | None = None
        rest = args[1:]
        if len(rest) % 2:
            return "% Incomplete command."
        for key, value in zip(rest[::2], rest[1::2], strict=True):
            if key == "source":
                source = self._source(value)
                if source is None:
                    return "% Invalid source address- IP address not on any of our up interfaces"
                continue
            try:
                number = float(value)
            except ValueError:
                return f"% Invalid {key} value {value!r}"
            if not math.isfinite(number):  # nan, inf, 1e400: no int() of them
                return f"% Invalid {key} value {value!r}"
            if key == "interval":
                interval = number
            elif key in options:
                options[key] = number
            else:
                return INVALID_INPUT
        repeat, size, timeout = int(options["repeat"]), int(options["size"]), options["timeout"]
        if not 1 <= repeat <= 2147483647:
            return f"% Invalid repeat value {repeat}"
        if not ICMP_ECHO_OVERHEAD <= size <= 65535:
            return f"% Invalid size value {size} (range {ICMP_ECHO_OVERHEAD}-65535)"
        if timeout <= 0 or (interval is not None and interval <= 0):
            return "% Timeout and interval must be positive"
        route = self._route(destination)
        if route is None:
            return f"% No route to {destination}"
        iface, source = route[0], source or route[1]
        session = PingSession(str(destination), source, iface,
                              int.from_bytes(self.random.token_bytes(2), "big"),
                              repeat, size, timeout, interval, next_send=now)
        self.sessions.append(session)
        self.last = session
        self.handle_timer(now)
        return session.banner()

    def _route(self, destination: ipaddress.IPv4Address) -> tuple[str, str] | None:
        for iface, spec in self.interfaces.items():
            if destination in spec.network:
                return iface, str(spec.ip)
        routed = self.route(destination) if self.route is not None else None
        if routed in self.interfaces:
            return routed, str(self.interfaces[routed].ip)
        if len(self.interfaces) == 1:
            iface, spec = next(iter(self.interfaces.items()))
            return iface, str(spec.ip)
        return None

    def _source(self, value: str) -> str | None:
        """``source A.B.C.D`` (one of our addresses) or ``source IFACE``."""
        if value in self.addresses:
            return value
        spec = next((a for n, a in self.interfaces.items() if n.lower() == value.lower()), None)
        return str(spec.ip) if spec is not None else None

    def _send_echo(self, now: float, session: PingSession) -> None:
        seq = session.sent
        session.results.append("?")  # grows as Echos go out: ``repeat 2147483647`` allocates nothing up front
        echo = IcmpMessage.echo(reply=False, identifier=session.identifier, sequence=seq,
                                data=session.data)
        self._send(session.iface, session.source, session.destination, echo)
        self.counters.echo_sent += 1
        session.outstanding[seq] = now
        session.order.append(seq)
        session.sent += 1
        session.next_send = now + session.interval if session.interval is not None else now

    def _match_reply(self, now: float, src: str, message: IcmpMessage) -> None:
        for session in self.sessions:
            if session.identifier == message.identifier and session.destination == src:
                sent_at = session.outstanding.pop(message.sequence, None)
                if sent_at is None:
                    return
                self._deadline_stale = True
                session.results[message.sequence] = "!"
                session.note_reply(now - sent_at)
                if session.interval is None:
                    session.next_send = now
                    self.handle_timer(now)
                else:
                    self._maybe_finish(now, session)
                return

    def _maybe_finish(self, now: float, session: PingSession) -> None:
        if session.finished and session in self.sessions:
            self.sessions.remove(session)
            self._log(now, f"ping {session.destination}: {session.summary()}",
                      {"destination": session.destination, "sent": session.repeat,
                       "received": session.received, "results": "".join(session.results)})

    def _send(self, iface: str, src: str, dst: str, message: IcmpMessage) -> None:
        self._ip_id = (self._ip_id + 1) & 0xFFFF
        header = IPv4Header(src, dst, _PROTO_ICMP, 255, self._ip_id)
        self._tx.append(Transmit(iface, header.encode(message.encode())))

    def _log(self, now: float, message: str, fields: dict[str, object]) -> None:
        self._events.append(LogEvent(now, self.name, "icmp", message, fields))
