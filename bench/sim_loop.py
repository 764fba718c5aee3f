"""How fast the sim runtime runs virtual time.

Two nodes on a lossy, jittery link for one virtual hour. With the default
``--engine icmp`` they are ICMP echo engines pinging each other (by default
twice a second each way), so the figure includes IPv4/ICMP encode/decode and
checksums; ``--engine null`` runs the same packet pattern through engines that
do nothing, which isolates the loop's own cost. Prints one JSON line
{virtual_s, wall_s, cpu_s, events, ratio, ...}; ratio = virtual seconds per
wall second; cpu_s (process CPU time) is steadier than wall_s on a shared
machine.

    .venv/bin/python bench/sim_loop.py [--engine icmp|null] [--virtual 3600] [--interval 0.5]
"""

from __future__ import annotations

import argparse
import json
import time

from dmvpn.node.icmp_echo import IcmpEchoEngine
from dmvpn.runtime.sim import LinkParams, Simulator
from dmvpn.sansio import LogEvent, Transmit


class NullPinger:
    """Sends a 100-byte packet every ``interval`` s; bounces type-1 packets."""

    def __init__(self, name: str, interval: float) -> None:
        self.name = name
        self.interval = interval
        self.deadline = 0.0
        self.tx: list[Transmit] = []

    def receive(self, now: float, iface: str, packet: bytes) -> None:
        if packet[0] == 1:
            self.tx.append(Transmit(iface, b"\x02" + packet[1:]))

    def handle_timer(self, now: float) -> None:
        self.tx.append(Transmit("eth0", b"\x01" * 100))
        self.deadline = now + self.interval

    def next_deadline(self) -> float | None:
        return self.deadline

    def admin(self, now: float, command: str) -> str:
        return ""

    def poll_transmit(self) -> list[Transmit]:
        out, self.tx = self.tx, []
        return out

    def poll_events(self) -> list[LogEvent]:
        return []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("icmp", "null"), default="icmp")
    parser.add_argument("--virtual", type=float, default=3600.0, help="virtual seconds to run")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between pings, per node")
    parser.add_argument("--loss", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    sim = Simulator(seed=args.seed, keep_events=False)
    repeat = int(args.virtual / args.interval)
    for name, addr in (("a", "10.0.0.1/24"), ("b", "10.0.0.2/24")):
        if args.engine == "icmp":
            sim.add_node(IcmpEchoEngine(name, {"eth0": addr}, sim.random_for(name)))
        else:
            sim.add_node(NullPinger(name, args.interval))
    link = sim.connect("a", "eth0", "b", "eth0",
                       LinkParams(delay=0.005, jitter=0.002, loss=args.loss, bandwidth=100e6))
    if args.engine == "icmp":
        sim.admin("a", f"ping 10.0.0.2 repeat {repeat} interval {args.interval}")
        sim.admin("b", f"ping 10.0.0.1 repeat {repeat} interval {args.interval}")
    start, cpu_start = time.perf_counter(), time.process_time()
    sim.run(until=args.virtual)
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    print(json.dumps({
        "engine": args.engine,
        "virtual_s": args.virtual,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "events": sim.events_processed,
        "ratio": round(args.virtual / wall, 1),
        "packets_delivered": link.forward.stats.delivered + link.reverse.stats.delivered,
        "dropped_loss": link.forward.stats.dropped_loss + link.reverse.stats.dropped_loss,
        "us_per_event": round(wall / max(sim.events_processed, 1) * 1e6, 2),
    }))


if __name__ == "__main__":
    main()
