"""SVG pictures of the plan and of the scaling simulation, drawn with matplotlib.

Deterministic: a fixed hash salt for the SVG ids, no date or creator in the metadata, text as
paths in matplotlib's bundled font; two runs write the same bytes (tests/test_pictures.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from components.facts import timeline

# The same ids in every run: matplotlib salts them with a random value otherwise.
matplotlib.rcParams["svg.hashsalt"] = "minimax-vllm"
matplotlib.rcParams["svg.fonttype"] = "path"
METADATA = {"Date": None, "Creator": "minimax-vllm"}

LANE_COLOURS = {
    timeline.VLLM_POD: "#4c78a8",
    timeline.STAGER_POD: "#f58518",
    timeline.LOAD_BALANCER: "#54a24b",
    timeline.ROUTER: "#b279a2",
}


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="svg", metadata=METADATA)
    return path


def cold_start(starts: Sequence[timeline.Timeline], path: Path, node_boot_s: int) -> Path:
    """A Gantt chart per start: one bar per phase, from the node joining; the critical path
    outlined in black, the node's own boot noted apart."""
    fig = Figure(figsize=(12, 2.2 + 2.1 * len(starts)))
    axes = fig.subplots(len(starts), 1, sharex=True, squeeze=False)[:, 0]
    longest = max(t.total for t in starts) / 60
    for ax, t in zip(axes, starts, strict=True):
        rows = [name for name in timeline.PHASE_ORDER if t.has(name)]
        for y, name in enumerate(rows):
            p = t.phase(name)
            ax.barh(
                y,
                max(p.seconds, 1) / 60,
                left=p.start / 60,
                color=LANE_COLOURS[p.lane],
                edgecolor="black" if p.critical else "none",
                linewidth=1.5,
                height=0.7,
            )
            ax.text(
                p.end / 60 + longest * 0.005, y, timeline.duration(p.seconds), va="center", fontsize=7, color="#333333"
            )
        ax.set_yticks(range(len(rows)), labels=rows, fontsize=8)
        ax.invert_yaxis()
        ax.axvline(t.total / 60, color="black", linestyle=":", linewidth=1)
        ax.set_title(f"{t.start}: first answer at {timeline.duration(t.total)}", fontsize=10, loc="left")
        ax.grid(axis="x", color="#dddddd", linewidth=0.5)
        ax.set_axisbelow(True)
    axes[-1].set_xlabel(
        f"minutes from the node joining the cluster (its own boot, about {timeline.duration(node_boot_s)}, comes before)"
    )
    handles = [Patch(color=c, label=lane) for lane, c in LANE_COLOURS.items()]
    handles.append(Patch(facecolor="white", edgecolor="black", label="critical path"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle("Cold start of one vLLM replica (components/facts/timeline.py)", fontsize=12)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return _save(fig, path)


def scaling(trace: str, series: Sequence[tuple[float, int, int, float]], capacity: int, path: Path) -> Path:
    """Replicas (asked for and ready) and the queue over one trace: (hour, replicas, ready, waiting)."""
    hours = [s[0] for s in series]
    fig = Figure(figsize=(10, 5))
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.step(hours, [s[1] for s in series], where="post", label="replicas (asked for)", color="#4c78a8")
    top.step(hours, [s[2] for s in series], where="post", label="replicas ready", color="#54a24b")
    top.axhline(capacity, color="#999999", linestyle=":", linewidth=1, label=f"capacity {capacity}")
    top.set_ylabel("replicas")
    top.set_ylim(-0.2, capacity + 0.8)
    top.legend(fontsize=8, loc="upper left", frameon=False)
    bottom.fill_between(hours, [s[3] for s in series], step="post", color="#f58518", alpha=0.6)
    bottom.set_ylabel("requests waiting")
    bottom.set_xlabel("hour of day (the schedule's time zone)")
    for ax in (top, bottom):
        ax.grid(color="#dddddd", linewidth=0.5)
        ax.set_axisbelow(True)
    fig.suptitle(f"Scaling simulation: {trace}", fontsize=12)
    fig.tight_layout()
    return _save(fig, path)
