"""Preflight rows for EKS versions: the stack's Kubernetes version in standard support in its region
(extended support bills the control plane at six times the price), and each pinned add-on build
listed by EKS for that version, each failure with the edit or command that fixes it."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from components.facts import versions
from components.settings.stack import Settings
from ops.awsclients import Sleep
from ops.awsclients import call_checked as _aws
from ops.report import Check, failed, passed

# EKS DescribeClusterVersions `versionStatus`; the deprecated `status` spells them
# "standard-support" etc., normalised to these by `_support_status`.
STANDARD_SUPPORT, EXTENDED_SUPPORT, UNSUPPORTED = "STANDARD_SUPPORT", "EXTENDED_SUPPORT", "UNSUPPORTED"


# EKS control-plane list prices per cluster-hour (https://aws.amazon.com/eks/pricing/).
STANDARD_PRICE, EXTENDED_PRICE = 0.10, 0.60


ADDON_PINS = "components/facts/versions.py EKS_ADDON_VERSIONS"


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
