"""The NHRP engine: a hub and spokes wired together in memory, explicit
virtual time, NHRP.md section 5's scenarios that do not need the router."""

from __future__ import annotations

import itertools
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from dmvpn.config.model import NhrpServer
from dmvpn.config.parser import parse_config
from dmvpn.nhrp.cache import NEGATIVE_HOLD
from dmvpn.nhrp.engine import RESOLUTION_GIVE_UP, NhrpEngine
from dmvpn.nhrp.events import EntryGone, MappingAdded, NeedSa, RouteAdded, RouteRemoved, SendNhrp
from dmvpn.nhrp.settings import settings_from_interface
from dmvpn.nhrp.states import EntryState, NhsState
from dmvpn.runtime.randomness import SeededRandomSource
from dmvpn.wire.nhrp import (
    END_EXTENSION,
    AuthenticationExtension,
    Cie,
    CieListExtension,
    ExtensionType,
    NhrpPacket,
    PacketType,
    RawExtension,
    decode_nhrp,
    encode_nhrp,
)
from nhrp_harness import (
    HUB_NBMA,
    HUB_TUNNEL,
    Net,
    Wire,
    hub_routes,
    hub_settings,
    ipv4_packet,
    lab,
    pair,
    spoke_routes,
    spoke_settings,
)

A = IPv4Address
T = PacketType


def engine(net: Net, name: str) -> NhrpEngine:
    return next(e for e in net.engines.values() if e.node == name)


def ip(raw: bytes) -> str:
    return str(A(raw))


# ---------------------------------------------------------------- 1-3 registration


def test_initial_registration_packets_and_state() -> None:
    """Scenario 1: RegReq(U|NAT, CIE 0/32/mtu/7200, NAT[hub]) -> RegRep(code 0, Rsp[hub])."""
    net = lab()
    net.run_until(1.0)
    hub = engine(net, "hub")
    reqs, reps = net.sent(T.REGISTRATION_REQUEST), net.sent(T.REGISTRATION_REPLY)
    assert len(reqs) == len(reps) == 3
    req = reqs[0].packet
    assert (req.flags, req.hop_count, req.request_id) == (0x8002, 255, 1)
    assert (req.cies[0].prefix_length, req.cies[0].mtu, req.cies[0].holding_time) == (32, 1400, 7200)
    assert req.cies[0].client_nbma == req.cies[0].client_protocol == b""
    assert [e.type for e in req.extensions] == [3, 4, 5, 7, 9, 0]
    nat = req.extension(ExtensionType.NAT_ADDRESS)
    assert isinstance(nat, CieListExtension) and not nat.compulsory
    assert (ip(nat.cies[0].client_nbma), ip(nat.cies[0].client_protocol)) == (str(HUB_NBMA), str(HUB_TUNNEL))
    rep = reps[0].packet
    assert (rep.request_id, rep.cies[0].code, rep.hop_count, reps[0].dst) == (1, 0, 255, A("172.16.0.2"))
    rsp = rep.extension(ExtensionType.RESPONDER_ADDRESS)
    assert isinstance(rsp, CieListExtension) and ip(rsp.cies[0].client_protocol) == str(HUB_TUNNEL)
    assert rep.extension(ExtensionType.AUTHENTICATION) == AuthenticationExtension(1, b"DMVPN")
    entries = [e for e in hub.cache if e.state is EntryState.REGISTERED]
    assert [str(e.prefix) for e in entries] == ["10.0.0.2/32", "10.0.0.3/32", "10.0.0.4/32"]
    assert entries[0].flags() == ["unique", "registered", "used", "nhop"]
    assert entries[0].expires == pytest.approx(reqs[0].time + net.delay + 7200)
    assert sorted(map(str, hub.multicast_nbmas())) == ["172.16.0.2", "172.16.0.3", "172.16.0.4"]
    for n in (2, 3, 4):
        assert engine(net, f"spoke{n}").nhs[0].state is NhsState.RESPONDING
    assert MappingAdded(A("10.0.0.2"), A("172.16.0.2"), "Tunnel0") in net.outputs["hub"]


def test_refresh_every_third_of_holdtime_with_a_new_id() -> None:
    """Scenario 2: the refresh at holdtime/3 (2400 s) carries id n+1 and resets the hub's expiry."""
    net = lab((2,))
    net.run_until(7000)
    reqs = net.sent(T.REGISTRATION_REQUEST)
    assert [round(w.time) for w in reqs] == [0, 2400, 4800]
    assert [w.packet.request_id for w in reqs] == [1, 2, 3]
    entry = engine(net, "hub").cache.host(A("10.0.0.2"))
    assert entry is not None and entry.expires == pytest.approx(4800 + net.delay + 7200, abs=0.1)


def test_registration_timeout_sets_the_refresh_interval() -> None:
    net, _hub, _spoke = pair(registration_timeout=60)
    net.run_until(200)
    assert [round(w.time) for w in net.sent(T.REGISTRATION_REQUEST)] == [0, 60, 120, 180]


