"""The plan's cold-start section: the four starts of one replica in words, and as a Gantt chart."""

from __future__ import annotations

from pathlib import Path

from components.facts import timeline, timeline_text
from components.scaling import policy as scaling
from components.settings.stack import Settings

COLD_START_SVG = "cold-start.svg"


def cold_start_lines(settings: Settings) -> list[str]:
    sv, g = settings.serving, settings.gpu_nodes
    weights_gb = sv.model_facts.weights_gb
    return [
        f"Cold start of one replica (components/facts/timeline.py; {weights_gb:g} GB of weights, {sv.replicas} replica(s)):",
        f"  before it: a new {g.instance_type} boots and joins in about {timeline.duration(scaling.NODE_PROVISION_SECONDS)}"
        " (assumption, components/scaling/policy.py); a restart on a node that served skips it",
        *(
            f"  {line}"
            for line in timeline_text.describe(
                sv.replicas, weights_gb, source=settings.weights.source, routing=settings.routing_mode
            )
        ),
    ]


def cold_start_picture(settings: Settings, out: Path) -> Path:
    """The four starts as a Gantt chart, beside the manifests."""
    from ops import pictures  # matplotlib: only when a picture is drawn

    starts = timeline.scenarios(settings.serving.model_facts.weights_gb, routing=settings.routing_mode)
    return pictures.cold_start(starts, out / COLD_START_SVG, scaling.NODE_PROVISION_SECONDS)
