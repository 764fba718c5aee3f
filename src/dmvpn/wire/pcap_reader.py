"""Read captures: classic pcap and pcapng, optionally gzip-compressed, into
frames, then IPv4, then UDP.

Formats: pcap (tcpdump.org "pcap savefile format", either byte order,
micro- or nanosecond timestamps) and pcapng (draft-ietf-opsawg-pcapng:
Section Header, Interface Description, Enhanced/Simple/obsolete Packet
blocks). Link types: Ethernet (1, with 802.1Q tags), BSD loopback/NULL (0,
108), raw IP (12, 101, 228), Linux cooked SLL (113) and SLL2 (276). IPv4
per RFC 791, UDP per RFC 768; non-first fragments are not reassembled.
"""

from __future__ import annotations

import gzip
import ipaddress
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dmvpn.wire.errors import DecodeError


class CaptureError(ValueError):
    """The file is not a capture this reader understands (one-line reason)."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured link-layer frame; ``number`` counts from 1 like tshark."""

    number: int
    timestamp: float
    linktype: int
    data: bytes


@dataclass(frozen=True, slots=True)
class UdpDatagram:
    """A UDP datagram found in frame ``frame``."""

    frame: int
    timestamp: float
    src: str
    dst: str
    sport: int
    dport: int
    payload: bytes


def _load(path: str | Path) -> bytes:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise CaptureError(f"{path}: {exc.strerror or exc}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise CaptureError(f"{path}: bad gzip data ({exc})") from None
    return raw


_PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}


def read_frames(path: str | Path, *, strict: bool = False) -> Iterator[Frame]:
    """Every frame of a pcap or pcapng file (gzip allowed), in file order.

    A truncated final record ends the iteration (with ``strict``, raises
    :class:`CaptureError` naming it, after the frames before it); an unknown
    file type raises :class:`CaptureError`."""
    yield from parse_capture(_load(path), str(path), strict=strict)


def parse_capture(raw: bytes, name: str = "capture", *, strict: bool = False) -> Iterator[Frame]:
    """Frames of an uncompressed pcap or pcapng image held in memory."""
    if raw[:4] in _PCAP_MAGIC:
        yield from _pcap_frames(raw, name, strict)
    elif raw[:4] == b"\x0a\x0d\x0d\x0a":
        yield from _pcapng_frames(raw, name, strict)
    else:
        raise CaptureError(f"{name}: not a pcap or pcapng file (magic {raw[:4].hex() or 'empty'})")


def _truncated(name: str, strict: bool, number: int, off: int, total: int) -> None:
    if strict:
        raise CaptureError(f"{name}: truncated after frame {number} "
                           f"(a record at byte {off} runs past the end, {total} bytes)")


def _pcap_frames(raw: bytes, name: str, strict: bool) -> Iterator[Frame]:
    endian, unit = _PCAP_MAGIC[raw[:4]]
    if len(raw) < 24:
        _truncated(name, strict, 0, 0, len(raw))
        return
    linktype = struct.unpack_from(endian + "I", raw, 20)[0] & 0x0FFFFFFF
    off, number = 24, 0
    while off + 16 <= len(raw):
        sec, frac, incl, _orig = struct.unpack_from(endian + "IIII", raw, off)
        off += 16
        if off + incl > len(raw):
            _truncated(name, strict, number, off - 16, len(raw))
            return
        number += 1
        yield Frame(number, sec + frac * unit, linktype, raw[off : off + incl])
        off += incl
    if off < len(raw):  # a record header cut short
        _truncated(name, strict, number, off, len(raw))


