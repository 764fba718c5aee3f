"""Find the commands in pasted text: by their prompt lines (``HUB#show
crypto ipsec sa``, ``#sh cry isa sa``) or, where there is no prompt, by the
shape of their first lines (``interface: Tunnel0`` opens a ``show crypto
ipsec sa``; ``Sep  7 23:11:13: ISAKMP: ...`` is debug output).

Debug lines are recognised one by one wherever they are, since a terminal
monitor prints them in the middle of other output."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum

from dmvpn.analyze.text import Line, Unread


class Kind(Enum):
    IPSEC_SA = "show crypto ipsec sa"
    ISAKMP_SA = "show crypto isakmp sa"
    SESSION = "show crypto session"
    ISAKMP_POLICY = "show crypto isakmp policy"
    IPSEC_PROFILE = "show crypto ipsec profile"
    IKEV2_SA = "show crypto ikev2 sa"
    DMVPN = "show dmvpn"
    NHRP = "show ip nhrp"
    CONFIG = "running-config"
    DEBUG = "debug crypto"
    QUIET = "a command with nothing to read"  # debug/terminal/clear prompts, "No policy exists"
    OTHER = "a command this tool does not read"


@dataclass(slots=True)
class Block:
    """The output of one command: its kind, the prompt's command and host
    (when a prompt line opened it) and its lines."""

    kind: Kind
    lines: list[Line] = field(default_factory=list)
    command: str | None = None
    host: str | None = None


def _abbr(word: str, shortest: int) -> str:
    """A regex for ``word`` or any IOS abbreviation of it at least
    ``shortest`` letters long."""
    forms = [word[:n] for n in range(len(word), shortest - 1, -1)]
    return "(?:" + "|".join(forms) + r")\b"


_SH, _CRY = _abbr("show", 2), _abbr("crypto", 3)
_COMMANDS: tuple[tuple[Kind, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern, re.IGNORECASE)) for kind, pattern in (
        (Kind.IPSEC_SA, rf"{_SH}\s+{_CRY}\s+{_abbr('ipsec', 2)}\s+{_abbr('sa', 2)}"),
        (Kind.IPSEC_PROFILE, rf"{_SH}\s+{_CRY}\s+{_abbr('ipsec', 2)}\s+{_abbr('profile', 3)}"),
        (Kind.QUIET, rf"{_SH}\s+{_CRY}\s+{_abbr('ipsec', 2)}\s+{_abbr('policy', 3)}"),
        (Kind.ISAKMP_SA, rf"{_SH}\s+{_CRY}\s+{_abbr('isakmp', 2)}\s+{_abbr('sa', 2)}"),
        (Kind.ISAKMP_POLICY, rf"{_SH}\s+{_CRY}\s+{_abbr('isakmp', 2)}\s+{_abbr('policy', 2)}"),
        (Kind.SESSION, rf"{_SH}\s+{_CRY}\s+{_abbr('session', 2)}"),
        (Kind.IKEV2_SA, rf"{_SH}\s+{_CRY}\s+{_abbr('ikev2', 4)}\s+{_abbr('sa', 2)}"),
        (Kind.DMVPN, rf"{_SH}\s+{_abbr('dmvpn', 2)}"),
        (Kind.NHRP, rf"{_SH}\s+{_abbr('ip', 2)}\s+{_abbr('nhrp', 2)}"
                    r"(?!\s+(?:nhs|sum|tra|stat|mul|red|sho|pur|vrf|gr|int|cache))"),
        (Kind.CONFIG, rf"{_SH}\s+(?:{_abbr('running-config', 3)}|{_abbr('startup-config', 3)})"),
        (Kind.CONFIG, rf"{_abbr('more', 3)}\s+\S*(?:running|startup)-config"),
        (Kind.QUIET, rf"(?:{_abbr('debug', 3)}|{_abbr('undebug', 2)}|{_abbr('terminal', 3)}|"
                     rf"{_abbr('clear', 3)}|{_abbr('configure', 4)}|{_abbr('no', 2)})"),
    )
)

#: A prompt line: optional hostname, ``#`` or ``>``, a command IOS would take.
_PROMPT = re.compile(
    r"^(?P<host>[A-Za-z][\w.\-]*)?(?:\([\w\-]+\))?[#>]\s*"
    r"(?P<cmd>(?:sh|sho|show|deb|debu|debug|un|und|undebug|ter|term|terminal|cle|clea|clear|"
    r"conf|confi|config|configure|more|ping|no|wr|write|dir|copy|exit|end)\b.*)?$",
    re.IGNORECASE)

#: One line of ``debug crypto isakmp|ipsec`` (and the crypto syslog messages)
#: after any syslog prefix and timestamp.
DEBUG_LINE = re.compile(
    r"(?:^|[\s:*.])(?:ISAKMP(?:-PAK|-ERROR|-EVT)?|IPSEC|IKEv2(?:-\w+)?|CRYPTO_\w+|CRYPTO-\w+|"
    r"%CRYPTO-\d-\w+|%CRYPTO_\w+-\d-\w+|IPSEC\(\w+\))\s*[:(]")

_STARTS: tuple[tuple[Kind, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern)) for kind, pattern in (
        (Kind.IPSEC_SA, r"^\s*(?:interface:\s+\S+\s*$|Crypto map tag:|protected vrf:|"
                        r"local\s+ident \(addr/mask/prot/port\):)"),
        (Kind.ISAKMP_POLICY, r"^(?:Global IKE policy|Default IKE policy|Protection suite of priority)"),
        (Kind.IPSEC_PROFILE, r"^IPSEC profile \S+"),
        (Kind.QUIET, r"^No policy exists"),
        (Kind.ISAKMP_SA, r"^(?:IPv[46] Crypto ISAKMP SA|dst\s+src\s+state\s+conn-id)"),
        (Kind.SESSION, r"^(?:Crypto session current status|Interface: \S+\s*$)"),
        (Kind.IKEV2_SA, r"^\s*(?:IPv[46] Crypto IKEv2\s+SA|Tunnel-id\s+Local\s+Remote)"),
        (Kind.DMVPN, r"^(?:Legend: Attrb|Interface: \S+, IPv[46] NHRP Details)"),
        (Kind.NHRP, r"^\S+/\d+\s+via\s+\S+"),
        (Kind.CONFIG, r"^(?:!|hostname \S+|crypto (?:isakmp|ipsec|map|keyring)\b|interface \S+\s*$|"
                      r"Building configuration|Current configuration|version \d)"),
    )
)


def command_kind(command: str) -> Kind:
    """The kind of output ``command`` (as typed at a prompt) prints."""
    for kind, pattern in _COMMANDS:
        if pattern.match(command):
            return kind
    return Kind.OTHER


def _shape(text: str) -> Kind | None:
    for kind, pattern in _STARTS:
        if pattern.match(text):
            return kind
    return None


def _prompt(line: Line) -> tuple[str | None, str] | None:
    """(host, command) of a prompt line; a bare ``show ...`` line at column 0
    counts when it names a command this tool reads."""
    text = line.text.strip()
    m = _PROMPT.match(text)
    if m is not None and (m.group("cmd") is not None or m.group("host") is not None):
        return m.group("host"), (m.group("cmd") or "").strip()
    if line.text.startswith(("sh ", "show ")) and command_kind(text) not in (Kind.OTHER, Kind.QUIET):
        return None, text
    return None


class _Segmenter:
    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.unread: list[Unread] = []
        self.current: Block | None = None
        self.debug: Block | None = None
        self.command: tuple[str | None, str] | None = None  # the last prompt's host and command

    def open(self, kind: Kind) -> Block:
        host, command = self.command if self.command else (None, None)
        self.current = Block(kind, command=command, host=host)
        self.blocks.append(self.current)
        return self.current

    def feed(self, line: Line) -> None:
        if not line.text.strip():
            if self.current is not None:
                self.current.lines.append(line)
            return
        prompt = _prompt(line)
        if prompt is not None:
            self.command = prompt
            self.debug = None
            self.open(command_kind(prompt[1]) if prompt[1] else Kind.QUIET)
            return
        in_config = self.current is not None and self.current.kind is Kind.CONFIG
        if DEBUG_LINE.search(line.text) and not (in_config and line.text[:1].isspace()):
            if self.debug is None or self.current is not self.debug:
                self.debug = self.open(Kind.DEBUG)
            self.debug.lines.append(line)
            return
        shape = _shape(line.text)
        cur = self.current
        if shape is not None and (cur is None or cur.kind is Kind.DEBUG
                                  or (shape is not cur.kind and cur.kind is not Kind.OTHER)):
            cur = self.open(shape)
        if cur is None:
            self.unread.append(Unread(line.source, line.no, line.text,
                                      "not part of any command output this tool reads"))
            return
        cur.lines.append(line)


def segment(lines: list[Line]) -> tuple[list[Block], list[Unread]]:
    """The command outputs in ``lines``, in order, and the lines that belong
    to none."""
    s = _Segmenter()
    for line in lines:
        s.feed(line)
    return [b for b in s.blocks if any(x.text.strip() for x in b.lines) or b.kind is Kind.QUIET], s.unread
