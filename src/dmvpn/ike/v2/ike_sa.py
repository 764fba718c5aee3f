"""The IKEv2 engine's records: one IKE SA (RFC 7296 section 2) with its
message-ID windows (2.3, window size 1 both ways), the request in flight
and the queue behind it, the cached last response (2.1: a retransmitted
request is answered from it, never processed twice), and the CHILD_SAs it
negotiated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from dmvpn.config.ikev2_model import Ikev2Profile
from dmvpn.ike.isakmp_sa import ChildRequest, ChildSa
from dmvpn.ike.transport import Retransmit
from dmvpn.ike.v2.ike_auth import AuthConfig
from dmvpn.ike.v2.sa_init import IkeSaInit, IkeSaState
from dmvpn.ike.v2.states import Ikev2SaEvent, Ikev2SaState, next_ikev2_sa
from dmvpn.wire.ikev2_registry import ExchangeType
from dmvpn.wire.isakmp import IKE_PORT


class ExchangeKind(Enum):
    """The requests this engine starts, with IOS-XE's exchange names."""

    IKE_SA_INIT = "IKE_SA_INIT"
    IKE_AUTH = "IKE_AUTH"
    CREATE_CHILD = "CREATE_CHILD_SA"
    REKEY_CHILD = "CREATE_CHILD_SA (rekey CHILD)"
    REKEY_IKE = "CREATE_CHILD_SA (rekey IKE)"
    DELETE_CHILD = "INFORMATIONAL (delete CHILD)"
    DELETE_IKE = "INFORMATIONAL (delete IKE)"
    LIVENESS = "INFORMATIONAL (liveness)"

    @property
    def exchange_type(self) -> ExchangeType:
        """The exchange type of the request, which its response carries too (RFC 7296 3.1)."""
        return ExchangeType[self.value.split(" ")[0]]


@dataclass(eq=False)
class Exchange:
    """One request of ours: queued, then in flight until its response."""

    kind: ExchangeKind
    request: ChildRequest | None = None  # CREATE_CHILD / REKEY_CHILD
    child: ChildSa | None = None  # the pair rekeyed (REKEY_CHILD) or deleted (DELETE_CHILD)
    message_id: int = 0
    packet: bytes = b""
    task: Any = None
    retransmit: Retransmit | None = None


@dataclass(eq=False)
class Ikev2Sa:
    """One IKE SA, from IKE_SA_INIT to deletion. ``keys`` is the state the
    tasks share (SPIs, nonces, algorithms, SK_*)."""

    sa_id: int
    initiator: bool
    local: str
    peer: str
    keys: IkeSaState
    created: float
    state: Ikev2SaState = Ikev2SaState.IDLE
    local_port: int = IKE_PORT
    peer_port: int = IKE_PORT
    #: NAT found (or forced) in IKE_SA_INIT (RFC 7296 2.23): IKE on UDP 4500, ESP in UDP (RFC 3948)
    nat: bool = False
    init: IkeSaInit | None = None
    auth: AuthConfig | None = None
    profile: Ikev2Profile | None = None
    #: our next request's message ID, and the next one we expect from the peer (RFC 7296 2.2)
    next_mid: int = 0
    peer_mid: int = 0
    outstanding: Exchange | None = None
    queue: list[Exchange] = field(default_factory=list)
    last_request: bytes = b""
    last_response: bytes = b""
    established_at: float | None = None
    expires_at: float | None = None
    last_rx: float = 0.0
    pending: list[ChildRequest] = field(default_factory=list)  # acquires waiting for IKE_AUTH
    children: list[ChildSa] = field(default_factory=list)
    rekey_started: bool = False
    #: the new IKE SA of the peer's rekey that crossed ours, with its exchange's (Ni, Nr) (RFC 7296 2.8.2)
    rival: tuple[Ikev2Sa, tuple[bytes, bytes]] | None = None

    @property
    def established(self) -> bool:
        return self.state is Ikev2SaState.ESTABLISHED

    @property
    def deleting(self) -> bool:
        """Our DELETE of this IKE SA is in flight or queued."""
        ours = [self.outstanding] if self.outstanding else []
        return any(e.kind is ExchangeKind.DELETE_IKE for e in ours + self.queue)

    @property
    def deletes_crossed(self) -> bool:
        """The peer deleted this SA while our DELETE of it is in flight (RFC 7296 1.4.1)."""
        ours = self.outstanding
        return self.state is Ikev2SaState.DELETED and ours is not None and ours.kind is ExchangeKind.DELETE_IKE

    @property
    def role(self) -> str:
        return "Initiator" if self.initiator else "Responder"

    def transition(self, event: Ikev2SaEvent) -> Ikev2SaState:
        """Apply one event through :data:`~dmvpn.ike.v2.states.IKEV2_SA_TRANSITIONS`."""
        self.state = next_ikev2_sa(self.state, event)
        return self.state
