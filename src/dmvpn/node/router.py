"""A DMVPN router node: configuration, IKEv1, the SAD, ESP and the GRE tunnel
wired together as one sans-I/O :class:`~dmvpn.sansio.Engine`.

Packet paths (DESIGN.md "How data flows"):

* out: an overlay IPv4 packet leaving ``Tunnel0`` (a ping, a probe) is
  looked up in the routing table (:mod:`dmvpn.node.routing`) for its next
  hop on the tunnel (the destination itself on the tunnel's subnet; no
  route out of that tunnel: dropped and counted), GRE encapsulated toward
  the next hop's NBMA address (the tunnel's map), then protected by the
  outbound SA for (peer, local NBMA <-> peer NBMA, GRE). No SA: the packet
  is dropped and counted, IKE is asked to negotiate one; nothing is ever
  sent in clear.
* in: UDP 500 goes to IKE; ESP is looked up by SPI, checked and decrypted,
  its GRE decapsulated and the overlay packet handed to the ICMP host stack;
  cleartext GRE on a protected tunnel is dropped and counted.
* crypto maps (site-to-site, :mod:`dmvpn.node.crypto_map`): a packet the
  host sends out of (or, in real mode, the OS routes into) an interface with
  ``crypto map M`` is protected in tunnel mode when an ACL permit line
  matches it; decrypted inner packets pass the RFC 4301 5.2 selector check
  before reaching the host (or the OS, through the map's TUN).

Admin: ``ping``, ``show ...`` (via :mod:`dmvpn.node.show_adapter`),
``clear crypto sa [peer A]``, ``debug crypto isakmp`` / ``no debug ...``, and
the lab-only ``test crypto ipsec rekey [peer A]`` and ``test crypto ikev2
rekey [peer A]`` (an IKE SA rekey now, RFC 7296 2.18).

The ICMP host stack (echo responder and ``ping`` sessions) is the sim's
:class:`~dmvpn.node.icmp_echo.IcmpEchoEngine`, given the tunnel and physical
addresses: its transmits on the tunnel interface are fed to the tunnel path.

Bulk traffic (:mod:`dmvpn.lab.fluid`) is credited to SAs instead of being
packetised; it talks to the router through :class:`~dmvpn.node.bulk.BulkPort`
(:meth:`Router.tunnel_path`, :meth:`Router.credit_sent` ...).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from dmvpn.config import RouterConfig
from dmvpn.ike.engine import Ikev1Engine
from dmvpn.ike.manager import IKEV1_MAJOR, IKEV2_MAJOR, Datagram, Ikev2Manager, KeyManager, ike_major_version
from dmvpn.ike.profiles import DEFAULT_PROFILE, BehaviourProfile, get_profile
from dmvpn.ike.proposals import ChildPolicy
from dmvpn.ike.v2.engine import Ikev2Engine
from dmvpn.ipsec.esp import PREFIX_STRIPPED, DropReason, EspDrop, encapsulate, open_datagram, protect_parts
from dmvpn.ipsec.ledger import record_of
from dmvpn.ipsec.sa import EspMode, SecurityAssociation, Selector
from dmvpn.ipsec.sad import SecurityAssociationDatabase
from dmvpn.nhrp.engine import NhrpEngine
from dmvpn.nhrp.settings import settings_from_interface
from dmvpn.nhrp.states import NhsState
from dmvpn.node import show_adapter
from dmvpn.node.bulk import BulkFlow, TunnelPath
from dmvpn.node.crypto_map import CryptoMapPath, kernel_iface
from dmvpn.node.explain import explain_sas
from dmvpn.node.icmp_echo import IcmpEchoEngine
from dmvpn.node.nhrp_slot import NhrpSlot, nhrp_admin
from dmvpn.node.peer_path import PeerPath
from dmvpn.node.policies import GRE_PROTOCOL, child_policies
from dmvpn.node.routing import Route, RoutingTable
from dmvpn.node.subengines import HostSlot, KeyManagerSlot, SubEngine
from dmvpn.sansio import LogEvent, RandomSource, Transmit
from dmvpn.show.commands import INVALID_INPUT
from dmvpn.show.debug_log import SEED_CLOCK, IosClock, render
from dmvpn.tunnel.interface import TunnelInterface
from dmvpn.wire.errors import DecodeError
from dmvpn.wire.gre import GRE_PROTO_IPV4, GRE_PROTO_NHRP, encode_gre
from dmvpn.wire.ipv4 import IpProto, IPv4Header, decode_ipv4, format_ipv4_address, rewrite_header
from dmvpn.wire.isakmp import (
    IKE_PORT,
    NAT_T_PORT,
    NON_ESP_MARKER,
    Udp4500Kind,
    add_non_esp_marker,
    classify_udp4500,
    strip_non_esp_marker,
)
from dmvpn.wire.udp import UdpDatagram, decode_udp, encode_udp

#: What the key managers ask about a peer for DPD: (last packet in, last out).
TrafficProbe = Callable[[str], tuple[float | None, float | None]]
# Plain values for the per-packet comparisons (an Enum member read off its
# class costs ~0.2 us on Python 3.11).
_ESP, _UDP, _ICMP, _TUNNEL = int(IpProto.ESP), int(IpProto.UDP), int(IpProto.ICMP), EspMode.TUNNEL
_NAT_T_PORT_BYTES = NAT_T_PORT.to_bytes(2, "big")
_GRE_STRIPPED = GRE_PROTOCOL | PREFIX_STRIPPED
#: no overlay address is delivered to the OS (lab mode: the router is the host)
_NOTHING: frozenset[bytes] = frozenset()
#: The admin keywords the router itself handles, for IOS-style abbreviation.
ADMIN_WORDS = ("ping", "show", "debug", "undebug", "no", "clear", "test", "crypto", "isakmp", "ikev2", "ipsec",
               "sa", "rekey", "all", "ip", "traffic")
#: How often (virtual seconds) the data path tells NHRP a shortcut is still used.
USED_EVERY = 1.0


def _expand(words: list[str], vocabulary: tuple[str, ...]) -> list[str]:
    """Each word replaced by the one keyword it abbreviates (IOS unique
    prefix); a word that matches none or several stays as typed."""
    out = []
    for word in words:
        hits = [k for k in vocabulary if k.startswith(word.lower())]
        out.append(hits[0] if len(hits) == 1 else word)
    return out


@dataclass(slots=True)
class RouterCounters:
    """Drops and packets the router itself counts (not per SA)."""

    no_sa_drops: int = 0
    clear_gre_drops: int = 0
    esp_drops: dict[str, int] = field(default_factory=dict)
    not_for_us: int = 0
    malformed: int = 0
    tunnel_drops: int = 0
    no_route_drops: int = 0
    #: overlay packets routed through this router (in a tunnel, out again)
    forwarded: int = 0
    #: packets whose tunnel next hop had no NBMA mapping (NHRP asked to resolve it)
    no_mapping_drops: int = 0
    ttl_expired: int = 0
    unknown_ike_version: int = 0


class Router:
    """One router: an :class:`Engine` built from a :class:`RouterConfig`."""

    def __init__(self, config: RouterConfig, random: RandomSource, profile: str = DEFAULT_PROFILE,
                 name: str | None = None, clock: IosClock = SEED_CLOCK,
                 kernel_host: bool = False, force_nat_t: bool = False, nhrp: bool = True) -> None:
        """``kernel_host``: the operating system is the host on the tunnel
        interface (real mode, a TUN): packets arriving on a tunnel interface
        come from it and are sent across the tunnel, and overlay packets for
        this router go back to it (echo replies also reach the built-in
        pinger, so ``ping`` works). Otherwise (the lab) the built-in ICMP
        host answers on the tunnel address. ``force_nat_t``: see
        :class:`~dmvpn.ike.engine.Ikev1Engine` (ESP in UDP 4500 even
        without a NAT). ``nhrp``: run an NHRP engine on each tunnel with
        ``ip nhrp`` lines (False: the tunnel's static maps only, as the seed
        lab had before NHRP)."""
        self.name = name or config.hostname
        self.kernel_host = kernel_host
        self.config = config
        self.random = random
        self.profile = get_profile(profile)
        self.clock = clock
        self.sad = SecurityAssociationDatabase(random)
        self.counters = RouterCounters()
        self.last_in: dict[str, float] = {}
        self.last_out: dict[str, float] = {}
        self.physical: dict[str, ipaddress.IPv4Interface] = {
            i.name: i.address for i in config.interfaces.values()
            if i.tunnel is None and i.address is not None and not i.shutdown}
        self._iface_by_address = {str(a.ip): n for n, a in self.physical.items()}
        self.local_addresses = set(self._iface_by_address)
        self._local_raw = {a.ip.packed for a in self.physical.values()}
        self.tunnels: dict[str, TunnelInterface] = {}
        self.protected: set[str] = set()
        for iface in config.tunnels():
            if iface.address is None or iface.tunnel is None or iface.tunnel.source_address is None:
                continue
            tunnel = TunnelInterface.from_config(iface)
            if iface.nhrp is not None:  # ``ip nhrp nhs A nbma B`` maps the NHS statically
                for nhs in iface.nhrp.nhs:
                    if nhs.address is not None and nhs.nbma is not None:
                        tunnel.static_maps.setdefault(str(nhs.address), str(nhs.nbma))
            self.tunnels[iface.name] = tunnel
            if iface.tunnel.protection_profile is not None:
                self.protected.add(iface.name)
        self._tunnel_by_source: dict[str, tuple[str, TunnelInterface]] = {}
        for name, tunnel in self.tunnels.items():
            self._tunnel_by_source.setdefault(tunnel.source, (name, tunnel))
        #: by local address, the fixed GRE header ESP strips for the tunnel sourced there
        self._gre_prefixes = {source: t.plain_header for source, (_, t) in self._tunnel_by_source.items()
                              if t.plain_header is not None}
        self.policies = child_policies(config)
        self.policy_by_interface = {p.interface: p for p in self.policies}
        #: The key managers, one per IKE version the configuration runs;
        #: ``ike`` is the one that negotiates for the configured policies.
        managed = build_key_managers(self.name, config, self.sad, random, self.profile, self.policies,
                                     self._traffic, force_nat_t)
        self.key_managers = [km for km, _ in managed]
        self.ike = self.key_managers[0]
        #: which manager negotiates for each policy (IKEv1 and IKEv2 side by side in a mixed config)
        self._manager_of = {(p.interface, p.name): km for km, ps in managed for p in ps}
        self._by_version = {km.ike_version: km for km in self.key_managers}
        host_ifaces = {n: str(a) for n, a in self.physical.items()}
        host_ifaces.update({n: str(t.address) for n, t in self.tunnels.items()})
        self.crypto_map = CryptoMapPath(self.name, config, self.policies, self.sad, self._acquire, self.last_out)
        self.routes = RoutingTable.from_config(config)
        self.host = IcmpEchoEngine(self.name, host_ifaces, random, route=self._egress)
        #: Every sub-engine, in the order timers run and outputs drain.
        self.engines: list[SubEngine] = [*(KeyManagerSlot(km, self._send_ike) for km in self.key_managers),
                                         HostSlot(self.host, self._host_out)]
        #: NHRP, one slot per tunnel interface with NHRP configuration.
        self.nhrp: dict[str, NhrpSlot] = {}
        for iface in config.tunnels():
            settings = settings_from_interface(iface, config.interfaces) if nhrp else None
            if settings is not None and iface.name in self.tunnels:
                engine = NhrpEngine(self.name, settings, random, self.routes)
                slot = NhrpSlot(engine, self.tunnels[iface.name], self.routes, self.sad, self)
                self.nhrp[iface.name] = slot
                self.engines.append(slot)
        self._used_at: dict[ipaddress.IPv4Network, float] = {}
        #: what :meth:`_forward` carried (the lab's hub report)
        self.forwarded_bytes = 0
        self.last_forwarded: float | None = None
        self._overlay_local = {t.address.ip.packed for t in self.tunnels.values()} | self._local_raw
        self.fluids: list[BulkFlow] = []
        self._gre_selectors: dict[tuple[str, str], Selector] = {}
        #: by tunnel, then NBMA peer
        self._peer_paths: dict[str, dict[str, PeerPath]] = {name: {} for name in self.tunnels}
        #: Real mode: the kernel's IP input delivers the underlay datagrams
        #: (raw and UDP sockets), only those for our addresses and with their
        #: header checksum checked (RFC 1122 3.2.1.2), so neither is checked again.
        self._verify_underlay = not kernel_host
        self._tx: list[Transmit] = []
        self._events: list[LogEvent] = []
        self._unsettled: float | None = None  # time of a receive whose effects are not yet collected

    # ================================================================== Engine
    def receive(self, now: float, iface: str, packet: bytes) -> None:
        """One datagram in: :meth:`receive_batch` of one."""
        self.receive_batch(now, iface, (packet,))

    def receive_batch(self, now: float, iface: str, packets: Sequence[bytes]) -> None:
        """Datagrams that arrived on ``iface`` at ``now``, in order (what the
        runtime drained from one descriptor in one wakeup), each through the
        one packet path; the per-batch work is done once: fluid credits up
        to ``now``, the choice of path by interface, the tables the loop
        uses. What they cause (IKE messages, host replies, events) is
        collected when the runtime next polls (:meth:`_settle`)."""
        if self.fluids:
            self._sync_fluids(now)
        self._unsettled = now
        if self.kernel_host and iface in self.tunnels:  # from the OS, into the tunnel (real mode)
            self._tunnel_out_batch(now, iface, packets)
            return
        if iface in self.crypto_map.kernel:  # the OS routed them into a crypto map (real mode)
            self._kernel_crypto_map_out(now, iface, packets)
            return
        # ESP, the data path, inline: no header object, the tables in
        # locals, and the common packet (the tunnel's GRE left out by ESP,
        # _esp_payload's first case) without a call per packet.
        verify, sad, prefixes, last_in = self._verify_underlay, self.sad, self._gre_prefixes, self.last_in
        by_source, tx = self._tunnel_by_source, self._tx
        # real mode: an overlay datagram for this router (not ICMP, which the
        # built-in pinger may be waiting for) goes to the OS, _overlay_in's first case
        to_os = self._overlay_local if self.kernel_host else _NOTHING
        for packet in packets:
            if len(packet) < 20 or (packet[9] != _ESP and not (len(packet) >= 36 and _is_udp_esp(packet, verify))):
                self._receive_other(now, iface, packet)
                continue
            if verify and packet[16:20] not in self._local_raw:
                self.counters.not_for_us += 1
                continue
            try:
                sa, hlen, next_header, inner = open_datagram(sad, now, packet, prefixes, verify)
            except EspDrop as drop:
                self._esp_drop(now, iface, packet, drop)
                continue
            except DecodeError:
                self.counters.malformed += 1
                continue
            last_in[sa.peer] = now
            if next_header != _GRE_STRIPPED:
                self._esp_payload(now, iface, packet, sa, hlen, next_header, inner)
                continue
            name, tunnel = by_source[sa.local]
            if tunnel.shutdown:
                tunnel.plain_input(inner)  # counts the input drop
                self.counters.tunnel_drops += 1
                continue
            tunnel_counters = tunnel.counters  # TunnelInterface.plain_input, inline
            tunnel_counters.input_packets += 1
            tunnel_counters.input_bytes += len(inner)
            if inner[16:20] in to_os and inner[9] != _ICMP:
                tx.append(Transmit(name, inner))
            else:
                self._overlay_in(now, name, sa.peer, inner)

    def _receive_other(self, now: float, iface: str, packet: bytes) -> None:
        """A datagram from the underlay that is not ESP: IKE, GRE in clear,
        or for the host."""
        try:
            header, payload = decode_ipv4(packet)
        except DecodeError:
            self.counters.malformed += 1
            return
        if header.dst not in self.local_addresses:
            self.counters.not_for_us += 1
            return
        proto = header.protocol
        if proto == IpProto.UDP:
            try:
                udp = decode_udp(payload, header.src, header.dst)
            except DecodeError:
                self.counters.malformed += 1
                return
            if udp.dst_port == IKE_PORT:
                self.last_in[header.src] = max(self.last_in.get(header.src, now), now)
                self._ike_in(now, header.src, udp.src_port, header.dst, udp.dst_port, udp.payload)
            elif udp.dst_port == NAT_T_PORT:
                self._udp4500_in(now, iface, header, udp, packet)
        elif proto == GRE_PROTOCOL:
            self._gre_in(now, header.src, header.dst, payload, False)
        elif iface not in self.crypto_map.maps or self.crypto_map.clear_allowed(now, iface, packet):
            self.host.receive(now, iface, packet)

    def handle_timer(self, now: float) -> None:
        self._settle()
        self._sync_fluids(now)
        for engine in self.engines:
            engine.handle_timer(now)
        self._after(now)

    def next_deadline(self) -> float | None:
        self._settle()
        times = [t for e in self.engines if (t := e.next_deadline()) is not None]
        times += [t for f in self.fluids if (t := f.next_event(self)) is not None]
        return min(times) if times else None

    def admin(self, now: float, command: str) -> str:
        self._settle()
        self._sync_fluids(now)
        try:
            out = self._admin(now, command.strip())
        finally:
            self._after(now)
        return out

    def poll_transmit(self) -> list[Transmit]:
        self._settle()
        out, self._tx = self._tx, []
        return out

    def poll_events(self) -> list[LogEvent]:
        self._settle()
        out, self._events = self._events, []
        return out

    # ================================================================== admin
    def _admin(self, now: float, command: str) -> str:
        words = command.split()
        if not words:
            return ""
        head = _expand(words, ADMIN_WORDS)
        if head[:1] == ["ping"]:
            return self.host.admin(now, " ".join(["ping", *words[1:]]))
        if head[:3] == ["debug", "crypto", "isakmp"]:
            self._set_debug(True, IKEV1_MAJOR)
            return "Crypto ISAKMP debugging is on"
        if head[:4] == ["no", "debug", "crypto", "isakmp"] or head[:3] == ["undebug", "crypto", "isakmp"]:
            self._set_debug(False, IKEV1_MAJOR)
            return "Crypto ISAKMP debugging is off"
        if head[:3] == ["debug", "crypto", "ikev2"]:
            self._set_debug(True, IKEV2_MAJOR)
            return "IKEv2 default debugging is on"
        if head[:4] == ["no", "debug", "crypto", "ikev2"] or head[:3] == ["undebug", "crypto", "ikev2"]:
            self._set_debug(False, IKEV2_MAJOR)
            return "IKEv2 default debugging is off"
        if head[:4] == ["clear", "crypto", "ikev2", "sa"]:
            return self._with_peer(words, 4, lambda peer: (self._clear_ike(now, peer), "")[1])
        if head[:2] == ["undebug", "all"]:
            self._set_debug(False)
            self.host.admin(now, "undebug all")
            for slot in self.nhrp.values():
                slot.debug = slot.debug_packet = False
            return "All possible debugging has been turned off"
        if self.nhrp and (out := nhrp_admin(list(self.nhrp.values()), now, command, self.sa_ready)) is not None:
            return out
        if head[:3] == ["clear", "crypto", "sa"]:
            return self._with_peer(words, 3, lambda peer: (self._clear(now, peer), "")[1])
        if head[:4] == ["test", "crypto", "ipsec", "rekey"]:
            # Lab extension (not an IOS command): rekey the current pairs now,
            # as the lifetime check would; two routers told at the same
            # instant make a simultaneous rekey.
            return self._with_peer(words, 4, lambda peer: f"{self._rekey(now, peer)} Quick Mode(s) started")
        if head[:4] == ["test", "crypto", "ikev2", "rekey"]:
            # Lab extension: rekey the IKEv2 SAs now (as at 90% of their lifetime).
            return self._with_peer(words, 4, lambda peer: f"{self._rekey_ike(now, peer)} IKE SA rekey(s) started")
        if head[:1] == ["show"]:
            if head[1:2] == ["ping"]:
                return self.host.admin(now, "show ping")
            if head[1:3] == ["ip", "traffic"]:
                return f"{self._ip_statistics()}\n\n{self.host.admin(now, 'show ip traffic')}"
            if head[1:4] == ["crypto", "ipsec", "sa"] and words[-1] == "explain":
                return self._with_peer(words[:-1], 4, lambda peer: self._explain(now, peer))
            return show_adapter.run_router_show(self, now, command)
        return INVALID_INPUT

    def _ip_statistics(self) -> str:
        """The ``IP statistics`` section of ``show ip traffic`` (IOS's
        layout, with the counters the router keeps): overlay packets it
        routed from a tunnel into a tunnel, and why others were dropped."""
        c = self.counters
        return ("IP statistics:\n"
                f"  Rcvd:  {c.ttl_expired} bad hop count\n"
                f"  Sent:  {c.forwarded} forwarded\n"
                f"  Drop:  {c.no_mapping_drops} unresolved, {c.no_route_drops} no route, "
                f"{c.no_sa_drops} no IPsec SA")

    def _set_debug(self, on: bool, version: int | None = None) -> None:
        for km in self.key_managers:
            if version is None or km.ike_version == version:
                km.debug = on

    def _clear(self, now: float, peer: str | None) -> int:
        return sum(km.clear(now, peer) for km in self.key_managers)

    def _clear_ike(self, now: float, peer: str | None) -> int:
        """``clear crypto ikev2 sa [peer A]`` (IOS-XE spells the filter ``remote A``)."""
        return sum(km.clear_ike(now, peer) for km in self.key_managers if isinstance(km, Ikev2Manager))

    def _rekey(self, now: float, peer: str | None) -> int:
        return sum(km.rekey(now, peer) for km in self.key_managers)

    def _rekey_ike(self, now: float, peer: str | None) -> int:
        return sum(km.rekey_ike(now, peer) for km in self.key_managers if isinstance(km, Ikev2Manager))

    def _explain(self, now: float, peer: str | None) -> str:
        """``show crypto ipsec sa [peer A] explain`` (not IOS): why each SA
        with each peer exists, from this router's own SA history."""
        records = [record_of(self.name, sa) for sa in self.sad.history]
        peers = sorted({r.peer for r in records if peer is None or r.peer == peer})
        if not peers:
            return "No IPsec SAs" + (f" with {peer}" if peer else "")
        names = {self.name: self.config.hostname}
        return "\n".join(line for p in peers for line in explain_sas(records, self.name, p, now, names))

    @staticmethod
    def _with_peer(words: list[str], n: int, action: Callable[[str | None], str]) -> str:
        """``... [peer A.B.C.D]`` after ``n`` keywords."""
        if len(words) == n:
            return action(None)
        if len(words) == n + 2 and "peer".startswith(words[n]) and len(words[n]) >= 2:
            try:
                return action(str(ipaddress.IPv4Address(words[n + 1])))
            except ValueError:
                return f"% Invalid peer address {words[n + 1]}"
        return INVALID_INPUT

    # ================================================================== data plane
    def _esp_in(self, now: float, iface: str, packet: bytes) -> None:
        """ESP (or ESP in UDP) for us: checked, decrypted, its payload to
        the tunnel (GRE) or the host."""
        try:
            sa, hlen, next_header, inner = open_datagram(self.sad, now, packet, self._gre_prefixes,
                                                         self._verify_underlay)
        except EspDrop as drop:
            self._esp_drop(now, iface, packet, drop)
            return
        except DecodeError:
            self.counters.malformed += 1
            return
        self.last_in[sa.peer] = now
        self._esp_payload(now, iface, packet, sa, hlen, next_header, inner)

    def _esp_drop(self, now: float, iface: str, packet: bytes, drop: EspDrop) -> None:
        """ESP refused ``packet``: counted by reason; an unknown SPI goes to
        IKE (%CRYPTO-4-RECVD_PKT_INV_SPI, invalid-SPI recovery)."""
        key = drop.reason.value
        self.counters.esp_drops[key] = self.counters.esp_drops.get(key, 0) + 1
        if drop.reason is DropReason.NO_SA:
            self.ike.invalid_spi(now, format_ipv4_address(packet[12:16]), format_ipv4_address(packet[16:20]),
                                 drop.spi, iface)

    def _esp_payload(self, now: float, iface: str, packet: bytes, sa: SecurityAssociation, hlen: int,
                     next_header: int, inner: bytes) -> None:
        """What ESP opened (:func:`open_datagram`'s results for ``packet``)
        to the tunnel (GRE) or the host."""
        # In transport mode the ICV held, so the packet came from the SA's
        # peer to its local address (behind a NAT too: the peer is the
        # address IKE talks to): no need to read them out of the header.
        if next_header == _GRE_STRIPPED:  # the tunnel's plain GRE header, left out by ESP
            name, tunnel = self._tunnel_by_source[sa.local]
            if tunnel.plain_input(inner):
                self._overlay_in(now, name, sa.peer, inner)
            else:
                self.counters.tunnel_drops += 1
            return
        if sa.mode is not _TUNNEL:  # transport: the payload is the outer header's
            if next_header == GRE_PROTOCOL:
                self._gre_in(now, sa.peer, sa.local, inner, True)
            else:
                self.host.receive(now, iface, rewrite_header(packet[:hlen], hlen + len(inner), next_header) + inner)
            return
        try:
            inner_header, inner_payload = decode_ipv4(inner, verify_checksum=False)
        except DecodeError:
            self.counters.malformed += 1
            return
        if inner_header.protocol == GRE_PROTOCOL:
            self._gre_in(now, inner_header.src, inner_header.dst, inner_payload, True)
        else:
            self._crypto_map_in(now, iface, sa, inner)

    def _crypto_map_in(self, now: float, iface: str, sa: SecurityAssociation, inner: bytes) -> None:
        """A tunnel-mode inner packet (not GRE): the RFC 4301 5.2 selector
        check, then to the OS behind the crypto map (real mode) or the host."""
        if not self.crypto_map.inbound_allowed(now, sa, inner):
            return
        if self.kernel_host and iface in self.crypto_map.maps:
            self._tx.append(Transmit(kernel_iface(iface), inner))
            if not _is_echo_reply(inner):
                return
        self.host.receive(now, iface, inner)

    def _kernel_crypto_map_out(self, now: float, tun: str, packets: Sequence[bytes]) -> None:
        """Packets the OS routed into the crypto-map TUN ``tun``: protected or dropped, never in clear."""
        iface = self.crypto_map.kernel[tun]
        for packet in packets:
            self._crypto_map_out(now, iface, packet, clear_ok=False)

    def _crypto_map_out(self, now: float, iface: str, packet: bytes, *, clear_ok: bool = True) -> None:
        """A packet leaving crypto-map ``iface``: protected, in clear, or dropped."""
        out = self.crypto_map.outbound(now, iface, packet, clear_ok=clear_ok)
        if out is not None:
            self._tx.append(Transmit(iface, out))

    def _udp4500_in(self, now: float, iface: str, header: IPv4Header, udp: UdpDatagram, packet: bytes) -> None:
        """UDP 4500 (RFC 3948 section 2): IKE behind the non-ESP marker, ESP,
        or a NAT keepalive."""
        try:
            kind = classify_udp4500(udp.payload)
        except DecodeError:
            self.counters.malformed += 1
            return
        if kind is Udp4500Kind.IKE:
            self.last_in[header.src] = now
            self._ike_in(now, header.src, udp.src_port, header.dst, udp.dst_port, strip_non_esp_marker(udp.payload))
        elif kind is Udp4500Kind.ESP:
            self._esp_in(now, iface, packet)

    def _ike_in(self, now: float, src: str, sport: int, dst: str, dport: int, payload: bytes) -> None:
        """An IKE message to the key manager of its version (the header's
        major version, RFC 2408 / RFC 7296 section 3.1); a message too short
        to carry one goes to the first manager, whose decoder reports it;
        another version is dropped and counted."""
        version = ike_major_version(payload)
        manager = self.ike if version is None else self._by_version.get(version)
        if manager is None:
            self.counters.unknown_ike_version += 1
            return
        manager.receive(now, src, sport, dst, dport, payload)

    def _gre_in(self, now: float, src: str, dst: str, gre: bytes, protected: bool) -> None:
        """GRE from NBMA ``src`` to our ``dst``: to the (first) tunnel sourced there."""
        found = self._tunnel_by_source.get(dst)
        if found is None:
            self.counters.not_for_us += 1
            return
        name, tunnel = found
        if not protected and name in self.protected:
            self.counters.clear_gre_drops += 1
            return
        payload = tunnel.overlay_payload(gre)
        if payload is None:
            delivery = tunnel.decapsulate(src, gre)
            if delivery is None:
                self.counters.tunnel_drops += 1
                return
            if delivery.protocol == GRE_PROTO_NHRP:
                slot = self.nhrp.get(name)
                if slot is None:
                    self.counters.tunnel_drops += 1
                    return
                slot.receive(now, ipaddress.IPv4Address(src), ipaddress.IPv4Address(dst), delivery.payload)
                return
            payload = delivery.payload  # decapsulate delivers IPv4 or NHRP only
        self._overlay_in(now, name, src, payload)

    def _overlay_in(self, now: float, name: str, src: str, payload: bytes) -> None:
        """An overlay packet out of tunnel ``name`` from NBMA ``src``: for
        this router (or multicast) to the host, transit back into a tunnel
        forwarded, anything else (real mode: a LAN behind us) to the OS.

        In real mode the host is the OS: what is for this router goes to it
        through the TUN (echo replies also to the built-in pinger)."""
        if len(payload) < 20 or payload[16:20] in self._overlay_local or payload[16] >= 0xE0:
            if not self.kernel_host:
                self.host.receive(now, name, payload)
                return
        elif not self.kernel_host or self._into_tunnel(payload):
            self._forward(now, name, src, payload)
            return
        self._tx.append(Transmit(name, payload))  # to the OS
        if len(payload) > 20 and payload[9] == _ICMP and _is_echo_reply(payload):
            self.host.receive(now, name, payload)

    def _into_tunnel(self, payload: bytes) -> bool:
        """The overlay table routes ``payload`` back into a tunnel: transit
        the router carries itself (a hub between two spokes), so it counts
        it and NHRP sees the hairpin, as in the lab."""
        hop = self.routes.lookup_packed(payload[16:20])
        return hop is not None and hop.interface in self.tunnels

    def learn_routes(self, now: float, routes: list[Route]) -> None:
        """Real mode: the routes a routing daemon on the host (FRR) installed
        in the kernel through the tunnels' TUNs
        (:mod:`dmvpn.runtime.real.kernel_routes`) replace the learned ones
        of the overlay table; NHRP's shortcuts and overrides stay on top."""
        self.routes.set_learned([replace(r, installed_at=now) for r in routes])

    def _tunnel_out(self, now: float, name: str, overlay: bytes) -> None:
        """An overlay packet into tunnel ``name``: :meth:`_tunnel_out_batch` of one."""
        self._tunnel_out_batch(now, name, (overlay,))

    def _tunnel_out_batch(self, now: float, name: str, overlays: Sequence[bytes]) -> None:
        """Overlay packets into tunnel ``name``, in order: routed to a next
        hop on the tunnel, GRE encapsulated to its NBMA address, sent by
        :meth:`_gre_out`; dropped and counted when malformed or unroutable."""
        tunnel = self.tunnels[name]
        # only what every packet uses is held in locals (a batch of one is the lab's and a ping's)
        lookup = self.routes.lookup_packed
        prefix = tunnel.plain_header or b""
        plain_output = tunnel.plain_output
        sad, paths, last_out, tx = self.sad, self._peer_paths[name], self.last_out, self._tx
        for overlay in overlays:
            if len(overlay) < 20 or overlay[0] >> 4 != 4:
                self.counters.malformed += 1
                continue
            if overlay[16] >= 0xE0:
                self._multicast_out(now, name, tunnel, overlay)
                continue
            hop = lookup(overlay[16:20])
            if hop is None or hop.interface != name:
                self.counters.no_route_drops += 1
                continue
            nbma = plain_output(overlay, hop.next_hop) if prefix else None
            if nbma is not None:  # the common case: the tunnel's fixed GRE header goes into ESP's copy
                if hop.shortcut and self.nhrp:
                    self._used(now, name, hop.route.prefix, overlay)
                path = paths.get(nbma)
                # _gre_out's transport-mode case, inline: the SA the path chose
                # at the SAD's current generation, ESP straight behind the header
                if path is None or path.generation != sad.generation or (sa := path.direct) is None:
                    self._gre_out(now, name, tunnel, nbma, overlay, prefix)
                    continue
                try:
                    packet = encapsulate(sa, now, overlay, GRE_PROTOCOL, path.outer, prefix)
                except EspDrop as drop:
                    self._esp_send_drop(drop)
                    continue
                last_out[nbma] = now
                tx.append(Transmit(path.underlay, packet))  # type: ignore[arg-type]  # direct: an underlay
                continue
            out = tunnel.encapsulate(overlay, hop.next_hop)
            if out is None:
                out = self._no_mapping(now, name, tunnel, overlay, hop.next_hop)
                if out is None:
                    continue
            elif hop.shortcut and self.nhrp:
                self._used(now, name, hop.route.prefix, overlay)
            self._gre_out(now, name, tunnel, out[0], out[1])

    def _gre_out(self, now: float, name: str, tunnel: TunnelInterface, peer: str, gre: bytes,
                 prefix: bytes = b"") -> None:
        """The GRE packet ``prefix + gre`` of tunnel ``name`` to NBMA
        ``peer``: in clear, or protected by the peer's SA when the tunnel
        has ``tunnel protection`` (no SA: dropped, counted, and IKE asked
        for one). ``prefix``: the GRE header, when the caller did not put it
        in front of the payload (ESP joins it into its own copy)."""
        path = self._peer_paths[name].get(peer)
        if path is None:
            path = self._peer_path(name, tunnel, peer)
        if path.policy is None:
            self._send_physical(path.underlay, path.gre_header.encode(prefix + gre if prefix else gre))
            return
        sad = self.sad
        sa = path.sa if path.generation == sad.generation else path.outbound_sa(sad)
        if sa is None:
            self.counters.no_sa_drops += 1
            self._acquire(now, path.policy, peer, path.local, path.selector)
            return
        try:
            packet = protect_parts(sa, now, path.esp_header, path.gre_header, gre, GRE_PROTOCOL, prefix)
        except EspDrop as drop:
            self._esp_send_drop(drop)
            return
        self.last_out[peer] = now
        underlay = path.underlay
        if underlay is None:
            self.counters.tunnel_drops += 1
            return
        self._tx.append(Transmit(underlay, packet))

    def _esp_send_drop(self, drop: EspDrop) -> None:
        """ESP refused to protect a packet (SA deleted, sequence exhausted): counted by reason."""
        key = drop.reason.value
        self.counters.esp_drops[key] = self.counters.esp_drops.get(key, 0) + 1

    def _peer_path(self, name: str, tunnel: TunnelInterface, peer: str) -> PeerPath:
        """The :class:`PeerPath` of tunnel ``name`` to NBMA ``peer``, made once."""
        local = tunnel.source
        path = self._peer_paths[name][peer] = PeerPath(local, peer, self._iface_by_address.get(local),
                                                         self.policy_by_interface.get(name),
                                                         self._gre_selector(local, peer))
        return path

    def _forward(self, now: float, name: str, nbma_src: str, packet: bytes) -> None:
        """An overlay packet that came out of tunnel ``name`` for someone
        else: its TTL decremented, routed into a tunnel; one that leaves by
        the tunnel it came from is a hairpin (NHRP redirect, phase 3)."""
        if packet[8] <= 1:
            self.counters.ttl_expired += 1
            return
        hop = self.routes.lookup_packed(packet[16:20])
        if hop is None or hop.interface not in self.tunnels:
            self.counters.no_route_drops += 1
            return
        if hop.interface == name:
            slot = self.nhrp.get(name)
            if slot is not None and slot.engine.settings.redirect:
                slot.hairpin(now, ipaddress.IPv4Address(nbma_src), packet)
        self.counters.forwarded += 1
        self.forwarded_bytes += len(packet)
        self.last_forwarded = now
        self._tunnel_out(now, hop.interface, _decrement_ttl(packet))

    def _no_mapping(self, now: float, name: str, tunnel: TunnelInterface, overlay: bytes,
                    next_hop: str) -> tuple[str, bytes] | None:
        """The tunnel next hop has no NBMA address: NHRP resolves it, and
        the packet goes via a responding NHS meanwhile (NHRP.md 3.4 step 1);
        without NHRP or an NHS the packet is dropped and counted."""
        slot = self.nhrp.get(name)
        if slot is None or tunnel.shutdown:
            self.counters.tunnel_drops += 1
            return None
        slot.resolve(now, ipaddress.IPv4Address(next_hop))
        nhs = next((n for n in slot.engine.nhs if n.state is NhsState.RESPONDING), None)
        if nhs is None:
            self.counters.no_mapping_drops += 1
            return None
        nbma = str(nhs.nbma)
        return nbma, tunnel.encapsulate_to(nbma, overlay)

    def _used(self, now: float, name: str, prefix: ipaddress.IPv4Network, overlay: bytes) -> None:
        """Tell NHRP (at most every :data:`USED_EVERY` s per prefix) that a
        shortcut carried traffic, so it is refreshed before it expires."""
        last = self._used_at.get(prefix)
        if last is not None and now - last < USED_EVERY:
            return
        slot = self.nhrp.get(name)
        if slot is None:
            return
        self._used_at[prefix] = now
        slot.used(now, ipaddress.IPv4Address(overlay[16:20]))

    def _multicast_out(self, now: float, name: str, tunnel: TunnelInterface, overlay: bytes) -> None:
        """A multicast overlay packet: one unicast copy to each NBMA address
        of ``ip nhrp map multicast`` (static, or ``dynamic``: every
        registered spoke), NHRP.md 3.3."""
        slot = self.nhrp.get(name)
        targets = slot.engine.multicast_nbmas() if slot is not None else []
        if not targets:
            self.counters.no_route_drops += 1
            return
        for nbma in dict.fromkeys(str(t) for t in targets):
            self._gre_out(now, name, tunnel, nbma, tunnel.encapsulate_to(nbma, overlay))

    # ================================================================== NHRP (NhrpPort)
    def send_nhrp(self, now: float, interface: str, nbma: str, packet: bytes) -> None:
        tunnel = self.tunnels[interface]
        if tunnel.shutdown:
            self.counters.tunnel_drops += 1
            return
        self._gre_out(now, interface, tunnel, nbma, tunnel.encapsulate_to(nbma, packet, GRE_PROTO_NHRP))

    def _acquire(self, now: float, policy: ChildPolicy, peer: str, local: str, selector: Selector) -> None:
        """No outbound SA for ``selector``: the key manager of ``policy`` negotiates one."""
        self._manager_of.get((policy.interface, policy.name), self.ike).acquire(now, policy, peer, local, selector)

    def acquire_sa(self, now: float, interface: str, nbma: str) -> None:
        policy = self.policy_by_interface.get(interface)
        if policy is not None:
            local = self.tunnels[interface].source
            self._acquire(now, policy, nbma, local, self._gre_selector(local, nbma))

    def sa_ready(self, interface: str, nbma: str) -> bool:
        tunnel = self.tunnels.get(interface)
        if tunnel is None:
            return False
        return self.sad.outbound_for(nbma, self._gre_selector(tunnel.source, nbma)) is not None

    def peer_gone(self, now: float, nbma: str) -> None:
        """IOS closes the crypto socket of a DMVPN peer whose NHRP entry is
        gone: the IPsec SAs to ``nbma`` are cleared unless a tunnel (a
        mapping, a static map, an NHS) still uses that peer."""
        if any(slot.uses(nbma) for slot in self.nhrp.values()):
            return
        if any(nbma in t.static_maps.values() or nbma in t.dynamic_maps.values() for t in self.tunnels.values()):
            return
        self._clear(now, nbma)

    def nhrp_milestones(self) -> list[tuple[str, float, str, str, str]]:
        """(interface, time, kind, subject, detail) of every NHRP slot, by time."""
        rows = [(m.interface, m.time, m.kind, m.subject, m.detail) for s in self.nhrp.values() for m in s.milestones]
        return sorted(rows, key=lambda r: r[1])

    def _gre_selector(self, local: str, peer: str) -> Selector:
        """The GRE host pair's selector, built once per peer (ipaddress
        objects are slow per packet)."""
        selector = self._gre_selectors.get((local, peer))
        if selector is None:
            selector = self._gre_selectors[(local, peer)] = Selector.hosts(local, peer, GRE_PROTOCOL)
        return selector

    def _send_physical(self, underlay: str | None, packet: bytes) -> None:
        """``packet`` out of interface ``underlay`` (None: the source
        address is on no interface of ours, dropped and counted)."""
        if underlay is None:
            self.counters.tunnel_drops += 1
            return
        self._tx.append(Transmit(underlay, packet))

    def _settle(self) -> None:
        """Run :meth:`_after` for the packets received since the last poll."""
        now = self._unsettled
        if now is not None:
            self._unsettled = None
            self._after(now)

    def _after(self, now: float) -> None:
        """Drain the sub-engines into transmits and events (what one
        engine's output causes in another, e.g. a ping starting IKE, is
        drained in the next round)."""
        for _round in range(8):
            moved = False
            for engine in self.engines:
                moved = engine.drain(now) or moved
            if not moved:
                break
        for flow in self.fluids:
            flow.after_interaction(self, now)
        for engine in self.engines:
            self._events.extend(engine.poll_events())
        self._events.extend(self.crypto_map.poll_events())

    def _send_ike(self, now: float, d: Datagram) -> None:
        """A key manager's datagram: UDP (with the non-ESP marker on 4500,
        RFC 3948 section 2.2, except NAT keepalives) in IPv4 on the underlay."""
        marked = NAT_T_PORT in (d.sport, d.dport) and not d.raw
        payload = add_non_esp_marker(d.payload) if marked else d.payload
        udp = encode_udp(d.src, d.dst, d.sport, d.dport, payload)
        datagram = IPv4Header(d.src, d.dst, IpProto.UDP, ttl=255).encode(udp)
        self._send_physical(self._iface_by_address.get(d.src), datagram)

    def _host_out(self, now: float, tx: Transmit) -> None:
        """A packet of the built-in host: into a tunnel, a crypto map or out of an interface."""
        if tx.iface in self.tunnels:
            self._tunnel_out(now, tx.iface, tx.packet)
        elif tx.iface in self.crypto_map.maps:
            self._crypto_map_out(now, tx.iface, tx.packet)
        else:
            self._tx.append(tx)

    def _egress(self, destination: ipaddress.IPv4Address) -> str | None:
        """The interface the host's packets to ``destination`` leave by."""
        hop = self.routes.lookup(destination)
        return hop.interface if hop is not None else None

    # ================================================================== DPD and lab hooks
    def _traffic(self, peer: str) -> tuple[float | None, float | None]:
        return self.last_in.get(peer), self.last_out.get(peer)

    def _sync_fluids(self, now: float) -> None:
        for flow in self.fluids:
            flow.sync(self, now)

    # ================================================================== bulk traffic (BulkPort)
    def add_fluid(self, flow: BulkFlow) -> None:
        """Register a fluid flow that this router sends or receives."""
        self.fluids.append(flow)

    def tunnel_path(self, overlay_destination: str) -> TunnelPath:
        """The path :meth:`_tunnel_out` would send ``overlay_destination``
        by: the routing table's next hop on a tunnel, the tunnel's NBMA
        address for it, the GRE selector and the tunnel's IPsec policy."""
        hop = self.routes.lookup(overlay_destination)
        tunnel = self.tunnels.get(hop.interface) if hop is not None else None
        if hop is None or tunnel is None:
            raise ValueError(f"FluidFlow: {self.name} has no tunnel toward {overlay_destination}")
        nbma = tunnel.resolve(hop.next_hop)
        if nbma is None:
            raise ValueError(f"FluidFlow: {self.name} has no NBMA mapping for {hop.next_hop}")
        gre_bytes = len(encode_gre(GRE_PROTO_IPV4, b"", key=tunnel.key, sequence=0 if tunnel.sequence else None,
                                   checksum=tunnel.checksum))
        return TunnelPath(hop.interface, nbma, tunnel.source, self._gre_selector(tunnel.source, nbma),
                          self.policy_by_interface.get(hop.interface), gre_bytes)

    def outbound_sa(self, path: TunnelPath) -> SecurityAssociation | None:
        return self.sad.outbound_for(path.peer, path.selector)

    def inbound_sa(self, spi: int) -> SecurityAssociation | None:
        return self.sad.lookup_inbound(spi)

    def request_sa(self, now: float, path: TunnelPath) -> None:
        if path.policy is not None:
            self._acquire(now, path.policy, path.peer, path.local, path.selector)

    def credit_sent(self, now: float, sa: SecurityAssociation, peer: str, nbytes: int, packets: int) -> bool:
        if sa.sad is None:  # deleted since it was chosen
            return False
        self.sad.credit(now, sa, nbytes, packets)
        self.last_out[peer] = now
        return True

    def credit_received(self, now: float, sa: SecurityAssociation, peer: str, nbytes: int, packets: int) -> None:
        self.sad.credit(now, sa, nbytes, packets)
        self.last_in[peer] = now

    def next_volume_crossing(self, now: float, sa: SecurityAssociation, byte_rate: float) -> float | None:
        return self.sad.next_volume_crossing(now, sa, byte_rate)

    def render_debug(self, events: list[LogEvent]) -> str:
        """``debug crypto isakmp`` (then ``debug crypto ikev2``) lines of this router, IOS formatted."""
        parts = [render(events, self.clock, node=self.name, category=c) for c in ("isakmp", "ikev2")]
        return "\n".join(p for p in parts if p)


