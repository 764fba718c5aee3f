"""The one exception type every wire decoder in the project raises.

Decoders (IPv4, UDP, ICMP, GRE, NHRP, IKEv2, ESP, ...) turn malformed bytes
into ``DecodeError`` and nothing else, so callers can catch a single type and
report "offset N: reason" without a traceback.
"""

from __future__ import annotations


class DecodeError(ValueError):
    """Malformed input found at byte ``offset`` of the buffer being decoded.

    ``str(err)`` is ``"offset N: reason"``.
    """

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(offset, reason)
        self.offset: int = offset
        self.reason: str = reason

    def __str__(self) -> str:
        return f"offset {self.offset}: {self.reason}"

    def shifted(self, base: int) -> DecodeError:
        """The same error with ``offset`` moved by ``base`` bytes.

        Used when a nested decoder reports an offset relative to its own
        payload and the outer decoder wants it relative to the whole packet.
        """
        return DecodeError(self.offset + base, self.reason)
