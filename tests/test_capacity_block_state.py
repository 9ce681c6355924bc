"""preflight follows a Capacity Block: scheduled, active, ending, ended early (botocore Stubber)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from components.platform.config import parse
from components.settings.capacity_block import CapacityBlockSettings
from components.settings.stack import Settings
from ops import preflight
from ops.__main__ import main as ops_main

UTC = dt.UTC
NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
RID = "cr-0123456789abcdef0"
SCALE_DOWN = (
    'aws eks update-nodegroup-config --cluster-name "$(pulumi stack output clusterName --stack test)"'
    ' --nodegroup-name "$(pulumi stack output gpuNodeGroupName --stack test)"'
    " --scaling-config minSize=0,maxSize=1,desiredSize=0 --region us-east-2"
)


@pytest.fixture(autouse=True)
def fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)


def block_settings(capacity_type: str = "CAPACITY_BLOCK") -> Settings:
    nodes = {
        "instanceType": "p5.48xlarge",
        "minSize": 1,
        "desiredSize": 1,
        "maxSize": 1,
        "capacityType": capacity_type,
        "capacityReservationId": RID,
        "availabilityZones": ["us-east-2a"],
    }
    network = {"availabilityZones": ["us-east-2a", "us-east-2b"], "subnetLayout": "byZone"}  # zones recorded
    return parse({"owner": "ml-platform", "gpuNodes": nodes, "network": network}, "test", "us-east-2")


def ec2_with(reservation: dict[str, Any], status: dict[str, Any] | str | None = None) -> Any:
    """EC2 stubbed for preflight's calls in order: offerings (region, zones), then the reservation."""
    client = boto3.client("ec2", region_name="us-east-2")
    stub = Stubber(client)
    stub.add_response(
        "describe_instance_type_offerings",
        {"InstanceTypeOfferings": [{"InstanceType": "p5.48xlarge", "LocationType": "region", "Location": "us-east-2"}]},
    )
    stub.add_response(
        "describe_instance_type_offerings",
        {
            "InstanceTypeOfferings": [
                {"InstanceType": "p5.48xlarge", "LocationType": "availability-zone", "Location": "us-east-2a"}
            ]
        },
    )
    stub.add_response(
        "describe_capacity_reservations", {"CapacityReservations": [reservation]}, {"CapacityReservationIds": [RID]}
    )
    if isinstance(status, str):
        stub.add_client_error("describe_capacity_block_status", status, "not allowed")
    elif status is not None:
        stub.add_response(
            "describe_capacity_block_status",
            {"CapacityBlockStatuses": [status]},
            {"CapacityBlockIds": [reservation["CapacityBlockId"]]},
        )
    stub.activate()
    return client


def block(state: str, start: dt.datetime, end: dt.datetime, kind: str = "capacity-block") -> dict[str, Any]:
    return {
        "CapacityReservationId": RID,
        "InstanceType": "p5.48xlarge",
        "AvailabilityZone": "us-east-2a",
        "State": state,
        "ReservationType": kind,
        "TotalInstanceCount": 1,
        "StartDate": start,
        "EndDate": end,
    }


def quotas() -> Any:
    client = boto3.client("service-quotas", region_name="us-east-2")
    stub = Stubber(client)
    stub.add_response("get_service_quota", {"Quota": {"Value": 192.0}})
    stub.activate()
    return client


def rows(
    reservation: dict[str, Any],
    window: CapacityBlockSettings | None = None,
    status: dict[str, Any] | str | None = None,
    **settings: Any,
) -> dict[str, Any]:
    checks = preflight.run(
        block_settings(**settings), ec2_with(reservation, status), quotas(), lambda _: None, now=NOW, window=window
    )
    return {c.name: c for c in checks}


def hours(n: float) -> dt.timedelta:
    return dt.timedelta(hours=n)


def test_scheduled_block_reports_its_start_length_and_the_scale_down_reminder() -> None:
    r = rows(block("scheduled", NOW + hours(20), NOW + hours(20 + 72)))
    assert r["block window"].status == "PASS"
    assert r["block window"].detail == (
        f"{RID} scheduled: starts 2026-12-02 08:00 UTC (in 20.0 h), ends 2026-12-05 08:00 UTC: 72.0 h of capacity"
    )
    end = r["block end"]
    assert end.status == "INFO" and "desired size 0" in end.detail and "2026-12-05 07:30 UTC" in end.detail
    assert end.fix == SCALE_DOWN
    assert r["reservation state"].failed  # not usable yet: `pulumi up` after the start


