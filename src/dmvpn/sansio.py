"""The contract between protocol engines and the runtimes that drive them.

DESIGN.md's one rule: protocol code never touches sockets, clocks or
randomness. An engine is a plain object that is *given* the current time,
incoming packets and admin commands, and that *returns* what to do:

* packets to send (``poll_transmit``), each an IPv4 datagram and the name of
  the interface it leaves by;
* the next moment it wants to be woken at (``next_deadline``);
* structured log events (``poll_events``).

The shape follows aioquic's QuicConnection (receive_datagram / handle_timer /
datagrams_to_send / get_timer). Both runtimes, ``runtime.sim`` (virtual time)
and ``runtime.real`` (wall clock, sockets, TUN), drive engines only through
this interface. Randomness is injected as a :class:`RandomSource`.

It sits below every engine and imports nothing of the project, so
``crypto/``, ``ipsec/``, ``ike/``, ``nhrp/`` and the runtimes all share it
(aioquic keeps ``quic/events.py`` below ``connection.py`` the same way).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


class RandomSource(Protocol):
    """Injected randomness. The sim hands each node a seeded source; the real
    runtime hands an ``os.urandom``-backed one. Keys, SPIs, nonces and cookies
    come only from :meth:`token_bytes`."""

    def token_bytes(self, n: int) -> bytes:
        """``n`` random bytes (key material, SPIs, nonces, cookies, IVs)."""
        ...

    def uniform(self, a: float, b: float) -> float:
        """A float in [a, b] (jitter, check phases; never for key material)."""
        ...


@dataclass(slots=True)
class Transmit:
    """One IPv4 datagram (whole packet, header included) leaving ``iface``."""

    iface: str
    packet: bytes


@dataclass(slots=True)
class LogEvent:
    """A structured log record. ``category`` picks the debug switch it belongs
    to (``"isakmp"`` for ``debug crypto isakmp``, ``"ipsec"``, ``"nhrp"``,
    ``"icmp"`` ...); ``message`` is the text as IOS would print it after the
    timestamp and facility; ``fields`` carries the machine-readable values."""

    time: float
    node: str
    category: str
    message: str
    fields: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Engine(Protocol):
    """What a runtime drives. All methods are called with the runtime's
    notion of *now* in seconds (virtual in the sim, wall clock in real mode).

    The runtime's loop, for each event at time ``now``:

    1. deliver it: :meth:`receive` (a packet arrived on ``iface``),
       :meth:`handle_timer` (``now >= next_deadline()``) or :meth:`admin`;
    2. drain :meth:`poll_transmit` and :meth:`poll_events`;
    3. re-read :meth:`next_deadline`.
    """

    name: str

    def receive(self, now: float, iface: str, packet: bytes) -> None:
        """An IPv4 datagram arrived on ``iface``."""
        ...

    def handle_timer(self, now: float) -> None:
        """Called when ``now`` has reached :meth:`next_deadline`."""
        ...

    def next_deadline(self) -> float | None:
        """The earliest time the engine wants :meth:`handle_timer`, or None."""
        ...

    def admin(self, now: float, command: str) -> str:
        """An operator command (``show ...``, ``clear ...``, ``ping ...``);
        returns the text to print. Bad commands return an IOS-style error
        line (``% Invalid input ...``); they never raise."""
        ...

    def poll_transmit(self) -> list[Transmit]:
        """Datagrams to send, oldest first; the list is emptied."""
        ...

    def poll_events(self) -> list[LogEvent]:
        """Log events, oldest first; the list is emptied."""
        ...
