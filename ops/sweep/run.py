"""Delete what an interrupted `pulumi destroy` left behind, and nothing else.

The AWS Load Balancer Controller creates the load balancer, its target groups and security groups
outside Pulumi's state; if the cluster goes before the Service, they stay and block the
VPC's deletion. Sweep plans first, from tags (`ops.sweep.scope`: every ownership tag must
agree), and the plan is the same list of rows in the dry run and with `--apply`. It deletes
only when the stack's EKS cluster is provably gone, never touches a load balancer with
deletion protection (nor its target groups and security groups), and turns every AWS or
network error into a row with the fix for that error (`ops.sweep.errors`). It never deletes
from S3: a weight mirror outlives the stack on purpose (weights.retainOnDestroy), so a stack
with `weights.source: s3` gets a row naming its bucket, what it costs to keep and how to
remove it by hand.
"""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from components.settings.stack import Settings
from components.weights.mirror import bucket_name
from ops import awsclients
from ops.awsclients import CredentialsMissing, Sleep, call, error_code
from ops.report import Check, failed, info, passed
from ops.sweep.errors import AWS_ERRORS, explain
from ops.sweep.network import plan_network
from ops.sweep.plan import LIVE_CLUSTER_OVERRIDE, Sweeper
from ops.sweep.scope import Scope, check_stack_name


def cluster_gate(
    eks: Any, settings: Settings, apply: bool, override: bool, sleep: Sleep
) -> tuple[bool, Check, str | None]:
    """(may delete, row, why the cluster may be live): deleting needs the stack's EKS cluster
    to be provably gone; the override lifts that for its load balancers, never its network."""
    cluster, stack = settings.cluster_name, settings.stack
    finish = f"finish `pulumi destroy --stack {stack}` first (the controller then deletes its load balancer itself)"
    if eks is None:
        detail, fix = "not checked (no EKS client)", finish
    else:
        try:
            status = call(eks.describe_cluster, sleep=sleep, name=cluster)["cluster"].get("status", "ACTIVE")
            detail, fix = f"{cluster} still exists ({status}): its controller may recreate what is deleted", finish
        except ClientError as err:
            if error_code(err) == "ResourceNotFoundException":
                return True, passed("cluster", f"{cluster} does not exist in {settings.region}"), None
            detail, fix = explain(err, "eks:DescribeCluster")
            detail = f"cannot tell whether {cluster} still exists: {detail}"
        except CredentialsMissing:
            raise  # nothing can be checked: the usage error (exit 2) says how to log in
        except AWS_ERRORS as err:
            detail, fix = explain(err, "eks:DescribeCluster")
            detail = f"cannot tell whether {cluster} still exists: {detail}"
    if override:
        return True, info("cluster", f"{detail}; sweeping anyway ({LIVE_CLUSTER_OVERRIDE}), never its network"), detail
    verb = "--apply refuses" if not apply else "refused: nothing deleted"
    more = f"; only if you mean to sweep a cluster that may be live: {LIVE_CLUSTER_OVERRIDE}"
    return False, failed("cluster", f"{detail}; {verb}", fix + more), detail


MIRROR_ROW = "weight mirror"


def mirror_row(settings: Settings, account_id: str | None) -> Check | None:
    """The S3 weight mirror is never swept: say so, and name it, so it is kept knowingly."""
    w = settings.weights
    if w.source != "s3":
        return None
    if w.existing_bucket:
        return info(MIRROR_ROW, f"left alone: s3://{w.existing_bucket} is a shared bucket (weights.existingBucket)")
    name = bucket_name(settings.cluster_name, account_id or "<account-id>", settings.region)
    why = (
        "kept on purpose (weights.retainOnDestroy; refilling takes the Hub's time again)"
        if w.retain_on_destroy
        else "pulumi destroy deletes it (weights.retainOnDestroy false); if it is still there"
    )
    return info(
        MIRROR_ROW,
        f"left alone: s3://{name} {why}; sweep never deletes S3. To remove it on purpose:"
        f" aws s3 rb s3://{name} --force (versioned: delete its object versions first)",
    )


def run(
    settings: Settings,
    ec2: Any,
    elbv2: Any,
    eks: Any = None,
    apply: bool = False,
    sleep: Sleep = time.sleep,
    *,
    live_cluster_override: bool = False,
    include_network: bool = False,
    account_id: str | None = None,
) -> list[Check]:
    """Plan this stack's leftovers; list them (dry run) or delete them (`apply`), same rows either way.

    account_id: names the weight mirror bucket (its name holds the account)."""
    check_stack_name(settings.stack, settings.cluster_name)
    sweeper = Sweeper(Scope(settings.cluster_name, settings.stack), ec2, elbv2, sleep)
    may_delete, gate, live = cluster_gate(eks, settings, apply, live_cluster_override, sleep)
    plan = sweeper.plan()
    if include_network:
        plan_network(sweeper, plan, settings.network.existing_vpc_id, live)
    rows = [gate, *sweeper.rows]
    if kept := mirror_row(settings, account_id):
        rows.append(kept)
    if not plan.steps:
        where = f"{settings.cluster_name} / stack {settings.stack} in {settings.region}"
        return [*rows, passed("leftovers", f"nothing tagged for {where}")]
    deleting = apply and may_delete
    for step in plan.steps:
        if step.row is not None:
            rows.append(step.row)
        elif deleting and step.act is not None:
            rows.append(step.act())
        else:
            rows.append(info(step.name, step.plan))
    if not apply and plan.actions:
        rows.append(info("dry run", "nothing deleted; run again with --apply to delete the rows above"))
    return rows


def main(
    settings: Settings,
    apply: bool = False,
    session: Any = None,
    sleep: Sleep = time.sleep,
    *,
    live_cluster_override: bool = False,
    include_network: bool = False,
) -> tuple[str, list[Check]]:
    check_stack_name(settings.stack, settings.cluster_name)
    try:
        ec2, elbv2, eks, sts = awsclients.clients(settings.region, "ec2", "elbv2", "eks", "sts", session=session)
    except BotoCoreError as err:  # e.g. ProfileNotFound: AWS_PROFILE names no profile
        raise CredentialsMissing(str(err)) from err
    mode = ("apply" if apply else "dry run") + (", with network" if include_network else "")
    title = f"sweep ({mode}): cluster {settings.cluster_name}, stack {settings.stack}, {settings.region}"
    account_id = None
    if settings.weights.source == "s3" and not settings.weights.existing_bucket:
        try:
            account_id = sts.get_caller_identity()["Account"]
        except AWS_ERRORS:
            account_id = None  # the row then shows <account-id>
    rows = run(
        settings,
        ec2,
        elbv2,
        eks,
        apply=apply,
        sleep=sleep,
        live_cluster_override=live_cluster_override,
        include_network=include_network,
        account_id=account_id,
    )
    return title, rows
