"""`make routing`: each router policy on the agent-conversation trace, through the real binary.

Prints, per policy, turn affinity with one router pod and with two (the stack runs two behind the
ALB, which spreads requests over them), how many replicas took conversations, and the prefill
tokens against round robin (what the ALB's spread costs without a router). The table holds only
figures that do not depend on the loopback ports (README.md quotes it); how evenly consistent
hashing spreads conversations does (the ring positions of the replicas' addresses), so it follows
the table as this run's measurement.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from components.serving.router_flags import POLICIES
from components.serving.routing import REPLICAS as ROUTER_PODS
from ops.routing import replay as rp


def _outcomes(replicas: int) -> dict[str, tuple[rp.Outcome, rp.Outcome]]:
    turns = rp.trace()
    return {
        name: (rp.replay(flag, replicas, turns), rp.replay(flag, replicas, turns, routers=ROUTER_PODS))
        for name, flag in sorted(POLICIES.items())
    }


def table(replicas: int = 3, outcomes: dict[str, tuple[rp.Outcome, rp.Outcome]] | None = None) -> list[str]:
    turns = rp.trace()
    sessions = len({t.session for t in turns})
    outcomes = outcomes or _outcomes(replicas)
    base = outcomes["round-robin"][0].prefill_tokens
    lines = [
        f"{sessions} conversations, {len(turns)} requests, {replicas} replicas (vllm-router, fake replicas on loopback)",
        "",
        "| policy | turn affinity, 1 router pod | 2 router pods | replicas that took conversations | failed"
        " | prefill tokens | saved vs round robin |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, (one, two) in outcomes.items():
        saved = 1 - one.prefill_tokens / base if base else 0.0
        took = sum(1 for n in one.sessions_per_replica() if n)
        # Across two pods, cache-aware varies from run to run (each pod's tree knows only its turns),
        # and round robin's exact share with the order in which each pod lists the replicas.
        second = {
            "cache-aware": "varies (58-100% measured)",
            "round-robin": f"about 1 in {round(1 / two.affinity())}" if two.affinity() else "0%",
        }.get(name, f"{two.affinity():.0%}")
        lines.append(
            f"| {name} | {one.affinity():.0%} | {second} | {took} of {replicas} | {one.failed + two.failed}"
            f" | {one.prefill_tokens:,} | {saved:.0%} |"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.routing.report", description=__doc__)
    parser.add_argument("--replicas", type=int, default=3)
    args = parser.parse_args(argv)
    outcomes = _outcomes(args.replicas)
    print("\n".join(table(args.replicas, outcomes)))
    print("\nThis run (depends on the replicas' addresses):")
    for name, (one, two) in outcomes.items():
        print(
            f"  {name}: conversations per replica {one.sessions_per_replica()} (1 router pod),"
            f" {two.sessions_per_replica()} (2 pods); 2-pod affinity {two.affinity():.0%}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
