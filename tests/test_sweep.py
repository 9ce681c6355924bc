"""sweep against a moto account full of decoys: only what is provably this stack's, and dead, goes."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from moto import mock_aws

from components.settings import stack as settings_module
from ops.__main__ import main as ops_main
from ops.report import UsageError
from ops.sweep import run as sweep
from tests.sweep_world import (
    CLUSTER,
    CONTROLLER,
    EKS_OWNED,
    OTHER_REGION,
    OURS,
    REGION,
    SETTINGS,
    SIBLING,
    SIBLING_TAGS,
    World,
    aws_error,
    tag_spec,
)

pytestmark = pytest.mark.slow  # a mock AWS account: `make test`, not `make test-fast`


def build(w: World) -> dict[str, str]:
    """This stack's leftovers beside a sibling stack, lookalikes, conflicts, shared and protected things."""
    ids = w.ids
    ec2 = w.raw_ec2
    ids["vpc"] = vpc = w.vpc("10.42.0.0/16", {**OURS, "Name": f"{CLUSTER}-vpc"})
    subnets = [w.subnet(vpc, f"10.42.{i}.0/24", z, {**OURS}) for i, z in enumerate("ab")]
    ids["lb_sg"] = w.group(vpc, "k8s-minimaxv-vllm", CONTROLLER)
    ids["node_sg"] = w.group(vpc, "eks-node", {**OURS, **EKS_OWNED})
    ids["own_sg"] = w.group(vpc, "minimax-vllm-extra", OURS)
    # The controller's rules: nodes accept the NLB's traffic, and a rule back (a cross-reference).
    for holder, source in (("node_sg", "lb_sg"), ("lb_sg", "node_sg")):
        ec2.authorize_security_group_ingress(
            GroupId=ids[holder],
            IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": 8000, "ToPort": 8000, "UserIdGroupPairs": [{"GroupId": ids[source]}]}
            ],
        )
    ids["lb"] = w.nlb("k8s-minimaxv-vllm", vpc, subnets, CONTROLLER, [ids["lb_sg"]])
    # A second load balancer of this cluster someone protected: it, its listener, target group and group stay.
    ids["keep_sg"] = w.group(vpc, "k8s-minimaxv-keep", CONTROLLER)
    ids["keep_lb"] = w.nlb("k8s-minimaxv-keep", vpc, subnets, CONTROLLER, [ids["keep_sg"]], protected=True)
    ids["cni_eni"] = w.eni(subnets[0], {"cluster.k8s.amazonaws.com/name": CLUSTER})
    ids["attached_eni"] = w.eni(subnets[1], {"cluster.k8s.amazonaws.com/name": CLUSTER})
    w.attached[ids["attached_eni"]] = "i-0123456789abcdef0"  # a node still terminating
    decoys = {
        "sibling_sg": {"elbv2.k8s.aws/cluster": SIBLING, **SIBLING_TAGS},
        "lookalike_suffix": {"elbv2.k8s.aws/cluster": f"{CLUSTER}-2"},
        "lookalike_case": {"elbv2.k8s.aws/cluster": CLUSTER.capitalize()},
        "lookalike_space": {"elbv2.k8s.aws/cluster": f"{CLUSTER} "},
        "lookalike_k8s": {f"kubernetes.io/cluster/{CLUSTER}-old": "owned"},
        "half": {"stack": "prod-8gpu"},
        "untagged": {},
        "shared": {f"kubernetes.io/cluster/{CLUSTER}": "shared"},
        # Conflicts: one tag says ours, another names someone else. Reported, never deleted.
        "shared_and_controller": {f"kubernetes.io/cluster/{CLUSTER}": "shared", "elbv2.k8s.aws/cluster": CLUSTER},
        "ours_other_controller": {**OURS, "elbv2.k8s.aws/cluster": "someone-elses-cluster"},
        "ours_other_owned": {**OURS, "kubernetes.io/cluster/someone-elses-cluster": "owned"},
        "controller_sibling_stack": {"elbv2.k8s.aws/cluster": CLUSTER, **SIBLING_TAGS},
        "controller_other_project": {"elbv2.k8s.aws/cluster": CLUSTER, "project": "other", "stack": "prod-8gpu"},
        "service_tag_without_cluster": {**OURS, "service.k8s.aws/stack": "minimax-vllm/vllm"},
    }
    for key, tags in decoys.items():
        ids[key] = w.group(vpc, key, tags)
    ids["sibling_lb"] = w.nlb("k8s-sibling-vllm", vpc, subnets, {"elbv2.k8s.aws/cluster": SIBLING, **SIBLING_TAGS})
    ids["plain_eni"] = w.eni(subnets[0], {})
    # Name collisions: a VPC named like ours and a group named like ours elsewhere, untagged.
    other_vpc = w.vpc("10.50.0.0/16", {"Name": f"{CLUSTER}-vpc"})
    ids["same_name_sg"] = w.group(other_vpc, "k8s-minimaxv-vllm", {})
    return ids


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")  # ~10,000 AMIs and volumes per region otherwise
    with mock_aws():
        w = World(boto3.client)
        build(w)
        # The same leftovers in another region: never this sweep's business.
        far = boto3.client("ec2", region_name=OTHER_REGION)
        far_vpc = far.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
        far.create_security_group(
            GroupName="k8s-minimaxv-vllm",
            Description="x",
            VpcId=far_vpc,
            TagSpecifications=tag_spec("security-group", CONTROLLER),
        )
        yield w


