"""Crypto maps: the site-to-site IPsec data path (IOS ``crypto map``; the
SPD of RFC 4301 section 4.4.1 with PROTECT and BYPASS entries).

An interface with ``crypto map M`` protects the traffic its entries' ACLs
permit:

* outbound (RFC 4301 section 5.1): a packet leaving the interface is
  checked against the map's entries in sequence order, and within an entry
  against its ACL's lines in order; the first line that matches decides.
  ``permit``: the packet is protected, in the mode the SA was negotiated in
  (tunnel for site-to-site), by the outbound SA for (the entry's peer, that
  line's selector), or by an SA with that peer whose (narrower, responder
  side) selector covers the packet. No such SA: the packet is dropped and
  counted, and IKE is asked for one with the line's selector (IOS negotiates
  the ACL line, not the host pair). It is never sent in clear. ``deny``:
  this entry does not protect it, the next entry is tried. No entry: the
  packet leaves in clear (BYPASS).
* inbound (section 5.2): after ESP is opened, the inner packet of a
  non-GRE payload must lie inside the SA's selectors (source in the remote
  network, destination in the local one, the protocol if one was agreed),
  else it is dropped and counted (IOS ``%CRYPTO-4-RECVD_PKT_INV_IDENTITY_ACL``).
  A packet arriving in clear on the interface that the mirror of a permit
  line matches should have been protected: dropped and counted (IOS
  ``%CRYPTO-4-RECVD_PKT_NOT_IPSEC``).

The packet path matches on integers taken from the header bytes (no address
objects per packet).

Real mode (``Router(kernel_host=True)``): the operating system is the host
behind the crypto map. The daemon gives each crypto-map interface a TUN
device whose engine-side name is :func:`kernel_iface` (``kernel:`` + the
interface, e.g. ``kernel:GigabitEthernet1``); the Linux name continues the
``dmvpn run --tun-name`` sequence after the tunnel interfaces' devices. It
has no address and MTU :data:`CRYPTO_MAP_TUN_MTU`; :func:`kernel_routes`
routes each permit line's destination network into it. What the kernel
writes into it goes through the crypto map (a packet no permit line matches
is dropped: sending it in clear would route it back into the TUN); the
inner packets of tunnel-mode ESP that pass the inbound check are written
back into it, so the kernel delivers or forwards them.

The lab (``kernel_host=False``) has the built-in ICMP host instead; its
``ping`` picks the egress interface from the router's routing table
(:mod:`dmvpn.node.routing`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field

from dmvpn.config import AclAction, RouterConfig
from dmvpn.config.model import AclEntry, PortMatch
from dmvpn.ike.proposals import ChildPolicy
from dmvpn.ipsec.esp import EspDrop, protect
from dmvpn.ipsec.sa import SecurityAssociation, Selector
from dmvpn.ipsec.sad import SecurityAssociationDatabase
from dmvpn.sansio import LogEvent
from dmvpn.wire.ipv4 import IpProto, format_ipv4_address

#: Engine-side names of the TUN devices that carry crypto-map traffic.
KERNEL_PREFIX = "kernel:"
#: MTU of a crypto-map TUN: a 1500-byte underlay less ESP tunnel mode in
#: UDP (outer IPv4 20, UDP 8, ESP 8, IV 16, pad up to 15 + 2, ICV 16), as
#: strongSwan's ipsec0 uses.
CRYPTO_MAP_TUN_MTU = 1400
#: Cached outbound verdicts per (interface, protocol, src, dst), at most.
VERDICT_CACHE_SIZE = 65536
#: At most one syslog line of each kind per this many seconds (IOS rate-limits them too).
SYSLOG_INTERVAL = 60.0
_TCP, _UDP = int(IpProto.TCP), int(IpProto.UDP)


def kernel_iface(interface: str) -> str:
    """The engine-side name of the TUN device behind crypto-map ``interface``."""
    return KERNEL_PREFIX + interface


def _net(network: ipaddress.IPv4Network) -> tuple[int, int]:
    return int(network.network_address), int(network.netmask)


@dataclass(frozen=True, slots=True)
class MapLine:
    """One ACL line of a crypto map entry, in the form the packet path
    matches: networks as (address, mask) integers, protocol 0 = any."""

    permit: bool
    src: tuple[int, int]
    dst: tuple[int, int]
    protocol: int
    source_ports: PortMatch | None
    destination_ports: PortMatch | None
    #: Permit lines only: what IKE negotiates for this line, and with whom.
    policy: ChildPolicy | None = None
    selector: Selector | None = None
    peers: tuple[str, ...] = ()

    def matches(self, src: int, dst: int, protocol: int, ports: tuple[int, int] | None) -> bool:
        """The packet (src, dst, protocol, (sport, dport) or None) is this line's."""
        if (src & self.src[1]) != self.src[0] or (dst & self.dst[1]) != self.dst[0]:
            return False
        if self.protocol and protocol != self.protocol:
            return False
        return self._ports_match(ports, 0, self.source_ports) and self._ports_match(ports, 1, self.destination_ports)

    def mirror_matches(self, src: int, dst: int, protocol: int, ports: tuple[int, int] | None) -> bool:
        """The packet is the reverse direction of this line's traffic."""
        if (src & self.dst[1]) != self.dst[0] or (dst & self.src[1]) != self.src[0]:
            return False
        if self.protocol and protocol != self.protocol:
            return False
        return self._ports_match(ports, 1, self.source_ports) and self._ports_match(ports, 0, self.destination_ports)

    @staticmethod
    def _ports_match(ports: tuple[int, int] | None, i: int, match: PortMatch | None) -> bool:
        if match is None:
            return True
        return ports is not None and match.matches(ports[i])


