"""From an :class:`~dmvpn.nhrp.engine.NhrpEngine` to the show views of
:mod:`dmvpn.show.nhrp_views` (``show dmvpn``, ``show ip nhrp``,
``show ip nhrp nhs``, ``show ip nhrp traffic``). ``sa_up`` tells whether the
IPsec SA to an NBMA peer is up (the router knows; None = no protection)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from ipaddress import IPv4Address
from typing import Any

from dmvpn.nhrp.cache import CacheEntry
from dmvpn.nhrp.engine import NhrpEngine
from dmvpn.nhrp.states import EntryState, NhsState
from dmvpn.show import dmvpn, nhrp
from dmvpn.show.nhrp_views import (
    TRAFFIC_KINDS,
    DmvpnInterfaceView,
    DmvpnPeerView,
    DmvpnRowView,
    NhrpEntryView,
    NhrpTrafficView,
    NhsInterfaceView,
    NhsView,
    PendingRegistrationView,
)
from dmvpn.wire.nhrp import PacketType

SaUp = Callable[[IPv4Address], bool]
_NHS_LETTERS = {NhsState.RESPONDING: "RE", NhsState.EXPECTING: "E", NhsState.WAITING: "W"}


def entry_views(engine: NhrpEngine, now: float) -> list[NhrpEntryView]:
    """``show ip nhrp`` entries, in address order."""
    out = []
    for e in engine.cache:
        claimed = str(e.nbma) if e.nbma_seen is not None and e.nbma is not None else None
        out.append(
            NhrpEntryView(
                target=str(e.prefix),
                via=str(e.next_hop),
                interface=engine.settings.interface,
                created=int(now - e.created),
                expire=None if e.expires is None else max(0, int(e.expires - now)),
                type=e.entry_type,
                flags=tuple(e.flags()),
                nbma=str(e.peer_nbma) if e.peer_nbma is not None else "",
                claimed_nbma=claimed,
            )
        )
    return out


def nhs_view(engine: NhrpEngine, now: float) -> NhsInterfaceView:
    """``show ip nhrp nhs [detail]`` for one interface."""
    servers, pending = [], []
    for n in engine.nhs:
        servers.append(
            NhsView(
                address=str(n.address or "0.0.0.0"),
                state=_NHS_LETTERS[n.state] + ("D" if n.dynamic else ""),
                nbma=str(n.nbma),
                priority=n.priority,
                requests_sent=n.requests,
                requests_failed=n.failures,
                replies_received=n.replies,
                last_reply_ago=None if n.last_reply is None else int(now - n.last_reply),
                current_request_id=n.request_id or None,
                ack=n.acked_id,
                protection_requested=engine.settings.protected,
            )
        )
        if n.awaiting:
            state = "expired" if n.state is NhsState.EXPECTING and n.failures else "pending"
            pending.append(PendingRegistrationView(n.request_id, int(n.retry), str(n.address or "0.0.0.0"), state,
                                                   engine.settings.interface))  # fmt: skip
    return NhsInterfaceView(engine.settings.interface, tuple(servers), tuple(pending))


def _state(engine: NhrpEngine, e: CacheEntry, sa_up: SaUp | None) -> str:
    """UP, NHRP (mapping not complete) or IKE (protected, SA not up) (NHRP.md 3.9)."""
    if e.state in (EntryState.INCOMPLETE, EntryState.NEGATIVE):
        return "NHRP"
    nhs = next((n for n in engine.nhs if n.address == e.next_hop), None)
    if nhs is not None and nhs.state is not NhsState.RESPONDING:
        return "NHRP"
    if engine.settings.protected and sa_up is not None and e.peer_nbma is not None and not sa_up(e.peer_nbma):
        return "IKE"
    return "UP"


def _attrb(e: CacheEntry) -> str:
    letters = {"static": "S", "dynamic": "D", "incomplete": "I"}[e.entry_type]
    if e.nat:
        letters += "N"
    if e.route:
        letters += "T1"
    if e.override:
        letters += "T2"
    return letters


def dmvpn_view(engine: NhrpEngine, now: float, sa_up: SaUp | None = None) -> DmvpnInterfaceView:
    """``show dmvpn [detail]`` for one interface: entries grouped by NBMA peer."""
    groups: dict[str, list[DmvpnRowView]] = {}
    for e in engine.cache:
        nbma = str(e.peer_nbma) if e.peer_nbma is not None else "UNKNOWN"
        row = DmvpnRowView(str(e.next_hop), _state(engine, e, sa_up), int(now - e.created), _attrb(e), str(e.prefix))
        groups.setdefault(nbma, []).append(row)
    s = engine.settings
    kind = "Spoke" if engine.nhs else "Hub"
    nhs = nhs_view(engine, now).servers
    peers = tuple(DmvpnPeerView(nbma, tuple(rows)) for nbma, rows in groups.items())
    address, source = str(s.tunnel_address), str(s.nbma_address)
    return DmvpnInterfaceView(s.interface, kind, peers, address, source, s.protection_profile, nhs)


def traffic_view(engine: NhrpEngine) -> NhrpTrafficView:
    """``show ip nhrp traffic`` for one interface."""
    t = engine.traffic

    def counts(by_type: dict[int, int]) -> dict[str, int]:
        return {kind: by_type.get(int(ptype), 0) for kind, ptype in zip(TRAFFIC_KINDS, PacketType, strict=False)}

    sent = counts(t.sent) | {"redirect_supress": t.redirects_suppressed}
    return NhrpTrafficView(engine.settings.interface, sent, counts(t.received) | {"redirect_supress": 0})


def nhrp_show(
    command: str, engines: Sequence[NhrpEngine], now: float, sa_up: SaUp | None = None
) -> tuple[str, dict[str, Any]] | None:
    """Text and JSON of ``show dmvpn [detail]``, ``show ip nhrp
    [detail|brief]``, ``show ip nhrp nhs [detail]`` or ``show ip nhrp
    traffic`` over these interfaces' engines; None for any other command
    (so the router's show dispatcher can try its own)."""
    words = tuple(command.split())
    if words in (("show", "dmvpn"), ("show", "dmvpn", "detail")):
        views = [dmvpn_view(e, now, sa_up) for e in engines]
        return dmvpn.render_text(views, detail=len(words) == 3), dmvpn.render_json(views)
    if words[:3] != ("show", "ip", "nhrp"):
        return None
    rest = words[3:]
    if rest in ((), ("detail",), ("brief",)):
        entries = [v for e in engines for v in entry_views(e, now)]
        detail = rest == ("detail",)
        text = nhrp.render_brief_text(entries) if rest == ("brief",) else nhrp.render_entries_text(entries, detail)
        return text, nhrp.render_entries_json(entries, detail)
    if rest in (("nhs",), ("nhs", "detail")):
        servers = [nhs_view(e, now) for e in engines if e.nhs]
        detail = rest == ("nhs", "detail")
        return nhrp.render_nhs_text(servers, detail), nhrp.render_nhs_json(servers, detail)
    if rest == ("traffic",):
        counts = [traffic_view(e) for e in engines]
        return nhrp.render_traffic_text(counts), nhrp.render_traffic_json(counts)
    return None
