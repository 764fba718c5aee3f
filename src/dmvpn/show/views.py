"""View dataclasses: the values a ``show`` command prints, and nothing else.

The router node fills these in from its SAD and IKE state (see
:mod:`dmvpn.node.show_adapter`); the renderers in this package turn them
into IOS-XE text and JSON without computing anything of their own. Numbers
are raw (SPIs as integers, lifetimes in seconds and kilobytes); the
renderers format them the way IOS does.

Field names follow the IOS output and, where genieparser has one, its
schema key (``pkts_encaps``, ``remaining_key_lifetime``, ...), so a test
can compare genieparser's parse of our text with our JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class LifetimeStyle(Enum):
    """How ``sa timing:`` is printed when the volume lifetime is disabled.

    IOS-XE 16.x prints ``(sec): N``; IOS-XE 17.x prints ``N hours, M mins``.
    With a volume lifetime both print ``(k/sec): (KB/SEC)``."""

    SECONDS = "sec"
    HOURS_MINS = "hours-mins"


@dataclass(frozen=True, slots=True)
class SaHistoryView:
    """Why an SA exists, for the JSON form only (IOS prints none of it):
    its SAD state (``active``, ``rekeyed`` ...), whether this router started
    the Quick Mode, what triggered it (``initial``, ``volume rekey``,
    ``collision`` ...), the SPI it replaced, and the bytes it carried."""

    state: str
    initiator: bool
    reason: str
    replaces_spi: int | None
    bytes: int
    idle: bool


@dataclass(frozen=True, slots=True)
class IpsecSaView:
    """One IPsec SA as ``show crypto ipsec sa`` lists it under ``inbound esp
    sas:`` (or ah/pcp, outbound ...).

    ``remaining_kb`` None means the volume lifetime is disabled ("Kilobyte
    Volume Rekey has been disabled"). ``initiator`` None omits the
    ``initiator :`` field (IOS-XE 16 does not print it). ``iv_size`` None
    omits the IV line (AH). ``replay_window`` None omits ``replay window
    size`` (IOS prints it only when the window is not the platform
    default; the seed shows 1024). ``history`` goes to the JSON only."""

    spi: int
    transform: str
    mode: str
    conn_id: int
    flow_id: int
    crypto_map: str
    remaining_sec: int
    remaining_kb: int | None
    esn: bool = False
    flow_engine: str = "HW"
    sibling_flags: int = 0xFFFFFFFF80004008
    initiator: bool | None = None
    lifetime_style: LifetimeStyle = LifetimeStyle.SECONDS
    iv_size: int | None = 16
    replay_detection: bool = True
    replay_window: int | None = None
    status: str = "ACTIVE(ACTIVE)"
    history: SaHistoryView | None = None


@dataclass(frozen=True, slots=True)
class IdentView:
    """``local ident``/``remote ident (addr/mask/prot/port)`` of a flow (the
    Quick Mode IDs, RFC 2407 section 4.6.2). ``mask`` is a dotted mask for
    IPv4 and a prefix length for IPv6, as IOS prints it."""

    addr: str
    mask: str
    prot: int = 0
    port: int = 0


@dataclass(frozen=True, slots=True)
class IpsecFlowCounters:
    """The ``#pkts`` counters of one flow (totals over all its SAs).

    ``send_errors``/``recv_errors`` are the two sums the short form prints;
    the other failure counters are the breakdown the ``detail`` form
    prints."""

    encaps: int = 0
    encrypt: int = 0
    digest: int = 0
    decaps: int = 0
    decrypt: int = 0
    verify: int = 0
    compressed: int = 0
    decompressed: int = 0
    not_compressed: int = 0
    compr_failed: int = 0
    not_decompressed: int = 0
    decompress_failed: int = 0
    send_errors: int = 0
    recv_errors: int = 0
    no_sa_send: int = 0
    invalid_sa_rcv: int = 0
    encaps_failed_send: int = 0
    decaps_failed_rcv: int = 0
    invalid_prot_recv: int = 0
    verify_failed: int = 0
    invalid_identity_recv: int = 0
    invalid_len_rcv: int = 0
    replay_rollover_send: int = 0
    replay_rollover_rcv: int = 0
    replay_failed_rcv: int = 0
    tagged_send: int = 0
    untagged_rcv: int = 0
    not_tagged_send: int = 0
    not_untagged_rcv: int = 0
    internal_err_send: int = 0
    internal_err_recv: int = 0


@dataclass(frozen=True, slots=True)
class IpsecFlowView:
    """One ``protected vrf:`` block: the SAs of one (local ident, remote
    ident, peer) on an interface, with the flow's counters and MTUs.

    ``current_outbound_spi`` is the SPI the router sends on now (0 when
    none); ``dh_group`` is the PFS group name (``group14``) or ``none``."""

    local_ident: IdentView
    remote_ident: IdentView
    peer: str
    local_endpoint: str
    remote_endpoint: str
    counters: IpsecFlowCounters
    plaintext_mtu: int
    path_mtu: int
    ip_mtu: int
    ip_mtu_idb: str
    current_outbound_spi: int
    peer_port: int = 500
    protected_vrf: str | None = None
    action: str = "PERMIT"
    flags: str = "origin_is_acl,"
    pfs: bool = False
    dh_group: str = "none"
    pqc: str | None = None
    inbound_esp: tuple[IpsecSaView, ...] = ()
    inbound_ah: tuple[IpsecSaView, ...] = ()
    inbound_pcp: tuple[IpsecSaView, ...] = ()
    outbound_esp: tuple[IpsecSaView, ...] = ()
    outbound_ah: tuple[IpsecSaView, ...] = ()
    outbound_pcp: tuple[IpsecSaView, ...] = ()


@dataclass(frozen=True, slots=True)
class IpsecInterfaceView:
    """``interface: NAME`` with its crypto map tag and flows. For tunnel
    protection IOS names the map ``<profile>-head-<n>-IPv4`` (IOS-XE 16) or
    ``<Tunnel>-head-<n>``."""

    name: str
    crypto_map_tag: str
    local_addr: str
    flows: tuple[IpsecFlowView, ...] = ()
    ipsecv6_policy_name: str | None = None


class IsakmpSaState(Enum):
    """IKEv1 phase-1 states as ``show crypto isakmp sa`` names them."""

    MM_NO_STATE = "MM_NO_STATE"
    MM_SA_SETUP = "MM_SA_SETUP"
    MM_KEY_EXCH = "MM_KEY_EXCH"
    MM_KEY_AUTH = "MM_KEY_AUTH"
    AG_NO_STATE = "AG_NO_STATE"
    AG_INIT_EXCH = "AG_INIT_EXCH"
    AG_AUTH = "AG_AUTH"
    QM_IDLE = "QM_IDLE"


@dataclass(frozen=True, slots=True)
class IsakmpSaView:
    """One ISAKMP (IKEv1 phase-1) SA.

    ``dst``/``src`` are the responder/initiator addresses the short table
    prints; ``local``/``remote`` are this router's and the peer's, as the
    ``detail`` table prints them. ``lifetime_sec`` is the time left.
    ``engine_conn_id`` None prints ``????`` (no crypto engine entry yet)."""

    dst: str
    src: str
    local: str
    remote: str
    state: IsakmpSaState
    conn_id: int
    status: str = "ACTIVE"
    deleted: bool = False
    ivrf: str | None = None
    encryption: str = "aes"
    hash: str = "sha"
    auth: str = "psk"
    dh_group: int = 14
    lifetime_sec: int = 0
    capabilities: str = ""
    engine_id: str = "SW"
    engine_conn_id: int | None = None

    @property
    def ipv6(self) -> bool:
        return ":" in self.local


@dataclass(frozen=True, slots=True)
class SessionIkeSaView:
    """One ``IKEv1 SA:`` line of ``show crypto session`` (``version`` is
    ``IKEv1``, ``IKEv2`` or ``IKE``). ``lifetime_sec`` is the time left."""

    local: str
    local_port: int
    remote: str
    remote_port: int
    active: bool = True
    version: str = "IKEv1"
    session_id: int | None = None
    capabilities: str = ""
    conn_id: int = 0
    lifetime_sec: int = 0


@dataclass(frozen=True, slots=True)
class SessionFlowView:
    """One ``IPSEC FLOW:`` of ``show crypto session``: the proxy pair, how
    many SAs serve it and (detail) the per-direction counters and the time
    and volume left on the current SAs (``*_kb`` None: volume rekey
    disabled)."""

    protocol: int
    local: IdentView
    remote: IdentView
    active_sas: int
    action: str = "permit"
    origin: str = "crypto map"
    inbound_pkts: int = 0
    inbound_drop: int = 0
    inbound_kb: int | None = 0
    inbound_sec: int = 0
    outbound_pkts: int = 0
    outbound_drop: int = 0
    outbound_kb: int | None = 0
    outbound_sec: int = 0


@dataclass(frozen=True, slots=True)
class CryptoSessionView:
    """One ``Interface:`` block of ``show crypto session``: a peer on an
    interface, its IKE SAs and IPsec flows. ``uptime_sec`` None omits the
    ``Uptime:`` line; ``fvrf``/``ivrf``/``desc``/``phase1_id`` None print
    ``(none)``."""

    interface: str
    peer: str
    peer_port: int
    status: str = "UP-ACTIVE"
    profile: str | None = None
    uptime_sec: int | None = None
    username: str | None = None
    group: str | None = None
    assigned_address: str | None = None
    fvrf: str | None = None
    ivrf: str | None = None
    phase1_id: str | None = None
    desc: str | None = None
    ike_sas: tuple[SessionIkeSaView, ...] = ()
    flows: tuple[SessionFlowView, ...] = ()


@dataclass(frozen=True, slots=True)
class RouteView:
    """One line of ``show ip route``: ``code`` is IOS's source code (``C``,
    ``L``, ``S``, ``H``), ``source_protocol`` genieparser's name for it;
    ``next_hop`` None with an ``interface`` prints ``is directly
    connected``; with a next hop, ``interface`` is printed after it when
    set (a static route configured with both, NHRP routes). ``override`` (with ``override_next_hop`` and
    ``override_interface``) is an NHRP next-hop override (``%``);
    ``age_sec`` is printed for dynamic (NHRP) routes."""

    network: str
    prefix_length: int
    code: str
    source_protocol: str
    distance: int
    metric: int
    next_hop: str | None
    interface: str | None
    candidate_default: bool = False
    override: bool = False
    override_next_hop: str | None = None
    override_interface: str | None = None
    age_sec: int | None = None


@dataclass(frozen=True, slots=True)
class IpRouteView:
    """``show ip route``: the installed routes, by address then prefix
    length; ``gateway`` is the next hop of the candidate default (``Gateway
    of last resort is ...``), None if not set."""

    routes: tuple[RouteView, ...] = ()
    gateway: str | None = None