def test_no_reply_retransmits_the_same_id_backing_off_to_60s() -> None:
    """Scenario 3: gaps ~1, 2, 4, 8, 16, 32, then 60 s (jitter +0..10%); state E."""
    net = lab((2,))
    net.drop = lambda w: w.packet.type == T.REGISTRATION_REPLY
    net.run_until(300)
    reqs = net.sent(T.REGISTRATION_REQUEST)
    gaps = [b.time - a.time for a, b in itertools.pairwise(reqs)]
    assert len(gaps) >= 8
    for gap, base in zip(gaps, [1, 2, 4, 8, 16, 32, 60, 60], strict=False):
        assert base <= gap <= base * 1.1 + 1e-9
    assert {w.packet.request_id for w in reqs} == {1}
    assert engine(net, "spoke2").nhs[0].state is NhsState.EXPECTING


def test_hub_restart_spokes_register_again_on_sa_up() -> None:
    """Scenario 4: the hub loses its state; the spoke re-registers as soon as
    the SA to the hub is back (not at the 2400 s refresh)."""
    net = lab((2, 3))
    net.run_until(100)
    old = engine(net, "hub")
    net.remove(old)
    hub = net.add(NhrpEngine("hub", hub_settings(), SeededRandomSource(2, "hub"), hub_routes(2, 3)))
    net.call(hub, hub.start)
    assert len(hub.cache) == 0
    for n in (2, 3):
        spoke = engine(net, f"spoke{n}")
        net.call(spoke, lambda now, s=spoke: s.sa_up(now, HUB_NBMA))
    net.run_until(101)
    assert {str(e.prefix) for e in hub.cache} == {"10.0.0.2/32", "10.0.0.3/32"}
    assert len(hub.multicast_nbmas()) == 2


def test_hub_restart_without_sa_event_recovers_at_the_refresh() -> None:
    net, hub, _spoke = pair(registration_timeout=30)
    net.run_until(45)
    net.remove(hub)
    hub2 = net.add(NhrpEngine("hub", hub_settings(), SeededRandomSource(1, "h2"), hub_routes(2)))
    net.call(hub2, hub2.start)
    net.run_until(61)
    assert hub2.cache.host(A("10.0.0.2")) is not None


# ---------------------------------------------------------------- 5 unique / NBMA change


def _moved_spoke(net: Net, *, unique: bool) -> NhrpEngine:
    """Spoke 2 comes back from a new NBMA address, 172.16.9.2."""
    net.remove(engine(net, "spoke2"))
    moved = NhrpEngine(
        "spoke2", spoke_settings(2, nbma_address=A("172.16.9.2"), unique=unique), SeededRandomSource(1, "m"), None
    )
    net.add(moved)
    net.call(moved, moved.start)
    return moved


def test_nbma_change_with_unique_gets_code_14_until_the_entry_expires() -> None:
    net = lab((2,))
    net.run_until(100)
    moved = _moved_spoke(net, unique=True)
    net.run_until(200)
    naks = [w for w in net.sent(T.REGISTRATION_REPLY, dst=A("172.16.9.2"))]
    assert naks and {w.packet.cies[0].code for w in naks} == {14}
    assert moved.nhs[0].state is NhsState.EXPECTING and moved.nhs[0].last_code == 14
    hub = engine(net, "hub")
    entry = hub.cache.host(A("10.0.0.2"))
    assert entry is not None and entry.peer_nbma == A("172.16.0.2")
    net.run_until(7200 + 200)  # the old registration expires at ~7200 s
    entry = hub.cache.host(A("10.0.0.2"))
    assert entry is not None and entry.peer_nbma == A("172.16.9.2")
    assert moved.nhs[0].state is NhsState.RESPONDING
    assert EntryGone(A("10.0.0.2"), A("172.16.0.2"), "Tunnel0") in net.outputs["hub"]


def test_nbma_change_with_no_unique_is_accepted_at_once() -> None:
    net, hub, _spoke = pair(unique=False)
    net.run_until(10)
    assert net.sent(T.REGISTRATION_REQUEST)[0].packet.flags == 0x0002
    moved = _moved_spoke(net, unique=False)
    net.run_until(20)
    assert net.sent(T.REGISTRATION_REPLY, dst=A("172.16.9.2"))[0].packet.cies[0].code == 0
    entry = hub.cache.host(A("10.0.0.2"))
    assert entry is not None and entry.peer_nbma == A("172.16.9.2") and not entry.unique
    assert moved.nhs[0].state is NhsState.RESPONDING
    assert EntryGone(A("10.0.0.2"), A("172.16.0.2"), "Tunnel0") in net.outputs["hub"]


# ---------------------------------------------------------------- 6-7 auth, hop count


def test_auth_mismatch_is_dropped_and_counted() -> None:
    """Scenario 6: no registration, no reply, the spoke stays E."""
    net, hub, spoke = pair(authentication=b"bad")
    net.run_until(20)
    assert net.sent(T.REGISTRATION_REPLY) == []
    assert hub.traffic.auth_failures == len(net.sent(T.REGISTRATION_REQUEST)) >= 4
    assert len(hub.cache) == 0 and spoke.nhs[0].state is NhsState.EXPECTING


