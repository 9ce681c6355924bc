"""Preflight rows that follow a Capacity Block through time: scheduled, active, ending.

A block is bought for fixed dates and EC2 takes its instances back at the end. Preflight
therefore reports how much of the block is left, fails when that is less than the
configured minimum window, and reminds that EKS wants the node group at desired size 0
before the end (EKS user guide, "Capacity Blocks for ML": scale to zero more than 30
minutes before the reservation's end time, and to 0 while upgrading such a node group).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from components.settings.capacity_block import CapacityBlockSettings
from ops.awsclients import Sleep, call_checked
from ops.report import Check, failed, info, passed, skipped

UTC = dt.UTC
DRAIN_MARGIN = dt.timedelta(minutes=30)  # EKS user guide: scale to zero more than 30 minutes before the end
SCHEDULED_STATES = frozenset({"scheduled", "payment-pending"})


def scale_to_zero_command(stack: str, region: str, max_size: int) -> str:
    """Scales the stack's GPU node group to 0 in EKS (names from the stack's outputs)."""
    return (
        f'aws eks update-nodegroup-config --cluster-name "$(pulumi stack output clusterName --stack {stack})"'
        f' --nodegroup-name "$(pulumi stack output gpuNodeGroupName --stack {stack})"'
        f" --scaling-config minSize=0,maxSize={max(max_size, 1)},desiredSize=0 --region {region}"
    )


def _at(value: dt.datetime) -> str:
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _hours(delta: dt.timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.1f} h"


def find_command(stack: str) -> str:
    return f"python -m ops capacity find --stack {stack}"


def block_checks(
    cr: dict[str, Any], *, stack: str, region: str, max_size: int, now: dt.datetime, window: CapacityBlockSettings
) -> list[Check]:
    """Rows for one capacity-block reservation (EC2 CapacityReservation) at time `now`."""
    rid, state = cr["CapacityReservationId"], cr.get("State", "unknown")
    start, end = cr.get("StartDate"), cr.get("EndDate")
    if end is None:
        return [skipped("block window", f"{rid} has no end date")]
    minimum = dt.timedelta(hours=window.min_window_hours)

    def extend(short: dt.timedelta) -> str:
        days = max(1, math.ceil(short.total_seconds() / 86400))
        return (
            f"extend it: `aws ec2 describe-capacity-block-extension-offerings --capacity-reservation-id {rid}"
            f" --capacity-block-extension-duration-hours {days * 24} --region {region}` (then"
            f" `aws ec2 purchase-capacity-block-extension`), or find a longer block: {find_command(stack)}"
        )

    if state in SCHEDULED_STATES:
        usable = end - start if start else dt.timedelta(0)
        when = f"{state}: starts {_at(start)} (in {_hours(start - now)})" if start else f"{state}"
        detail = f"{rid} {when}, ends {_at(end)}: {_hours(usable)} of capacity"
        if usable < minimum:
            return [
                failed(
                    "block window",
                    f"{detail}, less than the {window.min_window_hours} h minimum window",
                    extend(minimum - usable),
                ),
                _reminder(stack, region, max_size, end),
            ]
        return [passed("block window", detail), _reminder(stack, region, max_size, end)]
    if state != "active":
        return [skipped("block window", f"{rid} is {state}: no capacity to follow")]
    left = end - now
    detail = f"{rid} is active, ends {_at(end)} (in {_hours(left)})"
    if left < minimum:
        rows = [
            failed(
                "block window",
                f"{detail}: less than the {window.min_window_hours} h minimum window",
                extend(minimum - left),
            )
        ]
    elif left <= dt.timedelta(hours=window.ending_soon_hours):
        rows = [info("block window", f"{detail}: ending within {window.ending_soon_hours} h")]
    else:
        rows = [passed("block window", detail)]
    return [*rows, _reminder(stack, region, max_size, end)]


def _reminder(stack: str, region: str, max_size: int, end: dt.datetime) -> Check:
    return Check(
        "block end",
        "INFO",
        f"EKS needs the GPU node group at desired size 0 before the block ends: by {_at(end - DRAIN_MARGIN)} at the latest"
        " (EC2 takes the instances back at the end)",
        scale_to_zero_command(stack, region, max_size),
    )


def block_health(ec2: Any, cr: dict[str, Any], desired: int, sleep: Sleep) -> list[Check]:
    """An active block's usable instances (`ec2:DescribeCapacityBlockStatus`): capacity that
    failed EC2's status checks cannot take a node, so it must leave room for desiredSize."""
    block_id = cr.get("CapacityBlockId")
    if cr.get("State") != "active" or not block_id:
        return []
    statuses = call_checked(ec2.describe_capacity_block_status, sleep, CapacityBlockIds=[block_id])
    status = next((s for s in statuses.get("CapacityBlockStatuses", []) if s.get("CapacityBlockId") == block_id), None)
    if status is None:
        return [skipped("block health", f"EC2 reports no status for {block_id} yet")]
    total, broken = int(status.get("TotalCapacity", 0)), int(status.get("TotalUnavailableCapacity", 0))
    detail = (
        f"{block_id}: {total - broken} of {total} instance(s) usable ({broken} failed status checks),"
        f" {int(status.get('TotalAvailableCapacity', 0))} free to launch,"
        f" interconnect {status.get('InterconnectStatus', 'unknown')}"
    )
    if total - broken < desired:
        return [
            failed(
                "block health",
                f"{detail}; gpuNodes.desiredSize is {desired}",
                "ask AWS Support about the impaired capacity, or lower gpuNodes.desiredSize (and serving.replicas) to the usable count",
            )
        ]
    return [passed("block health", detail)]