#: The verdict cache's "not cached yet" marker (never a real line).
_UNKNOWN = MapLine(False, (0, 0), (0, 0), 0, None, None)


def _map_line(acl_line: AclEntry, protocol: int, policy: ChildPolicy | None = None) -> MapLine:
    """The packet path's form of one ACL line; ``policy`` for a permit line."""
    src, dst = _net(acl_line.source), _net(acl_line.destination)
    if policy is None:
        return MapLine(False, src, dst, protocol, acl_line.source_ports, acl_line.destination_ports)
    return MapLine(True, src, dst, protocol, acl_line.source_ports, acl_line.destination_ports, policy=policy,
                   selector=Selector(acl_line.source, acl_line.destination, protocol),
                   peers=tuple(str(p) for p in policy.peers))


@dataclass(frozen=True, slots=True)
class InterfaceMap:
    """The crypto map applied to one interface: its entries' lines in order
    (each entry a tuple), and the address IKE and ESP use (``crypto map M
    local-address IFACE``, else the interface's own)."""

    interface: str
    map_name: str
    local: str
    entries: tuple[tuple[MapLine, ...], ...]

    @property
    def matches_ports(self) -> bool:
        """Some line has a TCP/UDP port condition."""
        return any(line.source_ports or line.destination_ports for lines in self.entries for line in lines)

    def classify(self, src: int, dst: int, protocol: int, ports: tuple[int, int] | None) -> MapLine | None:
        """The permit line that protects this packet, or None (BYPASS)."""
        for lines in self.entries:
            for line in lines:
                if line.matches(src, dst, protocol, ports):
                    if line.permit:
                        return line
                    break  # deny: not this entry's traffic, try the next entry
        return None

    def protects_mirror(self, src: int, dst: int, protocol: int, ports: tuple[int, int] | None) -> bool:
        """A permit line covers the reverse of this packet: it should have
        arrived protected."""
        for lines in self.entries:
            for line in lines:
                if line.mirror_matches(src, dst, protocol, ports):
                    if line.permit:
                        return True
                    break
        return False


@dataclass(slots=True)
class CryptoMapCounters:
    """Packets the crypto maps dropped, by reason."""

    no_sa_drops: int = 0
    invalid_identity_drops: int = 0
    not_ipsec_drops: int = 0
    unmatched_kernel_drops: int = 0
    esp_drops: dict[str, int] = field(default_factory=dict)
    malformed: int = 0


