"""`python -m ops plan|preflight|verify|sweep|image|capacity --stack NAME`.

Exit codes scripts can rely on: 0 every check passed, 1 a check failed, 2 usage or
configuration error (bad stack file, missing endpoint or API key, no AWS credentials).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from components.platform.config import from_stack_file
from components.settings.stack import PROJECT, SettingsError
from ops import awsclients
from ops.awsclients import CREDENTIALS_FIX, CredentialsMissing
from ops.report import EXIT_USAGE, UsageError, emit

DEFAULT_STACK = "prod-8gpu"
API_KEY_ENV = "MINIMAX_VLLM_API_KEY"


def _preflight(args: argparse.Namespace) -> int:
    from components.settings.capacity_block import CapacityBlockSettings
    from ops import preflight

    settings = from_stack_file(args.stack)
    chosen = settings.capacity_block  # the stack's `capacityBlock` section; flags override it
    try:
        window = CapacityBlockSettings(
            min_window_hours=chosen.min_window_hours if args.min_window_hours is None else args.min_window_hours,
            ending_soon_hours=chosen.ending_soon_hours if args.ending_soon_hours is None else args.ending_soon_hours,
        )
    except ValueError as err:  # pydantic's ValidationError: the message names the field and its bounds
        raise UsageError(f"--min-window-hours / --ending-soon-hours: {err}") from None
    session = awsclients.stack_session(settings.aws_profile, settings.aws_role_arn)
    title, checks = preflight.main(settings, session, window=window, record=args.record_digest)
    return emit(title, checks)


def _image_copy(args: argparse.Namespace) -> int:
    from ops.image import registry_steps

    settings = from_stack_file(args.stack)
    account = args.account_id
    if not account:
        session = awsclients.stack_session(settings.aws_profile, settings.aws_role_arn)
        (sts,) = awsclients.clients(settings.region, "sts", session=session)
        account = awsclients.call_checked(sts.get_caller_identity)["Account"]
    chosen = registry_steps.steps(settings, account, registry_steps.copy_tool())
    print(registry_steps.render(chosen))
    return registry_steps.run(chosen) if args.perform else 0


def _capacity_find(args: argparse.Namespace) -> int:
    from ops.capacity import cli as capacity_cli

    return capacity_cli.find(args)


def _capacity_use(args: argparse.Namespace) -> int:
    from ops.capacity import cli as capacity_cli

    return capacity_cli.use(args)


def _verify(args: argparse.Namespace) -> int:
    import secrets

    from ops import verify
    from ops.endpoint_checks import affinity
    from ops.endpoint_checks import incluster as verify_incluster
    from ops.endpoint_checks import metrics as metrics_check

    target = verify.resolve_target(
        stack=args.stack,
        endpoint=args.endpoint,
        model=args.model,
        api_key=args.api_key or os.environ.get(API_KEY_ENV),
        reasoning_parser=args.reasoning_parser,
    )
    title, checks = verify.main(target, timeout=args.timeout)
    name = f"{verify_incluster.NAME}-{secrets.token_hex(3)}"
    checks.append(verify_incluster.run(args.kubeconfig or os.environ.get("KUBECONFIG"), target.model, name))
    settings = from_stack_file(args.stack)
    post = affinity.post_through(target.endpoint, target.api_key, target.model, args.timeout)
    kubeconfig = args.kubeconfig or os.environ.get("KUBECONFIG")
    checks.append(affinity.run(kubeconfig, settings.routing_mode, post, settings.routing.session_header))
    checks += metrics_check.run(target.endpoint, settings.observability, args.prometheus, args.timeout)
    return emit(title, checks)


def _sweep(args: argparse.Namespace) -> int:
    from ops.sweep import run as sweep

    settings = from_stack_file(args.stack)
    title, checks = sweep.main(
        settings,
        apply=args.apply,
        session=awsclients.stack_session(settings.aws_profile, settings.aws_role_arn),
        live_cluster_override=args.i_know_the_cluster_may_be_live,
        include_network=args.include_network,
    )
    return emit(title, checks)


def _plan(args: argparse.Namespace) -> int:
    # Imported here: plan runs the Pulumi engine, the other commands must not need it.
    from ops import plan

    if args.base or args.set or args.base_set:
        from ops import upgrade

        return upgrade.main(args.stack, args.base, args.set, args.base_set, args.accept_replacement)
    return plan.main(args.stack, args.out or f"plan-out/{args.stack}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ops", description="Operate a minimax-vllm stack without the Pulumi engine."
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="{plan,preflight,verify,sweep,image,capacity}")

    def command(name: str, help_text: str, default_stack: bool = True) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help_text, description=help_text)
        if default_stack:
            c.add_argument(
                "--stack",
                default=DEFAULT_STACK,
                help=f"stack name: stacks/Pulumi.<stack>.yaml (default {DEFAULT_STACK})",
            )
        else:
            c.add_argument("--stack", required=True, help="stack name: stacks/Pulumi.<stack>.yaml (required)")
        return c

    plan = command("plan", "render the stack offline: resource tree, vllm argv, manifests, cost")
    plan.add_argument("--out", help="output folder (default plan-out/<stack>)")
    plan.add_argument(
        "--base", help="preview the upgrade from this git ref: each resource created, updated, replaced or deleted"
    )
    plan.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="a settings change to preview against the stack as it is (repeatable), e.g. gpuNodes.instanceType=p5e.48xlarge",
    )
    plan.add_argument(
        "--base-set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="the same, applied to the base"
    )
    plan.add_argument(
        "--accept-replacement",
        action="store_true",
        help="proceed although the preview replaces the GPU node group delete-first or a subnet (a cold-start outage)",
    )
    plan.set_defaults(run=_plan)

    preflight = command(
        "preflight",
        "before `pulumi up`: instance offerings, vCPU quota, capacity reservation, EKS version and add-on pins,"
        " the vLLM image's digest",
    )
    preflight.add_argument(
        "--min-window-hours",
        type=int,
        default=None,
        help="fail when a Capacity Block leaves fewer hours than this (default: capacityBlock.minWindowHours, 24)",
    )
    preflight.add_argument(
        "--ending-soon-hours",
        type=int,
        default=None,
        help="report an active Capacity Block ending within this many hours (default: capacityBlock.endingSoonHours, 48)",
    )
    preflight.add_argument(
        "--record-digest",
        action="store_true",
        help="write the digest the registry serves for the image tag into components/facts/versions.py",
    )
    preflight.set_defaults(run=_preflight)

    verify = command("verify", "after `pulumi up`: the MiniMax serving guides' pass criteria against the live endpoint")
    verify.add_argument(
        "--endpoint",
        help="base URL, e.g. https://<alb-dns-name> (default: pulumi stack output endpointUrl)",
    )
    verify.add_argument(
        "--model", help="served model name (default: pulumi stack output servedModelName, else the stack file)"
    )
    verify.add_argument(
        "--api-key", help=f"the endpoint's API key (default: ${API_KEY_ENV}, else `pulumi config get {PROJECT}:apiKey`)"
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
    verify.add_argument(
        "--kubeconfig",
        help="the cluster's kubeconfig (default: $KUBECONFIG): a short-lived pod in another namespace then asks"
        " vLLM for /invocations, /tokenize and /metrics without a key and expects no connection; with the router,"
        " its pods' metrics show whether two turns of one conversation reached one replica",
    )
    verify.set_defaults(run=_verify)

    # No default stack: a bare `sweep --apply` must never pick one (it used to be production).
    sweep = command(
        "sweep",
        "after an interrupted `pulumi destroy`: delete load balancers, target groups, ENIs and security groups left behind",
        default_stack=False,
    )
    sweep.add_argument("--apply", action="store_true", help="delete (default: dry run, list only)")
    sweep.add_argument(
        "--include-network",
        action="store_true",
        help="also this stack's VPC, NAT gateways, Elastic IPs, internet gateway, subnets and route tables "
        "(only when Pulumi's state of them is lost; what a kept machine routes through stays)",
    )
    sweep.add_argument(
        "--i-know-the-cluster-may-be-live",
        action="store_true",
        help="let --apply delete although the stack's EKS cluster exists or cannot be checked "
        "(its controller may recreate or still use what is deleted); never its network",
    )
    sweep.set_defaults(run=_sweep)
    image = sub.add_parser(
        "image",
        help="before `pulumi up`: put the stack's images into its own ECR repositories",
        description="The pods pull only from the stack's ECR repositories: `copy` prints (and with --run performs)"
        " the copy of the pinned vLLM image, the stager image's build and, with the router in the path, the"
        " router image's build.",
    )
    image_verbs = image.add_subparsers(dest="verb", required=True, metavar="{copy}")
    copy = image_verbs.add_parser("copy", help="the steps that put the stack's images in place")
    copy.add_argument(
        "--stack", default=DEFAULT_STACK, help=f"stack name: stacks/Pulumi.<stack>.yaml (default {DEFAULT_STACK})"
    )
    copy.add_argument(
        "--account-id", help="the AWS account (default: the stack's credentials, sts get-caller-identity)"
    )
    copy.add_argument(
        "--run", dest="perform", action="store_true", help="perform the copy and the build (default: print only)"
    )
    copy.set_defaults(run=_image_copy)
    _capacity_parser(sub, command)
    return p


def _capacity_parser(sub: Any, command: Any) -> None:
    """`capacity find` and `capacity use`: Capacity Blocks for ML, before `pulumi up`."""
    capacity = sub.add_parser(
        "capacity",
        help="before `pulumi up`: find a Capacity Block for the GPU nodes, then point the stack at it",
        description="Capacity Blocks for ML: `find` lists offerings across regions, `use` prints how to buy one and configure the stack.",
    )
    verbs = capacity.add_subparsers(dest="verb", required=True, metavar="{find,use}")

    def verb(name: str, help_text: str) -> argparse.ArgumentParser:
        c = verbs.add_parser(name, help=help_text, description=help_text)
        c.add_argument(
            "--stack", default=DEFAULT_STACK, help=f"stack name: stacks/Pulumi.<stack>.yaml (default {DEFAULT_STACK})"
        )
        return c

    find = verb("find", "Capacity Block offerings across regions, sorted by start date and total price")
    find.add_argument("--instance-type", help="default: the stack's gpuNodes.instanceType")
    find.add_argument("--count", type=int, help="instances in the block (default: the stack's gpuNodes.desiredSize)")
    find.add_argument(
        "--hours", type=int, default=24, help="block duration: 24-336 in days, then whole weeks (default 24)"
    )
    find.add_argument("--start", help="earliest start, e.g. 2026-12-01 or 2026-12-01T08:00 (UTC)")
    find.add_argument("--end", help="latest end, same format (UTC)")
    find.add_argument(
        "--regions", help="comma-separated regions (default: every enabled region that offers the instance type)"
    )
    find.add_argument("--save", default="plan-out/capacity-offerings.json", help="where `use` finds the offerings")
    find.set_defaults(run=_capacity_find)

    use = verb("use", "print the purchase command and the `pulumi config set` commands for one offering")
    use.add_argument("offering_id", help="an OFFERING id from `capacity find`")
    use.add_argument("--offerings", default="plan-out/capacity-offerings.json", help="saved by `capacity find`")
    use.add_argument("--reservation-id", help="the block's capacity reservation id (cr-...), once bought")
    use.add_argument("--region", help="with --zone and --count: an offering not saved by `capacity find`")
    use.add_argument("--zone", help="the offering's availability zone")
    use.add_argument("--count", type=int, help="the offering's instance count")
    use.add_argument(
        "--purchase", action="store_true", help="buy it, after typing the offering id back (default: print only)"
    )
    use.set_defaults(run=_capacity_use)


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