def test_missing_auth_is_dropped_too() -> None:
    net, hub, _spoke = pair(authentication=None)
    net.run_until(2)
    assert hub.traffic.auth_failures >= 1 and len(hub.cache) == 0
    assert net.sent(T.REGISTRATION_REQUEST)[0].packet.extension(ExtensionType.AUTHENTICATION) is None


def test_hop_count_zero_is_rejected_and_one_is_not_forwarded() -> None:
    """Scenario 7: hop 0 dropped on input; a request that forwarding would
    bring to 0 gets Error Indication 15."""
    net = lab((2, 3))
    net.run_until(1)
    hub, spoke2 = engine(net, "hub"), engine(net, "spoke2")
    reg = net.sent(T.REGISTRATION_REQUEST, src=A("172.16.0.2"))[0].packet
    before = hub.traffic.hop_count_drops
    net.call(hub, lambda now: hub.receive(now, A("172.16.0.2"), HUB_NBMA, encode_nhrp(replace(reg, hop_count=0))))
    assert hub.traffic.hop_count_drops == before + 1
    net.call(spoke2, lambda now: spoke2.resolve(now, A("10.0.0.3")))
    req = net.sent(T.RESOLUTION_REQUEST)[-1].packet
    net.wire.clear()
    net.call(hub, lambda now: hub.receive(now, A("172.16.0.2"), HUB_NBMA, encode_nhrp(replace(req, hop_count=1))))
    err = net.sent(T.ERROR_INDICATION)
    assert len(err) == 1 and err[0].packet.error_code == 15 and err[0].dst == A("172.16.0.2")
    assert net.sent(T.RESOLUTION_REQUEST, src=HUB_NBMA) == []
    assert all(w.packet.hop_count > 0 for w in net.wire)


# ---------------------------------------------------------------- 8 phase 2


def test_phase2_resolution_goes_via_the_hub_and_the_reply_comes_direct() -> None:
    """Scenario 8: A->H ResReq(0xC802) -> H->B (hop 254, Fwd[H]) -> B->A ResRep(0xF802, /32)."""
    net = lab((2, 3))
    net.run_until(1)
    s2, s3 = engine(net, "spoke2"), engine(net, "spoke3")
    assert s2.nbma_for(A("10.0.0.3")) is None
    net.call(s2, lambda now: s2.resolve(now, A("10.0.0.3")))
    net.call(s2, lambda now: s2.resolve(now, A("10.0.0.3")))  # no duplicate while incomplete
    pending = s2.cache.host(A("10.0.0.3"))
    assert pending is not None and pending.entry_type == "incomplete"
    net.run_until(2)
    first, fwd = net.sent(T.RESOLUTION_REQUEST)
    assert (first.src, first.dst, first.packet.flags, first.packet.hop_count) == (
        A("172.16.0.2"),
        HUB_NBMA,
        0xC802,
        255,
    )
    assert (fwd.src, fwd.dst, fwd.packet.hop_count, fwd.packet.request_id) == (
        HUB_NBMA,
        A("172.16.0.3"),
        254,
        first.packet.request_id,
    )
    assert fwd.packet.src_nbma == first.packet.src_nbma and fwd.packet.src_protocol == first.packet.src_protocol
    transit = fwd.packet.extension(ExtensionType.FORWARD_TRANSIT_NHS)
    assert isinstance(transit, CieListExtension) and [ip(c.client_protocol) for c in transit.cies] == [str(HUB_TUNNEL)]
    auths = [e for e in fwd.packet.extensions if e.type == ExtensionType.AUTHENTICATION]
    assert len(auths) == 1
    (rep,) = net.sent(T.RESOLUTION_REPLY)
    assert (rep.src, rep.dst, rep.packet.flags, rep.packet.hop_count) == (A("172.16.0.3"), A("172.16.0.2"), 0xF802, 255)
    cie = rep.packet.cies[0]
    assert (ip(cie.client_nbma), ip(cie.client_protocol), cie.prefix_length) == ("172.16.0.3", "10.0.0.3", 32)
    assert ip(rep.packet.dst_protocol) == "10.0.0.3" and ip(rep.packet.src_protocol) == "10.0.0.2"
    assert s2.nbma_for(A("10.0.0.3")) == A("172.16.0.3")
    implicit = s3.cache.host(A("10.0.0.2"))
    assert implicit is not None and implicit.implicit and implicit.peer_nbma == A("172.16.0.2")
    assert MappingAdded(A("10.0.0.3"), A("172.16.0.3"), "Tunnel0") in net.outputs["spoke2"]


