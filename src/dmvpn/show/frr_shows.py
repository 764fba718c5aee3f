"""``show ip ospf neighbor``, ``show ip route`` and ``show ip bgp summary``
in IOS-XE form, rendered from FRR's JSON (``vtysh -c '... json'``) so that
genieparser's iosxe parsers read them.

Interfaces are printed under their IOS names (``tun0`` -> ``Tunnel0``)
through a Linux -> IOS map; FRR's states and timers are turned into IOS's
words (``Full/DROther`` -> ``FULL/DROTHER``, RFC 2328 section 10.1 states;
RFC 4271 section 8.2.2 BGP states, ``Established`` printing the prefix
count).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from dmvpn.show import ip_route
from dmvpn.show.iosfmt import hms, uptime_text
from dmvpn.show.views import IpRouteView, RouteView

INVALID_INPUT = "% Invalid input detected at '^' marker."

#: Our command -> the FRR command whose JSON answers it.
FRR_COMMANDS = {
    "ip-ospf-neighbor": "show ip ospf neighbor",
    "ip-route": "show ip route",
    "ip-bgp-summary": "show ip bgp summary",
}
_GRAMMAR = {
    ("show", "ip", "ospf", "neighbor"): "ip-ospf-neighbor",
    ("show", "ip", "route"): "ip-route",
    ("show", "ip", "bgp", "summary"): "ip-bgp-summary",
}


class UnknownShow(Exception):
    """Not one of the commands answered from FRR; ``str()`` is IOS's error."""


def parse(command: str) -> str:
    """The command key of ``command`` (IOS abbreviations: ``sh ip os nei``);
    raises :class:`UnknownShow`."""
    words = command.lower().split()
    if words[:1] != ["show"] and words[:1] and "show".startswith(words[0]):
        words[0] = "show"
    matches = [key for key, name in _GRAMMAR.items()
               if len(key) == len(words) and all(k.startswith(w) for k, w in zip(key, words, strict=True))]
    if len(matches) != 1:
        raise UnknownShow(INVALID_INPUT)
    return _GRAMMAR[matches[0]]


def is_frr_show(command: str) -> bool:
    """``command`` is one of :data:`FRR_COMMANDS` (in any abbreviation)."""
    try:
        parse(command)
    except UnknownShow:
        return False
    return True


#: FRR network types whose neighbors have a DR role (RFC 2328 section 9.4:
#: only broadcast and NBMA networks elect one); on the others IOS prints ``-``.
_DR_TYPES = frozenset({"BROADCAST", "NBMA"})


def render(which: str, data: Any, names: Mapping[str, str], interfaces: Mapping[str, Any] | None = None) -> str:
    """IOS text for command key ``which`` from FRR's JSON ``data``;
    ``interfaces`` is FRR's ``show ip ospf interface json`` (for the
    network types, which decide whether a neighbor has a DR role)."""
    if which == "ip-ospf-neighbor":
        return ospf_neighbors(data, names, interfaces or {})
    if which == "ip-route":
        return ip_route.render_text(route_view(data, names))
    return bgp_summary(data)


def _ios_name(frr_ifname: str, names: Mapping[str, str]) -> str:
    linux = frr_ifname.split(":", 1)[0]  # FRR prints "tun0:10.2.2.1"
    return names.get(linux, linux)


# -- show ip ospf neighbor ----------------------------------------------------

_OSPF_STATES = {"full": "FULL", "2-way": "2WAY", "init": "INIT", "down": "DOWN", "attempt": "ATTEMPT",
                "exstart": "EXSTART", "exchange": "EXCHANGE", "loading": "LOADING", "depend": "DEPEND",
                "deleted": "DELETED"}
_OSPF_ROLES = {"dr": "DR", "backup": "BDR", "bdr": "BDR", "drother": "DROTHER", "dr-other": "DROTHER"}


def ospf_state(frr_state: str, elects_dr: bool = True) -> str:
    """``Full/DROther`` -> ``FULL/DROTHER``; on a network without a DR
    (point-to-point, point-to-multipoint: FRR still says ``DROther``) IOS's
    ``FULL/  -``."""
    state, _, role = frr_state.partition("/")
    ios_state = _OSPF_STATES.get(state.lower(), state.upper())
    ios_role = _OSPF_ROLES.get(role.lower()) if role and role != "-" and elects_dr else None
    return f"{ios_state}/{ios_role}" if ios_role else f"{ios_state}/  -"


def ospf_neighbors(data: Mapping[str, Any], names: Mapping[str, str], interfaces: Mapping[str, Any]) -> str:
    """IOS-XE's table, one line per neighbor and interface."""
    types = {name: str(i.get("networkType", "BROADCAST"))
             for name, i in (interfaces.get("interfaces") or {}).items()}
    lines = ["", "Neighbor ID     Pri   State           Dead Time   Address         Interface"]
    rows = []
    for router_id, entries in (data.get("neighbors") or {}).items():
        for n in entries:
            dead = hms(round(int(n.get("deadTimeMsecs", n.get("routerDeadIntervalTimerDueMsec", 0))) / 1000))
            linux = str(n.get("ifaceName", "")).split(":", 1)[0]
            rows.append((router_id, int(n.get("nbrPriority", n.get("priority", 0))),
                         ospf_state(str(n.get("nbrState", n.get("state", ""))),
                                    types.get(linux, "BROADCAST") in _DR_TYPES), dead,
                         str(n.get("ifaceAddress", n.get("address", ""))),
                         _ios_name(str(n.get("ifaceName", "")), names)))
    for rid, pri, state, dead, address, iface in sorted(rows, key=lambda r: (r[5], _ip_key(r[0]))):
        lines.append(f"{rid:<15} {pri:>3}   {state:<15} {dead:<11} {address:<15} {iface}")
    return "\n".join(lines) + "\n"


