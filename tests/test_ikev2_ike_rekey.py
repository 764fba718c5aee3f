"""IKE SA rekey races in the virtual-time lab (RFC 7296 2.8.2, 2.25), the
kinds of scenarios of strongSwan's ``test_ike_rekey.c``: both ends rekey
the IKE SA at once (the new SA of the exchange with the lowest nonce is
deleted by its initiator, the survivor inherits the CHILD_SAs, its
initiator deletes the old SA), the same with a delayed response and with a
delayed request (refused TEMPORARY_FAILURE), a DELETE of the IKE SA that
crosses a rekey, and DELETEs that are lost. Each asserts the IKE SAs and
CHILD_SA SPIs left on both sides and who deleted what; no probe is lost."""

from __future__ import annotations

import re

from dmvpn.ike.v2.engine import Ikev2Engine
from dmvpn.ike.v2.states import Ikev2SaState
from dmvpn.runtime.sim import LinkParams
from dmvpn.wire.ikev2_registry import ExchangeType
from ikev2_lab import build_v2
from router_lab import HUB_TUN, SPOKE_TUN, results

CREATE_CHILD_SA, INFORMATIONAL, RESPONSE = int(ExchangeType.CREATE_CHILD_SA), int(ExchangeType.INFORMATIONAL), 0x20


def _lab(delay: float = 0.01, hub_pings: bool = True):
    sim, hub, spoke, _ = build_v2(link=LinkParams(delay=delay))
    for node in ("HUB", "SPOKE1"):
        sim.admin(node, "debug crypto ikev2")
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 1")
    sim.run(5.0)
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 300 interval 0.1 timeout 2")
    if hub_pings:
        sim.admin("HUB", f"ping {SPOKE_TUN} repeat 300 interval 0.1 timeout 2")
    assert isinstance(hub.ike, Ikev2Engine) and isinstance(spoke.ike, Ikev2Engine)
    return sim, hub, spoke, hub.ike, spoke.ike


def _both_at(sim, t: float, hub_cmd: str = "test crypto ikev2 rekey", spoke_cmd: str = "test crypto ikev2 rekey"):
    sim.call_at(t, lambda: (sim.admin("HUB", hub_cmd), sim.admin("SPOKE1", spoke_cmd)))


def _filter(sim, engine: Ikev2Engine, keep, delay: float = 0.0) -> list:
    """Datagrams of ``engine`` for which ``keep`` is false are held for
    ``delay`` s (0: dropped); returns what was held or dropped."""
    caught: list = []
    orig = engine.poll_datagrams

    def poll():
        out = []
        for d in orig():
            if id(d) not in {id(c) for c in caught} and not keep(d.payload):
                caught.append(d)
                if delay:
                    engine.transport.schedule(sim.now + delay, lambda t, d=d: engine.transport.send(d))
                continue
            out.append(d)
        return out

    engine.poll_datagrams = poll  # type: ignore[method-assign]
    return caught


def _is(payload: bytes, xchg: int, response: bool) -> bool:
    return len(payload) > 19 and payload[18] == xchg and bool(payload[19] & RESPONSE) is response


def _settled(hub, spoke) -> tuple[bytes, bytes]:
    """One IKE SA on each side, the same one, carrying the one CHILD_SA pair; its SPIs."""
    h, s = hub.ike, spoke.ike
    assert [sa.state for sa in h.sas] == [sa.state for sa in s.sas] == [Ikev2SaState.ESTABLISHED], \
        ([(sa.sa_id, sa.state) for sa in h.sas], [(sa.sa_id, sa.state) for sa in s.sas])
    (hs,), (ss,) = h.sas, s.sas
    assert (hs.keys.spi_i, hs.keys.spi_r) == (ss.keys.spi_i, ss.keys.spi_r)
    assert len(h.children.pairs) == len(s.children.pairs) == 1
    (hc,), (sc,) = h.children.pairs, s.children.pairs
    assert hc.sa_in.spi == sc.sa_out.spi and hc.sa_out.spi == sc.sa_in.spi
    assert h.child_ike[hc] is hs and s.child_ike[sc] is ss and hs.children == [hc] and ss.children == [sc]
    return hs.keys.spi_i, hs.keys.spi_r