def packet_fields(packet: bytes) -> tuple[int, int, int, tuple[int, int] | None] | None:
    """(src, dst, protocol, TCP/UDP ports or None) of an IPv4 datagram, from
    its header bytes; None if it is too short to be one. A non-first
    fragment has no ports (RFC 4301 section 7: it matches no port line)."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    ihl = (packet[0] & 0x0F) * 4
    protocol = packet[9]
    ports = None
    if protocol in (_TCP, _UDP) and not (packet[6] & 0x1F or packet[7]) and len(packet) >= ihl + 4:
        ports = ((packet[ihl] << 8) | packet[ihl + 1], (packet[ihl + 2] << 8) | packet[ihl + 3])
    return int.from_bytes(packet[12:16], "big"), int.from_bytes(packet[16:20], "big"), protocol, ports


def build_maps(config: RouterConfig, policies: list[ChildPolicy]) -> dict[str, InterfaceMap]:
    """The crypto map of every addressed, non-shutdown interface that has
    one, its permit lines tied to the :class:`ChildPolicy` that
    :func:`dmvpn.node.policies.child_policies` made for them. Entries
    without a peer, transform set or ACL are incomplete and skipped, as
    IOS skips them."""
    unused = list(policies)
    maps: dict[str, InterfaceMap] = {}
    for iface in config.interfaces.values():
        cmap = config.crypto_maps.get(iface.crypto_map) if iface.crypto_map else None
        if cmap is None or iface.address is None or iface.shutdown or iface.tunnel is not None:
            continue
        local_iface = config.interfaces.get(cmap.local_address) if cmap.local_address else None
        local_addr = local_iface.address if local_iface is not None and local_iface.address else iface.address
        entries = []
        for entry in cmap.entries:
            acl = config.acls.get(entry.acl) if entry.acl else None
            if acl is None or not entry.peers or not any(n in config.transform_sets for n in entry.transform_sets):
                continue
            lines = []
            for acl_line in acl.entries:
                protocol = acl_line.protocol or 0
                if acl_line.action is not AclAction.PERMIT:
                    lines.append(_map_line(acl_line, protocol))
                    continue
                policy = next(p for p in unused if p.interface == iface.name and p.name == cmap.name
                              and p.local == acl_line.source and p.remote == acl_line.destination
                              and p.protocol == protocol and p.peers == entry.peers)
                unused.remove(policy)
                lines.append(_map_line(acl_line, protocol, policy))
            entries.append(tuple(lines))
        maps[iface.name] = InterfaceMap(iface.name, cmap.name, str(local_addr.ip), tuple(entries))
    return maps


def kernel_routes(imap: InterfaceMap) -> tuple[ipaddress.IPv4Network, ...]:
    """The networks to route into the crypto-map TUN of ``imap``'s
    interface: every permit line's destination, except ``any`` and networks
    holding one of the entry's peers (routing those into the TUN would
    swallow IKE and ESP themselves)."""
    out: list[ipaddress.IPv4Network] = []
    for lines in imap.entries:
        for line in lines:
            if not line.permit or line.selector is None:
                continue
            net = line.selector.remote
            if net.prefixlen == 0 or any(ipaddress.IPv4Address(p) in net for p in line.peers) or net in out:
                continue
            out.append(net)
    return tuple(out)


AcquireFn = Callable[[float, ChildPolicy, str, str, Selector], None]


class CryptoMapPath:
    """The crypto maps of one router: outbound protection, the inbound
    policy checks, counters and their syslog lines."""

    def __init__(self, name: str, config: RouterConfig, policies: list[ChildPolicy],
                 sad: SecurityAssociationDatabase, acquire: AcquireFn, last_out: dict[str, float]) -> None:
        self.name = name
        self.sad = sad
        self.acquire = acquire
        self.last_out = last_out
        self.maps = build_maps(config, policies)
        #: engine-side TUN name -> the crypto-map interface it feeds (real mode)
        self.kernel = {kernel_iface(n): n for n in self.maps}
        self.counters = CryptoMapCounters()
        self._selectors: dict[Selector, tuple[int, int, int, int, int]] = {}
        self._port_maps = {n for n, m in self.maps.items() if m.matches_ports}
        self._verdicts: dict[tuple[str, bytes], MapLine | None] = {}
        self._logged: dict[str, float] = {}
        self._events: list[LogEvent] = []

    # ------------------------------------------------------------------ outbound
    def outbound(self, now: float, iface: str, packet: bytes, *, clear_ok: bool = True) -> bytes | None:
        """The datagram to send on ``iface`` for ``packet`` (protected, or
        the packet itself when no permit line matches and ``clear_ok``), or
        None when it is dropped (counted)."""
        if len(packet) < 20 or packet[0] >> 4 != 4:
            self.counters.malformed += 1
            return None
        # the verdict of a (protocol, src, dst) is cached unless ports matter
        key = (iface, packet[9:10] + packet[12:20]) if iface not in self._port_maps else None
        line = self._verdicts.get(key, _UNKNOWN) if key is not None else _UNKNOWN
        if line is _UNKNOWN:
            fields = packet_fields(packet)
            assert fields is not None  # the length and version were checked above
            line = self.maps[iface].classify(*fields)
            if key is not None:
                if len(self._verdicts) >= VERDICT_CACHE_SIZE:
                    self._verdicts.clear()
                self._verdicts[key] = line
        if line is None:
            if clear_ok:
                return packet
            self.counters.unmatched_kernel_drops += 1
            return None
        sa = self._outbound_sa(line, packet)
        if sa is None:
            self.counters.no_sa_drops += 1
            assert line.policy is not None and line.selector is not None
            self.acquire(now, line.policy, line.peers[0], self.maps[iface].local, line.selector)
            return None
        try:
            out = protect(sa, now, packet)
        except EspDrop as drop:
            reason = drop.reason.value
            self.counters.esp_drops[reason] = self.counters.esp_drops.get(reason, 0) + 1
            return None
        self.last_out[sa.peer] = now
        return out

    def _outbound_sa(self, line: MapLine, packet: bytes) -> SecurityAssociation | None:
        """The line's own SA, else one with its peers whose selector covers the packet."""
        sad = self.sad
        for peer in line.peers:
            sa = sad.outbound_for(peer, line.selector)
            if sa is not None:
                return sa
        src, dst, protocol = int.from_bytes(packet[12:16], "big"), int.from_bytes(packet[16:20], "big"), packet[9]
        for peer, selector in list(sad.outbound):
            if peer in line.peers and selector is not None and self._covers(selector, dst, src, protocol):
                sa = sad.outbound_for(peer, selector)
                if sa is not None:
                    return sa
        return None

    # ------------------------------------------------------------------ inbound
    def inbound_allowed(self, now: float, sa: SecurityAssociation, inner: bytes) -> bool:
        """RFC 4301 section 5.2: the decrypted inner packet lies inside the
        SA's selectors. A packet outside them is dropped and counted."""
        fields = packet_fields(inner)
        if fields is None:
            self.counters.malformed += 1
            return False
        src, dst, protocol, _ports = fields
        if sa.selector is None or self._covers(sa.selector, src, dst, protocol):
            return True
        self.counters.invalid_identity_drops += 1
        self._syslog(now, "%CRYPTO-4-RECVD_PKT_INV_IDENTITY_ACL",
                     f"ipsec check access: identity not allowed by ACL (ip) vrf/dest_addr= /"
                     f"{format_ipv4_address(inner[16:20])}, src_addr= {format_ipv4_address(inner[12:16])}, "
                     f"prot= {protocol}", peer=sa.peer, spi=sa.spi)
        return False

    def clear_allowed(self, now: float, iface: str, packet: bytes) -> bool:
        """A packet that arrived in clear on crypto-map ``iface`` may be
        accepted: no permit line covers its reverse (else it should have
        come protected; dropped and counted)."""
        fields = packet_fields(packet)
        if fields is None or not self.maps[iface].protects_mirror(*fields):
            return True
        self.counters.not_ipsec_drops += 1
        self._syslog(now, "%CRYPTO-4-RECVD_PKT_NOT_IPSEC",
                     f"Rec'd packet not an IPSEC packet. (ip) vrf/dest_addr= /{format_ipv4_address(packet[16:20])}, "
                     f"src_addr= {format_ipv4_address(packet[12:16])}, prot= {fields[2]}", interface=iface)
        return False

    def poll_events(self) -> list[LogEvent]:
        """Syslog lines, oldest first; the list is emptied."""
        out, self._events = self._events, []
        return out

    # ------------------------------------------------------------------ helpers
    def _covers(self, selector: Selector, src: int, dst: int, protocol: int) -> bool:
        """``src`` in the remote network, ``dst`` in the local one (the
        inbound direction), and the protocol if the selector has one."""
        ints = self._selectors.get(selector)
        if ints is None:
            (ln, lm), (rn, rm) = _net(selector.local), _net(selector.remote)
            ints = self._selectors[selector] = (ln, lm, rn, rm, selector.protocol)
        ln, lm, rn, rm, proto = ints
        return (src & rm) == rn and (dst & lm) == ln and (not proto or proto == protocol)

    def _syslog(self, now: float, tag: str, text: str, **fields: object) -> None:
        last = self._logged.get(tag)
        if last is not None and now - last < SYSLOG_INTERVAL:
            return
        self._logged[tag] = now
        self._events.append(LogEvent(now, self.name, "ipsec", text, {"facility": tag, **fields}))
