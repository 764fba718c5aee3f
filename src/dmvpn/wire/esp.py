"""ESP packet layout (RFC 4303 section 2), bytes only, no keys or state.

::

    SPI (4) | Sequence Number (4) | IV | payload | Padding (0-255) |
    Pad Length (1) | Next Header (1) | ICV

Padding bytes are 1, 2, 3, ... (section 2.4); the padded plaintext plus the
two trailer bytes must fill whole cipher blocks and end on a 4-byte boundary.
"""

from __future__ import annotations

import struct

from dmvpn.wire.errors import DecodeError

ESP_HEADER = struct.Struct("!II")
ESP_HEADER_BYTES = 8
MIN_SPI = 256  # RFC 4303 2.1: SPIs 1-255 are reserved by IANA, 0 is local use
PAD_BYTES = bytes(range(1, 256))

NEXT_HEADER_IPV4 = 4  # tunnel mode (transport mode carries the IP protocol, 47 for DMVPN's GRE)


def parse_esp_header(data: bytes) -> tuple[int, int]:
    """(SPI, low 32 bits of the sequence number) of an ESP packet."""
    if len(data) < ESP_HEADER_BYTES:
        raise DecodeError(0, f"ESP header truncated: {len(data)} bytes, need 8")
    return ESP_HEADER.unpack_from(data)


# TRAILERS[next_header][pad_length] = Padding || Pad Length || Next Header,
# prebuilt for pad lengths below 16 (every block size in use).
TRAILERS = [[PAD_BYTES[:p] + bytes((p, nh)) for p in range(16)] for nh in range(256)]


def split_trailer(plaintext: bytes, offset: int = 0) -> tuple[bytes, int]:
    """(payload, next header) of a decrypted ESP payload.

    ``offset`` is where ``plaintext`` sits in the packet, for error messages.
    The padding must be the monotonic 1, 2, 3 ... sequence RFC 4303
    section 2.4 requires of a sender.
    """
    n = len(plaintext)
    if n < 2:
        raise DecodeError(offset, f"ESP plaintext of {n} bytes has no trailer")
    padlen = plaintext[n - 2]
    end = n - 2 - padlen
    if end < 0:
        raise DecodeError(offset + n - 2, f"ESP pad length {padlen} exceeds the {n - 2} payload bytes")
    if padlen and plaintext[end : n - 2] != PAD_BYTES[:padlen]:
        raise DecodeError(offset + end, "ESP padding is not the sequence 1, 2, 3, ...")
    return plaintext[:end], plaintext[n - 1]
