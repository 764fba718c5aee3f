"""Access-list entries: ``access-list N ...`` and the lines of
``ip access-list {standard|extended} NAME``. Crypto maps use extended lists
to select the traffic to protect (RFC 2401 section 4.4 selectors)."""

from __future__ import annotations

from ipaddress import IPv4Network

from dmvpn.config.model import AclAction, AclEntry, PortMatch
from dmvpn.config.values import LineError, integer, ipv4, wildcard
from dmvpn.wire.ipv4 import IpProto

#: IP protocol keywords IOS accepts in extended ACLs (None = any IP); the
#: numbers this stack itself handles come from :class:`~dmvpn.wire.ipv4.IpProto`.
PROTOCOLS: dict[str, int | None] = {
    "ip": None,
    "icmp": int(IpProto.ICMP),
    "igmp": 2,
    "tcp": int(IpProto.TCP),
    "udp": int(IpProto.UDP),
    "gre": int(IpProto.GRE),
    "esp": int(IpProto.ESP),
    "ahp": int(IpProto.AH),
    "eigrp": 88,
    "ospf": 89,
    "pim": 103,
}

#: Port keywords IOS prints in place of numbers (the ones VPN configs use).
PORTS: dict[str, int] = {
    "bootps": 67,
    "bootpc": 68,
    "domain": 53,
    "ftp": 21,
    "isakmp": 500,
    "non500-isakmp": 4500,
    "ntp": 123,
    "smtp": 25,
    "snmp": 161,
    "ssh": 22,
    "syslog": 514,
    "telnet": 23,
    "tftp": 69,
    "www": 80,
}

_OPTIONS_IGNORED = {"log", "log-input"}


def _address(tokens: list[str], i: int, what: str) -> tuple[IPv4Network, int]:
    """``any`` | ``host A`` | ``A WILDCARD`` at tokens[i]; returns the
    network and the index after it."""
    if i >= len(tokens):
        raise LineError(f"{what}: expected any, host A or A WILDCARD, got nothing")
    tok = tokens[i]
    if tok == "any":
        return IPv4Network("0.0.0.0/0"), i + 1
    if tok == "host":
        ip = ipv4(tokens[i + 1] if i + 1 < len(tokens) else None, f"{what} host")
        return IPv4Network(f"{ip}/32"), i + 2
    ip = ipv4(tok, what)
    plen = wildcard(tokens[i + 1] if i + 1 < len(tokens) else None, f"{what} wildcard")
    return IPv4Network(f"{ip}/{plen}", strict=False), i + 2


def _port(token: str | None, what: str) -> int:
    if token is not None and token in PORTS:
        return PORTS[token]
    return integer(token, 0, 65535, what)


def _ports(tokens: list[str], i: int, what: str) -> tuple[PortMatch | None, int]:
    """An optional port condition at tokens[i]."""
    if i >= len(tokens) or tokens[i] not in ("eq", "neq", "lt", "gt", "range"):
        return None, i
    op = tokens[i]
    low = _port(tokens[i + 1] if i + 1 < len(tokens) else None, f"{what} port")
    if op == "range":
        high = _port(tokens[i + 2] if i + 2 < len(tokens) else None, f"{what} port range end")
        if high < low:
            raise LineError(f"{what} port range: {low} > {high}")
        return PortMatch(op, low, high), i + 3
    return PortMatch(op, low, low), i + 2


def _action(token: str) -> AclAction:
    try:
        return AclAction(token)
    except ValueError:
        raise LineError(f"access-list: expected permit or deny, got '{token}'") from None


def parse_standard(tokens: list[str], line: int) -> AclEntry:
    """``permit|deny {any | host A | A [WILDCARD]}``."""
    action = _action(tokens[0])
    if len(tokens) == 2 and tokens[1] not in ("any", "host"):
        source = IPv4Network(f"{ipv4(tokens[1], 'access-list source')}/32")
        rest = 2
    else:
        source, rest = _address(tokens, 1, "access-list source")
    _options(tokens[rest:])
    return AclEntry(action, None, source, IPv4Network("0.0.0.0/0"), line=line)


def parse_extended(tokens: list[str], line: int) -> AclEntry:
    """``permit|deny PROTO SRC [PORTS] DST [PORTS] [log]``."""
    action = _action(tokens[0])
    if len(tokens) < 2:
        raise LineError("access-list: expected a protocol after permit/deny")
    proto_tok = tokens[1]
    if proto_tok in PROTOCOLS:
        protocol = PROTOCOLS[proto_tok]
    else:
        protocol = integer(proto_tok, 0, 255, "access-list protocol")
    source, i = _address(tokens, 2, "access-list source")
    sports = dports = None
    if protocol in (6, 17):
        sports, i = _ports(tokens, i, "access-list source")
    destination, i = _address(tokens, i, "access-list destination")
    if protocol in (6, 17):
        dports, i = _ports(tokens, i, "access-list destination")
    _options(tokens[i:], tcp=protocol == 6)
    return AclEntry(action, protocol, source, destination, sports, dports, line=line)


def _options(rest: list[str], tcp: bool = False) -> None:
    for tok in rest:
        if tok in _OPTIONS_IGNORED or (tcp and tok == "established"):
            continue
        raise LineError(f"access-list: unsupported option '{tok}'")
