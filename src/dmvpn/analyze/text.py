"""Pasted text as numbered lines, and the record of a line nobody could read.

Input may be anything: a file saved from a terminal (CRLF, tabs, ANSI colour,
backspaces), a mail body, a binary by mistake. :func:`decode` accepts bytes in
UTF-8 or Latin-1 and says when the data is not text at all."""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Beyond this many lines the rest of a file is not read (and that is said).
MAX_LINES = 200_000
#: Longer lines are cut: no IOS output line is anywhere near this long.
MAX_LINE = 4096

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_MORE = re.compile(r"^\s*(?:--More--|<--- More --->)\s*")


class InputError(ValueError):
    """Nothing in the input can be analysed; ``str()`` is the one-line
    message, ``source`` the input it is about (empty when all of them)."""

    def __init__(self, message: str, source: str = "") -> None:
        super().__init__(f"{source}: {message}" if source else message)
        self.source, self.message = source, message


@dataclass(frozen=True, slots=True)
class Line:
    """One input line: its source name, 1-based number and text."""

    source: str
    no: int
    text: str


@dataclass(frozen=True, slots=True)
class Unread:
    """A line that was skipped, and why (``hub.txt:12: ...``)."""

    source: str
    no: int
    text: str
    why: str

    def __str__(self) -> str:
        if not self.no:
            return f"{self.source}: {self.why}"
        shown = self.text.strip()
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        return f"{self.source}:{self.no}: {self.why}: {shown!r}"


def _looks_binary(data: bytes) -> bool:
    sample = data[:8192]
    if b"\x00" in sample:
        return True
    odd = sum(1 for b in sample if b < 9 or (13 < b < 32 and b != 27))
    return odd > len(sample) // 20


def decode(data: bytes, source: str) -> str:
    """``data`` as text; raises :class:`InputError` when it is not text."""
    if not data.strip():
        raise InputError("empty input: nothing to analyse", source)
    if _looks_binary(data):
        raise InputError("binary data, not router output: nothing to analyse", source)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _clean(text: str) -> str:
    """A terminal line as it reads: ANSI codes, backspaces, control
    characters and a pager's ``--More--`` removed, tabs as spaces, trailing
    blanks dropped."""
    text = _ANSI.sub("", text)
    if "\x08" in text:  # a backspace erases the character before it
        kept: list[str] = []
        for ch in text:
            if ch != "\x08":
                kept.append(ch)
            elif kept:
                kept.pop()
        text = "".join(kept)
    text = _MORE.sub("", _CONTROL.sub("", text.expandtabs(8)))
    return text[:MAX_LINE].rstrip()


def dropped_lines(text: str) -> int:
    """How many lines of ``text`` :func:`split_lines` leaves out."""
    return max(0, text.count("\n") + 1 - MAX_LINES)


def split_lines(text: str, source: str) -> list[Line]:
    """The numbered, cleaned lines of ``text`` (at most :data:`MAX_LINES`)."""
    raw = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return [Line(source, no, _clean(t)) for no, t in enumerate(raw[:MAX_LINES], start=1)]
