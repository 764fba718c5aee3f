"""ESP encapsulation and decapsulation (RFC 4303 sections 3.3 and 3.4).

:func:`encapsulate` / :func:`decapsulate` work on the ESP packet (SPI up to
ICV); :func:`protect` / :func:`unprotect` on whole IPv4 datagrams, in
transport mode (the IP payload is protected, DMVPN's GRE) or tunnel mode
(the whole inner datagram is, next header 4).

Outbound (3.3): sequence number (never past 2^32 - 1 without ESN, 3.3.3),
padding to the cipher block and 4 bytes (2.4), encrypt, ICV over
SPI..trailer (plus the ESN high half, 2.2.1). AES-GCM (RFC 4106): IV = the
64-bit sequence number (section 3.1 allows any unique counter), AAD = SPI
and sequence number (section 5). Inbound (3.4): replay check, ICV check,
decrypt, then the window moves (3.4.3).

The code is flat on purpose (measured with bench/esp.py): inline fast paths
for the common transforms without ESN (CBC + HMAC, GCM with a 16-byte ICV),
a generic path for the rest, the SA's cipher contexts reused, no objects
per packet.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from enum import Enum
from hmac import compare_digest  # what cryptography's constant_time.bytes_eq calls

from cryptography.exceptions import InvalidTag

from dmvpn.ipsec.replay_window import ReplayVerdict
from dmvpn.ipsec.sa import KIND_CBC_HMAC, KIND_GCM16, KIND_GENERIC, EspMode, SaState, SecurityAssociation
from dmvpn.ipsec.sad import SecurityAssociationDatabase
from dmvpn.wire.errors import DecodeError
from dmvpn.wire.esp import (
    ESP_HEADER_BYTES,
    NEXT_HEADER_IPV4,
    PAD_BYTES,
    TRAILERS,
    parse_esp_header,
    split_trailer,
)
from dmvpn.wire.ipv4 import (
    HeaderTemplate,
    IpProto,
    format_ipv4_address,
    header_template,
    ipv4_lengths,
    rewrite_header,
)
from dmvpn.wire.udp import decode_udp, udp_header_template

_U32 = struct.Struct("!I")

# The ``type: ignore`` comments on the per-packet paths below are one
# deliberate choice: an SA's ``kind`` (set once when it is built, see
# ipsec/sa.py) guarantees which of its Optional cipher fields are set
# (``cbc_encrypt``/``hmac_base`` for CBC+HMAC, ``gcm`` for GCM16, ``cipher``
# for the generic path) and that ``sad`` is attached, so the hot path reads
# them without a None check per packet (bench/router_path.py measures it).
_U64 = struct.Struct("!Q")
_UDP_HEADER = struct.Struct("!HHHH")
PAD_PREFIXES = [PAD_BYTES[:n] for n in range(256)]  # the padding for each pad length
# Plain values of the enums the per-packet code compares with: reading an
# Enum member off its class costs ~0.2 us on Python 3.11, and an IntEnum
# hashes through Python code (header_template's cache key).
_ESP, _UDP, _GRE = int(IpProto.ESP), int(IpProto.UDP), int(IpProto.GRE)
_TUNNEL, _TRANSPORT = EspMode.TUNNEL, EspMode.TRANSPORT
#: Added to the next header (one byte, RFC 4303 2.6) :func:`decapsulate`
#: returns when it left the caller's ``prefix`` out of the payload.
PREFIX_STRIPPED = 0x100


class DropReason(Enum):
    """Why a packet was not processed; each lands in one SA counter."""

    NO_SA = "no SA"  # sad.unknown_spi_drops
    SA_DELETED = "SA deleted"  # send/recv errors
    SEQUENCE_EXHAUSTED = "sequence number space exhausted"  # send errors
    REPLAY_DUPLICATE = "replayed packet"  # replay drops + recv errors
    REPLAY_TOO_OLD = "packet older than the replay window"  # replay drops + recv errors
    INTEGRITY = "ICV check failed"  # integrity failures + recv errors
    MALFORMED = "malformed ESP packet"  # recv errors


class EspDrop(Exception):
    """A packet ESP refused; ``str()`` names the SA and the reason."""

    def __init__(self, reason: DropReason, spi: int, detail: str = "") -> None:
        super().__init__(reason, spi, detail)
        self.reason = reason
        self.spi = spi
        self.detail = detail

    def __str__(self) -> str:
        extra = f": {self.detail}" if self.detail else ""
        return f"ESP SPI 0x{self.spi:08X}: {self.reason.value}{extra}"


def encapsulate(sa: SecurityAssociation, now: float, payload: bytes, next_header: int,
                outer: HeaderTemplate | None = None, prefix: bytes = b"") -> bytes:
    """The ESP packet (header..ICV) protecting ``prefix + payload`` on
    outbound ``sa``; with ``outer``, behind that IPv4 header (transport
    mode's, protocol 50), joined in the same copy. ``prefix``: a header the
    caller would otherwise have to put in front of ``payload`` first (a
    tunnel's fixed GRE header), joined into the plaintext instead.

    Raises :class:`EspDrop` (and counts a send error) if the SA is deleted
    or its sequence numbers are exhausted.
    """
    seq = sa.seq + 1
    if seq > sa.seq_limit:  # also true once the SA is deleted (limit 0)
        sa.send_errors += 1
        if sa.state is SaState.DELETED:
            raise EspDrop(DropReason.SA_DELETED, sa.spi)
        if sa.sad is not None:
            sa.sad.sequence_exhausted(sa, now)
        raise EspDrop(DropReason.SEQUENCE_EXHAUSTED, sa.spi)
    sa.seq = seq
    n = len(prefix) + len(payload)
    kind = sa.kind
    if kind == KIND_CBC_HMAC:
        body = sa.header + _U32.pack(seq) + sa.cbc_encrypt(  # type: ignore[misc]
            b"".join((sa.iv_take(sa.block), prefix, payload,  # type: ignore[misc]
                      TRAILERS[next_header][-(n + 2) % sa.block]))
        )
        h = sa.hmac_base.copy()  # type: ignore[union-attr]
        h.update(body)
        icv = h.finalize()[: sa.icv_size]
        packet = body + icv if outer is None else b"".join((outer.header(len(body) + len(icv)), body, icv))
    elif kind == KIND_GCM16:
        header = sa.header + _U32.pack(seq)
        iv = _U64.pack(seq)
        sealed = sa.gcm.encrypt(sa.salt + iv, b"".join((prefix, payload, TRAILERS[next_header][-(n + 2) % 4])),  # type: ignore[union-attr]
                                header)
        packet = (b"".join((header, iv, sealed)) if outer is None
                  else b"".join((outer.header(16 + len(sealed)), header, iv, sealed)))
    else:
        packet = _encapsulate_generic(sa, seq, prefix + payload if prefix else payload, next_header)
        if outer is not None:
            packet = outer.encode(packet)
    sa.pkts_encaps += 1
    if sa.first_packet_time is None:
        sa.first_packet_time = now
    sa.last_packet_time = now
    total = sa.bytes + n
    sa.bytes = total
    if total >= sa.volume_mark:
        sa.sad.volume_crossed(sa, now)  # type: ignore[union-attr]
    return packet


def _encapsulate_generic(sa: SecurityAssociation, seq: int, payload: bytes, next_header: int) -> bytes:
    """Every transform/ESN combination the fast paths do not cover."""
    trailer = TRAILERS[next_header][-(len(payload) + 2) % sa.block]
    header = sa.header + _U32.pack(seq & 0xFFFFFFFF)
    if sa.aead:
        iv = _U64.pack(seq)
        aad = sa.header + iv if sa.esn else header
        return b"".join((header, iv, sa.cipher.seal(iv, payload + trailer, aad)))  # type: ignore[union-attr]
    if sa.null_cipher:
        body = b"".join((header, payload, trailer))
    else:
        body = header + sa.cipher.encrypt(b"".join((sa.iv_take(sa.block), payload, trailer)))  # type: ignore[union-attr,misc]
    integ = sa.integrity
    if integ is None:
        return body
    if sa.esn:  # RFC 4303 2.2.1: the high half is authenticated, not sent
        return body + integ.icv(body + _U32.pack(seq >> 32))
    return body + integ.icv(body)


def decapsulate(sa: SecurityAssociation, now: float, packet: bytes, prefix: bytes = b"",
                offset: int = 0) -> tuple[int, bytes]:
    """(next header, payload) of the ESP packet ``packet[offset:]`` received
    on ``sa`` (``offset``: the outer IPv4 header's length, so that the
    packet is not copied out of the datagram first).

    ``prefix``: bytes the caller expects a GRE payload to begin with (a
    tunnel's fixed GRE header, RFC 2784/2890); a GRE payload that does comes
    back without them and its next header plus :data:`PREFIX_STRIPPED`,
    so that taking the payload out of the plaintext is the only copy.
    Raises :class:`EspDrop` after counting the drop in the SA.
    """
    replay = sa.replay
    if replay is None:  # deleted, or not an inbound SA
        sa.recv_errors += 1
        sa.decaps_failures += 1
        if sa.state is SaState.DELETED:
            raise EspDrop(DropReason.SA_DELETED, sa.spi)
        raise EspDrop(DropReason.MALFORMED, sa.spi, "SA is not inbound")
    n = len(packet) - offset
    body_len = n - sa.overhead  # SPI, sequence, IV and ICV
    if body_len < 2 or (body_len % sa.block):
        sa.recv_errors += 1
        sa.invalid_len_drops += 1
        raise EspDrop(DropReason.MALFORMED, sa.spi, f"{n} bytes do not fit the transform")
    seq = _U32.unpack_from(packet, offset + 4)[0]
    kind = sa.kind
    if kind == KIND_GENERIC and sa.esn:  # the fast kinds never use ESN
        seq = replay.infer(seq)
    if seq <= replay.top:  # in-order packets skip the ring lookup
        verdict = replay.check(seq)
        if verdict is not ReplayVerdict.OK:
            sa.replay_drops += 1
            sa.recv_errors += 1
            reason = DropReason.REPLAY_DUPLICATE if verdict is ReplayVerdict.DUPLICATE else DropReason.REPLAY_TOO_OLD
            raise EspDrop(reason, sa.spi, f"sequence {seq}")
    if kind == KIND_CBC_HMAC:
        icv_size = sa.icv_size
        end = len(packet) - icv_size
        h = sa.hmac_base.copy()  # type: ignore[union-attr]
        h.update(packet[offset:end])
        if not compare_digest(h.finalize()[:icv_size], packet[end:]):
            sa.integrity_failures += 1
            sa.recv_errors += 1
            raise EspDrop(DropReason.INTEGRITY, sa.spi, f"sequence {seq}")
        plaintext = sa.cbc_decrypt(packet[offset + 8:end])  # type: ignore[misc]
        start = sa.block
    elif kind == KIND_GCM16:
        try:
            plaintext = sa.gcm.decrypt(sa.salt + packet[offset + 8:offset + 16], packet[offset + 16:],  # type: ignore[union-attr]
                                       packet[offset:offset + 8])
        except InvalidTag:
            sa.integrity_failures += 1
            sa.recv_errors += 1
            raise EspDrop(DropReason.INTEGRITY, sa.spi, f"sequence {seq}") from None
        start = 0
    else:
        opened = _open_generic(sa, seq, packet[offset:] if offset else packet)
        if opened is None:
            sa.integrity_failures += 1
            sa.recv_errors += 1
            raise EspDrop(DropReason.INTEGRITY, sa.spi, f"sequence {seq}")
        plaintext, start = opened
    replay.ring[seq % replay.size] = seq  # ReplayWindow.update, inlined
    if seq > replay.top:
        replay.top = seq
    m = len(plaintext)
    padlen = plaintext[m - 2]
    stop = m - 2 - padlen
    if stop < start or (padlen and not plaintext.endswith(PAD_PREFIXES[padlen], 0, m - 2)):
        sa.recv_errors += 1
        sa.decaps_failures += 1
        try:  # name the exact fault
            split_trailer(plaintext[start:], ESP_HEADER_BYTES + sa.iv_size)
            detail = "bad trailer"
        except DecodeError as exc:
            detail = str(exc)
        raise EspDrop(DropReason.MALFORMED, sa.spi, detail)
    sa.pkts_decaps += 1
    if sa.first_packet_time is None:
        sa.first_packet_time = now
    sa.last_packet_time = now
    total = sa.bytes + stop - start
    sa.bytes = total
    if total >= sa.volume_mark:
        sa.sad.volume_crossed(sa, now)  # type: ignore[union-attr]
    if prefix and plaintext[m - 1] == _GRE and plaintext.startswith(prefix, start, stop):
        return plaintext[m - 1] | PREFIX_STRIPPED, plaintext[start + len(prefix):stop]
    return plaintext[m - 1], plaintext[start:stop]


def _open_generic(sa: SecurityAssociation, seq: int, packet: bytes) -> tuple[bytes, int] | None:
    """(decrypted bytes, offset of the payload in them), or None if the ICV
    fails; for the transforms the fast paths do not cover."""
    if sa.aead:
        aad = sa.header + _U64.pack(seq) if sa.esn else packet[:8]
        plaintext = sa.cipher.open(packet[8:16], packet[16:], aad)  # type: ignore[union-attr]
        return None if plaintext is None else (plaintext, 0)
    end = len(packet) - sa.icv_size
    integ = sa.integrity
    if integ is not None:
        authed = packet[:end] + _U32.pack(seq >> 32) if sa.esn else packet[:end]
        if not integ.verify(authed, packet[end:]):
            return None
    if sa.null_cipher:
        return packet[8:end], 0
    return sa.cipher.decrypt_raw(packet[8:end]), sa.block  # type: ignore[union-attr]


def protect(sa: SecurityAssociation, now: float, datagram: bytes) -> bytes:
    """The IPv4 datagram that carries ``datagram`` protected by outbound ``sa``.

    Transport mode keeps the original header (protocol becomes 50, RFC 4303
    3.1.1); tunnel mode wraps the whole datagram under a new header from
    ``sa.local`` to ``sa.peer`` (3.1.2). With ``sa.udp_encap`` (RFC 3948)
    the ESP packet rides in UDP between the given ports. Headers are built
    from bytes, not decoded objects: this is every sent packet's path.
    """
    hlen, total = ipv4_lengths(datagram)
    udp_encap = sa.udp_encap
    if sa.mode is _TUNNEL:
        inner = datagram[:total] if total < len(datagram) else datagram
        if udp_encap is not None:
            return encapsulate(sa, now, inner, NEXT_HEADER_IPV4,
                               udp_header_template(sa.local, sa.peer, udp_encap[0], udp_encap[1], 64, datagram[1]))
        return encapsulate(sa, now, inner, NEXT_HEADER_IPV4, header_template(sa.local, sa.peer, _ESP, 64, datagram[1]))
    esp = encapsulate(sa, now, datagram[hlen:total], datagram[9])
    protocol = _ESP
    if udp_encap is not None:  # RFC 3948 2.1: the UDP checksum is sent as zero
        esp = _UDP_HEADER.pack(udp_encap[0], udp_encap[1], 8 + len(esp), 0) + esp
        protocol = _UDP
    return rewrite_header(datagram[:hlen], hlen + len(esp), protocol) + esp


def protect_parts(sa: SecurityAssociation, now: float, esp_header: HeaderTemplate, header: HeaderTemplate,
                  payload: bytes, protocol: int, prefix: bytes = b"") -> bytes:
    """:func:`protect` of the datagram ``header.encode(prefix + payload)``
    (an IPv4 header without options whose protocol is ``protocol``), without
    building that datagram first when transport mode does not need it
    (DMVPN's GRE: RFC 4303 3.1.1, the header is the original one with
    protocol 50, which ``esp_header`` is; ``prefix`` the GRE header)."""
    if sa.mode is _TRANSPORT and sa.udp_encap is None:
        return encapsulate(sa, now, payload, protocol, esp_header, prefix)
    return protect(sa, now, header.encode(prefix + payload if prefix else payload))


def open_datagram(sad: SecurityAssociationDatabase, now: float, datagram: bytes,
                  prefixes: Mapping[str, bytes] | None = None,
                  verify_checksum: bool = True) -> tuple[SecurityAssociation, int, int, bytes]:
    """Check and decrypt an ESP (or ESP-in-UDP, RFC 3948) IPv4 datagram
    (RFC 4303 3.4): (inbound SA, outer IPv4 header length, next header,
    payload), the payload being the inner datagram (next header 4) in
    tunnel mode. A plain tuple: every received packet pays for building it.
    ``prefixes``: by local address, the :func:`decapsulate` ``prefix`` for
    a transport-mode SA's payload (the fixed GRE header of the tunnel
    sourced there). ``verify_checksum=False``: the outer header's checksum
    was checked already (by the kernel's IP input, for what a raw or UDP
    socket delivers: RFC 1122 3.2.1.2 has the receiver check it).
    Raises :class:`EspDrop`, or ``DecodeError`` for a datagram that is not
    ESP at all or has a bad IPv4 header."""
    n = len(datagram)
    if (n >= 28 and datagram[0] == 0x45 and (datagram[2] << 8) | datagram[3] == n
            and (not verify_checksum or not int.from_bytes(datagram[:20]) % 0xFFFF)):
        # the common datagrams (no options, no padding), read in place: ESP,
        # or ESP in UDP whose UDP length is the rest and whose checksum was
        # checked (by the kernel) or not sent (zero, RFC 3948 2.1)
        protocol = datagram[9]
        if protocol == 50:
            payload, start, hlen = datagram, 20, 20
        elif (protocol == 17 and n >= 36 and (datagram[24] << 8) | datagram[25] == n - 20
              and not (verify_checksum and (datagram[26] or datagram[27]))):
            payload, start, hlen = datagram, 28, 20
        else:
            payload, start, hlen = _esp_packet(datagram, verify_checksum)
    else:
        payload, start, hlen = _esp_packet(datagram, verify_checksum)
    sa = sad.inbound.get(_U32.unpack_from(payload, start)[0])
    if sa is None:
        sad.unknown_spi_drops += 1
        raise EspDrop(DropReason.NO_SA, _U32.unpack_from(payload, start)[0],
                      f"from {format_ipv4_address(datagram[12:16])}")
    if sa.mode is not _TUNNEL:
        next_header, inner = decapsulate(sa, now, payload, prefixes.get(sa.local, b"") if prefixes else b"", start)
        return sa, hlen, next_header, inner
    next_header, inner = decapsulate(sa, now, payload, b"", start)
    if next_header != NEXT_HEADER_IPV4:
        sa.recv_errors += 1
        sa.invalid_prot_drops += 1
        raise EspDrop(DropReason.MALFORMED, sa.spi, f"next header {next_header} in tunnel mode")
    return sa, hlen, next_header, inner


def _esp_packet(datagram: bytes, verify_checksum: bool) -> tuple[bytes, int, int]:
    """(bytes, offset, outer header length) of the ESP packet in any other IPv4 datagram
    (options, link padding, ESP in UDP): the checks :func:`open_datagram`
    inlines for the common one, each failure its exact error."""
    hlen, total = ipv4_lengths(datagram, verify_checksum=verify_checksum)
    protocol = datagram[9]
    if protocol == _ESP:
        payload, start = datagram[:total], hlen
    elif protocol == _UDP:
        payload, start = decode_udp(datagram[hlen:total]).payload, 0
    else:
        raise DecodeError(9, f"IPv4 protocol {protocol} is not ESP")
    if len(payload) < start + ESP_HEADER_BYTES:
        parse_esp_header(payload[start:])  # raises the truncation error
    return payload, start, hlen


def unprotect(sad: SecurityAssociationDatabase, now: float, datagram: bytes) -> tuple[SecurityAssociation, bytes]:
    """(inbound SA, inner IPv4 datagram) for an ESP (or ESP-in-UDP)
    datagram: :func:`open_datagram`, with a transport-mode payload put back
    under the outer header (protocol = its next header)."""
    sa, hlen, next_header, payload = open_datagram(sad, now, datagram)
    if sa.mode is _TUNNEL:
        return sa, payload
    return sa, rewrite_header(datagram[:hlen], hlen + len(payload), next_header) + payload
