"""Classic libpcap capture files (linktype 1, Ethernet; microsecond stamps).

The simulator records each packet delivered over a link or segment as an
Ethernet II frame (ethertype 0x0800) around the IPv4 datagram, so ``tshark
-r`` and Wireshark decode the simulated traffic. MAC addresses are synthetic
and stable: locally administered, derived from (node, interface).
Format: https://wiki.wireshark.org/Development/LibpcapFileFormat
"""

from __future__ import annotations

import hashlib
import struct
from typing import BinaryIO

PCAP_MAGIC = 0xA1B2C3D4
LINKTYPE_ETHERNET = 1
ETHERTYPE_IPV4 = 0x0800
_GLOBAL = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")


def mac_for(node: str, iface: str) -> bytes:
    """A stable, locally administered unicast MAC for ``node``'s ``iface``."""
    return b"\x02" + hashlib.sha256(f"{node}/{iface}".encode()).digest()[:5]


class PcapWriter:
    """Writes a classic pcap stream to ``stream`` (any binary file object).

    ``epoch`` is added to the virtual time to form the record timestamps.
    """

    def __init__(self, stream: BinaryIO, *, epoch: float = 0.0, snaplen: int = 65535) -> None:
        self.stream = stream
        self.epoch = epoch
        self.snaplen = snaplen
        self.packets = 0
        stream.write(_GLOBAL.pack(PCAP_MAGIC, 2, 4, 0, 0, snaplen, LINKTYPE_ETHERNET))

    def record(self, time: float, src_mac: bytes, dst_mac: bytes, packet: bytes) -> None:
        """Append one IPv4 packet framed as Ethernet II, stamped at ``time``."""
        frame = dst_mac + src_mac + b"\x08\x00" + packet
        usec_total = round((self.epoch + time) * 1_000_000)
        seconds, usec = divmod(usec_total, 1_000_000)
        caplen = min(len(frame), self.snaplen)
        self.stream.write(_RECORD.pack(seconds, usec, caplen, len(frame)) + frame[:caplen])
        self.packets += 1

    def close(self) -> None:
        """Flush and close the underlying stream."""
        self.stream.close()