def _pcapng_frames(raw: bytes, name: str, strict: bool) -> Iterator[Frame]:
    off, number = 0, 0
    endian = "<"
    interfaces: list[tuple[int, float]] = []
    while off + 12 <= len(raw):
        if raw[off : off + 4] == b"\x0a\x0d\x0d\x0a":
            bom = raw[off + 8 : off + 12]
            if bom == b"\x4d\x3c\x2b\x1a":
                endian = "<"
            elif bom == b"\x1a\x2b\x3c\x4d":
                endian = ">"
            else:
                raise CaptureError(f"{name}: pcapng section header with bad byte-order magic")
            interfaces = []
        btype, blen = struct.unpack_from(endian + "II", raw, off)
        if blen < 12 or blen % 4 or off + blen > len(raw):
            _truncated(name, strict, number, off, len(raw))
            return
        body = raw[off + 8 : off + blen - 4]
        if btype == 1 and len(body) >= 8:  # Interface Description Block
            linktype = struct.unpack_from(endian + "H", body, 0)[0]
            interfaces.append((linktype, _if_tsresol(body[8:], endian)))
        elif btype in (6, 2) and len(body) >= 20:  # Enhanced / obsolete Packet Block
            if btype == 6:
                iface, ts_hi, ts_lo, caplen = struct.unpack_from(endian + "IIII", body, 0)
            else:
                iface, _drops, ts_hi, ts_lo, caplen = struct.unpack_from(endian + "HHIII", body, 0)
            if iface < len(interfaces):
                linktype, unit = interfaces[iface]
                number += 1
                yield Frame(number, ((ts_hi << 32) | ts_lo) * unit, linktype, body[20 : 20 + caplen])
        elif btype == 3 and len(body) >= 4 and interfaces:  # Simple Packet Block
            linktype, _unit = interfaces[0]
            number += 1
            yield Frame(number, 0.0, linktype, body[4:])
        off += blen
    if off < len(raw):  # a block header cut short
        _truncated(name, strict, number, off, len(raw))


def _if_tsresol(options: bytes, endian: str) -> float:
    """The if_tsresol option (code 9) of an IDB; microseconds by default."""
    off = 0
    while off + 4 <= len(options):
        code, length = struct.unpack_from(endian + "HH", options, off)
        if code == 0:
            break
        if code == 9 and length >= 1 and off + 5 <= len(options):
            v = options[off + 4]
            return 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0 ** -v
        off += 4 + ((length + 3) & ~3)
    return 1e-6


def ipv4_packet(frame: Frame) -> bytes | None:
    """The IPv4 packet inside a frame, or None if the frame carries something else."""
    d, lt = frame.data, frame.linktype
    if lt == 1:  # Ethernet II, skipping 802.1Q / QinQ tags
        off = 12
        while off + 2 <= len(d) and d[off : off + 2] in (b"\x81\x00", b"\x88\xa8"):
            off += 4
        if off + 2 > len(d) or d[off : off + 2] != b"\x08\x00":
            return None
        return d[off + 2 :]
    if lt in (0, 108):  # NULL / loopback: 4-byte address family, host or network order
        if len(d) < 4 or 2 not in (d[0], d[3]):
            return None
        return d[4:]
    if lt in (12, 101, 228):
        return d if d[:1] and d[0] >> 4 == 4 else None
    if lt == 113:  # Linux cooked capture
        return d[16:] if d[14:16] == b"\x08\x00" else None
    if lt == 276:  # Linux cooked capture v2
        return d[20:] if d[0:2] == b"\x08\x00" else None
    return None


def udp_datagram(frame: Frame) -> UdpDatagram | None:
    """The UDP datagram in an IPv4 frame, None if there is none (not IPv4, not
    UDP, or a non-first fragment); DecodeError if the IPv4/UDP headers are bad."""
    ip = ipv4_packet(frame)
    if ip is None:
        return None
    if len(ip) < 20:
        raise DecodeError(0, f"IPv4 header truncated ({len(ip)} bytes)")
    ihl = (ip[0] & 15) * 4
    total = struct.unpack_from("!H", ip, 2)[0]
    if ihl < 20 or len(ip) < ihl:
        raise DecodeError(0, f"IPv4 header length {ihl} invalid")
    if total < ihl:
        raise DecodeError(2, f"IPv4 total length {total} < header length {ihl}")
    ip = ip[: min(total, len(ip))]
    if ip[9] != 17:
        return None
    if struct.unpack_from("!H", ip, 6)[0] & 0x1FFF:
        return None
    if len(ip) < ihl + 8:
        raise DecodeError(ihl, "UDP header truncated")
    sport, dport, ulen = struct.unpack_from("!HHH", ip, ihl)
    if ulen < 8:
        raise DecodeError(ihl + 4, f"UDP length {ulen} < 8")
    payload = ip[ihl + 8 : ihl + ulen]
    return UdpDatagram(
        frame.number,
        frame.timestamp,
        str(ipaddress.IPv4Address(ip[12:16])),
        str(ipaddress.IPv4Address(ip[16:20])),
        sport,
        dport,
        payload,
    )