def test_active_block_with_time_left_passes() -> None:
    r = rows(block("active", NOW - hours(24), NOW + hours(24 * 10)))
    assert r["block window"].status == "PASS"
    assert "active, ends 2026-12-11 12:00 UTC (in 240.0 h)" in r["block window"].detail
    assert not any(c.failed for c in r.values())


def test_active_block_ending_within_the_next_hours_is_reported_as_ending() -> None:
    r = rows(block("active", NOW - hours(24), NOW + hours(30)), CapacityBlockSettings(ending_soon_hours=48))
    assert r["block window"].status == "INFO"
    assert "in 30.0 h" in r["block window"].detail and "ending within 48 h" in r["block window"].detail


def test_block_that_ends_before_the_minimum_window_fails_with_the_extension_command() -> None:
    r = rows(block("active", NOW - hours(40), NOW + hours(5)), CapacityBlockSettings(min_window_hours=24))
    row = r["block window"]
    assert row.failed and "in 5.0 h" in row.detail and "24 h minimum window" in row.detail
    assert row.fix.startswith(
        f"extend it: `aws ec2 describe-capacity-block-extension-offerings --capacity-reservation-id {RID}"
        " --capacity-block-extension-duration-hours 24 --region us-east-2`"
    )
    assert "python -m ops capacity find --stack test" in row.fix
    assert r["block end"].fix == SCALE_DOWN


def test_scheduled_block_shorter_than_the_window_fails_before_it_starts() -> None:
    r = rows(block("scheduled", NOW + hours(2), NOW + hours(26)), CapacityBlockSettings(min_window_hours=72))
    row = r["block window"]
    assert row.failed and "24.0 h of capacity" in row.detail and "72 h minimum window" in row.detail
    assert "--capacity-block-extension-duration-hours 48" in row.fix


def test_ended_block_is_not_followed_and_the_state_row_fails() -> None:
    r = rows(block("expired", NOW - hours(48), NOW - hours(1)))
    assert r["block window"].status == "SKIP" and "expired" in r["block window"].detail
    assert r["reservation state"].failed
    assert "block end" not in r


def test_on_demand_capacity_reservation_has_no_block_rows() -> None:
    r = rows(block("active", NOW - hours(1), NOW + hours(3), kind="default"), capacity_type="ON_DEMAND")
    assert "block window" not in r and "block end" not in r


def status(total: int, broken: int, interconnect: str = "ok") -> dict[str, Any]:
    return {
        "CapacityBlockId": "cb-0123456789abcdef0",
        "InterconnectStatus": interconnect,
        "TotalCapacity": total,
        "TotalAvailableCapacity": total - broken,
        "TotalUnavailableCapacity": broken,
    }


def active_block() -> dict[str, Any]:
    return {**block("active", NOW - hours(1), NOW + hours(100)), "CapacityBlockId": "cb-0123456789abcdef0"}


def test_active_block_health_passes_with_enough_usable_instances() -> None:
    row = rows(active_block(), status=status(2, 1))["block health"]
    assert row.status == "PASS"
    assert row.detail == (
        "cb-0123456789abcdef0: 1 of 2 instance(s) usable (1 failed status checks), 1 free to launch, interconnect ok"
    )


def test_active_block_with_too_few_usable_instances_fails() -> None:
    row = rows(active_block(), status=status(1, 1, "impaired"))["block health"]
    assert row.failed and "0 of 1 instance(s) usable" in row.detail and "interconnect impaired" in row.detail
    assert "gpuNodes.desiredSize is 1" in row.detail


def test_block_status_denied_names_the_action_and_keeps_the_other_block_rows() -> None:
    r = rows(active_block(), status="UnauthorizedOperation")
    assert r["block health"].failed and "ec2:DescribeCapacityBlockStatus" in r["block health"].fix
    assert r["block window"].status == "PASS" and r["reservation state"].status == "PASS"


def test_preflight_cli_refuses_a_window_of_zero_hours(capsys: pytest.CaptureFixture[str]) -> None:
    assert ops_main(["preflight", "--stack", "prod-8gpu", "--min-window-hours", "0"]) == 2
    assert "min_window_hours" in capsys.readouterr().err


def test_preflight_cli_passes_the_window_to_the_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def main(
        settings: Settings, session: Any = None, sleep: Any = None, window: Any = None, **_: Any
    ) -> tuple[str, list]:
        seen["window"] = window
        return "t", []

    monkeypatch.setattr(preflight, "main", main)
    assert ops_main(["preflight", "--stack", "prod-8gpu", "--min-window-hours", "72"]) == 0
    assert seen["window"] == CapacityBlockSettings(min_window_hours=72)
