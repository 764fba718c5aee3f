"""Numbers as a network engineer reads them: kilobytes with separators and
in GB, rates in Gbit/s or Mbit/s, durations as the lab prints them."""

from __future__ import annotations

from dmvpn.ipsec.sa import KILOBYTE
from dmvpn.node.explain import ago


def kb(value: int | None) -> str:
    """``3,723,558 KB (3.8 GB)``: IOS kilobytes are 1024 bytes."""
    if value is None:
        return "unknown"
    if value == 0:
        return "0 KB"
    gb = value * KILOBYTE / 1e9
    return f"{value:,} KB ({gb:.1f} GB)" if gb >= 0.1 else f"{value:,} KB"


def rate(bps: float | None) -> str:
    if bps is None:
        return "unknown"
    if bps >= 1e8:
        return f"{bps / 1e9:.2f} Gbit/s"
    if bps >= 1e5:
        return f"{bps / 1e6:.0f} Mbit/s"
    return f"{bps / 1e3:.0f} kbit/s"


def duration(seconds: float | None) -> str:
    """``35 s``, ``49 min``, ``2.5 h``: the lab's :func:`~dmvpn.node.explain.ago`
    without the "ago"."""
    return "unknown" if seconds is None else ago(seconds).removesuffix(" ago")
