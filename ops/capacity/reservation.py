"""Preflight rows for the stack's capacity reservation (an ODCR or a Capacity Block): it exists, is
active or bought and pending, holds the instance type, zone and size the node group asks for."""

from __future__ import annotations

import datetime as dt
from typing import Any

from botocore.exceptions import ClientError

from components.settings.capacity_block import CapacityBlockSettings
from components.settings.stack import Settings
from ops.awsclients import Sleep, error_code, guard
from ops.awsclients import call_checked as _aws
from ops.capacity.block_state import block_checks, block_health
from ops.report import Check, failed, passed, skipped

# Capacity Block states that mean "bought, not yet usable" (EC2 CapacityReservation.State).
PENDING_STATES = frozenset({"scheduled", "payment-pending", "pending", "assessing", "delayed"})


def _reservation(
    settings: Settings, ec2: Any, quotas: Any, sleep: Sleep, *, now: dt.datetime, window: CapacityBlockSettings
) -> list[Check]:
    g = settings.gpu_nodes
    rid = g.capacity_reservation_id
    if not rid:
        return [skipped("capacity reservation", "none configured (gpuNodes.capacityReservationId)")]
    try:
        found = _aws(ec2.describe_capacity_reservations, sleep, CapacityReservationIds=[rid])["CapacityReservations"]
    except ClientError as err:
        if not error_code(err).startswith("InvalidCapacityReservationId"):
            raise
        found = []
    if not found:
        return [
            failed(
                "capacity reservation",
                f"{rid} does not exist in {settings.region}",
                f"check the id and region with `aws ec2 describe-capacity-reservations --region {settings.region}`, then `pulumi config set --path 'gpuNodes.capacityReservationId' cr-...`",
            )
        ]
    cr = found[0]
    return [
        passed(
            "capacity reservation",
            f"{rid} exists ({cr.get('ReservationType', 'default')}, {cr.get('AvailabilityZone')})",
        ),
        *_reservation_fit(settings, cr),
        *(
            block_checks(
                cr,
                stack=settings.stack,
                region=settings.region,
                max_size=g.max_size,
                now=now,
                window=window,
            )
            if cr.get("ReservationType") == "capacity-block"
            else []
        ),
        *guard("block health", lambda: block_health(ec2, cr, g.desired_size, sleep)),
    ]


def _reservation_fit(settings: Settings, cr: dict[str, Any]) -> list[Check]:
    """Does the reservation serve this node group: usable now, the right type, zone and size."""
    g = settings.gpu_nodes
    return [
        _state(cr),
        _kind(g.capacity_type, cr),
        _type(g.instance_type, cr),
        _zone(g.capacity_type, g.availability_zones, cr),
        _size(g.desired_size, cr),
    ]


def _state(cr: dict[str, Any]) -> Check:
    rid, state = cr["CapacityReservationId"], cr.get("State", "unknown")
    if state == "active":
        end = cr.get("EndDate")
        return passed("reservation state", f"{rid} is active" + (f" until {end:%Y-%m-%d %H:%M %Z}" if end else ""))
    if state in PENDING_STATES:
        start = cr.get("StartDate")
        when = f"{start:%Y-%m-%d %H:%M %Z}".strip() if start else "its start date"
        return failed(
            "reservation state",
            f"{rid} is {state}; it starts {when}",
            f"run `pulumi up` after {when}, when the block is active",
        )
    return failed(
        "reservation state",
        f"{rid} is {state}",
        "buy a new block (`aws ec2 describe-capacity-block-offerings ...`) and set gpuNodes.capacityReservationId to it",
    )


def _kind(capacity_type: str, cr: dict[str, Any]) -> Check:
    kind = cr.get("ReservationType", "default")
    is_block = kind == "capacity-block"
    if is_block == (capacity_type == "CAPACITY_BLOCK"):
        return passed("reservation kind", f"{kind} reservation matches gpuNodes.capacityType {capacity_type}")
    want = "CAPACITY_BLOCK" if is_block else "ON_DEMAND"
    return failed(
        "reservation kind",
        f"{kind} reservation but gpuNodes.capacityType is {capacity_type}",
        f"pulumi config set --path 'gpuNodes.capacityType' {want}",
    )


def _type(instance_type: str, cr: dict[str, Any]) -> Check:
    got = cr.get("InstanceType")
    if got == instance_type:
        return passed("reservation type", f"reserves {got}")
    return failed(
        "reservation type",
        f"reserves {got}, gpuNodes.instanceType is {instance_type}",
        f"pulumi config set --path 'gpuNodes.instanceType' {got}",
    )


def _zone(capacity_type: str, zones: tuple[str, ...], cr: dict[str, Any]) -> Check:
    """A Capacity Block node group must sit in exactly the block's zone; an ODCR's zone must be one of ours."""
    zone = cr.get("AvailabilityZone")
    ok = list(zones) == [zone] if capacity_type == "CAPACITY_BLOCK" else zone in zones
    if ok:
        return passed("reservation zone", f"{zone} is a zone of the node group")
    shown = ", ".join(zones) or "unset"
    return failed(
        "reservation zone",
        f"reservation is in {zone}; gpuNodes.availabilityZones is {shown}",
        f"pulumi config set --path 'gpuNodes.availabilityZones[0]' {zone}",
    )


def _size(desired: int, cr: dict[str, Any]) -> Check:
    total = int(cr.get("TotalInstanceCount", 0))
    if total >= desired:
        return passed("reservation size", f"{total} instance(s) reserved, gpuNodes.desiredSize is {desired}")
    return failed(
        "reservation size",
        f"{total} instance(s) reserved, gpuNodes.desiredSize is {desired}",
        f"pulumi config set --path 'gpuNodes.desiredSize' {total} (and serving.replicas to fit), or reserve more",
    )
