"""The IKEv2 SA's life as an explicit transition table (h11 style, like
:mod:`dmvpn.ike.states` for IKEv1).

RFC 7296 sections 1.2 (IKE_SA_INIT, IKE_AUTH), 1.3.2 / 2.18 (rekeying the
IKE SA), 1.4.1 (deleting it) and 2.4 (a dead peer). The CHILD_SAs' states
are the version-neutral :class:`~dmvpn.ike.states.ChildState` table. An
event that is not in the table for the current state raises
:class:`~dmvpn.ike.states.IllegalTransition`.
"""

from __future__ import annotations

from enum import Enum

from dmvpn.ike.states import IllegalTransition


class Ikev2SaState(Enum):
    """Where one IKE SA is; ``display`` is the Status ``show crypto ikev2
    sa`` prints (IOS-XE: READY, IN-NEG, DELETE)."""

    IDLE = "IDLE"
    INIT_SENT = "INIT_SENT"  # initiator: IKE_SA_INIT request out
    AUTH_SENT = "AUTH_SENT"  # initiator: IKE_AUTH request out
    INIT_DONE = "INIT_DONE"  # responder: IKE_SA_INIT answered, IKE_AUTH awaited
    ESTABLISHED = "ESTABLISHED"
    REKEYED = "REKEYED"  # a new IKE SA took over (RFC 7296 2.18); this one is being deleted
    DELETED = "DELETED"

    @property
    def display(self) -> str:
        if self is Ikev2SaState.ESTABLISHED:
            return "READY"
        if self in (Ikev2SaState.REKEYED, Ikev2SaState.DELETED):
            return "DELETE"
        return "IN-NEG"


class Ikev2SaEvent(Enum):
    """What happens to an IKE SA."""

    SEND_INIT = "send IKE_SA_INIT"
    RECV_INIT = "answer IKE_SA_INIT"
    INIT_DONE = "IKE_SA_INIT done"
    AUTH_DONE = "IKE_AUTH done"
    REKEYED = "rekeyed"
    TAKE_OVER = "created by a rekey"  # the new IKE SA of an IKE SA rekey (2.18)
    DELETE = "delete"


S = Ikev2SaState
E = Ikev2SaEvent

#: (state, event) -> next state.
IKEV2_SA_TRANSITIONS: dict[tuple[Ikev2SaState, Ikev2SaEvent], Ikev2SaState] = {
    (S.IDLE, E.SEND_INIT): S.INIT_SENT,
    (S.INIT_SENT, E.SEND_INIT): S.INIT_SENT,  # a retry with a COOKIE or another DH group (1.2, 2.6)
    (S.INIT_SENT, E.INIT_DONE): S.AUTH_SENT,
    (S.IDLE, E.RECV_INIT): S.INIT_DONE,
    (S.AUTH_SENT, E.AUTH_DONE): S.ESTABLISHED,
    (S.INIT_DONE, E.AUTH_DONE): S.ESTABLISHED,
    (S.ESTABLISHED, E.REKEYED): S.REKEYED,
    (S.IDLE, E.TAKE_OVER): S.ESTABLISHED,
}
for _state in Ikev2SaState:
    if _state is not S.DELETED:
        IKEV2_SA_TRANSITIONS[(_state, E.DELETE)] = S.DELETED
del _state


def next_ikev2_sa(state: Ikev2SaState, event: Ikev2SaEvent) -> Ikev2SaState:
    """The IKE SA's state after ``event``; :class:`IllegalTransition` if none."""
    try:
        return IKEV2_SA_TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition("IKEv2 SA", state, None, event) from None
