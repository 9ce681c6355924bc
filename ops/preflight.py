"""Will AWS let this stack come up? Checked with boto3 before `pulumi up`.

A p5 node group that cannot launch fails only after the VPC and EKS cluster exist (20+
minutes in), so the instance offering, the vCPU quota and any capacity reservation are
checked first, each failure with the command that fixes it. So are the Kubernetes version
and the pinned EKS add-on builds: an add-on build AWS does not list for the cluster version
fails `pulumi up` only once the cluster is up.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from components.facts import versions
from components.settings.capacity_block import CapacityBlockSettings
from components.settings.stack import Settings
from ops import awsclients, image_contents, preflight_mirror, preflight_resources, registry, zone_record
from ops.awsclients import AccessDenied as _Denied
from ops.awsclients import Sleep, Throttled, error_code, error_message
from ops.awsclients import call_checked as _aws
from ops.capacity.block_state import block_checks, block_health
from ops.report import Check, failed, passed, skipped

# Service Quotas: "Running On-Demand P instances" (vCPUs), the quota every p5 counts against.
P_QUOTA_CODE = "L-417A185B"
P_QUOTA_NAME = "Running On-Demand P instances"
# Capacity Block states that mean "bought, not yet usable" (EC2 CapacityReservation.State).
PENDING_STATES = frozenset({"scheduled", "payment-pending", "pending", "assessing", "delayed"})
# EKS DescribeClusterVersions `versionStatus`; the deprecated `status` spells them
# "standard-support" etc., normalised to these by `_support_status`.
STANDARD_SUPPORT, EXTENDED_SUPPORT, UNSUPPORTED = "STANDARD_SUPPORT", "EXTENDED_SUPPORT", "UNSUPPORTED"
# EKS control-plane list prices per cluster-hour (https://aws.amazon.com/eks/pricing/).
STANDARD_PRICE, EXTENDED_PRICE = 0.10, 0.60
ADDON_PINS = "components/facts/versions.py EKS_ADDON_VERSIONS"


def run(
    settings: Settings,
    ec2: Any,
    quotas: Any,
    sleep: Sleep = time.sleep,
    *,
    eks: Any = None,
    now: dt.datetime | None = None,
    window: CapacityBlockSettings | None = None,
) -> list[Check]:
    """Every preflight check for a stack, in the order a reader would fix them.

    `eks` is optional so callers that only check capacity keep working; without it the EKS
    checks show as skipped rows, never as passes. `now` and `window` time a Capacity Block.
    """
    checks: list[Check] = []
    reservation = functools.partial(
        _reservation, now=now or dt.datetime.now(dt.UTC), window=window or CapacityBlockSettings()
    )
    for name, check in (
        ("offered in region", _region_offering),
        ("offered in zones", _zone_offering),
        (zone_record.NAME, _zones_recorded),
        ("on-demand vCPU quota", _quota),
        ("capacity reservation", reservation),
    ):
        checks += _guard(name, lambda c=check: c(settings, ec2, quotas, sleep))
    for name, eks_check in (
        ("kubernetes version", _kubernetes_version),
        ("add-on versions", _addon_versions),
    ):
        if eks is None:
            checks.append(skipped(name, "no EKS client given, so not checked"))
        else:
            checks += _guard(name, lambda c=eks_check: c(settings, eks, sleep))
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
        return [passed("offered in zones", f"{itype} offered in {', '.join(offered)} (see {zone_record.NAME})")]
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


def _zones_recorded(settings: Settings, ec2: Any, quotas: Any, sleep: Sleep) -> list[Check]:
    itype = settings.gpu_nodes.instance_type
    offers = (o["Location"] for o in _offerings(ec2, sleep, "availability-zone", itype) if o["InstanceType"] == itype)
    return zone_record.check(settings, ec2, offers, sleep)


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
        *_guard("block health", lambda: block_health(ec2, cr, g.desired_size, sleep)),
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


def _pages(fn: Callable[..., Any], sleep: Sleep, key: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every item under `key` across an EKS API's nextToken pages."""
    while True:
        page = _aws(fn, sleep, **kwargs)
        yield from page.get(key, [])
        if not page.get("nextToken"):
            return
        kwargs["nextToken"] = page["nextToken"]


def _version_key(version: str) -> tuple[int, ...]:
    """Order by the numbers, not the text, so eksbuild.10 sorts after eksbuild.2."""
    return tuple(int(n) for n in re.findall(r"\d+", version))


def _support_status(entry: dict[str, Any]) -> str:
    """`versionStatus`, or the deprecated lower-case `status` for older responses."""
    status = entry.get("versionStatus") or str(entry.get("status", "")).upper().replace("-", "_")
    return status or "UNKNOWN"