def _ike_deletes_sent(sim, node: str) -> set[int]:
    """The IDs of the IKE SAs ``node`` sent a DELETE for (its debug lines)."""
    pattern = re.compile(r"\(SESSION ID = (\d+),SA ID = \d+\):Sending DELETE INFO message for IKEv2 SA$")
    return {int(m.group(1)) for e in sim.events if e.node == node and (m := pattern.search(e.message))}


def _said(sim, node: str, text: str) -> bool:
    return any(e.node == node and text in e.message for e in sim.events)


def _no_probe_lost(hub, spoke) -> None:
    assert results(spoke).count(".") == 0 and results(hub).count(".") == 0


def test_simultaneous_ike_rekey_lowest_nonce_loses_rfc7296_2_8_2():
    sim, hub, spoke, h, s = _lab()
    (old,) = h.sas
    old_spis = (old.keys.spi_i, old.keys.spi_r)
    _both_at(sim, 10.0)
    sim.run(60.0)
    assert len(h.ike_collisions) == len(s.ike_collisions) == 1
    hc, sc = h.ike_collisions[0], s.ike_collisions[0]
    assert hc.ours_redundant != sc.ours_redundant  # both pick the same loser
    assert (hc.ours_nonces, hc.theirs_nonces) == (sc.theirs_nonces, sc.ours_nonces)
    winner, loser = (spoke, hub) if hc.ours_redundant else (hub, spoke)
    survivor = _settled(hub, spoke)
    assert survivor != old_spis
    # the survivor is the winner's own rekey: it is that SA's initiator
    assert winner.ike.sas[0].initiator and not loser.ike.sas[0].initiator
    # the loser deleted its redundant SA (only), the winner the old one (only)
    lost = (hc if hc.ours_redundant else sc)
    won = (sc if hc.ours_redundant else hc)
    assert _ike_deletes_sent(sim, loser.name) == {lost.ours_sa_id}
    assert _ike_deletes_sent(sim, winner.name) == {won.old_sa_id}
    _no_probe_lost(hub, spoke)


def test_simultaneous_ike_rekey_with_a_delayed_response_settles_alike():
    """The hub's answer to the spoke's rekey is late: the hub settles first.
    If the hub won, its DELETE of the old SA reaches the spoke before the
    answer: only the winner deletes the old SA (2.8.2), so the spoke moves
    its CHILD_SA to the hub's new SA; the spoke's own new SA, which it never
    learns of, goes at the hub once the spoke's DELETE of it never comes."""
    sim, hub, spoke, h, s = _lab()
    held = _filter(sim, h, lambda p: not _is(p, CREATE_CHILD_SA, True), delay=0.3)
    _both_at(sim, 10.0)
    sim.run(150.0)
    assert len(held) == 1 and len(h.ike_collisions) == 1
    if h.ike_collisions[0].ours_redundant:
        assert len(s.ike_collisions) == 1 and not s.ike_collisions[0].ours_redundant
    else:
        assert not s.ike_collisions
        assert _said(sim, "SPOKE1", "the peer's DELETE of the old SA came first")
        assert _said(sim, "HUB", "Deleting IKEv2 SA (the peer's DELETE never came)")
    _settled(hub, spoke)
    assert h.sas[0].initiator  # the hub's rekey survived
    _no_probe_lost(hub, spoke)


def test_ike_rekey_with_a_delayed_request_the_winners_delete_comes_first():
    """The spoke's rekey request is late: the hub, seeing no collision,
    takes its new SA and deletes the old one; the spoke, which answered the
    hub's rekey while its own was in flight, keeps the hub's new SA when
    that DELETE comes; the late request finds no IKE SA and is dropped."""
    sim, hub, spoke, h, s = _lab()
    (old,) = h.sas
    held = _filter(sim, s, lambda p: not _is(p, CREATE_CHILD_SA, False), delay=0.3)
    _both_at(sim, 10.0)
    sim.run(60.0)
    assert len(held) == 1 and not h.ike_collisions and not s.ike_collisions
    assert _said(sim, "SPOKE1", "the peer's DELETE of the old SA came first")
    assert _said(sim, "HUB", "Received packet for an unknown IKE SA")
    _settled(hub, spoke)
    assert h.sas[0].initiator and not s.sas[0].initiator  # the hub's rekey survived
    assert _ike_deletes_sent(sim, "HUB") == {old.sa_id} and not _ike_deletes_sent(sim, "SPOKE1")
    _no_probe_lost(hub, spoke)


