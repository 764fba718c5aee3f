"""lab/fluid.py: bulk traffic credited to SAs, not stepped per packet."""

from __future__ import annotations

import pytest

from dmvpn.lab.fluid import FluidFlow
from router_lab import HUB_TUN, SPOKE_TUN, build


def up(sim):
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 1")
    sim.run(5.0)


def test_both_ends_count_the_same_bytes_on_the_same_spi():
    sim, hub, spoke, _ = build()
    up(sim)
    flow = FluidFlow(hub, spoke, SPOKE_TUN, 100e6, 1000, start=10.0, stop=20.0)
    sim.run(30.0)
    out = hub.sad.outbound_for("172.17.3.2")
    inbound = spoke.sad.lookup_inbound(out.spi)
    expected = round(100e6 / 8 * 10 * (1000 + 8) / 1000)   # GRE with key adds 8 bytes per packet
    assert abs(out.bytes - expected) <= 1 and inbound.bytes == out.bytes
    assert out.pkts_encaps == inbound.pkts_decaps == 125_000
    assert flow.stats.sent_bytes == flow.stats.received_bytes == out.bytes


def test_volume_soft_limit_fires_at_the_exact_moment_without_stepping():
    sim, hub, spoke, _ = build()
    up(sim)
    start = 10.0
    flow = FluidFlow(hub, spoke, SPOKE_TUN, 0.85e9, 1400, start=start, stop=200.0)
    before = sim.events_processed
    sim.run(60.0)
    sa = next(s for s in hub.sad.all() if s.spi == flow.stats.spis[0] and s.direction.value == "outbound")
    # soft limit = 90% of 4,608,000 KB; the SA carries byte_rate bytes/s from `start`
    expected = start + sa.lifetime.soft_bytes / flow.byte_rate
    rekeys = [e for e in sim.events if e.category == "ipsec" and e.fields["what"] == "installed"
              and e.fields["reason"] == "volume rekey"]
    assert rekeys, "no volume rekey"
    first_soft = rekeys[0].time
    period = hub.profile.lifetime_check_period * (1 + hub.profile.lifetime_check_jitter)
    assert expected <= first_soft <= expected + period + 0.1
    assert sim.events_processed - before < 500             # 4 GB moved in a few hundred events


def test_no_sa_bytes_are_dropped_and_trigger_ike():
    sim, hub, spoke, _ = build()
    flow = FluidFlow(hub, spoke, SPOKE_TUN, 10e6, 1000, start=1.0, stop=30.0)
    sim.run(40.0)
    assert flow.stats.dropped_no_sa_bytes > 0
    assert flow.stats.sent_bytes > 0 and flow.stats.lost_bytes == 0
    assert hub.ike.children and hub.ike.children[0].initiator   # the hub's traffic started IKE


def test_bad_arguments_are_clear_errors():
    _sim, hub, spoke, _ = build()
    with pytest.raises(ValueError, match="rate_bps"):
        FluidFlow(hub, spoke, SPOKE_TUN, 0, 1000, 0.0, 1.0)
    with pytest.raises(ValueError, match=r"no tunnel toward 192\.0\.2\.9"):
        FluidFlow(hub, spoke, "192.0.2.9", 1e6, 1000, 0.0, 1.0)


def test_flow_follows_a_restarted_receiver():
    from dmvpn.node.router import Router
    sim, hub, spoke, _ = build()
    up(sim)
    flow = FluidFlow(hub, spoke, SPOKE_TUN, 50e6, 1000, start=10.0, stop=200.0)
    sim.run(50.0)
    fresh = Router(spoke.config, sim.random_for("SPOKE1-reboot"), name="SPOKE1", nhrp=False)
    flow.replace_router(spoke, fresh, sim.now)
    sim.replace_engine("SPOKE1", fresh)
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 100 interval 1 timeout 2")
    sim.run(200.0)
    assert flow.stats.lost_bytes > 0                     # the hub kept sending on the dead SA for a while
    assert fresh.ike.children and flow.history[-1].sa is not None
    out = hub.sad.outbound_for("172.17.3.2")
    assert fresh.sad.lookup_inbound(out.spi).bytes == out.bytes > 0   # both ends count the new SA alike


def test_long_flow_keeps_a_short_history_and_no_dead_keys():
    """Issue 17: the flow's segment history (one per rekey) was scanned whole
    on every sync and never pruned, so the lab grew quadratically; every
    deleted SA kept its cipher contexts. Many rekeys later the history holds
    only the segments an end has not credited yet, and deleted SAs no keys."""
    sim, hub, spoke, _ = build()
    up(sim)
    flow = FluidFlow(hub, spoke, SPOKE_TUN, 0.85e9, 1400, start=10.0, stop=1000.0)
    sim.run(400.0)
    assert len(flow.stats.spis) >= 6                      # several volume rekeys happened
    for end in (hub, spoke):
        flow.sync(end, 400.0)
    assert len(flow.history) == 1
    assert flow.stats.sent_bytes == flow.stats.received_bytes + flow.stats.lost_bytes
    dead = [sa for r in (hub, spoke) for sa in r.sad.history if sa.state.value == "deleted"]
    assert dead and all(sa.cipher is None and sa.integrity is None for sa in dead)