def _newest_standard(eks: Any, sleep: Sleep) -> str | None:
    found = [
        v["clusterVersion"]
        for v in _pages(eks.describe_cluster_versions, sleep, "clusterVersions", versionStatus=STANDARD_SUPPORT)
        if v.get("clusterVersion") and _support_status(v) == STANDARD_SUPPORT
    ]
    return max(found, key=_version_key) if found else None


def _version_fix(newest: str | None) -> str:
    """The config command, plus where that version's add-on pins live (settings reject a version without them)."""
    if newest is None:
        return f"pulumi config set --path 'cluster.kubernetesVersion' <a version in standard support> (`aws eks describe-cluster-versions --version-status STANDARD_SUPPORT`), pinned in {ADDON_PINS}"
    command = f"pulumi config set --path 'cluster.kubernetesVersion' {newest}"
    if newest in versions.EKS_ADDON_VERSIONS:
        return f'{command} (its add-on pins: {ADDON_PINS}["{newest}"])'
    return f'pin its add-ons in {ADDON_PINS}["{newest}"] (`aws eks describe-addon-versions --kubernetes-version {newest} --addon-name <name>`), then {command}'


def _date(value: Any) -> str:
    return f"{value:%Y-%m-%d}" if value else "an unannounced date"


def _kubernetes_version(settings: Settings, eks: Any, sleep: Sleep) -> list[Check]:
    """The cluster version must be one EKS creates here, in standard support: extended support costs 6x."""
    name, v, region = "kubernetes version", settings.cluster.kubernetes_version, settings.region
    entry = next(
        (
            e
            for e in _pages(eks.describe_cluster_versions, sleep, "clusterVersions", clusterVersions=[v])
            if e.get("clusterVersion") == v
        ),
        None,
    )
    status = _support_status(entry) if entry else None
    if status == STANDARD_SUPPORT:
        until = entry.get("endOfStandardSupportDate") if entry else None
        return [passed(name, f"{v} is in standard support in {region}" + (f" until {_date(until)}" if until else ""))]
    fix = _version_fix(_newest_standard(eks, sleep))
    if entry is None:
        return [failed(name, f"EKS does not offer Kubernetes {v} in {region}", fix)]
    if status == EXTENDED_SUPPORT:
        extra = (EXTENDED_PRICE - STANDARD_PRICE) * 730
        return [
            failed(
                name,
                f"{v} is in extended support (standard support ended {_date(entry.get('endOfStandardSupportDate'))},"
                f" extended ends {_date(entry.get('endOfExtendedSupportDate'))}): the control plane bills at"
                f" ${EXTENDED_PRICE:.2f} instead of ${STANDARD_PRICE:.2f} per cluster-hour, about ${extra:.0f} more a month",
                fix,
            )
        ]
    why = "past the end of extended support" if status == UNSUPPORTED else f"in support status {status}"
    return [failed(name, f"Kubernetes {v} is {why} in {region}: EKS will not create a cluster on it", fix)]


def _addon_versions(settings: Settings, eks: Any, sleep: Sleep) -> list[Check]:
    """Every pinned add-on build must be one AWS lists for the cluster version, or `pulumi up` fails late."""
    v = settings.cluster.kubernetes_version
    pins = versions.EKS_ADDON_VERSIONS.get(v)
    if not pins:
        return [
            failed(
                "add-on versions",
                f"no add-on versions are pinned for Kubernetes {v}",
                f'add {ADDON_PINS}["{v}"] with a build of each add-on (`aws eks describe-addon-versions --kubernetes-version {v} --addon-name <name>`)',
            )
        ]
    return [_addon(eks, sleep, v, addon, pin) for addon, pin in pins.items()]


def _addon(eks: Any, sleep: Sleep, v: str, addon: str, pin: str) -> Check:
    name = f"add-on {addon}"
    compatible: list[str] = []
    default: str | None = None
    for info in _pages(eks.describe_addon_versions, sleep, "addons", kubernetesVersion=v, addonName=addon):
        if info.get("addonName", addon) != addon:
            continue
        for build in info.get("addonVersions", []):
            for compat in build.get("compatibilities", []):
                if compat.get("clusterVersion") == v:
                    compatible.append(build["addonVersion"])
                    if compat.get("defaultVersion") and default is None:
                        default = build["addonVersion"]
    if pin in compatible:
        return passed(name, f"{pin} is listed for Kubernetes {v}")
    where = f'{ADDON_PINS}["{v}"]["{addon}"]'
    if not compatible:
        return failed(
            name,
            f"pinned {pin}, but AWS lists no {addon} build for Kubernetes {v} in this region",
            f"check `aws eks describe-addon-versions --kubernetes-version {v} --addon-name {addon}`, then edit {where}",
        )
    suggested = default or max(compatible, key=_version_key)
    label = "the default" if default else "the newest"
    return failed(
        name,
        f"pinned {pin} is not listed for Kubernetes {v}; {label} listed build is {suggested}",
        f'edit {where} = "{suggested}"',
    )