def run(w: World, apply: bool, **kwargs: Any) -> list[Any]:
    sleeps = kwargs.pop("sleeps", [])
    return sweep.run(
        kwargs.pop("settings", SETTINGS),
        kwargs.pop("ec2", w.ec2),
        kwargs.pop("elbv2", w.elbv2),
        kwargs.pop("eks", w.eks),
        apply=apply,
        sleep=sleeps.append,
        **kwargs,
    )


def by_name(rows: list[Any]) -> dict[str, Any]:
    return {r.name: r for r in rows}


def deleted(before: dict[str, set[str]], after: dict[str, set[str]]) -> dict[str, set[str]]:
    return {k: before[k] - after[k] for k in before if before[k] - after[k]}


def live_cluster(w: World) -> None:
    w.eks.create_cluster(
        name=CLUSTER,
        roleArn="arn:aws:iam::123456789012:role/eks",
        resourcesVpcConfig={"subnetIds": [], "securityGroupIds": []},
    )


def failing_eks(error: Exception) -> Any:
    """A real EKS client whose DescribeCluster always raises `error`."""
    eks = boto3.client("eks", region_name=REGION)

    def describe_cluster(**_: Any) -> Any:
        raise error

    eks.describe_cluster = describe_cluster
    return eks


# --- the cluster gate and the stack name ------------------------------------------------------


def test_apply_deletes_nothing_while_the_cluster_exists_or_cannot_be_checked(world: World) -> None:
    live_cluster(world)
    before = world.inventory()
    gate = by_name(run(world, apply=True))["cluster"]
    assert gate.failed and "still exists" in gate.detail and "pulumi destroy --stack prod-8gpu" in gate.fix
    assert "--i-know-the-cluster-may-be-live" in gate.fix
    world.eks.delete_cluster(name=CLUSTER)
    for error, fix_says in (
        (aws_error("AccessDeniedException", "DescribeCluster"), "grant eks:DescribeCluster"),
        (EndpointConnectionError(endpoint_url=f"https://eks.{REGION}.amazonaws.com/"), "network access"),
        (ReadTimeoutError(endpoint_url=f"https://eks.{REGION}.amazonaws.com/"), "run sweep again"),
        (aws_error("ThrottlingException", "DescribeCluster"), "wait a few minutes"),
    ):
        gate = by_name(run(world, apply=True, eks=failing_eks(error)))["cluster"]
        assert gate.failed and "cannot tell whether" in gate.detail and fix_says in gate.fix, gate
    assert world.inventory() == before and world.calls == []


