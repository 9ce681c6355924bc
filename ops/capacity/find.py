"""`ops capacity find`: Capacity Block offerings for the GPU type, across regions, by start date then price.

On-demand p5 often fails with InsufficientInstanceCapacity; a Capacity Block for ML is
reserved GPU capacity for fixed dates. EC2 lists what is for sale per region
(`DescribeCapacityBlockOfferings`), so this asks every region that offers the instance type
and prints one table, sorted by start date then total price, next to what the same hours
cost on demand. Spot placement scores are shown for information only: the stack never
runs on spot.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

# The instance type catalogue (list prices). Imported here only; moving it is a one-line change.
from components.facts.catalog import INSTANCE_TYPES
from ops.awsclients import AccessDenied, Sleep, Throttled, call_checked, error_code, error_message
from ops.report import Check, failed, info, passed

UTC = dt.UTC
# EC2 sells blocks of 1 to 14 days in whole days, then in whole weeks up to 182 days.
DAY, WEEK, MAX_HOURS = 24, 7 * 24, 182 * 24
# Codes EC2 answers with in a region the account has not enabled (opt-in regions).
NOT_ENABLED_CODES = frozenset({"OptInRequired", "AuthFailure"})
SPOT_REGIONS_PER_CALL = 10  # GetSpotPlacementScores RegionNames: at most 10
DEFAULT_SAVE = Path("plan-out/capacity-offerings.json")

EC2For = Callable[[str], Any]  # region -> EC2 client


def catalogued_types() -> tuple[str, ...]:
    """The GPU instance types the stack supports (the catalogue's names)."""
    return tuple(INSTANCE_TYPES)


def list_price_per_hour(instance_type: str) -> float | None:
    """On-demand list price of one instance-hour, from the catalogue (None when not listed)."""
    known = INSTANCE_TYPES.get(instance_type)
    return known.price_per_hour_usd if known else None


def duration_problem(hours: int) -> str | None:
    """Why EC2 would refuse this CapacityDurationHours, or None when it is a duration EC2 sells."""
    if hours <= 0 or hours % DAY:
        return f"{hours} h is not a whole number of days (24, 48, ... 336 h)"
    if hours > 14 * DAY and (hours % WEEK or hours > MAX_HOURS):
        return f"{hours} h: beyond 14 days EC2 sells whole weeks (504, 672, ... up to {MAX_HOURS} h)"
    return None


@dataclass(frozen=True)
class Search:
    """What to look for: one DescribeCapacityBlockOfferings request, asked in each region."""

    instance_type: str
    instance_count: int
    duration_hours: int
    start: dt.datetime | None = None  # earliest start (StartDateRange)
    end: dt.datetime | None = None  # latest end (EndDateRange)

    def request(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "InstanceType": self.instance_type,
            "InstanceCount": self.instance_count,
            "CapacityDurationHours": self.duration_hours,
        }
        if self.start:
            kwargs["StartDateRange"] = self.start
        if self.end:
            kwargs["EndDateRange"] = self.end
        return kwargs

    def describe(self) -> str:
        window = f", starting {when_utc(self.start)} or later" if self.start else ""
        window += f", ending by {when_utc(self.end)}" if self.end else ""
        return f"{self.instance_count} x {self.instance_type} for {self.duration_hours} h{window}"


@dataclass(frozen=True)
class Offering:
    """One Capacity Block for sale (the fields of EC2's CapacityBlockOffering we use)."""

    offering_id: str
    region: str
    zone: str
    instance_type: str
    instance_count: int
    start: dt.datetime | None
    end: dt.datetime | None
    duration_hours: float
    upfront_fee: float
    currency: str
    tenancy: str = "default"

    @classmethod
    def from_api(cls, region: str, o: dict[str, Any]) -> Offering:
        hours = o.get("CapacityBlockDurationHours", 0) + o.get("CapacityBlockDurationMinutes", 0) / 60
        if not hours and o.get("StartDate") and o.get("EndDate"):
            hours = (o["EndDate"] - o["StartDate"]).total_seconds() / 3600
        return cls(
            offering_id=o["CapacityBlockOfferingId"],
            region=region,
            zone=o.get("AvailabilityZone", ""),
            instance_type=o.get("InstanceType", ""),
            instance_count=int(o.get("InstanceCount", 0)),
            start=o.get("StartDate"),
            end=o.get("EndDate"),
            duration_hours=float(hours),
            upfront_fee=float(o.get("UpfrontFee") or 0),
            currency=o.get("CurrencyCode", "USD"),
            tenancy=o.get("Tenancy", "default"),
        )

    @property
    def hourly(self) -> float:
        """The upfront fee spread over the block's hours (all its instances)."""
        return self.upfront_fee / self.duration_hours if self.duration_hours else 0.0

    @property
    def on_demand(self) -> float | None:
        """What the same instances for the same hours cost at the on-demand list price."""
        price = list_price_per_hour(self.instance_type)
        return price * self.instance_count * self.duration_hours if price is not None else None

    def sort_key(self) -> tuple[Any, ...]:
        start = self.start or dt.datetime.max.replace(tzinfo=UTC)
        return (start, self.upfront_fee, self.region, self.zone, self.offering_id)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["start"] = self.start.isoformat() if self.start else None
        out["end"] = self.end.isoformat() if self.end else None
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Offering:
        dates = {k: dt.datetime.fromisoformat(raw[k]) if raw.get(k) else None for k in ("start", "end")}
        return cls(**{**raw, **dates})


@dataclass
class Found:
    """Everything `find` learned: the offerings, one row per region, the spot scores."""

    search: Search
    regions: list[str]
    offerings: list[Offering] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    spot_scores: dict[str, int] = field(default_factory=dict)


def _pages(fn: Callable[..., Any], sleep: Sleep, key: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every item under `key` across an EC2 API's NextToken pages."""
    while True:
        page = call_checked(fn, sleep, **kwargs)
        yield from page.get(key, [])
        if not page.get("NextToken"):
            return
        kwargs["NextToken"] = page["NextToken"]


def offering_regions(ec2: Any, ec2_for: EC2For, instance_type: str, sleep: Sleep) -> tuple[list[str], list[Check]]:
    """Enabled regions whose EC2 offers the instance type (DescribeRegions, then each region's
    offerings), and a row for each region that could not be asked."""
    enabled = sorted(r["RegionName"] for r in call_checked(ec2.describe_regions, sleep).get("Regions", []))
    regions: list[str] = []

    def probe(region: str) -> list[Check]:
        if _offers(ec2_for(region), instance_type, sleep):
            regions.append(region)
        return []

    checks = [row for region in enabled for row in _guard(region, lambda r=region: probe(r))]
    return regions, checks


def _offers(ec2: Any, instance_type: str, sleep: Sleep) -> bool:
    found = _pages(
        ec2.describe_instance_type_offerings,
        sleep,
        "InstanceTypeOfferings",
        LocationType="region",
        Filters=[{"Name": "instance-type", "Values": [instance_type]}],
    )
    return any(o.get("InstanceType") == instance_type for o in found)


def region_offerings(ec2: Any, region: str, search: Search, sleep: Sleep) -> list[Offering]:
    """Every offering of one region (all pages), for the searched type and count only."""
    return [
        Offering.from_api(region, o)
        for o in _pages(ec2.describe_capacity_block_offerings, sleep, "CapacityBlockOfferings", **search.request())
        if o.get("InstanceType", search.instance_type) == search.instance_type
    ]


def spot_scores(ec2: Any, regions: list[str], search: Search, sleep: Sleep) -> dict[str, int]:
    """Region -> spot placement score (1-10) for the instance type and count. For information:
    EC2 scores a single instance type low by design, and the stack does not use spot."""
    scores: dict[str, int] = {}
    for i in range(0, len(regions), SPOT_REGIONS_PER_CALL):
        for s in _pages(
            ec2.get_spot_placement_scores,
            sleep,
            "SpotPlacementScores",
            InstanceTypes=[search.instance_type],
            TargetCapacity=search.instance_count,
            RegionNames=regions[i : i + SPOT_REGIONS_PER_CALL],
        ):
            if s.get("Region") and "Score" in s:
                scores[s["Region"]] = max(scores.get(s["Region"], 0), int(s["Score"]))
    return scores


def find(
    search: Search, home: str, ec2_for: EC2For, sleep: Sleep = time.sleep, regions: Iterable[str] | None = None
) -> Found:
    """Search each region (default: every enabled region that offers the type); never raises for
    one region's AWS error, which becomes that region's row."""
    checks: list[Check] = []
    listed: list[str] = []

    def discover() -> list[Check]:
        regions, problems = offering_regions(ec2_for(home), ec2_for, search.instance_type, sleep)
        listed.extend(regions)
        shown = ", ".join(regions) or "none"
        return [info("regions", f"{len(regions)} enabled region(s) offer {search.instance_type}: {shown}"), *problems]

    if regions is None:
        checks += _guard("regions", discover)
        chosen = listed or [home]
    else:
        chosen = sorted(dict.fromkeys(regions))
    found = Found(search, chosen, checks=checks)
    for region in chosen:
        found.checks += _guard(region, lambda r=region: _region_row(r, ec2_for(r), search, sleep, found.offerings))
    found.offerings.sort(key=Offering.sort_key)
    if not found.offerings:
        found.checks.append(
            failed(
                "offerings",
                f"no Capacity Block offering for {search.describe()} in {', '.join(chosen)}",
                "widen the window (--start earlier, --end later), try another --hours or --count, or other --regions",
            )
        )
    spot = _guard("spot placement scores", lambda: _scores_row(found, ec2_for(home), sleep))
    found.checks += [Check(c.name, "INFO", c.detail, c.fix) for c in spot]  # informational: never fails
    return found


def _region_row(region: str, ec2: Any, search: Search, sleep: Sleep, into: list[Offering]) -> list[Check]:
    offers = region_offerings(ec2, region, search, sleep)
    into += offers
    if not offers:
        return [info(region, "no offering in the window")]
    cheapest = min(offers, key=lambda o: o.upfront_fee)
    return [passed(region, f"{len(offers)} offering(s), from {money(cheapest.upfront_fee, cheapest.currency)}")]


def _scores_row(found: Found, ec2: Any, sleep: Sleep) -> list[Check]:
    found.spot_scores = spot_scores(ec2, found.regions, found.search, sleep)
    shown = ", ".join(f"{r} {s}" for r, s in sorted(found.spot_scores.items())) or "none returned"
    return [info("spot placement scores", f"{shown} (1-10; informational, the stack does not run on spot)")]


def _guard(name: str, check: Callable[[], list[Check]]) -> list[Check]:
    """One region's AWS error as its row, so the other regions are still searched."""
    try:
        return check()
    except AccessDenied as err:
        if err.code in NOT_ENABLED_CODES:
            return [_not_enabled(name, err.code, err.message)]
        return [
            failed(
                name,
                f"access denied to {err.operation}: {err.message}",
                f"grant {err.operation} to this principal (an SCP may also deny the region); check it with `aws sts get-caller-identity`",
            )
        ]
    except Throttled as err:
        return [failed(name, str(err), "wait a minute and run it again; fewer --regions make fewer calls")]
    except ClientError as err:
        if error_code(err) in NOT_ENABLED_CODES:
            return [_not_enabled(name, error_code(err), error_message(err))]
        return [failed(name, f"{error_code(err)}: {error_message(err)}")]
    except BotoCoreError as err:
        return [
            failed(name, f"could not reach AWS: {err}", "check network access to the AWS APIs (proxy, VPC endpoints)")
        ]


def _not_enabled(region: str, code: str, message: str) -> Check:
    return Check(
        region,
        "SKIP",
        f"region not enabled for this account ({code}: {message})",
        f"to search it, enable it: aws account enable-region --region-name {region}",
    )


# --- output -----------------------------------------------------------------------------

COLUMNS = (
    "REGION",
    "ZONE",
    "START (UTC)",
    "END (UTC)",
    "HOURS",
    "UPFRONT",
    "PER HOUR",
    "ON-DEMAND",
    "SPOT",
    "OFFERING",
)


def when_utc(value: dt.datetime | None) -> str:
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M}" if value else "-"


def money(amount: float, currency: str = "USD") -> str:
    return f"{amount:,.2f} {currency}"


def rows(found: Found) -> list[tuple[str, ...]]:
    out = []
    for o in found.offerings:
        od = o.on_demand
        score = found.spot_scores.get(o.region)
        out.append(
            (
                o.region,
                o.zone,
                when_utc(o.start),
                when_utc(o.end),
                f"{o.duration_hours:g}",
                money(o.upfront_fee, o.currency),
                money(o.hourly, o.currency),
                money(od) if od is not None else "-",
                str(score) if score is not None else "-",
                o.offering_id,
            )
        )
    return out


def table(found: Found) -> str:
    """The offerings as a fixed-width table (empty string when there are none)."""
    body = rows(found)
    if not body:
        return ""
    widths = [max(len(c), *(len(r[i]) for r in body)) for i, c in enumerate(COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in body]
    return "\n".join(lines)


def title(found: Found) -> str:
    return f"capacity find: Capacity Blocks of {found.search.describe()} in {len(found.regions)} region(s)"


def legend(found: Found) -> str:
    price = list_price_per_hour(found.search.instance_type)
    basis = f"{price:g} USD per instance-hour" if price is not None else "no list price in the catalogue"
    return (
        "UPFRONT is the whole block, paid at purchase; PER HOUR spreads it over the block's hours; "
        f"ON-DEMAND is the same instances and hours at the catalogue's on-demand list price ({basis}); "
        "SPOT is the region's spot placement score (informational).\n"
        "next: python -m ops capacity use <OFFERING> --stack <stack>"
    )


def save(found: Found, path: Path) -> None:
    """Keep the offerings for `capacity use`, which needs each one's region, zone and count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"search": found.search.describe(), "offerings": [o.to_json() for o in found.offerings]}
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def load(path: Path) -> dict[str, Offering]:
    """Offerings saved by the last `capacity find`, by id (empty when there is no file)."""
    if not path.is_file():
        return {}
    doc = json.loads(path.read_text())
    return {raw["offering_id"]: Offering.from_json(raw) for raw in doc.get("offerings", [])}
