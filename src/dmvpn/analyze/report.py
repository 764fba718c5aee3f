"""The analysis of one or more routers' pasted output: parse every input,
resolve each flow's lifetime, analyse the SA tables and match the debug
logs' Quick Modes. :func:`analyse_sides` is the entry point; the result is
a :class:`Report` that :mod:`dmvpn.analyze.render` prints."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from dmvpn.analyze.debuglog import DebugLog, parse_debug
from dmvpn.analyze.ipsec_sa import IpsecFlow, parse_ipsec_sa
from dmvpn.analyze.meanings import Found, explain_lines
from dmvpn.analyze.quick_modes import Exchanges, match
from dmvpn.analyze.sa_pairs import FlowAnalysis, analyse_flow
from dmvpn.analyze.segment import Block, Kind, segment
from dmvpn.analyze.settings import (
    Lifetime,
    Settings,
    lifetime_for,
    parse_config_block,
    parse_policies,
    parse_profiles,
)
from dmvpn.analyze.tables import (
    Tables,
    parse_dmvpn,
    parse_ikev2_sa,
    parse_isakmp_sa,
    parse_nhrp,
    parse_session,
)
from dmvpn.analyze.text import MAX_LINES, InputError, Line, Unread, decode, dropped_lines, split_lines
from dmvpn.config.model import DEFAULT_SA_LIFETIME_KILOBYTES, DEFAULT_SA_LIFETIME_SECONDS


@dataclass(slots=True)
class Side:
    """One router's pasted output."""

    name: str
    lines: list[Line] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    flows: list[IpsecFlow] = field(default_factory=list)
    settings: Settings = field(default_factory=Settings)
    tables: Tables = field(default_factory=Tables)
    debug: DebugLog = field(default_factory=DebugLog)
    found: list[Found] = field(default_factory=list)
    unread: list[Unread] = field(default_factory=list)
    warnings: list[Unread] = field(default_factory=list)
    not_analysed: list[str] = field(default_factory=list)  # commands recognised but not read
    hostname: str = ""
    addresses: list[str] = field(default_factory=list)
    analyses: list[FlowAnalysis] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.hostname or self.name


@dataclass(slots=True)
class Report:
    sides: list[Side]
    exchanges: Exchanges

    def side_of(self, address: str) -> Side | None:
        return next((s for s in self.sides if address in s.addresses), None)


def read_side(name: str, inputs: list[tuple[str, bytes]]) -> Side:
    """Parse every input of one router: ``inputs`` is (source name, data)."""
    side = Side(name)
    problems: list[InputError] = []
    for source, data in inputs:
        try:
            text = decode(data, source)
        except InputError as exc:
            problems.append(exc)
            continue
        lines = split_lines(text, source)
        if dropped := dropped_lines(text):
            side.warnings.append(Unread(source, MAX_LINES, "", f"only the first {MAX_LINES} lines read "
                                                               f"({dropped} more left out)"))
        side.lines += lines
        blocks, unread = segment(lines)
        side.blocks += blocks
        side.unread += unread
    if not side.lines and problems:
        raise problems[0]
    side.warnings += [Unread(p.source, 0, "", p.message) for p in problems]
    _parse_blocks(side)
    _identify(side)
    return side


def _ipsec_sa(lines: list[Line], side: Side) -> None:
    table = parse_ipsec_sa(lines)
    side.flows += table.flows
    side.unread += table.unread
    side.warnings += table.warnings


#: The parser of each kind of command output.
_PARSERS: dict[Kind, Callable[[list[Line], Side], None]] = {
    Kind.IPSEC_SA: _ipsec_sa,
    Kind.IPSEC_PROFILE: lambda lines, side: parse_profiles(lines, side.settings),
    Kind.ISAKMP_POLICY: lambda lines, side: parse_policies(lines, side.settings),
    Kind.CONFIG: lambda lines, side: parse_config_block(lines, side.settings),
    Kind.ISAKMP_SA: lambda lines, side: parse_isakmp_sa(lines, side.tables),
    Kind.SESSION: lambda lines, side: parse_session(lines, side.tables),
    Kind.DMVPN: lambda lines, side: parse_dmvpn(lines, side.tables),
    Kind.NHRP: lambda lines, side: parse_nhrp(lines, side.tables),
    Kind.IKEV2_SA: lambda lines, side: parse_ikev2_sa(lines, side.tables),
}


def _not_analysed(block: Block, side: Side) -> None:
    text_lines = [x for x in block.lines if x.text.strip()]
    if text_lines:
        what = block.command or block.kind.value
        side.not_analysed.append(f"{text_lines[0].source}:{text_lines[0].no}: {what} "
                                 f"({len(text_lines)} lines): not analysed")