def test_unreachable_target_gets_error_6_and_a_negative_entry() -> None:
    """Scenario 11: no retry storm; resolution allowed again after the negative hold."""
    net = lab((2,))
    net.run_until(1)
    s2 = engine(net, "spoke2")
    net.call(s2, lambda now: s2.resolve(now, A("10.0.0.99")))
    net.run_until(60)
    (err,) = net.sent(T.ERROR_INDICATION)
    assert err.packet.error_code == 6 and ip(err.packet.dst_protocol) == "10.0.0.2"
    assert len(net.sent(T.RESOLUTION_REQUEST)) == 1
    entry = s2.cache.host(A("10.0.0.99"))
    assert entry is not None and entry.state is EntryState.NEGATIVE and "negative" in entry.flags()
    net.call(s2, lambda now: s2.resolve(now, A("10.0.0.99")))
    assert len(net.sent(T.RESOLUTION_REQUEST)) == 1
    net.run_until(1 + NEGATIVE_HOLD + 1)
    assert s2.cache.host(A("10.0.0.99")) is None
    net.call(s2, lambda now: s2.resolve(now, A("10.0.0.99")))
    assert len(net.sent(T.RESOLUTION_REQUEST)) == 2


def test_resolution_retransmits_the_same_id_and_gives_up() -> None:
    """Scenario 12: a lost reply -> the request again with its ID; a later
    reply is accepted; with every reply lost it is abandoned after 30 s."""
    net = lab((2, 3))
    net.run_until(1)
    s2 = engine(net, "spoke2")
    dropped: list[int] = []

    def drop_first(w: Wire) -> bool:
        if w.packet.type == T.RESOLUTION_REPLY and not dropped:
            dropped.append(1)
            return True
        return False

    net.drop = drop_first
    net.call(s2, lambda now: s2.resolve(now, A("10.0.0.3")))
    net.run_until(5)
    mine = net.sent(T.RESOLUTION_REQUEST, src=A("172.16.0.2"))
    assert len(mine) == 2 and mine[0].packet.request_id == mine[1].packet.request_id
    assert mine[1].time - mine[0].time == pytest.approx(1.0)
    assert s2.nbma_for(A("10.0.0.3")) == A("172.16.0.3")
    net.drop = lambda w: w.packet.type == T.RESOLUTION_REPLY
    net.call(s2, lambda now: s2.resolve(now, A("10.0.0.4")))  # nobody: hub says error 6 ... drop those too
    net.drop = lambda w: w.packet.type in (T.RESOLUTION_REPLY, T.ERROR_INDICATION)
    start = net.now
    net.run_until(start + RESOLUTION_GIVE_UP + 10)
    entry = s2.cache.host(A("10.0.0.4"))
    assert entry is not None and entry.state is EntryState.NEGATIVE
    assert not s2.pending


# ---------------------------------------------------------------- 9-10, 13 phase 3


def _phase3(net: Net) -> None:
    """Data from spoke2's LAN to spoke3's LAN hairpins at the hub."""
    hub = engine(net, "hub")
    packet = ipv4_packet("192.168.2.10", "192.168.3.10")
    net.call(hub, lambda now: hub.hairpin(now, A("172.16.0.2"), packet))


def test_phase3_redirect_and_shortcut() -> None:
    """Scenario 9: TI to the data source, ResReq for the final host, egress
    answers with its route's prefix, the requester installs the route."""
    net = lab((2, 3))
    net.run_until(1)
    _phase3(net)
    net.run_until(3)
    (ti,) = net.sent(T.TRAFFIC_INDICATION)
    assert (ti.src, ti.dst, ti.packet.flags, ti.packet.hop_count) == (HUB_NBMA, A("172.16.0.2"), 0, 255)
    assert ip(ti.packet.dst_protocol) == "192.168.2.10" and len(ti.packet.payload) == 28
    assert [e.type for e in ti.packet.extensions] == [4, 5, 7, 9, 0]
    req = net.sent(T.RESOLUTION_REQUEST, src=A("172.16.0.2"))[0]
    assert ip(req.packet.dst_protocol) == "192.168.3.10"
    assert net.sent(T.RESOLUTION_REQUEST, src=HUB_NBMA, dst=A("172.16.0.3"))
    (rep,) = net.sent(T.RESOLUTION_REPLY)
    assert rep.packet.cies[0].prefix_length == 24 and ip(rep.packet.cies[0].client_protocol) == "10.0.0.3"
    s2 = engine(net, "spoke2")
    assert RouteAdded(IPv4Network("192.168.3.0/24"), A("10.0.0.3"), "Tunnel0", False) in net.outputs["spoke2"]
    route = s2.cache.get(IPv4Network("192.168.3.0/24"))
    assert route is not None and route.flags() == ["router", "rib"]
    hop = s2.cache.host(A("10.0.0.3"))
    assert hop is not None and hop.flags() == ["router", "nhop"] and s2.nbma_for(A("10.0.0.3")) == A("172.16.0.3")
    assert s2.cache.host(A("192.168.3.10")) is None  # the incomplete host entry gave way to the prefix


