"""Deletes that cross in the virtual-time lab (RFC 7296 1.4.1): both ends
delete the IKE SA at once (``clear crypto ikev2 sa`` on both), or the same
CHILD_SA pair at once (``clear crypto sa`` on both). Each side answers the
peer's DELETE (an empty INFORMATIONAL response under the SA being deleted),
tears the SAs down exactly once, sends nothing more on them, and the next
traffic sets up fresh ones; the same converges with 20% loss. Each test
asserts on both sides what was sent, what is left in the SAD and what was
deleted."""

from __future__ import annotations

from dmvpn.ike.v2.context import IKEV2_RETRANSMIT
from dmvpn.ike.v2.engine import Ikev2Engine
from dmvpn.ike.v2.protect import open_message
from dmvpn.ike.v2.sa_init import IkeSaState
from dmvpn.runtime.sim import LinkParams
from dmvpn.wire.ikev2_payloads import DeletePayload
from dmvpn.wire.ikev2_registry import ExchangeType, ProtocolId
from ikev2_lab import build_v2
from router_lab import HUB_TUN, results
from test_ikev2_ike_rekey import _both_at, _lab, _settled

INFORMATIONAL, RESPONSE = int(ExchangeType.INFORMATIONAL), 0x20


def _sent(sim, engine: Ikev2Engine) -> list[tuple[float, bytes]]:
    """Every IKE datagram ``engine`` sends from now on, with its time."""
    log: list[tuple[float, bytes]] = []
    orig = engine.poll_datagrams

    def poll() -> list:
        out = orig()
        log.extend((sim.now, d.payload) for d in out)
        return out

    engine.poll_datagrams = poll  # type: ignore[method-assign]
    return log


def _on(log: list[tuple[float, bytes]], spis: bytes) -> list[tuple[float, bytes]]:
    """The messages of ``log`` on the IKE SA with these SPIs (SPIi + SPIr)."""
    return [(t, p) for t, p in log if p[:16] == spis]


def _kinds(log: list[tuple[float, bytes]]) -> list[tuple[int, bool]]:
    """(exchange type, is a response) of each message."""
    return [(p[18], bool(p[19] & RESPONSE)) for _t, p in log]


def _deletes(keys: IkeSaState, packet: bytes) -> list[tuple[int, list[bytes]]]:
    """The Delete payloads of ``packet``, opened with the receiver's ``keys``."""
    msg = open_message(keys, packet)
    return [(d.protocol_id, d.spis) for d in msg.find(DeletePayload) if isinstance(d, DeletePayload)]


def _sad_spis(router) -> set[int]:
    return {sa.spi for sa in router.sad.all()}


def _pair_deleted(sim, node: str, spi_in: int) -> int:
    """How many times ``node`` reported the pair with inbound ``spi_in`` deleted."""
    return sum(1 for e in sim.events if e.node == node and e.category == "ipsec"
               and e.fields["what"].startswith("deleted") and e.fields["spi_in"] == spi_in)


def _said(sim, node: str, text: str, after: float = 0.0) -> int:
    return sum(1 for e in sim.events if e.node == node and e.time >= after and text in e.message)


