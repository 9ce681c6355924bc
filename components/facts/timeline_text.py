"""The cold-start timeline in words: the lines `make plan` prints for a stack's replicas, phase by
phase, with the timers derived from them."""

from __future__ import annotations

from dataclasses import fields

from components.facts.timeline import (
    SAFETY,
    Assumptions,
    duration,
    guards,
    job_timeout,
    mirror_fill,
    new_node,
    timers,
    transfer_cost,
    usd,
    warm_restart,
)


def describe(replicas: int, weights_gb: float, a: Assumptions = Assumptions(), source: str = "hub") -> list[str]:
    """The timeline of both weight sources side by side, the stack's timers and the
    assumptions, as text lines (for `make plan`)."""
    hub, s3, warm = new_node(weights_gb, a, "hub"), new_node(weights_gb, a, "s3"), warm_restart(weights_gb, a)
    t = timers(replicas, weights_gb, a, source)
    mark = {"hub": " *" if source == "hub" else "", "s3": " *" if source == "s3" else ""}
    lines = [
        f"{'phase':<28} {'new node, Hub' + mark['hub']:>16} {'new node, S3' + mark['s3']:>15} {'warm restart':>13}"
        "  basis (new node: Hub | S3)"
    ]
    for h, m, w in zip(hub.phases, s3.phases, warm.phases, strict=True):
        basis = h.basis if h.basis == m.basis else f"{h.basis} | {m.basis}"
        lines.append(
            f"{h.name:<28} {duration(h.seconds):>16} {duration(m.seconds):>15} {duration(w.seconds):>13}  {basis}"
        )
    lines.append(f"{'total':<28} {duration(hub.total):>16} {duration(s3.total):>15} {duration(warm.total):>13}")
    lines.append(
        f"{'transfer cost per new node':<28} {usd(transfer_cost(weights_gb, a, 'hub')):>16}"
        f" {usd(transfer_cost(weights_gb, a, 's3')):>15} {usd(0):>13}"
        "  NAT data processing | S3 GETs over the gateway endpoint"
    )
    fill = mirror_fill(weights_gb, a)
    lines.append(
        f"S3 mirror, filled once per revision by the weights-mirror Job: {duration(fill.total)} ("
        + ", ".join(f"{p.name} {duration(p.seconds)}" for p in fill.phases)
        + f"), ${transfer_cost(weights_gb, a, 'hub'):.2f} of NAT processing once"
    )
    lines.append(f"(* this stack: weights.source {source})")
    lines.append(f"timers (each at least its phase; margin x{SAFETY:g}):")
    if source == "s3":
        lines.append(
            f"  {'mirror Job (Pulumi wait)':<30} {duration(job_timeout(weights_gb, a)):>9}  >= {duration(fill.total):>9}"
            "  the fill; the Deployment is created after it"
        )
    for g in guards(t, replicas, weights_gb, a, source):
        lines.append(f"  {g.timer:<30} {duration(g.seconds):>9}  >= {duration(g.needed):>9}  {g.guards}")
    lines.append("assumptions:")
    for f in fields(Assumptions):
        lines.append(f"  {f.name:<28} {getattr(a, f.name):g} {f.metadata['unit']:<5} {f.metadata['source']}")
    return lines