def test_redirects_are_rate_limited_per_pair_and_duplicates_ignored() -> None:
    net = lab((2, 3))
    net.run_until(1)
    hub = engine(net, "hub")
    for _ in range(5):
        _phase3(net)
    assert len(net.sent(T.TRAFFIC_INDICATION)) == 1 and hub.traffic.redirects_suppressed == 4
    net.run_until(1 + hub.settings.redirect_timeout + 0.1)
    _phase3(net)
    net.run_until(net.now + 2)
    assert len(net.sent(T.TRAFFIC_INDICATION)) == 2
    assert len(net.sent(T.RESOLUTION_REQUEST, src=A("172.16.0.2"))) == 1  # the shortcut exists already


def test_next_hop_override_when_the_route_exists() -> None:
    net = lab((2, 3))
    s2 = engine(net, "spoke2")
    s2.routes = spoke_routes(2, ("192.168.3.0/24", "10.0.0.1", "Tunnel0"))
    net.run_until(1)
    _phase3(net)
    net.run_until(3)
    assert RouteAdded(IPv4Network("192.168.3.0/24"), A("10.0.0.3"), "Tunnel0", True) in net.outputs["spoke2"]
    entry = s2.cache.get(IPv4Network("192.168.3.0/24"))
    assert entry is not None and entry.flags() == ["router", "nho"]


def test_traffic_indication_ignored_without_shortcut() -> None:
    """Scenario 10."""
    net, _hub, s2 = pair(shortcut=False)
    net.run_until(1)
    _phase3(net)
    net.run_until(3)
    assert s2.traffic.indications_ignored == 1 and net.sent(T.RESOLUTION_REQUEST) == []


def test_shortcut_refreshes_while_used_and_expires_when_idle() -> None:
    """Scenario 13 for shortcuts: a used one is re-resolved at 2/3 of its
    holding time and survives; an idle one goes at its holding time."""
    net = lab((2, 3))
    net.run_until(1)
    _phase3(net)
    net.run_until(3)
    s2 = engine(net, "spoke2")
    created = s2.cache.get(IPv4Network("192.168.3.0/24"))
    assert created is not None
    t = 3.0
    while t < 10000:
        t += 600
        net.run_until(t)
        net.call(s2, lambda now: s2.used(now, A("192.168.3.10")))
    mine = [w for w in net.sent(T.RESOLUTION_REQUEST, src=A("172.16.0.2"))]
    assert len(mine) >= 3  # the first, then one per 2/3 holdtime
    assert s2.cache.get(IPv4Network("192.168.3.0/24")) is not None
    net.run_until(t + 7200 * 2 / 3 + 1)  # idle now: at most one more refresh was due
    entry = s2.cache.get(IPv4Network("192.168.3.0/24"))
    assert entry is not None and entry.expires is not None and not entry.used
    expires = entry.expires
    net.run_until(expires - 0.01)
    assert s2.cache.get(IPv4Network("192.168.3.0/24")) is not None
    net.run_until(expires + 0.01)
    assert s2.cache.get(IPv4Network("192.168.3.0/24")) is None
    assert RouteRemoved(IPv4Network("192.168.3.0/24"), A("10.0.0.3"), "Tunnel0", False) in net.outputs["spoke2"]


def test_registration_expires_exactly_at_holdtime() -> None:
    """Scenario 13 for registrations: a silent spoke's entry goes at its
    holding time, and with it the multicast replication entry."""
    net, hub, s2 = pair(holdtime=300)
    net.run_until(1)
    net.remove(s2)
    net.run_until(300.0)
    assert hub.cache.host(A("10.0.0.2")) is not None
    net.run_until(300.0 + net.delay + 1e-6)
    assert hub.cache.host(A("10.0.0.2")) is None and hub.multicast_nbmas() == []
    assert EntryGone(A("10.0.0.2"), A("172.16.0.2"), "Tunnel0") in net.outputs["hub"]


# ---------------------------------------------------------------- 14 purge


def test_purge_on_prefix_loss_and_deregistration() -> None:
    net = lab((2, 3))
    net.run_until(1)
    _phase3(net)
    net.run_until(3)
    s2, s3, hub = engine(net, "spoke2"), engine(net, "spoke3"), engine(net, "hub")
    net.call(s3, lambda now: s3.withdraw(now, IPv4Network("192.168.3.0/24")))
    net.run_until(4)
    (purge,) = net.sent(T.PURGE_REQUEST, src=A("172.16.0.3"))
    assert purge.dst == A("172.16.0.2") and purge.packet.cies[0].prefix_length == 24
    assert s2.cache.get(IPv4Network("192.168.3.0/24")) is None
    assert RouteRemoved(IPv4Network("192.168.3.0/24"), A("10.0.0.3"), "Tunnel0", False) in net.outputs["spoke2"]
    assert net.sent(T.PURGE_REPLY, src=A("172.16.0.2"))
    net.call(s2, s2.shutdown)
    net.run_until(5)
    dereg = net.sent(T.PURGE_REQUEST, src=A("172.16.0.2"))[0].packet
    assert dereg.flags & 0x8000 and ip(dereg.cies[0].client_protocol) == "10.0.0.2"
    assert hub.cache.host(A("10.0.0.2")) is None
    assert net.sent(T.PURGE_REPLY, src=HUB_NBMA) == []  # N set: no reply


