"""The SA timeline: one bar per SA over the run, inbound and outbound, so
overlaps show at a glance (issue: "plot them").

Bars are coloured by what the SA did: carrying traffic (until its last
packet), then lingering after its replacement, or idle with nobody to rekey
it (an orphan, red until it expires); a marker at each bar's start says what
created it (initial, volume rekey, time rekey, collision).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from matplotlib.artist import Artist
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from dmvpn.ipsec.analysis import analyse
from dmvpn.lab.runner import LabResult

COLOURS = {"carrying": "#2a7de1", "lingering": "#f0a030", "orphan": "#d62728"}
MARKERS = {"initial": ("o", "#222222"), "volume rekey": ("v", "#6a3d9a"),
           "time rekey": ("s", "#33a02c"), "collision": ("X", "#d62728")}


def plot_timeline(result: LabResult, node: str, peer: str, path: str | Path) -> Path:
    """Write ``node``'s SA timeline with ``peer`` to ``path`` (PNG or SVG by suffix)."""
    path = Path(path)
    a = analyse(result.records, node, peer, result.duration)
    end = result.duration
    exchanges = a.exchanges
    height = max(3.0, 0.22 * 2 * len(exchanges) + 1.5)
    fig, (ax_in, ax_out) = plt.subplots(2, 1, sharex=True, figsize=(12, min(height, 30)))
    for ax, direction in ((ax_in, "inbound"), (ax_out, "outbound")):
        for row, x in enumerate(exchanges):
            sa = x.inbound if direction == "inbound" else x.outbound
            stop = sa.deleted_at if sa.deleted_at is not None else end
            # carrying until its last packet, then lingering (or orphaned)
            carried_until = sa.last_packet if sa.last_packet is not None else sa.installed_at
            if carried_until > sa.installed_at:
                ax.barh(row, carried_until - sa.installed_at, left=sa.installed_at, height=0.7,
                        color=COLOURS["carrying"])
            if stop > carried_until:
                ax.barh(row, stop - carried_until, left=carried_until, height=0.7,
                        color=COLOURS["orphan" if x.orphan or x.packets == 0 else "lingering"])
            cause = "collision" if x.collision_with is not None else x.cause
            marker, colour = MARKERS.get(cause, ("o", "#222222"))
            ax.plot(sa.installed_at, row, marker=marker, color=colour, markersize=6)
        ax.set_ylabel(f"{direction} SAs")
        ax.set_yticks(range(len(exchanges)))
        ax.set_yticklabels([f"0x{(x.inbound if direction == 'inbound' else x.outbound).spi:08X}"
                            for x in exchanges], fontsize=6)
        ax.invert_yaxis()
        ax.grid(axis="x", alpha=0.3)
    ax_out.set_xlabel("virtual time (s)")
    ax_out.set_xlim(0, end)
    ax_in.set_title(f"{node}: ESP SAs with {peer} ({result.profile}, seed {result.seed}); "
                    f"at most {a.max_pairs_alive} pairs at once, {a.collisions} collision(s), "
                    f"{len(a.orphans)} orphan(s)", fontsize=10)
    handles: list[Artist] = [Patch(color=COLOURS["carrying"], label="carrying traffic"),
               Patch(color=COLOURS["lingering"], label="replaced, lingering"),
               Patch(color=COLOURS["orphan"], label="orphan: idle, not rekeyed")]
    handles += [Line2D([], [], marker=m, color=c, linestyle="", label=k) for k, (m, c) in MARKERS.items()]
    fig.legend(handles=handles, loc="lower center", ncol=7, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
