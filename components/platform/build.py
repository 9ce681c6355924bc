"""The whole system from one stack's settings: the AWS layer, then the Kubernetes layer on it."""

from __future__ import annotations

from typing import Any

from components.platform.aws_layer import build_aws
from components.platform.kubernetes_layer import build_kubernetes
from components.settings.stack import Secrets, Settings


def build(settings: Settings, secrets: Secrets) -> dict[str, Any]:
    """Declare every resource; return the stack outputs."""
    aws = build_aws(settings, settings.scaling)
    return {**aws.outputs, **build_kubernetes(settings, secrets, aws, settings.scaling)}