def test_unreachable_endpoints_are_rows_even_in_a_dry_run(world: World) -> None:
    def unreachable() -> Exception:
        return EndpointConnectionError(endpoint_url=f"https://ec2.{REGION}.amazonaws.com/")

    for method in (
        "describe_load_balancers",
        "describe_target_groups",
        "describe_security_groups",
        "describe_network_interfaces",
    ):
        world.fail[method] = unreachable
    rows = run(world, apply=False, eks=failing_eks(unreachable()))
    failed = [r for r in rows if r.failed]
    assert [r.name for r in failed] == [
        "cluster",
        "list load balancers",
        "list target groups",
        "list security groups",
        "list network interfaces",
    ]
    assert all("cannot reach" in r.detail and "network access" in r.fix for r in failed)


def test_the_loud_override_sweeps_a_live_cluster(world: World) -> None:
    live_cluster(world)
    rows = run(world, apply=True, live_cluster_override=True)
    assert "sweeping anyway (--i-know-the-cluster-may-be-live)" in by_name(rows)["cluster"].detail
    assert "k8s-minimaxv-vllm" not in world.inventory()["lbs"]


def test_sweep_needs_an_explicit_stack_that_maps_to_its_own_cluster(
    world: World, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = world.inventory()
    for argv in (["sweep", "--apply"], ["sweep"]):
        with pytest.raises(SystemExit) as exit_:
            ops_main(argv)
        assert exit_.value.code == 2
    assert "--stack" in capsys.readouterr().err
    # `prod_8gpu` maps to cluster minimax-vllm-prod-8gpu too: it must not sweep prod-8gpu's load balancer.
    shutil.copy(settings_module.STACKS_DIR / "Pulumi.prod-8gpu.yaml", tmp_path / "Pulumi.prod_8gpu.yaml")
    monkeypatch.setattr(settings_module, "STACKS_DIR", tmp_path)
    assert ops_main(["sweep", "--stack", "prod_8gpu", "--apply"]) == 2
    with pytest.raises(UsageError, match="letters, digits and hyphens"):
        run(world, apply=True, settings=dataclasses.replace(SETTINGS, stack="prod.8gpu"))
    assert world.inventory() == before


# --- ownership -----------------------------------------------------------------------------


def test_apply_deletes_exactly_this_stacks_dead_resources(world: World) -> None:
    ids = world.ids
    before = world.inventory()
    rows = run(world, apply=True)
    gone = deleted(before, world.inventory())
    nlb_enis = {e for e in before["enis"] if e not in world.inventory()["enis"]} - {ids["cni_eni"]}
    assert gone == {
        "lbs": {"k8s-minimaxv-vllm"},
        "listeners": gone["listeners"],
        "tgs": {"k8s-minimaxv-vllm-tg"},
        "sgs": {ids["lb_sg"], ids["node_sg"], ids["own_sg"]},
        "rules": {f"{ids['node_sg']}:{ids['lb_sg']}", f"{ids['lb_sg']}:{ids['node_sg']}"},
        "enis": {ids["cni_eni"], *nlb_enis},
    }
    assert len(gone["listeners"]) == 1 and len(nlb_enis) == 2  # the serving NLB's own
    failures = {r.name for r in rows if r.failed}
    conflicts = (
        "ours_other_controller",
        "ours_other_owned",
        "controller_sibling_stack",
        "controller_other_project",
        "service_tag_without_cluster",
    )
    assert {n for n in failures if n.startswith("security group")} == {
        *(f"security group {ids[k]} ({k})" for k in conflicts),
        f"security group {ids['keep_sg']} (k8s-minimaxv-keep)",
    }
    rows_by_name = by_name(rows)
    for key in ("shared", "shared_and_controller"):
        row = rows_by_name[f"security group {ids[key]} ({key})"]
        assert row.status == "INFO" and "shared" in row.detail
    for key in (
        "sibling_sg",
        "lookalike_suffix",
        "lookalike_case",
        "lookalike_space",
        "lookalike_k8s",
        "half",
        "untagged",
    ):
        assert f"security group {ids[key]} ({key})" not in rows_by_name  # not ours: not even reported
    # The protected load balancer keeps its listener, target group and group; none was touched.
    after = world.inventory()
    assert (
        "k8s-minimaxv-keep" in after["lbs"]
        and "k8s-minimaxv-keep-tg" in after["tgs"]
        and ids["keep_sg"] in after["sgs"]
    )
    assert len(world.raw_elbv2.describe_listeners(LoadBalancerArn=ids["keep_lb"])["Listeners"]) == 1
    assert [kw for _, kw in world.calls if ids["keep_lb"] in str(kw) or ids["keep_sg"] in str(kw)] == []
    far = boto3.client("ec2", region_name=OTHER_REGION)
    assert (
        len(
            far.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["k8s-minimaxv-vllm"]}])[
                "SecurityGroups"
            ]
        )
        == 1
    )


