"""IPv4 fragmentation for datagrams the engine built bigger than the path MTU.

A raw ``IP_HDRINCL`` socket does not fragment: the kernel refuses a datagram
longer than the route's MTU with EMSGSIZE (raw(7)). An IPsec router sends
such datagrams fragmented after encryption when DF is clear, so the runtime
does what an IP layer does at the outgoing interface (RFC 791 section 3.2,
"An Example Fragmentation Procedure"; RFC 4303 section 3.3.5): split the
payload at multiples of 8 octets, copy the header, set MF on all but the
last fragment and carry the offset in 8-octet units. The receiving kernel
reassembles them before any socket sees the datagram.
"""

from __future__ import annotations

from dmvpn.wire.errors import DecodeError
from dmvpn.wire.ipv4 import decode_ipv4


class CannotFragment(ValueError):
    """The datagram may not or cannot be fragmented; ``str()`` says why."""


def fragment(packet: bytes, mtu: int) -> list[bytes]:
    """``packet`` as fragments of at most ``mtu`` bytes (RFC 791 3.2).

    Raises :class:`CannotFragment` when DF is set, when the header carries
    options (whose per-fragment copy rules this runtime does not implement)
    or when ``mtu`` leaves no room for 8 payload octets."""
    try:
        header, payload = decode_ipv4(packet, verify_checksum=False)
    except DecodeError as err:
        raise CannotFragment(f"not an IPv4 datagram: {err}") from None
    if len(packet) <= mtu:
        return [packet]
    if header.dont_fragment:
        raise CannotFragment(f"DF set on a {len(packet)}-byte datagram, path MTU {mtu}")
    if header.options:
        raise CannotFragment("IPv4 options present")
    chunk = (mtu - header.header_length) // 8 * 8
    if chunk < 8:
        raise CannotFragment(f"path MTU {mtu} is too small to fragment into")
    base, last_more = header.fragment_offset, header.more_fragments
    fragments = []
    for start in range(0, len(payload), chunk):
        piece = payload[start:start + chunk]
        header.fragment_offset = base + start // 8
        header.more_fragments = last_more or start + chunk < len(payload)
        fragments.append(header.encode(piece))
    return fragments
