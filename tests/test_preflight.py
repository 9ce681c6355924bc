"""preflight: moto for instance offerings, botocore Stubber where moto lacks the API."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

import ops
from components.facts import versions
from components.platform.config import parse
from components.settings.stack import Settings
from ops import awsclients, preflight
from ops.__main__ import main as ops_main

pytestmark = pytest.mark.slow  # a mock AWS account: `make test`, not `make test-fast`

UTC = dt.UTC


@pytest.fixture(autouse=True)
def fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def make_settings(region: str = "us-east-2", **gpu: Any) -> Settings:
    """A stack whose zones are recorded (tests/test_network_layout.py covers the recording)."""
    gpu.setdefault("availabilityZones", [f"{region}a"])
    nodes = {"instanceType": "p5.48xlarge", "minSize": 1, "desiredSize": 1, "maxSize": 2, **gpu}
    zones = sorted({f"{region}a", f"{region}b", *gpu["availabilityZones"]})
    network = {"availabilityZones": zones, "subnetLayout": "byZone"}
    return parse({"owner": "ml-platform", "gpuNodes": nodes, "network": network}, "test", region)


def block_settings(zone: str = "us-east-2a") -> Settings:
    return make_settings(
        capacityType="CAPACITY_BLOCK", capacityReservationId="cr-0123456789abcdef0", availabilityZones=[zone]
    )


def first_up_mirror_clients(region: str = "us-east-2", identity_calls: int = 1) -> dict[str, Any]:
    """S3 and STS for a stack whose weight mirror does not exist yet (its first `pulumi up`); KMS
    answers nothing, as a mirror that does not exist has no signing key to look up."""
    sts, s3 = boto3.client("sts", region_name=region), boto3.client("s3", region_name=region)
    kms = boto3.client("kms", region_name=region)
    sts_stub, s3_stub = Stubber(sts), Stubber(s3)
    Stubber(kms).activate()
    for _ in range(identity_calls):
        sts_stub.add_response(
            "get_caller_identity",
            {
                "Account": "123456789012",
                "Arn": "arn:aws:iam::123456789012:user/deployer",
                "UserId": "AIDAEXAMPLEDEPLOYER",
            },
        )
    s3_stub.add_client_error("head_bucket", service_error_code="404", http_status_code=404)
    sts_stub.activate()
    s3_stub.activate()
    return {"sts": sts, "s3": s3, "kms": kms}


def quota_client(value: float = 384.0, region: str = "us-east-2") -> tuple[Any, Stubber]:
    client = boto3.client("service-quotas", region_name=region)
    stub = Stubber(client)
    stub.add_response(
        "get_service_quota",
        {"Quota": {"QuotaCode": preflight.P_QUOTA_CODE, "Value": value}},
        {"ServiceCode": "ec2", "QuotaCode": preflight.P_QUOTA_CODE},
    )
    stub.activate()
    return client, stub


def by_name(checks: list[Any]) -> dict[str, Any]:
    return {c.name: c for c in checks}


def no_sleep(_: float) -> None:
    pass


# --- instance offerings (moto) --------------------------------------------------------


@mock_aws
def test_offered_type_in_configured_zones_passes() -> None:
    settings = make_settings(availabilityZones=["us-east-2a", "us-east-2b"])
    quotas, _ = quota_client()
    checks = by_name(preflight.run(settings, boto3.client("ec2", region_name="us-east-2"), quotas, no_sleep))
    assert checks["offered in region"].status == "PASS"
    assert checks["offered in zones"].status == "PASS"
    assert checks["on-demand vCPU quota"].status == "PASS"
    assert checks["capacity reservation"].status == "SKIP"


@mock_aws
def test_zone_that_does_not_offer_the_type_fails_naming_the_offered_zones() -> None:
    settings = make_settings(availabilityZones=["us-east-2a", "us-east-2d"])
    quotas, _ = quota_client()
    zone = by_name(preflight.run(settings, boto3.client("ec2", region_name="us-east-2"), quotas, no_sleep))[
        "offered in zones"
    ]
    assert zone.status == "FAIL"
    assert "us-east-2d" in zone.detail and "us-east-2a, us-east-2b, us-east-2c" in zone.detail
    assert "gpuNodes.availabilityZones" in zone.fix


@mock_aws
def test_region_without_the_type_fails() -> None:
    settings = make_settings(region="af-south-1")
    quotas, _ = quota_client(region="af-south-1")
    checks = by_name(preflight.run(settings, boto3.client("ec2", region_name="af-south-1"), quotas, no_sleep))
    assert checks["offered in region"].status == "FAIL"
    assert checks["offered in zones"].status == "FAIL"


# --- on-demand quota (Stubber) ---------------------------------------------------------


@mock_aws
def test_quota_below_max_size_times_192_fails_with_the_exact_increase_command() -> None:
    settings = make_settings(maxSize=3)
    quotas, stub = quota_client(value=192.0)
    quota = by_name(preflight.run(settings, boto3.client("ec2", region_name="us-east-2"), quotas, no_sleep))[
        "on-demand vCPU quota"
    ]
    assert quota.status == "FAIL"
    assert "needs 576" in quota.detail
    assert (
        quota.fix
        == "aws service-quotas request-service-quota-increase --service-code ec2 --quota-code L-417A185B --desired-value 576 --region us-east-2"
    )
    stub.assert_no_pending_responses()


@mock_aws
def test_quota_never_changed_falls_back_to_the_aws_default() -> None:
    quotas = boto3.client("service-quotas", region_name="us-east-2")
    stub = Stubber(quotas)
    stub.add_client_error("get_service_quota", "NoSuchResourceException", "no applied quota")
    stub.add_response("get_aws_default_service_quota", {"Quota": {"Value": 0.0}})
    stub.activate()
    quota = by_name(preflight.run(make_settings(), boto3.client("ec2", region_name="us-east-2"), quotas, no_sleep))[
        "on-demand vCPU quota"
    ]
    assert quota.status == "FAIL" and "AWS default" in quota.detail
    assert "--desired-value 384" in quota.fix


# --- capacity reservations (Stubber) ----------------------------------------------------


def stubbed_ec2(reservation: dict[str, Any] | None, error: str | None = None) -> tuple[Any, Stubber]:
    client = boto3.client("ec2", region_name="us-east-2")
    stub = Stubber(client)
    stub.add_response(
        "describe_instance_type_offerings",
        {"InstanceTypeOfferings": [{"InstanceType": "p5.48xlarge", "LocationType": "region", "Location": "us-east-2"}]},
    )
    zones = [
        {"InstanceType": "p5.48xlarge", "LocationType": "availability-zone", "Location": z}
        for z in ("us-east-2a", "us-east-2b")
    ]
    stub.add_response("describe_instance_type_offerings", {"InstanceTypeOfferings": zones})
    if error:
        stub.add_client_error("describe_capacity_reservations", error, "nope")
    else:
        stub.add_response(
            "describe_capacity_reservations",
            {"CapacityReservations": [reservation] if reservation else []},
            {"CapacityReservationIds": ["cr-0123456789abcdef0"]},
        )
    stub.activate()
    return client, stub


def reservation(**overrides: Any) -> dict[str, Any]:
    cr = {
        "CapacityReservationId": "cr-0123456789abcdef0",
        "InstanceType": "p5.48xlarge",
        "AvailabilityZone": "us-east-2a",
        "State": "active",
        "ReservationType": "capacity-block",
        "TotalInstanceCount": 1,
        "StartDate": dt.datetime(2026, 12, 1, 11, 30, tzinfo=UTC),
        "EndDate": dt.datetime(2026, 12, 8, 11, 30, tzinfo=UTC),
    }
    return {**cr, **overrides}


def test_active_capacity_block_in_the_right_zone_passes_and_skips_the_quota() -> None:
    ec2, stub = stubbed_ec2(reservation())
    # A day into the week-long block: its window and end reminder pass as well.
    checks = preflight.run(block_settings(), ec2, None, no_sleep, now=dt.datetime(2026, 12, 2, tzinfo=UTC))
    assert [c.status for c in checks if c.failed] == []
    assert by_name(checks)["on-demand vCPU quota"].status == "SKIP"
    assert {"reservation state", "reservation kind", "reservation type", "reservation zone", "reservation size"} <= set(
        by_name(checks)
    )
    stub.assert_no_pending_responses()


@pytest.mark.parametrize("state", ["scheduled", "payment-pending"])
def test_capacity_block_not_yet_started_is_reported_with_its_start_date(state: str) -> None:
    ec2, _ = stubbed_ec2(reservation(State=state))
    row = by_name(preflight.run(block_settings(), ec2, None, no_sleep))["reservation state"]
    assert row.status == "FAIL"
    assert state in row.detail and "2026-12-01 11:30" in row.detail
    assert "2026-12-01 11:30" in row.fix


def test_reservation_for_another_type_or_zone_fails_with_the_config_fix() -> None:
    ec2, _ = stubbed_ec2(reservation(InstanceType="p5e.48xlarge", AvailabilityZone="us-east-2b"))
    checks = by_name(preflight.run(block_settings(), ec2, None, no_sleep))
    assert checks["reservation type"].status == "FAIL"
    assert checks["reservation type"].fix == "pulumi config set --path 'gpuNodes.instanceType' p5e.48xlarge"
    assert checks["reservation zone"].status == "FAIL"
    assert "us-east-2b" in checks["reservation zone"].fix


def test_on_demand_reservation_under_capacity_block_settings_fails_kind() -> None:
    ec2, _ = stubbed_ec2(reservation(ReservationType="default"))
    row = by_name(preflight.run(block_settings(), ec2, None, no_sleep))["reservation kind"]
    assert row.status == "FAIL" and "ON_DEMAND" in row.fix


@pytest.mark.parametrize("reply,error", [(None, None), (None, "InvalidCapacityReservationId.NotFound")])
def test_missing_reservation_fails(reply: Any, error: str | None) -> None:
    ec2, _ = stubbed_ec2(reply, error)
    row = by_name(preflight.run(block_settings(), ec2, None, no_sleep))["capacity reservation"]
    assert row.status == "FAIL" and "does not exist" in row.detail


# --- credentials, access and throttling ----------------------------------------------


def test_access_denied_fails_that_check_naming_the_iam_action_and_keeps_going() -> None:
    ec2, _ = stubbed_ec2(None, "UnauthorizedOperation")
    checks = by_name(preflight.run(block_settings(), ec2, None, no_sleep))
    row = checks["capacity reservation"]
    assert row.status == "FAIL"
    assert "ec2:DescribeCapacityReservations" in row.detail and "ec2:DescribeCapacityReservations" in row.fix
    assert checks["offered in zones"].status == "PASS"


@mock_aws
def test_quota_access_denied_names_service_quotas_action() -> None:
    quotas = boto3.client("service-quotas", region_name="us-east-2")
    stub = Stubber(quotas)
    stub.add_client_error("get_service_quota", "AccessDeniedException", "not allowed")
    stub.activate()
    row = by_name(preflight.run(make_settings(), boto3.client("ec2", region_name="us-east-2"), quotas, no_sleep))[
        "on-demand vCPU quota"
    ]
    assert row.status == "FAIL" and "servicequotas:GetServiceQuota" in row.fix


@mock_aws
def test_throttling_is_retried_with_backoff_then_succeeds() -> None:
    quotas = boto3.client("service-quotas", region_name="us-east-2")
    stub = Stubber(quotas)
    stub.add_client_error("get_service_quota", "TooManyRequestsException", "slow down")
    stub.add_client_error("get_service_quota", "ThrottlingException", "slow down")
    stub.add_response("get_service_quota", {"Quota": {"Value": 384.0}})
    stub.activate()
    sleeps: list[float] = []
    row = by_name(preflight.run(make_settings(), boto3.client("ec2", region_name="us-east-2"), quotas, sleeps.append))[
        "on-demand vCPU quota"
    ]
    assert row.status == "PASS"
    assert sleeps == [1.0, 2.0]


@mock_aws
def test_throttling_that_persists_is_reported_after_bounded_retries() -> None:
    quotas = boto3.client("service-quotas", region_name="us-east-2")
    stub = Stubber(quotas)
    for _ in range(4):
        stub.add_client_error("get_service_quota", "ThrottlingException", "slow down")
    stub.activate()
    sleeps: list[float] = []
    row = by_name(preflight.run(make_settings(), boto3.client("ec2", region_name="us-east-2"), quotas, sleeps.append))[
        "on-demand vCPU quota"
    ]
    assert row.status == "FAIL" and "throttled" in row.detail and "4 attempts" in row.detail
    assert len(sleeps) == 3


def test_missing_credentials_raise_before_any_check(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for key in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    session = boto3.session.Session()
    with pytest.raises(awsclients.CredentialsMissing):
        preflight.main(make_settings(), session=session, sleep=no_sleep)


def test_cli_exits_2_with_a_fix_when_credentials_are_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_creds(*_: Any, **__: Any) -> Any:
        raise awsclients.CredentialsMissing("Unable to locate credentials")

    monkeypatch.setattr(preflight, "main", no_creds)
    assert ops_main(["preflight", "--stack", "prod-8gpu"]) == 2
    err = capsys.readouterr().err
    assert "Unable to locate credentials" in err and "aws sts get-caller-identity" in err


@mock_aws
def test_cli_prints_a_table_and_exits_1_on_a_failed_check(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_clients = awsclients.clients

    def clients(region: str, *services: str, session: Any = None) -> tuple[Any, ...]:
        ec2, s3, sts, ecr, kms = real_clients(region, "ec2", "s3", "sts", "ecr", "kms")
        quotas, _ = quota_client(value=0.0)
        eks, _ = eks_client()
        made = {"ec2": ec2, "service-quotas": quotas, "eks": eks, "s3": s3, "sts": sts, "ecr": ecr, "kms": kms}
        return tuple(made[s] for s in services)

    monkeypatch.setattr(awsclients, "clients", clients)
    assert ops_main(["preflight", "--stack", "prod-8gpu"]) == 1
    out = capsys.readouterr().out
    assert (
        "on-demand vCPU quota" in out
        and "FAIL" in out
        and "fix: aws service-quotas request-service-quota-increase" in out
    )
    assert re.search(r"image contents +SKIP +not checked without pulling vllm/vllm-openai:v0.32.0", out)


def test_main_builds_its_clients_for_the_stack_region(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, tuple[str, ...]]] = []

    def clients(region: str, *services: str, session: Any = None) -> tuple[Any, ...]:
        asked.append((region, services))
        return tuple(object() for _ in services)

    seen: dict[str, Any] = {}

    def run(settings: Settings, ec2: Any, quotas: Any, sleep: Any, *, eks: Any = None, **_: Any) -> list[Any]:
        seen["eks"] = eks
        return []

    monkeypatch.setattr(awsclients, "clients", clients)
    monkeypatch.setattr(preflight, "run", run)
    monkeypatch.setattr(preflight.preflight_images, "check", lambda *_: [])
    preflight.main(make_settings(region="eu-west-1"), sleep=no_sleep)
    assert asked == [("eu-west-1", ("ec2", "service-quotas", "eks", "s3", "sts", "ecr", "kms"))]
    assert seen["eks"] is not None


# --- Kubernetes version and EKS add-ons (Stubber: moto lacks these APIs) -------------------

K8S = versions.KUBERNETES_VERSION
PINS = versions.EKS_ADDON_VERSIONS[K8S]


def with_kubernetes(version: str) -> Settings:
    s = make_settings()
    cluster = dataclasses.replace(s.cluster)
    # Set past the schema (which refuses an unpinned version), as an older stack file could hold it.
    object.__setattr__(cluster, "kubernetes_version", version)
    return dataclasses.replace(s, cluster=cluster)


def cluster_version(version: str, status: str, **extra: Any) -> dict[str, Any]:
    return {
        "clusterVersion": version,
        "versionStatus": status,
        "endOfStandardSupportDate": dt.datetime(2026, 12, 2, tzinfo=UTC),
        "endOfExtendedSupportDate": dt.datetime(2027, 12, 2, tzinfo=UTC),
        **extra,
    }


def addon_reply(
    name: str, builds: list[tuple[str, bool]], version: str = K8S, token: str | None = None
) -> dict[str, Any]:
    """One DescribeAddonVersions page: (addonVersion, defaultVersion) builds compatible with `version`."""
    reply: dict[str, Any] = {
        "addons": [
            {
                "addonName": name,
                "addonVersions": [
                    {
                        "addonVersion": build,
                        "compatibilities": [{"clusterVersion": version, "defaultVersion": default}],
                    }
                    for build, default in builds
                ],
            }
        ]
    }
    if token:
        reply["nextToken"] = token
    return reply


def eks_client(
    version_replies: list[dict[str, Any]] | None = None,
    addon_replies: dict[str, dict[str, Any]] | None = None,
    denied_addons: bool = False,
) -> tuple[Any, Stubber]:
    """An EKS client stubbed for both checks, in call order; by default everything passes."""
    client = boto3.client("eks", region_name="us-east-2")
    stub = Stubber(client)
    for reply in version_replies or [{"clusterVersions": [cluster_version(K8S, "STANDARD_SUPPORT")]}]:
        stub.add_response("describe_cluster_versions", reply)
    for name, pin in PINS.items():
        if denied_addons:
            stub.add_client_error("describe_addon_versions", "AccessDeniedException", "not authorized")
            break
        reply = (addon_replies or {}).get(name) or addon_reply(name, [(pin, True)])
        stub.add_response("describe_addon_versions", reply, {"kubernetesVersion": K8S, "addonName": name})
    stub.activate()
    return client, stub


def eks_rows(settings: Settings, eks: Any) -> dict[str, Any]:
    ec2, _ = stubbed_ec2(None)  # the offerings pass; no reservation is configured
    return by_name(preflight.run(settings, ec2, quota_client()[0], no_sleep, eks=eks))


def test_standard_support_version_and_listed_add_ons_pass() -> None:
    eks, stub = eks_client()
    rows = eks_rows(make_settings(), eks)
    assert rows["kubernetes version"].status == "PASS"
    assert "standard support" in rows["kubernetes version"].detail and "2026-12-02" in rows["kubernetes version"].detail
    assert {f"add-on {n}" for n in PINS} <= set(rows)
    assert all(rows[f"add-on {n}"].status == "PASS" for n in PINS)
    stub.assert_no_pending_responses()


def test_without_an_eks_client_the_eks_checks_are_skipped_not_passed() -> None:
    rows = eks_rows(make_settings(), None)
    assert rows["kubernetes version"].status == "SKIP"
    assert rows["add-on versions"].status == "SKIP"


def test_extended_support_fails_with_the_cost_and_the_newest_standard_version() -> None:
    eks, stub = eks_client(
        [
            {"clusterVersions": [cluster_version(K8S, "EXTENDED_SUPPORT")]},
            {"clusterVersions": [cluster_version("1.35", "STANDARD_SUPPORT")], "nextToken": "page-2"},
            {"clusterVersions": [cluster_version("1.36", "STANDARD_SUPPORT")]},
        ]
    )
    row = eks_rows(make_settings(), eks)["kubernetes version"]
    assert row.status == "FAIL"
    assert "extended support" in row.detail and "$0.60" in row.detail and "$0.10" in row.detail
    assert "2026-12-02" in row.detail and "2027-12-02" in row.detail
    assert row.fix.startswith('pin its add-ons in components/facts/versions.py EKS_ADDON_VERSIONS["1.36"]')
    assert row.fix.endswith("pulumi config set --path 'cluster.kubernetesVersion' 1.36")
    stub.assert_no_pending_responses()


def test_extended_support_fix_names_the_existing_pins_when_the_newest_version_is_pinned() -> None:
    newest = max(versions.EKS_ADDON_VERSIONS, key=lambda v: tuple(map(int, v.split("."))))
    eks, _ = eks_client(
        [
            {"clusterVersions": [cluster_version(K8S, "EXTENDED_SUPPORT")]},
            {"clusterVersions": [cluster_version(newest, "STANDARD_SUPPORT")]},
        ]
    )
    row = eks_rows(make_settings(), eks)["kubernetes version"]
    assert row.fix == (
        f"pulumi config set --path 'cluster.kubernetesVersion' {newest}"
        f' (its add-on pins: components/facts/versions.py EKS_ADDON_VERSIONS["{newest}"])'
    )


def test_deprecated_status_field_is_understood() -> None:
    entry = {"clusterVersion": K8S, "status": "standard-support"}
    eks, _ = eks_client([{"clusterVersions": [entry]}])
    assert eks_rows(make_settings(), eks)["kubernetes version"].status == "PASS"


@pytest.mark.parametrize(
    "reply,wording",
    [
        ({"clusterVersions": [cluster_version(K8S, "UNSUPPORTED")]}, "past the end of extended support"),
        ({"clusterVersions": []}, "does not offer"),
    ],
)
def test_unsupported_or_unoffered_version_fails(reply: dict[str, Any], wording: str) -> None:
    eks, stub = eks_client([reply, {"clusterVersions": [cluster_version("1.35", "STANDARD_SUPPORT")]}])
    row = eks_rows(make_settings(), eks)["kubernetes version"]
    assert row.status == "FAIL" and wording in row.detail
    assert "pulumi config set --path 'cluster.kubernetesVersion' 1.35" in row.fix
    stub.assert_no_pending_responses()


def test_pinned_add_on_not_listed_fails_naming_the_default_build() -> None:
    replies = {"coredns": addon_reply("coredns", [("v1.99.0-eksbuild.1", False), ("v1.12.4-eksbuild.1", True)])}
    eks, _ = eks_client(addon_replies=replies)
    rows = eks_rows(make_settings(), eks)
    row = rows["add-on coredns"]
    assert row.status == "FAIL"
    assert PINS["coredns"] in row.detail and "v1.12.4-eksbuild.1" in row.detail
    assert row.fix == f'edit components/facts/versions.py EKS_ADDON_VERSIONS["{K8S}"]["coredns"] = "v1.12.4-eksbuild.1"'
    assert rows["add-on vpc-cni"].status == "PASS"


def test_without_a_default_build_the_newest_listed_build_is_suggested() -> None:
    builds = [("v1.20.4-eksbuild.9", False), ("v1.20.4-eksbuild.10", False), ("v1.19.0-eksbuild.1", False)]
    eks, _ = eks_client(addon_replies={"vpc-cni": addon_reply("vpc-cni", builds)})
    row = eks_rows(make_settings(), eks)["add-on vpc-cni"]
    assert row.status == "FAIL" and "newest listed build is v1.20.4-eksbuild.10" in row.detail


def test_a_build_listed_only_for_another_kubernetes_version_does_not_count() -> None:
    replies = {"kube-proxy": addon_reply("kube-proxy", [(PINS["kube-proxy"], True)], version="1.30")}
    eks, _ = eks_client(addon_replies=replies)
    row = eks_rows(make_settings(), eks)["add-on kube-proxy"]
    assert row.status == "FAIL" and "lists no kube-proxy build" in row.detail
    assert f'EKS_ADDON_VERSIONS["{K8S}"]["kube-proxy"]' in row.fix


def test_add_on_versions_are_followed_across_pages() -> None:
    client = boto3.client("eks", region_name="us-east-2")
    stub = Stubber(client)
    stub.add_response("describe_cluster_versions", {"clusterVersions": [cluster_version(K8S, "STANDARD_SUPPORT")]})
    for name, pin in PINS.items():
        if name == "vpc-cni":
            stub.add_response(
                "describe_addon_versions",
                addon_reply(name, [("v1.21.0-eksbuild.1", True)], token="page-2"),
                {"kubernetesVersion": K8S, "addonName": name},
            )
            stub.add_response(
                "describe_addon_versions",
                addon_reply(name, [(pin, False)]),
                {"kubernetesVersion": K8S, "addonName": name, "nextToken": "page-2"},
            )
        else:
            stub.add_response("describe_addon_versions", addon_reply(name, [(pin, True)]))
    stub.activate()
    rows = eks_rows(make_settings(), client)
    assert rows["add-on vpc-cni"].status == "PASS"
    stub.assert_no_pending_responses()


def test_kubernetes_version_without_pins_fails_with_where_to_add_them() -> None:
    client = boto3.client("eks", region_name="us-east-2")
    stub = Stubber(client)
    stub.add_response("describe_cluster_versions", {"clusterVersions": [cluster_version("1.99", "STANDARD_SUPPORT")]})
    stub.activate()
    rows = eks_rows(with_kubernetes("1.99"), client)
    assert rows["kubernetes version"].status == "PASS"
    row = rows["add-on versions"]
    assert row.status == "FAIL" and "1.99" in row.detail
    assert 'components/facts/versions.py EKS_ADDON_VERSIONS["1.99"]' in row.fix
    stub.assert_no_pending_responses()


def test_add_on_access_denied_names_the_eks_action_and_other_checks_still_run() -> None:
    eks, stub = eks_client(denied_addons=True)
    rows = eks_rows(make_settings(), eks)
    row = rows["add-on versions"]
    assert row.status == "FAIL"
    assert "eks:DescribeAddonVersions" in row.detail and "eks:DescribeAddonVersions" in row.fix
    assert rows["kubernetes version"].status == "PASS"
    assert rows["offered in region"].status == "PASS" and rows["on-demand vCPU quota"].status == "PASS"
    stub.assert_no_pending_responses()


# --- the `python -m ops` dispatcher -------------------------------------------------------


def test_unknown_stack_is_a_config_error_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert ops_main(["preflight", "--stack", "no-such-stack"]) == 2
    assert "known stacks" in capsys.readouterr().err


def test_unknown_command_is_a_usage_error_exit_2() -> None:
    with pytest.raises(SystemExit) as exit_info:
        ops_main(["deploy"])
    assert exit_info.value.code == 2


def test_plan_is_imported_only_when_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    calls: list[tuple[str, str]] = []
    fake = types.ModuleType("ops.plan")
    fake.main = lambda stack, out_dir: calls.append((stack, out_dir)) or 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ops.plan", fake)
    monkeypatch.setattr(ops, "plan", fake, raising=False)
    assert ops_main(["plan", "--stack", "dev"]) == 0
    assert ops_main(["plan", "--stack", "dev", "--out", "/tmp/x"]) == 0
    assert calls == [("dev", "plan-out/dev"), ("dev", "/tmp/x")]


def test_preflight_verify_and_sweep_do_not_import_pulumi() -> None:
    import subprocess
    import sys

    code = "import sys, ops.__main__, ops.preflight, ops.verify, ops.sweep.run; sys.exit('pulumi' in sys.modules)"
    root = Path(__file__).resolve().parent.parent
    assert subprocess.run([sys.executable, "-c", code], cwd=root, check=False, timeout=60).returncode == 0


# --- zones recorded (moto) ---------------------------------------------------------------


@mock_aws
def test_unrecorded_zones_fail_with_the_commands_that_keep_a_deployed_vpcs_subnets() -> None:
    settings = parse({"owner": "ml-platform", "network": {"vpcCidr": "10.43.0.0/16"}}, "edge", "us-east-2")
    ec2 = boto3.client("ec2", region_name="us-east-2")
    quotas, _ = quota_client()
    new = by_name(preflight.run(settings, ec2, quotas, no_sleep))["zones recorded"]
    assert new.status == "FAIL" and "'network.subnetLayout' byZone" in new.fix
    vpc = ec2.create_vpc(CidrBlock="10.43.0.0/16")["Vpc"]["VpcId"]
    tags = [{"Key": f"kubernetes.io/cluster/{settings.cluster_name}", "Value": "shared"}]
    tags.append({"Key": "kubernetes.io/role/internal-elb", "Value": "1"})
    for zone, cidr in (("us-east-2b", "10.43.0.0/18"), ("us-east-2c", "10.43.64.0/18")):  # the old layout
        ec2.create_subnet(
            VpcId=vpc,
            CidrBlock=cidr,
            AvailabilityZone=zone,
            TagSpecifications=[{"ResourceType": "subnet", "Tags": tags}],
        )
    old = by_name(preflight.run(settings, ec2, quotas, no_sleep))["zones recorded"]
    assert old.status == "FAIL" and "'network.subnetLayout' byPosition" in old.fix
    assert (
        "'network.availabilityZones[0]' us-east-2b" in old.fix
        and "'network.availabilityZones[1]' us-east-2c" in old.fix
    )
