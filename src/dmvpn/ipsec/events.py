"""What the SAD tells the IKE engine (RFC 4301 section 4.4.2.1, "lifetime":
"if a soft lifetime expires, the IKE is asked to rekey; when a hard lifetime
expires, the SA is deleted")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dmvpn.ipsec.sa import SecurityAssociation

LimitKind = Literal["time", "volume", "sequence"]


@dataclass(frozen=True, slots=True)
class SoftExpired:
    """The SA reached its soft limit (first of time or volume) at ``time``.
    Fired once per SA. The IKE engine decides whether to rekey (IOS does not
    rekey an SA that never carried a packet: see ``sa.idle``)."""

    sa: SecurityAssociation
    reason: LimitKind
    time: float


@dataclass(frozen=True, slots=True)
class HardExpired:
    """The SA reached a hard limit at ``time`` and has been removed from the
    SAD (state DELETED). Fired once per SA. ``reason`` "sequence" means the
    32-bit sequence space ran out without ESN (RFC 4303 3.3.3)."""

    sa: SecurityAssociation
    reason: LimitKind
    time: float


SadEvent = SoftExpired | HardExpired