@pytest.mark.parametrize(
    ("tags", "kind"),
    [
        ({"elbv2.k8s.aws/cluster": "c1"}, "ours"),
        ({"kubernetes.io/cluster/c1": "owned"}, "ours"),
        (
            {
                "project": "minimax-vllm",
                "stack": "s1",
                "elbv2.k8s.aws/cluster": "c1",
                "service.k8s.aws/stack": "ns/svc",
            },
            "ours",
        ),
        ({"kubernetes.io/cluster/c1": "shared"}, "shared"),
        ({"kubernetes.io/cluster/c1": "shared", "elbv2.k8s.aws/cluster": "c1"}, "shared"),
        ({"kubernetes.io/cluster/c2": "shared", "project": "minimax-vllm", "stack": "s1"}, "shared"),
        ({"project": "minimax-vllm", "stack": "s1", "elbv2.k8s.aws/cluster": "c2"}, "conflict"),
        ({"project": "minimax-vllm", "stack": "s1", "kubernetes.io/cluster/c2": "owned"}, "conflict"),
        ({"elbv2.k8s.aws/cluster": "c1", "project": "minimax-vllm", "stack": "s2"}, "conflict"),
        ({"elbv2.k8s.aws/cluster": "c1", "project": "minimax-vllm"}, "conflict"),
        ({"elbv2.k8s.aws/cluster": "c1", "cluster.k8s.amazonaws.com/name": "c2"}, "conflict"),
        ({"kubernetes.io/cluster/c1": "owned", "kubernetes.io/cluster/c1-old": "owned"}, "conflict"),
        ({"project": "minimax-vllm", "stack": "s1", "ingress.k8s.aws/stack": "group"}, "conflict"),
        ({"kubernetes.io/cluster/c1": "1"}, "foreign"),
        ({"elbv2.k8s.aws/cluster": "c1-2"}, "foreign"),
        ({"elbv2.k8s.aws/cluster": "C1"}, "foreign"),
        ({"stack": "s1"}, "foreign"),
        ({"project": "minimax-vllm", "stack": "s12"}, "foreign"),
        ({}, "foreign"),
    ],
)
def test_every_ownership_tag_must_agree(tags: dict[str, str], kind: str) -> None:
    assert sweep.Scope("c1", "s1").judge(tags).kind == kind
    assert sweep.Scope("c1", "s1").owns(tags) == (kind == "ours")


# --- dry-run parity, deletion protection, in-use ENIs ------------------------------------------------


