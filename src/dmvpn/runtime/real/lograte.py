"""A per-cause rate limit for the daemon's log, as IOS limits its syslog
messages: at most :data:`LINES_PER_INTERVAL` lines of one cause (a syslog
tag such as ``%CRYPTO-4-IKMP_BAD_MESSAGE``) per :data:`INTERVAL` seconds;
the rest are counted and reported in one ``%DMVPN-4-LOG_SUPPRESSED`` line
per cause once the interval is over, so a hostile network that sends a
malformed packet per microsecond writes a few lines a second, not one each.

Pure bookkeeping on the time it is given (the runtime's clock): the
engines stay sans-I/O and the lab's debug output is untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

LINES_PER_INTERVAL = 10
INTERVAL = 1.0
SUPPRESSED_TAG = "%DMVPN-4-LOG_SUPPRESSED"


@dataclass(slots=True)
class _Window:
    start: float
    lines: int = 0
    suppressed: int = 0


class LogRateLimit:
    """``allow(now, cause)`` says whether a line may be written;
    ``due(now)`` returns the suppressed counts whose interval has ended."""

    def __init__(self, lines: int = LINES_PER_INTERVAL, interval: float = INTERVAL) -> None:
        if lines < 1 or not interval > 0:
            raise ValueError("LogRateLimit: lines must be >= 1 and interval > 0")
        self.lines = lines
        self.interval = interval
        self._windows: dict[str, _Window] = {}
        #: counts of intervals that ended (a new line of the cause came) but
        #: are not reported yet
        self._ended: list[tuple[str, int]] = []
        #: lines suppressed since start, per cause (for show runtime)
        self.total_suppressed: dict[str, int] = {}

    def allow(self, now: float, cause: str) -> bool:
        """May a line of ``cause`` be written at ``now``? Counts it if not."""
        w = self._windows.get(cause)
        if w is None or now - w.start >= self.interval:
            if w is not None and w.suppressed:
                self._ended.append((cause, w.suppressed))
            self._windows[cause] = _Window(now, 1)
            return True
        if w.lines < self.lines:
            w.lines += 1
            return True
        w.suppressed += 1
        self.total_suppressed[cause] = self.total_suppressed.get(cause, 0) + 1
        return False

    def due(self, now: float, *, final: bool = False) -> list[tuple[str, int]]:
        """(cause, count) for every interval that ended with lines
        suppressed (with ``final``, every count not reported yet: the
        daemon stops), each reported once, oldest first."""
        out, self._ended = self._ended, []
        for cause, w in self._windows.items():
            if w.suppressed and (final or now - w.start >= self.interval):
                out.append((cause, w.suppressed))
                w.suppressed = 0
        return out
