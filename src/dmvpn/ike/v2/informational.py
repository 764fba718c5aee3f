"""INFORMATIONAL exchanges as a task (RFC 7296 sections 1.4, 1.4.1, 2.4):
deleting CHILD_SAs or the IKE SA, and liveness checks (an empty request
that must be answered).

A Delete of ESP SPIs names the SPIs the sender receives on; the responder
answers with the SPIs of its own halves of those pairs (1.4.1). When both
ends delete the same pair at once the two requests cross: each answer then
MUST NOT name the pair (1.4.1), and the task reports it apart
(:attr:`InformationalResult.crossed_child_spis`) so the engine deletes the
outbound half now and the inbound half with its own DELETE's answer. A
Delete of the IKE SA (protocol IKE, no SPIs) is answered with an empty
message, also when it crosses ours.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from dmvpn.ike.v2.protect import open_message, seal
from dmvpn.ike.v2.sa_init import IkeSaState
from dmvpn.sansio import RandomSource
from dmvpn.wire.errors import DecodeError
from dmvpn.wire.ikev2 import Ikev2Message
from dmvpn.wire.ikev2_payloads import DeletePayload, Payload
from dmvpn.wire.ikev2_registry import ExchangeType, HeaderFlags, ProtocolId


@dataclass(frozen=True, slots=True)
class PairHalf:
    """Our side of a pair the peer deletes: our inbound SPI, and whether we
    are deleting the pair ourselves (our DELETE of it is queued or in flight)."""

    spi_in: bytes
    deleting: bool = False


#: Given an SPI the peer deletes (its inbound, our outbound), our side of
#: the same pair, or None if we have no such SA (any more).
PairLookup = Callable[[bytes], "PairHalf | None"]


@dataclass
class InformationalResult:
    """What an INFORMATIONAL exchange removed."""

    deleted_child_spis: list[bytes] = field(default_factory=list)  # the peer's inbound SPIs it named
    #: the SPIs the peer named of pairs we are deleting too: the requests crossed (1.4.1)
    crossed_child_spis: list[bytes] = field(default_factory=list)
    delete_ike: bool = False


class Informational:
    """One INFORMATIONAL exchange (charon's ``child_delete`` /
    ``ike_delete`` / ``ike_dpd``); ``initiator`` is the exchange's."""

    def __init__(self, sa: IkeSaState, random: RandomSource, message_id: int, initiator: bool) -> None:
        self.sa, self.random, self.message_id, self.initiator = sa, random, message_id, initiator
        self.result = InformationalResult()
        self.error: str | None = None
        self._reply: bytes | None = None

    def _message(self, response: bool, payloads: Sequence[Payload]) -> bytes:
        flags = (HeaderFlags.INITIATOR if self.sa.initiator else 0) | (HeaderFlags.RESPONSE if response else 0)
        msg = Ikev2Message(
            self.sa.spi_i, self.sa.spi_r, ExchangeType.INFORMATIONAL, flags, self.message_id, list(payloads)
        )
        return seal(self.sa, msg, self.random)

    def build_i(self, now: float, delete_child_spis: Sequence[bytes] = (), delete_ike: bool = False) -> bytes:
        """A Delete of our inbound ESP SPIs, of the IKE SA, or (neither) a liveness check."""
        payloads: list[Payload] = []
        if delete_ike:
            payloads.append(DeletePayload(ProtocolId.IKE, [], spi_size=0))
        elif delete_child_spis:
            payloads.append(DeletePayload(ProtocolId.ESP, list(delete_child_spis)))
        return self._message(False, payloads)

    def process_r(self, data: bytes, now: float, pairs: PairLookup) -> None:
        """Read a request; :meth:`build_r` answers it."""
        try:
            msg = open_message(self.sa, data)
        except DecodeError as exc:
            self.error, self._reply = f"INFORMATIONAL request: {exc}", None
            return
        ours: list[bytes] = []
        for d in msg.find(DeletePayload):
            assert isinstance(d, DeletePayload)
            if d.protocol_id == ProtocolId.IKE:
                self.result.delete_ike = True
            elif d.protocol_id == ProtocolId.ESP:
                for spi in d.spis:
                    mine = pairs(spi)
                    if mine is None:
                        continue
                    if mine.deleting:  # crossing deletes: the answer MUST NOT name the pair (1.4.1)
                        self.result.crossed_child_spis.append(spi)
                    else:
                        self.result.deleted_child_spis.append(spi)
                        ours.append(mine.spi_in)
        answer: list[Payload] = [] if self.result.delete_ike or not ours else [DeletePayload(ProtocolId.ESP, ours)]
        self._reply = self._message(True, answer)

    def build_r(self, now: float) -> bytes | None:
        """The response (None: drop the request)."""
        return self._reply

    def process_i(self, data: bytes, now: float) -> bool:
        """The response: which of its SPIs the peer deleted in turn."""
        try:
            msg = open_message(self.sa, data)
        except DecodeError as exc:
            self.error = f"INFORMATIONAL response: {exc}"
            return False
        for d in msg.find(DeletePayload):
            assert isinstance(d, DeletePayload)
            if d.protocol_id == ProtocolId.ESP:
                self.result.deleted_child_spis += d.spis
        return True