# ---------------------------------------------------------------- 15 NAT


def test_spoke_behind_nat() -> None:
    """Scenario 15: the hub records claimed and seen NBMA; the RegRep's NAT
    extension tells the spoke its public address; a peer binds to it."""
    net = Net()
    hub = net.add(NhrpEngine("hub", hub_settings(), SeededRandomSource(1, "h"), hub_routes(2, 4)))
    s2 = net.add(NhrpEngine("spoke2", spoke_settings(2), SeededRandomSource(1, "s2"), spoke_routes(2)))
    s4 = net.add(
        NhrpEngine(
            "spoke4", spoke_settings(4, nbma_address=A("10.99.0.4")), SeededRandomSource(1, "s4"), spoke_routes(4)
        ),
        public=A("203.0.113.4"),
    )
    for e in (hub, s2, s4):
        net.call(e, e.start)
    net.run_until(1)
    entry = hub.cache.host(A("10.0.0.4"))
    assert entry is not None and (entry.nbma, entry.nbma_seen) == (A("10.99.0.4"), A("203.0.113.4"))
    assert "nat" in entry.flags()
    rep = net.sent(T.REGISTRATION_REPLY, dst=A("203.0.113.4"))[0].packet
    nat = rep.extension(ExtensionType.NAT_ADDRESS)
    assert isinstance(nat, CieListExtension) and len(nat.cies) == 2
    assert (ip(nat.cies[1].client_nbma), ip(nat.cies[1].client_protocol)) == ("203.0.113.4", "10.0.0.4")
    assert s4.nat_address == A("203.0.113.4")
    net.call(s2, lambda now: s2.resolve(now, A("10.0.0.4")))
    net.run_until(3)
    assert s2.nbma_for(A("10.0.0.4")) == A("203.0.113.4")
    implicit = s4.cache.host(A("10.0.0.2"))
    assert implicit is not None and implicit.peer_nbma == A("172.16.0.2")


# ---------------------------------------------------------------- 16 extensions, IPsec, network-id


def test_unknown_extensions_c0_echoed_c1_error_1() -> None:
    net = lab((2,))
    net.run_until(1)
    hub = engine(net, "hub")
    reg = net.sent(T.REGISTRATION_REQUEST)[0].packet
    exts = reg.extensions
    odd = replace(reg, request_id=77, extensions=(*exts[:-1], RawExtension(0x20, b"xy", compulsory=False), exts[-1]))
    net.wire.clear()
    net.call(hub, lambda now: hub.receive(now, A("172.16.0.2"), HUB_NBMA, encode_nhrp(odd)))
    (rep,) = net.sent(T.REGISTRATION_REPLY)
    assert rep.packet.extension(0x20) == RawExtension(0x20, b"xy", compulsory=False)
    bad = replace(reg, request_id=78, extensions=(*exts[:-1], RawExtension(0x20, b"xy", compulsory=True), exts[-1]))
    net.call(hub, lambda now: hub.receive(now, A("172.16.0.2"), HUB_NBMA, encode_nhrp(bad)))
    (err,) = net.sent(T.ERROR_INDICATION)
    assert err.packet.error_code == 1 and err.packet.extensions == ()
    assert err.packet.error_offset == len(encode_nhrp(bad)) - 4 - 6  # the odd extension's header
    assert decode_nhrp(encode_nhrp(bad)).extensions[-2].type == 0x20


def test_nhrp_waits_for_the_ipsec_sa() -> None:
    """NHRP.md section 1: with tunnel protection nothing leaves for a peer
    before its SA is up; the engine asks for it once."""
    net = Net(sa_delay=5.0)
    hub = net.add(NhrpEngine("hub", hub_settings(protected=True), SeededRandomSource(1, "h"), hub_routes(2, 3)))
    s2 = net.add(NhrpEngine("spoke2", spoke_settings(2, protected=True), SeededRandomSource(1, "s"), spoke_routes(2)))
    s3 = net.add(NhrpEngine("spoke3", spoke_settings(3, protected=True), SeededRandomSource(1, "t"), spoke_routes(3)))
    for e in (hub, s2, s3):
        net.call(e, e.start)
    assert net.outputs["spoke2"].count(NeedSa(HUB_NBMA)) == 1
    assert not [o for o in net.outputs["spoke2"] if isinstance(o, SendNhrp)]
    assert s2.nhs[0].state is NhsState.WAITING
    net.run_until(4.9)
    assert net.wire == []
    net.run_until(6)
    assert len(net.sent(T.REGISTRATION_REQUEST)) == 2 and s2.nhs[0].state is NhsState.RESPONDING
    net.call(s2, lambda now: s2.resolve(now, A("10.0.0.3")))
    net.run_until(7)
    assert NeedSa(A("172.16.0.2")) in net.outputs["spoke3"]  # the responder asks for the SA
    assert net.sent(T.RESOLUTION_REPLY) == []  # held until that SA is up
    net.run_until(13)
    assert s2.nbma_for(A("10.0.0.3")) == A("172.16.0.3")


