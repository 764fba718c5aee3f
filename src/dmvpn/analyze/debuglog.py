"""``debug crypto isakmp`` / ``debug crypto ipsec`` logs as IOS and IOS-XE
print them: with or without milliseconds, conn-ids, ``ISAKMP-PAK`` lines,
sequence numbers and syslog-server prefixes. No parser library covers debug
output; this is our own.

Each line becomes a :class:`DebugLine` (time, conn-id, message); the lines
that belong to one exchange (one message ID, RFC 2408 section 3.1) become a
:class:`Node`, as IOS calls it: a Quick Mode (RFC 2409 section 5.5) or an
Informational exchange (section 5.7)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dmvpn.analyze.text import Line, Unread

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DAYS_BEFORE = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)
_STAMP = re.compile(
    r"(?P<mon>" + "|".join(_MONTHS) + r")\s+(?P<day>\d{1,2})\s+(?:\d{4}\s+)?"
    r"(?P<h>\d{1,2}):(?P<mi>\d{2}):(?P<s>\d{2})(?:\.(?P<frac>\d{1,6}))?")
_UPTIME = re.compile(r"(?:^|\s)(?P<h>\d+):(?P<mi>\d{2}):(?P<s>\d{2})(?:\.(?P<frac>\d{1,6}))?:")
_FACILITY = re.compile(
    r"(?P<fac>ISAKMP(?:-PAK|-ERROR|-EVT)?|IPSEC|IKEv2(?:-[A-Z]+)?|%CRYPTO[-_][\w-]+|CRYPTO_\w+)"
    r"\s*(?:\((?P<fn>[a-z_]\w*)\))?\s*:?\s*(?:\((?P<conn>[^()]*)\)\s*:?)?\s*(?P<msg>.*)$")


@dataclass(frozen=True, slots=True)
class DebugLine:
    source: str
    no: int
    time: float | None  # seconds since the start of the (unknown) year, or of uptime
    stamp: str  # the timestamp as printed
    facility: str
    conn: str | None
    message: str


def _seconds(m: re.Match[str], with_date: bool) -> float:
    frac = m.group("frac")
    t: float = int(m.group("h")) * 3600 + int(m.group("mi")) * 60 + int(m.group("s"))
    t += float(f"0.{frac}") if frac else 0.0
    if with_date:
        t += (_DAYS_BEFORE[_MONTHS.index(m.group("mon"))] + int(m.group("day"))) * 86400
    return t


def parse_line(line: Line) -> DebugLine | None:
    """``line`` as a debug line, or None when it is not one."""
    m = _FACILITY.search(line.text)
    if m is None:
        return None
    prefix = line.text[: m.start()]
    stamps = list(_STAMP.finditer(prefix))
    time, stamp = None, ""
    if stamps:
        time, stamp = _seconds(stamps[-1], True), stamps[-1].group(0)
    elif up := list(_UPTIME.finditer(prefix)):
        time, stamp = _seconds(up[-1], False), up[-1].group(0).strip(" :")
    conn = m.group("conn")
    return DebugLine(line.source, line.no, time, stamp, m.group("fac"),
                     conn.strip() if conn is not None else None, m.group("msg").strip())


# ---------------------------------------------------------------- exchanges

_MSGID = re.compile(r"(?:message ID = |M-ID of |Node |set new node |deleting node |purging node |"
                    r"msgid |node -?)(\d+)")


@dataclass(slots=True)
class Node:
    """One exchange on one router (IOS's "node"), by message ID."""

    msgid: int
    conn: str | None
    first_line: int
    first_time: float | None
    source: str = ""
    stamp: str = ""  # the start's (or first line's) timestamp as printed
    kind: str = ""  # "quick mode" | "informational" | ""
    role: str = ""  # "initiator" | "responder" | ""
    started_at: float | None = None
    start_line: int = 0
    installed: list[str] = field(default_factory=list)  # SPIs, as printed
    deleted_spis: list[str] = field(default_factory=list)  # DELETE payloads received
    completed_at: float | None = None
    end_reason: str = ""
    purged_line: int = 0
    purged_stamp: str = ""
    purged_at: float | None = None
    peer: str = ""
    life_seconds: int | None = None
    life_kilobytes: int | None = None
    kilobyte_life_offered: bool = False
    pfs_offered: bool = False
    failure: str = ""


@dataclass(slots=True)
class IpsecEvent:
    """``debug crypto ipsec``: an SA created or deleted (``IPSEC(create_sa)``,
    ``IPSEC(delete_sa)``), with what its continuation lines say."""

    action: str  # "created" | "deleted"
    line: int
    time: float | None
    stamp: str
    spi: str = ""
    conn_id: int | None = None
    dest: str = ""


@dataclass(slots=True)
class DebugLog:
    """What one router's debug output says."""

    lines: list[DebugLine] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    ipsec: list[IpsecEvent] = field(default_factory=list)
    local: str = ""
    peers: list[str] = field(default_factory=list)
    unread: list[Unread] = field(default_factory=list)

    def quick_modes(self) -> list[Node]:
        return [n for n in self.nodes if n.kind == "quick mode"]


_PEER = re.compile(r"(?:sending packet to|received packet from)\s+(\d+\.\d+\.\d+\.\d+)")
_OUTSTANDING = re.compile(r"local (\d+\.\d+\.\d+\.\d+) port \d+, remote (\d+\.\d+\.\d+\.\d+) port")
_INSTALLED = re.compile(r"Successfully installed IPSEC SA \(SPI:(0x[0-9A-Fa-f]+)\)")
_DELETE_SPI = re.compile(r"(?:KEY_MGR_DELETE_SAS for IPSEC SA|delete payload for protocol \d+)"
                         r".*?\(?SPI:?\s*(0x[0-9A-Fa-f]+)\)?", re.IGNORECASE)
_LIFE_BASIC = re.compile(r"SA life duration \(basic\) of (\d+)")
_LIFE_VPI = re.compile(r"SA life duration \(VPI\) of\s+((?:0x[0-9A-Fa-f]{1,2}\s*)+)")
_STATE = re.compile(r"New State = (\S+)")


def _spi(text: str) -> str:
    """``0x50304c8`` -> ``0x050304C8``, as the SA table prints it."""
    return f"0x{int(text, 16):08X}"


class _Builder:
    def __init__(self, log: DebugLog) -> None:
        self.log = log
        self.nodes: dict[tuple[str | None, int], Node] = {}
        self.current: dict[str | None, Node] = {}  # the node each conn-id's lines are about
        self.life_kind: dict[str | None, str] = {}  # "seconds" | "kilobytes": the last life type

    def node(self, d: DebugLine, msgid: int) -> Node:
        key = (d.conn, msgid)
        n = self.nodes.get(key)
        if n is None:
            n = Node(msgid, d.conn, d.no, d.time, d.source, d.stamp)
            self.nodes[key] = n
            self.log.nodes.append(n)
        return n

    def feed(self, d: DebugLine) -> None:
        msg = d.message
        self._addresses(msg)
        m = _MSGID.search(msg)
        if m and int(m.group(1)) != 0 and not msg.startswith("purging node"):
            self.current[d.conn] = self.node(d, int(m.group(1)))
        n = self.current.get(d.conn)
        if msg.startswith("purging node") and m:
            purged = self.node(d, int(m.group(1)))
            purged.purged_line, purged.purged_stamp, purged.purged_at = d.no, d.stamp, d.time
            return
        if n is not None:
            self._exchange(n, d, msg)

    def _addresses(self, msg: str) -> None:
        if (m := _PEER.search(msg)) and m.group(1) not in self.log.peers:
            self.log.peers.append(m.group(1))
        if m := _OUTSTANDING.search(msg):
            self.log.local = m.group(1)
            if m.group(2) not in self.log.peers:
                self.log.peers.append(m.group(2))

    def _start(self, n: Node, d: DebugLine, role: str) -> None:
        n.kind = "quick mode"
        if not n.role:
            n.role, n.started_at, n.start_line, n.stamp = role, d.time, d.no, d.stamp

    def _exchange(self, n: Node, d: DebugLine, msg: str) -> None:
        if msg.startswith("beginning Quick Mode exchange") or "QM Initiator gets spi" in msg:
            self._start(n, d, "initiator")
        elif "QM Responder gets spi" in msg:
            self._start(n, d, "responder")
        elif (s := _STATE.search(msg)) is not None:
            state = s.group(1)
            if state.startswith("IKE_QM_I_"):
                self._start(n, d, "initiator")
            elif state.startswith(("IKE_QM_R_", "IKE_QM_SPI_STARVE")):
                self._start(n, d, "responder")
            elif state == "IKE_QM_PHASE2_COMPLETE":
                n.kind, n.completed_at = "quick mode", d.time
        elif "processing SA payload" in msg or "Checking IPSec proposal" in msg:
            n.kind = n.kind or "quick mode"
        elif "processing DELETE payload" in msg or ("Informational" in msg and not n.kind):
            n.kind = "informational"
        if (m := _INSTALLED.search(msg)) and (spi := _spi(m.group(1))) not in n.installed:
            n.installed.append(spi)
        if (m := _DELETE_SPI.search(msg)) and (spi := _spi(m.group(1))) not in n.deleted_spis:
            n.deleted_spis.append(spi)
        self._lifetime(n, d, msg)
        if m := re.search(r'deleting node \d+ error (\w+) reason "([^"]*)"', msg):
            n.end_reason = m.group(2) if m.group(1) == "FALSE" else f"error: {m.group(2)}"
        if m := _PEER.search(msg):
            n.peer = n.peer or m.group(1)
        if "group is" in msg:
            n.pfs_offered = True

    def _lifetime(self, n: Node, d: DebugLine, msg: str) -> None:
        if "SA life type in seconds" in msg:
            self.life_kind[d.conn] = "seconds"
        elif "SA life type in kilobytes" in msg:
            self.life_kind[d.conn] = "kilobytes"
            n.kilobyte_life_offered = True
        elif (m := _LIFE_BASIC.search(msg)) or (m := _LIFE_VPI.search(msg)):
            if m.re is _LIFE_BASIC:
                value = int(m.group(1))
            else:
                value = int("".join(f"{int(b, 16):02x}" for b in m.group(1).split()), 16)
            if self.life_kind.get(d.conn) == "kilobytes":
                n.life_kilobytes = value
            else:
                n.life_seconds = value


#: The indented lines ``debug crypto ipsec`` prints under an ``IPSEC(...)`` line.
_CONTINUATION = re.compile(r"^\s+(?:\((?:sa|key eng\. msg\.)\)|(?:sa|local|remote)_\w+\s*=|"
                           r"(?:protocol|lifedur|spi|conn_id|keysize|flags|inbound|outbound|"
                           r"dest|src|proxy)\s*=|\w+_proxy\s*=|sa_\w+=)")
_SA_EVENT = re.compile(r"(?:create_sa\): sa created|delete_sa\): deleting SA)")


def _ipsec_event(d: DebugLine, text: str) -> IpsecEvent:
    event = IpsecEvent("created" if "sa created" in text else "deleted", d.no, d.time, d.stamp)
    if m := re.search(r"sa_spi=\s*(0x[0-9A-Fa-f]+)", text):
        event.spi = _spi(m.group(1))
    if m := re.search(r"sa_conn_id=\s*(\d+)", text):
        event.conn_id = int(m.group(1))
    if m := re.search(r"sa_dest=\s*([\d.]+\d)", text):
        event.dest = m.group(1)
    return event


def parse_debug(lines: list[Line]) -> DebugLog:
    """One router's debug output (``lines`` of one or more debug blocks);
    the indented lines ``debug crypto ipsec`` prints belong to the line
    before them."""
    log = DebugLog()
    builder = _Builder(log)
    event: IpsecEvent | None = None
    event_text = ""
    for line in lines:
        if not line.text.strip():
            continue
        if log.lines and log.lines[-1].facility == "IPSEC" and _CONTINUATION.match(line.text):
            if event is not None:
                event_text += " " + line.text.strip()
                updated = _ipsec_event(log.lines[-1], event_text)
                event.spi, event.conn_id, event.dest = updated.spi, updated.conn_id, updated.dest
            continue
        d = parse_line(line)
        if d is None:
            log.unread.append(Unread(line.source, line.no, line.text, "not a debug line"))
            continue
        log.lines.append(d)
        event = None
        if d.facility == "IPSEC" and _SA_EVENT.search(line.text):
            event_text = line.text
            event = _ipsec_event(d, event_text)
            log.ipsec.append(event)
        builder.feed(d)
    return log
