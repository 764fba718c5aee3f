"""Value parsers shared by the config commands: numbers, IPv4 addresses,
masks, wildcards and interface names. Each raises :class:`LineError` with
what was expected and what was found; the parser adds file and line."""

from __future__ import annotations

import re
from ipaddress import AddressValueError, IPv4Address, IPv4Interface, IPv4Network

from dmvpn.config.algorithms import IOS_DH_GROUPS
from dmvpn.crypto.dh_groups import DhGroup


class LineError(Exception):
    """A problem with the current line; the message says what was expected."""


def integer(token: str | None, lo: int, hi: int, what: str) -> int:
    """``token`` as a decimal integer in [lo, hi]."""
    if token is None:
        raise LineError(f"{what}: expected a number {lo}-{hi}, got nothing")
    if not token.isdigit():
        raise LineError(f"{what}: expected a number {lo}-{hi}, got '{token}'")
    value = int(token)
    if not lo <= value <= hi:
        raise LineError(f"{what}: {value} is out of range, expected {lo}-{hi}")
    return value


def ipv4(token: str | None, what: str) -> IPv4Address:
    """``token`` as a dotted-quad IPv4 address."""
    if token is None:
        raise LineError(f"{what}: expected an IPv4 address, got nothing")
    try:
        return IPv4Address(token)
    except AddressValueError:
        raise LineError(f"{what}: expected an IPv4 address, got '{token}'") from None


def netmask(token: str | None, what: str) -> int:
    """A contiguous dotted-quad netmask; returns the prefix length."""
    mask = ipv4(token, what)
    bits = int(mask)
    inverted = bits ^ 0xFFFFFFFF
    if inverted & (inverted + 1):
        raise LineError(f"{what}: '{token}' is not a contiguous netmask")
    return 32 - inverted.bit_length()


def wildcard(token: str | None, what: str) -> int:
    """A contiguous ACL wildcard (inverse mask); returns the prefix length."""
    wc = ipv4(token, what)
    bits = int(wc)
    if bits & (bits + 1):
        raise LineError(f"{what}: '{token}' is not a contiguous wildcard mask "
                        "(non-contiguous wildcards are not supported)")
    return 32 - bits.bit_length()


def network(address: str | None, mask: str | None, what: str) -> IPv4Network:
    """A prefix written as ``ADDRESS MASK`` (host bits must be zero)."""
    ip = ipv4(address, what)
    plen = netmask(mask, f"{what} mask")
    net = IPv4Network(f"{ip}/{plen}", strict=False)
    if net.network_address != ip:
        raise LineError(f"{what}: {ip} has host bits set for mask {mask} (expected {net.network_address})")
    return net


def interface_address(address: str | None, mask: str | None, what: str) -> IPv4Interface:
    """An interface address ``A M``: not the network or broadcast address of
    its subnet unless the prefix is /31 or /32 (IOS: "Bad mask")."""
    ip = ipv4(address, what)
    plen = netmask(mask, f"{what} mask")
    iface = IPv4Interface(f"{ip}/{plen}")
    if plen < 31 and ip in (iface.network.network_address, iface.network.broadcast_address):
        raise LineError(f"{what}: bad mask {mask} for address {ip} (it is the subnet's network or broadcast address)")
    return iface


def address_mask(address: IPv4Address, token: str | None, what: str) -> IPv4Address:
    """The mask of a peer ``ADDRESS [MASK]``: the given one, else a host
    mask, or the 0.0.0.0 wildcard for address 0.0.0.0 (IOS keys, keyrings)."""
    if token is None:
        return IPv4Address("0.0.0.0") if address == IPv4Address("0.0.0.0") else IPv4Address("255.255.255.255")
    plen = netmask(token, what)
    return IPv4Address((0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF if plen else 0)


def dh_group(token: str | None, what: str) -> DhGroup:
    """A DH group number as IOS accepts it (``15`` or ``group15``)."""
    choices = "|".join(str(g) for g in IOS_DH_GROUPS)
    raw = token[5:] if token and token.startswith("group") else token
    if raw is None or not raw.isdigit() or int(raw) not in IOS_DH_GROUPS:
        raise LineError(f"{what}: expected a DH group {choices}, got '{token or ''}'")
    return IOS_DH_GROUPS[int(raw)]


#: Interface types, in the order IOS prefers them when a name is abbreviated.
INTERFACE_TYPES = (
    "GigabitEthernet",
    "FastEthernet",
    "TenGigabitEthernet",
    "Tunnel",
    "Loopback",
    "Ethernet",
    "Serial",
    "Port-channel",
    "Vlan",
    "Dialer",
    "Virtual-Template",
    "Virtual-Access",
    "TwentyFiveGigE",
    "FortyGigabitEthernet",
    "HundredGigE",
    "BDI",
    "Cellular",
    "Null",
)

_IFNAME = re.compile(r"^([A-Za-z][A-Za-z-]*)\s*(\d[\d/.:]*)$")


def interface_name(text: str | None, what: str = "interface") -> str:
    """Canonical interface name: ``Gi0/0/2`` and ``gigabitethernet 0/0/2``
    both become ``GigabitEthernet0/0/2``."""
    m = _IFNAME.match((text or "").strip())
    if not m:
        raise LineError(f"{what}: expected an interface name like GigabitEthernet0/0/2, got '{text or ''}'")
    kind, unit = m.group(1).lower(), m.group(2)
    for full in INTERFACE_TYPES:
        if full.lower().startswith(kind):
            return full + unit
    raise LineError(f"{what}: unknown interface type '{m.group(1)}'")
