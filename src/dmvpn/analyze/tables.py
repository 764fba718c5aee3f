"""The peer tables: ``show crypto isakmp sa``, ``show crypto session``
(our own parsers: ntc-templates has no isakmp-sa template, and its
session-detail template stops at the first line of the non-detail form) and
``show dmvpn`` (ntc-templates' ``cisco_ios_show_dmvpn`` TextFSM template)."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from dmvpn.analyze.text import Line, Unread


@dataclass(slots=True)
class IsakmpSa:
    """One row of ``show crypto isakmp sa`` (or its ``detail`` form)."""

    dst: str
    src: str
    state: str
    conn_id: int
    status: str
    line: int


@dataclass(slots=True)
class SessionPeer:
    """One ``Peer:`` of ``show crypto session [detail]``."""

    interface: str
    status: str
    peer: str
    line: int
    ike: list[str] = field(default_factory=list)  # "IKEv1 SA: local ... Active"
    active_sas: list[int] = field(default_factory=list)  # per IPSEC FLOW


@dataclass(slots=True)
class DmvpnPeer:
    """One row of ``show dmvpn``."""

    nbma: str
    tunnel: str
    state: str
    uptime: str
    attributes: str


@dataclass(slots=True)
class NhrpEntry:
    """One entry of ``show ip nhrp [detail]`` (RFC 2332 cache entry)."""

    prefix: str
    via: str
    line: int
    interface: str = ""
    created: str = ""
    expire: str = ""
    type: str = ""
    flags: str = ""
    nbma: str = ""


@dataclass(slots=True)
class Ikev2Sa:
    """One IKE SA of ``show crypto ikev2 sa [detail]`` (RFC 7296)."""

    tunnel_id: int
    local: str
    remote: str
    vrfs: str
    status: str
    line: int
    lifetime_s: int | None = None
    active_s: int | None = None


@dataclass(slots=True)
class Tables:
    isakmp: list[IsakmpSa] = field(default_factory=list)
    sessions: list[SessionPeer] = field(default_factory=list)
    dmvpn: list[DmvpnPeer] = field(default_factory=list)
    nhrp: list[NhrpEntry] = field(default_factory=list)
    ikev2: list[Ikev2Sa] = field(default_factory=list)
    unread: list[Unread] = field(default_factory=list)


_ISAKMP_ROW = re.compile(r"^(\S+)\s+(\S+)\s+([A-Z_]+)\s+(\d+)\s+(\S+(?: \(deleted\))?)$")
_ISAKMP_DETAIL = re.compile(r"^(\d+)\s+(\S+)\s+(\S+)\s+(?:\S+\s+)?(ACTIVE|UP-ACTIVE|\S+)\s+\S+\s+\S+\s+\S+\s+\d+\s+")
_ISAKMP_SKIP = re.compile(r"^(?:IPv[46] Crypto ISAKMP SA|dst\s+src|C-id\s+Local|Engine-id|"
                          r"Conn-id|[-=]+$|Capabilities|Legend|D - |X - |T - )")


def parse_isakmp_sa(lines: list[Line], tables: Tables) -> None:
    for line in lines:
        text = line.text.strip()
        if not text or _ISAKMP_SKIP.match(text):
            continue
        if m := _ISAKMP_ROW.match(text):
            tables.isakmp.append(IsakmpSa(m.group(1), m.group(2), m.group(3), int(m.group(4)),
                                          m.group(5), line.no))
        elif m := _ISAKMP_DETAIL.match(text):
            tables.isakmp.append(IsakmpSa(m.group(3), m.group(2), "", int(m.group(1)),
                                          m.group(4), line.no))
        else:
            tables.unread.append(Unread(line.source, line.no, line.text,
                                        "not a line of show crypto isakmp sa"))


_SESSION_SKIP = re.compile(r"^(?:Crypto session current status|Code:|K - |R - |Phase1_id|Desc:|"
                           r"Session ID|Username|Profile|Group|Assigned|Uptime|Inbound|Outbound|"
                           r"IPSEC FLOW|Capabilities|Connid|Engine-id|T - |X - |C - |D - |F - |"
                           r"U - |IX - |IA - |Conn-id)")


def parse_session(lines: list[Line], tables: Tables) -> None:
    interface, status, current = "", "", None
    for line in lines:
        text = line.text.strip()
        if not text:
            continue
        if m := re.match(r"^Interface:\s*(\S+)", text):
            interface, status, current = m.group(1), "", None
        elif m := re.match(r"^Session status:\s*(\S+)", text):
            status = m.group(1)
            if current is not None:
                current.status = status
        elif m := re.match(r"^Peer:\s*(\S+)", text):
            current = SessionPeer(interface, status, m.group(1), line.no)
            tables.sessions.append(current)
        elif current is not None and (m := re.match(r"^(IKEv[12] SA:.*)$", text)):
            current.ike.append(" ".join(m.group(1).split()))
        elif current is not None and (m := re.match(r"^Active SAs:\s*(\d+)", text)):
            current.active_sas.append(int(m.group(1)))
        elif not (_SESSION_SKIP.match(text) or re.match(r"^(?:\S+ - |Active SAs:|IKE SA:)", text)):
            tables.unread.append(Unread(line.source, line.no, line.text,
                                        "not a line of show crypto session"))


_NHRP_ENTRY = re.compile(r"^(\S+/\d+)\s+via\s+(\S+)$")
_NHRP_TUNNEL = re.compile(r"^(\S+) created (\S+), (?:expire (\S+)|(never expire))")
_NHRP_TYPE = re.compile(r"^Type:\s*([\w-]+),\s*Flags:\s*(.*)$")
_NHRP_SKIP = re.compile(r"^(?:Preference:|\(no-socket\)|Requester:|Group:|Client NBMA:)")


def parse_nhrp(lines: list[Line], tables: Tables) -> None:
    """``show ip nhrp [detail]``: overlay prefix -> NBMA address (our own:
    ntc-templates has no IOS template for it)."""
    entry: NhrpEntry | None = None
    for line in lines:
        text = line.text.strip()
        if not text:
            continue
        if m := _NHRP_ENTRY.match(text):
            entry = NhrpEntry(m.group(1), m.group(2), line.no)
            tables.nhrp.append(entry)
        elif entry is not None and (m := _NHRP_TUNNEL.match(text)):
            entry.interface, entry.created = m.group(1), m.group(2)
            entry.expire = m.group(3) or "never"
        elif entry is not None and (m := _NHRP_TYPE.match(text)):
            entry.type, entry.flags = m.group(1), m.group(2).strip()
        elif entry is not None and (m := re.match(r"^NBMA address:\s*(\S+)", text)):
            entry.nbma = m.group(1)
        elif not _NHRP_SKIP.match(text):
            tables.unread.append(Unread(line.source, line.no, line.text, "not a line of show ip nhrp"))


_IKEV2_ROW = re.compile(r"^(\d+)\s+(\S+/\d+)\s+(\S+/\d+)\s+(\S+/\S+)\s+(\S+)$")
_IKEV2_LIFE = re.compile(r"^Life/Active Time:\s*(\d+)/(\d+) sec")
_IKEV2_SKIP = re.compile(r"^(?:IPv[46] Crypto IKEv2\s+SA|Tunnel-id\s+Local|Encr:|CE id:|Local spi:|"
                         r"Remote spi:|Status Description:|Local id:|Remote id:|Local req|Remote req|"
                         r"Fragmentation|Dynamic Route|Cisco Trust|Initiator of SA|Remote subnets|"
                         r"Quantum-safe|IPv6 Crypto IKEv2|PEER TYPE|NAT-T|DPD configured)")


def parse_ikev2_sa(lines: list[Line], tables: Tables) -> None:
    """``show crypto ikev2 sa [detail]``: each IKE SA's endpoints, status,
    lifetime and age (``Life/Active Time``); our own parser."""
    current: Ikev2Sa | None = None
    for line in lines:
        text = line.text.strip()
        if not text:
            continue
        if m := _IKEV2_ROW.match(text):
            current = Ikev2Sa(int(m.group(1)), m.group(2), m.group(3), m.group(4), m.group(5), line.no)
            tables.ikev2.append(current)
        elif current is not None and (m := _IKEV2_LIFE.match(text)):
            current.lifetime_s, current.active_s = int(m.group(1)), int(m.group(2))
        elif not _IKEV2_SKIP.match(text):
            tables.unread.append(Unread(line.source, line.no, line.text,
                                        "not a line of show crypto ikev2 sa"))


def _dmvpn_template() -> Path:
    import ntc_templates

    return Path(ntc_templates.__file__).parent / "templates" / "cisco_ios_show_dmvpn.textfsm"


#: How many unexpected lines are dropped before giving up on a block.
MAX_SKIPS = 50


def parse_dmvpn(lines: list[Line], tables: Tables) -> None:
    """``show dmvpn`` by the ntc-templates TextFSM template. The template
    stops at a line it does not expect; that line is reported and dropped
    and the rest is parsed again."""
    import textfsm

    kept = [line for line in lines if line.text.strip()]
    template = _dmvpn_template().read_text()
    for _ in range(MAX_SKIPS):
        fsm = textfsm.TextFSM(io.StringIO(template))
        try:
            rows = fsm.ParseTextToDicts("\n".join(line.text for line in kept) + "\n")
        except textfsm.TextFSMError as exc:
            bad = re.search(r"Input Line: (.*)$", str(exc), re.DOTALL)
            index = next((i for i, line in enumerate(kept) if bad and line.text == bad.group(1)), None)
            if index is None:
                tables.unread.extend(Unread(x.source, x.no, x.text, "show dmvpn: not read") for x in kept)
                return
            x = kept.pop(index)
            tables.unread.append(Unread(x.source, x.no, x.text, "not a line of show dmvpn"))
            continue
        tables.dmvpn.extend(DmvpnPeer(r["PEER_NBMA"], r["PEER_TUNNEL"], r["STATE"], r["UPTIME"],
                                      r["ATTRIBUTE"]) for r in rows)
        return
    tables.unread.extend(Unread(x.source, x.no, x.text, f"show dmvpn: not read after {MAX_SKIPS} unexpected lines")
                         for x in kept)

