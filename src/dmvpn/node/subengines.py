"""The router's sub-engines as one collection (issue 11; FRR nhrpd and
strongSwan's ``ike_sa_manager`` compose their daemons the same way).

Each protocol engine the router holds (the key managers, the ICMP host,
later NHRP) sits in a :class:`SubEngine` slot that knows how its outputs
enter the router: a key manager's UDP datagrams are wrapped in IPv4 and
sent on the underlay, the host's packets are routed. The router's
``handle_timer``, ``next_deadline`` and draining loop iterate over the
slots in order, so adding an engine is adding a slot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from dmvpn.ike.manager import Datagram, KeyManager
from dmvpn.node.icmp_echo import IcmpEchoEngine
from dmvpn.sansio import LogEvent, Transmit


class SubEngine(Protocol):
    """One engine inside the router, as the router drives it."""

    def handle_timer(self, now: float) -> None:
        """Run what is due at ``now``."""
        ...

    def next_deadline(self) -> float | None:
        """When the engine wants :meth:`handle_timer` next, or None."""
        ...

    def drain(self, now: float) -> bool:
        """Hand the engine's pending outputs to the router; True if there were any."""
        ...

    def poll_events(self) -> list[LogEvent]:
        """The engine's log events, oldest first; emptied."""
        ...


class KeyManagerSlot:
    """A :class:`~dmvpn.ike.manager.KeyManager`: SAD events in, datagrams out
    through ``send`` (the router's UDP path)."""

    def __init__(self, manager: KeyManager, send: Callable[[float, Datagram], None]) -> None:
        self.manager = manager
        self.send = send

    def handle_timer(self, now: float) -> None:
        self.manager.handle_timer(now)

    def next_deadline(self) -> float | None:
        return self.manager.next_deadline()

    def drain(self, now: float) -> bool:
        self.manager.sad_events(now)
        moved = False
        for datagram in self.manager.poll_datagrams():
            moved = True
            self.send(now, datagram)
        return moved

    def poll_events(self) -> list[LogEvent]:
        return self.manager.poll_events()


class HostSlot:
    """The built-in ICMP host: its packets go out through ``send`` (the
    router's egress: a tunnel, a crypto map or an interface)."""

    def __init__(self, host: IcmpEchoEngine, send: Callable[[float, Transmit], None]) -> None:
        self.host = host
        self.send = send

    def handle_timer(self, now: float) -> None:
        self.host.handle_timer(now)

    def next_deadline(self) -> float | None:
        return self.host.next_deadline()

    def drain(self, now: float) -> bool:
        moved = False
        for tx in self.host.poll_transmit():
            moved = True
            self.send(now, tx)
        return moved

    def poll_events(self) -> list[LogEvent]:
        return self.host.poll_events()
