"""The lines of an ``interface`` block (``ip ospf ...`` lines go to
:mod:`dmvpn.config.routing_cmds`): addressing, ``tunnel ...`` (GRE,
RFC 2784/2890; multipoint GRE for DMVPN) and ``ip nhrp ...`` (RFC 2332 as
Cisco configures it)."""

from __future__ import annotations

from dmvpn.config.builders import InterfaceBuilder
from dmvpn.config.model import NhrpMap, NhrpServer, TunnelMode
from dmvpn.config.values import LineError, integer, interface_address, interface_name, ipv4

#: Interface lines IOS accepts that do not change what this stack does.
IGNORED: tuple[tuple[str, ...], ...] = (
    ("description",),
    ("bandwidth",),
    ("load-interval",),
    ("no",),
    ("ip", "nbar"),
    ("ip", "tcp"),
    ("ip", "pim"),
    ("ip", "igmp"),
    ("ip", "flow"),
    ("ip", "virtual-reassembly"),
    ("ip", "virtual-reassembly-out"),
    ("ip", "nat"),
    ("ip", "policy"),
    ("ip", "helper-address"),
    ("ip", "summary-address"),
    ("ip", "hello-interval"),
    ("ip", "hold-time"),
    ("ip", "authentication"),
    ("ip", "verify"),
    ("ip", "access-group"),
    ("ip", "mroute-cache"),
    ("ip", "route-cache"),
    ("ip", "redirects"),
    ("ip", "unreachables"),
    ("ip", "proxy-arp"),
    ("ip", "split-horizon"),
    ("ip", "next-hop-self"),
    ("ipv6",),
    ("tunnel", "path-mtu-discovery"),
    ("tunnel", "bandwidth"),
    ("negotiation",),
    ("duplex",),
    ("speed",),
    ("media-type",),
    ("cdp",),
    ("keepalive",),
    ("service-policy",),
    ("delay",),
    ("mtu",),
    ("logging",),
    ("standby",),
    ("vrrp",),
    ("arp",),
    ("mpls",),
    ("snmp",),
    ("carrier-delay",),
    ("channel-group",),
    ("lldp",),
    ("zone-member",),
    ("hold-queue",),
    ("shape",),
)


def _nhrp(b: InterfaceBuilder, t: list[str], line: int) -> bool:
    """``ip nhrp ...``; returns False for an ``ip nhrp`` line we do not know."""
    sub = t[2] if len(t) > 2 else None
    if sub == "network-id":
        b.seen.once("ip nhrp network-id", line)
        b.nhrp_network_id = integer(t[3] if len(t) > 3 else None, 1, 4294967295, "ip nhrp network-id")
    elif sub == "holdtime":
        b.seen.once("ip nhrp holdtime", line)
        b.nhrp_holdtime = integer(t[3] if len(t) > 3 else None, 1, 65535, "ip nhrp holdtime (seconds)")
    elif sub == "authentication":
        b.seen.once("ip nhrp authentication", line)
        if len(t) != 4 or len(t[3]) > 8:
            raise LineError("ip nhrp authentication: expected one string of at most 8 characters")
        b.nhrp_authentication = t[3]
    elif sub == "redirect" and len(t) == 3:
        b.nhrp_redirect = True
    elif sub == "redirect" and t[3] == "timeout":
        b.seen.once("ip nhrp redirect timeout", line)
        b.nhrp_redirect = True
        b.nhrp_redirect_timeout = integer(t[4] if len(t) == 5 else None, 2, 30, "ip nhrp redirect timeout (seconds)")
    elif sub == "shortcut" and len(t) == 3:
        b.nhrp_shortcut = True
    elif sub == "responder":
        b.seen.once("ip nhrp responder", line)
        b.nhrp_responder = interface_name(" ".join(t[3:]) or None, "ip nhrp responder")
    elif sub == "map":
        _nhrp_map(b, t, line)
    elif sub == "nhs":
        _nhrp_nhs(b, t, line)
    elif sub == "registration" and len(t) > 3 and t[3] == "timeout":
        b.seen.once("ip nhrp registration timeout", line)
        b.nhrp_registration_timeout = integer(t[4] if len(t) > 4 else None, 1, 65535, "ip nhrp registration timeout")
    elif sub == "registration" and t[3:] == ["no-unique"]:
        b.nhrp_registration_no_unique = True
    else:
        return False
    b.has_nhrp_lines = True
    return True


def _nhrp_map(b: InterfaceBuilder, t: list[str], line: int) -> None:
    """``ip nhrp map OVERLAY NBMA`` | ``ip nhrp map multicast {NBMA|dynamic}``."""
    if len(t) == 5 and t[3] == "multicast":
        if t[4] == "dynamic":
            b.nhrp_multicast_dynamic = True
        else:
            nbma = ipv4(t[4], "ip nhrp map multicast NBMA address")
            if nbma in b.nhrp_multicast:
                raise LineError(f"ip nhrp map multicast: duplicate NBMA address {nbma}")
            b.nhrp_multicast.append(nbma)
        return
    if len(t) != 5:
        raise LineError("ip nhrp map: expected OVERLAY-ADDRESS NBMA-ADDRESS or multicast {NBMA|dynamic}")
    overlay = ipv4(t[3], "ip nhrp map overlay address")
    nbma = ipv4(t[4], "ip nhrp map NBMA address")
    for m in b.nhrp_maps:
        if m.overlay == overlay:
            raise LineError(f"ip nhrp map: {overlay} is already mapped at line {m.line}")
    b.nhrp_maps.append(NhrpMap(overlay, nbma, line))


