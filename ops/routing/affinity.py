"""Which replica served a conversation's turns, from the router's own metrics.

vllm-router 0.1.17 counts requests per worker in `vllm_router_processed_requests_total{worker=...}`
(read from its Prometheus port). Two turns of one conversation reached one replica when, between
two scrapes of the same router pod, one worker's count rose by both. The basis of the check that
`ops verify` is to make (not wired in yet).
"""

from __future__ import annotations

import re

METRIC = "vllm_router_processed_requests_total"
_LINE = re.compile(METRIC + r'\{[^}]*worker="([^"]+)"[^}]*\}\s+([0-9.eE+]+)')


def per_worker(metrics_text: str) -> dict[str, float]:
    return {m.group(1): float(m.group(2)) for m in _LINE.finditer(metrics_text)}


def served_by(before: str, after: str) -> dict[str, float]:
    """Requests each worker took between two scrapes (only the workers that took any)."""
    a, b = per_worker(before), per_worker(after)
    return {w: n - a.get(w, 0.0) for w, n in sorted(b.items()) if n - a.get(w, 0.0) > 0}