def build_key_managers(name: str, config: RouterConfig, sad: SecurityAssociationDatabase, random: RandomSource,
                       profile: BehaviourProfile, policies: list[ChildPolicy], traffic: TrafficProbe,
                       force_nat_t: bool) -> list[tuple[KeyManager, list[ChildPolicy]]]:
    """The key managers for ``config``, each with the policies it negotiates
    for: the one place that names a concrete IKE engine. A tunnel whose
    ``crypto ipsec profile`` has ``set ikev2-profile`` is negotiated by
    IKEv2 (:class:`Ikev2Engine`), everything else (``crypto isakmp``
    tunnels, crypto maps) by IKEv1; a configuration with both runs both side
    by side, IKEv2 first. The router tells their messages apart by version."""
    v2_ifaces = ikev2_interfaces(config)
    v2 = [p for p in policies if p.interface in v2_ifaces]
    v1 = [p for p in policies if p.interface not in v2_ifaces]
    managers: list[tuple[KeyManager, list[ChildPolicy]]] = []
    if v2:
        managers.append((Ikev2Engine(name, config, sad, random, profile, v2, traffic=traffic, force_nat_t=force_nat_t),
                         v2))
    if v1 or not v2:
        managers.append((Ikev1Engine(name, config, sad, random, profile, v1, traffic=traffic,
                                     force_nat_t=force_nat_t), v1))
    return managers


