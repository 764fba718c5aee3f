"""``show crypto ipsec sa [peer A | detail | interface I]`` as IOS and
IOS-XE print it: per interface, per flow (``current_peer``), every SA with
its SPI, transform, mode, conn id and remaining lifetime.

Our own parser: ntc-templates' ``cisco_ios_show_crypto_ipsec_sa_detail``
stops at the first line it does not expect (``#send errors``, ``sa timing:
remaining key lifetime 1 hours, 10 mins``, ``in use settings ={Tunnel,
esn}``...), which is most real output including the seed's. Lines that fit
no rule are reported by number and skipped."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from dmvpn.analyze.text import Line, Unread


@dataclass(slots=True)
class IpsecSa:
    """One SA of ``show crypto ipsec sa``. ``remaining_kb`` / ``remaining_s``
    are None where the output does not give them; ``remaining_exact`` is
    False for the ``1 hours, 10 mins`` form (rounded to the minute)."""

    direction: str  # inbound | outbound
    protocol: str  # esp | ah | pcp
    spi: int
    line: int
    spi_decimal: int | None = None
    transform: str = ""
    mode: str = ""
    conn_id: int | None = None
    flow_id: str = ""
    crypto_map: str = ""
    initiator: bool | None = None
    remaining_kb: int | None = None
    remaining_s: int | None = None
    remaining_exact: bool = True
    volume_rekey_disabled: bool = False
    status: str = ""

    @property
    def spi_hex(self) -> str:
        return f"0x{self.spi:08X}"


@dataclass(slots=True)
class IpsecFlow:
    """One ``current_peer`` block: a flow (proxy identities) with one peer."""

    interface: str
    line: int
    crypto_map_tag: str = ""
    local_addr: str = ""
    local_ident: str = ""
    remote_ident: str = ""
    peer: str = ""
    peer_port: int | None = None
    pkts_encaps: int | None = None
    pkts_decaps: int | None = None
    send_errors: int | None = None
    recv_errors: int | None = None
    local_endpoint: str = ""
    remote_endpoint: str = ""
    current_outbound_spi: int | None = None
    pfs: str = ""
    dh_group: str = ""
    sas: list[IpsecSa] = field(default_factory=list)

    def by_direction(self, direction: str, protocol: str = "esp") -> list[IpsecSa]:
        return [s for s in self.sas if s.direction == direction and s.protocol == protocol]


@dataclass(slots=True)
class IpsecSaTable:
    flows: list[IpsecFlow] = field(default_factory=list)
    unread: list[Unread] = field(default_factory=list)
    warnings: list[Unread] = field(default_factory=list)


_SPI = r"0x(?P<hex>[0-9A-Fa-f]{1,8})\((?P<dec>\d+)\)"


class _Reader:
    """The parse state: where we are (interface, flow, SA list)."""

    def __init__(self) -> None:
        self.table = IpsecSaTable()
        self.interface = ""
        self.crypto_map_tag = ""
        self.local_addr = ""
        self.flow: IpsecFlow | None = None
        self.section: tuple[str, str] | None = None  # (direction, protocol)
        self.sa: IpsecSa | None = None
        self.line: Line | None = None

    def need_flow(self) -> IpsecFlow:
        if self.flow is None:
            assert self.line is not None
            self.flow = IpsecFlow(self.interface, self.line.no, self.crypto_map_tag, self.local_addr)
            self.table.flows.append(self.flow)
        return self.flow

    def need_sa(self) -> IpsecSa:
        if self.sa is None:
            raise _Skip("an SA attribute before any 'spi:' line")
        return self.sa

    def warn(self, why: str) -> None:
        assert self.line is not None
        self.table.warnings.append(Unread(self.line.source, self.line.no, self.line.text, why))


class _Skip(Exception):
    """The current line cannot be read; the message says why."""


def _interface(r: _Reader, m: re.Match[str]) -> None:
    r.interface, r.crypto_map_tag, r.local_addr = m.group(1), "", ""
    r.flow, r.section, r.sa = None, None, None


def _map_tag(r: _Reader, m: re.Match[str]) -> None:
    r.crypto_map_tag, r.local_addr = m.group(1), m.group(2) or ""
    r.flow, r.section, r.sa = None, None, None


def _new_flow(r: _Reader) -> IpsecFlow:
    assert r.line is not None
    r.flow = IpsecFlow(r.interface, r.line.no, r.crypto_map_tag, r.local_addr)
    r.table.flows.append(r.flow)
    r.section, r.sa = None, None
    return r.flow


def _protected_vrf(r: _Reader, m: re.Match[str]) -> None:
    _new_flow(r)


def _ident(r: _Reader, m: re.Match[str]) -> None:
    flow = r.flow
    if flow is None or flow.sas or (m.group(1) == "local" and flow.local_ident):
        flow = _new_flow(r)
    if m.group(1) == "local":
        flow.local_ident = m.group(2)
    else:
        flow.remote_ident = m.group(2)


def _peer(r: _Reader, m: re.Match[str]) -> None:
    flow = r.need_flow()
    flow.peer, flow.peer_port = m.group(1), int(m.group(2)) if m.group(2) else None


def _encaps(r: _Reader, m: re.Match[str]) -> None:
    r.need_flow().pkts_encaps = int(m.group(1))


def _decaps(r: _Reader, m: re.Match[str]) -> None:
    r.need_flow().pkts_decaps = int(m.group(1))


def _errors(r: _Reader, m: re.Match[str]) -> None:
    flow = r.need_flow()
    flow.send_errors, flow.recv_errors = int(m.group(1)), int(m.group(2))


def _endpoints(r: _Reader, m: re.Match[str]) -> None:
    flow = r.need_flow()
    flow.local_endpoint, flow.remote_endpoint = m.group(1), m.group(2) or ""


def _spi_value(r: _Reader, m: re.Match[str]) -> tuple[int, int]:
    spi, dec = int(m.group("hex"), 16), int(m.group("dec"))
    if spi != dec:
        r.warn(f"hex and decimal SPI disagree ({dec} is not 0x{spi:X}); the hex is used")
    return spi, dec


def _current_outbound(r: _Reader, m: re.Match[str]) -> None:
    r.need_flow().current_outbound_spi = _spi_value(r, m)[0]


def _pfs(r: _Reader, m: re.Match[str]) -> None:
    flow = r.need_flow()
    flow.pfs, flow.dh_group = m.group(1), m.group(2)


def _section(r: _Reader, m: re.Match[str]) -> None:
    r.need_flow()
    r.section, r.sa = (m.group(1), m.group(2)), None


def _spi(r: _Reader, m: re.Match[str]) -> None:
    if r.section is None or r.flow is None:
        raise _Skip("an 'spi:' line outside any 'inbound/outbound ... sas:' list")
    assert r.line is not None
    spi, dec = _spi_value(r, m)
    r.sa = IpsecSa(r.section[0], r.section[1], spi, r.line.no, dec)
    r.flow.sas.append(r.sa)


def _transform(r: _Reader, m: re.Match[str]) -> None:
    r.need_sa().transform = " ".join(m.group(1).split())


def _settings(r: _Reader, m: re.Match[str]) -> None:
    r.need_sa().mode = ", ".join(p.strip() for p in m.group(1).split(",") if p.strip())


def _conn(r: _Reader, m: re.Match[str]) -> None:
    sa = r.need_sa()
    sa.conn_id, sa.flow_id, sa.crypto_map = int(m.group(1)), m.group(2), m.group(3) or ""
    if m.group(4):
        sa.initiator = m.group(4) == "True"


def _timing_ks(r: _Reader, m: re.Match[str]) -> None:
    sa = r.need_sa()
    sa.remaining_kb, sa.remaining_s = int(m.group(1)), int(m.group(2))


def _timing_s(r: _Reader, m: re.Match[str]) -> None:
    r.need_sa().remaining_s = int(m.group(1))


def _timing_hm(r: _Reader, m: re.Match[str]) -> None:
    sa = r.need_sa()
    sa.remaining_s = int(m.group(1) or 0) * 3600 + int(m.group(2) or 0) * 60
    sa.remaining_exact = False


def _volume_off(r: _Reader, m: re.Match[str]) -> None:
    r.need_sa().volume_rekey_disabled = True


def _status(r: _Reader, m: re.Match[str]) -> None:
    r.need_sa().status = m.group(1)
    r.sa = None


def _ignore(r: _Reader, m: re.Match[str]) -> None:
    """A line this analysis does not need (compression counters, MTUs...)."""


_RULES: tuple[tuple[re.Pattern[str], Callable[[_Reader, re.Match[str]], None]], ...] = tuple(
    (re.compile(p), f) for p, f in (
        (r"^interface:\s+(\S+)$", _interface),
        (r"^Crypto map tag:\s*([^,]+?)\s*(?:,\s*local addr\s+(\S+))?$", _map_tag),
        (r"^protected vrf:\s*(.*)$", _protected_vrf),
        (r"^(local|remote)\s+ident \(addr/mask/prot/port\):\s*\((.*)\)$", _ident),
        (r"^current_peer\s+(\S+)(?:\s+port\s+(\d+))?$", _peer),
        (r"^#pkts encaps:\s*(\d+)", _encaps),
        (r"^#pkts decaps:\s*(\d+)", _decaps),
        (r"^#send errors\s*(\d+),\s*#recv errors\s*(\d+)$", _errors),
        (r"^local crypto endpt\.:\s*([^,\s]+),?(?:\s*remote crypto endpt\.:\s*(\S+?),?)?$", _endpoints),
        (r"^remote crypto endpt\.:\s*(\S+?),?$",
         lambda r, m: setattr(r.need_flow(), "remote_endpoint", m.group(1))),
        (rf"^current outbound spi:\s*{_SPI}$", _current_outbound),
        (r"^PFS \(Y/N\):\s*(\w+),\s*DH group:\s*([^,]+)", _pfs),
        (r"^(inbound|outbound)\s+(esp|ah|pcp)\s+sas:$", _section),
        (rf"^spi:\s*{_SPI}$", _spi),
        (r"^transform:\s*(.*?)\s*,?$", _transform),
        (r"^in use settings\s*=\s*\{(.*)\}$", _settings),
        (r"^conn id:\s*(\d+),\s*flow_id:\s*([^,]*),\s*sibling_flags\s+\S+"
         r"(?:,\s*crypto map:\s*([^,]+))?(?:,\s*initiator\s*:\s*(True|False))?$", _conn),
        (r"^sa timing: remaining key lifetime \(k/sec\):\s*\((\d+)/(\d+)\)$", _timing_ks),
        (r"^sa timing: remaining key lifetime \(sec\):\s*\(?(\d+)\)?$", _timing_s),
        (r"^sa timing: remaining key lifetime\s+(?:(\d+) hours?,?\s*)?(?:(\d+) mins?)?$", _timing_hm),
        (r"^Kilobyte Volume Rekey has been disabled$", _volume_off),
        (r"^Status:\s*(\S+)$", _status),
        (r"^(?:#+pkts |PERMIT|DENY|plaintext mtu|IV size:|replay detection support:|"
         r"IPsecv6 policy name:|ECN|Dynamic|Tunnel|path mtu)", _ignore),
    )
)

#: Two lines glued by a hand edit: ``outbound pcp sas:interface: Tunnel1``.
_GLUED = re.compile(r"^(\s*(?:inbound|outbound)\s+\w+\s+sas:)\s*(interface:.*)$")


def _physical(lines: list[Line]) -> list[Line]:
    out: list[Line] = []
    for line in lines:
        m = _GLUED.match(line.text)
        if m:
            out += [Line(line.source, line.no, m.group(1)), Line(line.source, line.no, m.group(2))]
        else:
            out.append(line)
    return out


def parse_ipsec_sa(lines: list[Line]) -> IpsecSaTable:
    """Every flow and SA in ``lines`` (one command's output)."""
    r = _Reader()
    for line in _physical(lines):
        text = line.text.strip()
        if not text:
            continue
        r.line = line
        for pattern, action in _RULES:
            m = pattern.match(text)
            if m:
                try:
                    action(r, m)
                except _Skip as why:
                    r.table.unread.append(Unread(line.source, line.no, line.text, str(why)))
                break
        else:
            r.table.unread.append(Unread(line.source, line.no, line.text,
                                         "not a line of show crypto ipsec sa"))
    return r.table
