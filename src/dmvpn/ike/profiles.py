"""Behaviour profiles: where IKEv1 implementations differ, as data.

RFC 2409 leaves open when to rekey, what to do when both peers start a Quick
Mode for the same flow, and when to delete the SA a rekey replaced. IOS-XE's
choices are the ``cisco-iosxe`` profile (REFERENCE.md, "Cisco IPsec SA
lifetimes and rekeying" and "The seed, worked through"); ``improved`` is this
project's own: no redundant rekeys, a deterministic collision tie-break,
jittered role-asymmetric soft limits and a short grace before the replaced
pair is deleted. A profile is looked up by name with :func:`get_profile`.
"""

from __future__ import annotations

from dataclasses import dataclass


class UnknownProfile(ValueError):
    """A behaviour profile name that is not defined."""


@dataclass(frozen=True, slots=True)
class BehaviourProfile:
    """Every knob the IKE engine reads instead of hard-coding a vendor choice.

    Lifetimes: a phase-2 SA's soft time limit is ``hard - soft_seconds_before``
    (minus up to ``soft_jitter_seconds``), its soft volume limit
    ``soft_volume_fraction`` of the hard one (minus up to
    ``soft_jitter_fraction``). The responder of the exchange that made a pair
    adds ``responder_soft_delay_seconds`` / ``responder_soft_extra_fraction``
    (role asymmetry; zero for IOS).

    Rekey decision: with ``lifetime_check_period`` set, soft events are only
    acted upon by a periodic check running at a per-router phase (IOS); None
    acts at once. ``rekey_idle`` False: an SA pair that never carried a packet
    is not renegotiated (IOS). ``skip_rekey_if_newer``: do not rekey a pair a
    newer pair for the same flow has replaced; ``skip_rekey_if_negotiating``
    also counts Quick Modes in progress as the responder.
    ``collision_tiebreak``: of two simultaneous Quick Modes for one flow,
    the one with the lower initiator nonce wins and the loser's initiator
    deletes its own pair.

    Deletion: the initiator of a rekey deletes the pair it replaced after a
    delay drawn from ``delete_replaced_after`` (seconds, min/max); None keeps
    it until it expires.
    """

    name: str
    description: str
    soft_seconds_before: float = 30.0
    soft_volume_fraction: float = 0.90
    soft_jitter_seconds: float = 0.0
    soft_jitter_fraction: float = 0.0
    responder_soft_delay_seconds: float = 0.0
    responder_soft_extra_fraction: float = 0.0
    lifetime_check_period: float | None = 2.0
    lifetime_check_jitter: float = 0.5
    rekey_idle: bool = False
    skip_rekey_if_newer: bool = True
    skip_rekey_if_negotiating: bool = False
    collision_tiebreak: bool = False
    delete_replaced_after: tuple[float, float] | None = (20.0, 45.0)
    phase1_rekey_fraction: float = 0.9
    retransmit_initial: float = 5.0
    retransmit_backoff: float = 2.0
    retransmit_max_interval: float = 40.0
    retransmit_limit: int = 5
    max_half_open: int = 64
    #: Quick Modes a peer may have open with us as responder at once (each
    #: holds a node, SPIs and nonces until its retransmissions run out); more
    #: are dropped unanswered, so an authenticated but hostile peer cannot
    #: grow the node table without bound. IOS does not document its figure.
    max_quick_modes_in_flight: int = 16
    node_purge_delay: float = 30.0
    dpd_retries: int = 5

    def __post_init__(self) -> None:
        if not 0.0 < self.soft_volume_fraction <= 1.0:
            raise ValueError(f"profile {self.name}: soft_volume_fraction must be in (0, 1]")
        if self.lifetime_check_period is not None and self.lifetime_check_period <= 0:
            raise ValueError(f"profile {self.name}: lifetime_check_period must be > 0")
        if self.retransmit_limit < 0:
            raise ValueError(f"profile {self.name}: retransmit_limit must be >= 0")


CISCO_IOSXE = BehaviourProfile(
    name="cisco-iosxe",
    description=(
        "IOS-XE: rekey 30 s before the time limit or at 90% of the volume, never an idle SA; "
        "lifetimes checked every ~2 s at a per-router phase (first to check wins); "
        "no collision rule (simultaneous Quick Modes leave two pairs); "
        "the rekey initiator deletes the replaced pair 20-45 s later"
    ),
)

IMPROVED = BehaviourProfile(
    name="improved",
    description=(
        "improved: soft limits jittered and asymmetric (the pair's initiator rekeys first), "
        "acted upon at once; no rekey while a newer pair exists or is being negotiated; "
        "simultaneous Quick Modes resolved by lower initiator nonce, the loser deletes its own pair; "
        "replaced pair deleted after a 5 s grace"
    ),
    soft_jitter_seconds=5.0,
    soft_jitter_fraction=0.02,
    responder_soft_delay_seconds=15.0,
    responder_soft_extra_fraction=0.05,
    lifetime_check_period=None,
    skip_rekey_if_negotiating=True,
    collision_tiebreak=True,
    delete_replaced_after=(5.0, 5.0),
)

PROFILES: dict[str, BehaviourProfile] = {p.name: p for p in (CISCO_IOSXE, IMPROVED)}
DEFAULT_PROFILE = CISCO_IOSXE.name


def get_profile(name: str) -> BehaviourProfile:
    """The profile called ``name``; :class:`UnknownProfile` names the choices."""
    try:
        return PROFILES[name]
    except KeyError:
        raise UnknownProfile(
            f"unknown behaviour profile {name!r} (choose from {', '.join(sorted(PROFILES))})"
        ) from None
