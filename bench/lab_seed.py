"""Wall time of the seed lab: one virtual hour of hub + spoke at ~0.85 Gbit/s
(``dmvpn lab seed``), per profile, against the bare sim loop measured in the
same run (two idle-engine nodes exchanging the same number of probe packets),
so the ratio says what the IKE/ESP/fluid machinery costs on top of the loop.

    .venv/bin/python bench/lab_seed.py [--virtual 3600] [--seed 1]

Prints one JSON list: {profile, virtual_s, wall_s, cpu_s, virtual_per_wall,
quick_modes, probe_packets, baseline_wall_s, ratio_to_baseline}.
"""

from __future__ import annotations

import argparse
import json
import time

from dmvpn.cli.lab_cmd import SEED_NODE, SEED_PEER, _seed_scenario
from dmvpn.lab.report import summary
from dmvpn.lab.runner import LabRun
from dmvpn.node.icmp_echo import IcmpEchoEngine
from dmvpn.runtime.sim import LinkParams, Simulator


def _baseline(virtual: float, seed: int) -> float:
    """Two ICMP echo engines pinging each other once a second each way."""
    sim = Simulator(seed, keep_events=False)
    a = IcmpEchoEngine("a", {"eth0": "10.0.0.1/24"}, sim.random_for("a"))
    b = IcmpEchoEngine("b", {"eth0": "10.0.0.2/24"}, sim.random_for("b"))
    sim.add_node(a)
    sim.add_node(b)
    sim.connect("a", "eth0", "b", "eth0", LinkParams(delay=0.004))
    n = int(virtual) - 10
    sim.call_at(10.0, lambda: sim.admin("a", f"ping 10.0.0.2 repeat {n} interval 1"))
    sim.call_at(10.5, lambda: sim.admin("b", f"ping 10.0.0.1 repeat {n} interval 1"))
    started = time.perf_counter()
    sim.run(virtual)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--virtual", type=float, default=3600.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    baseline = _baseline(args.virtual, args.seed)
    rows = []
    for profile in ("cisco-iosxe", "improved"):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        result = LabRun(_seed_scenario(), profile=profile, seed=args.seed, duration=args.virtual).run()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        s = summary(result, SEED_NODE, SEED_PEER)
        rows.append({"profile": profile, "virtual_s": args.virtual, "wall_s": round(wall, 3),
                     "cpu_s": round(cpu, 3), "virtual_per_wall": round(args.virtual / wall, 1),
                     "quick_modes": s["quick_modes"], "probe_packets": s["probe_packets_sent"],
                     "baseline_wall_s": round(baseline, 3),
                     "ratio_to_baseline": round(wall / baseline, 2)})
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
