"""Every container that talks to AWS signs for the stack's region, as its SDK reads its environment.

The check builds a real boto3 client (botocore's own configuration chain) from nothing but the
rendered container's environment; a container that names its region in a key botocore does not
read (AWS_REGION alone) gets a client for us-east-1.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from unittest import mock

import boto3
import pytest

from components.platform import config
from components.settings import aws as aws_config
from ops.offline.engine import Rendering, render

STACKS = ("dev", "staging", "prod-4gpu", "prod-8gpu")
POD_TEMPLATES = ("Deployment", "Job", "StatefulSet", "DaemonSet")
PINNED_REVISION = "5fb9455421adc47f561f139d4e925b4c88c44367"


@functools.cache
def rendered(stack: str) -> Rendering:
    """The stack with its weights from the S3 mirror, where the AWS-facing containers are (dev and
    staging read the Hub in their stack files, so they are rendered with a mirror as well)."""
    if config.from_stack_file(stack).weights.source == "s3":
        return render(stack)
    serving = config.read_stack_file(stack)[f"{config.PROJECT}:serving"]
    return render(stack, {"weights": {"source": "s3"}, "serving": {"revision": PINNED_REVISION, **serving}})


def containers(r: Rendering) -> Iterator[tuple[str, dict]]:
    for obj in r.kubernetes_objects():
        if obj.inputs["kind"] in POD_TEMPLATES:
            spec = obj.inputs["spec"]["template"]["spec"]
            for c in [*spec.get("initContainers", []), *spec["containers"]]:
                yield f"{obj.inputs['kind']} {obj.inputs['metadata']['name']}/{c['name']}", c


def aws_env(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if e["name"].startswith("AWS_") and "value" in e}


def client_region(env: dict[str, str]) -> str | None:
    """The region of `boto3.client("s3")` in a process whose environment is `env` and nothing else
    of AWS (no shared config, no credentials files, no instance metadata)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    isolated = {"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull, **env}
    with mock.patch.dict(os.environ, {**clean, **isolated}, clear=True):
        return boto3.session.Session().client("s3").meta.region_name


@pytest.mark.parametrize("stack", STACKS)
def test_every_container_with_aws_environment_gets_a_client_for_the_stacks_region(stack):
    r = rendered(stack)
    region = config.read_stack_file(stack)["aws:region"]
    talking = {name: aws_env(c) for name, c in containers(r) if aws_env(c)}
    # The mirror's copiers: the Job that fills it and the init container that reads it.
    assert any(n.startswith("Job ") for n in talking) and any("/stage-weights" in n for n in talking), sorted(talking)
    for name, env in talking.items():
        assert client_region(env) == region, f"{name} signs for {client_region(env)}, not {region}: {env}"


def test_aws_region_alone_gives_a_us_east_1_client_which_is_why_both_keys_are_set():
    assert client_region({"AWS_REGION": "eu-west-1"}) == "us-east-1"
    assert client_region(aws_config.region_env("eu-west-1")) == "eu-west-1"
