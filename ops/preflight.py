"""Will AWS let this stack come up? Checked with boto3 before `pulumi up`.

A p5 node group that cannot launch fails only after the VPC and EKS cluster exist (20+
minutes in), so the instance offering, the vCPU quota and any capacity reservation are
checked first, each failure with the command that fixes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from components.settings import Settings
from ops import awsclients
from ops.awsclients import Sleep, Throttled, call, error_code, error_message, is_denied, operation_of
from ops.report import Check, failed, passed, skipped

# Service Quotas: "Running On-Demand P instances" (vCPUs), the quota every p5 counts against.
P_QUOTA_CODE = "L-417A185B"
P_QUOTA_NAME = "Running On-Demand P instances"
# Capacity Block states that mean "bought, not yet usable" (EC2 CapacityReservation.State).
PENDING_STATES = frozenset({"scheduled", "payment-pending", "pending", "assessing", "delayed"})


def run(settings: Settings, ec2: Any, quotas: Any, sleep: Sleep = time.sleep) -> list[Check]:
    """Every preflight check for a stack, in the order a reader would fix them."""
    checks: list[Check] = []
    for name, check in (
        ("offered in region", _region_offering),
        ("offered in zones", _zone_offering),
        ("on-demand vCPU quota", _quota),
        ("capacity reservation", _reservation),
    ):
        checks += _guard(name, lambda c=check: c(settings, ec2, quotas, sleep))
    return checks


def _guard(name: str, check: Callable[[], list[Check]]) -> list[Check]:
    """Turn AWS errors into a failed row with its fix, so one denied API does not hide the rest."""
    try:
        return check()
    except Throttled as err:
        return [
            failed(
                name,
                str(err),
                "wait a minute and run preflight again; other tools in this account may be saturating the EC2 API",
            )
        ]
    except _Denied as err:
        return [
            failed(
                name,
                f"access denied to {err.operation}: {err.message}",
                f"grant {err.operation} to this principal (check it with `aws sts get-caller-identity`)",
            )
        ]
    except ClientError as err:
        return [failed(name, f"{error_code(err)}: {error_message(err)}")]
    except BotoCoreError as err:  # endpoint unreachable, proxy or TLS trouble
        return [
            failed(name, f"could not reach AWS: {err}", "check network access to the AWS APIs (proxy, VPC endpoints)")
        ]


class _Denied(Exception):
    def __init__(self, operation: str, message: str):
        self.operation, self.message = operation, message
        super().__init__(f"{operation}: {message}")


def _aws(fn: Callable[..., Any], sleep: Sleep, **kwargs: Any) -> Any:
    """`awsclients.call`, with access denied named by the IAM action it needs."""
    try:
        return call(fn, sleep=sleep, **kwargs)
    except ClientError as err:
        if is_denied(err):
            raise _Denied(operation_of(fn), error_message(err)) from err
        raise


def _offerings(ec2: Any, sleep: Sleep, location_type: str, instance_type: str) -> Iterator[dict[str, Any]]:
    kwargs: dict[str, Any] = {
        "LocationType": location_type,
        "Filters": [{"Name": "instance-type", "Values": [instance_type]}],
    }
    while True:
        page = _aws(ec2.describe_instance_type_offerings, sleep, **kwargs)
        yield from page.get("InstanceTypeOfferings", [])
        if not page.get("NextToken"):
            return
        kwargs["NextToken"] = page["NextToken"]


def _region_offering(settings: Settings, ec2: Any, quotas: Any, sleep: Sleep) -> list[Check]:
    itype, region = settings.gpu_nodes.instance_type, settings.region
    if any(o["InstanceType"] == itype for o in _offerings(ec2, sleep, "region", itype)):
        return [passed("offered in region", f"{itype} is offered in {region}")]
    return [
        failed(
            "offered in region",
            f"{itype} is not offered in {region}",
            f"pick a region that offers it (`aws ec2 describe-instance-type-offerings --location-type region --filters Name=instance-type,Values={itype} --region <region>`), then `pulumi config set aws:region <region>`",
        )
    ]


def _zone_offering(settings: Settings, ec2: Any, quotas: Any, sleep: Sleep) -> list[Check]:
    itype = settings.gpu_nodes.instance_type
    offered = sorted(
        {o["Location"] for o in _offerings(ec2, sleep, "availability-zone", itype) if o["InstanceType"] == itype}
    )
    wanted = settings.gpu_nodes.availability_zones
    if not offered:
        return [
            failed(
                "offered in zones",
                f"no zone of {settings.region} offers {itype}",
                "choose another region or instance type",
            )
        ]
    if not wanted:
        return [
            passed(
                "offered in zones",
                f"{itype} offered in {', '.join(offered)} (gpuNodes.availabilityZones unset: chosen at deploy time)",
            )
        ]
    missing = [z for z in wanted if z not in offered]
    if missing:
        return [
            failed(
                "offered in zones",
                f"{itype} is not offered in {', '.join(missing)}; offered in {', '.join(offered)}",
                f"pulumi config set --path 'gpuNodes.availabilityZones[0]' {offered[0]}",
            )
        ]
    return [passed("offered in zones", f"{itype} offered in {', '.join(wanted)}")]


def needed_vcpus(settings: Settings) -> int:
    """vCPUs the node group can reach at its maximum size: what the quota must cover."""
    return settings.gpu_nodes.max_size * settings.gpu_nodes.instance.vcpus


def quota_increase_command(region: str, desired: int) -> str:
    return f"aws service-quotas request-service-quota-increase --service-code ec2 --quota-code {P_QUOTA_CODE} --desired-value {desired} --region {region}"


def _quota(settings: Settings, ec2: Any, quotas: Any, sleep: Sleep) -> list[Check]:
    g = settings.gpu_nodes
    if g.capacity_type != "ON_DEMAND":
        return [
            skipped(
                "on-demand vCPU quota",
                f"{g.capacity_type} nodes run in the reserved block, outside the On-Demand P quota",
            )
        ]
    need = needed_vcpus(settings)
    value, source = _quota_value(quotas, sleep)
    detail = f"{P_QUOTA_NAME} ({P_QUOTA_CODE}) is {value:g} vCPUs{source}; gpuNodes.maxSize {g.max_size} x {g.instance.vcpus} vCPUs needs {need}"
    if value >= need:
        return [passed("on-demand vCPU quota", detail)]
    return [failed("on-demand vCPU quota", detail, quota_increase_command(settings.region, need))]


def _quota_value(quotas: Any, sleep: Sleep) -> tuple[float, str]:
    """The account's applied quota, or AWS's default when the account has never changed it."""
    try:
        quota = _aws(quotas.get_service_quota, sleep, ServiceCode="ec2", QuotaCode=P_QUOTA_CODE)
        return float(quota["Quota"]["Value"]), ""
    except ClientError as err:
        if error_code(err) != "NoSuchResourceException":
            raise
    quota = _aws(quotas.get_aws_default_service_quota, sleep, ServiceCode="ec2", QuotaCode=P_QUOTA_CODE)
    return float(quota["Quota"]["Value"]), " (AWS default)"


def _reservation(settings: Settings, ec2: Any, quotas: Any, sleep: Sleep) -> list[Check]:
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


def title(settings: Settings) -> str:
    g = settings.gpu_nodes
    return (
        f"preflight: stack {settings.stack} ({settings.region}, {g.instance_type} x{g.max_size} max, {g.capacity_type})"
    )


def main(settings: Settings, session: Any = None, sleep: Sleep = time.sleep) -> tuple[str, list[Check]]:
    """Run every check with clients for the stack's region; the caller prints and exits."""
    ec2, quotas = awsclients.clients(settings.region, "ec2", "service-quotas", session=session)
    return title(settings), run(settings, ec2, quotas, sleep)
