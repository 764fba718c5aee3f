"""What the NHRP/DMVPN show commands display: plain view records, filled
from the NHRP engines by :func:`dmvpn.nhrp.show_adapter` (or from a
genieparser sample in the tests). Times are seconds; the renderers format
them as IOS does."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class NhrpEntryView:
    """One ``show ip nhrp`` entry (NHRP.md 3.8). ``expire`` None is
    "never expire"; ``claimed_nbma`` is set for a NATed peer (the NBMA
    address it registered, ``nbma`` being the one packets come from)."""

    target: str
    via: str
    interface: str
    created: int
    expire: int | None
    type: str
    flags: tuple[str, ...]
    nbma: str
    claimed_nbma: str | None = None
    preference: int = 255
    no_socket: bool = False
    requester: str | None = None
    request_id: int | None = None


@dataclass(frozen=True, slots=True)
class PendingRegistrationView:
    """``Registration Request: Reqid N, Ret R  NHS A state`` in ``nhs detail``."""

    request_id: int
    retransmit: int
    nhs: str
    state: str
    interface: str


@dataclass(frozen=True, slots=True)
class NhsView:
    """One ``ip nhrp nhs`` as ``show ip nhrp nhs [detail]`` prints it."""

    address: str
    state: str  # "RE", "E", "W" (+ "D" for nhs dynamic)
    nbma: str | None
    priority: int = 0
    cluster: int = 0
    requests_sent: int = 0
    requests_failed: int = 0
    replies_received: int = 0
    last_reply_ago: int | None = None
    current_request_id: int | None = None
    ack: int | None = None
    protection_requested: bool = False


@dataclass(frozen=True, slots=True)
class NhsInterfaceView:
    """The NHSs of one tunnel interface."""

    interface: str
    servers: tuple[NhsView, ...]
    pending: tuple[PendingRegistrationView, ...] = ()


@dataclass(frozen=True, slots=True)
class DmvpnRowView:
    """One tunnel-address row under an NBMA peer in ``show dmvpn``.
    ``updn`` None prints "never"; ``target`` is the detail view's Target
    Network column."""

    tunnel: str
    state: str
    updn: int | None
    attrb: str
    target: str = ""


@dataclass(frozen=True, slots=True)
class DmvpnPeerView:
    """An NBMA peer and its rows (``# Ent`` is the number of rows)."""

    nbma: str
    rows: tuple[DmvpnRowView, ...]


@dataclass(frozen=True, slots=True)
class DmvpnInterfaceView:
    """One interface's block of ``show dmvpn [detail]``; the fields after
    ``peers`` are printed by the detail view only."""

    interface: str
    type: str  # "Hub", "Spoke", "Unknown"
    peers: tuple[DmvpnPeerView, ...]
    address: str = ""
    source: str = ""
    protection: str | None = None
    nhs: tuple[NhsView, ...] = ()


TRAFFIC_KINDS = (
    "resolution_request",
    "resolution_reply",
    "registration_request",
    "registration_reply",
    "purge_request",
    "purge_reply",
    "error_indication",
    "traffic_indication",
    "redirect_supress",  # genieparser's spelling
)


@dataclass(frozen=True, slots=True)
class NhrpTrafficView:
    """``show ip nhrp traffic`` for one interface: counts keyed by
    :data:`TRAFFIC_KINDS`."""

    interface: str
    sent: dict[str, int] = field(default_factory=dict)
    rcvd: dict[str, int] = field(default_factory=dict)
    max_send_limit: str = "10000Pkts/10Sec"
    usage: int = 0
