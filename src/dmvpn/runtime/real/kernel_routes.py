"""The kernel's routes into the tunnels' TUN devices, fed to the router.

A routing daemon on the host (FRR's zebra, for ``router ospf`` and ``router
bgp``: :mod:`dmvpn.runtime.real.frr`) installs what it learns over the
tunnel as kernel routes ``PREFIX via NEXTHOP dev <tun>``. A TUN carries no
link-layer next hop, so the kernel's choice of gateway does not reach the
daemon with the packet: the daemon reads the table itself and routes each
packet from the TUN by its own overlay table, where NHRP's shortcuts and
next-hop overrides sit on top of the learned routes (IOS does the same with
its RIB; opennhrp watches rtnetlink for the same reason).

:class:`KernelRouteWatcher` holds an rtnetlink socket subscribed to
``RTMGRP_IPV4_ROUTE`` (rtnetlink(7)) only as a wake-up: whatever arrives, it
is drained and the main table is dumped again (a handful of routes; no
message is parsed by hand, pyroute2 does the dump). Routes with protocol
``ospf`` (188) or ``bgp`` (186) out of one of the TUN devices become
:class:`~dmvpn.node.routing.Route` values with IOS's code and distance
(``O`` 110, ``B`` 20; the kernel's metric as the metric); other kernel
routes (the connected subnet, the daemon's own from ``ip route`` lines)
are already in the router's table from its configuration. Of a multipath
route the first next hop on a TUN is taken.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from dmvpn.node.routing import DEFAULT_DISTANCE, Route, RouteSource

#: rtnetlink multicast group of IPv4 route changes (linux/rtnetlink.h).
RTMGRP_IPV4_ROUTE = 0x40
#: The main routing table (RT_TABLE_MAIN).
RT_TABLE_MAIN = 254
#: rtm_protocol values zebra uses (linux/rtnetlink.h RTPROT_*).
PROTOCOLS = {186: RouteSource.BGP, 188: RouteSource.OSPF}

#: Called with the time and the learned routes whenever the kernel's table changed.
RouteSink = Callable[[float, list[Route]], None]


class KernelRouteWatcher:
    """Watches the kernel's IPv4 routes out of ``tuns`` (Linux device name
    -> the engine's interface name) and hands them to ``sink``."""

    def __init__(self, tuns: Mapping[str, str], sink: RouteSink) -> None:
        self.tuns = dict(tuns)
        self.sink = sink
        self.dumps = 0
        self._events = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                                     socket.NETLINK_ROUTE)
        try:
            self._events.bind((0, RTMGRP_IPV4_ROUTE))
        except BaseException:
            self._events.close()
            raise

    def fileno(self) -> int:
        return self._events.fileno()

    def readable(self, now: float) -> None:
        """Drain the notifications and hand the current routes to the sink."""
        while True:
            try:
                if not self._events.recv(65536):
                    break
            except BlockingIOError:
                break
            except OSError as exc:  # ENOBUFS: notifications were lost; the dump below catches up
                if exc.errno != errno.ENOBUFS:
                    raise
        self.refresh(now)

    def refresh(self, now: float) -> None:
        """Dump the main table and give the sink the learned routes (the dump
        socket is opened for it and closed again: the daemon holds one
        descriptor for the watch, not pyroute2's several)."""
        from pyroute2 import IPRoute

        self.dumps += 1
        with IPRoute() as ipr:
            index = {}
            for name, iface in self.tuns.items():
                found = ipr.link_lookup(ifname=name)
                if found:
                    index[found[0]] = iface
            routes = learned_routes(ipr.get_routes(family=socket.AF_INET, table=RT_TABLE_MAIN), index,
                                    lambda: _nexthops(ipr))
        self.sink(now, routes)

    def close(self) -> None:
        if self._events.fileno() >= 0:
            self._events.close()


def _nexthops(ipr: Any) -> dict[int, tuple[int | None, str | None]]:
    """Kernel nexthop objects (``ip nexthop``, what zebra installs routes
    with): id -> (oif, gateway), for routes that name one by ``RTA_NH_ID``
    without their own next hop."""
    out: dict[int, tuple[int | None, str | None]] = {}
    try:
        for nh in ipr.nh("dump"):
            out[nh.get_attr("NHA_ID")] = (nh.get_attr("NHA_OIF"), nh.get_attr("NHA_GATEWAY"))
    except Exception:  # an old kernel or pyroute2 without nexthop objects: such routes are skipped
        pass
    return out


def learned_routes(messages: Iterable[Any], tuns: Mapping[int, str],
                   nexthops: Callable[[], dict[int, tuple[int | None, str | None]]]) -> list[Route]:
    """The routes of rtnetlink ``messages`` (pyroute2 route messages) that
    a routing daemon installed through one of ``tuns`` (ifindex -> engine
    interface), as router routes, by prefix."""
    out: dict[ipaddress.IPv4Network, Route] = {}
    objects: dict[int, tuple[int | None, str | None]] | None = None
    for msg in messages:
        source = PROTOCOLS.get(msg["proto"])
        if source is None or msg.get_attr("RTA_TABLE", RT_TABLE_MAIN) != RT_TABLE_MAIN:
            continue
        hops = _hops(msg)
        if not hops and msg.get_attr("RTA_NH_ID") is not None:
            if objects is None:
                objects = nexthops()
            hop = objects.get(msg.get_attr("RTA_NH_ID"))
            hops = [hop] if hop is not None else []
        found = next(((tuns[oif], gw) for oif, gw in hops if oif is not None and oif in tuns), None)
        if found is None:
            continue
        prefix = ipaddress.IPv4Network(f"{msg.get_attr('RTA_DST') or '0.0.0.0'}/{msg['dst_len']}")
        interface, gateway = found
        out[prefix] = Route(prefix, source, interface, ipaddress.IPv4Address(gateway) if gateway else None,
                            DEFAULT_DISTANCE[source], msg.get_attr("RTA_PRIORITY") or 0)
    return [out[p] for p in sorted(out, key=lambda p: (int(p.network_address), p.prefixlen))]


def _hops(msg: Any) -> list[tuple[int | None, str | None]]:
    """(oif, gateway) of a route message: its one next hop, or each of a
    multipath route's (``RTA_MULTIPATH``)."""
    multipath = msg.get_attr("RTA_MULTIPATH")
    if multipath:
        return [(nh["oif"], nh.get_attr("RTA_GATEWAY")) for nh in multipath]
    oif = msg.get_attr("RTA_OIF")
    return [(oif, msg.get_attr("RTA_GATEWAY"))] if oif is not None else []
