"""IKEv1 state machines as explicit transition tables (h11 style).

The names are the ones IOS prints in ``debug crypto isakmp`` ("Input =
IKE_MESG_FROM_PEER, IKE_QM_EXCH" / "Old State = IKE_QM_READY  New State =
IKE_QM_SPI_STARVE"), so the debug renderer can print a transition as it
happens. Main Mode is RFC 2409 section 5 (six messages, identity protection);
Quick Mode section 5.5 (three messages). An event that is not in the table
for the current state raises :class:`IllegalTransition`, a named error, never
a silent branch.
"""

from __future__ import annotations

from enum import Enum


class MessageSource(Enum):
    """Where an input comes from (the first half of IOS's ``Input =``)."""

    IKE_MESG_FROM_PEER = "IKE_MESG_FROM_PEER"
    IKE_MESG_INTERNAL = "IKE_MESG_INTERNAL"
    IKE_MESG_FROM_IPSEC = "IKE_MESG_FROM_IPSEC"
    IKE_MESG_FROM_TIMER = "IKE_MESG_FROM_TIMER"


class IkeEvent(Enum):
    """What happened (the second half of IOS's ``Input =``)."""

    IKE_SA_REQ_MM = "IKE_SA_REQ_MM"
    IKE_MM_EXCH = "IKE_MM_EXCH"
    IKE_PROCESS_MAIN_MODE = "IKE_PROCESS_MAIN_MODE"
    IKE_PROCESS_COMPLETE = "IKE_PROCESS_COMPLETE"
    IKE_PHASE1_COMPLETE = "IKE_PHASE1_COMPLETE"
    IKE_INIT_QM = "IKE_INIT_QM"
    IKE_QM_EXCH = "IKE_QM_EXCH"
    IKE_GOT_SPI = "IKE_GOT_SPI"
    IPSEC_INSTALL_DONE = "IPSEC_INSTALL_DONE"
    IKE_TIMER_EXPIRED = "IKE_TIMER_EXPIRED"
    IKE_PHASE1_DEL = "IKE_PHASE1_DEL"
    #: A Quick Mode is given up: a bad reply, NO-PROPOSAL-CHOSEN, retries spent, its ISAKMP SA gone.
    IKE_PHASE2_DEL = "IKE_PHASE2_DEL"


class Phase1State(Enum):
    """Main Mode states, initiator (I) and responder (R), as IOS names them."""

    IKE_READY = "IKE_READY"
    IKE_I_MM1 = "IKE_I_MM1"
    IKE_I_MM2 = "IKE_I_MM2"
    IKE_I_MM3 = "IKE_I_MM3"
    IKE_I_MM4 = "IKE_I_MM4"
    IKE_I_MM5 = "IKE_I_MM5"
    IKE_I_MM6 = "IKE_I_MM6"
    IKE_R_MM1 = "IKE_R_MM1"
    IKE_R_MM2 = "IKE_R_MM2"
    IKE_R_MM3 = "IKE_R_MM3"
    IKE_R_MM4 = "IKE_R_MM4"
    IKE_R_MM5 = "IKE_R_MM5"
    IKE_P1_COMPLETE = "IKE_P1_COMPLETE"
    IKE_DEST_SA = "IKE_DEST_SA"

    @property
    def display(self) -> str:
        """The state ``show crypto isakmp sa`` and the PAK lines print."""
        return _DISPLAY[self]


_DISPLAY = {
    Phase1State.IKE_READY: "MM_NO_STATE",
    Phase1State.IKE_I_MM1: "MM_NO_STATE",
    Phase1State.IKE_I_MM2: "MM_SA_SETUP",
    Phase1State.IKE_I_MM3: "MM_SA_SETUP",
    Phase1State.IKE_I_MM4: "MM_KEY_EXCH",
    Phase1State.IKE_I_MM5: "MM_KEY_EXCH",
    Phase1State.IKE_I_MM6: "MM_KEY_EXCH",
    Phase1State.IKE_R_MM1: "MM_NO_STATE",
    Phase1State.IKE_R_MM2: "MM_SA_SETUP",
    Phase1State.IKE_R_MM3: "MM_SA_SETUP",
    Phase1State.IKE_R_MM4: "MM_KEY_EXCH",
    Phase1State.IKE_R_MM5: "MM_KEY_EXCH",
    Phase1State.IKE_P1_COMPLETE: "QM_IDLE",
    Phase1State.IKE_DEST_SA: "MM_NO_STATE",
}


