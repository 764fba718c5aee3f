"""Building the NHRP packets a Cisco DMVPN router sends (RFC 2332 5.2, 5.3;
the Cisco forms of NHRP.md 2.2-2.7): flags, CIE contents, extension order
Responder(3), Forward(4), Reverse(5), Authentication(7), NAT(9, C clear),
End, and hop count 255 on everything originated.
"""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address

from dmvpn.wire.nhrp import (
    CISCO_AUTH_CLEARTEXT,
    DEFAULT_HOP_COUNT,
    END_EXTENSION,
    FLAG_CISCO_NAT,
    FLAG_REG_U,
    FLAG_RES_A,
    FLAG_RES_D,
    FLAG_RES_Q,
    FLAG_RES_S,
    FLAG_RES_U,
    TRAFFIC_CODE_REDIRECT,
    AuthenticationExtension,
    Cie,
    CieListExtension,
    Extension,
    ExtensionType,
    NhrpPacket,
    PacketType,
)

RESOLUTION_REQUEST_FLAGS = FLAG_RES_Q | FLAG_RES_A | FLAG_RES_S | FLAG_CISCO_NAT  # 0xC802
RESOLUTION_REPLY_EXTRA = FLAG_RES_D | FLAG_RES_U  # 0xC802 -> 0xF802 as IOS answers
#: The embedded part of a Traffic Indication: the IPv4 header + 8 bytes.
REDIRECT_PAYLOAD_EXTRA = 8


def host_cie(
    nbma: IPv4Address | None, protocol: IPv4Address | None, *, prefix: int, mtu: int, holdtime: int, code: int = 0
) -> Cie:
    """A CIE for one station; None addresses are left empty ("the header's")."""
    return Cie(
        code=code,
        prefix_length=prefix,
        mtu=mtu,
        holding_time=holdtime,
        client_nbma=nbma.packed if nbma is not None else b"",
        client_protocol=protocol.packed if protocol is not None else b"",
    )


def auth_extension(password: bytes | None) -> tuple[Extension, ...]:
    """Cisco's cleartext authentication extension, or nothing."""
    if password is None:
        return ()
    return (AuthenticationExtension(CISCO_AUTH_CLEARTEXT, password),)


def request_extensions(
    password: bytes | None, nat: tuple[Cie, ...], *, responder: bool = True
) -> tuple[Extension, ...]:
    """The extensions IOS puts in a request it originates (NHRP.md 2.4)."""
    head: tuple[Extension, ...] = (CieListExtension(ExtensionType.RESPONDER_ADDRESS),) if responder else ()
    return (
        *head,
        CieListExtension(ExtensionType.FORWARD_TRANSIT_NHS),
        CieListExtension(ExtensionType.REVERSE_TRANSIT_NHS),
        *auth_extension(password),
        CieListExtension(ExtensionType.NAT_ADDRESS, nat, compulsory=False),
        END_EXTENSION,
    )


def registration_request(
    *,
    src_nbma: IPv4Address,
    src_protocol: IPv4Address,
    nhs_protocol: IPv4Address | None,
    nhs_nbma: IPv4Address,
    request_id: int,
    unique: bool,
    mtu: int,
    holdtime: int,
    password: bytes | None,
) -> NhrpPacket:
    """RegReq to an NHS (RFC 2332 5.2.3; NHRP.md 3.1): one address-less CIE,
    prefix 32, and a NAT extension naming the NHS as this spoke sees it. An
    NHS whose tunnel address is unknown (``nhs dynamic``) gets our own as
    destination and 0.0.0.0 in the NAT CIE, as FRR does for Cisco hubs
    (NHRP.md 4)."""
    nat = (host_cie(nhs_nbma, nhs_protocol or IPv4Address(0), prefix=32, mtu=mtu, holdtime=0),)
    return NhrpPacket(
        type=PacketType.REGISTRATION_REQUEST,
        src_nbma=src_nbma.packed,
        src_protocol=src_protocol.packed,
        dst_protocol=(nhs_protocol or src_protocol).packed,
        flags=(FLAG_REG_U if unique else 0) | FLAG_CISCO_NAT,
        request_id=request_id,
        cies=(host_cie(None, None, prefix=32, mtu=mtu, holdtime=holdtime),),
        extensions=request_extensions(password, nat),
    )


def resolution_request(
    *,
    src_nbma: IPv4Address,
    src_protocol: IPv4Address,
    target: IPv4Address,
    request_id: int,
    mtu: int,
    holdtime: int,
    password: bytes | None,
    nat_address: IPv4Address | None,
) -> NhrpPacket:
    """ResReq for ``target`` (RFC 2332 5.2.1; NHRP.md 3.4): flags 0xC802, an
    address-less CIE with prefix 0, the NAT extension empty unless this
    station knows its post-NAT address."""
    nat = () if nat_address is None else (host_cie(nat_address, src_protocol, prefix=32, mtu=mtu, holdtime=0),)
    return NhrpPacket(
        type=PacketType.RESOLUTION_REQUEST,
        src_nbma=src_nbma.packed,
        src_protocol=src_protocol.packed,
        dst_protocol=target.packed,
        flags=RESOLUTION_REQUEST_FLAGS,
        request_id=request_id,
        cies=(host_cie(None, None, prefix=0, mtu=mtu, holdtime=holdtime),),
        extensions=request_extensions(password, nat),
    )


