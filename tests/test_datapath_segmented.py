"""The router's data path stays exact under segmented traffic (issue 16).

With TUN offloads on (``dmvpn run --tun-offload tso``), one read from the
TUN is a TCP super-segment of up to 64 KB; the runtime cuts it into
tunnel-MTU packets (:func:`dmvpn.wire.tcp_offload.packets_from_read`) and
hands them to the router as one batch. On the way out of the far end the
decrypted segments are joined again (:func:`~dmvpn.wire.tcp_offload.coalesce`)
into one TUN write. Here, on the seed's hub and spoke in the simulator:
every segment is encrypted once and counted once; a volume lifetime crosses
soft and hard exactly once, at the exact segment, inside a super-segment,
and nothing of that read after the hard limit leaves (dropped and counted);
the hub's replay window rejects a whole super-segment delivered twice; and
what the hub writes, coalesced, is the original byte stream, checked with
scapy as an independent decoder.
"""

from __future__ import annotations

import os

from scapy.layers.inet import IP, TCP

from dmvpn.ipsec.esp import DropReason
from dmvpn.ipsec.sa import SaState, SecurityAssociation
from dmvpn.node.router import Router
from dmvpn.wire.tcp_offload import (
    VIRTIO_NET_HDR_F_NEEDS_CSUM,
    VIRTIO_NET_HDR_GSO_TCPV4,
    VNET_HDR,
    VNET_HDR_LEN,
    coalesce,
    packets_from_read,
    segment,
)
from test_datapath_exact import GRE_HEADER, LIFETIME_KB, WAN, _routers, _sa_pair

MSS = 1348  # 1400-byte overlay packets: 20 IPv4 + 32 TCP (timestamps) + 1348
SEGMENTS = 48  # the most 1348-octet segments one 64 KB IPv4 datagram holds
SUPER = SEGMENTS * MSS - 500  # a super-segment of 48 segments, the last one short
OPTIONS = [("NOP", None), ("NOP", None), ("Timestamp", (123456, 654321))]


def _tso_read(payload: bytes, seq: int) -> bytes:
    """One TUN read with TSO on: the virtio_net_hdr, then a TCP super-segment
    from the spoke's OS to the hub's (its checksum left for the device)."""
    packet = bytes(IP(src="10.2.2.2", dst="10.2.2.1", flags="DF")
                   / TCP(sport=40000, dport=5201, seq=seq, ack=1, flags="A", window=502, options=OPTIONS) / payload)
    header = VNET_HDR.pack(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 52, MSS, 20, 16)
    return header + packet


def _reads(count: int) -> tuple[list[bytes], bytes]:
    """``count`` TSO reads of one TCP stream, and the stream's bytes."""
    stream = os.urandom(count * SUPER)
    return [_tso_read(stream[i * SUPER:(i + 1) * SUPER], 1000 + i * SUPER) for i in range(count)], stream


def _send_reads(spoke: Router, now: float, reads: list[bytes]) -> list[list[bytes]]:
    """Each read segmented and pushed as one batch, as the runtime does; the
    ESP datagrams each read became."""
    out = []
    for read in reads:
        spoke.receive_batch(now, "Tunnel0", packets_from_read(read))
        out.append([tx.packet for tx in spoke.poll_transmit() if tx.iface == WAN and tx.packet[9] == 50])
    return out


def _stream_of(writes: list[bytes]) -> bytes:
    """The TCP payload carried by coalesced TUN writes, checked by scapy:
    every super-segment cut again must have valid checksums."""
    data = b""
    for write in writes:
        for packet in segment(write[VNET_HDR_LEN:], MSS):
            ip = IP(packet)
            again = IP(packet)
            del again.chksum, again[TCP].chksum
            again = IP(bytes(again))
            assert (again.chksum, again[TCP].chksum) == (ip.chksum, ip[TCP].chksum)
            data += bytes(ip[TCP].payload)
    return data


