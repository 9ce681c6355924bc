"""A custom resource (KEDA, Prometheus operator) from the plain dict the pure builders return,
so tests and `make plan` read exactly what the cluster receives."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s


def from_object(name: str, obj: dict[str, Any], opts: pulumi.ResourceOptions) -> k8s.apiextensions.CustomResource:
    return k8s.apiextensions.CustomResource(
        name,
        api_version=obj["apiVersion"],
        kind=obj["kind"],
        metadata=obj["metadata"],
        spec=obj["spec"],
        opts=opts,
    )