def test_ike_sa_delete_crossing_a_rekey():
    """The hub deletes the IKE SA (clear crypto ikev2 sa) while the spoke
    rekeys it: the hub refuses the rekey (TEMPORARY_FAILURE, 2.25), both
    drop the SA and its CHILD_SA, and traffic then sets up a fresh one."""
    sim, hub, spoke, h, s = _lab(hub_pings=False)  # the fresh SA comes from the spoke alone
    (old,) = h.sas
    _both_at(sim, 10.0, hub_cmd="clear crypto ikev2 sa")
    sim.run(60.0)
    assert h.stats["rekeys_refused"] == 1 and not h.ike_collisions and not s.ike_collisions
    spis = _settled(hub, spoke)
    assert spis != (old.keys.spi_i, old.keys.spi_r)
    assert h.sas[0].sa_id > old.sa_id and len(h.key_lines) == len(s.key_lines) == 2  # a fresh IKE_SA_INIT
    assert results(spoke).count(".") <= 2  # the Echos of the renegotiation only


def test_simultaneous_ike_rekey_with_every_delete_dropped():
    """The winner's DELETE of the old SA and the loser's of its redundant SA
    are all lost: each deleter gives up and drops its SA, the other side
    drops the SA it waited to see deleted; one IKE SA stays, the same."""
    sim, hub, spoke, h, s = _lab()
    dropped = [_filter(sim, e, lambda p: not _is(p, INFORMATIONAL, False)) for e in (h, s)]
    _both_at(sim, 10.0)
    sim.run(150.0)
    assert len(h.ike_collisions) == len(s.ike_collisions) == 1
    assert all(dropped) and h.stats["ike_failures"] + s.stats["ike_failures"] == 2  # two deletes given up
    _settled(hub, spoke)
    _no_probe_lost(hub, spoke)


def test_cookie_challenge_under_half_open_load():
    """``crypto ikev2 cookie-challenge 3`` (RFC 7296 2.6): three half-open
    IKE SAs from spoofed initiators make the hub answer the spoke's
    IKE_SA_INIT with a COOKIE and keep no state; the spoke retries with it
    and sets up its SA; the half-open ones time out."""
    from dmvpn.ike.v2.sa_init import IkeSaInit
    from ikev2_lab import ikev2
    from router_lab import HUB_NBMA, build, hub_text, spoke_text

    sim, hub, spoke, _ = build(hub=ikev2(hub_text()).replace("crypto ikev2 proposal", "crypto ikev2 cookie-challenge 3"
                                                                  "\ncrypto ikev2 proposal", 1),
                               spoke=ikev2(spoke_text()))
    h = hub.ike
    assert isinstance(h, Ikev2Engine) and hub.config.ikev2.cookie_challenge == 3
    proposals = list(h.config.ikev2.proposals.values())
    for n in range(3):
        flood = IkeSaInit(proposals, sim.random_for(f"flood{n}"), initiator=True)
        h.receive(sim.now, f"198.51.100.{n + 1}", 500, HUB_NBMA, 500, flood.build_i(sim.now))
    assert [sa.state for sa in h.sas] == [Ikev2SaState.INIT_DONE] * 3 and h.stats["cookies_sent"] == 0
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 3")
    sim.run(10.0)
    assert h.stats["cookies_sent"] == 1 and "cookie requested" in spoke.ike.sas[0].keys.notes
    assert results(spoke) == ".!!"
    sim.run(200.0)  # the spoofed half-open SAs give up waiting for IKE_AUTH
    assert [sa.peer for sa in h.sas] == [spoke.ike.sas[0].local] and h.sas[0].established