class QuickModeState(Enum):
    """Quick Mode ("node") states as IOS names them."""

    IKE_QM_READY = "IKE_QM_READY"
    IKE_QM_I_QM1 = "IKE_QM_I_QM1"
    IKE_QM_SPI_STARVE = "IKE_QM_SPI_STARVE"
    IKE_QM_IPSEC_INSTALL_AWAIT = "IKE_QM_IPSEC_INSTALL_AWAIT"
    IKE_QM_R_QM2 = "IKE_QM_R_QM2"
    IKE_QM_PHASE2_COMPLETE = "IKE_QM_PHASE2_COMPLETE"
    IKE_QM_FAILED = "IKE_QM_FAILED"


class ChildState(Enum):
    """An IPsec SA pair as the IKE engine sees it."""

    ACTIVE = "active"
    REKEYING = "rekeying"
    REPLACED = "replaced"
    DELETED = "deleted"


class ChildEvent(Enum):
    """What happens to an IPsec SA pair over its life (RFC 2409 leaves the
    rekey policy to the implementation; REFERENCE.md describes IOS's)."""

    REKEY_STARTED = "rekey started"
    REKEY_FAILED = "rekey failed"
    REPLACED = "replaced"
    DELETED = "deleted"


class IllegalTransition(Exception):
    """An event arrived that the state machine has no transition for."""

    def __init__(self, machine: str, state: Enum, source: MessageSource | None, event: Enum) -> None:
        on = f"{source.value}, {event.value}" if source is not None else str(event.value)
        super().__init__(f"{machine}: no transition from {state.value} on {on}")
        self.machine = machine
        self.state = state
        self.source = source
        self.event = event


P = Phase1State
Q = QuickModeState
S = MessageSource
E = IkeEvent

#: Main Mode, RFC 2409 section 5: (state, source, event) -> next state.
PHASE1_TRANSITIONS: dict[tuple[Phase1State, MessageSource, IkeEvent], Phase1State] = {
    (P.IKE_READY, S.IKE_MESG_FROM_IPSEC, E.IKE_SA_REQ_MM): P.IKE_I_MM1,
    (P.IKE_I_MM1, S.IKE_MESG_FROM_PEER, E.IKE_MM_EXCH): P.IKE_I_MM2,
    (P.IKE_I_MM2, S.IKE_MESG_INTERNAL, E.IKE_PROCESS_MAIN_MODE): P.IKE_I_MM3,
    (P.IKE_I_MM3, S.IKE_MESG_FROM_PEER, E.IKE_MM_EXCH): P.IKE_I_MM4,
    (P.IKE_I_MM4, S.IKE_MESG_INTERNAL, E.IKE_PROCESS_MAIN_MODE): P.IKE_I_MM5,
    (P.IKE_I_MM5, S.IKE_MESG_FROM_PEER, E.IKE_MM_EXCH): P.IKE_I_MM6,
    (P.IKE_I_MM6, S.IKE_MESG_INTERNAL, E.IKE_PROCESS_COMPLETE): P.IKE_P1_COMPLETE,
    (P.IKE_READY, S.IKE_MESG_FROM_PEER, E.IKE_MM_EXCH): P.IKE_R_MM1,
    (P.IKE_R_MM1, S.IKE_MESG_INTERNAL, E.IKE_PROCESS_MAIN_MODE): P.IKE_R_MM2,
    (P.IKE_R_MM2, S.IKE_MESG_FROM_PEER, E.IKE_MM_EXCH): P.IKE_R_MM3,
    (P.IKE_R_MM3, S.IKE_MESG_INTERNAL, E.IKE_PROCESS_MAIN_MODE): P.IKE_R_MM4,
    (P.IKE_R_MM4, S.IKE_MESG_FROM_PEER, E.IKE_MM_EXCH): P.IKE_R_MM5,
    (P.IKE_R_MM5, S.IKE_MESG_INTERNAL, E.IKE_PROCESS_COMPLETE): P.IKE_P1_COMPLETE,
    (P.IKE_P1_COMPLETE, S.IKE_MESG_INTERNAL, E.IKE_PHASE1_COMPLETE): P.IKE_P1_COMPLETE,
}
# Any state can be torn down: retransmissions exhausted, policy or auth failure, DELETE.
for _state in Phase1State:
    if _state is not P.IKE_DEST_SA:
        PHASE1_TRANSITIONS[(_state, S.IKE_MESG_FROM_TIMER, E.IKE_TIMER_EXPIRED)] = P.IKE_DEST_SA
        PHASE1_TRANSITIONS[(_state, S.IKE_MESG_INTERNAL, E.IKE_PHASE1_DEL)] = P.IKE_DEST_SA