def test_ike_sa_deletes_that_cross_are_both_answered():
    """Both ends DELETE the IKE SA at 10 s: each answers the other's
    request with an empty INFORMATIONAL response (not a refusal), both drop
    the IKE SA and its CHILD_SA once, nothing is retransmitted, and the
    spoke's next Echo sets up a fresh IKE SA."""
    sim, hub, spoke, h, s = _lab(hub_pings=False)
    (old_h,), (old_s,) = h.sas, s.sas
    old = old_h.keys.spi_i + old_h.keys.spi_r
    (pair_h,), (pair_s,) = h.children.pairs, s.children.pairs
    old_child = {pair_h.sa_in.spi, pair_h.sa_out.spi}
    logs = {h: _sent(sim, h), s: _sent(sim, s)}
    _both_at(sim, 10.0, hub_cmd="clear crypto ikev2 sa", spoke_cmd="clear crypto ikev2 sa")
    sim.run(10.5)
    for me, peer_keys in ((h, old_s.keys), (s, old_h.keys)):
        mine = _on(logs[me], old)
        assert _kinds(mine) == [(INFORMATIONAL, False), (INFORMATIONAL, True)], (me.name, _kinds(mine))
        (_t, request), (_t2, response) = mine
        assert _deletes(peer_keys, request) == [(ProtocolId.IKE, [])]
        assert _deletes(peer_keys, response) == [] and open_message(peer_keys, response).payloads == []
    for me, router, old_sa in ((h, hub, old_h), (s, spoke, old_s)):
        assert old_sa not in me.sas
        assert not _sad_spis(router) & old_child
        assert me.stats["rekeys_refused"] == 0 and me.stats["ike_failures"] == 0
        assert _said(sim, me.name, "Received DELETE for the IKEv2 SA", after=10.0) == 1
        assert _said(sim, me.name, f"(SESSION ID = {old_sa.sa_id},SA ID = {old_sa.sa_id}):Deleting IKEv2 SA") == 1
    assert _pair_deleted(sim, "HUB", pair_h.sa_in.spi) == _pair_deleted(sim, "SPOKE1", pair_s.sa_in.spi) == 1
    sim.run(150.0)
    for me in (h, s):
        assert [t for t, _p in _on(logs[me], old) if t > 10.5] == []  # nothing more on the old SA
        assert me.stats["retransmits"] == 0
    spis = _settled(hub, spoke)
    assert spis != (old_h.keys.spi_i, old_h.keys.spi_r) and len(h.key_lines) == len(s.key_lines) == 2
    assert not _sad_spis(hub) & old_child and not _sad_spis(spoke) & old_child
    assert results(spoke).count(".") <= 2  # the Echos of the renegotiation only


def test_child_sa_deletes_that_cross_are_both_answered():
    """Both ends DELETE the one CHILD_SA pair at 10 s (1.4.1): each deletes
    its outbound half at once and its inbound half when its own DELETE is
    answered; each answers the other's DELETE with no Delete payload (the
    pair is already being deleted); the IKE SA stays and the next Echo
    negotiates a fresh pair on it; nothing is retransmitted."""
    sim, hub, spoke, h, s = _lab(hub_pings=False)
    ike = _settled(hub, spoke)
    (old_h,), (old_s,) = h.sas, s.sas
    (pair_h,), (pair_s,) = h.children.pairs, s.children.pairs
    logs = {h: _sent(sim, h), s: _sent(sim, s)}
    _both_at(sim, 10.0, hub_cmd="clear crypto sa", spoke_cmd="clear crypto sa")
    sim.run(10.015)  # each has processed the other's DELETE; the answers are on the wire
    for router, pair in ((hub, pair_h), (spoke, pair_s)):
        assert pair.sa_out.spi not in _sad_spis(router) and pair.sa_in.spi in _sad_spis(router)
    sim.run(10.05)
    for me, router, pair, peer_keys in ((h, hub, pair_h, old_s.keys), (s, spoke, pair_s, old_h.keys)):
        mine = [(t, p) for t, p in _on(logs[me], ike[0] + ike[1]) if p[18] == INFORMATIONAL]
        assert _kinds(mine) == [(INFORMATIONAL, False), (INFORMATIONAL, True)], (me.name, _kinds(mine))
        (_t, request), (_t2, response) = mine
        assert _deletes(peer_keys, request) == [(ProtocolId.ESP, [pair.sa_in.spi.to_bytes(4, "big")])]
        assert _deletes(peer_keys, response) == []  # 1.4.1: MUST NOT name SAs deleted by both ends
        assert not _sad_spis(router) & {pair.sa_in.spi, pair.sa_out.spi}
        assert _said(sim, me.name, "crossing DELETE") == 1
        assert _said(sim, me.name, "liveness", after=10.0) == 0
    assert _pair_deleted(sim, "HUB", pair_h.sa_in.spi) == _pair_deleted(sim, "SPOKE1", pair_s.sa_in.spi) == 1
    sim.run(60.0)
    assert _settled(hub, spoke) == ike  # the same IKE SA carries the fresh pair
    (new_h,) = h.children.pairs
    assert new_h.sa_in.spi not in (pair_h.sa_in.spi, pair_h.sa_out.spi)
    assert h.stats["retransmits"] == s.stats["retransmits"] == 0
    assert results(spoke).count(".") <= 1


