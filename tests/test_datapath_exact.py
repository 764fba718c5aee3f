"""The router's data path stays exact under batches (issue 16).

The seed's hub and spoke (``esp-aes esp-sha256-hmac``, GRE over transport
mode, real mode's ``kernel_host``) are brought up in the simulator, then
overlay packets are pushed through ``receive_batch`` and ``receive`` mixed,
the way the real runtime drains a TUN or a socket, and every counter is
checked against the count of packets: ``#pkts encaps/decaps``, per-SA bytes,
the tunnel's counters, what reaches the TUN; volume lifetimes cross soft and
hard exactly once, at the exact packet, even inside a batch; the replay
window rejects duplicates (inside one batch too) and packets older than the
window; with no SA nothing leaves in clear. The counters and the volume
lifetimes hold for ESP in UDP 4500 too (NAT-T forced), which the batch path
reads in place as it does raw ESP.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dmvpn.config import parse_config
from dmvpn.config.parser import read_config_text
from dmvpn.ipsec.esp import DropReason
from dmvpn.ipsec.sa import SaState, SecurityAssociation, Selector
from dmvpn.node.router import Router
from dmvpn.runtime.sim import LinkParams, Simulator
from dmvpn.wire.ipv4 import IpProto, IPv4Header
from dmvpn.wire.udp import encode_udp

DATA = Path(__file__).resolve().parent.parent / "src" / "dmvpn" / "lab" / "data"
WAN = "GigabitEthernet0/0/2"
HUB_NBMA, SPOKE_NBMA = "172.17.3.1", "172.17.3.2"
GRE_HEADER = 8  # flags, protocol, key: the ESP payload is the overlay packet plus this
BATCH = 64
LIFETIME_KB = 2560  # the smallest volume lifetime IOS accepts


def _routers(lifetime_kb: int | None = None, nat_t: bool = False) -> tuple[Router, Router]:
    sim = Simulator(seed=1)
    built = {}
    for name, cfg in (("HUB", "hub.cfg"), ("SPOKE1", "spoke.cfg")):
        text = read_config_text(DATA / cfg)
        if lifetime_kb is not None:
            text = text.replace(" set transform-set ipsec-transset-ENS\n",
                                f" set transform-set ipsec-transset-ENS\n set security-association lifetime kilobytes"
                                f" {lifetime_kb}\n")
        config = parse_config(text, cfg).config
        assert config is not None
        built[name] = Router(config, sim.random_for(name), "cisco-iosxe", name=name, kernel_host=True,
                             force_nat_t=nat_t)
        sim.add_node(built[name])
    sim.connect("HUB", WAN, "SPOKE1", WAN, LinkParams(delay=0.002))
    sim.admin("SPOKE1", "ping 10.2.2.1 repeat 3")
    sim.run(10)
    return built["HUB"], built["SPOKE1"]


def _sa_pair(hub: Router, spoke: Router) -> tuple[SecurityAssociation, SecurityAssociation]:
    sa_out = spoke.sad.outbound_for(HUB_NBMA, Selector.hosts(SPOKE_NBMA, HUB_NBMA, 47))
    assert sa_out is not None
    return sa_out, hub.sad.inbound[sa_out.spi]


def _overlay(i: int, size: int = 1400) -> bytes:
    """A distinct overlay UDP datagram (its first payload bytes number it)."""
    body = i.to_bytes(4, "big") + bytes(size - 32)
    return IPv4Header("10.2.2.2", "10.2.2.1", IpProto.UDP).encode(encode_udp("10.2.2.2", "10.2.2.1", 5001, 5201, body))


def _is_esp(packet: bytes) -> bool:
    """ESP, or ESP in UDP 4500 (RFC 3948 2.1: not IKE's non-ESP marker, not a keepalive)."""
    return packet[9] == 50 or (packet[9] == 17 and packet[22:24] == b"\x11\x94" and len(packet) > 36
                               and packet[28:32] != bytes(4))


def _send(spoke: Router, now: float, overlays: list[bytes]) -> list[bytes]:
    """Push ``overlays`` from the spoke's TUN, batches and single packets
    mixed; the ESP datagrams it sends."""
    wire = []
    i = 0
    while i < len(overlays):
        if (i // BATCH) % 3 == 2:  # every third stretch packet by packet
            for packet in overlays[i:i + BATCH]:
                spoke.receive(now, "Tunnel0", packet)
        else:
            spoke.receive_batch(now, "Tunnel0", overlays[i:i + BATCH])
        wire += [tx.packet for tx in spoke.poll_transmit() if tx.iface == WAN and _is_esp(tx.packet)]
        i += BATCH
    return wire


def _deliver(hub: Router, now: float, wire: list[bytes], batch: int = BATCH) -> list[bytes]:
    """Feed ``wire`` to the hub in batches; what it writes to its TUN."""
    out = []
    for i in range(0, len(wire), batch):
        hub.receive_batch(now, WAN, wire[i:i + batch])
        out += [tx.packet for tx in hub.poll_transmit() if tx.iface == "Tunnel0"]
    return out


@pytest.mark.parametrize("nat_t", [False, True], ids=["esp", "esp-in-udp"])
def test_counters_exact_through_batches(nat_t: bool) -> None:
    hub, spoke = _routers(nat_t=nat_t)
    sa_out, sa_in = _sa_pair(hub, spoke)
    assert (sa_out.udp_encap is not None) is nat_t
    before_out = (sa_out.pkts_encaps, sa_out.bytes)
    before_in = (sa_in.pkts_decaps, sa_in.bytes)
    tunnel_out = spoke.tunnels["Tunnel0"].counters.output_packets
    tunnel_in = hub.tunnels["Tunnel0"].counters.input_packets
    sizes = [32 + (i * 37) % 1368 for i in range(1000)]
    overlays = [_overlay(i, size) for i, size in enumerate(sizes)]
    wire = _send(spoke, 11.0, overlays)
    assert len(wire) == 1000
    if nat_t:  # RFC 3948 2.1: UDP 4500 to 4500, the UDP length the rest, checksum zero
        assert {(p[9], p[20:24], int.from_bytes(p[24:26]) == len(p) - 20, p[26:28]) for p in wire} == {
            (17, b"\x11\x94\x11\x94", True, b"\x00\x00")}
    assert sa_out.pkts_encaps - before_out[0] == 1000
    assert sa_out.bytes - before_out[1] == sum(sizes) + 1000 * GRE_HEADER
    assert spoke.tunnels["Tunnel0"].counters.output_packets - tunnel_out == 1000
    assert sa_out.seq == sa_out.pkts_encaps
    delivered = _deliver(hub, 11.0, wire)
    assert delivered == overlays  # every packet, in order, byte for byte
    assert sa_in.pkts_decaps - before_in[0] == 1000
    assert sa_in.bytes - before_in[1] == sa_out.bytes - before_out[1]
    assert hub.tunnels["Tunnel0"].counters.input_packets - tunnel_in == 1000
    assert sa_in.recv_errors == sa_in.replay_drops == sa_out.send_errors == 0


def test_replay_duplicates_and_too_old_rejected_in_batches() -> None:
    hub, spoke = _routers()
    sa_out, sa_in = _sa_pair(hub, spoke)
    wire = _send(spoke, 11.0, [_overlay(i) for i in range(1200)])
    held_back = wire[5]  # never delivered in order: too old once the window has moved past it
    late_in_window = wire[1150]  # delivered out of order but inside the window: accepted
    first = [p for i, p in enumerate(wire) if i not in (5, 1150)]
    decaps = sa_in.pkts_decaps
    assert len(_deliver(hub, 12.0, first)) == 1198
    # duplicates: a whole batch again, and the same packet twice inside one batch
    dup_batch = [*wire[1000:1064], wire[1100], wire[1100]]
    assert _deliver(hub, 12.0, dup_batch, batch=len(dup_batch)) == []
    assert _deliver(hub, 12.0, [held_back, late_in_window, late_in_window]) == [_overlay(1150)]
    assert sa_in.pkts_decaps - decaps == 1199
    assert sa_in.replay_drops == len(dup_batch) + 2  # 66 duplicates, one too old, the second late copy
    drops = hub.counters.esp_drops
    assert drops[DropReason.REPLAY_DUPLICATE.value] == len(dup_batch) + 1
    assert drops[DropReason.REPLAY_TOO_OLD.value] == 1
    assert sa_in.replay is not None and sa_in.replay.top == sa_out.seq


@pytest.mark.parametrize("nat_t", [False, True], ids=["esp", "esp-in-udp"])
def test_volume_lifetime_crosses_exactly_once_at_the_exact_packet(nat_t: bool) -> None:
    hub, spoke = _routers(LIFETIME_KB, nat_t)
    sa_out, sa_in = _sa_pair(hub, spoke)
    lifetime = sa_out.lifetime
    assert lifetime.hard_bytes == LIFETIME_KB * 1024 and lifetime.soft_bytes is not None
    fired: list[tuple[str, str, int, int]] = []
    for router in (hub, spoke):
        sad = router.sad
        soft, hard = sad._soft, sad._hard

        def spy_soft(sa: SecurityAssociation, now: float, reason: str, soft=soft, name=router.name) -> None:
            fired.append((name, "soft", sa.spi, sa.packets))
            soft(sa, now, reason)  # type: ignore[arg-type]

        def spy_hard(sa: SecurityAssociation, now: float, reason: str, hard=hard, name=router.name) -> None:
            if not sa.hard_fired:
                fired.append((name, "hard", sa.spi, sa.packets))
            hard(sa, now, reason)  # type: ignore[arg-type]

        sad._soft, sad._hard = spy_soft, spy_hard  # type: ignore[method-assign]
    size = 1400
    per_packet = size + GRE_HEADER

    def crossing(start: int, limit: int) -> int:  # packets of the SA when bytes first reach ``limit``
        return -(-(limit - start) // per_packet)

    k_soft = sa_out.pkts_encaps + crossing(sa_out.bytes, lifetime.soft_bytes)
    k_hard = sa_out.pkts_encaps + crossing(sa_out.bytes, lifetime.hard_bytes)
    assert k_hard % BATCH not in (0, BATCH - 1)  # the crossing falls inside a batch
    sent = k_hard - sa_out.pkts_encaps
    no_sa = spoke.counters.no_sa_drops
    wire = _send(spoke, 11.0, [_overlay(i, size) for i in range(sent + 100)])
    assert len(wire) == sent  # the packet that reaches the hard limit is sent, none after it
    assert spoke.counters.no_sa_drops - no_sa == 100  # dropped and counted, never in clear
    assert sa_out.state is SaState.DELETED and sa_out.pkts_encaps == k_hard
    assert [f for f in fired if f[0] == "SPOKE1"] == [("SPOKE1", "soft", sa_out.spi, k_soft),
                                                       ("SPOKE1", "hard", sa_out.spi, k_hard)]
    _deliver(hub, 11.0, wire + wire[-3:])  # the last three again after the hard limit: no SA any more
    assert sa_in.pkts_decaps == k_hard and sa_in.state is SaState.DELETED
    assert [f for f in fired if f[0] == "HUB"] == [("HUB", "soft", sa_in.spi, k_soft),
                                                   ("HUB", "hard", sa_in.spi, k_hard)]
    assert hub.counters.esp_drops[DropReason.NO_SA.value] == 3


@pytest.mark.parametrize("batched", [True, False])
def test_no_sa_nothing_in_clear(batched: bool) -> None:
    _hub, spoke = _routers()
    spoke.admin(11.0, "clear crypto sa")
    assert spoke.sad.outbound_for(HUB_NBMA, Selector.hosts(SPOKE_NBMA, HUB_NBMA, 47)) is None
    overlays = [_overlay(i) for i in range(10)]
    no_sa = spoke.counters.no_sa_drops
    if batched:
        spoke.receive_batch(11.0, "Tunnel0", overlays)
    else:
        for packet in overlays:
            spoke.receive(11.0, "Tunnel0", packet)
    sent = spoke.poll_transmit()
    assert spoke.counters.no_sa_drops - no_sa == 10
    assert all(tx.packet[9] not in (47, 50) for tx in sent)  # IKE only: no GRE in clear, no ESP
    assert not any(overlay[20:] in tx.packet for overlay in overlays for tx in sent)


def test_sequence_exhausted_inside_a_batch_stops_at_the_limit() -> None:
    """RFC 4303 3.3.3: the counter never cycles; the packet that would pass
    the SA's last sequence number is dropped and counted, as is every one
    after it, in the batch that crosses it and after, and none leaves in clear."""
    hub, spoke = _routers()
    sa_out, _sa_in = _sa_pair(hub, spoke)
    room = 100
    last = sa_out.seq_limit = sa_out.seq + room
    assert room % BATCH not in (0, BATCH - 1)  # the limit falls inside a batch
    exhausted = spoke.counters.esp_drops.get(DropReason.SEQUENCE_EXHAUSTED.value, 0)
    no_sa = spoke.counters.no_sa_drops
    overlays = [_overlay(i) for i in range(room + 50)]
    wire = _send(spoke, 11.0, overlays)
    assert len(wire) == room and sa_out.seq == last and sa_out.state is SaState.DELETED
    refused = (spoke.counters.esp_drops.get(DropReason.SEQUENCE_EXHAUSTED.value, 0) - exhausted
               + spoke.counters.no_sa_drops - no_sa)
    assert refused == 50 and sa_out.send_errors >= 1
    assert not any(overlay[20:] in tx.packet for overlay in overlays for tx in spoke.poll_transmit())
    assert _deliver(hub, 11.0, wire) == overlays[:room]


def test_shut_tunnel_counts_inbound_drops_and_delivers_nothing() -> None:
    hub, spoke = _routers()
    wire = _send(spoke, 11.0, [_overlay(i) for i in range(200)])
    tunnel = hub.tunnels["Tunnel0"]
    tunnel.shutdown = True
    inputs, drops, router_drops = tunnel.counters.input_packets, tunnel.counters.input_drops, hub.counters.tunnel_drops
    assert _deliver(hub, 11.0, wire[:150]) == []
    hub.receive(11.0, WAN, wire[150])
    assert [tx for tx in hub.poll_transmit() if tx.iface == "Tunnel0"] == []
    assert tunnel.counters.input_drops - drops == 151 and hub.counters.tunnel_drops - router_drops == 151
    assert tunnel.counters.input_packets == inputs
    tunnel.shutdown = False
    assert _deliver(hub, 11.0, wire[151:]) == [_overlay(i) for i in range(151, 200)]
    assert tunnel.counters.input_packets - inputs == 49