def test_segments_counted_once_replay_rejects_a_repeated_super_segment() -> None:
    hub, spoke = _routers()
    sa_out, sa_in = _sa_pair(hub, spoke)
    encaps, decaps = sa_out.pkts_encaps, sa_in.pkts_decaps
    reads, stream = _reads(5)
    wire = _send_reads(spoke, 11.0, reads)
    assert [len(w) for w in wire] == [SEGMENTS] * 5
    assert sa_out.pkts_encaps - encaps == 5 * SEGMENTS and sa_out.seq == sa_out.pkts_encaps
    written = []
    for esp in [*wire, wire[2]]:  # the third super-segment's datagrams arrive a second time
        hub.receive_batch(11.0, WAN, esp)
        written += [tx.packet for tx in hub.poll_transmit() if tx.iface == "Tunnel0"]
    assert len(written) == 5 * SEGMENTS
    assert sa_in.pkts_decaps - decaps == 5 * SEGMENTS
    assert sa_in.replay_drops == SEGMENTS
    assert hub.counters.esp_drops[DropReason.REPLAY_DUPLICATE.value] == SEGMENTS
    writes = coalesce(written)
    assert len(writes) == 5  # one TUN write per super-segment, as the kernel's GRO would join them
    assert _stream_of(writes) == stream


def test_volume_lifetime_crosses_once_inside_a_super_segment() -> None:
    hub, spoke = _routers(LIFETIME_KB)
    sa_out, sa_in = _sa_pair(hub, spoke)
    fired: list[tuple[str, str, int]] = []
    for router in (hub, spoke):
        sad = router.sad
        soft, hard = sad._soft, sad._hard

        def spy_soft(sa: SecurityAssociation, now: float, reason: str, soft=soft, name=router.name) -> None:
            fired.append((name, "soft", sa.packets))
            soft(sa, now, reason)  # type: ignore[arg-type]

        def spy_hard(sa: SecurityAssociation, now: float, reason: str, hard=hard, name=router.name) -> None:
            if not sa.hard_fired:
                fired.append((name, "hard", sa.packets))
            hard(sa, now, reason)  # type: ignore[arg-type]

        sad._soft, sad._hard = spy_soft, spy_hard  # type: ignore[method-assign]
    lifetime = sa_out.lifetime
    assert lifetime.soft_bytes is not None
    reads, _ = _reads(-(-(lifetime.hard_bytes - sa_out.bytes) // (SUPER + SEGMENTS * 52)) + 2)
    sizes = [len(p) + GRE_HEADER for read in reads for p in packets_from_read(read)]

    def crossing(limit: int) -> int:  # the SA's packet count when its bytes first reach ``limit``
        total = sa_out.bytes
        for k, size in enumerate(sizes, start=sa_out.pkts_encaps + 1):
            total += size
            if total >= limit:
                return k
        raise AssertionError("the reads do not reach the limit")

    k_soft, k_hard = crossing(lifetime.soft_bytes), crossing(lifetime.hard_bytes)
    start = sa_out.pkts_encaps
    assert (k_hard - start) % SEGMENTS not in (0, SEGMENTS - 1)  # the hard limit falls inside one read
    no_sa = spoke.counters.no_sa_drops
    wire = [p for esp in _send_reads(spoke, 11.0, reads) for p in esp]
    assert len(wire) == k_hard - start  # the segment that reaches the hard limit is sent, none after it
    assert spoke.counters.no_sa_drops - no_sa == len(sizes) - len(wire)  # dropped and counted, never in clear
    assert sa_out.state is SaState.DELETED and sa_out.pkts_encaps == k_hard
    assert [f for f in fired if f[0] == spoke.name] == [(spoke.name, "soft", k_soft), (spoke.name, "hard", k_hard)]
    hub.receive_batch(11.0, WAN, wire)
    assert len([tx for tx in hub.poll_transmit() if tx.iface == "Tunnel0"]) == len(wire)
    assert sa_in.pkts_decaps == k_hard and sa_in.state is SaState.DELETED
    assert [f for f in fired if f[0] == hub.name] == [(hub.name, "soft", k_soft), (hub.name, "hard", k_hard)]
