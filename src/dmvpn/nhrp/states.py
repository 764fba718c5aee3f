"""NHRP state machines as explicit transition tables (the project's h11
style, as in :mod:`dmvpn.ike.states`).

Two machines:

* :data:`NHS_TRANSITIONS`: a client's view of one ``ip nhrp nhs`` (RFC 2332
  5.2.3 registration). The states are the letters ``show dmvpn detail`` and
  ``show ip nhrp nhs`` print: W waiting (nothing sent yet, e.g. the IPsec SA
  to the hub is not up), E expecting replies, R responding.
* :data:`ENTRY_TRANSITIONS`: a cache entry's life (RFC 2332 5.2.1-5.2.5):
  incomplete while a resolution runs, negative when it failed, resolved when
  a reply came, refreshing while a used entry is re-resolved, registered on
  an NHS; static entries come from ``ip nhrp map``.

An event with no row for the current state raises :class:`IllegalTransition`.
"""

from __future__ import annotations

from enum import Enum


class NhsState(Enum):
    """Registration state toward one NHS (the ``show ip nhrp nhs`` letters)."""

    WAITING = "W"
    EXPECTING = "E"
    RESPONDING = "R"


class NhsEvent(Enum):
    """What happens to a registration."""

    SEND = "send"  # a registration request left
    REPLY = "reply"  # a reply with code 0
    NAK = "nak"  # a reply with a non-zero code (e.g. 14)
    TIMEOUT = "timeout"  # a retransmission was needed
    RESET = "reset"  # the SA or the interface went down


class EntryState(Enum):
    """Cache entry states (``show ip nhrp`` Type and Flags follow from them)."""

    INCOMPLETE = "incomplete"
    NEGATIVE = "negative"
    RESOLVED = "resolved"
    REFRESHING = "refreshing"
    REGISTERED = "registered"
    STATIC = "static"
    GONE = "gone"


class EntryEvent(Enum):
    """What happens to a cache entry."""

    RESOLVE = "resolve"
    REPLY = "reply"
    NAK = "nak"
    GIVE_UP = "give-up"
    REFRESH = "refresh"
    REGISTER = "register"
    EXPIRE = "expire"
    PURGE = "purge"


class IllegalTransition(Exception):
    """An event arrived that the state machine has no transition for."""

    def __init__(self, machine: str, state: Enum, event: Enum) -> None:
        super().__init__(f"{machine}: no transition from {state.value} on {event.value}")
        self.machine = machine
        self.state = state
        self.event = event


N, NE = NhsState, NhsEvent
NHS_TRANSITIONS: dict[tuple[NhsState, NhsEvent], NhsState] = {
    (N.WAITING, NE.SEND): N.EXPECTING,
    (N.EXPECTING, NE.SEND): N.EXPECTING,
    (N.EXPECTING, NE.TIMEOUT): N.EXPECTING,
    (N.EXPECTING, NE.REPLY): N.RESPONDING,
    (N.EXPECTING, NE.NAK): N.EXPECTING,
    (N.RESPONDING, NE.SEND): N.RESPONDING,  # a refresh while replies come
    (N.RESPONDING, NE.REPLY): N.RESPONDING,
    (N.RESPONDING, NE.NAK): N.EXPECTING,
    (N.RESPONDING, NE.TIMEOUT): N.EXPECTING,  # a refresh went unanswered
    (N.WAITING, NE.RESET): N.WAITING,
    (N.EXPECTING, NE.RESET): N.WAITING,
    (N.RESPONDING, NE.RESET): N.WAITING,
}

S, SE = EntryState, EntryEvent
ENTRY_TRANSITIONS: dict[tuple[EntryState, EntryEvent], EntryState] = {
    (S.GONE, SE.RESOLVE): S.INCOMPLETE,
    (S.GONE, SE.REPLY): S.RESOLVED,  # an implicit entry from a request's source
    (S.GONE, SE.REGISTER): S.REGISTERED,
    (S.INCOMPLETE, SE.REPLY): S.RESOLVED,
    (S.INCOMPLETE, SE.NAK): S.NEGATIVE,
    (S.INCOMPLETE, SE.GIVE_UP): S.NEGATIVE,
    (S.INCOMPLETE, SE.PURGE): S.GONE,
    (S.NEGATIVE, SE.EXPIRE): S.GONE,
    (S.NEGATIVE, SE.RESOLVE): S.INCOMPLETE,
    (S.NEGATIVE, SE.REPLY): S.RESOLVED,
    (S.NEGATIVE, SE.PURGE): S.GONE,
    (S.RESOLVED, SE.REPLY): S.RESOLVED,
    (S.RESOLVED, SE.REFRESH): S.REFRESHING,
    (S.RESOLVED, SE.EXPIRE): S.GONE,
    (S.RESOLVED, SE.PURGE): S.GONE,
    (S.REFRESHING, SE.REPLY): S.RESOLVED,
    (S.REFRESHING, SE.NAK): S.RESOLVED,  # keep the binding until it expires
    (S.REFRESHING, SE.GIVE_UP): S.RESOLVED,
    (S.REFRESHING, SE.EXPIRE): S.GONE,
    (S.REFRESHING, SE.PURGE): S.GONE,
    (S.REGISTERED, SE.REGISTER): S.REGISTERED,
    (S.REGISTERED, SE.EXPIRE): S.GONE,
    (S.REGISTERED, SE.PURGE): S.GONE,
    (S.STATIC, SE.PURGE): S.STATIC,  # configured mappings survive purges
}


def next_nhs_state(state: NhsState, event: NhsEvent) -> NhsState:
    """The NHS state after ``event``; :class:`IllegalTransition` if none."""
    try:
        return NHS_TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition("NHS registration", state, event) from None


def next_entry_state(state: EntryState, event: EntryEvent) -> EntryState:
    """The cache entry state after ``event``; :class:`IllegalTransition` if none."""
    try:
        return ENTRY_TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition("NHRP cache entry", state, event) from None
