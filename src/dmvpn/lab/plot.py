"""The SA timeline: one bar per SA over the run, inbound and outbound, so
overlaps show at a glance (issue: "plot them"); dashed lines mark the
node's NHRP events with that peer (registration, mappings, shortcuts).

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
#: NHRP events listed under the plot at most (the first ones).
MAX_MARKS = 12
MARKERS = {"initial": ("o", "#222222"), "volume rekey": ("v", "#6a3d9a"),
           "time rekey": ("s", "#33a02c"), "collision": ("X", "#d62728")}


def nhrp_marks(result: LabResult, node: str, peer: str) -> list[tuple[float, str]]:
    """(time, label) of ``node``'s NHRP milestones that concern NBMA ``peer``
    (registration, mapping, SA up/down) and its NHRP routes, for the plot's
    dashed lines: the NHRP entries and tunnels beside the SAs."""
    router = result.routers.get(node)
    if router is None:
        return []
    marks = []
    for _iface, at, kind, subject, detail in router.nhrp_milestones():
        if kind in ("mapping", "mapping-gone") and detail == peer:
            marks.append((at, f"NHRP {kind} {subject}"))
        elif kind in ("sa-up", "sa-down") and subject == peer:
            marks.append((at, f"NHRP sees {kind}"))
        elif kind in ("registered", "registration-lost") and detail == peer:
            marks.append((at, f"{kind} to {subject}"))
        elif kind in ("route", "route-gone"):
            marks.append((at, f"{kind} {subject} {detail}"))
    return marks


def plot_timeline(result: LabResult, node: str, peer: str, path: str | Path) -> Path:
    """Write ``node``'s SA timeline with ``peer`` to ``path`` (PNG or SVG by suffix)."""
    path = Path(path)
    a = analyse(result.records, node, peer, result.duration)
    end = result.duration
    exchanges = a.exchanges
    marks = nhrp_marks(result, node, peer)[:MAX_MARKS]
    notes = 0.14 * len(marks)
    height = max(3.0, 0.22 * 2 * len(exchanges) + 1.5) + notes
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
    for at, _label in marks:
        for ax in (ax_in, ax_out):
            ax.axvline(at, color="#888888", linestyle="--", linewidth=0.8)
    ax_out.set_xlabel("virtual time (s)")
    ax_out.set_xlim(0, end)
    ax_in.set_title(f"{node}: ESP SAs with {peer} ({result.profile}, seed {result.seed}); "
                    f"at most {a.max_pairs_alive} pairs at once, {a.collisions} collision(s), "
                    f"{len(a.orphans)} orphan(s)", fontsize=10)
    handles: list[Artist] = [Patch(color=COLOURS["carrying"], label="carrying traffic"),
               Patch(color=COLOURS["lingering"], label="replaced, lingering"),
               Patch(color=COLOURS["orphan"], label="orphan: idle, not rekeyed")]
    handles += [Line2D([], [], marker=m, color=c, linestyle="", label=k) for k, (m, c) in MARKERS.items()]
    bottom = 0.04
    if marks:  # the dashed lines, named under the legend
        fig.text(0.01, 0.005, "\n".join(f"- - {at:9.3f} s  {label}" for at, label in marks), fontsize=7,
                 family="monospace", va="bottom", color="#444444")
        bottom += (notes + 0.1) / min(height, 30)
    fig.legend(handles=handles, loc="lower center", ncol=7, fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, bottom - 0.04))
    fig.tight_layout(rect=(0, bottom, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