def test_crossing_deletes_converge_with_20_percent_loss():
    """The same crossing deletes (of the IKE SA, and of the CHILD_SA pair)
    with 20% loss both ways: retransmissions recover, the deleted SAs are
    gone on both sides, nothing is sent on a deleted IKE SA once the
    retransmissions would have given up, and a fresh pair comes up crosswise."""
    stop = IKEV2_RETRANSMIT.give_up_after()
    retransmits = 0
    crossed = {"clear crypto ikev2 sa": 0, "clear crypto sa": 0}
    for seed, cmd in zip((5, 6, 7, 8, 9, 10), ["clear crypto ikev2 sa", "clear crypto sa"] * 3, strict=True):
        sim, hub, spoke, _ = build_v2(seed=seed, link=LinkParams(delay=0.01, loss=0.2))
        h, s = hub.ike, spoke.ike
        assert isinstance(h, Ikev2Engine) and isinstance(s, Ikev2Engine)
        for node in ("HUB", "SPOKE1"):
            sim.admin(node, "debug crypto ikev2")
        sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 1000 interval 0.5 timeout 2")
        t = 0.0
        while not (len(h.sas) == len(s.sas) == 1 and h.sas[0].established and s.sas[0].established
                   and len(h.children.pairs) == len(s.children.pairs) == 1):
            t += 5.0
            sim.run(t)
            assert t < 200.0, seed
        (old_h,), (old_s,) = h.sas, s.sas
        old = old_h.keys.spi_i + old_h.keys.spi_r
        old_child = {c.sa_in.spi for c in h.children.pairs} | {c.sa_out.spi for c in h.children.pairs}
        logs = {h: _sent(sim, h), s: _sent(sim, s)}
        _both_at(sim, t + 1.0, hub_cmd=cmd, spoke_cmd=cmd)
        sim.run(t + 1.0 + stop + 30.0)
        assert not _sad_spis(hub) & old_child and not _sad_spis(spoke) & old_child, seed
        if cmd == "clear crypto ikev2 sa":
            assert old_h not in h.sas and old_s not in s.sas, seed
            for me in (h, s):
                assert [x for x, _p in _on(logs[me], old) if x > t + 1.0 + stop] == [], seed
        sim.run(t + 1.0 + stop + 120.0)
        assert len(h.sas) == len(s.sas) == 1 and h.sas[0].established and s.sas[0].established, seed
        assert len(h.children.pairs) == len(s.children.pairs) == 1, seed
        (ch,), (cs,) = h.children.pairs, s.children.pairs
        assert (ch.sa_in.spi, ch.sa_out.spi) == (cs.sa_out.spi, cs.sa_in.spi), seed
        assert _sad_spis(hub) == {ch.sa_in.spi, ch.sa_out.spi} == _sad_spis(spoke), seed
        assert results(spoke)[-20:].count("!") >= 10, seed
        retransmits += h.stats["retransmits"] + s.stats["retransmits"]
        crossed[cmd] += sum(_said(sim, n, "crossed the peer's") + _said(sim, n, "crossing DELETE")
                            for n in ("HUB", "SPOKE1"))
    assert retransmits > 0
    assert all(crossed.values()), crossed  # the requests did cross, for both kinds of SA
