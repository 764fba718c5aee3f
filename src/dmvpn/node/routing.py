"""The router's overlay routing table (the RIB of IOS ``show ip route``).

Routes come from three sources, each with IOS's administrative distance:

* connected (``C``, [0/0]): the subnet of every addressed, non-shutdown
  interface (physical, Loopback and tunnel), and the interface's own
  address as a ``L`` local /32 (IOS 15 and later; none for a /32 address,
  whose connected route is the host itself);
* static (``S``, [1/0] unless the line gives a distance): ``ip route P M
  NEXTHOP``, ``ip route P M IFACE`` and ``ip route P M IFACE NEXTHOP``;
* learned (``O`` [110/m] from OSPF, ``B`` [20/m] from BGP): in real mode,
  the routes a routing daemon on the host (FRR) installed in the kernel
  through the tunnel's TUN, replaced as a whole by
  :meth:`RoutingTable.set_learned` whenever the kernel's table changes;
* NHRP (``H``, [250/1]): routes the NHRP engine installs for resolved
  networks, through :meth:`RoutingTable.add_route` /
  :meth:`RoutingTable.remove_route`, and next-hop overrides (``%``, the
  shortcut of DMVPN phase 3: the route stays, the packets go to the
  resolved next hop) through :meth:`RoutingTable.set_override` /
  :meth:`RoutingTable.clear_override`.

For each prefix the candidate with the lowest distance that can be resolved
is installed; a route with only a next hop is resolved recursively through
the installed routes to an exit interface (IOS recursive static routes),
and is not installed while its next hop is unreachable. A lookup is the
longest matching installed prefix; its result, :class:`Forwarding`, names
the exit interface and the address to hand the packet to (the route's next
hop, the override's, or the destination itself on a connected network).

The data path asks :meth:`RoutingTable.lookup_packed` with the four
destination bytes of the IPv4 header; results are cached per destination
and the cache is dropped whenever the table changes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from dmvpn.config import RouterConfig
from dmvpn.nhrp.settings import RouteLookup

#: Recursive next-hop resolution gives up after this many steps (a loop).
MAX_RECURSION = 8
#: Cached lookups at most; the cache is emptied when it is full.
CACHE_SIZE = 65536


class RouteSource(Enum):
    """Where a route came from; the value is IOS's code in ``show ip route``."""

    CONNECTED = "C"
    LOCAL = "L"
    STATIC = "S"
    OSPF = "O"
    BGP = "B"
    NHRP = "H"


#: IOS administrative distances (Cisco "What Is Administrative Distance?").
DEFAULT_DISTANCE = {RouteSource.CONNECTED: 0, RouteSource.LOCAL: 0, RouteSource.STATIC: 1,
                    RouteSource.OSPF: 110, RouteSource.BGP: 20, RouteSource.NHRP: 250}
#: The sources :meth:`RoutingTable.set_learned` replaces.
LEARNED = (RouteSource.OSPF, RouteSource.BGP)
#: The metric IOS gives an NHRP route.
NHRP_METRIC = 1


@dataclass(frozen=True, slots=True)
class Route:
    """One candidate route: ``prefix`` via ``next_hop`` and/or out of
    ``interface`` (at least one of them), with its distance and metric.
    ``installed_at`` (virtual seconds) is the age IOS prints for dynamic
    routes (NHRP)."""

    prefix: ipaddress.IPv4Network
    source: RouteSource
    interface: str | None = None
    next_hop: ipaddress.IPv4Address | None = None
    distance: int = 0
    metric: int = 0
    installed_at: float | None = None

    @classmethod
    def nhrp(cls, prefix: ipaddress.IPv4Network, next_hop: ipaddress.IPv4Address, interface: str,
             now: float, metric: int = NHRP_METRIC) -> Route:
        """An NHRP route ([250/1] via the resolved overlay next hop on the tunnel)."""
        return cls(prefix, RouteSource.NHRP, interface, next_hop, DEFAULT_DISTANCE[RouteSource.NHRP], metric, now)


@dataclass(frozen=True, slots=True)
class NextHopOverride:
    """NHRP's next-hop override of the installed route for ``prefix``
    (IOS ``%``): packets matching that route go to ``next_hop`` out of
    ``interface`` instead."""

    prefix: ipaddress.IPv4Network
    next_hop: ipaddress.IPv4Address
    interface: str
    installed_at: float | None = None


@dataclass(frozen=True, slots=True)
class Forwarding:
    """What a lookup decides: leave by ``interface``, hand the packet to
    ``next_hop`` (dotted quad: the destination itself when it is on a
    connected network). ``route`` is the installed route that matched.
    ``shortcut``: an NHRP route or a next-hop override decided it, so the
    data path tells NHRP it is still used (decided once per destination,
    not per packet)."""

    interface: str
    next_hop: str
    route: Route
    shortcut: bool = False