def test_dry_run_and_apply_list_the_same_actions(world: World) -> None:
    before = world.inventory()
    dry = run(world, apply=False)
    assert world.inventory() == before and world.calls == []
    applied = run(world, apply=True)
    assert [r.name for r in dry if r.name != "dry run"] == [r.name for r in applied]
    planned = {r.name for r in dry if r.detail.startswith("would ")}
    done = {r.name for r in applied if r.status == "PASS" and r.name != "cluster"}
    assert planned == done
    for a, b in zip([r for r in dry if r.name != "dry run"], applied, strict=True):
        if not a.detail.startswith("would "):
            assert a == b, (a, b)  # findings read the same in both modes
    rows = by_name(dry)
    attached = rows[f"network interface {world.ids['attached_eni']}"]
    assert attached.failed and "attached to i-" in attached.detail and "would" not in attached.detail
    protected = rows["load balancer k8s-minimaxv-keep"]
    assert protected.failed and "deletion protection is on" in protected.detail
    assert "deletion_protection.enabled,Value=false" in protected.fix
    # A second apply finds nothing more to do.
    after, calls = world.inventory(), len(world.calls)
    again = run(world, apply=True)
    assert world.inventory() == after and len(world.calls) == calls
    assert [r.name for r in again if r.status == "PASS"] == ["cluster"]


# --- errors become rows with the fix for their code --------------------------------------------

ERROR_CASES = [
    # (method, code, row, the fix must say, the fix must not say)
    [
        (
            "delete_load_balancer",
            "AccessDenied",
            "load balancer k8s-minimaxv-vllm",
            "grant elasticloadbalancing:DeleteLoadBalancer",
            "deletion_protection",
        ),
        (
            "delete_security_group",
            "UnauthorizedOperation",
            "security group {own_sg} (minimax-vllm-extra)",
            "grant ec2:DeleteSecurityGroup",
            "still used",
        ),
        ("delete_network_interface", "ExpiredToken", "network interface {cni_eni}", "aws sso login", "grant"),
        ("describe_target_groups", "RequestLimitExceeded", "list target groups", "wait a few minutes", "grant"),
    ],
    [
        (
            "delete_load_balancer",
            "OperationNotPermitted",
            "load balancer k8s-minimaxv-vllm",
            "deletion_protection.enabled,Value=false",
            "grant",
        ),
        ("delete_target_group", "AccessDenied", "target group k8s-sibling-vllm-tg", "", ""),  # never reached: not ours
        ("describe_security_groups", "Throttling", "list security groups", "wait a few minutes", "grant"),
    ],
    [
        (
            "describe_load_balancer_attributes",
            "AccessDenied",
            "load balancer k8s-minimaxv-vllm",
            "grant elasticloadbalancing:DescribeLoadBalancerAttributes",
            "wait",
        ),
        ("delete_network_interface", "AuthFailure", "network interface {cni_eni}", "aws configure", "grant"),
    ],
]


@pytest.mark.parametrize(
    "cases", ERROR_CASES, ids=["denied-expired-throttled", "protected-throttled", "attributes-denied"]
)
def test_each_error_code_gets_its_own_fix(world: World, cases: list[tuple[str, str, str, str, str]]) -> None:
    for method, code, *_ in cases:
        world.fail[method] = aws_error(code, method)
    rows = by_name(run(world, apply=True))
    for _method, code, row, must, must_not in cases:
        if not must:
            assert row not in rows
            continue
        failed = rows[row.format(**world.ids)]
        assert failed.failed and (code in failed.detail or "throttled by AWS after 4 attempts" in failed.detail), failed
        assert must in failed.fix and must_not not in failed.fix, failed


def test_what_still_uses_a_group_is_named_in_both_modes(world: World) -> None:
    subnet = world.raw_ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [world.ids["vpc"]]}])["Subnets"][0][
        "SubnetId"
    ]
    holder = world.eni(subnet, {}, [world.ids["own_sg"]], "someone else's ENI")
    name = f"security group {world.ids['own_sg']} (minimax-vllm-extra)"
    for apply in (False, True):
        row = by_name(run(world, apply=apply))[name]
        assert row.failed and holder in row.detail
    assert ("delete_security_group", {"GroupId": world.ids["own_sg"]}) not in world.calls
    # An ENI that appears after planning meets DependencyViolation: the fix names it.
    sweeper = sweep.Sweeper(sweep.Scope(CLUSTER, "prod-8gpu"), world.ec2, world.elbv2, sleep=lambda _: None)
    row = sweeper.delete(
        name,
        "ec2",
        "delete_security_group",
        in_use_by=lambda: sweeper.enis_using("group-id", world.ids["own_sg"]),
        GroupId=world.ids["own_sg"],
    )
    assert row.failed and "DependencyViolation" in row.detail and "after 6 attempts" in row.detail
    assert holder in row.fix and "someone else's ENI" in row.fix


