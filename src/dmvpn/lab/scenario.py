"""Lab scenario files (TOML): nodes, links, traffic, probes, faults, shows.

A scenario names IOS config files for its nodes and says how they are
wired and what happens to them in virtual time::

    [lab]
    duration = 3600          # virtual seconds
    seed = 1
    profile = "cisco-iosxe"  # behaviour profile for every node (see ike/profiles.py)
    nhrp = true              # run NHRP on tunnels with ``ip nhrp`` lines (false: static maps only)

    [[node]]
    name = "hub"
    config = "hub.cfg"       # relative to the scenario file

    [[link]]                 # a switched segment; nodes attach by interface
    name = "wan"
    endpoints = ["hub:GigabitEthernet0/0/2", "spoke:GigabitEthernet0/0/2"]
    delay_ms = 1.0
    loss = 0.0

    [[flow]]                 # bulk traffic: a fluid, credited to the SAs
    src = "hub"
    dst = "10.2.2.2"         # overlay address
    rate_mbps = 850
    packet_bytes = 1400

    [[probe]]                # real packets through the real ESP code
    src = "spoke"
    dst = "10.2.2.1"
    interval = 1.0
    source = "Loopback0"     # optional: ping's source (an address or interface of src)

    [[fault]]
    at = 600
    action = "link-down"     # link-down | link-up | node-restart | node-readdress | impair |
    target = "wan"           # drop-deletes | clock-jump

    [[fault]]                # the link's impairments change for a while
    at = 900                 # (end-to-end figures, as in [[link]])
    action = "impair"
    target = "wan"
    duration = 30            # then the link's own figures return (default: to the end)
    loss = 0.3               # also duplicate, reorder, delay_ms, jitter_ms

    [[fault]]                # every ISAKMP Informational exchange (where DELETEs
    at = 1200                # and DPD travel, RFC 2408 4.8) on the link is lost
    action = "drop-deletes"
    target = "wan"
    duration = 120

    [[fault]]                # the node's clock jumps forward
    at = 1500
    action = "clock-jump"
    target = "hub"
    seconds = 300

    [[fault]]                # the node restarts with a new address on one
    at = 60                  # interface (a spoke's new DHCP lease)
    action = "node-readdress"
    target = "spoke3"
    interface = "GigabitEthernet0/0/0"
    address = "172.16.0.23"

    [[show]]
    at = 3600
    node = "hub"
    command = "show crypto ipsec sa"

Errors name the file, the line and the field: ``lab.toml:12: flow[1].rate_mbps:
expected a number > 0, got 'fast'``.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from enum import Enum
from ipaddress import AddressValueError, IPv4Address
from pathlib import Path
from typing import Any, Literal, NoReturn, overload

#: The longest lab run, in virtual seconds (a year: the lab is linear in
#: virtual time, a day takes minutes of wall time).
MAX_DURATION = 365 * 86400.0


class ScenarioError(Exception):
    """A scenario file is wrong; ``str()`` is the one-line message."""

    def __init__(self, source: str, line: int | None, where: str, message: str) -> None:
        self.source = source
        self.line = line
        self.where = where
        self.message = message
        loc = f"{source}:{line}" if line else source
        super().__init__(f"{loc}: {where}: {message}" if where else f"{loc}: {message}")


class FaultAction(Enum):
    LINK_DOWN = "link-down"
    LINK_UP = "link-up"
    NODE_RESTART = "node-restart"
    IMPAIR = "impair"
    DROP_DELETES = "drop-deletes"
    CLOCK_JUMP = "clock-jump"
    #: the node restarts with a new address on one interface (a spoke's DHCP lease changed)
    NODE_READDRESS = "node-readdress"


NODE_FAULTS = (FaultAction.NODE_RESTART, FaultAction.CLOCK_JUMP, FaultAction.NODE_READDRESS)
IMPAIRMENTS = ("loss", "duplicate", "reorder", "delay_ms", "jitter_ms")


@dataclass(frozen=True)
class NodeSpec:
    name: str
    config: Path
    profile: str | None = None


@dataclass(frozen=True)
class LinkSpec:
    """A switched segment joining ``endpoints`` (node, interface) pairs.
    ``delay_ms``, ``jitter_ms`` and ``loss`` are end-to-end figures between
    two endpoints (the runner splits them over each attachment's up- and
    downlink); ``bandwidth_mbps`` and ``mtu`` apply to every attachment."""

    name: str
    endpoints: tuple[tuple[str, str], ...]
    delay_ms: float = 1.0
    jitter_ms: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    bandwidth_mbps: float | None = None
    mtu: int = 1500


@dataclass(frozen=True)
class FlowSpec:
    """Bulk traffic from ``src`` to the overlay address ``dst``, as a fluid."""

    name: str
    src: str
    dst: IPv4Address
    rate_mbps: float
    packet_bytes: int = 1400
    start: float = 0.0
    stop: float | None = None


@dataclass(frozen=True)
class ProbeSpec:
    """Pings from ``src`` to the overlay address ``dst`` every ``interval`` s."""

    name: str
    src: str
    dst: IPv4Address
    interval: float = 1.0
    size: int = 100
    start: float = 0.0
    stop: float | None = None
    source: str | None = None


@dataclass(frozen=True)
class FaultSpec:
    """A fault at ``at``: ``duration`` bounds impair and drop-deletes (None:
    to the end), ``seconds`` is how far a clock jumps; the impairments are
    end-to-end figures, as in :class:`LinkSpec`."""

    at: float
    action: FaultAction
    target: str
    duration: float | None = None
    seconds: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    interface: str | None = None  # node-readdress: the interface and its new address
    address: IPv4Address | None = None


@dataclass(frozen=True)
class ShowSpec:
    at: float
    node: str
    command: str


@dataclass(frozen=True)
class Scenario:
    source: str
    duration: float
    seed: int
    profile: str
    nodes: tuple[NodeSpec, ...]
    links: tuple[LinkSpec, ...]
    flows: tuple[FlowSpec, ...] = ()
    probes: tuple[ProbeSpec, ...] = ()
    faults: tuple[FaultSpec, ...] = ()
    shows: tuple[ShowSpec, ...] = ()
    name: str = "lab"
    nhrp: bool = True


_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.-]+)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")


class _Lines:
    """Where each table and key of a TOML text stands, for error messages."""

    def __init__(self, text: str) -> None:
        self.tables: dict[tuple[str, int], int] = {}
        self.keys: dict[tuple[str, int, str], int] = {}
        counts: dict[str, int] = {}
        table, index = "", 0
        for no, line in enumerate(text.splitlines(), start=1):
            m = _HEADER.match(line)
            if m:
                table = m.group(2)
                if m.group(1) == "[[":
                    index = counts.get(table, 0)
                    counts[table] = index + 1
                else:
                    index = 0
                self.tables[(table, index)] = no
                continue
            k = _KEY.match(line)
            if k:
                self.keys.setdefault((table, index, k.group(1)), no)

    def of(self, table: str, index: int, key: str | None = None) -> int | None:
        if key is not None and (table, index, key) in self.keys:
            return self.keys[(table, index, key)]
        return self.tables.get((table, index))


class _Reader:
    """Typed access to one table of the scenario, with located errors."""

    def __init__(self, source: str, lines: _Lines, table: str, index: int,
                 data: dict[str, Any], label: str, known: set[str]) -> None:
        self.source, self.lines, self.table, self.index = source, lines, table, index
        self.data, self.label = data, label
        for key in data:
            if key not in known:
                self.fail(key, f"unknown field (known: {', '.join(sorted(known))})")

    def fail(self, key: str | None, message: str) -> NoReturn:
        where = f"{self.label}.{key}" if key else self.label
        raise ScenarioError(self.source, self.lines.of(self.table, self.index, key), where, message)

    def has(self, key: str) -> bool:
        return key in self.data

    @overload
    def string(self, key: str, default: str) -> str: ...
    @overload
    def string(self, key: str, *, required: Literal[True]) -> str: ...
    @overload
    def string(self, key: str, default: None = None) -> str | None: ...

    def string(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        """The field as a non-empty string; ``default`` if absent (an error if ``required``)."""
        if key not in self.data:
            if required:
                self.fail(None, f"missing field '{key}'")
            return default
        value = self.data[key]
        if not isinstance(value, str) or not value.strip():
            self.fail(key, f"expected a non-empty string, got {value!r}")
        return value

    @overload
    def number(self, key: str, default: float, *, minimum: float | None = None, maximum: float | None = None,
               positive: bool = False) -> float: ...
    @overload
    def number(self, key: str, *, required: Literal[True], minimum: float | None = None,
               maximum: float | None = None, positive: bool = False) -> float: ...
    @overload
    def number(self, key: str, default: None, *, minimum: float | None = None, maximum: float | None = None,
               positive: bool = False) -> float | None: ...

    def number(self, key: str, default: float | None = None, *, required: bool = False,
               minimum: float | None = None, maximum: float | None = None,
               positive: bool = False) -> float | None:
        """The field as a number within the bounds; ``default`` if absent (an error if ``required``)."""
        if key not in self.data:
            if required:
                self.fail(None, f"missing field '{key}'")
            return default
        value = self.data[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(key, f"expected a number, got {value!r}")
        if positive and value <= 0:
            self.fail(key, f"expected a number > 0, got {value!r}")
        if minimum is not None and value < minimum:
            self.fail(key, f"expected a number >= {minimum}, got {value!r}")
        if maximum is not None and value > maximum:
            self.fail(key, f"expected a number <= {maximum}, got {value!r}")
        return float(value)

    def integer(self, key: str, default: int, *, minimum: int | None = None) -> int:
        if key not in self.data:
            return default
        value = self.data[key]
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"expected an integer, got {value!r}")
        if minimum is not None and value < minimum:
            self.fail(key, f"expected an integer >= {minimum}, got {value!r}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        if key not in self.data:
            return default
        value = self.data[key]
        if not isinstance(value, bool):
            self.fail(key, f"expected true or false, got {value!r}")
        return value

    def address(self, key: str) -> IPv4Address:
        text = self.string(key, required=True)
        try:
            return IPv4Address(text)
        except AddressValueError:
            self.fail(key, f"expected an IPv4 address, got {text!r}")


def _tables(doc: dict[str, Any], name: str, source: str, lines: _Lines) -> list[dict[str, Any]]:
    value = doc.get(name, [])
    if isinstance(value, dict):
        raise ScenarioError(source, lines.of(name, 0), name, f"use [[{name}]] (an array of tables)")
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise ScenarioError(source, None, name, f"use [[{name}]] tables")
    return value


_FAULT_FIELDS = {"at", "action", "target", "duration", "seconds", "interface", "address", *IMPAIRMENTS}


def _fault(r: _Reader, node_names: set[str], link_names: set[str]) -> FaultSpec:
    """One [[fault]] table."""
    action_text = r.string("action", required=True)
    try:
        action = FaultAction(action_text)
    except ValueError:
        r.fail("action", f"expected one of {', '.join(a.value for a in FaultAction)}, got {action_text!r}")
    target = r.string("target", required=True)
    pool = node_names if action in NODE_FAULTS else link_names
    if target not in pool:
        r.fail("target", f"no {'node' if pool is node_names else 'link'} named {target!r}")
    for key, allowed in (("duration", action in (FaultAction.IMPAIR, FaultAction.DROP_DELETES)),
                         ("seconds", action is FaultAction.CLOCK_JUMP),
                         ("interface", action is FaultAction.NODE_READDRESS),
                         ("address", action is FaultAction.NODE_READDRESS),
                         *((k, action is FaultAction.IMPAIR) for k in IMPAIRMENTS)):
        if r.has(key) and not allowed:
            r.fail(key, f"not a field of a {action.value} fault")
    if action is FaultAction.CLOCK_JUMP and not r.has("seconds"):
        r.fail(None, "missing field 'seconds' (how far the clock jumps forward)")
    readdress = action is FaultAction.NODE_READDRESS
    return FaultSpec(
        at=r.number("at", required=True, minimum=0), action=action, target=target,
        duration=r.number("duration", None, positive=True),
        seconds=r.number("seconds", 0.0, positive=True),
        loss=r.number("loss", 0.0, minimum=0, maximum=1),
        duplicate=r.number("duplicate", 0.0, minimum=0, maximum=1),
        reorder=r.number("reorder", 0.0, minimum=0, maximum=1),
        delay_ms=r.number("delay_ms", 0.0, minimum=0),
        jitter_ms=r.number("jitter_ms", 0.0, minimum=0),
        interface=r.string("interface", required=True) if readdress else None,
        address=r.address("address") if readdress else None)


def parse_scenario(text: str, source: str = "<scenario>", base: Path | None = None) -> Scenario:
    """Parse scenario ``text``; config paths are relative to ``base``."""
    base = base or Path(".")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise ScenarioError(source, int(m.group(1)) if m else None, "", f"not valid TOML: {exc}") from None
    lines = _Lines(text)
    top_known = {"lab", "node", "link", "flow", "probe", "fault", "show"}
    for key in doc:
        if key not in top_known:
            raise ScenarioError(source, lines.of(key, 0), key,
                                f"unknown table (known: {', '.join(sorted(top_known))})")
    lab_table = doc.get("lab", {})
    if not isinstance(lab_table, dict):
        raise ScenarioError(source, lines.of("lab", 0), "lab", "use a single [lab] table")
    lab = _Reader(source, lines, "lab", 0, lab_table, "lab",
                  {"name", "duration", "seed", "profile", "nhrp"})
    duration = lab.number("duration", 3600.0, positive=True, maximum=MAX_DURATION)
    seed = lab.integer("seed", 1, minimum=0)
    profile = lab.string("profile", "cisco-iosxe")
    name = lab.string("name", "lab")
    nhrp = lab.boolean("nhrp", True)

    nodes: list[NodeSpec] = []
    for i, t in enumerate(_tables(doc, "node", source, lines)):
        r = _Reader(source, lines, "node", i, t, f"node[{i}]", {"name", "config", "profile"})
        node_name = r.string("name", required=True)
        if any(n.name == node_name for n in nodes):
            r.fail("name", f"duplicate node name {node_name!r}")
        config = base / r.string("config", required=True)
        if not config.is_file():
            r.fail("config", f"no such file: {config}")
        nodes.append(NodeSpec(node_name, config, r.string("profile")))
    if not nodes:
        raise ScenarioError(source, None, "node", "a scenario needs at least one [[node]]")
    node_names = {n.name for n in nodes}

    def node_ref(r: _Reader, key: str) -> str:
        value = r.string(key, required=True)
        if value not in node_names:
            r.fail(key, f"no node named {value!r} (nodes: {', '.join(sorted(node_names))})")
        return value

    links: list[LinkSpec] = []
    for i, t in enumerate(_tables(doc, "link", source, lines)):
        r = _Reader(source, lines, "link", i, t, f"link[{i}]",
                    {"name", "endpoints", "delay_ms", "jitter_ms", "loss", "duplicate",
                     "reorder", "bandwidth_mbps", "mtu"})
        raw = t.get("endpoints")
        if not isinstance(raw, list) or len(raw) < 2:
            r.fail("endpoints" if raw is not None else None,
                   "expected a list of at least two \"node:interface\" strings")
        endpoints = []
        for item in raw:
            if not isinstance(item, str) or ":" not in item:
                r.fail("endpoints", f"expected \"node:interface\", got {item!r}")
            node_name, iface = item.split(":", 1)
            if node_name not in node_names:
                r.fail("endpoints", f"no node named {node_name!r}")
            endpoints.append((node_name, iface))
        links.append(LinkSpec(
            name=r.string("name", f"link{i}"),
            endpoints=tuple(endpoints),
            delay_ms=r.number("delay_ms", 1.0, minimum=0),
            jitter_ms=r.number("jitter_ms", 0.0, minimum=0),
            loss=r.number("loss", 0.0, minimum=0, maximum=1),
            duplicate=r.number("duplicate", 0.0, minimum=0, maximum=1),
            reorder=r.number("reorder", 0.0, minimum=0, maximum=1),
            bandwidth_mbps=r.number("bandwidth_mbps", None, positive=True),
            mtu=r.integer("mtu", 1500, minimum=68),
        ))
    link_names = {link.name for link in links}

    flows = []
    for i, t in enumerate(_tables(doc, "flow", source, lines)):
        r = _Reader(source, lines, "flow", i, t, f"flow[{i}]",
                    {"name", "src", "dst", "rate_mbps", "packet_bytes", "start", "stop"})
        flows.append(FlowSpec(
            name=r.string("name", f"flow{i}"), src=node_ref(r, "src"), dst=r.address("dst"),
            rate_mbps=r.number("rate_mbps", required=True, positive=True),
            packet_bytes=r.integer("packet_bytes", 1400, minimum=20),
            start=r.number("start", 0.0, minimum=0), stop=r.number("stop", None, minimum=0)))
    probes = []
    for i, t in enumerate(_tables(doc, "probe", source, lines)):
        r = _Reader(source, lines, "probe", i, t, f"probe[{i}]",
                    {"name", "src", "dst", "interval", "size", "start", "stop", "source"})
        probes.append(ProbeSpec(
            name=r.string("name", f"probe{i}"), src=node_ref(r, "src"), dst=r.address("dst"),
            interval=r.number("interval", 1.0, positive=True),
            size=r.integer("size", 100, minimum=28),
            start=r.number("start", 0.0, minimum=0), stop=r.number("stop", None, minimum=0),
            source=r.string("source")))
    faults = [_fault(_Reader(source, lines, "fault", i, t, f"fault[{i}]", _FAULT_FIELDS), node_names, link_names)
              for i, t in enumerate(_tables(doc, "fault", source, lines))]
    shows = []
    for i, t in enumerate(_tables(doc, "show", source, lines)):
        r = _Reader(source, lines, "show", i, t, f"show[{i}]", {"at", "node", "command"})
        shows.append(ShowSpec(r.number("at", required=True, minimum=0), node_ref(r, "node"),
                              r.string("command", required=True)))
    return Scenario(source=source, duration=duration, seed=seed, profile=profile,
                    nodes=tuple(nodes), links=tuple(links), flows=tuple(flows),
                    probes=tuple(probes), faults=tuple(faults), shows=tuple(shows), name=name, nhrp=nhrp)


def load_scenario(path: str | Path) -> Scenario:
    """Read and parse a scenario file; raises :class:`ScenarioError`."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScenarioError(str(path), None, "", f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(str(path), None, "", f"not UTF-8 text (byte {exc.start})") from None
    return parse_scenario(text, str(path), path.parent)