def ikev2_interfaces(config: RouterConfig) -> set[str]:
    """The tunnel interfaces whose protection profile names an IKEv2 profile."""
    out = set()
    for iface in config.tunnels():
        name = iface.tunnel.protection_profile if iface.tunnel is not None else None
        profile = config.ipsec_profiles.get(name) if name is not None else None
        if profile is not None and profile.ikev2_profile is not None:
            out.add(iface.name)
    return out


def _is_udp_esp(packet: bytes, verify: bool) -> bool:
    """``packet`` (36 bytes or more: UDP, SPI, sequence, an IV or ICV) is
    ESP in UDP to port 4500 (RFC 3948 2.1) that ESP reads in place: no IPv4
    options, neither the non-ESP marker of IKE (2.2) nor a NAT keepalive
    (2.3, one byte) behind the UDP header, and a UDP checksum that needs no
    check (``verify``: the lab, where no kernel checked it; zero: not sent).
    The others take :meth:`Router._receive_other`'s way."""
    return (packet[9] == _UDP and packet[0] == 0x45 and packet[22:24] == _NAT_T_PORT_BYTES
            and packet[28:32] != NON_ESP_MARKER and not (verify and (packet[26] or packet[27])))


def _decrement_ttl(packet: bytes) -> bytes:
    """``packet`` with its TTL one lower and the header checksum updated
    incrementally (RFC 1624 equation 3)."""
    old = (packet[8] << 8) | packet[9]
    new = old - 0x100
    check = (~((packet[10] << 8) | packet[11]) & 0xFFFF) + (~old & 0xFFFF) + new
    check = (check & 0xFFFF) + (check >> 16)
    check = ~((check & 0xFFFF) + (check >> 16)) & 0xFFFF
    return packet[:8] + bytes((packet[8] - 1,)) + packet[9:10] + check.to_bytes(2, "big") + packet[12:]


def _is_echo_reply(packet: bytes) -> bool:
    """An ICMP Echo Reply (RFC 792 type 0) in an IPv4 packet (asked of every
    packet delivered to the OS: the protocol byte is looked at first)."""
    if len(packet) < 21 or packet[9] != _ICMP:
        return False
    ihl = (packet[0] & 0x0F) * 4
    return len(packet) > ihl and packet[ihl] == 0