def test_in_use_errors_are_retried_with_bounded_backoff(world: World) -> None:
    class Busy:
        def __init__(self, failures: int):
            self.left, self.calls = failures, 0

        def __call__(self) -> Exception:
            self.calls += 1
            if self.left:
                self.left -= 1
                return aws_error("DependencyViolation", "DeleteSecurityGroup")
            del world.fail["delete_security_group"]
            return aws_error("InvalidGroup.NotFound", "DeleteSecurityGroup")  # gone meanwhile: a pass

    world.fail["delete_security_group"] = Busy(2)
    sleeps: list[float] = []
    rows = run(world, apply=True, sleeps=sleeps)
    assert [s for s in sleeps if s in (5.0, 10.0)][:2] == [5.0, 10.0]
    assert not [
        r for r in rows if r.name.startswith("security group") and r.failed and "DependencyViolation" in r.detail
    ]
    world.fail["delete_security_group"] = aws_error("DependencyViolation", "DeleteSecurityGroup")
    sleeps.clear()
    world.ids["again"] = world.group(world.ids["vpc"], "again", OURS)
    row = by_name(run(world, apply=True, sleeps=sleeps))[f"security group {world.ids['again']} (again)"]
    assert row.failed and "after 6 attempts" in row.detail
    assert sleeps[:5] == [5.0, 10.0, 20.0, 40.0, 60.0] and max(sleeps) <= 60.0  # per group, bounded


def test_cli_dry_run_prints_a_table_and_exits_1_for_findings(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    assert ops_main(["sweep", "--stack", "prod-8gpu"]) == 1  # the protected NLB and the conflicts need a person
    out = capsys.readouterr().out
    assert "sweep (dry run)" in out and "would delete" in out and "--apply" in out
    assert "k8s-minimaxv-vllm" in world.inventory()["lbs"]


def test_no_credentials_is_a_usage_error_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert ops_main(["sweep", "--stack", "prod-8gpu"]) == 2
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    assert ops_main(["sweep", "--stack", "prod-8gpu", "--apply"]) == 2
    err = capsys.readouterr().err
    assert err.count("no AWS credentials") == 2 and "aws configure" in err and "Traceback" not in err


# --- the S3 weight mirror --------------------------------------------------------------------------


def test_the_weight_mirror_is_reported_and_never_deleted(world: World) -> None:
    from components.settings.weights import WeightsSettings
    from components.weights.mirror import bucket_name

    assert SETTINGS.weights.source == "s3"  # prod-8gpu keeps a mirror
    s3 = boto3.client("s3", region_name=REGION)
    name = bucket_name(CLUSTER, "123456789012", REGION)
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket=name, Key="MiniMaxAI/MiniMax-M2.5/x/config.json", Body=b"{}")
    for settings in (
        SETTINGS,
        dataclasses.replace(SETTINGS, weights=WeightsSettings(source="s3", retain_on_destroy=False)),
    ):
        row = by_name(run(world, apply=True, settings=settings, account_id="123456789012"))[sweep.MIRROR_ROW]
        assert row.status == "INFO" and f"s3://{name}" in row.detail and "never deletes S3" in row.detail
        assert f"aws s3 rb s3://{name} --force" in row.detail
    assert s3.list_objects_v2(Bucket=name)["KeyCount"] == 1
    shared = dataclasses.replace(SETTINGS, weights=WeightsSettings(source="s3", existing_bucket="team-weights"))
    assert "shared bucket" in by_name(run(world, apply=False, settings=shared))[sweep.MIRROR_ROW].detail
    hub = dataclasses.replace(SETTINGS, weights=WeightsSettings())
    assert sweep.MIRROR_ROW not in by_name(run(world, apply=False, settings=hub))
