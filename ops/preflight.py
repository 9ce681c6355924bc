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

from botocore.exceptions import ClientError

from components.facts import versions
from components.settings.capacity_block import CapacityBlockSettings
from components.settings.stack import Settings
from ops import awsclients, registry
from ops.aws_checks import images as preflight_images
from ops.aws_checks import mirror as preflight_mirror
from ops.aws_checks import resources as preflight_resources
from ops.aws_checks import zone_record
from ops.aws_checks.eks_versions import _addon_versions, _kubernetes_version
from ops.awsclients import Sleep, error_code, guard
from ops.awsclients import call_checked as _aws
from ops.capacity.reservation import _reservation
from ops.image import contents as image_contents
from ops.report import Check, failed, passed, skipped

# Service Quotas: "Running On-Demand P instances" (vCPUs), the quota every p5 counts against.
P_QUOTA_CODE = "L-417A185B"
P_QUOTA_NAME = "Running On-Demand P instances"


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
        checks += guard(name, lambda c=check: c(settings, ec2, quotas, sleep))
    for name, eks_check in (
        ("kubernetes version", _kubernetes_version),
        ("add-on versions", _addon_versions),
    ):
        if eks is None:
            checks.append(skipped(name, "no EKS client given, so not checked"))
        else:
            checks += guard(name, lambda c=eks_check: c(settings, eks, sleep))
    return checks


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
    ec2, quotas, eks, s3, sts, ecr, kms = awsclients.clients(
        settings.region, "ec2", "service-quotas", "eks", "s3", "sts", "ecr", "kms", session=session
    )
    checks = [aws_cli(which), *run(settings, ec2, quotas, sleep, eks=eks, window=window)]
    checks += guard("existing resources", lambda: preflight_resources.run(settings, ec2, s3, sleep))
    # A weight mirror kept by an earlier destroy: the next up imports it (ops/aws_checks/mirror.py).
    checks += guard(preflight_mirror.ROW, lambda: preflight_mirror.check(settings, s3, eks, sts, kms, sleep))
    checks += image_digest(settings, resolve, record=record)
    # The images the pods pull, in the stack's own repositories (ops/aws_checks/images.py).
    checks += guard(preflight_images.ROW, lambda: preflight_images.check(settings, ecr, sts, sleep))
    return title(settings), [*checks, image_contents.preflight_row(settings.serving.image)]