def test_network_ids_are_separate_engines() -> None:
    """A spoke registered on network-id 1 is unknown to the network-id 2 engine."""
    net = lab((2,))
    net.run_until(1)
    other = NhrpEngine(
        "hub",
        hub_settings(interface="Tunnel1", network_id=2, nbma_address=A("172.16.1.1"), tunnel_address=A("10.1.0.1")),
        SeededRandomSource(1, "h1"),
        None,
    )
    net.add(other)
    s2 = engine(net, "spoke2")
    req = encode_nhrp(
        replace(
            net.sent(T.REGISTRATION_REQUEST)[0].packet, type=T.RESOLUTION_REQUEST, dst_protocol=A("10.0.0.2").packed
        )
    )
    net.call(other, lambda now: other.receive(now, A("172.16.0.9"), A("172.16.1.1"), req))
    assert net.sent(T.ERROR_INDICATION)[0].packet.error_code == 6
    assert engine(net, "hub").cache.host(A("10.0.0.2")) is not None and s2.nhs[0].state is NhsState.RESPONDING


def test_malformed_input_is_counted_not_raised() -> None:
    net = lab((2,))
    hub = engine(net, "hub")
    for data in (b"", b"\x00" * 19, bytes(range(60)), encode_nhrp(NhrpPacket(3, b"", b"", b""))[:-1]):
        net.call(hub, lambda now, d=data: hub.receive(now, A("172.16.0.2"), HUB_NBMA, d))
    assert hub.traffic.malformed == 4


# ---------------------------------------------------------------- loss and config


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ten_percent_loss_converges(seed: int) -> None:
    net = lab((2, 3, 4), seed=seed, loss=0.10)
    net.run_until(120)
    hub = engine(net, "hub")
    assert len([e for e in hub.cache if e.state is EntryState.REGISTERED]) == 3
    for t in range(120, 240, 2):
        net.run_until(t)
        _phase3(net)
    s2 = engine(net, "spoke2")
    assert s2.cache.get(IPv4Network("192.168.3.0/24")) is not None
    assert all(w.packet.hop_count > 0 for w in net.wire)


def test_same_seed_same_packets() -> None:
    def run() -> list[tuple[float, str, str, bytes]]:
        net = lab((2, 3), seed=7, loss=0.1)
        net.run_until(50)
        _phase3(net)
        net.run_until(100)
        return [(w.time, str(w.src), str(w.dst), w.raw) for w in net.wire]

    assert run() == run()


CONFIG = """
interface Loopback0
 ip address 192.168.2.1 255.255.255.0
interface GigabitEthernet1
 ip address 172.16.0.2 255.255.255.0
interface Tunnel0
 ip address 10.0.0.2 255.255.255.0
 ip nhrp authentication DMVPN
 ip nhrp network-id 100
 ip nhrp holdtime 600
 ip nhrp nhs 10.0.0.1 nbma 172.16.0.1 multicast
 ip nhrp registration timeout 60
 ip nhrp registration no-unique
 ip nhrp shortcut
 ip nhrp redirect timeout 12
 ip nhrp responder Loopback0
 tunnel source GigabitEthernet1
 tunnel mode gre multipoint
 tunnel key 7
"""


def test_settings_from_a_parsed_config() -> None:
    result = parse_config(CONFIG)
    assert not result.errors, result.errors
    iface = next(i for i in result.config.interfaces.values() if i.name == "Tunnel0")
    s = settings_from_interface(iface)
    assert s is not None
    assert (s.tunnel_address, s.nbma_address, s.network_id, s.holdtime) == (A("10.0.0.2"), A("172.16.0.2"), 100, 600)
    assert (s.authentication, s.unique, s.shortcut, s.redirect, s.redirect_timeout) == (b"DMVPN", False, True, True, 12)
    assert (s.registration_interval, s.mtu, s.protected) == (60.0, 17912, False)
    assert [(str(n.address), str(n.nbma)) for n in s.nhs] == [("10.0.0.1", "172.16.0.1")]
    with_responder = settings_from_interface(iface, result.config.interfaces)
    assert with_responder is not None and with_responder.responder_address == A("192.168.2.1")
    assert s.responder_address is None  # without the router's interfaces: the tunnel address answers


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (" ip nhrp redirect timeout 1", "ip nhrp redirect timeout"),
        (" ip nhrp redirect timeout", "ip nhrp redirect timeout"),
        (" ip nhrp redirect timeout 8 9", "ip nhrp redirect timeout"),
        (" ip nhrp authentication TOOLONGPW", "at most 8 characters"),
        (" ip nhrp responder", "ip nhrp responder: expected an interface name"),
    ],
)
def test_bad_nhrp_lines_give_one_line_errors(line: str, message: str) -> None:
    text = CONFIG.replace(" ip nhrp authentication DMVPN\n", "").replace(" ip nhrp redirect timeout 12\n", "")
    text = text.replace(" ip nhrp responder Loopback0\n", "")
    result = parse_config(text.replace(" ip nhrp shortcut\n", f" ip nhrp shortcut\n{line}\n"))
    assert any(message in str(e) and "\n" not in str(e) for e in result.errors), result.errors


