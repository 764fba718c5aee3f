"""How the simulated DMVPN scales: a hub with N spokes (10, 100, 1000 by
default) that bring up IPsec, register with NHRP and keep one ping probe
each to the hub's tunnel address for a virtual hour.

Each size runs in its own process (so its peak RSS is its own); for each
the JSON gives the wall time, the peak resident memory, how many spokes
were registered at the end, the probes sent/answered, and, against the
smallest size measured in the same run (the baseline), how wall time and
memory grew per spoke. Usage:
``python bench/lab_scale.py [--spokes 10,100,1000] [--hours 1] [--interval 10]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from dmvpn.config import parse_config
from dmvpn.nhrp.states import EntryState
from dmvpn.node.router import Router
from dmvpn.runtime.sim import LinkParams, Simulator

WAN = "GigabitEthernet0/0/0"
CRYPTO = """crypto isakmp policy 10
 encr aes 128
 hash sha256
 authentication pre-share
 group 14
 lifetime 86400
crypto isakmp key scale-psk address 0.0.0.0
crypto ipsec transform-set TS esp-aes esp-sha256-hmac
 mode transport
crypto ipsec profile PROF
 set transform-set TS
"""
TUNNEL = """ no ip redirects
 ip mtu 1400
 ip nhrp network-id 100
 tunnel source {wan}
 tunnel mode gre multipoint
 tunnel key 100
 tunnel protection ipsec profile PROF
"""


def _addr(base: str, i: int) -> str:
    """The i-th host address (1-based) in a /16 ``base`` such as ``172.16``."""
    return f"{base}.{i // 250}.{i % 250 + 1}"


def hub_config() -> str:
    return (f"hostname HUB\n{CRYPTO}interface {WAN}\n ip address {_addr('172.16', 0)} 255.255.0.0\n"
            f"interface Tunnel0\n ip address {_addr('10.0', 0)} 255.255.0.0\n ip nhrp map multicast dynamic\n"
            f" ip nhrp redirect\n{TUNNEL.format(wan=WAN)}end\n")


def spoke_config(i: int) -> str:
    return (f"hostname SPOKE{i}\n{CRYPTO}interface {WAN}\n ip address {_addr('172.16', i)} 255.255.0.0\n"
            f"interface Tunnel0\n ip address {_addr('10.0', i)} 255.255.0.0\n"
            f" ip nhrp nhs {_addr('10.0', 0)} nbma {_addr('172.16', 0)}\n ip nhrp shortcut\n"
            f"{TUNNEL.format(wan=WAN)}end\n")


def _router(sim: Simulator, name: str, text: str) -> Router:
    parsed = parse_config(text, name)
    if parsed.config is None:
        raise SystemExit(f"lab_scale: {name}: {parsed.errors[0]}")
    router = Router(parsed.config, sim.random_for(name), "cisco-iosxe", name=name)
    sim.add_node(router)
    return router


def run_one(spokes: int, hours: float, interval: float) -> dict[str, object]:
    """One size, in this process."""
    started = time.perf_counter()
    sim = Simulator(seed=1)
    hub = _router(sim, "hub", hub_config())
    params = LinkParams(delay=0.005)
    wan = sim.segment("wan", params)
    wan.attach("hub", WAN, _addr("172.16", 0), params)
    duration = hours * 3600.0
    count = int((duration - 20.0) / interval)
    routers = []
    for i in range(1, spokes + 1):
        name = f"spoke{i}"
        routers.append(_router(sim, name, spoke_config(i)))
        wan.attach(name, WAN, _addr("172.16", i), params)
        start = 10.0 + (i % 100) * interval / 100  # spread the probes over one interval
        sim.call_at(start, lambda n=name: sim.admin(n, f"ping {_addr('10.0', 0)} repeat {count} timeout 2 "
                                                       f"interval {interval:g}") and None)
    built = time.perf_counter()
    sim.run(duration)
    wall = time.perf_counter() - started
    engine = hub.nhrp["Tunnel0"].engine
    registered = sum(1 for e in engine.cache if e.state is EntryState.REGISTERED)
    # spokes all boot at 0 s: beyond IOS's 64 half-open IKE SAs the hub drops
    # Main Modes, those spokes retransmit, so the last registers late
    learnt = [m.time for m in hub.nhrp["Tunnel0"].milestones if m.kind == "mapping"]
    sent = sum(r.host.last.sent for r in routers if r.host.last is not None)
    answered = sum(r.host.last.received for r in routers if r.host.last is not None)
    return {"spokes": spokes, "virtual_s": duration, "wall_s": round(wall, 2),
            "build_s": round(built - started, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "registered": registered, "last_registered_at_s": round(max(learnt), 1) if learnt else None,
            "probes_sent": sent, "probes_answered": answered}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spokes", default="10,100,1000", help="comma-separated sizes")
    ap.add_argument("--hours", type=float, default=1.0, help="virtual hours per size")
    ap.add_argument("--interval", type=float, default=10.0, help="seconds between one spoke's probes")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # a child: one size
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(run_one(args.one, args.hours, args.interval)))
        return
    sizes = sorted(int(s) for s in args.spokes.split(","))
    runs = []
    for n in sizes:
        child = subprocess.run([sys.executable, __file__, "--one", str(n), "--hours", str(args.hours),
                                "--interval", str(args.interval)], capture_output=True, text=True, check=True)
        runs.append(json.loads(child.stdout))
    base = runs[0]
    for r in runs:
        r["wall_per_spoke_ms"] = round(1000 * r["wall_s"] / r["spokes"], 2)
        r["wall_vs_baseline"] = round(r["wall_s"] / base["wall_s"], 2) if base["wall_s"] else None
    print(json.dumps({"baseline_spokes": base["spokes"], "probe_interval_s": args.interval, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
