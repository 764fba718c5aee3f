"""The receiver's anti-replay window (RFC 4303 section 3.4.3, appendix A).

Instead of a bitmap that shifts as the window slides, the window is a ring
of ``size`` slots holding sequence numbers, in the spirit of RFC 6479 (no
shifting on the hot path): sequence ``s`` lives in slot ``s % size``, and
``s`` inside the window has been received exactly when its slot holds ``s``.
(A later arrival that reuses the slot is at least ``s + size``, which moves
the window past ``s``; an earlier one left a smaller number.) Accepting an
in-order packet is one list store.

Checking happens before the ICV is verified, updating only after (so forged
packets cannot move the window). With ESN (appendix A2.2) only the low 32
bits travel; the high 32 bits are inferred from the window position.
"""

from __future__ import annotations

from enum import Enum

SEQ_MOD = 1 << 32


class ReplayVerdict(Enum):
    """Why :meth:`ReplayWindow.check` rejected a sequence number."""

    OK = "ok"
    DUPLICATE = "duplicate"
    TOO_OLD = "too old"


class ReplayWindow:
    """Sliding window of ``size`` sequence numbers (any size >= 1; IOS uses
    64..1024, strongSwan 128, this class is happy with 4096 and more)."""

    __slots__ = ("esn", "ring", "size", "top")

    def __init__(self, size: int = 1024, esn: bool = False) -> None:
        if size < 1:
            raise ValueError(f"replay window size must be at least 1, got {size}")
        self.size = size
        self.esn = esn
        self.top = 0  # highest authenticated (full, 64-bit with ESN) number
        self.ring = [0] * size  # slot s % size holds s once s is received

    def infer(self, seq_low: int) -> int:
        """The full sequence number for the received low 32 bits (RFC 4303
        appendix A2.2); without ESN, ``seq_low`` itself."""
        if not self.esn:
            return seq_low
        top = self.top
        tl = top & 0xFFFFFFFF
        th = top >> 32
        w = self.size
        if tl >= w - 1:
            # Case A: window within one subspace.
            if seq_low >= tl - w + 1:
                return (th << 32) | seq_low
            return ((th + 1) << 32) | seq_low
        # Case B: window spans two subspaces.
        if seq_low >= (tl - w + 1) % SEQ_MOD:
            return (((th - 1) if th else 0) << 32) | seq_low
        return (th << 32) | seq_low

    def check(self, seq: int) -> ReplayVerdict:
        """Is the full sequence number ``seq`` acceptable? (no state change)"""
        if seq > self.top:
            return ReplayVerdict.OK
        if seq == 0 or self.top - seq >= self.size:
            return ReplayVerdict.TOO_OLD
        if self.ring[seq % self.size] == seq:
            return ReplayVerdict.DUPLICATE
        return ReplayVerdict.OK

    def update(self, seq: int) -> None:
        """Mark ``seq`` received, sliding the window if it is the new top.
        Call only after the packet's ICV has been verified."""
        self.ring[seq % self.size] = seq
        if seq > self.top:
            self.top = seq