#: Quick Mode, RFC 2409 section 5.5.
QM_TRANSITIONS: dict[tuple[QuickModeState, MessageSource, IkeEvent], QuickModeState] = {
    (Q.IKE_QM_READY, S.IKE_MESG_INTERNAL, E.IKE_INIT_QM): Q.IKE_QM_I_QM1,
    (Q.IKE_QM_I_QM1, S.IKE_MESG_FROM_PEER, E.IKE_QM_EXCH): Q.IKE_QM_IPSEC_INSTALL_AWAIT,
    (Q.IKE_QM_IPSEC_INSTALL_AWAIT, S.IKE_MESG_FROM_IPSEC, E.IPSEC_INSTALL_DONE): Q.IKE_QM_PHASE2_COMPLETE,
    (Q.IKE_QM_READY, S.IKE_MESG_FROM_PEER, E.IKE_QM_EXCH): Q.IKE_QM_SPI_STARVE,
    (Q.IKE_QM_SPI_STARVE, S.IKE_MESG_INTERNAL, E.IKE_GOT_SPI): Q.IKE_QM_IPSEC_INSTALL_AWAIT,
    (Q.IKE_QM_R_QM2, S.IKE_MESG_FROM_PEER, E.IKE_QM_EXCH): Q.IKE_QM_PHASE2_COMPLETE,
}
for _qstate in (Q.IKE_QM_READY, Q.IKE_QM_I_QM1, Q.IKE_QM_SPI_STARVE, Q.IKE_QM_IPSEC_INSTALL_AWAIT, Q.IKE_QM_R_QM2):
    QM_TRANSITIONS[(_qstate, S.IKE_MESG_FROM_TIMER, E.IKE_TIMER_EXPIRED)] = Q.IKE_QM_FAILED
    QM_TRANSITIONS[(_qstate, S.IKE_MESG_INTERNAL, E.IKE_PHASE2_DEL)] = Q.IKE_QM_FAILED
del _state, _qstate

C = ChildState
CE = ChildEvent
#: An IPsec SA pair: a rekey starts from (and on failure returns to) ACTIVE;
#: a pair is replaced by a newer one or deleted, never revived.
CHILD_TRANSITIONS: dict[tuple[ChildState, ChildEvent], ChildState] = {
    (C.ACTIVE, CE.REKEY_STARTED): C.REKEYING,
    (C.REKEYING, CE.REKEY_FAILED): C.ACTIVE,
    (C.ACTIVE, CE.REPLACED): C.REPLACED,
    (C.REKEYING, CE.REPLACED): C.REPLACED,
    (C.ACTIVE, CE.DELETED): C.DELETED,
    (C.REKEYING, CE.DELETED): C.DELETED,
    (C.REPLACED, CE.DELETED): C.DELETED,
}

# The responder's install callback leads to R_QM2, the initiator's to PHASE2_COMPLETE:
# the table is keyed by role for that one input.
QM_RESPONDER_INSTALL_DONE = Q.IKE_QM_R_QM2


def next_phase1(state: Phase1State, source: MessageSource, event: IkeEvent) -> Phase1State:
    """The Main Mode state after ``event``; :class:`IllegalTransition` if none."""
    try:
        return PHASE1_TRANSITIONS[(state, source, event)]
    except KeyError:
        raise IllegalTransition("Main Mode", state, source, event) from None


def next_quick_mode(state: QuickModeState, source: MessageSource, event: IkeEvent, *,
                    responder: bool) -> QuickModeState:
    """The Quick Mode state after ``event``; :class:`IllegalTransition` if none."""
    if responder and state is Q.IKE_QM_IPSEC_INSTALL_AWAIT and event is E.IPSEC_INSTALL_DONE:
        return QM_RESPONDER_INSTALL_DONE
    try:
        return QM_TRANSITIONS[(state, source, event)]
    except KeyError:
        raise IllegalTransition("Quick Mode", state, source, event) from None


def next_child(state: ChildState, event: ChildEvent) -> ChildState:
    """The IPsec SA pair's state after ``event``; :class:`IllegalTransition` if none."""
    try:
        return CHILD_TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition("IPsec SA pair", state, None, event) from None