def reply_extensions(
    request: NhrpPacket, responder: Cie | None, password: bytes | None, nat: tuple[Cie, ...] | None
) -> tuple[Extension, ...]:
    """A reply's extensions from its request's (RFC 2332 5.3: every request
    extension is echoed, unknown ones included): the Responder Address
    filled, transit records copied, our own authentication, the NAT list
    replaced when ``nat`` is given."""
    out: list[Extension] = []
    for ext in request.extensions:
        if ext.type == ExtensionType.RESPONDER_ADDRESS and responder is not None:
            out.append(CieListExtension(ExtensionType.RESPONDER_ADDRESS, (responder,)))
        elif ext.type == ExtensionType.AUTHENTICATION:
            out.extend(auth_extension(password))
        elif ext.type == ExtensionType.NAT_ADDRESS and nat is not None:
            out.append(CieListExtension(ExtensionType.NAT_ADDRESS, nat, ext.compulsory))
        else:
            out.append(ext)
    return tuple(out)


def registration_reply(
    request: NhrpPacket, codes: tuple[int, ...], responder: Cie, password: bytes | None, nat: tuple[Cie, ...] | None
) -> NhrpPacket:
    """RegRep (RFC 2332 5.2.4): the request with type 4, CIE codes filled,
    flags copied, hop count 255 (NHRP.md 3.3)."""
    cies = tuple(replace(c, code=code) for c, code in zip(request.cies, codes, strict=True))
    return replace(
        request,
        type=PacketType.REGISTRATION_REPLY,
        cies=cies,
        hop_count=DEFAULT_HOP_COUNT,
        extensions=reply_extensions(request, responder, password, nat),
    )


def resolution_reply(
    request: NhrpPacket, answer: Cie, responder: Cie, password: bytes | None, nat: tuple[Cie, ...]
) -> NhrpPacket:
    """ResRep (RFC 2332 5.2.2): the request's src/dst fields unchanged, flags
    with D and U added (0xF802), one CIE answering for the destination."""
    return replace(
        request,
        type=PacketType.RESOLUTION_REPLY,
        flags=request.flags | RESOLUTION_REPLY_EXTRA,
        cies=(answer,),
        hop_count=DEFAULT_HOP_COUNT,
        extensions=reply_extensions(request, responder, password, nat),
    )


def traffic_indication(
    *, src_nbma: IPv4Address, src_protocol: IPv4Address, data_packet: bytes, password: bytes | None
) -> NhrpPacket:
    """Cisco's Traffic Indication (NHRP.md 2.6): to the data packet's source,
    carrying its IPv4 header and first 8 payload bytes; no Responder
    extension."""
    ihl = (data_packet[0] & 0x0F) * 4
    return NhrpPacket(
        type=PacketType.TRAFFIC_INDICATION,
        src_nbma=src_nbma.packed,
        src_protocol=src_protocol.packed,
        dst_protocol=data_packet[12:16],
        flags=TRAFFIC_CODE_REDIRECT,
        payload=data_packet[: ihl + REDIRECT_PAYLOAD_EXTRA],
        extensions=request_extensions(password, (), responder=False),
    )


def error_indication(
    *, src_nbma: IPv4Address, src_protocol: IPv4Address, code: int, offset: int, offending: bytes, offender: bytes
) -> NhrpPacket:
    """Error Indication (RFC 2332 5.2.7): no extensions, the offending
    packet's header and mandatory part embedded, sent to its source."""
    return NhrpPacket(
        type=PacketType.ERROR_INDICATION,
        src_nbma=src_nbma.packed,
        src_protocol=src_protocol.packed,
        dst_protocol=offender,
        request_id=(code << 16) | (offset & 0xFFFF),
        payload=offending,
    )


def purge_request(
    *,
    src_nbma: IPv4Address,
    src_protocol: IPv4Address,
    dst_protocol: IPv4Address,
    request_id: int,
    purged: tuple[tuple[IPv4Address, int], ...],
    password: bytes | None,
    no_reply: bool = False,
) -> NhrpPacket:
    """Purge Request (RFC 2332 5.2.5): one CIE per (protocol address, prefix
    length) to drop, MTU and holdtime 0."""
    cies = tuple(host_cie(None, addr, prefix=plen, mtu=0, holdtime=0) for addr, plen in purged)
    return NhrpPacket(
        type=PacketType.PURGE_REQUEST,
        src_nbma=src_nbma.packed,
        src_protocol=src_protocol.packed,
        dst_protocol=dst_protocol.packed,
        flags=0x8000 if no_reply else 0,
        request_id=request_id,
        cies=cies,
        extensions=(*auth_extension(password), END_EXTENSION),
    )


def forwarded(request: NhrpPacket, transit: Cie, password: bytes | None, nat_cie: Cie | None) -> NhrpPacket:
    """A request as a transit NHS forwards it (RFC 2332 5.3.2; NHRP.md 3.4
    step 2): hop count - 1, source fields unchanged, own CIE appended to the
    Forward Transit NHS Record, authentication regenerated (hop by hop, never
    duplicated), the requester's NAT CIE added when the list is empty."""
    out: list[Extension] = []
    for ext in request.extensions:
        if ext.type == ExtensionType.FORWARD_TRANSIT_NHS and isinstance(ext, CieListExtension):
            out.append(replace(ext, cies=(*ext.cies, transit)))
        elif ext.type == ExtensionType.AUTHENTICATION:
            out.extend(auth_extension(password))
        elif ext.type == ExtensionType.NAT_ADDRESS and isinstance(ext, CieListExtension) and nat_cie and not ext.cies:
            out.append(replace(ext, cies=(nat_cie,)))
        else:
            out.append(ext)
    return replace(request, hop_count=request.hop_count - 1, extensions=tuple(out))
