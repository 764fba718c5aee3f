"""Small IOS number and time formats shared by the renderers."""

from __future__ import annotations


def spi_text(spi: int) -> str:
    """An SPI as IOS prints it: uppercase hex without leading zeros, then
    the decimal value, ``0x50304C8(84083912)`` (RFC 4303 section 2.1 SPI)."""
    return f"0x{spi:X}({spi})"


def hms(seconds: int) -> str:
    """``hh:mm:ss`` (ISAKMP and session lifetimes, uptimes under a day)."""
    seconds = max(0, seconds)
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def uptime_text(seconds: int) -> str:
    """An uptime the way IOS abbreviates it: ``hh:mm:ss`` under a day,
    ``XdYh`` under a week, ``XwYd`` beyond."""
    if seconds < 86_400:
        return hms(seconds)
    days, rest = divmod(seconds, 86_400)
    if days < 7:
        return f"{days}d{rest // 3600}h"
    return f"{days // 7}w{days % 7}d"


def yes_no(flag: bool) -> str:
    return "Y" if flag else "N"


def or_none(value: str | None) -> str:
    """IOS prints an unset name as ``(none)``."""
    return value if value is not None else "(none)"
