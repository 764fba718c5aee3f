"""Errors, warnings and ignored lines found while reading a configuration.

Every diagnostic names its file and line, and prints as one line in the
compiler style ``FILE:LINE: error: ...`` so an editor can jump to it.
"""

from __future__ import annotations

from dataclasses import dataclass


class ConfigError(ValueError):
    """A line that IOS would reject, or a reference that does not resolve.

    ``line`` is 1-based; 0 means the file as a whole (e.g. unreadable)."""

    def __init__(self, source: str, line: int, message: str) -> None:
        super().__init__(source, line, message)
        self.source = source
        self.line = line
        self.message = message

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: error: {self.message}"


@dataclass(frozen=True, slots=True)
class ConfigWarning:
    """A line we do not understand, or a setting that works but looks wrong."""

    source: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: warning: {self.message}"


@dataclass(frozen=True, slots=True)
class IgnoredLine:
    """A line IOS accepts that has no effect on this stack (OSPF, QoS, ...)."""

    source: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: ignored: {self.text}"
