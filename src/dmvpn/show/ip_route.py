"""``show ip route``: the IPv4 routing table as IOS 15 / IOS-XE prints it,
and as JSON (genieparser's ``ShowIpRoute`` schema).

IOS groups routes under their classful network (RFC 791 classes A, B and
C): the subnets of a class network, and the class network itself when it
has subnets, sit under a header (``10.0.0.0/8 is variably subnetted, 3
subnets, 2 masks``, or ``10.0.0.0/24 is subnetted, 2 subnets`` when they
share one mask, and then print no mask of their own); other routes print
at the top level. Each line is a six-column code field (code, sub-code,
flag), three more columns of indent under a header, then the prefix and
``[distance/metric] via NEXTHOP`` or ``is directly connected, IFACE``.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from dmvpn.show.iosfmt import uptime_text
from dmvpn.show.views import IpRouteView, RouteView

LEGEND = (
    "Codes: L - local, C - connected, S - static, R - RIP, M - mobile, B - BGP",
    "       D - EIGRP, EX - EIGRP external, O - OSPF, IA - OSPF inter area",
    "       N1 - OSPF NSSA external type 1, N2 - OSPF NSSA external type 2",
    "       E1 - OSPF external type 1, E2 - OSPF external type 2",
    "       i - IS-IS, su - IS-IS summary, L1 - IS-IS level-1, L2 - IS-IS level-2",
    "       ia - IS-IS inter area, * - candidate default, U - per-user static route",
    "       o - ODR, P - periodic downloaded static route, H - NHRP, l - LISP",
    "       a - application route",
    "       + - replicated route, % - next hop override, p - overrides from PfR",
)
#: Columns of the code field, and the extra indent of a subnet line.
CODE_WIDTH = 6
SUBNET_INDENT = 3
#: Routes IOS prints with their age (learnt, not configured): NHRP, and
#: OSPF and BGP when FRR answers (:mod:`dmvpn.show.frr_shows`).
_DYNAMIC = frozenset({"H", "O", "B"})


def classful(address: ipaddress.IPv4Address) -> ipaddress.IPv4Network:
    """The class A/B/C network holding ``address`` (RFC 791 section 3.2);
    class D/E addresses are their own /32."""
    first = int(address) >> 24
    length = 8 if first < 128 else 16 if first < 192 else 24 if first < 224 else 32
    return ipaddress.IPv4Network(f"{address}/{length}", strict=False)


def _network(route: RouteView) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(f"{route.network}/{route.prefix_length}")


def _groups(routes: tuple[RouteView, ...]) -> list[tuple[ipaddress.IPv4Network | None, list[RouteView]]]:
    """Routes in print order, each group under its class network (None: top level)."""
    by_major: dict[ipaddress.IPv4Network, list[RouteView]] = {}
    for route in routes:
        by_major.setdefault(classful(ipaddress.IPv4Address(route.network)), []).append(route)
    out: list[tuple[ipaddress.IPv4Network | None, list[RouteView]]] = []
    for major, members in sorted(by_major.items(), key=lambda kv: int(kv[0].network_address)):
        subnets = [r for r in members if r.prefix_length > major.prefixlen]
        grouped = [r for r in members if r.prefix_length >= major.prefixlen] if subnets else []
        for route in members:
            if route not in grouped:
                out.append((None, [route]))
        if grouped:
            out.append((major, grouped))
    return out


def _code_field(route: RouteView) -> str:
    code = route.code + ("*" if route.candidate_default else "")
    return f"{code:<4}{'%' if route.override else ''}".ljust(CODE_WIDTH)


def _body(route: RouteView, with_mask: bool) -> str:
    prefix = f"{route.network}/{route.prefix_length}" if with_mask else route.network
    if route.next_hop is None:
        return f"{prefix} is directly connected, {route.interface}"
    text = f"{prefix} [{route.distance}/{route.metric}] via {route.next_hop}"
    if route.age_sec is not None and route.code in _DYNAMIC:
        text += f", {uptime_text(route.age_sec)}"
    if route.interface is not None:
        text += f", {route.interface}"
    return text


def render_text(view: IpRouteView) -> str:
    """The whole ``show ip route`` output."""
    lines = [*LEGEND, ""]
    if view.gateway is None:
        lines.append("Gateway of last resort is not set")
    else:
        lines.append(f"Gateway of last resort is {view.gateway} to network 0.0.0.0")
    lines.append("")
    for major, members in _groups(view.routes):
        if major is None:
            route = members[0]
            lines.append(_code_field(route) + _body(route, True))
            continue
        masks = {r.prefix_length for r in members}
        if len(masks) == 1:
            header = f"{major.network_address}/{members[0].prefix_length} is subnetted, {len(members)} subnets"
        else:
            header = (f"{major} is variably subnetted, {len(members)} subnets, {len(masks)} masks")
        lines.append(" " * CODE_WIDTH + header)
        for route in members:
            lines.append(_code_field(route) + " " * SUBNET_INDENT + _body(route, len(masks) > 1))
    return "\n".join(lines) + "\n"


def render_json(view: IpRouteView) -> dict[str, Any]:
    """genieparser's ``ShowIpRoute`` schema (vrf default, ipv4), plus the
    override's next hop under ``next_hop_override``."""
    routes: dict[str, Any] = {}
    for route in view.routes:
        entry: dict[str, Any] = {
            "route": f"{route.network}/{route.prefix_length}",
            "active": True,
            "source_protocol": route.source_protocol,
            "source_protocol_codes": route.code + ("*" if route.candidate_default else "")
            + (" %" if route.override else ""),
        }
        if route.next_hop is None:
            entry["next_hop"] = {"outgoing_interface": {route.interface: {"outgoing_interface": route.interface}}}
        else:
            entry["route_preference"] = route.distance
            entry["metric"] = route.metric
            hop: dict[str, Any] = {"index": 1, "next_hop": route.next_hop}
            if route.interface is not None:
                hop["outgoing_interface"] = route.interface
            if route.age_sec is not None and route.code in _DYNAMIC:
                hop["updated"] = uptime_text(route.age_sec)
            entry["next_hop"] = {"next_hop_list": {"1": hop}}
        if route.override:
            entry["next_hop_override"] = {"next_hop": route.override_next_hop,
                                          "outgoing_interface": route.override_interface}
        routes[entry["route"]] = entry
    return {"vrf": {"default": {"address_family": {"ipv4": {"routes": routes}}}}}