VERSIONS_FILE = Path(versions.__file__)
_DIGESTS_LINE = re.compile(r"^VLLM_IMAGE_DIGESTS: dict\[str, str\] = \{.*\}$", re.MULTILINE)


def record_digest(tag: str, digest: str, path: Path = VERSIONS_FILE) -> None:
    """Rewrite the VLLM_IMAGE_DIGESTS line of components/facts/versions.py with this tag's digest."""
    recorded = {**versions.VLLM_IMAGE_DIGESTS, tag: digest}
    line = f"VLLM_IMAGE_DIGESTS: dict[str, str] = {json.dumps(dict(sorted(recorded.items())))}"
    text = path.read_text()
    if not _DIGESTS_LINE.search(text):
        raise ValueError(f"no VLLM_IMAGE_DIGESTS line to rewrite in {path}")
    path.write_text(_DIGESTS_LINE.sub(line, text, count=1))
    versions.VLLM_IMAGE_DIGESTS[tag] = digest


def image_digest(
    settings: Settings, resolve: Callable[[str], str], *, record: bool = False, path: Path = VERSIONS_FILE
) -> list[Check]:
    """The image tag must still resolve to the recorded digest; prod stacks need one recorded."""
    name, image = "image digest", settings.serving.image
    tag = image.partition(":")[2]
    recorded = versions.VLLM_IMAGE_DIGESTS.get(tag)
    record_fix = f"python -m ops preflight --stack {settings.stack} --record-digest"
    try:
        current = resolve(image)
    except registry.RegistryError as err:
        return [failed(name, f"could not resolve {image}: {err}", "check HTTPS access to the image registry")]
    if record:
        record_digest(tag, current, path)
        return [passed(name, f"recorded {image}@{current} in {path.name}: commit it")]
    if recorded is None:
        detail = f"no digest recorded for {image} (the registry serves {current})"
        if settings.is_production:
            return [
                failed(name, f"{detail}; a {settings.environment} stack runs only a digest-pinned image", record_fix)
            ]
        return [skipped(name, f"{detail}; record it with `{record_fix}`")]
    if recorded != current:
        return [
            failed(
                name,
                f"{image} now resolves to {current}, not the recorded {recorded}: the tag was re-pushed",
                f"validate the new image, then `{record_fix}`",
            )
        ]
    return [passed(name, f"{image} still resolves to the recorded {recorded}")]


def _docker_hub_digest(image: str) -> str:
    return registry.resolve_digest(registry.parse(image))


def aws_cli(which: Callable[[str], str | None] = shutil.which) -> Check:
    """The stack's kubeconfig (and the Kubernetes provider of `pulumi up`) runs `aws eks get-token`."""
    name = "aws CLI on PATH"
    found = which("aws")
    if found:
        return passed(name, f"{found} (the kubeconfig runs `aws eks get-token`)")
    return failed(
        name,
        "`aws` is not on PATH: the kubeconfig and the Kubernetes provider authenticate with `aws eks get-token`,"
        " so `pulumi up` cannot reach the cluster",
        "install AWS CLI v2 (https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html),"
        " then check `aws --version`",
    )


def title(settings: Settings) -> str:
    g = settings.gpu_nodes
    return (
        f"preflight: stack {settings.stack} ({settings.region}, {g.instance_type} x{g.max_size} max, {g.capacity_type})"
    )


def main(
    settings: Settings,
    session: Any = None,
    sleep: Sleep = time.sleep,
    window: CapacityBlockSettings | None = None,
    *,
    record: bool = False,
    resolve: Callable[[str], str] = _docker_hub_digest,
    which: Callable[[str], str | None] = shutil.which,
) -> tuple[str, list[Check]]:
    """Run every check with clients for the stack's region; the caller prints and exits."""
    ec2, quotas, eks, s3, sts = awsclients.clients(
        settings.region, "ec2", "service-quotas", "eks", "s3", "sts", session=session
    )
    checks = [aws_cli(which), *run(settings, ec2, quotas, sleep, eks=eks, window=window)]
    checks += _guard("existing resources", lambda: preflight_resources.run(settings, ec2, s3, sleep))
    # A weight mirror kept by an earlier destroy: the next up imports it (ops/preflight_mirror.py).
    checks += _guard(preflight_mirror.ROW, lambda: preflight_mirror.check(settings, s3, eks, sts, sleep))
    checks += image_digest(settings, resolve, record=record)
    return title(settings), [*checks, image_contents.preflight_row(settings.serving.image)]
