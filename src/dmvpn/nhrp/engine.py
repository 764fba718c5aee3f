"""The NHRP engine of one mGRE interface: NHC and NHS in one object
(RFC 2332; Cisco DMVPN phases 2 and 3 as NHRP.md describes them).

Sans-I/O like every engine here (:mod:`dmvpn.sansio`): every input carries
``now``; randomness comes from the injected
:class:`~dmvpn.sansio.RandomSource`; the engine returns what to do as
:mod:`dmvpn.nhrp.events` records (:meth:`NhrpEngine.poll_outputs`) and
structured debug lines (:meth:`NhrpEngine.poll_events`).

Inputs from the router:

* :meth:`~NhrpEngine.start`: the interface came up (static mappings, NHS
  registration).
* :meth:`~NhrpEngine.receive`: NHRP bytes from GRE (protocol 0x2001), with
  the outer source and destination (NBMA) addresses.
* :meth:`~NhrpEngine.handle_timer` at :meth:`~NhrpEngine.next_deadline`.
* :meth:`~NhrpEngine.sa_up` / :meth:`~NhrpEngine.sa_down`: the IPsec SA to
  an NBMA peer (NHRP to a protected peer waits for it, NHRP.md section 1).
* :meth:`~NhrpEngine.resolve`: the data path found no mapping (phase 2).
* :meth:`~NhrpEngine.hairpin`: a packet entered and left this interface
  (phase 3 redirect).
* :meth:`~NhrpEngine.used`: the data path used a mapping or shortcut.
* :meth:`~NhrpEngine.withdraw`, :meth:`~NhrpEngine.shutdown`,
  :meth:`~NhrpEngine.clear`: a local prefix went away, the interface went
  down, ``clear ip nhrp``.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network

from dmvpn.nhrp import messages as m
from dmvpn.nhrp.cache import NEGATIVE_HOLD, CacheEntry, NhrpCache
from dmvpn.nhrp.events import (
    EntryGone,
    MappingAdded,
    NeedSa,
    NhrpOutput,
    RouteAdded,
    RouteRemoved,
    SendNhrp,
)
from dmvpn.nhrp.settings import NhrpSettings, RouteView
from dmvpn.nhrp.states import EntryEvent, EntryState, NhsEvent, NhsState, next_nhs_state
from dmvpn.sansio import LogEvent, RandomSource
from dmvpn.wire.errors import DecodeError
from dmvpn.wire.nhrp import (
    AFN_IPV4,
    CISCO_AUTH_CLEARTEXT,
    DEFAULT_HOP_COUNT,
    FLAG_PURGE_N,
    FLAG_REG_U,
    PROTOCOL_IPV4,
    AuthenticationExtension,
    Cie,
    CieCode,
    CieListExtension,
    ErrorCode,
    ExtensionType,
    NhrpPacket,
    PacketType,
    decode_nhrp,
    encode_nhrp,
)

#: Registration retransmission: 1, 2, 4 ... s, capped at 60 s (the pattern of
#: nhrp.pcapng, NHRP.md 3.1), the request ID kept.
REGISTRATION_FIRST_RETRY = 1.0
REGISTRATION_MAX_RETRY = 60.0
#: Resolution retransmission 1, 2, 4, 8 s; abandoned after 30 s (FRR's
#: figures, NHRP.md 5.12; IOS's [UNVERIFIED]).
RESOLUTION_FIRST_RETRY = 1.0
RESOLUTION_MAX_RETRY = 8.0
RESOLUTION_GIVE_UP = 30.0
#: A used shortcut is re-resolved at 2/3 of its holding time (FRR; NHRP.md 3.5.8).
REFRESH_FRACTION = 2 / 3
#: Packets held per peer while its IPsec SA comes up.
HELD_PER_PEER = 16
_KNOWN_EXTENSIONS = frozenset(int(t) for t in ExtensionType)
_NAMES = {
    PacketType.RESOLUTION_REQUEST: "Resolution Request",
    PacketType.RESOLUTION_REPLY: "Resolution Reply",
    PacketType.REGISTRATION_REQUEST: "Registration Request",
    PacketType.REGISTRATION_REPLY: "Registration Reply",
    PacketType.PURGE_REQUEST: "Purge Request",
    PacketType.PURGE_REPLY: "Purge Reply",
    PacketType.ERROR_INDICATION: "Error Indication",
    PacketType.TRAFFIC_INDICATION: "Traffic Indication",
}


@dataclass(slots=True)
class NhsClient:
    """Registration toward one ``ip nhrp nhs`` (RFC 2332 5.2.3). ``address``
    None is ``ip nhrp nhs dynamic nbma X``: learnt from the first reply's
    Responder Address extension."""

    address: IPv4Address | None
    nbma: IPv4Address
    priority: int = 0
    dynamic: bool = False
    state: NhsState = NhsState.WAITING
    request_id: int = 0
    awaiting: bool = False
    next_at: float | None = None
    retry: float = REGISTRATION_FIRST_RETRY
    requests: int = 0
    replies: int = 0
    last_code: int | None = None
    failures: int = 0  # retransmissions and refusals (``req-failed``)
    last_reply: float | None = None
    acked_id: int | None = None


@dataclass(slots=True)
class PendingResolution:
    """A Resolution Request waiting for its reply (RFC 2332 5.2.1)."""

    target: IPv4Address
    request_id: int
    packet: NhrpPacket
    nbma: IPv4Address
    started: float
    next_at: float
    retry: float = RESOLUTION_FIRST_RETRY


@dataclass(slots=True)
class NhrpTraffic:
    """``show ip nhrp traffic``: packets by type, and what was dropped."""

    sent: Counter[int] = field(default_factory=Counter)
    received: Counter[int] = field(default_factory=Counter)
    auth_failures: int = 0
    hop_count_drops: int = 0
    malformed: int = 0
    redirects_suppressed: int = 0
    indications_ignored: int = 0


def _ip(raw: bytes) -> IPv4Address | None:
    return IPv4Address(raw) if len(raw) == 4 else None


def _plen(value: int) -> int:
    """A CIE prefix length; 0 and 255 mean a host (RFC 2332 5.2.0.1)."""
    return 32 if value in (0, 255) or value > 32 else value


class NhrpEngine:
    """NHRP for one tunnel interface (see the module docstring for the inputs)."""

    def __init__(
        self,
        node: str,
        settings: NhrpSettings,
        rng: RandomSource,
        routes: RouteView | None = None,
        *,
        first_request_id: int = 1,
    ) -> None:
        """``routes`` is the router's overlay routing table (None: only
        tunnel addresses are known). ``first_request_id`` seeds the 32-bit
        request ID counter (RFC 2332 5.2.1: a new request gets a new ID)."""
        self.node = node
        self.settings = settings
        self.rng = rng
        self.routes = routes
        self.cache = NhrpCache()
        self.nhs = [NhsClient(s.address, s.nbma, s.priority, s.address is None) for s in settings.nhs if s.nbma]
        self.traffic = NhrpTraffic()
        self.nat_address: IPv4Address | None = None
        self.pending: dict[int, PendingResolution] = {}
        self._next_request_id = first_request_id
        self._sa_up: set[IPv4Address] = set()
        self._sa_wanted: set[IPv4Address] = set()
        self._held: dict[IPv4Address, list[SendNhrp]] = {}
        self._redirected: dict[tuple[bytes, bytes], float] = {}
        self._local: dict[IPv4Network, set[IPv4Address]] = {}
        self._outputs: list[NhrpOutput] = []
        self._events: list[LogEvent] = []
        self.started = False

    # ------------------------------------------------------------ outputs

    def poll_outputs(self) -> list[NhrpOutput]:
        """What the router must do, oldest first; the list is emptied."""
        out, self._outputs = self._outputs, []
        return out

    def poll_events(self) -> list[LogEvent]:
        """``debug nhrp`` records, oldest first; the list is emptied."""
        out, self._events = self._events, []
        return out

    def _log(self, now: float, message: str, **fields: object) -> None:
        self._events.append(LogEvent(now, self.node, "nhrp", message, dict(fields)))

    def _new_request_id(self) -> int:
        rid = self._next_request_id
        self._next_request_id = rid % 0xFFFFFFFF + 1
        return rid

    def _send(self, now: float, nbma: IPv4Address, pkt: NhrpPacket) -> None:
        """Encode and send, holding the packet while the peer's SA is down."""
        raw = encode_nhrp(pkt)
        out = SendNhrp(nbma, raw, pkt.type)
        self.traffic.sent[pkt.type] += 1
        self._log(
            now,
            f"NHRP: Send {_NAMES.get(PacketType(pkt.type), str(pkt.type))} via {self.settings.interface} vrf 0, "
            f"packet size: {len(raw)}",
            dst=str(nbma),
            type=pkt.type,
            request_id=pkt.request_id,
        )
        if not self.settings.protected or nbma in self._sa_up:
            self._outputs.append(out)
            return
        held = self._held.setdefault(nbma, [])
        if len(held) < HELD_PER_PEER:
            held.append(out)
        self._want_sa(nbma)

    def _want_sa(self, nbma: IPv4Address) -> None:
        if self.settings.protected and nbma not in self._sa_up and nbma not in self._sa_wanted:
            self._sa_wanted.add(nbma)
            self._outputs.append(NeedSa(nbma))

    # ------------------------------------------------------------ lifecycle

    def start(self, now: float) -> None:
        """The interface came up: install static mappings, register to every NHS."""
        self.started = True
        for static in self.settings.maps:
            self._static(now, static.overlay, static.nbma)
        for nhs in self.nhs:
            if nhs.address is not None:
                self._static(now, nhs.address, nhs.nbma)
            self._register(now, nhs)

    def _static(self, now: float, overlay: IPv4Address, nbma: IPv4Address) -> None:
        entry = CacheEntry(IPv4Network(overlay), overlay, nbma, EntryState.STATIC, now, None)
        self.cache.create(entry, EntryEvent.REGISTER)
        self._outputs.append(MappingAdded(overlay, nbma, self.settings.interface))

    def shutdown(self, now: float) -> None:
        """The interface goes down: purge our registration at each NHS
        (RFC 2332 5.2.5, an NHC de-registering), drop dynamic entries."""
        s = self.settings
        for nhs in self.nhs:
            if nhs.state is NhsState.RESPONDING and nhs.address is not None:
                pkt = m.purge_request(
                    src_nbma=s.nbma_address,
                    src_protocol=s.tunnel_address,
                    dst_protocol=nhs.address,
                    request_id=nhs.request_id,
                    purged=((s.tunnel_address, 32),),
                    password=s.authentication,
                    no_reply=True,
                )
                self._send(now, nhs.nbma, pkt)
            nhs.state = next_nhs_state(nhs.state, NhsEvent.RESET)
            nhs.awaiting, nhs.next_at = False, None
        self.clear(now)
        self.started = False

    def clear(self, now: float) -> None:
        """``clear ip nhrp``: every dynamic and incomplete entry goes."""
        for entry in self.cache.entries():
            if entry.state is not EntryState.STATIC:
                self._drop(now, entry, EntryEvent.PURGE)
        self.pending.clear()

    def sa_up(self, now: float, nbma: IPv4Address) -> None:
        """The IPsec SA to ``nbma`` is up: send what waited for it; an NHS
        behind it is registered to at once (a hub that restarted learns us
        again without waiting for the refresh, NHRP.md 5.4)."""
        self._sa_up.add(nbma)
        self._sa_wanted.discard(nbma)
        self._outputs.extend(self._held.pop(nbma, []))
        for nhs in self.nhs:
            if nhs.nbma == nbma and self.started and not nhs.awaiting:
                self._register(now, nhs)

    def sa_down(self, now: float, nbma: IPv4Address) -> None:
        """The SA to ``nbma`` is gone: an NHS behind it waits for a new one."""
        self._sa_up.discard(nbma)
        for nhs in self.nhs:
            if nhs.nbma == nbma and self.settings.protected:
                nhs.state = next_nhs_state(nhs.state, NhsEvent.RESET)
                nhs.awaiting, nhs.next_at = False, None
                self._want_sa(nbma)
        self._log(now, f"NHRP: SA to {nbma} down", nbma=str(nbma))

    # ------------------------------------------------------------ timers

    def next_deadline(self) -> float | None:
        """The earliest moment :meth:`handle_timer` is wanted."""
        times = [n.next_at for n in self.nhs if n.next_at is not None]
        times.extend(p.next_at for p in self.pending.values())
        times.extend(self.cache.deadlines())
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        """Retransmit, refresh and expire whatever is due at ``now``."""
        for nhs in self.nhs:
            if nhs.next_at is not None and now >= nhs.next_at:
                self._nhs_timer(now, nhs)
        for pending in list(self.pending.values()):
            if now >= pending.next_at:
                self._resolution_timer(now, pending)
        for entry in self.cache.entries():
            if entry.expires is not None and now >= entry.expires:
                self._drop(now, entry, EntryEvent.EXPIRE)
            elif entry.refresh_at is not None and now >= entry.refresh_at:
                self._refresh(now, entry)

    # ------------------------------------------------------------ NHC: registration

    def _register(self, now: float, nhs: NhsClient) -> None:
        """Send a new Registration Request (new ID) to ``nhs``."""
        nhs.request_id = self._new_request_id()
        nhs.retry = REGISTRATION_FIRST_RETRY
        self._send_registration(now, nhs)

    def _send_registration(self, now: float, nhs: NhsClient) -> None:
        s = self.settings
        if s.protected and nhs.nbma not in self._sa_up:
            self._want_sa(nhs.nbma)
            nhs.next_at = None
            return
        pkt = m.registration_request(
            src_nbma=s.nbma_address,
            src_protocol=s.tunnel_address,
            nhs_protocol=nhs.address,  # None (nhs dynamic): see registration_request
            nhs_nbma=nhs.nbma,
            request_id=nhs.request_id,
            unique=s.unique,
            mtu=s.mtu,
            holdtime=s.holdtime,
            password=s.authentication,
        )
        nhs.state = next_nhs_state(nhs.state, NhsEvent.SEND)
        nhs.awaiting = True
        nhs.requests += 1
        nhs.next_at = now + nhs.retry * self.rng.uniform(1.0, 1.1)
        self._send(now, nhs.nbma, pkt)

    def _nhs_timer(self, now: float, nhs: NhsClient) -> None:
        if nhs.awaiting:  # no reply: the same ID again, backing off
            nhs.failures += 1
            nhs.state = next_nhs_state(nhs.state, NhsEvent.TIMEOUT)
            nhs.retry = min(nhs.retry * 2, REGISTRATION_MAX_RETRY)
            self._send_registration(now, nhs)
        else:  # the refresh (or the retry after a NAK)
            self._register(now, nhs)

    def _on_registration_reply(self, now: float, pkt: NhrpPacket) -> None:
        dst = _ip(pkt.dst_protocol)
        matches = (n for n in self.nhs if n.awaiting and n.request_id == pkt.request_id and self._registered_to(n, dst))
        nhs = next(matches, None)
        if nhs is None or not pkt.cies:
            self._log(now, f"NHRP: Registration Reply id {pkt.request_id} matches no request; dropped")
            return
        code = pkt.cies[0].code
        nhs.awaiting, nhs.last_code = False, code
        nhs.replies += 1
        nhs.last_reply, nhs.acked_id = now, pkt.request_id
        if code != CieCode.SUCCESS:
            nhs.failures += 1
            nhs.state = next_nhs_state(nhs.state, NhsEvent.NAK)
            nhs.retry = min(nhs.retry * 2, REGISTRATION_MAX_RETRY)
            nhs.next_at = now + nhs.retry
            self._log(now, f"NHRP: Registration to {nhs.address} refused, code {code}", code=code)
            return
        nhs.state = next_nhs_state(nhs.state, NhsEvent.REPLY)
        if nhs.address is None:
            self._learn_nhs_address(now, nhs, pkt)
        nhs.next_at = now + self.settings.registration_interval
        self._learn_own_nat(pkt)

    def _registered_to(self, nhs: NhsClient, dst: IPv4Address | None) -> bool:
        """A reply's destination protocol address names ``nhs`` (for ``nhs
        dynamic``, our own address, as the request had it)."""
        return dst == (nhs.address or self.settings.tunnel_address)

    def _learn_nhs_address(self, now: float, nhs: NhsClient, pkt: NhrpPacket) -> None:
        """``nhs dynamic``: the Responder Address names the NHS's tunnel address."""
        rsp = pkt.extension(ExtensionType.RESPONDER_ADDRESS)
        address = _ip(rsp.cies[0].client_protocol) if isinstance(rsp, CieListExtension) and rsp.cies else None
        if address is not None and self.cache.host(address) is None:
            nhs.address = address
            self._static(now, address, nhs.nbma)

    def _learn_own_nat(self, pkt: NhrpPacket) -> None:
        """The hub's second NAT CIE names us as it sees us (NHRP.md 2.5)."""
        nat = pkt.extension(ExtensionType.NAT_ADDRESS)
        if not isinstance(nat, CieListExtension):
            return
        for cie in nat.cies:
            seen = _ip(cie.client_nbma)
            if _ip(cie.client_protocol) == self.settings.tunnel_address and seen is not None:
                self.nat_address = seen if seen != self.settings.nbma_address else None

    # ------------------------------------------------------------ NHS: registration

    def _on_registration_request(self, now: float, nbma_src: IPv4Address, pkt: NhrpPacket) -> None:
        s = self.settings
        codes: list[int] = []
        nat_cies: list[Cie] = []
        for cie in pkt.cies:
            tunnel = _ip(cie.client_protocol or pkt.src_protocol)
            claimed = _ip(cie.client_nbma or pkt.src_nbma)
            if tunnel is None or claimed is None:
                codes.append(CieCode.ADMINISTRATIVELY_PROHIBITED)
                continue
            code = self._register_binding(now, tunnel, claimed, nbma_src, cie, bool(pkt.flags & FLAG_REG_U))
            codes.append(code)
            if nbma_src != claimed:
                nat_cies.append(m.host_cie(nbma_src, tunnel, prefix=32, mtu=cie.mtu, holdtime=0))
        responder = m.host_cie(
            s.nbma_address, s.responder_address or s.tunnel_address, prefix=32, mtu=s.mtu, holdtime=s.holdtime
        )
        nat = None
        if nat_cies:
            old = pkt.extension(ExtensionType.NAT_ADDRESS)
            nat = (*(old.cies if isinstance(old, CieListExtension) else ()), *nat_cies)
        reply = m.registration_reply(pkt, tuple(codes), responder, s.authentication, nat)
        self._send(now, nbma_src, reply)

    def _register_binding(
        self, now: float, tunnel: IPv4Address, claimed: IPv4Address, seen: IPv4Address, cie: Cie, unique: bool
    ) -> int:
        """Create or refresh the dynamic entry for one CIE (NHRP.md 3.3);
        code 14 when a unique entry exists for another NBMA (RFC 2332 5.2.4)."""
        existing = self.cache.host(tunnel)
        if existing is not None and existing.state is EntryState.STATIC:
            return CieCode.SUCCESS if existing.nbma in (claimed, seen) else CieCode.ADMINISTRATIVELY_PROHIBITED
        registered = existing is not None and existing.state is EntryState.REGISTERED
        if existing is not None and (existing.peer_nbma != seen or not registered):
            if registered and existing.unique:
                self._log(now, f"NHRP: {tunnel} already registered from {existing.peer_nbma}; code 14", nbma=str(seen))
                return CieCode.UNIQUE_ADDRESS_REGISTERED
            self._drop(now, existing, EntryEvent.PURGE)
            existing = None
        holdtime = cie.holding_time or self.settings.holdtime
        if existing is None:
            entry = CacheEntry(IPv4Network(tunnel), tunnel, claimed, EntryState.GONE, now, None)
            self.cache.create(entry, EntryEvent.REGISTER)
            self._outputs.append(MappingAdded(tunnel, seen, self.settings.interface))
        else:
            entry = existing
            self.cache.move(entry, EntryEvent.REGISTER)
        entry.nbma, entry.nbma_seen = claimed, (seen if seen != claimed else None)
        entry.unique, entry.nat, entry.used = unique, seen != claimed, True
        entry.expires = now + holdtime
        return CieCode.SUCCESS

    def multicast_nbmas(self) -> list[IPv4Address]:
        """Where multicast is replicated: static ``ip nhrp map multicast``
        addresses, every NHS configured with ``ip nhrp nhs ... nbma N
        multicast`` (IOS 15.x's shorthand for the NHS's map multicast), plus
        every registered spoke with ``... dynamic``."""
        out = list(self.settings.multicast_nbma)
        out.extend(s.nbma for s in self.settings.nhs if s.multicast and s.nbma is not None)
        if self.settings.multicast_dynamic:
            out.extend(e.peer_nbma for e in self.cache if e.state is EntryState.REGISTERED and e.peer_nbma)
        return out

    # ------------------------------------------------------------ receive

    def receive(self, now: float, nbma_src: IPv4Address, nbma_dst: IPv4Address, data: bytes) -> None:
        """NHRP bytes arrived from ``nbma_src`` (GRE protocol 0x2001)."""
        try:
            pkt = decode_nhrp(data)
        except DecodeError as exc:
            self.traffic.malformed += 1
            self._log(now, f"NHRP: malformed packet from {nbma_src} dropped: {exc}", nbma=str(nbma_src))
            return
        if pkt.afn != AFN_IPV4 or pkt.protocol_type != PROTOCOL_IPV4 or len(pkt.src_protocol) != 4:
            self.traffic.malformed += 1
            self._log(now, f"NHRP: packet from {nbma_src} is not IPv4 over IPv4; dropped")
            return
        self.traffic.received[pkt.type] += 1
        name = _NAMES.get(PacketType(pkt.type), str(pkt.type)) if pkt.type in _NAMES else f"type {pkt.type}"
        self._log(
            now,
            f"NHRP: Receive {name} via {self.settings.interface} vrf 0, packet size: {len(data)}",
            src=str(nbma_src),
            type=pkt.type,
            request_id=pkt.request_id,
        )
        if pkt.hop_count == 0:  # IOS: "Packet Recved with 0 Hop counts" (NHRP.md 2.1)
            self.traffic.hop_count_drops += 1
            return
        if pkt.type != PacketType.ERROR_INDICATION and not self._auth_ok(now, nbma_src, pkt):
            return
        self._dispatch(now, nbma_src, pkt, data)

    def _auth_ok(self, now: float, nbma_src: IPv4Address, pkt: NhrpPacket) -> bool:
        """RFC 2332 5.3.4 with Cisco's cleartext form: a mismatch is dropped
        and counted (what IOS answers is [UNVERIFIED], NHRP.md 6.9)."""
        password = self.settings.authentication
        if password is None:
            return True
        auth = pkt.extension(ExtensionType.AUTHENTICATION)
        if (
            isinstance(auth, AuthenticationExtension)
            and auth.auth_type == CISCO_AUTH_CLEARTEXT
            and auth.value == password
        ):
            return True
        self.traffic.auth_failures += 1
        self._log(now, f"NHRP: authentication failure on packet from {nbma_src}; dropped", nbma=str(nbma_src))
        return False

    def _dispatch(self, now: float, nbma_src: IPv4Address, pkt: NhrpPacket, raw: bytes) -> None:
        t = pkt.type
        if t in (PacketType.REGISTRATION_REQUEST, PacketType.RESOLUTION_REQUEST) and self._compulsory_unknown(
            now, nbma_src, pkt, raw
        ):
            return
        if t == PacketType.REGISTRATION_REQUEST:
            self._on_registration_request(now, nbma_src, pkt)
        elif t == PacketType.REGISTRATION_REPLY:
            self._on_registration_reply(now, pkt)
        elif t == PacketType.RESOLUTION_REQUEST:
            self._on_resolution_request(now, nbma_src, pkt, raw)
        elif t == PacketType.RESOLUTION_REPLY:
            self._on_resolution_reply(now, nbma_src, pkt)
        elif t == PacketType.TRAFFIC_INDICATION:
            self._on_traffic_indication(now, pkt)
        elif t == PacketType.PURGE_REQUEST:
            self._on_purge_request(now, nbma_src, pkt)
        elif t == PacketType.ERROR_INDICATION:
            self._on_error_indication(now, nbma_src, pkt)

    def _compulsory_unknown(self, now: float, nbma_src: IPv4Address, pkt: NhrpPacket, raw: bytes) -> bool:
        """RFC 2332 5.3: an unknown extension with C set makes the responder
        answer Error Indication 1. (A transit NHS would forward it; we only
        check where we answer, so this runs for packets addressed to us.)"""
        if not self._answers(pkt):
            return False
        for i, ext in enumerate(pkt.extensions):
            if ext.compulsory and ext.type not in _KNOWN_EXTENSIONS:
                offset = len(encode_nhrp(replace(pkt, extensions=pkt.extensions[:i])))
                self._error(now, nbma_src, pkt, raw, ErrorCode.UNRECOGNIZED_EXTENSION, offset)
                return True
        return False

    def _answers(self, pkt: NhrpPacket) -> bool:
        if pkt.type == PacketType.REGISTRATION_REQUEST:
            return True
        return self._egress_prefix(_ip(pkt.dst_protocol)) is not None

    def _error(self, now: float, nbma: IPv4Address, pkt: NhrpPacket, raw: bytes, code: int, offset: int) -> None:
        """Error Indication to the offending packet's source (RFC 2332 5.2.7),
        carrying the whole offending packet (as Wireshark expects); never in
        answer to an Error Indication."""
        if pkt.type == PacketType.ERROR_INDICATION:
            return
        size = struct.unpack_from("!H", raw, 10)[0]
        s = self.settings
        err = m.error_indication(
            src_nbma=s.nbma_address,
            src_protocol=s.tunnel_address,
            code=code,
            offset=offset,
            offending=raw[:size],
            offender=pkt.src_protocol,
        )
        self._send(now, nbma, err)

    # ------------------------------------------------------------ resolution (requester)

    def resolve(self, now: float, target: IPv4Address, *, shortcut: bool = False) -> None:
        """The data path needs ``target`` (a tunnel next hop in phase 2, a
        destination host in phase 3): send a Resolution Request toward the
        NHS unless an entry (even an incomplete or negative one) covers it."""
        if self.cache.covering(target) is not None or target == self.settings.tunnel_address:
            return
        nhs = self._request_nhs()
        if nhs is None:
            self._log(now, f"NHRP: no NHS to resolve {target}", target=str(target))
            return
        entry = CacheEntry(IPv4Network(target), target, None, EntryState.GONE, now, None, target=target)
        entry.router = shortcut
        self.cache.create(entry, EntryEvent.RESOLVE)
        self._send_resolution(now, target, nhs.nbma)

    def _request_nhs(self) -> NhsClient | None:
        responding = [n for n in self.nhs if n.state is NhsState.RESPONDING]
        pool = responding or self.nhs
        return min(pool, key=lambda n: n.priority) if pool else None

    def _send_resolution(self, now: float, target: IPv4Address, nbma: IPv4Address) -> None:
        s = self.settings
        rid = self._new_request_id()
        pkt = m.resolution_request(
            src_nbma=s.nbma_address,
            src_protocol=s.tunnel_address,
            target=target,
            request_id=rid,
            mtu=s.mtu,
            holdtime=s.holdtime,
            password=s.authentication,
            nat_address=self.nat_address,
        )
        self.pending[rid] = PendingResolution(target, rid, pkt, nbma, now, now + RESOLUTION_FIRST_RETRY)
        self._send(now, nbma, pkt)

    def _resolution_timer(self, now: float, pending: PendingResolution) -> None:
        if now - pending.started >= RESOLUTION_GIVE_UP:
            del self.pending[pending.request_id]
            self._resolution_failed(now, pending.target, "no reply")
            return
        pending.retry = min(pending.retry * 2, RESOLUTION_MAX_RETRY)
        pending.next_at = now + pending.retry
        self._send(now, pending.nbma, pending.packet)

    def _resolution_failed(self, now: float, target: IPv4Address, why: str) -> None:
        entry = self.cache.host(target)
        self._log(now, f"NHRP: resolution of {target} failed: {why}", target=str(target))
        if entry is None:
            return
        if entry.state is EntryState.INCOMPLETE:
            self.cache.move(entry, EntryEvent.GIVE_UP)
            entry.expires = now + NEGATIVE_HOLD
        elif entry.state is EntryState.REFRESHING:
            self.cache.move(entry, EntryEvent.GIVE_UP)

    def _on_resolution_reply(self, now: float, nbma_src: IPv4Address, pkt: NhrpPacket) -> None:
        pending = self.pending.get(pkt.request_id)
        if pending is None or _ip(pkt.dst_protocol) != pending.target or not pkt.cies:
            self._log(now, f"NHRP: unsolicited Resolution Reply id {pkt.request_id} dropped")
            return
        del self.pending[pkt.request_id]
        cie = pkt.cies[0]
        next_hop = _ip(cie.client_protocol) or pending.target
        claimed = _ip(cie.client_nbma)
        if cie.code != CieCode.SUCCESS or claimed is None:
            self._resolution_failed(now, pending.target, f"code {cie.code}")
            entry = self.cache.host(pending.target)
            if entry is not None and entry.state is EntryState.NEGATIVE:
                entry.expires = now + NEGATIVE_HOLD
            return
        seen = self._nat_nbma(pkt, next_hop) or (nbma_src if nbma_src != claimed else None)
        holdtime = cie.holding_time or self.settings.holdtime
        prefix = IPv4Network((pending.target, _plen(cie.prefix_length)), strict=False)
        incomplete = self.cache.host(pending.target)
        shortcut = incomplete.router if incomplete is not None else False
        if incomplete is not None and incomplete.prefix != IPv4Network(next_hop) and prefix != incomplete.prefix:
            self._drop(now, incomplete, EntryEvent.PURGE)
        host = IPv4Network(next_hop)
        self._bind(now, host, next_hop, claimed, seen, holdtime, pending.target if prefix == host else None,
                   router=shortcut)  # fmt: skip
        if prefix != host:
            self._bind(now, prefix, next_hop, claimed, seen, holdtime, pending.target, router=True, route=True)

    @staticmethod
    def _nat_nbma(pkt: NhrpPacket, address: IPv4Address) -> IPv4Address | None:
        """The post-NAT NBMA the NAT extension gives for ``address``."""
        nat = pkt.extension(ExtensionType.NAT_ADDRESS)
        if isinstance(nat, CieListExtension):
            for cie in nat.cies:
                if _ip(cie.client_protocol) == address and _ip(cie.client_nbma) is not None:
                    return _ip(cie.client_nbma)
        return None

    def _bind(
        self,
        now: float,
        prefix: IPv4Network,
        next_hop: IPv4Address,
        nbma: IPv4Address,
        seen: IPv4Address | None,
        holdtime: int,
        target: IPv4Address | None,
        *,
        router: bool,
        route: bool = False,
    ) -> None:
        """Install or refresh a resolved entry (and its route or override)."""
        entry = self.cache.get(prefix)
        fresh = entry is None or entry.state in (EntryState.INCOMPLETE, EntryState.NEGATIVE)
        if entry is None:
            entry = self.cache.create(CacheEntry(prefix, next_hop, nbma, EntryState.GONE, now, None), EntryEvent.REPLY)
        elif entry.state in (EntryState.STATIC, EntryState.REGISTERED):
            return  # configured or registered bindings outrank what a resolution says
        else:
            self.cache.move(entry, EntryEvent.REPLY)
        entry.next_hop, entry.nbma, entry.nbma_seen, entry.nat = next_hop, nbma, seen, seen is not None
        entry.router = entry.router or router
        entry.expires, entry.target = now + holdtime, target or entry.target
        entry.refresh_at = now + holdtime * REFRESH_FRACTION
        if fresh:
            entry.created = now
            if prefix.prefixlen == 32 and not route:
                self._outputs.append(MappingAdded(next_hop, seen or nbma, self.settings.interface))
                self._want_sa(seen or nbma)
            else:
                self._install_route(entry)

    def _install_route(self, entry: CacheEntry) -> None:
        existing = self.routes.route_for(entry.prefix.network_address) if self.routes else None
        entry.override = existing is not None and existing.prefix == entry.prefix
        entry.route = not entry.override
        self._outputs.append(RouteAdded(entry.prefix, entry.next_hop, self.settings.interface, entry.override))

    def used(self, now: float, address: IPv4Address) -> None:
        """The data path sent to ``address`` through an NHRP entry: it is
        re-resolved before it expires (IOS's ``used`` flag)."""
        entry = self.cache.covering(address)
        if entry is not None:
            entry.used = True
            hop = self.cache.host(entry.next_hop)
            if hop is not None:
                hop.used = True

    def _refresh(self, now: float, entry: CacheEntry) -> None:
        """At 2/3 of the holding time: re-resolve a used entry, let an idle one expire."""
        entry.refresh_at = None
        if not entry.used or entry.target is None or entry.state is not EntryState.RESOLVED:
            return
        nhs = self._request_nhs()
        if nhs is None or any(p.target == entry.target for p in self.pending.values()):
            return
        entry.used = False
        self.cache.move(entry, EntryEvent.REFRESH)
        self._send_resolution(now, entry.target, nhs.nbma)

    def _drop(self, now: float, entry: CacheEntry, event: EntryEvent) -> None:
        """Remove an entry and tell the router what went with it."""
        self.cache.remove(entry, event)
        if entry.state is not EntryState.GONE:
            return
        iface = self.settings.interface
        if entry.route or entry.override:
            self._outputs.append(RouteRemoved(entry.prefix, entry.next_hop, iface, entry.override))
        elif entry.peer_nbma is not None and entry.prefix.prefixlen == 32:
            self._outputs.append(EntryGone(entry.next_hop, entry.peer_nbma, iface))
        self._log(now, f"NHRP: {entry.prefix} via {entry.next_hop} removed ({event.value})", prefix=str(entry.prefix))

    # ------------------------------------------------------------ resolution (NHS, responder)

    def _egress_prefix(self, target: IPv4Address | None) -> int | None:
        """The prefix length we answer with when ``target`` is ours: 32 for
        our tunnel address, the route's length when it leaves by another
        interface (we are the egress, NHRP.md 3.5 step 5)."""
        if target is None:
            return None
        if target == self.settings.tunnel_address:
            return 32
        route = self.routes.route_for(target) if self.routes else None
        if route is not None and route.interface != self.settings.interface:
            return route.prefix.prefixlen
        return None

    def _on_resolution_request(self, now: float, nbma_src: IPv4Address, pkt: NhrpPacket, raw: bytes) -> None:
        target = _ip(pkt.dst_protocol)
        prefix = self._egress_prefix(target)
        if target is not None and prefix is not None:
            self._answer_resolution(now, pkt, target, prefix)
            return
        nbma = self._forward_nbma(target)
        if nbma is None or nbma == nbma_src:
            self._error(now, nbma_src, pkt, raw, ErrorCode.PROTOCOL_ADDRESS_UNREACHABLE, 0)
            return
        self._forward(now, nbma_src, nbma, pkt, raw)

    def _forward_nbma(self, target: IPv4Address | None) -> IPv4Address | None:
        """Where a transit NHS sends a request for ``target``: the NBMA of
        the routed next hop on this interface, known from the cache."""
        if target is None:
            return None
        route = self.routes.route_for(target) if self.routes else None
        hop = target
        if route is not None and route.interface == self.settings.interface and route.next_hop is not None:
            hop = route.next_hop
        entry = self.cache.host(hop)
        if entry is None or entry.state not in (EntryState.REGISTERED, EntryState.STATIC, EntryState.RESOLVED):
            return None
        return entry.peer_nbma

    def _forward(self, now: float, nbma_src: IPv4Address, nbma: IPv4Address, pkt: NhrpPacket, raw: bytes) -> None:
        """Forward a Resolution Request (RFC 2332 5.3.2, NHRP.md 3.4 step 2)."""
        s = self.settings
        if pkt.hop_count <= 1:  # forwarding would make it 0
            self._error(now, nbma_src, pkt, raw, ErrorCode.HOP_COUNT_EXCEEDED, 9)
            return
        fwd = pkt.extension(ExtensionType.FORWARD_TRANSIT_NHS)
        if isinstance(fwd, CieListExtension) and any(_ip(c.client_nbma) == s.nbma_address for c in fwd.cies):
            self._error(now, nbma_src, pkt, raw, ErrorCode.LOOP_DETECTED, 0)
            return
        requester = _ip(pkt.src_protocol)
        entry = self.cache.host(requester) if requester is not None else None
        seen = entry.nbma_seen if entry is not None else None
        if seen is None and nbma_src != _ip(pkt.src_nbma):
            seen = nbma_src
        nat_cie = m.host_cie(seen, requester, prefix=32, mtu=s.mtu, holdtime=0) if seen else None
        transit = m.host_cie(s.nbma_address, s.tunnel_address, prefix=0, mtu=s.mtu, holdtime=s.holdtime)
        self._send(now, nbma, m.forwarded(pkt, transit, s.authentication, nat_cie))

    def _answer_resolution(self, now: float, pkt: NhrpPacket, target: IPv4Address, prefix: int) -> None:
        """We own ``target``: cache the requester (implicit), reply directly
        to it (RFC 2332 5.2.2; NHRP.md 3.4 step 3), remember it for purges."""
        s = self.settings
        requester = _ip(pkt.src_protocol)
        claimed = _ip(pkt.src_nbma)
        if requester is None or claimed is None:
            return
        nbma = self._nat_nbma(pkt, requester) or claimed
        holdtime = pkt.cies[0].holding_time if pkt.cies and pkt.cies[0].holding_time else s.holdtime
        self._bind(now, IPv4Network(requester), requester, claimed, nbma if nbma != claimed else None, holdtime,
                   requester, router=False)  # fmt: skip
        implicit = self.cache.host(requester)
        if implicit is not None:
            implicit.implicit = True
        answered = IPv4Network((target, prefix), strict=False)
        self._local.setdefault(answered, set()).add(requester)
        answer = m.host_cie(s.nbma_address, s.tunnel_address, prefix=prefix, mtu=s.mtu, holdtime=s.holdtime)
        responder = m.host_cie(
            s.nbma_address, s.responder_address or s.tunnel_address, prefix=0, mtu=s.mtu, holdtime=s.holdtime
        )
        nat = () if self.nat_address is None else (m.host_cie(self.nat_address, s.tunnel_address, prefix=32,
                                                              mtu=s.mtu, holdtime=0),)  # fmt: skip
        self._send(now, nbma, m.resolution_reply(pkt, answer, responder, s.authentication, nat))

    # ------------------------------------------------------------ phase 3

    def hairpin(self, now: float, nbma_src: IPv4Address, packet: bytes) -> None:
        """A data packet from NBMA ``nbma_src`` entered and left this
        interface: with ``ip nhrp redirect`` send its source a Traffic
        Indication, at most one per (source, destination) per redirect
        timeout (NHRP.md 3.5 step 2)."""
        if not self.settings.redirect or len(packet) < 20 or packet[0] >> 4 != 4:
            return
        key = (packet[12:16], packet[16:20])
        last = self._redirected.get(key)
        if last is not None and now - last < self.settings.redirect_timeout:
            self.traffic.redirects_suppressed += 1
            return
        if len(self._redirected) > 4096:
            limit = self.settings.redirect_timeout
            self._redirected = {k: t for k, t in self._redirected.items() if now - t < limit}
        self._redirected[key] = now
        s = self.settings
        pkt = m.traffic_indication(
            src_nbma=s.nbma_address, src_protocol=s.tunnel_address, data_packet=packet, password=s.authentication
        )
        self._send(now, nbma_src, pkt)

    def _on_traffic_indication(self, now: float, pkt: NhrpPacket) -> None:
        """With ``ip nhrp shortcut``, resolve the embedded packet's
        destination (NHRP.md 3.5 step 3); otherwise note and ignore it."""
        if not self.settings.shortcut or len(pkt.payload) < 20:
            self.traffic.indications_ignored += 1
            self._log(now, "NHRP: Traffic Indication ignored (no ip nhrp shortcut)")
            return
        self.resolve(now, IPv4Address(pkt.payload[16:20]), shortcut=True)

    # ------------------------------------------------------------ purge and errors

    def withdraw(self, now: float, prefix: IPv4Network) -> None:
        """A local prefix we answered for is gone: purge it at every
        requester we told (IOS's ``local`` entries, NHRP.md 3.7)."""
        s = self.settings
        for answered in [p for p in self._local if p.subnet_of(prefix) or prefix.subnet_of(p)]:
            for requester in sorted(self._local.pop(answered)):
                entry = self.cache.host(requester)
                if entry is None or entry.peer_nbma is None:
                    continue
                pkt = m.purge_request(
                    src_nbma=s.nbma_address,
                    src_protocol=s.tunnel_address,
                    dst_protocol=requester,
                    request_id=self._new_request_id(),
                    purged=((answered.network_address, answered.prefixlen),),
                    password=s.authentication,
                )
                self._send(now, entry.peer_nbma, pkt)

    def _on_purge_request(self, now: float, nbma_src: IPv4Address, pkt: NhrpPacket) -> None:
        """Drop every binding in each CIE's class; reply unless N (RFC 2332 5.2.5)."""
        for cie in pkt.cies:
            address = _ip(cie.client_protocol)
            if address is None:
                continue
            purged = IPv4Network((address, _plen(cie.prefix_length)), strict=False)
            for entry in self.cache.entries():
                if entry.prefix.subnet_of(purged) and entry.state is not EntryState.STATIC:
                    self._drop(now, entry, EntryEvent.PURGE)
        if not pkt.flags & FLAG_PURGE_N:
            reply = replace(pkt, type=PacketType.PURGE_REPLY, hop_count=DEFAULT_HOP_COUNT)
            self._send(now, nbma_src, reply)

    def _on_error_indication(self, now: float, nbma_src: IPv4Address, pkt: NhrpPacket) -> None:
        """Fail the request the error names (RFC 2332 5.2.7); never answered.
        One for another station is forwarded toward it (an NHS between a
        responder and the requester); one naming us as its source is dropped."""
        dst = _ip(pkt.dst_protocol)
        if dst != self.settings.tunnel_address:
            entry = self.cache.host(dst) if dst is not None else None
            own = _ip(pkt.src_protocol) == self.settings.tunnel_address
            if entry is not None and entry.peer_nbma not in (None, nbma_src) and pkt.hop_count > 1 and not own:
                self._send(now, entry.peer_nbma, replace(pkt, hop_count=pkt.hop_count - 1))
            return
        offending = pkt.payload
        self._log(now, f"NHRP: Error Indication code {pkt.error_code} received", code=pkt.error_code)
        if len(offending) < 28:
            return
        op_type = offending[17]
        request_id = struct.unpack_from("!I", offending, 24)[0]
        pending = self.pending.pop(request_id, None) if op_type == PacketType.RESOLUTION_REQUEST else None
        if pending is not None:
            self._resolution_failed(now, pending.target, f"error indication {pkt.error_code}")

    # ------------------------------------------------------------ queries

    def nbma_for(self, address: IPv4Address) -> IPv4Address | None:
        """The NBMA address the data path sends to for tunnel next hop
        ``address`` (None: not resolved yet; see :meth:`resolve`)."""
        entry = self.cache.host(address)
        if entry is None or entry.state in (EntryState.INCOMPLETE, EntryState.NEGATIVE):
            return None
        return entry.peer_nbma
