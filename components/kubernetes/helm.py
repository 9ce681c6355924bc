"""Helm releases from the pinned charts in versions.py, so no chart is ever installed unpinned."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s


def pinned_release(
    resource_name: str,
    pin: tuple[str, str, str],
    *,
    namespace: str,
    values: dict[str, Any],
    opts: pulumi.ResourceOptions,
    **extra: Any,
) -> k8s.helm.v3.Release:
    """A release of `pin` = (repository, chart, version), named after the chart."""
    repo, chart, version = pin
    return k8s.helm.v3.Release(
        resource_name,
        name=chart,
        chart=chart,
        version=version,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=repo),
        namespace=namespace,
        values=values,
        opts=opts,
        **extra,
    )
