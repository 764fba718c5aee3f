"""One tunnel interface's NHRP engine (:mod:`dmvpn.nhrp`) as a sub-engine of
the router (:mod:`dmvpn.node.subengines`), and NHRP's admin commands.

What the engine asks (:mod:`dmvpn.nhrp.events`) becomes router actions here:

* ``SendNhrp``: GRE (protocol 0x2001, the tunnel key) to the NBMA peer,
  protected by the peer's SA like every GRE packet (:class:`NhrpPort`);
  the engine holds NHRP to a protected peer until :meth:`NhrpEngine.sa_up`.
* ``NeedSa``: the key manager acquires an SA pair to the peer; the slot
  watches the SAD (its ``generation`` counter, so only when an SA was
  installed, activated or deleted) and calls ``sa_up`` / ``sa_down`` as the
  peer's outbound GRE SA appears and goes.
* ``MappingAdded`` / ``EntryGone``: the tunnel's dynamic NBMA map (static
  ``ip nhrp map`` entries stay). When an entry goes and no mapping, static
  map or NHS of this router uses its NBMA address any more, the IPsec SAs to
  that peer are cleared, as IOS tears down the crypto socket of a DMVPN
  peer whose NHRP entry is gone (the IKE SA is left to expire).
* ``RouteAdded`` / ``RouteRemoved``: NHRP routes (``H``) and next-hop
  overrides (``%``) in the overlay routing table.

The engine is started (static mappings, registration to each NHS) on the
first timer after the router is built: ``next_deadline`` is 0 until then.

The slot also keeps a short history of what happened (:class:`Milestone`:
registrations, mappings, shortcuts, SAs, indications) for the lab report,
whether or not ``debug nhrp`` is on.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Protocol

from dmvpn.ipsec.sad import SecurityAssociationDatabase
from dmvpn.nhrp.engine import NhrpEngine
from dmvpn.nhrp.events import EntryGone, MappingAdded, NeedSa, NhrpOutput, RouteAdded, RouteRemoved, SendNhrp
from dmvpn.nhrp.show_adapter import nhrp_show
from dmvpn.nhrp.states import NhsState
from dmvpn.node.routing import NextHopOverride, Route, RouteSource, RoutingTable
from dmvpn.sansio import LogEvent
from dmvpn.tunnel.interface import TunnelInterface
from dmvpn.wire.nhrp import PacketType

#: Words of the NHRP admin commands, for IOS-style abbreviation.
NHRP_WORDS = ("show", "dmvpn", "ip", "nhrp", "nhs", "detail", "brief", "traffic", "debug", "undebug", "no",
              "packet", "clear", "all")
_TRAFFIC_INDICATION = int(PacketType.TRAFFIC_INDICATION)


class NhrpPort(Protocol):
    """What the slot needs of the router."""

    def send_nhrp(self, now: float, interface: str, nbma: str, packet: bytes) -> None:
        """GRE-encapsulate ``packet`` (0x2001) on ``interface`` toward ``nbma``, protected if configured."""
        ...

    def acquire_sa(self, now: float, interface: str, nbma: str) -> None:
        """Ask the key manager for the GRE SA pair to ``nbma``."""
        ...

    def sa_ready(self, interface: str, nbma: str) -> bool:
        """Whether an outbound GRE SA to ``nbma`` is usable."""
        ...

    def peer_gone(self, now: float, nbma: str) -> None:
        """No NHRP mapping uses ``nbma`` any more: clear its IPsec SAs if nothing else needs them."""
        ...


@dataclass(frozen=True, slots=True)
class Milestone:
    """Something the lab report tells: at ``time`` on ``interface``, ``kind``
    (registered, registration-lost, mapping, mapping-gone, route, route-gone,
    sa-up, sa-down, indication-sent, indication-received) about ``subject``."""

    time: float
    interface: str
    kind: str
    subject: str
    detail: str = ""


class NhrpSlot:
    """The NHRP engine of one tunnel interface inside the router."""

    def __init__(self, engine: NhrpEngine, tunnel: TunnelInterface, routes: RoutingTable,
                 sad: SecurityAssociationDatabase, port: NhrpPort) -> None:
        self.engine = engine
        self.tunnel = tunnel
        self.routes = routes
        self.sad = sad
        self.port = port
        self.interface = engine.settings.interface
        self.debug = False
        self.debug_packet = False
        self.milestones: list[Milestone] = []
        #: NBMA peers whose SA the engine waits for or was told is up.
        self._watched: set[str] = set()
        self._up: set[str] = set()
        self._generation = -1
        self._nhs_states: list[NhsState] = [n.state for n in engine.nhs]
        self._indications = [0, 0]  # sent, received
        #: The engine was called since the last drain / deadline read: only
        #: then can it have outputs or a new deadline (the engine's deadline
        #: scans its cache, which a hub with many spokes cannot afford per packet).
        self._touched = True
        self._deadline: float | None = 0.0
        self._deadline_stale = True

    def _touch(self) -> NhrpEngine:
        self._touched = self._deadline_stale = True
        return self.engine

    # ------------------------------------------------------------ inputs (the router's data path)
    def receive(self, now: float, nbma_src: IPv4Address, nbma_dst: IPv4Address, data: bytes) -> None:
        self._touch().receive(now, nbma_src, nbma_dst, data)

    def resolve(self, now: float, address: IPv4Address) -> None:
        self._touch().resolve(now, address)

    def hairpin(self, now: float, nbma_src: IPv4Address, packet: bytes) -> None:
        self._touch().hairpin(now, nbma_src, packet)

    def used(self, now: float, address: IPv4Address) -> None:
        self._touch().used(now, address)

    def clear(self, now: float) -> None:
        self._touch().clear(now)

    # ------------------------------------------------------------ SubEngine
    def handle_timer(self, now: float) -> None:
        engine = self._touch()
        if not engine.started:
            engine.start(now)
            return
        engine.handle_timer(now)

    def next_deadline(self) -> float | None:
        if self._deadline_stale:
            self._deadline = self.engine.next_deadline() if self.engine.started else 0.0
            self._deadline_stale = False
        return self._deadline

    def drain(self, now: float) -> bool:
        moved = False
        if self._watched and self.sad.generation != self._generation:
            moved = self._check_sas(now)
        if not (self._touched or moved):
            return False
        self._touched = False
        outputs = self.engine.poll_outputs()
        for out in outputs:
            self._act(now, out)
        if self.engine.nhs:
            self._note_nhs(now)
        self._note_indications(now)
        return moved or bool(outputs)

    def poll_events(self) -> list[LogEvent]:
        events = self.engine.poll_events()
        if not (self.debug or self.debug_packet):
            return []
        return [e for e in events if (self.debug_packet if _is_packet_line(e) else self.debug)]

    # ------------------------------------------------------------ outputs
    def _act(self, now: float, out: NhrpOutput) -> None:
        if isinstance(out, SendNhrp):
            self.port.send_nhrp(now, self.interface, str(out.nbma), out.packet)
        elif isinstance(out, NeedSa):
            self._need_sa(now, str(out.nbma))
        elif isinstance(out, MappingAdded):
            overlay, nbma = str(out.address), str(out.nbma)
            if overlay not in self.tunnel.static_maps:
                self.tunnel.learn(overlay, nbma)
            self._note(now, "mapping", overlay, nbma)
        elif isinstance(out, EntryGone):
            overlay, nbma = str(out.address), str(out.nbma)
            if self.tunnel.dynamic_maps.get(overlay) == nbma:
                self.tunnel.forget(overlay)
            self._note(now, "mapping-gone", overlay, nbma)
            if not self.uses(nbma):
                self.port.peer_gone(now, nbma)
        elif isinstance(out, RouteAdded):
            if out.override:
                self.routes.set_override(NextHopOverride(out.prefix, out.next_hop, out.interface, now))
            else:
                self.routes.add_route(Route.nhrp(out.prefix, out.next_hop, out.interface, now))
            self._note(now, "route", str(out.prefix), f"{'%' if out.override else 'H'} via {out.next_hop}")
        elif isinstance(out, RouteRemoved):
            if out.override:
                self.routes.clear_override(out.prefix)
            else:
                self.routes.remove_route(out.prefix, RouteSource.NHRP)
            self._note(now, "route-gone", str(out.prefix), f"via {out.next_hop}")

    def uses(self, nbma: str) -> bool:
        """Whether a mapping, static map or NHS of this tunnel still points at ``nbma``."""
        t = self.tunnel
        return (nbma in t.dynamic_maps.values() or nbma in t.static_maps.values()
                or any(str(n.nbma) == nbma for n in self.engine.nhs))

    def _need_sa(self, now: float, nbma: str) -> None:
        self._watched.add(nbma)
        if self.port.sa_ready(self.interface, nbma):
            self._up.add(nbma)
            self._touch().sa_up(now, IPv4Address(nbma))
            self._note(now, "sa-up", nbma)
            return
        self.port.acquire_sa(now, self.interface, nbma)

    def _check_sas(self, now: float) -> bool:
        """``sa_up`` / ``sa_down`` for the watched peers whose SA appeared or went."""
        self._generation = self.sad.generation
        moved = False
        for nbma in sorted(self._watched):
            ready = self.port.sa_ready(self.interface, nbma)
            if ready and nbma not in self._up:
                self._up.add(nbma)
                self._touch().sa_up(now, IPv4Address(nbma))
                self._note(now, "sa-up", nbma)
                moved = True
            elif not ready and nbma in self._up:
                self._up.discard(nbma)
                self._touch().sa_down(now, IPv4Address(nbma))
                self._note(now, "sa-down", nbma)
                moved = True
        return moved

    def _note_nhs(self, now: float) -> None:
        for i, nhs in enumerate(self.engine.nhs):
            before, after = self._nhs_states[i], nhs.state
            if before is after:
                continue
            self._nhs_states[i] = after
            if after is NhsState.RESPONDING:
                self._note(now, "registered", str(nhs.address or nhs.nbma), str(nhs.nbma))
            elif before is NhsState.RESPONDING:
                self._note(now, "registration-lost", str(nhs.address or nhs.nbma), after.value)

    def _note_indications(self, now: float) -> None:
        t = self.engine.traffic
        sent, received = t.sent[_TRAFFIC_INDICATION], t.received[_TRAFFIC_INDICATION]
        if sent != self._indications[0]:
            self._note(now, "indication-sent", str(sent))
        if received != self._indications[1]:
            self._note(now, "indication-received", str(received))
        self._indications = [sent, received]

    def _note(self, now: float, kind: str, subject: str, detail: str = "") -> None:
        self.milestones.append(Milestone(now, self.interface, kind, subject, detail))


def _is_packet_line(event: LogEvent) -> bool:
    return event.message.startswith(("NHRP: Send", "NHRP: Receive"))


def _expand(words: list[str]) -> list[str]:
    out = []
    for word in words:
        hits = [k for k in NHRP_WORDS if k.startswith(word.lower())]
        out.append(hits[0] if len(hits) == 1 else word.lower())
    return out


def nhrp_admin(slots: Sequence[NhrpSlot], now: float, command: str, sa_ready: Callable[[str, str], bool]) -> str | None:
    """``show dmvpn [detail]``, ``show ip nhrp [detail|brief|nhs [detail]|
    traffic]`` (each with ``| json``), ``debug nhrp [packet]`` and its
    ``no``/``undebug`` forms, ``clear ip nhrp``; None for any other command."""
    body, _, pipe = command.partition("|")
    words = _expand(body.split())
    if words[:1] == ["show"]:
        return _show(slots, now, words, pipe.strip(), sa_ready)
    if words[:2] == ["debug", "nhrp"] or words[:3] == ["no", "debug", "nhrp"] or words[:2] == ["undebug", "nhrp"]:
        on = words[0] == "debug"
        rest = words[3:] if words[0] == "no" else words[2:]
        if rest not in ([], ["packet"]):
            return None
        for slot in slots:
            if rest:
                slot.debug_packet = on
            else:
                slot.debug = on
        what = "NHRP packet" if rest else "NHRP protocol"
        return f"{what} debugging is {'on' if on else 'off'}"
    if words == ["clear", "ip", "nhrp"]:
        for slot in slots:
            slot.clear(now)
        return ""
    return None


def _show(slots: Sequence[NhrpSlot], now: float, words: list[str], pipe: str,
          sa_ready: Callable[[str, str], bool]) -> str | None:
    if pipe and not "json".startswith(pipe.lower()):
        return None
    engines = [s.engine for s in slots]

    def up(nbma: IPv4Address) -> bool:
        return any(sa_ready(s.interface, str(nbma)) for s in slots)

    found = nhrp_show(" ".join(words), engines, now, up)
    if found is None:
        return None
    text, data = found
    return json.dumps(data, indent=2) + "\n" if pipe else text