def _parse_blocks(side: Side) -> None:
    debug_lines: list[Line] = []
    for block in side.blocks:
        if block.host and not side.hostname:
            side.hostname = block.host
        if block.kind in _PARSERS:
            _PARSERS[block.kind](block.lines, side)
        elif block.kind is Kind.DEBUG:
            debug_lines += block.lines  # one log per router: exchanges span files
        elif block.kind is Kind.OTHER:
            _not_analysed(block, side)
    side.debug = parse_debug(debug_lines)
    side.found = explain_lines(side.debug.lines)
    side.unread += side.debug.unread + side.settings.unread + side.tables.unread
    side.warnings += side.settings.warnings
    side.unread.sort(key=lambda u: (u.source, u.no))


def _identify(side: Side) -> None:
    """The router's hostname and local addresses, from whatever says them."""
    addresses: list[str] = []
    for config in side.settings.configs:
        side.hostname = side.hostname or (config.hostname if config.hostname != "Router" else "")
        addresses += [str(i.address.ip) for i in config.interfaces.values() if i.address]
    for flow in side.flows:
        addresses += [a for a in (flow.local_endpoint, flow.local_addr) if a]
    if side.debug.local:
        addresses.append(side.debug.local)
    side.addresses = list(dict.fromkeys(addresses))


def _debug_lifetime(logs: list[DebugLog]) -> tuple[int | None, int | None]:
    seconds = next((n.life_seconds for log in logs for n in log.quick_modes() if n.life_seconds), None)
    kb = next((n.life_kilobytes for log in logs for n in log.quick_modes() if n.life_kilobytes), None)
    return seconds, kb


def resolve_lifetime(side: Side, others: list[Side], flow: IpsecFlow) -> Lifetime:
    """The lifetime of ``flow``'s SAs: this router's config or profile show,
    else the peer's (IKEv1 uses the shorter of the two, RFC 2409 section
    5.5, and the seed's peers share one profile), else the Quick Mode
    proposals in the debug, else the IOS defaults, said to be assumed."""
    life = lifetime_for(side.settings, flow.crypto_map_tag)
    if life is not None:
        return life
    for other in others:
        life = lifetime_for(other.settings, flow.crypto_map_tag)
        if life is not None:
            return Lifetime(life.seconds, life.kilobytes, f"{life.source} (the peer's)")
    seconds, kb = _debug_lifetime([side.debug] + [o.debug for o in others])
    if seconds is not None or kb is not None:
        parts = []
        if seconds is not None:
            parts.append(f"{seconds} s from the debug's Quick Mode proposal")
        if kb is not None:
            parts.append(f"{kb} KB from the debug's Quick Mode proposal")
        else:
            parts.append(f"{DEFAULT_SA_LIFETIME_KILOBYTES} KB assumed (the IOS default; "
                         "the proposal has a kilobyte lifetime whose value the debug does not print)")
        return Lifetime(seconds or DEFAULT_SA_LIFETIME_SECONDS, kb or DEFAULT_SA_LIFETIME_KILOBYTES,
                        "; ".join(parts), assumed=kb is None)
    return Lifetime(DEFAULT_SA_LIFETIME_SECONDS, DEFAULT_SA_LIFETIME_KILOBYTES,
                    "the IOS defaults, assumed (no config, profile show or debug says)", assumed=True)


def _nothing(side: Side) -> bool:
    return not (side.flows or side.debug.lines or side.settings.configs or side.settings.profiles
                or side.settings.policies or side.tables.isakmp or side.tables.sessions
                or side.tables.dmvpn or side.tables.nhrp or side.tables.ikev2)


def _infer_addresses(sides: list[Side]) -> None:
    """A router that pasted only a debug log: if it talks to another side's
    address and that side has exactly one peer nobody else owns, that peer
    is this router."""
    owned = {a for s in sides for a in s.addresses}
    for side in sides:
        if side.addresses:
            continue
        for other in sides:
            if other is side or not any(a in side.debug.peers for a in other.addresses):
                continue
            peers = {p for p in [*other.debug.peers, *(f.peer for f in other.flows)] if p and p not in owned}
            if len(peers) == 1:
                side.addresses.append(peers.pop())
                owned.update(side.addresses)
                break


def analyse_sides(inputs: dict[str, list[tuple[str, bytes]]]) -> Report:
    """Analyse each router's inputs (side name -> [(source, data)]);
    raises :class:`InputError` when nothing in any of them can be analysed."""
    sides = [read_side(name, data) for name, data in inputs.items()]
    if all(_nothing(s) for s in sides):
        lines = sum(1 for s in sides for line in s.lines if line.text.strip())
        raise InputError("nothing to analyse: no show crypto, show dmvpn, running-config or "
                         f"debug crypto output found in {lines} non-blank line(s)")
    for side in sides:
        others = [s for s in sides if s is not side]
        side.analyses = [analyse_flow(f, resolve_lifetime(side, others, f)) for f in side.flows]
    _infer_addresses(sides)
    addresses = {a: s.label for s in sides for a in s.addresses}
    exchanges = match({s.label: s.debug for s in sides if s.debug.nodes}, addresses)
    return Report(sides, exchanges)
