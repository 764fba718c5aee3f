"""The SA database: install, conn ids, outbound selection, provenance, and
soft/hard lifetime events (time and volume) firing once each at the exact
second and byte, from packets and from fluid credits."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmvpn.crypto.esp_algorithms import EspAuthAlgorithm, EspTransform, EspTransformId
from dmvpn.ipsec.esp import DropReason, EspDrop, decapsulate, encapsulate
from dmvpn.ipsec.events import HardExpired, SoftExpired
from dmvpn.ipsec.sa import (
    KILOBYTE,
    SaDirection,
    SaLifetime,
    SaOrigin,
    SaOriginReason,
    SaState,
    SecurityAssociation,
    Selector,
)
from dmvpn.ipsec.sad import OutboundPolicy, SecurityAssociationDatabase
from dmvpn.runtime.randomness import SeededRandomSource

TF = EspTransform(EspTransformId.ESP_AES_CBC, 128, EspAuthAlgorithm.HMAC_SHA2_256)
HUB, SPOKE = "172.17.3.1", "172.17.3.2"
GRE = Selector.hosts(HUB, SPOKE, 47)


def new_sad(**kw: object) -> SecurityAssociationDatabase:
    return SecurityAssociationDatabase(SeededRandomSource(3, "sad"), **kw)  # type: ignore[arg-type]


DEFAULT_LIFETIME = SaLifetime()


def sa(spi: int, direction: SaDirection, lifetime: SaLifetime = DEFAULT_LIFETIME, **kw: object) -> SecurityAssociation:
    return SecurityAssociation(spi=spi, direction=direction, peer=SPOKE, local=HUB, transform=TF,
                               encryption_key=bytes(16), integrity_key=bytes(32), selector=GRE,
                               lifetime=lifetime, **kw)  # type: ignore[arg-type]


def test_conn_ids_pair_odd_inbound_even_outbound() -> None:
    sad = new_sad(conn_id_base=19415)
    a_in, a_out = sad.install_pair(0.0, sa(0xCDD2533F, SaDirection.INBOUND), sa(0x050304C8, SaDirection.OUTBOUND))
    b_in, b_out = sad.install_pair(5.0, sa(0xC14574C6, SaDirection.INBOUND), sa(0x50919C87, SaDirection.OUTBOUND))
    assert (a_in.conn_id, a_out.conn_id, b_in.conn_id, b_out.conn_id) == (19415, 19416, 19417, 19418)
    assert sad.lookup_inbound(0xC14574C6) is b_in and sad.lookup_inbound(0x1234) is None
    assert [s.conn_id for s in sad.for_peer(SPOKE)] == [19415, 19417, 19416, 19418]


def test_outbound_policy_newest_installing_and_fallback() -> None:
    sad = new_sad()
    old = sad.install(0.0, sa(0x1001, SaDirection.OUTBOUND))
    assert sad.outbound_for(SPOKE, GRE) is old
    new = sad.install(10.0, sa(0x1002, SaDirection.OUTBOUND), replaces=old, active=False)
    assert sad.outbound_for(SPOKE, GRE) is old  # INSTALLING is not used for sending
    sad.activate(new)
    assert sad.outbound_for(SPOKE, GRE) is new and sad.outbound_for(SPOKE) is new
    assert old.state is SaState.REKEYED and new.state is SaState.ACTIVE
    sad.delete(new, 0.0)
    assert sad.outbound_for(SPOKE, GRE) is old
    sad.delete(old, 0.0)
    assert sad.outbound_for(SPOKE, GRE) is None
    oldest = new_sad(outbound_policy=OutboundPolicy.OLDEST)
    first = oldest.install(0.0, sa(0x2001, SaDirection.OUTBOUND))
    oldest.install(1.0, sa(0x2002, SaDirection.OUTBOUND))
    assert oldest.outbound_for(SPOKE, GRE) is first


def test_provenance_is_kept() -> None:
    sad = new_sad()
    old = sad.install(0.0, sa(0x1001, SaDirection.OUTBOUND))
    new = sad.install(40.0, sa(0x1002, SaDirection.OUTBOUND, origin=SaOrigin(
        initiator=False, reason=SaOriginReason.VOLUME_REKEY, replaces_spi=0x1001), ike_sa="ike-1"), replaces=old)
    assert new.origin.reason is SaOriginReason.VOLUME_REKEY and new.origin.replaces_spi == old.spi
    assert new.ike_sa == "ike-1" and new.installed_at == 40.0 and new.idle
    encapsulate(new, 41.5, b"x" * 10, 47)
    assert not new.idle and new.first_packet_time == new.last_packet_time == 41.5


def test_bad_sa_parameters_are_named() -> None:
    with pytest.raises(ValueError, match="reserved"):
        sa(255, SaDirection.INBOUND)
    with pytest.raises(ValueError, match="16-byte encryption key"):
        SecurityAssociation(spi=300, direction=SaDirection.INBOUND, peer=SPOKE, local=HUB, transform=TF,
                            encryption_key=bytes(15), integrity_key=bytes(32))
    sad = new_sad()
    sad.install(0.0, sa(300, SaDirection.INBOUND))
    with pytest.raises(ValueError, match="already installed"):
        sad.install(0.0, sa(300, SaDirection.INBOUND))


@settings(max_examples=150, derandomize=True, deadline=None)
@given(t0=st.integers(0, 10**6), soft=st.integers(1, 10**5), extra=st.integers(0, 10**5))
def test_time_events_fire_once_at_the_exact_second(t0: int, soft: int, extra: int) -> None:
    hard = soft + extra
    sad = new_sad()
    s = sad.install(float(t0), sa(0x3001, SaDirection.INBOUND, SaLifetime(hard, soft, None, None)))
    assert sad.next_deadline() == t0 + soft
    assert sad.handle_timer(math.nextafter(t0 + soft, 0)) == []
    events = sad.handle_timer(float(t0 + soft))
    if extra == 0:
        assert events == [SoftExpired(s, "time", t0 + soft), HardExpired(s, "time", t0 + hard)]
        assert sad.next_deadline() is None
        return
    assert events == [SoftExpired(s, "time", t0 + soft)] and s.state is SaState.EXPIRING
    assert sad.next_deadline() == t0 + hard
    assert sad.handle_timer(math.nextafter(t0 + hard, 0)) == []
    assert sad.handle_timer(t0 + hard + 5.0) == [HardExpired(s, "time", t0 + hard)]
    assert s.state is SaState.DELETED and sad.lookup_inbound(0x3001) is None
    assert sad.handle_timer(t0 + hard + 1e6) == [] and sad.next_deadline() is None


@settings(max_examples=120, derandomize=True, deadline=None)
@given(soft=st.integers(1, 3000), extra=st.integers(0, 3000),
       sizes=st.lists(st.integers(0, 300), min_size=1, max_size=40))
def test_volume_events_fire_once_at_the_exact_byte(soft: int, extra: int, sizes: list[int]) -> None:
    hard = soft + extra
    sad = new_sad()
    lifetime = SaLifetime(None, None, hard, soft)
    out = sad.install(0.0, sa(0x4001, SaDirection.OUTBOUND, lifetime))
    inb = sad.install(0.0, sa(0x4001, SaDirection.INBOUND, lifetime))
    total = 0
    expected: list[object] = []
    for i, size in enumerate(sizes):
        now = float(i)
        before = total
        try:
            packet = encapsulate(out, now, bytes(size), 47)
        except EspDrop as exc:
            assert exc.reason is DropReason.SA_DELETED and before >= hard
            break
        decapsulate(inb, now, packet)
        total += size
        for s in (out, inb):
            if before < soft <= total:
                expected.append(SoftExpired(s, "volume", now))
            if before < hard <= total:
                expected.append(HardExpired(s, "volume", now))
    events = sad.poll_events()
    assert sorted(events, key=lambda e: (e.time, isinstance(e, HardExpired), e.sa.direction.value)) == \
        sorted(expected, key=lambda e: (e.time, isinstance(e, HardExpired), e.sa.direction.value))  # type: ignore[attr-defined]
    assert out.bytes == inb.bytes == total
    assert sum(isinstance(e, SoftExpired) and e.sa is out for e in events) == (total >= soft)
    assert sum(isinstance(e, HardExpired) and e.sa is out for e in events) == (total >= hard)


@settings(max_examples=150, derandomize=True, deadline=None)
@given(soft_kb=st.integers(1, 5_000_000), extra_kb=st.integers(1, 5_000_000),
       rate=st.floats(1e3, 2e9), start=st.floats(0, 1e5))
def test_fluid_credit_crossing_time_is_exact(soft_kb: int, extra_kb: int, rate: float, start: float) -> None:
    """At rate R the SAD predicts when the next limit is crossed: by then
    ceil((t - now) * R) bytes have flowed, which reaches the limit (float
    rounding may put it one byte past); the event fires on the exact byte."""
    soft, hard = soft_kb * KILOBYTE, (soft_kb + extra_kb) * KILOBYTE
    sad = new_sad()
    s = sad.install(start, sa(0x5001, SaDirection.OUTBOUND, SaLifetime(None, None, hard, soft)))
    now = start
    for limit, kind in ((soft, SoftExpired), (hard, HardExpired)):
        t = sad.next_volume_crossing(now, s, rate)
        assert t is not None and t >= now
        missing = limit - s.bytes
        need = math.ceil((t - now) * rate)
        assert missing <= need <= missing + 1  # at most a float rounding's byte late
        sad.credit(t, s, missing - 1, 1)
        assert sad.poll_events() == []
        sad.credit(t, s, 1, 1)
        events = sad.poll_events()
        assert [type(e) for e in events] == [kind] and events[0].time == t and s.bytes == limit
        now = t
    assert s.state is SaState.DELETED and sad.next_volume_crossing(now, s, rate) is None
    assert s.pkts_encaps == 4


def test_soft_time_first_then_volume_goes_straight_to_hard() -> None:
    sad = new_sad()
    s = sad.install(0.0, sa(0x6001, SaDirection.OUTBOUND, SaLifetime(100, 70, 10_000, 9_000)))
    assert [type(e) for e in sad.handle_timer(70.0)] == [SoftExpired]
    sad.credit(71.0, s, 9_500, 5)
    assert sad.poll_events() == []  # the soft event was the time one; no second soft
    assert sad.next_volume_crossing(71.0, s, 100.0) == 76.0
    sad.credit(76.0, s, 500, 1)
    assert sad.poll_events() == [HardExpired(s, "volume", 76.0)]
    assert sad.handle_timer(200.0) == []


def test_remaining_lifetime_like_ios() -> None:
    sad = new_sad()
    s = sad.install(100.0, sa(0x7001, SaDirection.OUTBOUND))  # IOS defaults: 3600 s, 4608000 KB
    assert s.remaining(100.0) == (4_608_000, 3600.0)
    sad.credit(132.0, s, 3_306_000 * KILOBYTE, 2_400_000)
    assert s.remaining(132.0) == (1_302_000, 3568.0)
    assert (s.pkts_encaps, s.pkts_encrypt, s.pkts_digest) == (2_400_000,) * 3