def test_nhs_dynamic_learns_the_hub_address() -> None:
    """``ip nhrp nhs dynamic nbma X``: the request goes to our own address
    (0.0.0.0 in the NAT CIE), the reply's Responder Address names the hub."""
    net, hub, spoke = pair(nhs=(NhrpServer(None, HUB_NBMA),))
    net.run_until(1)
    req = net.sent(T.REGISTRATION_REQUEST)[0].packet
    assert ip(req.dst_protocol) == "10.0.0.2"
    nat = req.extension(ExtensionType.NAT_ADDRESS)
    assert isinstance(nat, CieListExtension) and ip(nat.cies[0].client_protocol) == "0.0.0.0"
    assert spoke.nhs[0].address == HUB_TUNNEL and spoke.nhs[0].state is NhsState.RESPONDING
    assert spoke.nbma_for(HUB_TUNNEL) == HUB_NBMA and hub.cache.host(A("10.0.0.2")) is not None


SEED = Path(__file__).resolve().parents[1] / "src" / "dmvpn" / "lab" / "data"


def test_the_seed_configs_register() -> None:
    """The built-in lab's IOS configs (hub with a static map for the spoke,
    tunnel protection) drive the engines: the spoke waits for its SA, then
    registers; the hub keeps the configured mapping."""
    hub_cfg, spoke_cfg = (parse_config((SEED / f).read_text()).config for f in ("hub.cfg", "spoke.cfg"))
    assert hub_cfg is not None and spoke_cfg is not None
    hub_s, spoke_s = (settings_from_interface(c.interfaces["Tunnel0"]) for c in (hub_cfg, spoke_cfg))
    assert hub_s is not None and spoke_s is not None and spoke_s.protected and spoke_s.mtu == 1400  # ip mtu 1400
    net = Net()
    hub = net.add(NhrpEngine("hub", hub_s, SeededRandomSource(1, "h"), None))
    spoke = net.add(NhrpEngine("spoke", spoke_s, SeededRandomSource(1, "s"), None))
    for e in (hub, spoke):
        net.call(e, e.start)
    assert NeedSa(spoke.nhs[0].nbma) in net.outputs["spoke"]
    net.run_until(5)
    (rep,) = net.sent(T.REGISTRATION_REPLY)
    assert rep.packet.cies[0].code == 0 and spoke.nhs[0].state is NhsState.RESPONDING
    entry = hub.cache.host(spoke_s.tunnel_address)
    assert entry is not None and entry.state is EntryState.STATIC


def test_unknown_purge_gets_a_reply_and_transit_forwards_unknown_compulsory() -> None:
    """Scenario 14's "an unknown purge still returns a reply" and scenario
    16's "unknown C=1 extension: forwarded untouched at transit"."""
    net = lab((2, 3))
    net.run_until(1)
    hub, s2 = engine(net, "hub"), engine(net, "spoke2")
    net.call(s2, lambda now: s2.resolve(now, A("10.0.0.3")))
    req = net.sent(T.RESOLUTION_REQUEST)[-1].packet
    net.wire.clear()
    odd = RawExtension(0x21, b"z", compulsory=True)
    bad = replace(req, request_id=99, extensions=(*req.extensions[:-1], odd, req.extensions[-1]))
    net.call(hub, lambda now: hub.receive(now, A("172.16.0.2"), HUB_NBMA, encode_nhrp(bad)))
    (fwd,) = net.sent(T.RESOLUTION_REQUEST)
    assert fwd.packet.extension(0x21) == odd and net.sent(T.ERROR_INDICATION) == []
    net.run_until(2)
    errors = net.sent(T.ERROR_INDICATION)  # the responder's, relayed by the hub to the requester
    assert [(w.src, w.dst, w.packet.error_code) for w in errors] == [
        (A("172.16.0.3"), HUB_NBMA, 1),
        (HUB_NBMA, A("172.16.0.2"), 1),
    ]
    purge = encode_nhrp(
        NhrpPacket(T.PURGE_REQUEST, A("172.16.0.3").packed, A("10.0.0.3").packed, A("10.0.0.2").packed,
                   request_id=5, cies=(Cie(prefix_length=24, client_protocol=A("192.168.77.0").packed),),
                   extensions=(AuthenticationExtension(1, b"DMVPN"), END_EXTENSION))
    )  # fmt: skip
    net.call(s2, lambda now: s2.receive(now, A("172.16.0.3"), A("172.16.0.2"), purge))
    (rep,) = net.sent(T.PURGE_REPLY)
    assert rep.dst == A("172.16.0.3") and rep.packet.request_id == 5
