"""`python -m ops plan|preflight|verify|sweep --stack NAME`.

Exit codes scripts can rely on: 0 every check passed, 1 a check failed, 2 usage or
configuration error (bad stack file, missing endpoint or API key, no AWS credentials).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from components.settings import SettingsError, from_stack_file
from ops.awsclients import CREDENTIALS_FIX, CredentialsMissing
from ops.report import EXIT_USAGE, UsageError, emit

DEFAULT_STACK = "prod-8gpu"
API_KEY_ENV = "MINIMAX_VLLM_API_KEY"


def _preflight(args: argparse.Namespace) -> int:
    from ops import preflight

    title, checks = preflight.main(from_stack_file(args.stack))
    return emit(title, checks)


def _verify(args: argparse.Namespace) -> int:
    from ops import metrics_check, verify

    target = verify.resolve_target(
        stack=args.stack,
        endpoint=args.endpoint,
        model=args.model,
        api_key=args.api_key or os.environ.get(API_KEY_ENV),
        reasoning_parser=args.reasoning_parser,
    )
    title, checks = verify.main(target, timeout=args.timeout)
    observability = from_stack_file(args.stack).observability
    checks += metrics_check.run(target.endpoint, observability, args.prometheus, args.timeout)
    return emit(title, checks)


def _sweep(args: argparse.Namespace) -> int:
    from ops import sweep

    title, checks = sweep.main(from_stack_file(args.stack), apply=args.apply)
    return emit(title, checks)


def _plan(args: argparse.Namespace) -> int:
    # Imported here: plan runs the Pulumi engine, the other commands must not need it.
    from ops import plan

    return plan.main(args.stack, args.out or f"plan-out/{args.stack}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ops", description="Operate a minimax-vllm stack without the Pulumi engine."
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="{plan,preflight,verify,sweep}")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help_text, description=help_text)
        c.add_argument(
            "--stack", default=DEFAULT_STACK, help=f"stack name: stacks/Pulumi.<stack>.yaml (default {DEFAULT_STACK})"
        )
        return c

    plan = command("plan", "render the stack offline: resource tree, vllm argv, manifests, cost")
    plan.add_argument("--out", help="output folder (default plan-out/<stack>)")
    plan.set_defaults(run=_plan)

    command(
        "preflight",
        "before `pulumi up`: instance offerings, vCPU quota, capacity reservation, EKS version and add-on pins",
    ).set_defaults(run=_preflight)

    verify = command("verify", "after `pulumi up`: the MiniMax serving guides' pass criteria against the live endpoint")
    verify.add_argument(
        "--endpoint",
        help="base URL, e.g. http://my-nlb.elb.us-east-2.amazonaws.com (default: pulumi stack output endpointUrl)",
    )
    verify.add_argument(
        "--model", help="served model name (default: pulumi stack output servedModelName, else the stack file)"
    )
    verify.add_argument(
        "--api-key", help=f"the endpoint's API key (default: ${API_KEY_ENV}, else pulumi stack output apiKey)"
    )
    verify.add_argument(
        "--reasoning-parser",
        choices=("minimax_m2_append_think", "minimax_m2"),
        help="where thinking is expected (default: the stack's serving.reasoningParser)",
    )
    verify.add_argument("--timeout", type=float, default=300.0, help="seconds per request (default 300)")
    verify.add_argument(
        "--prometheus",
        help="in-cluster Prometheus through a port-forward, e.g. http://localhost:9090 "
        "(without it, verify prints the kubectl port-forward command)",
    )
    verify.set_defaults(run=_verify)

    sweep = command(
        "sweep",
        "after an interrupted `pulumi destroy`: delete load balancers, target groups, ENIs and security groups left behind",
    )
    sweep.add_argument("--apply", action="store_true", help="delete (default: dry run, list only)")
    sweep.set_defaults(run=_sweep)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except SettingsError as err:
        print(err, file=sys.stderr)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
    except CredentialsMissing as err:
        print(f"no AWS credentials: {err}\nfix: {CREDENTIALS_FIX}", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
