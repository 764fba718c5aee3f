"""Read an IOS running-config into a :class:`RouterConfig`.

Lines are taken the way ``show running-config`` prints them: a command at
column 0 is global and may open a block (``interface``, ``crypto isakmp
policy`` ...); indented lines belong to the open block; ``!`` is a comment.
Known lines are parsed and checked, lines that IOS accepts but that do not
matter to this stack are recorded as ignored, anything else is a warning.
All problems are collected; the model is built only when there are none."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from os import PathLike
from pathlib import Path

from dmvpn.config import acl
from dmvpn.config.builders import (
    AclBuilder,
    InterfaceBuilder,
    MapEntryBuilder,
    PolicyBuilder,
    ProfileBuilder,
    SaSettings,
    TransformSetBuilder,
)
from dmvpn.config.crypto_cmds import (
    map_entry_line,
    policy_line,
    profile_line,
    sa_lifetime,
    transform_set_line,
)
from dmvpn.config.diagnostics import ConfigError, ConfigWarning, IgnoredLine
from dmvpn.config.ikev2_cmds import Ikev2Builders
from dmvpn.config.interface_cmds import interface_line
from dmvpn.config.model import (
    DEFAULT_REPLAY_WINDOW,
    IsakmpKeepalive,
    IsakmpKey,
    KeepaliveMode,
    RouterConfig,
    StaticRoute,
)
from dmvpn.config.resolve import build
from dmvpn.config.routing_cmds import (
    BgpBuilder,
    OspfBuilder,
    OspfIfBuilder,
    asn,
    bgp_line,
    ospf_interface_line,
    ospf_line,
)
from dmvpn.config.transforms import parse_transforms
from dmvpn.config.values import LineError, address_mask, integer, interface_name, ipv4, network

#: Global lines (and the blocks they open) that do not affect this stack
#: (``router ospf`` and ``router bgp`` are read before this table is asked).
IGNORED_GLOBAL: tuple[tuple[str, ...], ...] = (
    ("version",), ("service",), ("no",), ("boot-start-marker",), ("boot-end-marker",),
    ("boot",), ("enable",), ("username",), ("aaa",), ("clock",), ("logging",), ("ntp",),
    ("snmp-server",), ("license",), ("memory",), ("multilink",), ("spanning-tree",),
    ("platform",), ("diagnostic",), ("redundancy",), ("router",), ("line",),
    ("control-plane",), ("archive",), ("call-home",), ("vrf",), ("key",), ("class-map",),
    ("policy-map",), ("cdp",), ("lldp",), ("subscriber",), ("file",), ("security",),
    ("hw-module",), ("alias",), ("event",), ("mpls",), ("track",), ("login",), ("vtp",),
    ("transceiver",), ("exit",), ("ipv6",),
    ("crypto", "pki"), ("crypto", "isakmp", "identity"), ("crypto", "isakmp", "aggressive-mode"),
    ("crypto", "isakmp", "enable"), ("crypto", "ipsec", "df-bit"),
    ("crypto", "ipsec", "nat-transparency"),
    ("ip", "cef"), ("ip", "domain"), ("ip", "domain-name"), ("ip", "domain-lookup"),
    ("ip", "name-server"), ("ip", "http"), ("ip", "ssh"), ("ip", "forward-protocol"),
    ("ip", "tftp"), ("ip", "scp"), ("ip", "ftp"), ("ip", "sla"), ("ip", "multicast-routing"),
    ("ip", "dhcp"), ("ip", "prefix-list"), ("ip", "vrf"), ("ip", "subnet-zero"),
    ("ip", "classless"), ("ip", "bgp-community"), ("ip", "community-list"),
)

#: Numbered access-list ranges (IOS): standard lists and extended lists.
_STANDARD_ACL = (range(1, 100), range(1300, 2000))
_EXTENDED_ACL = (range(100, 200), range(2000, 2700))


@dataclass
class ParseResult:
    """Everything found in one config: the model (None when there are
    errors), the errors, the warnings and the ignored lines, in line order."""

    source: str
    config: RouterConfig | None
    errors: list[ConfigError] = field(default_factory=list)
    warnings: list[ConfigWarning] = field(default_factory=list)
    ignored: list[IgnoredLine] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def commands_in(self, text: str) -> int:
        """Top-level lines of ``text`` (the text parsed) that are neither
        blank, a ``!`` comment nor an unknown command: 0 means the text held
        no configuration at all (empty, or random text), whatever the model."""
        unknown = {w.line for w in self.warnings if w.message.startswith("unknown command")}
        return sum(1 for n, line in enumerate(text.splitlines(), 1)
                   if line.strip() and not line[0].isspace() and not line.startswith("!") and n not in unknown)


def parse_config(text: str, source: str = "<string>") -> ParseResult:
    """Parse a whole configuration held in ``text``; ``source`` names it in
    diagnostics."""
    return _Parser(source).run(text)


def read_config_text(path: str | PathLike[str]) -> str:
    """The text of a config file; an unreadable or non-UTF-8 file is a
    :class:`ConfigError` (with the line of the first bad byte)."""
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(source, 0, f"cannot read file: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(source, line, f"not UTF-8 text (byte 0x{data[exc.start]:02x})") from None


def load_config(path: str | PathLike[str]) -> RouterConfig:
    """Read and parse the file at ``path``; raises the first
    :class:`ConfigError` when the config is invalid."""
    result = parse_config(read_config_text(path), str(path))
    if result.config is None:
        raise result.errors[0]
    return result.config


# A block handler applies one indented line and says "ok", "ignored",
# "unknown" or "secondary" (see interface_line).
BlockHandler = Callable[[list[str], int], str]


@dataclass
class _Block:
    title: str
    handle: BlockHandler | None  # None: skip the lines (the opener failed)
    ignored: bool = False  # lines of an ignored block are ignored too


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[ConfigError] = []
        self.warnings: list[ConfigWarning] = []
        self.ignored: list[IgnoredLine] = []
        self.block: _Block | None = None
        self.hostname: tuple[str, int] | None = None
        self.policies: dict[int, PolicyBuilder] = {}
        self.keys: list[IsakmpKey] = []
        self.keepalive: IsakmpKeepalive | None = None
        self.nat_keepalive: int | None = None
        self.invalid_spi_recovery = False
        self.transform_sets: dict[str, TransformSetBuilder] = {}
        self.global_sa = SaSettings()
        self.replay_window: int | None = DEFAULT_REPLAY_WINDOW
        self.profiles: dict[str, ProfileBuilder] = {}
        self.map_entries: dict[tuple[str, int], MapEntryBuilder] = {}
        self.map_local: dict[str, tuple[str, int]] = {}
        self.acls: dict[str, AclBuilder] = {}
        self.interfaces: dict[str, InterfaceBuilder] = {}
        self.routes: list[StaticRoute] = []
        self.ikev2 = Ikev2Builders()
        self.ospf: dict[int, OspfBuilder] = {}
        self.ospf_interfaces: dict[str, OspfIfBuilder] = {}
        self.bgp: BgpBuilder | None = None
        self.global_lines: dict[str, int] = {}
        # names whose defining line failed: references to them are not
        # reported again as missing
        self.broken: set[tuple[str, str]] = set()

    # -- diagnostics -----------------------------------------------------

    def error(self, line: int, message: str) -> None:
        self.errors.append(ConfigError(self.source, line, message))

    def warn(self, line: int, message: str) -> None:
        self.warnings.append(ConfigWarning(self.source, line, message))

    def ignore(self, line: int, text: str) -> None:
        self.ignored.append(IgnoredLine(self.source, line, text))

    # -- driver ----------------------------------------------------------

    def run(self, text: str) -> ParseResult:
        lines = text.splitlines()
        i = 0
        while i < len(lines):
            raw = lines[i].rstrip()
            ln = i + 1
            i += 1
            stripped = raw.strip()
            if not stripped or stripped.startswith("!"):
                continue
            tokens = stripped.split()
            if raw[0] in " \t":
                self._block_line(tokens, ln, stripped)
                continue
            self.block = None
            if tokens[0] == "end":
                self._after_end(lines, i)
                break
            if tokens[0] == "banner":
                self.ignore(ln, stripped)
                i = self._skip_banner(lines, i, stripped)
                continue
            try:
                self._global(tokens, ln, stripped)
            except LineError as exc:
                self.error(ln, str(exc))
                self.block = _Block(stripped, None)
        config = build(self)
        return ParseResult(
            self.source,
            config if not self.errors else None,
            sorted(self.errors, key=lambda e: e.line),
            sorted(self.warnings, key=lambda w: w.line),
            self.ignored,
        )

    def _block_line(self, tokens: list[str], ln: int, text: str) -> None:
        block = self.block
        if block is None:
            self.warn(ln, f"indented line outside any block: '{text}'")
            return
        if block.ignored:
            self.ignore(ln, text)
            return
        if block.handle is None:
            return
        try:
            outcome = block.handle(tokens, ln)
        except LineError as exc:
            self.error(ln, f"{exc}")
            return
        if outcome == "ignored":
            self.ignore(ln, text)
        elif outcome == "secondary":
            self.warn(ln, f"secondary addresses are not used by this stack: '{text}'")
        elif outcome == "unknown":
            self.warn(ln, f"unknown command in '{block.title}': '{text}'")

    def _after_end(self, lines: list[str], i: int) -> None:
        for j in range(i, len(lines)):
            rest = lines[j].strip()
            if rest and not rest.startswith("!"):
                self.warn(j + 1, "text after 'end' is not part of the configuration")
                return

    def _skip_banner(self, lines: list[str], i: int, text: str) -> int:
        """Skip a ``banner KIND DELIM ... DELIM`` that may span lines."""
        parts = text.split(None, 2)
        if len(parts) < 3:
            return i
        body = parts[2]
        delim = "^C" if body.startswith("^C") else body[0]
        if delim in body[len(delim):]:
            return i
        while i < len(lines):
            self.ignore(i + 1, lines[i].strip())
            i += 1
            if delim in lines[i - 1]:
                break
        return i

    def _open(self, title: str, handle: BlockHandler) -> None:
        self.block = _Block(title, handle)

    def _once(self, key: str, ln: int) -> None:
        prev = self.global_lines.get(key)
        if prev is not None:
            raise LineError(f"duplicate '{key}' (already set at line {prev})")
        self.global_lines[key] = ln

    # -- global commands -------------------------------------------------

    def _global(self, t: list[str], ln: int, text: str) -> None:
        head = t[0]
        if head == "hostname":
            self._once("hostname", ln)
            if len(t) != 2:
                raise LineError("hostname: expected one name")
            self.hostname = (t[1], ln)
        elif head == "crypto" and t[1:2] == ["isakmp"]:
            self._crypto_isakmp(t, ln, text)
        elif head == "crypto" and t[1:2] == ["ipsec"]:
            self._crypto_ipsec(t, ln, text)
        elif t[:3] == ["crypto", "ikev2", "cookie-challenge"]:
            self._once("crypto ikev2 cookie-challenge", ln)
            self.ikev2.cookie_line(t)
        elif head == "crypto" and t[1:2] == ["ikev2"]:
            self._open(text, self.ikev2.open(t, ln))
        elif head == "crypto" and t[1:2] == ["map"]:
            self._crypto_map(t, ln, text)
        elif head == "interface":
            self._interface(t, ln, text)
        elif head == "access-list":
            self._numbered_acl(t, ln, text)
        elif t[:2] == ["ip", "access-list"]:
            self._named_acl(t, ln, text)
        elif t[:2] == ["ip", "route"]:
            self._route(t, ln)
        elif t[:2] == ["router", "ospf"]:
            self._router_ospf(t, ln, text)
        elif t[:2] == ["router", "bgp"]:
            self._router_bgp(t, ln, text)
        elif any(tuple(t[: len(p)]) == p for p in IGNORED_GLOBAL):
            self.ignore(ln, text)
            self.block = _Block(text, None, ignored=True)
        else:
            self.warn(ln, f"unknown command: '{text}'")
            self.block = _Block(text, None)

    def _crypto_isakmp(self, t: list[str], ln: int, text: str) -> None:
        sub = t[2] if len(t) > 2 else None
        if sub == "policy":
            prio = integer(t[3] if len(t) == 4 else None, 1, 10000, "crypto isakmp policy priority")
            if prio in self.policies:
                raise LineError(f"duplicate crypto isakmp policy {prio} (first at line {self.policies[prio].line})")
            b = PolicyBuilder(prio, ln)
            self.policies[prio] = b
            self._open(text, lambda tok, line: policy_line(b, tok, line))
        elif sub == "key":
            self._isakmp_key(t, ln)
        elif sub == "keepalive":
            self._once("crypto isakmp keepalive", ln)
            seconds = integer(t[3] if len(t) > 3 else None, 10, 3600, "crypto isakmp keepalive seconds")
            rest = t[4:]
            retry = 2
            if rest and rest[0].isdigit():
                retry = integer(rest[0], 2, 60, "crypto isakmp keepalive retry seconds")
                rest = rest[1:]
            mode = KeepaliveMode.ON_DEMAND
            if rest:
                if len(rest) != 1 or rest[0] not in ("periodic", "on-demand"):
                    raise LineError(f"crypto isakmp keepalive: expected periodic or on-demand, got '{' '.join(rest)}'")
                mode = KeepaliveMode(rest[0])
            self.keepalive = IsakmpKeepalive(seconds, retry, mode, ln)
        elif sub == "nat" and t[3:4] == ["keepalive"]:
            self._once("crypto isakmp nat keepalive", ln)
            self.nat_keepalive = integer(t[4] if len(t) == 5 else None, 5, 3600, "crypto isakmp nat keepalive seconds")
        elif sub == "invalid-spi-recovery" and len(t) == 3:
            self.invalid_spi_recovery = True
        elif any(tuple(t[: len(p)]) == p for p in IGNORED_GLOBAL):
            self.ignore(ln, text)
        else:
            self.warn(ln, f"unknown command: '{text}'")
            self.block = _Block(text, None)

    def _isakmp_key(self, t: list[str], ln: int) -> None:
        """``crypto isakmp key [0|6] KEY address A [MASK] [no-xauth]``."""
        rest = t[3:]
        if len(rest) >= 2 and rest[0] in ("0", "6") and rest[1] != "address":
            if rest[0] == "6":
                raise LineError("crypto isakmp key 6: encrypted keys cannot be read, give the key in clear text")
            rest = rest[1:]
        if rest and rest[-1] == "no-xauth":
            rest = rest[:-1]
        if len(rest) >= 2 and rest[1] == "hostname":
            raise LineError("crypto isakmp key ... hostname: only 'address' keys are supported")
        if len(rest) not in (3, 4) or rest[1] != "address":
            raise LineError("crypto isakmp key: expected KEY address ADDRESS [MASK]")
        key = rest[0]
        address = ipv4(rest[2], "crypto isakmp key address")
        mask = address_mask(address, rest[3] if len(rest) == 4 else None, "crypto isakmp key mask")
        new = IsakmpKey(key, address, mask, ln)
        for k in self.keys:
            if k.network == new.network:
                raise LineError(f"duplicate crypto isakmp key for {new.network} (first at line {k.line})")
        self.keys.append(new)

    def _crypto_ipsec(self, t: list[str], ln: int, text: str) -> None:
        sub = t[2] if len(t) > 2 else None
        if sub == "transform-set":
            if len(t) < 4:
                raise LineError("crypto ipsec transform-set: expected NAME TRANSFORM...")
            name = t[3]
            if name in self.transform_sets:
                raise LineError(f"duplicate transform set '{name}' (first at line {self.transform_sets[name].line})")
            try:
                transforms = parse_transforms(t[4:])
            except LineError:
                self.broken.add(("transform-set", name))
                raise
            b = TransformSetBuilder(name, transforms, ln)
            self.transform_sets[name] = b
            self._open(text, lambda tok, line: transform_set_line(b, tok, line))
        elif sub == "profile":
            if len(t) != 4:
                raise LineError("crypto ipsec profile: expected one NAME")
            name = t[3]
            if name in self.profiles:
                raise LineError(f"duplicate crypto ipsec profile '{name}' (first at line {self.profiles[name].line})")
            p = ProfileBuilder(name, ln)
            self.profiles[name] = p
            self._open(text, lambda tok, line: profile_line(p, tok, line))
        elif sub == "security-association" and t[3:4] == ["lifetime"]:
            sa_lifetime(self.global_sa, t[3:], ln, "crypto ipsec security-association")
        elif sub == "security-association" and t[3:4] == ["replay"]:
            self._once("crypto ipsec security-association replay", ln)
            if t[4:] == ["disable"]:
                self.replay_window = None
            elif t[4:5] == ["window-size"] and len(t) == 6:
                size = integer(t[5], 64, 1024, "replay window-size")
                if size not in (64, 128, 256, 512, 1024):
                    raise LineError(f"replay window-size: expected 64|128|256|512|1024, got {size}")
                self.replay_window = size
            else:
                raise LineError("crypto ipsec security-association replay: expected 'window-size N' or 'disable'")
        elif any(tuple(t[: len(p)]) == p for p in IGNORED_GLOBAL):
            self.ignore(ln, text)
        else:
            self.warn(ln, f"unknown command: '{text}'")
            self.block = _Block(text, None)

    def _crypto_map(self, t: list[str], ln: int, text: str) -> None:
        """``crypto map NAME SEQ [ipsec-isakmp]`` | ``crypto map NAME
        local-address IFACE``."""
        if len(t) < 4:
            raise LineError("crypto map: expected NAME SEQ ipsec-isakmp")
        name = t[2]
        if t[3] == "local-address":
            if len(t) != 5:
                raise LineError("crypto map local-address: expected one interface name")
            self.map_local[name] = (interface_name(t[4], "crypto map local-address"), ln)
            return
        seq = integer(t[3], 1, 65535, "crypto map sequence number")
        kind = t[4:]
        if kind not in ([], ["ipsec-isakmp"]):
            raise LineError(f"crypto map: only 'ipsec-isakmp' entries are supported, got '{' '.join(kind)}'")
        if (name, seq) in self.map_entries:
            raise LineError(f"duplicate crypto map {name} {seq} (first at line {self.map_entries[(name, seq)].line})")
        e = MapEntryBuilder(name, seq, ln)
        self.map_entries[(name, seq)] = e
        self._open(text, lambda tok, line: map_entry_line(e, tok, line))

    def _interface(self, t: list[str], ln: int, text: str) -> None:
        name = interface_name(" ".join(t[1:]), "interface")
        if name in self.interfaces:
            raise LineError(f"duplicate interface {name} (first at line {self.interfaces[name].line})")
        b = InterfaceBuilder(name, ln)
        self.interfaces[name] = b

        def handle(tok: list[str], line: int) -> str:
            if tok[:2] == ["ip", "ospf"]:
                ospf = self.ospf_interfaces.setdefault(name, OspfIfBuilder(name, line))
                return ospf_interface_line(ospf, tok, line)
            return interface_line(b, tok, line)

        self._open(f"interface {name}", handle)

    def _router_ospf(self, t: list[str], ln: int, text: str) -> None:
        """``router ospf PROCESS-ID`` (VRFs are not supported)."""
        if len(t) != 3:
            raise LineError("router ospf: expected one process id 1-65535 (VRFs are not supported)")
        pid = integer(t[2], 1, 65535, "router ospf process id")
        if pid in self.ospf:
            raise LineError(f"duplicate router ospf {pid} (first at line {self.ospf[pid].line})")
        b = self.ospf[pid] = OspfBuilder(pid, ln)
        self._open(text, lambda tok, line: ospf_line(b, tok, line))

    def _router_bgp(self, t: list[str], ln: int, text: str) -> None:
        """``router bgp ASN``: one per router (IOS: "BGP is already running")."""
        if len(t) != 3:
            raise LineError("router bgp: expected one AS number")
        number = asn(t[2], "router bgp AS number")
        if self.bgp is not None:
            raise LineError(f"router bgp {number}: BGP is already running (router bgp {self.bgp.asn} "
                            f"at line {self.bgp.line})")
        b = self.bgp = BgpBuilder(number, ln)
        self._open(text, lambda tok, line: bgp_line(b, tok, line))

    def _acl_entry(self, b: AclBuilder, t: list[str], ln: int) -> str:
        if t[0] == "remark":
            return "ignored"
        if t[0].isdigit():  # sequence number of a named-list entry
            t = t[1:]
            if not t:
                raise LineError("access-list entry: expected permit or deny after the sequence number")
        entry = acl.parse_extended(t, ln) if b.extended else acl.parse_standard(t, ln)
        b.entries.append(entry)
        return "ok"

    def _numbered_acl(self, t: list[str], ln: int, text: str) -> None:
        if len(t) < 3:
            raise LineError("access-list: expected NUMBER permit|deny ...")
        number = integer(t[1], 1, 2699, "access-list number")
        extended = any(number in r for r in _EXTENDED_ACL)
        if not extended and not any(number in r for r in _STANDARD_ACL):
            raise LineError(f"access-list {number}: not an IP access-list number (1-199, 1300-2699)")
        if t[2] == "remark":
            self.ignore(ln, text)
            return
        b = self.acls.setdefault(t[1], AclBuilder(t[1], extended, ln))
        try:
            self._acl_entry(b, t[2:], ln)
        except LineError:
            self.broken.add(("acl", t[1]))
            raise

    def _named_acl(self, t: list[str], ln: int, text: str) -> None:
        if len(t) != 4 or t[2] not in ("standard", "extended"):
            raise LineError("ip access-list: expected standard|extended NAME")
        name = t[3]
        if name in self.acls:
            raise LineError(f"duplicate access-list '{name}' (first at line {self.acls[name].line})")
        b = AclBuilder(name, t[2] == "extended", ln)
        self.acls[name] = b

        def handle(tok: list[str], line: int) -> str:
            try:
                return self._acl_entry(b, tok, line)
            except LineError:
                self.broken.add(("acl", name))
                raise

        self._open(text, handle)

    def _route(self, t: list[str], ln: int) -> None:
        """``ip route PREFIX MASK {NEXTHOP | IFACE [NEXTHOP]} [DISTANCE]
        [tag N] [name X] [permanent]``."""
        if t[2:3] == ["vrf"]:
            raise LineError("ip route vrf: VRFs are not supported")
        if len(t) < 5:
            raise LineError("ip route: expected PREFIX MASK NEXT-HOP|INTERFACE")
        prefix = network(t[2], t[3], "ip route prefix")
        i = 4
        next_hop: IPv4Address | None = None
        iface: str | None = None
        if t[i][0].isdigit():
            next_hop = ipv4(t[i], "ip route next hop")
            i += 1
        else:
            iface = interface_name(t[i], "ip route interface")
            i += 1
            if i < len(t) and t[i].count(".") == 3:
                next_hop = ipv4(t[i], "ip route next hop")
                i += 1
        distance, tag, name, permanent = 1, None, None, False
        while i < len(t):
            opt = t[i]
            if opt.isdigit():
                distance = integer(opt, 1, 255, "ip route distance")
                i += 1
            elif opt == "tag":
                tag = integer(t[i + 1] if i + 1 < len(t) else None, 0, 4294967295, "ip route tag")
                i += 2
            elif opt == "name":
                if i + 1 >= len(t):
                    raise LineError("ip route name: expected a name")
                name = t[i + 1]
                i += 2
            elif opt == "permanent":
                permanent = True
                i += 1
            else:
                raise LineError(f"ip route: unexpected '{opt}', expected a distance, tag N, name X or permanent")
        for r in self.routes:
            if r.prefix == prefix and r.next_hop == next_hop and r.interface == iface:
                raise LineError(f"duplicate ip route {prefix} (first at line {r.line})")
        self.routes.append(StaticRoute(prefix, next_hop, iface, distance, tag, name, permanent, ln))
