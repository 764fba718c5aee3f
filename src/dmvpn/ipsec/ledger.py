"""The lab's record of every IPsec SA each router installed, alive or gone.

The lab keeps a :class:`SaRecord` per SA per router (taken from the SA
objects themselves, which remember their origin, counters and times), so that
after a run it can count rekeys and collisions, find orphans, draw the
timeline and explain each SA in words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class SaRecord:
    """One SA of one router, as the lab saw it (times in virtual seconds)."""

    node: str
    spi: int
    direction: str  # "inbound" | "outbound"
    peer: str
    conn_id: int
    initiator: bool  # this router started the Quick Mode that made it
    reason: str  # SaOriginReason value: "initial", "volume rekey", ...
    replaces_spi: int | None
    installed_at: float
    deleted_at: float | None
    bytes: int
    packets: int
    first_packet: float | None
    last_packet: float | None
    hard_seconds: float | None
    hard_bytes: int | None
    transform: str

    @property
    def pair_key(self) -> int:
        """IOS numbers an exchange's SAs with consecutive conn ids (inbound
        odd, outbound even): the pair's key is the inbound conn id."""
        return self.conn_id - (self.conn_id % 2 == 0)

    def alive_at(self, t: float) -> bool:
        return self.installed_at <= t and (self.deleted_at is None or t < self.deleted_at)

    def remaining(self, t: float) -> tuple[int | None, float | None]:
        """Remaining (kilobytes, seconds) at ``t``, as IOS shows them."""
        kb = None if self.hard_bytes is None else max(0, (self.hard_bytes - self.bytes) // 1024)
        s = None if self.hard_seconds is None else max(0.0, self.installed_at + self.hard_seconds - t)
        return kb, s


def record_of(node: str, sa: Any) -> SaRecord:
    """A :class:`SaRecord` from a :class:`dmvpn.ipsec.sa.SecurityAssociation`."""
    lt = sa.lifetime
    return SaRecord(
        node=node, spi=sa.spi, direction=sa.direction.value, peer=str(sa.peer),
        conn_id=sa.conn_id, initiator=sa.origin.initiator, reason=sa.origin.reason.value,
        replaces_spi=sa.origin.replaces_spi, installed_at=sa.installed_at,
        deleted_at=sa.deleted_at, bytes=sa.bytes, packets=sa.packets,
        first_packet=sa.first_packet_time, last_packet=sa.last_packet_time,
        hard_seconds=lt.hard_seconds, hard_bytes=lt.hard_bytes,
        transform=sa.transform.ios_name,
    )
