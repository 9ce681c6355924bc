"""The cold-start timeline in words: the lines `make plan` prints for a stack's replicas, the four
starts side by side with what overlaps and the critical path, and the timers derived from them."""

from __future__ import annotations

from dataclasses import fields

from components.facts.timeline import (
    HEALTH_CHECK,
    PHASE_ORDER,
    SAFETY,
    Assumptions,
    Timeline,
    duration,
    guards,
    job_timeout,
    mirror_fill,
    scenarios,
    timers,
    transfer_cost,
    usd,
)

SHORT = {
    "new node, Hub, cold compile cache": "node, Hub",
    "new node, S3, cold compile cache": "node, S3, cold",
    "new node, S3, warm compile cache": "node, S3, warm",
    "warm restart": "warm restart",
}


def clock(seconds: int) -> str:
    """`95` -> `1:35`: a moment of the start, from the node joining."""
    m, s = divmod(int(seconds), 60)
    return f"{m}:{s:02d}"


def _cell(t: Timeline, name: str) -> str:
    if not t.has(name):
        return "-"
    p = t.phase(name)
    return f"{clock(p.start)}-{clock(p.end)}{'*' if p.critical else ' '}"


def critical_path(t: Timeline) -> str:
    return " -> ".join(f"{p.name} {duration(p.seconds)}" for p in t.critical_path)


def table(starts: list[Timeline]) -> list[str]:
    """Phases as rows, starts as columns: from-to in minutes:seconds after the node joined, * on
    the critical path."""
    names = [n for n in PHASE_ORDER if any(t.has(n) for t in starts)]
    width = max(len(n) for n in names)
    lines = [
        f"{'phase':<{width}} {'lane':<20} " + " ".join(f"{SHORT.get(t.start, t.start):>15}" for t in starts) + "  basis"
    ]
    for name in names:
        having = [t.phase(name) for t in starts if t.has(name)]
        bases = list(dict.fromkeys(p.basis for p in having))
        lines.append(
            f"{name:<{width}} {having[0].lane:<20} "
            + " ".join(f"{_cell(t, name):>15}" for t in starts)
            + f"  {' | '.join(bases)}"
        )
    lines.append(
        f"{'first answer through the LB':<{width}} {'':<20} " + " ".join(f"{duration(t.total):>14} " for t in starts)
    )
    return lines


def describe(
    replicas: int, weights_gb: float, a: Assumptions = Assumptions(), source: str = "hub", routing: str = "direct"
) -> list[str]:
    """The four starts, their critical paths, the stack's timers and the assumptions, as text lines
    (for `make plan`)."""
    starts = scenarios(weights_gb, a, routing=routing)
    t = timers(replicas, weights_gb, a, source)
    hc = HEALTH_CHECK
    lines = [
        "from the node joining the cluster (from-to in m:ss, * on the critical path; the node's own boot comes before):",
        *(f"  {line}" for line in table(starts)),
        "critical paths:",
        *(f"  {t_.start}: {critical_path(t_)} = {duration(t_.total)}" for t_ in starts),
        f"transfers at once share the node: each runs {a.contention:.2f}x slower while another runs (contention);"
        " phases on other lanes run beside the vLLM pod",
        f"ALB health check (chosen from this timeline): every {hc.interval_s} s, timeout {hc.timeout_s} s, healthy after"
        f" {hc.healthy}, out after {hc.unhealthy} failures ({hc.out_s} s); the pod's readiness gate waits for healthy",
        f"transfer cost per new node: {usd(transfer_cost(weights_gb, a, 'hub'))} from the Hub (NAT data processing),"
        f" {usd(transfer_cost(weights_gb, a, 's3'))} from S3 (GETs over the gateway endpoint)",
    ]
    fill = mirror_fill(weights_gb, a)
    lines.append(
        f"S3 mirror, filled once per revision by the weights-mirror Job: {duration(fill.total)} ("
        + ", ".join(f"{p.name} {duration(p.seconds)}" for p in fill.phases)
        + f"), ${transfer_cost(weights_gb, a, 'hub'):.2f} of NAT processing once"
    )
    lines.append(
        f"this stack: weights.source {source}, routing {routing}; its timers guard a new node with a cold compile cache"
    )
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
        lines.append(f"  {f.name:<28} {getattr(a, f.name):g} {f.metadata['unit']:<6} {f.metadata['source']}")
    return lines