def _ip_key(address: str) -> tuple[int, ...]:
    return tuple(int(p) for p in address.split(".")) if re.fullmatch(r"[\d.]+", address) else (1 << 32,)


# -- show ip route -------------------------------------------------------------

#: FRR protocol -> (IOS code, genieparser's source_protocol).
_PROTOCOLS = {
    "connected": ("C", "connected"),
    "local": ("L", "local"),
    "static": ("S", "static"),
    "kernel": ("S", "static"),  # routes the router daemon put into the kernel
    "ospf": ("O", "ospf"),
    "bgp": ("B", "bgp"),
    "nhrp": ("H", "nhrp"),
    "rip": ("R", "rip"),
    "isis": ("i", "isis"),
    "eigrp": ("D", "eigrp"),
}


def _age(text: str | None) -> int | None:
    """FRR's ``hh:mm:ss`` / ``XdYYhZZm`` / ``XwYdZZh`` uptime in seconds."""
    if not text:
        return None
    if m := re.fullmatch(r"(\d+):(\d+):(\d+)", text):
        h, mi, s = map(int, m.groups())
        return h * 3600 + mi * 60 + s
    total = 0
    for amount, unit in re.findall(r"(\d+)([wdhm])", text):
        total += int(amount) * {"w": 604800, "d": 86400, "h": 3600, "m": 60}[unit]
    return total or None


def route_view(data: Mapping[str, Any], names: Mapping[str, str]) -> IpRouteView:
    """The selected route of each prefix (what IOS lists), its first active
    next hop; ECMP siblings beyond the first are not printed."""
    routes = []
    gateway = None
    for prefix, entries in data.items():
        chosen = [e for e in entries if e.get("selected")]
        if not chosen:
            continue
        e = chosen[0]
        code, protocol = _PROTOCOLS.get(str(e.get("protocol")), ("S", "static"))
        hops = [h for h in e.get("nexthops", []) if h.get("active", True)] or e.get("nexthops", [])
        hop = hops[0] if hops else {}
        network, _, length = prefix.partition("/")
        iface = _ios_name(str(hop["interfaceName"]), names) if hop.get("interfaceName") else None
        next_hop = None if hop.get("directlyConnected") or code == "C" else hop.get("ip")
        if network == "0.0.0.0" and length == "0" and next_hop:
            gateway = next_hop
        routes.append(RouteView(network, int(length), code, protocol, int(e.get("distance", 0)),
                                int(e.get("metric", 0)), next_hop, iface,
                                candidate_default=network == "0.0.0.0" and length == "0",
                                age_sec=_age(e.get("uptime")) if next_hop else None))
    routes.sort(key=lambda r: (_ip_key(r.network), r.prefix_length))
    return IpRouteView(tuple(routes), gateway)


# -- show ip bgp summary --------------------------------------------------------

def bgp_summary(data: Mapping[str, Any]) -> str:
    """IOS's summary: router identifier, table version, the neighbor table
    (``*`` marks a neighbor created by ``bgp listen range``)."""
    af = data.get("ipv4Unicast") or {}
    if not af:
        return "% BGP not active\n"
    lines = [f"BGP router identifier {af.get('routerId')}, local AS number {af.get('as')}",
             f"BGP table version is {af.get('tableVersion', 0)}, main routing table version "
             f"{af.get('tableVersion', 0)}"]
    rib = int(af.get("ribCount", 0))
    lines.append(f"{rib} network entries using {af.get('ribMemory', 0)} bytes of memory")
    lines.append("")
    lines.append("Neighbor        V           AS MsgRcvd MsgSent   TblVer  InQ OutQ Up/Down  State/PfxRcd")
    dynamic = 0
    peers = af.get("peers") or {}
    for address in sorted(peers, key=_ip_key):
        p = peers[address]
        star = "*" if p.get("dynamicPeer") else ""
        dynamic += bool(star)
        state = str(p.get("state", "Idle"))
        shown = str(p.get("pfxRcd", 0)) if state == "Established" else _bgp_state(state)
        if state == "Established" or p.get("connectionsEstablished"):
            up = uptime_text(int(p.get("peerUptimeMsec", 0)) // 1000)
        else:
            up = "never"
        lines.append(f"{star + address:<15} {p.get('version', 4):<1} {p.get('remoteAs', 0):>12} "
                     f"{p.get('msgRcvd', 0):>7} {p.get('msgSent', 0):>7} {p.get('tableVersion', 0):>8} "
                     f"{p.get('inq', 0):>4} {p.get('outq', 0):>4} {up:<8} {shown}")
    if dynamic:
        lines += ["* Dynamically created based on a listen range command",
                  f"Dynamically created neighbors: {dynamic}, Subnet ranges: {af.get('peerGroupCount', 1)}"]
    return "\n".join(lines) + "\n"


def _bgp_state(state: str) -> str:
    """FRR's state names as IOS prints them (``Idle (Admin)`` for a shut peer)."""
    return {"Idle (Admin)": "Idle (Admin)", "Active": "Active", "Connect": "Connect",
            "OpenSent": "OpenSent", "OpenConfirm": "OpenConfirm"}.get(state, "Idle")
