"""sweep with moto: only this cluster's tagged leftovers go, in dependency order, once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from components.config import from_stack_file
from ops import sweep
from ops.__main__ import main as ops_main

REGION = "us-east-2"
SETTINGS = from_stack_file("prod-8gpu")
CLUSTER = SETTINGS.cluster_name


def tag_spec(kind: str, tags: dict[str, str]) -> list[dict[str, Any]]:
    return [{"ResourceType": kind, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}] if tags else []


def as_tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


CONTROLLER = {"elbv2.k8s.aws/cluster": CLUSTER, "service.k8s.aws/stack": "serving/vllm"}
EKS_OWNED = {f"kubernetes.io/cluster/{CLUSTER}": "owned"}
OURS = {"project": "minimax-vllm", "stack": "prod-8gpu"}
OTHER_CLUSTER = {"elbv2.k8s.aws/cluster": "someone-elses-cluster"}
SHARED = {f"kubernetes.io/cluster/{CLUSTER}": "shared"}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        elbv2 = boto3.client("elbv2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.43.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.43.{i}.0/24", AvailabilityZone=f"{REGION}{z}")["Subnet"][
                "SubnetId"
            ]
            for i, z in enumerate("ab")
        ]

        def group(name: str, tags: dict[str, str]) -> str:
            return ec2.create_security_group(
                GroupName=name, Description=name, VpcId=vpc, TagSpecifications=tag_spec("security-group", tags)
            )["GroupId"]

        ids = {
            "lb_sg": group("k8s-serving-vllm", CONTROLLER),
            "node_sg": group("eks-cluster-sg", EKS_OWNED),
            "own_sg": group("minimax-vllm-extra", OURS),
            "plain_sg": group("untagged", {}),
            "other_sg": group("other-cluster", OTHER_CLUSTER),
            "shared_sg": group("shared", SHARED),
            "half_sg": group("stack-tag-only", {"stack": "prod-8gpu"}),
        }
        # The controller's rule: nodes accept traffic from the NLB's group (a cross-reference).
        ec2.authorize_security_group_ingress(
            GroupId=ids["node_sg"],
            IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": 8000, "ToPort": 8000, "UserIdGroupPairs": [{"GroupId": ids["lb_sg"]}]}
            ],
        )
        ec2.authorize_security_group_ingress(
            GroupId=ids["lb_sg"],
            IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "UserIdGroupPairs": [{"GroupId": ids["node_sg"]}]}
            ],
        )

        def lb(name: str, tags: dict[str, str]) -> str:
            arn = elbv2.create_load_balancer(
                Name=name, Subnets=subnets, Type="network", Tags=as_tags(tags) or [{"Key": "x", "Value": "y"}]
            )["LoadBalancers"][0]["LoadBalancerArn"]
            tg = elbv2.create_target_group(
                Name=f"{name}-tg",
                Protocol="TCP",
                Port=8000,
                VpcId=vpc,
                TargetType="ip",
                Tags=as_tags(tags) or [{"Key": "x", "Value": "y"}],
            )["TargetGroups"][0]["TargetGroupArn"]
            elbv2.create_listener(
                LoadBalancerArn=arn, Protocol="TCP", Port=80, DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}]
            )
            return arn

        ids["lb"] = lb("k8s-serving-vllm", CONTROLLER)
        ids["plain_lb"] = lb("untagged", {})
        ids["other_lb"] = lb("other", OTHER_CLUSTER)

        def eni(tags: dict[str, str]) -> str:
            return ec2.create_network_interface(
                SubnetId=subnets[0], TagSpecifications=tag_spec("network-interface", tags)
            )["NetworkInterface"]["NetworkInterfaceId"]

        ids["cni_eni"] = eni({"cluster.k8s.amazonaws.com/name": CLUSTER})
        ids["plain_eni"] = eni({})
        yield {"ec2": ec2, "elbv2": elbv2, "ids": ids}


def inventory(aws: dict[str, Any]) -> dict[str, set[str]]:
    ec2, elbv2 = aws["ec2"], aws["elbv2"]
    return {
        "lbs": {lb["LoadBalancerName"] for lb in elbv2.describe_load_balancers()["LoadBalancers"]},
        "tgs": {tg["TargetGroupName"] for tg in elbv2.describe_target_groups()["TargetGroups"]},
        "sgs": {sg["GroupId"] for sg in ec2.describe_security_groups()["SecurityGroups"]},
        "enis": {e["NetworkInterfaceId"] for e in ec2.describe_network_interfaces()["NetworkInterfaces"]},
    }


def run(
    aws: dict[str, Any], apply: bool, ec2: Any = None, sleeps: list[float] | None = None, elbv2: Any = None
) -> list[Any]:
    record = sleeps if sleeps is not None else []
    return sweep.run(
        SETTINGS,
        ec2 or aws["ec2"],
        elbv2 or aws["elbv2"],
        boto3.client("eks", region_name=REGION),
        apply=apply,
        sleep=record.append,
    )


def test_dry_run_lists_only_tagged_resources_and_deletes_nothing(aws: dict[str, Any]) -> None:
    before = inventory(aws)
    rows = run(aws, apply=False)
    assert inventory(aws) == before
    named = " ".join(r.name for r in rows if r.detail.startswith("would delete"))
    ids = aws["ids"]
    for mine in (
        "load balancer k8s-serving-vllm",
        "target group k8s-serving-vllm-tg",
        ids["lb_sg"],
        ids["node_sg"],
        ids["own_sg"],
        ids["cni_eni"],
    ):
        assert mine in named
    for theirs in (
        "untagged",
        "other",
        ids["plain_sg"],
        ids["other_sg"],
        ids["shared_sg"],
        ids["half_sg"],
        ids["plain_eni"],
    ):
        assert theirs not in named
    assert not any(r.failed for r in rows)
    assert any(r.name == f"shared {ids['shared_sg']}" for r in rows)


def test_apply_deletes_only_this_clusters_resources(aws: dict[str, Any]) -> None:
    before = inventory(aws)
    ids = aws["ids"]
    rows = run(aws, apply=True)
    assert not [r for r in rows if r.failed], rows
    after = inventory(aws)
    assert before["lbs"] - after["lbs"] == {"k8s-serving-vllm"}
    assert before["tgs"] - after["tgs"] == {"k8s-serving-vllm-tg"}
    assert before["sgs"] - after["sgs"] == {ids["lb_sg"], ids["node_sg"], ids["own_sg"]}
    assert before["enis"] - after["enis"] == {ids["cni_eni"]}
    names = [r.name for r in rows]
    # Dependency order: listeners and load balancers, then target groups, ENIs, rules, groups.
    order = [
        next(i for i, n in enumerate(names) if n.startswith(prefix))
        for prefix in (
            "listener",
            "load balancer",
            "target group",
            "network interface",
            "ingress rules",
            "security group",
        )
    ]
    assert order == sorted(order)


def test_second_apply_is_a_no_op(aws: dict[str, Any]) -> None:
    run(aws, apply=True)
    before = inventory(aws)
    rows = run(aws, apply=True)
    assert inventory(aws) == before
    assert [r.name for r in rows if r.status == "PASS"] == ["leftovers"]
    assert not any(r.failed for r in rows)


class Flaky:
    """A client whose `method` raises `code` `failures` times before behaving normally."""

    def __init__(self, client: Any, method: str, failures: int, code: str = "DependencyViolation"):
        self._client, self._method, self._left, self._code = client, method, failures, code
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._client, name)
        if name != self._method:
            return real

        def flaky(**kwargs: Any) -> Any:
            self.calls += 1
            if self._left > 0:
                self._left -= 1
                raise ClientError({"Error": {"Code": self._code, "Message": "resource has a dependent object"}}, name)
            return real(**kwargs)

        return flaky


def test_dependency_violation_is_retried_with_backoff(aws: dict[str, Any]) -> None:
    flaky = Flaky(aws["ec2"], "delete_security_group", failures=2)
    sleeps: list[float] = []
    rows = run(aws, apply=True, ec2=flaky, sleeps=sleeps)
    assert not [r for r in rows if r.failed]
    assert sleeps[:2] == [5.0, 10.0]
    assert flaky.calls == 3 + 2  # three groups, two retries
    assert aws["ids"]["lb_sg"] not in inventory(aws)["sgs"]


def test_dependency_violation_that_never_clears_fails_after_bounded_retries(aws: dict[str, Any]) -> None:
    flaky = Flaky(aws["ec2"], "delete_security_group", failures=100)
    sleeps: list[float] = []
    rows = run(aws, apply=True, ec2=flaky, sleeps=sleeps)
    groups = [r for r in rows if r.name.startswith("security group")]
    assert len(groups) == 3 and all(r.failed and "after 6 attempts" in r.detail for r in groups)
    assert len(sleeps) == 3 * 5 and max(sleeps) <= 60.0
    assert "describe-network-interfaces" in groups[0].fix


def test_access_denied_listing_load_balancers_fails_that_row_and_still_sweeps_the_rest(aws: dict[str, Any]) -> None:
    denied = Flaky(aws["elbv2"], "describe_load_balancers", failures=1, code="AccessDenied")
    rows = run(aws, apply=True, elbv2=denied)
    assert [r.name for r in rows if r.failed] == ["list load balancers"]
    assert "k8s-serving-vllm" in inventory(aws)["lbs"]
    assert aws["ids"]["cni_eni"] not in inventory(aws)["enis"]


def test_scope_needs_this_clusters_tags() -> None:
    scope = sweep.Scope("c1", "prod-8gpu")
    assert scope.owns({"elbv2.k8s.aws/cluster": "c1"})
    assert scope.owns({"kubernetes.io/cluster/c1": "owned"})
    assert scope.owns({"project": "minimax-vllm", "stack": "prod-8gpu"})
    assert not scope.owns({"kubernetes.io/cluster/c1": "shared"})
    assert not scope.owns({"stack": "prod-8gpu"})
    assert not scope.owns({"project": "minimax-vllm", "stack": "dev"})
    assert not scope.owns({"elbv2.k8s.aws/cluster": "c2"})
    assert not scope.owns({})


def test_cli_dry_run_prints_a_table_and_exits_0(aws: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert ops_main(["sweep", "--stack", "prod-8gpu"]) == 0
    out = capsys.readouterr().out
    assert "sweep (dry run)" in out and "would delete" in out and "--apply" in out
    assert "k8s-serving-vllm" in {
        lb["LoadBalancerName"] for lb in aws["elbv2"].describe_load_balancers()["LoadBalancers"]
    }
