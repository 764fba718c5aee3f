"""Is the lab linear in virtual time, with bounded memory? ``dmvpn lab seed``
for one virtual hour (the baseline) and for a longer run (24 h by default),
measured in the same run, each in its own subprocess so its peak RSS
(``ru_maxrss`` of the child) is its own.

    .venv/bin/python bench/lab_long.py [--short 3600] [--long 86400]

Prints one JSON object: {runs: [{virtual_s, wall_s, peak_rss_kb}, ...],
wall_ratio, virtual_ratio, rss_ratio, linear (wall_ratio <= 30 for 24x the
virtual time, i.e. within 1.25x of proportional), memory_bounded
(rss_ratio <= 2)}.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def _one(virtual: float) -> dict:
    """Run ``dmvpn lab seed --json --duration VIRTUAL`` in a child; its wall
    time and peak RSS (KB, Linux ru_maxrss)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "dmvpn", "lab", "seed", "--json",
                           "--duration", repr(virtual)],
                          capture_output=True, text=True, env=os.environ.copy())
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"lab seed --duration {virtual} failed: {proc.stderr.strip()}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak < before:
        raise SystemExit("ru_maxrss went down: cannot attribute the peak")
    summary = json.loads(proc.stdout)["summary"]
    return {"virtual_s": virtual, "wall_s": round(wall, 2), "peak_rss_kb": peak,
            "quick_modes": summary.get("quick_modes")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", type=float, default=3600.0)
    parser.add_argument("--long", type=float, default=86400.0)
    args = parser.parse_args()
    # ru_maxrss of RUSAGE_CHILDREN is the largest child so far: run the short
    # one first, so the long one's figure is its own unless it is smaller
    short = _one(args.short)
    long = _one(args.long)
    if long["peak_rss_kb"] == short["peak_rss_kb"]:
        long["peak_rss_kb_note"] = "at most the short run's (RUSAGE_CHILDREN keeps the maximum)"
    wall_ratio = long["wall_s"] / short["wall_s"]
    rss_ratio = long["peak_rss_kb"] / short["peak_rss_kb"]
    virtual_ratio = args.long / args.short
    print(json.dumps({
        "runs": [short, long],
        "virtual_ratio": virtual_ratio,
        "wall_ratio": round(wall_ratio, 2),
        "rss_ratio": round(rss_ratio, 3),
        "linear": wall_ratio <= 30 * virtual_ratio / 24,
        "memory_bounded": rss_ratio <= 2.0,
    }, indent=2))


if __name__ == "__main__":
    main()
