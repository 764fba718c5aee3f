"""The IKEv1 engine's state as the show views (:mod:`dmvpn.show.views`) want it.

The key manager's side of ``show crypto isakmp sa`` and ``show crypto
session`` (:class:`~dmvpn.ike.manager.KeyManager`'s view methods): every
value comes from an :class:`~dmvpn.ike.isakmp_sa.IsakmpSa` or
:class:`~dmvpn.ike.isakmp_sa.ChildSa`; the IOS spellings of the phase-1
algorithms live here.
"""

from __future__ import annotations

from collections.abc import Sequence

from dmvpn.crypto.ike_algorithms import EncryptionAlgorithm, HashAlgorithm
from dmvpn.ike.isakmp_sa import ChildSa, IsakmpSa
from dmvpn.ike.manager import ChildSaView
from dmvpn.ike.states import Phase1State
from dmvpn.show.views import CryptoSessionView, IsakmpSaState, IsakmpSaView, SessionIkeSaView
from dmvpn.wire.isakmp import IKE_PORT

#: ``show crypto isakmp sa detail``'s names of the phase-1 algorithms.
ENCRYPTION_NAMES = {EncryptionAlgorithm.AES_CBC: "aes", EncryptionAlgorithm.DES3_CBC: "3des",
                    EncryptionAlgorithm.DES_CBC: "des"}
HASH_NAMES = {
    HashAlgorithm.MD5: "md5",
    HashAlgorithm.SHA: "sha",
    HashAlgorithm.SHA2_256: "sha256",
    HashAlgorithm.SHA2_384: "sha384",
    HashAlgorithm.SHA2_512: "sha512",
}


def capabilities(sa: IsakmpSa, dpd_configured: bool) -> str:
    """``Cap.``: D when DPD (RFC 3706) is on both sides, N when NAT-T found a NAT (RFC 3947)."""
    return ("D" if sa.peer_dpd and dpd_configured else "") + ("N" if sa.nat_detected else "")


def _left(expires_at: float | None, now: float) -> int:
    return int(expires_at - now) if expires_at is not None else 0


def isakmp_sa_view(sa: IsakmpSa, now: float, dpd_configured: bool) -> IsakmpSaView:
    """One line of ``show crypto isakmp sa [detail]``."""
    choice = sa.choice
    return IsakmpSaView(
        dst=sa.peer if sa.initiator else sa.local,
        src=sa.local if sa.initiator else sa.peer,
        local=sa.local,
        remote=sa.peer,
        state=IsakmpSaState(sa.state.display),
        conn_id=sa.conn_id,
        deleted=sa.state is Phase1State.IKE_DEST_SA,
        encryption=ENCRYPTION_NAMES.get(EncryptionAlgorithm(choice.encryption), "aes") if choice else "aes",
        hash=HASH_NAMES.get(HashAlgorithm(choice.hash), "sha") if choice else "sha",
        dh_group=choice.group if choice else 0,
        lifetime_sec=_left(sa.expires_at, now),
        capabilities=capabilities(sa, dpd_configured),
        engine_conn_id=sa.conn_id if sa.established else None,
    )


def _session_ike_sa(sa: IsakmpSa, index: int, now: float, dpd_configured: bool) -> SessionIkeSaView:
    return SessionIkeSaView(
        local=sa.local,
        local_port=sa.local_port,
        remote=sa.peer,
        remote_port=sa.peer_port,
        active=sa.established,
        session_id=index,
        capabilities=capabilities(sa, dpd_configured),
        conn_id=sa.conn_id,
        lifetime_sec=_left(sa.expires_at, now),
    )


def session_views(sas: Sequence[IsakmpSa], children: Sequence[ChildSa], now: float,
                  dpd_configured: bool) -> list[CryptoSessionView]:
    """IKE's half of ``show crypto session``: one block per peer, in the
    order the peers' first ISAKMP SAs were made."""
    by_peer: dict[str, list[IsakmpSa]] = {}
    for sa in sas:
        by_peer.setdefault(sa.peer, []).append(sa)
    views = []
    for peer, ike in by_peer.items():
        starts = [s.established_at for s in ike if s.established and s.established_at is not None]
        interface = next((c.policy.interface for c in children if c.peer == peer), "(unknown)")
        views.append(CryptoSessionView(
            interface=interface,
            peer=peer,
            peer_port=ike[0].peer_port if ike else IKE_PORT,
            status="UP-IDLE" if any(s.established for s in ike) else "DOWN-NEGOTIATING",
            uptime_sec=int(now - min(starts)) if starts else None,
            phase1_id=peer,
            ike_sas=tuple(_session_ike_sa(s, i, now, dpd_configured) for i, s in enumerate(ike)),
        ))
    return views


def child_sa_views(children: Sequence[ChildSa]) -> list[ChildSaView]:
    """The pairs with the policy they serve."""
    return [ChildSaView(c.peer, c.policy.interface, c.policy.name, c.policy.pfs_group, c.sa_in, c.sa_out)
            for c in children]
