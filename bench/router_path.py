"""Benchmark a router's per-packet path against the ESP calls inside it.

The seed's hub and spoke (src/dmvpn/lab/data, ``esp-aes esp-sha256-hmac``,
GRE over transport mode) are brought up in the simulator as real mode
builds them (``kernel_host=True``: the OS is the host on Tunnel0), then, in
one process and without sockets:

* ``outbound_pps``: ``spoke.receive(now, "Tunnel0", overlay)``, with
  ``poll_transmit()`` after every 64 packets as the real runtime does: an
  overlay UDP datagram read from the TUN becomes an ESP datagram for the underlay (GRE, SA lookup, ESP, outer header);
* ``inbound_pps``: ``hub.receive(now, WAN, esp)``, polled alike: the
  reverse, up to the overlay datagram written to the TUN;
* ``outbound_batch_pps`` / ``inbound_batch_pps``: the same two paths
  through ``receive_batch`` with 64 packets a call (one descriptor's drain
  per wakeup), polled after each call;
* ``esp_encap_pps`` / ``esp_decap_pps``: the baseline measured in the same
  run, :func:`dmvpn.ipsec.esp.encapsulate` / ``decapsulate`` alone on the
  same SAs and sizes. ``*_ratio`` = router / ESP alone in packets/s (0.67
  or more: the router's per-packet cost is at most 1.5x ESP alone);
  ``*_us`` the per-packet times.

Each figure is the best of ``--rounds`` rounds (interleaved), so load from
other processes hits all of them alike; many short loops (``--pool``
packets each) catch the machine's quiet moments better than a few long
ones (on a shared 2-core VM, 5 x 20,000 moved the ratios by 0.1 from run
to run, 20 x 4,096 by 0.03). Usage:
``python bench/router_path.py [--rounds N] [--pool PACKETS] [--size BYTES]``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from dmvpn.config import load_config
from dmvpn.ipsec.esp import decapsulate, encapsulate
from dmvpn.ipsec.sa import Selector
from dmvpn.node.router import Router
from dmvpn.runtime.sim import LinkParams, Simulator
from dmvpn.wire.ipv4 import IpProto, IPv4Header
from dmvpn.wire.udp import encode_udp

DATA = Path(__file__).resolve().parent.parent / "src" / "dmvpn" / "lab" / "data"
WAN = "GigabitEthernet0/0/2"
HUB_NBMA, SPOKE_NBMA = "172.17.3.1", "172.17.3.2"
POOL = 4096  # packets per timed loop (--pool)
BATCH = 64  # packets between polls, as runtime/real drains a descriptor


def routers() -> tuple[Router, Router]:
    """Hub and spoke with one IPsec SA pair up (a ping brought it up)."""
    sim = Simulator(seed=1)
    built = {}
    for name, cfg in (("HUB", "hub.cfg"), ("SPOKE1", "spoke.cfg")):
        config = load_config(DATA / cfg)
        built[name] = Router(config, sim.random_for(name), "cisco-iosxe", name=name, kernel_host=True)
        sim.add_node(built[name])
    sim.connect("HUB", WAN, "SPOKE1", WAN, LinkParams(delay=0.002))
    sim.admin("SPOKE1", "ping 10.2.2.1 repeat 3")
    sim.run(10)
    hub, spoke = built["HUB"], built["SPOKE1"]
    if spoke.sad.outbound_for(HUB_NBMA, Selector.hosts(SPOKE_NBMA, HUB_NBMA, 47)) is None:
        raise SystemExit("router_path: the seed's SA pair did not come up")
    return hub, spoke


def measure(rounds: int, size: int, pool: int = POOL) -> dict:
    hub, spoke = routers()
    overlay = IPv4Header("10.2.2.2", "10.2.2.1", IpProto.UDP).encode(
        encode_udp("10.2.2.2", "10.2.2.1", 5001, 5201, bytes(size - 28)))
    gre = spoke.tunnels["Tunnel0"].encapsulate(overlay, "10.2.2.1")[1]
    sa_out = spoke.sad.outbound_for(HUB_NBMA, Selector.hosts(SPOKE_NBMA, HUB_NBMA, 47))
    sa_in = hub.sad.inbound[sa_out.spi]
    now = 11.0
    best: dict[str, float] = {}

    def keep(name: str, seconds: float, packets: int = pool) -> None:
        best[name] = max(best.get(name, 0.0), packets / seconds)

    for _ in range(rounds):
        t0 = time.perf_counter()
        wire = []
        for i in range(pool):
            spoke.receive(now, "Tunnel0", overlay)
            if i % BATCH == BATCH - 1:
                wire.extend(tx.packet for tx in spoke.poll_transmit())
        wire.extend(tx.packet for tx in spoke.poll_transmit())
        keep("outbound_pps", time.perf_counter() - t0)
        t0 = time.perf_counter()
        for i, packet in enumerate(wire):
            hub.receive(now, WAN, packet)
            if i % BATCH == BATCH - 1:
                hub.poll_transmit()
        hub.poll_transmit()
        keep("inbound_pps", time.perf_counter() - t0)
        t0 = time.perf_counter()
        batch = [overlay] * BATCH
        wire = []
        for _ in range(pool // BATCH):
            spoke.receive_batch(now, "Tunnel0", batch)
            wire.extend(tx.packet for tx in spoke.poll_transmit())
        keep("outbound_batch_pps", time.perf_counter() - t0, len(wire))
        t0 = time.perf_counter()
        for i in range(0, len(wire), BATCH):
            hub.receive_batch(now, WAN, wire[i:i + BATCH])
            hub.poll_transmit()
        keep("inbound_batch_pps", time.perf_counter() - t0, len(wire))
        t0 = time.perf_counter()
        bare = [encapsulate(sa_out, now, gre, 47) for _ in range(pool)]
        keep("esp_encap_pps", time.perf_counter() - t0)
        t0 = time.perf_counter()
        for packet in bare:
            decapsulate(sa_in, now, packet)
        keep("esp_decap_pps", time.perf_counter() - t0)
    out = {k: round(v) for k, v in best.items()}
    out["outbound_ratio"] = round(best["outbound_pps"] / best["esp_encap_pps"], 2)
    out["inbound_ratio"] = round(best["inbound_pps"] / best["esp_decap_pps"], 2)
    out["outbound_batch_ratio"] = round(best["outbound_batch_pps"] / best["esp_encap_pps"], 2)
    out["inbound_batch_ratio"] = round(best["inbound_batch_pps"] / best["esp_decap_pps"], 2)
    for key in ("outbound", "inbound", "outbound_batch", "inbound_batch", "esp_encap", "esp_decap"):
        out[f"{key}_us"] = round(1e6 / best[f"{key}_pps"], 2)
    return {"transform": "esp-aes esp-sha256-hmac, transport, GRE key 1 (seed)", "ip_datagram_bytes": size,
            "rounds": rounds, **out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--pool", type=int, default=POOL, help="packets per timed loop")
    parser.add_argument("--size", type=int, default=1400, help="overlay IP datagram bytes (>= 28)")
    args = parser.parse_args()
    if args.rounds < 1 or args.size < 28 or args.pool < BATCH:
        parser.error(f"--rounds must be >= 1, --size >= 28, --pool >= {BATCH}")
    print(json.dumps(measure(args.rounds, args.size, args.pool), indent=2))


if __name__ == "__main__":
    main()
