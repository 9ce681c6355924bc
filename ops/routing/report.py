"""`make routing`: each router policy on the agent-conversation trace, through the real binary.

Prints turn affinity, session balance and prefill tokens per policy, and the prefill saved
against round robin (what the ALB's spread costs today).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from components.serving.router_flags import POLICIES
from ops.routing import replay as rp


def table(replicas: int = 3) -> list[str]:
    turns = rp.trace()
    sessions = len({t.session for t in turns})
    outcomes = {name: rp.replay(flag, replicas, turns) for name, flag in sorted(POLICIES.items())}
    base = outcomes["round-robin"].prefill_tokens
    lines = [
        f"{sessions} conversations, {len(turns)} requests, {replicas} replicas (vllm-router, fake replicas on loopback)",
        "",
        "| policy | turn affinity | session balance | failed | prefill tokens | saved vs round robin |",
        "|---|---|---|---|---|---|",
    ]
    for name, o in outcomes.items():
        saved = 1 - o.prefill_tokens / base if base else 0.0
        lines.append(
            f"| {name} | {o.affinity():.0%} | within {o.balance():.0%} | {o.failed} | {o.prefill_tokens:,} | {saved:.0%} |"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.routing.report", description=__doc__)
    parser.add_argument("--replicas", type=int, default=3)
    args = parser.parse_args(argv)
    print("\n".join(table(args.replicas)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