def _nhrp_nhs(b: InterfaceBuilder, t: list[str], line: int) -> None:
    """``ip nhrp nhs {ADDR|dynamic} [nbma NBMA] [multicast] [priority P]
    [cluster C]``."""
    if len(t) < 4:
        raise LineError("ip nhrp nhs: expected an NHS address or 'dynamic'")
    address = None if t[3] == "dynamic" else ipv4(t[3], "ip nhrp nhs address")
    nbma = None
    multicast = False
    priority = 0
    i = 4
    while i < len(t):
        opt = t[i]
        if opt == "nbma":
            nbma = ipv4(t[i + 1] if i + 1 < len(t) else None, "ip nhrp nhs nbma")
            i += 2
        elif opt == "multicast":
            multicast = True
            i += 1
        elif opt == "priority":
            priority = integer(t[i + 1] if i + 1 < len(t) else None, 0, 255, "ip nhrp nhs priority")
            i += 2
        elif opt == "cluster":
            integer(t[i + 1] if i + 1 < len(t) else None, 0, 10, "ip nhrp nhs cluster")
            i += 2
        else:
            raise LineError(f"ip nhrp nhs: unexpected '{opt}', expected nbma A, multicast, priority N or cluster N")
    if address is None and nbma is None:
        raise LineError("ip nhrp nhs dynamic: needs 'nbma ADDRESS'")
    for s in b.nhrp_nhs:
        if s.address == address and s.nbma == nbma:
            raise LineError(f"ip nhrp nhs: duplicate of line {s.line}")
    b.nhrp_nhs.append(NhrpServer(address, nbma, multicast, priority, line))


def _tunnel(b: InterfaceBuilder, t: list[str], line: int) -> bool:
    """``tunnel ...``; returns False for a tunnel line we do not know."""
    sub = t[1] if len(t) > 1 else None
    if sub not in ("source", "destination", "key", "mode", "protection"):
        return False
    if not b.is_tunnel:
        raise LineError(f"'tunnel {sub}' is only valid on a Tunnel interface, not {b.name}")
    b.has_tunnel_lines = True
    if sub == "source":
        b.seen.once("tunnel source", line)
        if len(t) < 3:
            raise LineError("tunnel source: expected an interface name or an IPv4 address")
        b.tunnel_source = (" ".join(t[2:]), line)
    elif sub == "destination":
        b.seen.once("tunnel destination", line)
        if len(t) != 3:
            raise LineError("tunnel destination: expected one IPv4 address")
        b.tunnel_destination = ipv4(t[2], "tunnel destination")
        b.tunnel_destination_line = line
    elif sub == "key":
        b.seen.once("tunnel key", line)
        if len(t) != 3:
            raise LineError("tunnel key: expected one number 0-4294967295")
        b.tunnel_key = integer(t[2], 0, 4294967295, "tunnel key")
    elif sub == "mode":
        b.seen.once("tunnel mode", line)
        words = " ".join(t[2:])
        if words in ("gre ip", "gre"):
            b.tunnel_mode = TunnelMode.GRE_IP
        elif words == "gre multipoint":
            b.tunnel_mode = TunnelMode.GRE_MULTIPOINT
        else:
            raise LineError(f"tunnel mode '{words}' is not supported, expected 'gre ip' or 'gre multipoint'")
    else:
        b.seen.once("tunnel protection", line)
        if len(t) not in (5, 6) or t[2:4] != ["ipsec", "profile"] or (len(t) == 6 and t[5] != "shared"):
            raise LineError("tunnel protection: expected 'ipsec profile NAME [shared]'")
        b.protection = (t[4], line)
        b.protection_shared = len(t) == 6
    return True


def interface_line(b: InterfaceBuilder, t: list[str], line: int) -> str:
    """Apply one interface line. Returns "ok", "ignored" or "unknown"."""
    if t[0] == "ip" and len(t) > 1 and t[1] == "address":
        if len(t) == 5 and t[4] == "secondary":
            return "secondary"
        b.seen.once("ip address", line)
        if len(t) != 4:
            raise LineError("ip address: expected ADDRESS MASK (e.g. 10.2.2.1 255.255.255.0)")
        b.address = interface_address(t[2], t[3], "ip address")
    elif t == ["no", "ip", "address"]:
        b.address = None
    elif t[0] == "ip" and len(t) > 1 and t[1] == "mtu":
        b.seen.once("ip mtu", line)
        b.mtu = integer(t[2] if len(t) == 3 else None, 68, 9976, "ip mtu (bytes)")
    elif t == ["shutdown"]:
        b.shutdown = True
    elif t == ["no", "shutdown"]:
        b.shutdown = False
    elif t[0] == "crypto" and len(t) > 1 and t[1] == "map":
        b.seen.once("crypto map", line)
        if len(t) != 3:
            raise LineError("crypto map: expected one crypto map name")
        b.crypto_map = (t[2], line)
    elif (t[0] == "tunnel" and _tunnel(b, t, line)) or (t[:2] == ["ip", "nhrp"] and _nhrp(b, t, line)):
        pass
    elif any(tuple(t[: len(p)]) == p for p in IGNORED):
        return "ignored"
    else:
        return "unknown"
    return "ok"