@dataclass(frozen=True, slots=True)
class _Installed:
    """An installed route and how it resolved: exit interface and next hop
    (None: the destination is directly connected)."""

    route: Route
    interface: str
    next_hop: ipaddress.IPv4Address | None


class RoutingTable:
    """Connected, static and NHRP routes of one router, longest prefix first.

    ``interfaces`` maps each addressed, up interface to its address; those
    give the connected and local routes, and are the only exit interfaces
    a route can resolve to."""

    def __init__(self, interfaces: dict[str, ipaddress.IPv4Interface], static: Iterable[Route] = ()) -> None:
        self.interfaces = dict(interfaces)
        self._candidates: dict[tuple[ipaddress.IPv4Network, RouteSource], Route] = {}
        for name, address in self.interfaces.items():
            self._candidates[(address.network, RouteSource.CONNECTED)] = Route(
                address.network, RouteSource.CONNECTED, name)
            host = ipaddress.IPv4Network(f"{address.ip}/32")
            if host != address.network:
                self._candidates[(host, RouteSource.LOCAL)] = Route(host, RouteSource.LOCAL, name)
        for route in static:
            self._candidates[(route.prefix, route.source)] = route
        self._overrides: dict[ipaddress.IPv4Network, NextHopOverride] = {}
        self._installed: dict[ipaddress.IPv4Network, _Installed] = {}
        #: (prefix length, {network int: installed}) longest first
        self._by_length: list[tuple[int, int, dict[int, _Installed]]] = []
        self._cache: dict[bytes, Forwarding | None] = {}
        self._rebuild()

    @classmethod
    def from_config(cls, config: RouterConfig) -> RoutingTable:
        """The connected routes of ``config``'s interfaces and its ``ip route`` lines."""
        interfaces = {i.name: i.address for i in config.interfaces.values()
                      if i.address is not None and not i.shutdown}
        static = [Route(r.prefix, RouteSource.STATIC, r.interface, r.next_hop, r.distance) for r in config.routes]
        return cls(interfaces, static)

    # ------------------------------------------------------------ the API other engines call
    def add_route(self, route: Route) -> None:
        """Add ``route``, replacing the one with the same prefix and source."""
        self._candidates[(route.prefix, route.source)] = route
        self._rebuild()

    def remove_route(self, prefix: ipaddress.IPv4Network, source: RouteSource) -> bool:
        """Remove the route for ``prefix`` from ``source``; False if there was none."""
        if self._candidates.pop((prefix, source), None) is None:
            return False
        self._rebuild()
        return True

    def set_learned(self, routes: Iterable[Route]) -> bool:
        """Replace every learned (OSPF, BGP) route with ``routes``; False
        when nothing changed (the table is not rebuilt then)."""
        new = {(r.prefix, r.source): r for r in routes if r.source in LEARNED}
        old = {k: r for k, r in self._candidates.items() if r.source in LEARNED}
        if {k: _same_path(r) for k, r in new.items()} == {k: _same_path(r) for k, r in old.items()}:
            return False
        for key in old:
            del self._candidates[key]
        for key, route in new.items():  # an unchanged route keeps its age
            kept = old.get(key)
            self._candidates[key] = kept if kept is not None and _same_path(kept) == _same_path(route) else route
        self._rebuild()
        return True

    def set_override(self, override: NextHopOverride) -> None:
        """Install (or replace) the next-hop override for ``override.prefix``."""
        self._overrides[override.prefix] = override
        self._cache.clear()

    def clear_override(self, prefix: ipaddress.IPv4Network) -> bool:
        """Remove the override for ``prefix``; False if there was none."""
        if self._overrides.pop(prefix, None) is None:
            return False
        self._cache.clear()
        return True

    # ------------------------------------------------------------ lookups
    def lookup(self, destination: str | ipaddress.IPv4Address) -> Forwarding | None:
        """Where a packet to ``destination`` goes, or None (no route)."""
        return self.lookup_packed(ipaddress.IPv4Address(destination).packed)

    def lookup_packed(self, destination: bytes) -> Forwarding | None:
        """:meth:`lookup` for the four address bytes of an IPv4 header (the
        data path: cached per destination)."""
        cache = self._cache
        try:
            return cache[destination]
        except KeyError:
            pass
        result = self._resolve(destination)
        if len(cache) >= CACHE_SIZE:
            cache.clear()
        cache[destination] = result
        return result

    def route_for(self, address: ipaddress.IPv4Address) -> RouteLookup | None:
        """The NHRP engine's view (:class:`~dmvpn.nhrp.settings.RouteView`):
        the installed route matching ``address``, its resolved next hop (None
        when directly connected) and exit interface; overrides ignored. An
        interface's own address (its ``L`` /32) is answered with the
        interface's network: NHRP resolves the LAN behind a router, and the
        egress router answers with the LAN's prefix (NHRP.md 3.5 step 5)."""
        hop = self.lookup_packed(address.packed)
        if hop is None:
            return None
        interface, next_hop = self.forwarding_for(hop.route)
        if hop.route.source is RouteSource.LOCAL and interface in self.interfaces:
            return RouteLookup(self.interfaces[interface].network, None, interface)
        return RouteLookup(hop.route.prefix, next_hop, interface)

    def installed(self) -> list[Route]:
        """The installed routes (one per prefix), by address then prefix length."""
        return [self._installed[p].route for p in sorted(self._installed, key=_order)]

    def forwarding_for(self, route: Route) -> tuple[str, ipaddress.IPv4Address | None]:
        """(exit interface, next hop or None) an installed route resolved to."""
        entry = self._installed[route.prefix]
        return entry.interface, entry.next_hop

    def override_for(self, prefix: ipaddress.IPv4Network) -> NextHopOverride | None:
        return self._overrides.get(prefix)

    def routes_out_of(self, interface: str) -> list[tuple[ipaddress.IPv4Network, ipaddress.IPv4Address | None]]:
        """(prefix, next hop) of the installed non-connected routes leaving by
        ``interface`` (what the real runtime routes into a tunnel's TUN)."""
        return [(p, e.next_hop) for p, e in sorted(self._installed.items(), key=lambda kv: _order(kv[0]))
                if e.interface == interface and e.route.source not in (RouteSource.CONNECTED, RouteSource.LOCAL)]

    # ------------------------------------------------------------ internals
    def _resolve(self, destination: bytes) -> Forwarding | None:
        dst = int.from_bytes(destination, "big")
        for _length, mask, nets in self._by_length:
            entry = nets.get(dst & mask)
            if entry is None:
                continue
            override = self._overrides.get(entry.route.prefix)
            if override is not None:
                return Forwarding(override.interface, str(override.next_hop), entry.route, shortcut=True)
            hop = entry.next_hop
            return Forwarding(entry.interface, str(hop) if hop is not None else str(ipaddress.IPv4Address(dst)),
                              entry.route, shortcut=entry.route.source is RouteSource.NHRP)
        return None

    def _rebuild(self) -> None:
        """Choose and resolve the installed route of every prefix."""
        self._cache.clear()
        by_prefix: dict[ipaddress.IPv4Network, list[Route]] = {}
        for route in self._candidates.values():
            by_prefix.setdefault(route.prefix, []).append(route)
        for routes in by_prefix.values():
            routes.sort(key=lambda r: (r.distance, r.metric, r.source.value))
        installed: dict[ipaddress.IPv4Network, _Installed] = {}
        # routes with an exit interface first, then next-hop routes in
        # passes until nothing more resolves (recursion through other routes)
        for _pass in range(MAX_RECURSION):
            changed = False
            for prefix, routes in by_prefix.items():
                current = installed.get(prefix)
                for route in routes:
                    if current is not None and current.route is route:
                        break
                    entry = self._install(route, installed)
                    if entry is not None:
                        if current is None or (route.distance, route.metric) < (current.route.distance,
                                                                               current.route.metric):
                            installed[prefix] = entry
                            changed = True
                        break
            if not changed:
                break
        self._installed = installed
        lengths: dict[int, dict[int, _Installed]] = {}
        for prefix, entry in installed.items():
            lengths.setdefault(prefix.prefixlen, {})[int(prefix.network_address)] = entry
        self._by_length = [(n, int(ipaddress.IPv4Network(f"0.0.0.0/{n}").hostmask) ^ 0xFFFFFFFF, nets)
                           for n, nets in sorted(lengths.items(), reverse=True)]

    def _install(self, route: Route, installed: dict[ipaddress.IPv4Network, _Installed]) -> _Installed | None:
        """How ``route`` resolves against the routes installed so far, or None."""
        if route.interface is not None:
            if route.interface not in self.interfaces:
                return None  # the exit interface is down or has no address
            return _Installed(route, route.interface, route.next_hop)
        if route.next_hop is None:
            return None
        via = _longest(installed, route.next_hop, exclude=route.prefix)
        if via is None:
            return None
        # the next hop is on a connected network, or behind another route's next hop
        return _Installed(route, via.interface, route.next_hop if via.next_hop is None else via.next_hop)


def _longest(installed: dict[ipaddress.IPv4Network, _Installed], address: ipaddress.IPv4Address,
             exclude: ipaddress.IPv4Network) -> _Installed | None:
    best: _Installed | None = None
    for prefix, entry in installed.items():
        if prefix != exclude and address in prefix and (best is None or prefix.prefixlen > best.route.prefix.prefixlen):
            best = entry
    return best


def _same_path(route: Route) -> tuple[str | None, ipaddress.IPv4Address | None, int, int]:
    """What makes two learned routes for one prefix the same (not their age)."""
    return route.interface, route.next_hop, route.distance, route.metric


def _order(prefix: ipaddress.IPv4Network) -> tuple[int, int]:
    return int(prefix.network_address), prefix.prefixlen
