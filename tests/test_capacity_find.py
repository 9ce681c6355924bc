"""`ops capacity find`: botocore Stubber against EC2's real service model (moto lacks these APIs)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from ops import awsclients
from ops.__main__ import main as ops_main
from ops.capacity import cli as capacity_cli
from ops.capacity import find as capacity_find
from ops.capacity.find import Search, duration_problem, list_price_per_hour

UTC = dt.UTC
HOME = "us-east-2"
SEARCH = Search("p5.48xlarge", 2, 48, dt.datetime(2026, 12, 1, tzinfo=UTC), dt.datetime(2026, 12, 20, tzinfo=UTC))
P5 = list_price_per_hour("p5.48xlarge")


@pytest.fixture(autouse=True)
def fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def no_sleep(_: float) -> None:
    pass


def offer(oid: str, zone: str, start: dt.datetime, fee: str, hours: int = 48, **extra: Any) -> dict[str, Any]:
    return {
        "CapacityBlockOfferingId": oid,
        "InstanceType": "p5.48xlarge",
        "AvailabilityZone": zone,
        "InstanceCount": 2,
        "StartDate": start,
        "EndDate": start + dt.timedelta(hours=hours),
        "CapacityBlockDurationHours": hours,
        "UpfrontFee": fee,
        "CurrencyCode": "USD",
        "Tenancy": "default",
        **extra,
    }


def day(n: int, hour: int = 11, minute: int = 30) -> dt.datetime:
    return dt.datetime(2026, 12, n, hour, minute, tzinfo=UTC)


class Clients:
    """One stubbed EC2 client per region, as `ec2_for` hands them out."""

    def __init__(self) -> None:
        self.clients: dict[str, Any] = {}
        self.stubs: dict[str, Stubber] = {}

    def stub(self, region: str) -> Stubber:
        if region not in self.stubs:
            self.clients[region] = boto3.client("ec2", region_name=region)
            self.stubs[region] = Stubber(self.clients[region])
        return self.stubs[region]

    def offerings(self, region: str, *pages: list[dict[str, Any]], search: Search = SEARCH) -> None:
        stub = self.stub(region)
        for i, page in enumerate(pages):
            reply: dict[str, Any] = {"CapacityBlockOfferings": page}
            params = search.request()
            if i + 1 < len(pages):
                reply["NextToken"] = f"{region}-page-{i + 2}"
            if i:
                params["NextToken"] = f"{region}-page-{i + 1}"
            stub.add_response("describe_capacity_block_offerings", reply, params)

    def scores(self, scores: dict[str, int], regions: list[str], search: Search = SEARCH) -> None:
        self.stub(HOME).add_response(
            "get_spot_placement_scores",
            {"SpotPlacementScores": [{"Region": r, "Score": s} for r, s in scores.items()]},
            {"InstanceTypes": [search.instance_type], "TargetCapacity": search.instance_count, "RegionNames": regions},
        )

    def __call__(self, region: str) -> Any:
        if region not in self.clients:
            raise AssertionError(f"no client expected for {region}")
        self.stubs[region].activate()
        return self.clients[region]

    def done(self) -> None:
        for stub in self.stubs.values():
            stub.assert_no_pending_responses()


def by_name(found: capacity_find.Found) -> dict[str, Any]:
    return {c.name: c for c in found.checks}


# --- the table --------------------------------------------------------------------------


def test_offerings_of_several_regions_and_pages_are_sorted_by_start_then_price() -> None:
    ec2 = Clients()
    ec2.offerings(
        "us-east-1",
        [offer("cb-0000000000000000a", "us-east-1a", day(3), "9000.00")],
        [offer("cb-0000000000000000b", "us-east-1b", day(2), "8800.00")],
    )
    ec2.offerings(HOME, [offer("cb-0000000000000000c", "us-east-2b", day(2), "8700.00")])
    ec2.offerings("us-west-2", [])
    ec2.scores({"us-east-1": 3, HOME: 1, "us-west-2": 2}, ["us-east-1", HOME, "us-west-2"])
    found = capacity_find.find(SEARCH, HOME, ec2, no_sleep, regions=["us-west-2", HOME, "us-east-1"])
    ec2.done()

    assert [o.offering_id for o in found.offerings] == [
        "cb-0000000000000000c",  # 2 Dec, cheaper
        "cb-0000000000000000b",  # 2 Dec (second page of us-east-1)
        "cb-0000000000000000a",  # 3 Dec
    ]
    rows = capacity_find.rows(found)
    assert rows[0] == (
        HOME,
        "us-east-2b",
        "2026-12-02 11:30",
        "2026-12-04 11:30",
        "48",
        "8,700.00 USD",
        "181.25 USD",  # 8700 / 48 h
        f"{P5 * 2 * 48:,.2f} USD",  # two instances, 48 h, at the list price
        "1",
        "cb-0000000000000000c",
    )
    assert rows[1][8] == "3"
    rows_by = by_name(found)
    assert rows_by["us-east-1"].status == "PASS" and "2 offering(s), from 8,800.00 USD" in rows_by["us-east-1"].detail
    assert rows_by["us-west-2"].status == "INFO" and "no offering" in rows_by["us-west-2"].detail
    assert not any(c.failed for c in found.checks)
    lines = capacity_find.table(found).splitlines()
    assert lines[0].split() == [
        "REGION",
        "ZONE",
        "START",
        "(UTC)",
        "END",
        "(UTC)",
        "HOURS",
        "UPFRONT",
        "PER",
        "HOUR",
        "ON-DEMAND",
        "SPOT",
        "OFFERING",
    ]
    assert [line.split()[-1] for line in lines[2:]] == [o.offering_id for o in found.offerings]


def test_a_block_shorter_than_whole_hours_counts_its_minutes() -> None:
    o = capacity_find.Offering.from_api(
        HOME,
        offer("cb-0000000000000000d", "us-east-2a", day(2, 4, 55), "1300.00", CapacityBlockDurationMinutes=35)
        | {"CapacityBlockDurationHours": 6, "InstanceCount": 1},
    )
    assert o.duration_hours == pytest.approx(6 + 35 / 60)
    assert o.hourly == pytest.approx(1300 / (6 + 35 / 60))
    assert o.on_demand == pytest.approx(P5 * (6 + 35 / 60))


def test_default_regions_are_the_enabled_ones_that_offer_the_type() -> None:
    ec2 = Clients()
    ec2.stub(HOME).add_response(
        "describe_regions", {"Regions": [{"RegionName": r} for r in ("us-west-1", HOME, "us-east-1")]}
    )
    offers = {"us-east-1": True, HOME: True, "us-west-1": False}
    for region in ("us-east-1", HOME, "us-west-1"):
        ec2.stub(region).add_response(
            "describe_instance_type_offerings",
            {
                "InstanceTypeOfferings": [{"InstanceType": "p5.48xlarge", "LocationType": "region", "Location": region}]
                if offers[region]
                else []
            },
            {"LocationType": "region", "Filters": [{"Name": "instance-type", "Values": ["p5.48xlarge"]}]},
        )
    ec2.offerings("us-east-1", [offer("cb-0000000000000000a", "us-east-1a", day(3), "9000.00")])
    ec2.offerings(HOME, [])
    ec2.scores({"us-east-1": 2}, ["us-east-1", HOME])
    found = capacity_find.find(SEARCH, HOME, ec2, no_sleep)
    ec2.done()
    assert found.regions == ["us-east-1", HOME]
    assert "2 enabled region(s) offer p5.48xlarge: us-east-1, us-east-2" in by_name(found)["regions"].detail


def test_spot_scores_are_asked_ten_regions_at_a_time() -> None:
    regions = [f"xx-test-{i:02d}" for i in range(12)]
    ec2 = Clients()
    for r in regions:
        ec2.offerings(r, [])
    ec2.scores({r: 5 for r in regions[:10]}, regions[:10])
    ec2.scores({r: 7 for r in regions[10:]}, regions[10:])
    found = capacity_find.find(SEARCH, HOME, ec2, no_sleep, regions=regions)
    ec2.done()
    assert found.spot_scores == {**{r: 5 for r in regions[:10]}, **{r: 7 for r in regions[10:]}}


# --- empty results and errors -------------------------------------------------------------


def test_no_offering_anywhere_fails_with_how_to_widen_the_search() -> None:
    ec2 = Clients()
    ec2.offerings(HOME, [])
    ec2.offerings("us-east-1", [])
    ec2.scores({}, ["us-east-1", HOME])
    found = capacity_find.find(SEARCH, HOME, ec2, no_sleep, regions=[HOME, "us-east-1"])
    row = by_name(found)["offerings"]
    assert row.failed and "us-east-1, us-east-2" in row.detail and "--start" in row.fix
    assert capacity_find.table(found) == ""


@pytest.mark.parametrize("code", ["OptInRequired", "AuthFailure"])
def test_a_region_not_enabled_is_skipped_with_the_enable_command_and_the_others_are_searched(code: str) -> None:
    ec2 = Clients()
    ec2.stub("ap-east-1").add_client_error("describe_capacity_block_offerings", code, "not subscribed")
    ec2.offerings(HOME, [offer("cb-0000000000000000c", "us-east-2b", day(2), "8700.00")])
    ec2.scores({HOME: 1}, ["ap-east-1", HOME])
    found = capacity_find.find(SEARCH, HOME, ec2, no_sleep, regions=["ap-east-1", HOME])
    row = by_name(found)["ap-east-1"]
    assert row.status == "SKIP" and "not enabled" in row.detail and code in row.detail
    assert row.fix == "to search it, enable it: aws account enable-region --region-name ap-east-1"
    assert [o.offering_id for o in found.offerings] == ["cb-0000000000000000c"]
    assert not any(c.failed for c in found.checks)


def test_access_denied_names_the_iam_action_and_fails_only_that_region() -> None:
    ec2 = Clients()
    ec2.stub("us-east-1").add_client_error("describe_capacity_block_offerings", "UnauthorizedOperation", "nope")
    ec2.offerings(HOME, [offer("cb-0000000000000000c", "us-east-2b", day(2), "8700.00")])
    ec2.stub(HOME).add_client_error("get_spot_placement_scores", "UnauthorizedOperation", "nope")
    found = capacity_find.find(SEARCH, HOME, ec2, no_sleep, regions=["us-east-1", HOME])
    rows = by_name(found)
    assert rows["us-east-1"].failed
    assert "ec2:DescribeCapacityBlockOfferings" in rows["us-east-1"].detail
    assert rows["us-east-1"].fix.startswith("grant ec2:DescribeCapacityBlockOfferings")
    assert rows[HOME].status == "PASS"
    # The spot score is informational: denied, it is a note, not a failure.
    assert rows["spot placement scores"].status == "INFO"
    assert "ec2:GetSpotPlacementScores" in rows["spot placement scores"].detail


def test_throttling_is_retried_with_backoff_then_reported_after_bounded_attempts() -> None:
    ec2 = Clients()
    ec2.stub(HOME).add_client_error("describe_capacity_block_offerings", "RequestLimitExceeded", "slow down")
    ec2.offerings(HOME, [offer("cb-0000000000000000c", "us-east-2b", day(2), "8700.00")])
    for _ in range(4):
        ec2.stub("us-east-1").add_client_error("describe_capacity_block_offerings", "RequestLimitExceeded", "slow")
    ec2.scores({}, ["us-east-1", HOME])
    sleeps: list[float] = []
    found = capacity_find.find(SEARCH, HOME, ec2, sleeps.append, regions=["us-east-1", HOME])
    ec2.done()
    rows = by_name(found)
    assert rows[HOME].status == "PASS"
    assert rows["us-east-1"].failed and "4 attempts" in rows["us-east-1"].detail
    assert sorted(sleeps) == [1.0, 1.0, 2.0, 4.0]  # one retry in us-east-2, three in us-east-1


def test_missing_credentials_exit_2_with_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    code = ops_main(["capacity", "find", "--stack", "prod-8gpu", "--regions", HOME, "--save", str(tmp_path / "o.json")])
    assert code == 2
    assert "aws sts get-caller-identity" in capsys.readouterr().err


# --- arguments ----------------------------------------------------------------------------


@pytest.mark.parametrize("hours", [24, 48, 336, 504, 4368])
def test_durations_ec2_sells_are_accepted(hours: int) -> None:
    assert duration_problem(hours) is None


@pytest.mark.parametrize("hours", [0, 12, 30, 360, 4536])
def test_durations_ec2_does_not_sell_are_refused(hours: int) -> None:
    assert duration_problem(hours)


def find_args(tmp_path: Any, **extra: Any) -> argparse.Namespace:
    base = {
        "stack": "prod-8gpu",
        "instance_type": None,
        "count": None,
        "hours": 48,
        "start": "2026-12-01",
        "end": "2026-12-20",
        "regions": f"{HOME},us-east-1",
        "save": str(tmp_path / "offerings.json"),
    }
    return argparse.Namespace(**{**base, **extra})


def test_cli_searches_the_stacks_type_and_size_prints_the_table_and_saves_it(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    search = Search("p5.48xlarge", 1, 48, dt.datetime(2026, 12, 1, tzinfo=UTC), dt.datetime(2026, 12, 20, tzinfo=UTC))
    ec2 = Clients()
    ec2.offerings(
        HOME, [offer("cb-0000000000000000c", "us-east-2b", day(2), "4350.00", InstanceCount=1)], search=search
    )
    ec2.offerings("us-east-1", [], search=search)
    ec2.scores({HOME: 2}, ["us-east-1", HOME], search=search)
    assert capacity_cli.find(find_args(tmp_path), ec2, no_sleep) == 0
    ec2.done()
    out = capsys.readouterr().out
    assert out.startswith(
        "capacity find: Capacity Blocks of 1 x p5.48xlarge for 48 h, starting 2026-12-01 00:00 or later,"
        " ending by 2026-12-20 00:00 in 2 region(s)"
    )
    assert "cb-0000000000000000c" in out and "python -m ops capacity use <OFFERING>" in out
    saved = json.loads((tmp_path / "offerings.json").read_text())
    assert [o["offering_id"] for o in saved["offerings"]] == ["cb-0000000000000000c"]
    assert capacity_find.load(tmp_path / "offerings.json")["cb-0000000000000000c"].zone == "us-east-2b"


@pytest.mark.parametrize(
    "extra,wording",
    [
        ({"hours": 30}, "--hours"),
        ({"count": 65}, "--count"),
        ({"start": "next tuesday"}, "--start"),
        ({"start": "2026-12-20", "end": "2026-12-01"}, "--end"),
        ({"instance_type": "g5.48xlarge"}, "--instance-type"),
    ],
)
def test_bad_arguments_are_usage_errors(tmp_path: Any, extra: dict[str, Any], wording: str) -> None:
    with pytest.raises(capacity_cli.UsageError, match=wording):
        capacity_cli.find(find_args(tmp_path, **extra), Clients(), no_sleep)


def test_cli_exit_code_is_1_when_a_region_failed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ec2 = Clients()
    ec2.stub(HOME).add_client_error("describe_capacity_block_offerings", "UnauthorizedOperation", "nope")
    ec2.stub(HOME).add_response("get_spot_placement_scores", {"SpotPlacementScores": []})
    monkeypatch.setattr(capacity_cli, "ec2_factory", lambda session=None: ec2)
    save = str(tmp_path / "o.json")
    assert ops_main(["capacity", "find", "--stack", "prod-8gpu", "--regions", HOME, "--save", save]) == 1
    assert "grant ec2:DescribeCapacityBlockOfferings" in capsys.readouterr().out


def test_find_builds_one_ec2_client_per_region(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []

    def clients(region: str, *services: str, session: Any = None) -> tuple[Any, ...]:
        made.append(region)
        return (object(),)

    monkeypatch.setattr(awsclients, "clients", clients)
    ec2_for = capacity_cli.ec2_factory()
    assert ec2_for(HOME) is ec2_for(HOME)
    ec2_for("us-east-1")
    assert made == [HOME, "us-east-1"]


def test_capacity_commands_do_not_import_pulumi() -> None:
    import subprocess
    import sys
    from pathlib import Path

    code = "import sys, ops.capacity.cli, ops.capacity.use, ops.capacity.block_state; sys.exit('pulumi' in sys.modules)"
    root = Path(__file__).resolve().parent.parent
    assert subprocess.run([sys.executable, "-c", code], cwd=root, check=False, timeout=60).returncode == 0
