"""The routing lines of an IOS config: ``router ospf N`` and ``router bgp
ASN`` blocks, and the ``ip ospf ...`` lines of an interface block
(:mod:`dmvpn.config.routing_model`).

Handlers raise :class:`LineError` for a bad line and return "ok",
"ignored" or "unknown" like the other block handlers; :func:`build_routing`
is the second pass (references to interfaces and peer groups)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from dmvpn.config.builders import Settings
from dmvpn.config.routing_model import (
    BgpListenRange,
    BgpNeighbor,
    BgpProcess,
    OspfInterface,
    OspfNetwork,
    OspfNetworkType,
    OspfProcess,
    RoutingConfig,
)
from dmvpn.config.values import LineError, integer, interface_name, ipv4, network, wildcard

#: ``router ospf`` lines IOS accepts that change nothing FRR is told.
OSPF_IGNORED: tuple[tuple[str, ...], ...] = (
    ("log-adjacency-changes",), ("auto-cost",), ("timers",), ("max-metric",), ("bfd",),
    ("nsf",), ("ispf",), ("maximum-paths",), ("distance",), ("area",), ("summary-address",),
    ("ignore",), ("capability",), ("discard-route",), ("prefix-suppression",), ("compatible",),
)
#: ``router bgp`` lines IOS accepts that change nothing FRR is told.
BGP_IGNORED: tuple[tuple[str, ...], ...] = (
    ("bgp", "log-neighbor-changes"), ("no", "bgp", "default", "ipv4-unicast"), ("bgp", "graceful-restart"),
    ("no", "synchronization"), ("no", "auto-summary"), ("synchronization",), ("auto-summary",),
    ("timers",), ("maximum-paths",), ("distance",), ("bgp", "bestpath"), ("bgp", "deterministic-med"),
    ("address-family",), ("exit-address-family",), ("bgp", "dampening"), ("default-information",),
)
#: ``ip ospf`` interface lines that change nothing FRR is told.
OSPF_IF_IGNORED = ("authentication", "authentication-key", "message-digest-key", "bfd", "flood-reduction",
                   "demand-circuit", "database-filter", "resync-timeout",
                   "transmit-delay", "lls", "ttl-security", "prefix-suppression", "shutdown")
_NETWORK_TYPES = {t.value: t for t in OspfNetworkType}
_NETWORK_TYPE_ALIASES = {"point-to-multipoint non-broadcast": OspfNetworkType.POINT_TO_MULTIPOINT}
MAX_ASN = 4294967295


def area_id(token: str | None, what: str) -> IPv4Address:
    """An OSPF area as a decimal number or a dotted quad (RFC 2328 section 3:
    a 32-bit number); both are kept as the dotted form."""
    if token is not None and token.isdigit():
        return IPv4Address(integer(token, 0, 4294967295, what))
    return ipv4(token, f"{what} (a number or dotted quad)")


def asn(token: str | None, what: str) -> int:
    """An AS number, plain or asdot (``1.10`` = 65546, RFC 5396)."""
    if token is not None and token.count(".") == 1:
        high, low = token.split(".")
        return (integer(high, 0, 65535, what) << 16) | integer(low, 0, 65535, what)
    return integer(token, 1, MAX_ASN, what)


# -- interface ------------------------------------------------------------

@dataclass
class OspfIfBuilder:
    interface: str
    line: int
    seen: Settings = field(default_factory=Settings)
    process: int | None = None
    area: IPv4Address | None = None
    network_type: OspfNetworkType | None = None
    priority: int | None = None
    hello: int | None = None
    dead: int | None = None
    retransmit: int | None = None
    cost: int | None = None
    mtu_ignore: bool = False

    def freeze(self) -> OspfInterface:
        return OspfInterface(self.interface, self.process, self.area, self.network_type, self.priority,
                             self.hello, self.dead, self.retransmit, self.cost, self.mtu_ignore, self.line)


def ospf_interface_line(b: OspfIfBuilder, t: list[str], line: int) -> str:
    """One ``ip ospf ...`` line of an interface."""
    sub = t[2] if len(t) > 2 else None
    if sub is not None and sub.isdigit():
        b.seen.once("ip ospf area", line)
        if len(t) != 5 or t[3] != "area":
            raise LineError("ip ospf: expected 'ip ospf PROCESS-ID area AREA-ID'")
        b.process = integer(sub, 1, 65535, "ip ospf process id")
        b.area = area_id(t[4], "ip ospf area")
    elif sub == "network":
        b.seen.once("ip ospf network", line)
        words = " ".join(t[3:])
        kind = _NETWORK_TYPES.get(words) or _NETWORK_TYPE_ALIASES.get(words)
        if kind is None:
            raise LineError(f"ip ospf network: expected {'|'.join(_NETWORK_TYPES)}, got '{words}'")
        b.network_type = kind
    elif sub == "priority":
        b.seen.once("ip ospf priority", line)
        b.priority = integer(t[3] if len(t) == 4 else None, 0, 255, "ip ospf priority")
    elif sub == "hello-interval":
        b.seen.once("ip ospf hello-interval", line)
        b.hello = integer(t[3] if len(t) == 4 else None, 1, 65535, "ip ospf hello-interval (seconds)")
    elif sub == "dead-interval":
        b.seen.once("ip ospf dead-interval", line)
        if t[3:4] == ["minimal"]:
            raise LineError("ip ospf dead-interval minimal: sub-second hellos are not supported")
        b.dead = integer(t[3] if len(t) == 4 else None, 1, 65535, "ip ospf dead-interval (seconds)")
    elif sub == "retransmit-interval":
        b.seen.once("ip ospf retransmit-interval", line)
        b.retransmit = integer(t[3] if len(t) == 4 else None, 1, 65535, "ip ospf retransmit-interval (seconds)")
    elif sub == "cost":
        b.seen.once("ip ospf cost", line)
        b.cost = integer(t[3] if len(t) == 4 else None, 1, 65535, "ip ospf cost")
    elif sub == "mtu-ignore" and len(t) == 3:
        b.mtu_ignore = True
    elif sub in OSPF_IF_IGNORED:
        return "ignored"
    else:
        return "unknown"
    return "ok"


# -- router ospf ------------------------------------------------------------

@dataclass
class OspfBuilder:
    process_id: int
    line: int
    seen: Settings = field(default_factory=Settings)
    router_id: IPv4Address | None = None
    networks: list[OspfNetwork] = field(default_factory=list)
    passive_default: bool = False
    passive: list[tuple[str, int]] = field(default_factory=list)
    not_passive: list[tuple[str, int]] = field(default_factory=list)
    redistribute: set[str] = field(default_factory=set)
    default_originate: bool = False


def ospf_line(b: OspfBuilder, t: list[str], line: int) -> str:
    """One line of ``router ospf N``."""
    if t[0] == "router-id":
        b.seen.once("router-id", line)
        b.router_id = ipv4(t[1] if len(t) == 2 else None, "router-id")
    elif t[0] == "network":
        if len(t) != 5 or t[3] != "area":
            raise LineError("network: expected 'network ADDRESS WILDCARD area AREA-ID'")
        address = ipv4(t[1], "network address")
        plen = wildcard(t[2], "network wildcard")
        prefix = IPv4Network(f"{address}/{plen}", strict=False)
        area = area_id(t[4], "network area")
        for n in b.networks:
            if n.prefix == prefix:
                raise LineError(f"network {prefix}: already given at line {n.line}")
        b.networks.append(OspfNetwork(prefix, area, line))
    elif t[0] == "passive-interface":
        if t[1:] == ["default"]:
            b.passive_default = True
        else:
            b.passive.append((interface_name(" ".join(t[1:]) or None, "passive-interface"), line))
    elif t[:2] == ["no", "passive-interface"]:
        b.not_passive.append((interface_name(" ".join(t[2:]) or None, "no passive-interface"), line))
    elif t[0] == "redistribute":
        b.redistribute.add(_redistribute(t, ("subnets", "metric-type", "metric", "tag", "1", "2")))
    elif t[:2] == ["default-information", "originate"]:
        b.default_originate = True
    elif any(tuple(t[: len(p)]) == p for p in OSPF_IGNORED):
        return "ignored"
    else:
        return "unknown"
    return "ok"


def _redistribute(t: list[str], options: tuple[str, ...]) -> str:
    """``redistribute connected|static [options]``: the source."""
    source = t[1] if len(t) > 1 else None
    if source not in ("connected", "static"):
        raise LineError(f"redistribute: only 'connected' and 'static' are supported, got '{source or ''}'")
    for word in t[2:]:
        if not word.isdigit() and word not in options:
            raise LineError(f"redistribute {source}: unexpected '{word}'")
    return source


# -- router bgp -------------------------------------------------------------

@dataclass
class NeighborBuilder:
    name: str
    line: int
    is_group: bool = False
    remote_as: int | None = None
    peer_group: tuple[str, int] | None = None
    update_source: str | None = None
    rr_client: bool = False
    next_hop_self: bool = False
    timers: tuple[int, int] | None = None
    description: str | None = None


@dataclass
class BgpBuilder:
    asn: int
    line: int
    seen: Settings = field(default_factory=Settings)
    router_id: IPv4Address | None = None
    neighbors: dict[str, NeighborBuilder] = field(default_factory=dict)
    listen: list[tuple[BgpListenRange, int]] = field(default_factory=list)
    listen_limit: int | None = None
    networks: list[tuple[IPv4Network, int]] = field(default_factory=list)
    redistribute: set[str] = field(default_factory=set)


def _is_address(token: str) -> bool:
    return token.count(".") == 3 and all(p.isdigit() for p in token.split("."))


def bgp_line(b: BgpBuilder, t: list[str], line: int) -> str:
    """One line of ``router bgp ASN`` (``address-family ipv4`` sub-blocks
    included: their lines mean the same here)."""
    if t[:2] == ["bgp", "router-id"]:
        b.seen.once("bgp router-id", line)
        b.router_id = ipv4(t[2] if len(t) == 3 else None, "bgp router-id")
    elif t[:3] == ["bgp", "listen", "range"]:
        if len(t) != 6 or t[4] != "peer-group":
            raise LineError("bgp listen range: expected 'bgp listen range PREFIX/LENGTH peer-group NAME'")
        b.listen.append((BgpListenRange(_slash_prefix(t[3], "bgp listen range"), t[5], line), line))
    elif t[:3] == ["bgp", "listen", "limit"]:
        b.listen_limit = integer(t[3] if len(t) == 4 else None, 1, 5000, "bgp listen limit")
    elif t[0] == "neighbor":
        _neighbor(b, t, line)
    elif t[0] == "network":
        b.networks.append((_bgp_network(t), line))
    elif t[0] == "redistribute":
        b.redistribute.add(_redistribute(t, ("metric", "route-map")))
    elif any(tuple(t[: len(p)]) == p for p in BGP_IGNORED):
        return "ignored"
    else:
        return "unknown"
    return "ok"


def _slash_prefix(token: str, what: str) -> IPv4Network:
    address, _, length = token.partition("/")
    plen = integer(length or None, 0, 32, f"{what} prefix length")
    ip = ipv4(address, what)
    net = IPv4Network(f"{ip}/{plen}", strict=False)
    if net.network_address != ip:
        raise LineError(f"{what}: {token} has host bits set (expected {net})")
    return net


def _bgp_network(t: list[str]) -> IPv4Network:
    """``network ADDRESS [mask MASK]``: without a mask, the classful network."""
    if len(t) == 4 and t[2] == "mask":
        return network(t[1], t[3], "network")
    if len(t) != 2:
        raise LineError("network: expected 'network ADDRESS [mask MASK]'")
    ip = ipv4(t[1], "network")
    first = int(ip) >> 24
    length = 8 if first < 128 else 16 if first < 192 else 24
    net = IPv4Network(f"{ip}/{length}", strict=False)
    if net.network_address != ip:
        raise LineError(f"network {ip}: not a classful network; give 'mask MASK'")
    return net


def _neighbor(b: BgpBuilder, t: list[str], line: int) -> None:
    if len(t) < 3:
        raise LineError("neighbor: expected 'neighbor ADDRESS|PEER-GROUP COMMAND ...'")
    name, cmd, args = t[1], t[2], t[3:]
    if cmd == "peer-group" and not args:  # defines a group
        if _is_address(name):
            raise LineError(f"neighbor {name} peer-group: a peer group needs a name, not an address")
        if name in b.neighbors:
            raise LineError(f"neighbor {name} peer-group: already defined at line {b.neighbors[name].line}")
        b.neighbors[name] = NeighborBuilder(name, line, is_group=True)
        return
    n = b.neighbors.get(name)
    if n is None:
        if not _is_address(name):
            raise LineError(f"neighbor {name}: not an address and no 'neighbor {name} peer-group' before it")
        ipv4(name, "neighbor address")
        if cmd not in ("remote-as", "peer-group"):
            raise LineError(f"neighbor {name} {cmd}: configure 'neighbor {name} remote-as ASN' first")
        n = b.neighbors[name] = NeighborBuilder(name, line)
    if cmd == "remote-as":
        n.remote_as = asn(args[0] if len(args) == 1 else None, f"neighbor {name} remote-as")
    elif cmd == "peer-group":
        if len(args) != 1 or n.is_group:
            raise LineError(f"neighbor {name} peer-group: expected one peer group name")
        n.peer_group = (args[0], line)
    elif cmd == "update-source":
        n.update_source = interface_name(" ".join(args) or None, f"neighbor {name} update-source")
    elif cmd == "route-reflector-client" and not args:
        n.rr_client = True
    elif cmd == "next-hop-self" and args in ([], ["all"]):
        n.next_hop_self = True
    elif cmd == "timers":
        if len(args) not in (2, 3):
            raise LineError(f"neighbor {name} timers: expected KEEPALIVE HOLDTIME")
        keepalive = integer(args[0], 0, 65535, f"neighbor {name} timers keepalive")
        hold = integer(args[1], 0, 65535, f"neighbor {name} timers holdtime")
        if hold and hold < 3:  # RFC 4271 section 4.2: zero or at least three seconds
            raise LineError(f"neighbor {name} timers: holdtime {hold} must be 0 or at least 3 seconds")
        n.timers = (keepalive, hold)
    elif cmd == "description":
        n.description = " ".join(args)
    elif cmd in ("activate", "send-community", "soft-reconfiguration", "password", "version", "fall-over",
                 "ebgp-multihop", "advertisement-interval", "shutdown"):
        pass  # accepted; FRR's defaults (ipv4 unicast activated) stand
    else:
        raise LineError(f"neighbor {name}: unknown option '{cmd}' (remote-as, peer-group, update-source, "
                        "route-reflector-client, next-hop-self, timers, description, activate)")


# -- second pass ------------------------------------------------------------

def build_routing(ospf: dict[int, OspfBuilder], interfaces: dict[str, OspfIfBuilder], bgp: BgpBuilder | None,
                  known_interfaces: set[str], error: Callable[[int, str], None],
                  warn: Callable[[int, str], None]) -> RoutingConfig:
    """Freeze the builders; report interface names that no ``interface``
    block defines, peer groups that are not defined, and neighbors with
    no AS."""
    processes = []
    for pid, b in sorted(ospf.items()):
        for name, line in b.passive + b.not_passive:
            if name not in known_interfaces:
                warn(line, f"passive-interface: interface {name} is not defined")
        processes.append(OspfProcess(
            pid, b.router_id, tuple(b.networks), b.passive_default, tuple(n for n, _ in b.passive),
            tuple(n for n, _ in b.not_passive), "connected" in b.redistribute, "static" in b.redistribute,
            b.default_originate, b.line))
    implied = {ib.process: ib.line for ib in interfaces.values() if ib.process is not None and ib.process not in ospf}
    # IOS creates the process an ``ip ospf N area A`` line names: nothing to report
    processes += [OspfProcess(pid, line=line) for pid, line in implied.items()]
    return RoutingConfig(tuple(sorted(processes, key=lambda p: p.process_id)),
                         {name: b.freeze() for name, b in interfaces.items()},
                         _bgp(bgp, known_interfaces, error) if bgp else None)


def _bgp(b: BgpBuilder, known: set[str], error: Callable[[int, str], None]) -> BgpProcess:
    groups = {name for name, n in b.neighbors.items() if n.is_group}
    neighbors = []
    for n in b.neighbors.values():
        if n.peer_group and n.peer_group[0] not in groups:
            error(n.peer_group[1], f"neighbor {n.name} peer-group: peer group '{n.peer_group[0]}' is not defined")
            continue
        group_as = b.neighbors[n.peer_group[0]].remote_as if n.peer_group and n.peer_group[0] in groups else None
        if not n.is_group and n.remote_as is None and group_as is None:
            error(n.line, f"neighbor {n.name}: no remote-as (neither its own nor its peer group's)")
        if n.update_source and n.update_source not in known:
            error(n.line, f"neighbor {n.name} update-source: interface {n.update_source} is not defined")
        keepalive, hold = n.timers if n.timers else (None, None)
        neighbors.append(BgpNeighbor(n.name, n.is_group, n.remote_as, n.peer_group[0] if n.peer_group else None,
                                     n.update_source, n.rr_client, n.next_hop_self, keepalive, hold,
                                     n.description, n.line))
    for r, line in b.listen:
        if r.peer_group not in groups:
            error(line, f"bgp listen range: peer group '{r.peer_group}' is not defined")
        elif b.neighbors[r.peer_group].remote_as is None:
            error(line, f"bgp listen range: peer group '{r.peer_group}' has no remote-as")
    return BgpProcess(b.asn, b.router_id, tuple(neighbors), tuple(r for r, _ in b.listen), b.listen_limit,
                      tuple(dict.fromkeys(n for n, _ in b.networks)), "connected" in b.redistribute,
                      "static" in b.redistribute, b.line)

