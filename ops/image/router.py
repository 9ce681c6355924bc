"""The router image: how it is built and pushed, and preflight's check that it is there.

No release-tagged image of vllm-router is published (Docker Hub vllm/vllm-router carries dated
nightlies only, about 15 kept: vllm-project/router issue #163, vllm-project/vllm issue #41350), so
images/vllm-router/Dockerfile builds the pinned wheel (router_flags.ROUTER_VERSION, hash-checked)
into the stack account's ECR repository routing.IMAGE_REPOSITORY. A router pod whose image tag is
missing cannot start, and the ALB then has no target: preflight checks the tag before `pulumi up`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from components.serving import routing
from components.serving.router_flags import ROUTER_VERSION
from components.settings.stack import Settings
from ops.report import Check, failed, passed, skipped

ROW = "router image"
BUILD_CONTEXT = Path(__file__).resolve().parents[2] / "images" / "vllm-router"
ACCOUNT = "$(aws sts get-caller-identity --query Account --output text)"
MISSING = ("RepositoryNotFoundException", "ImageNotFoundException")


def commands(region: str) -> list[str]:
    """Build the image for the system nodes (x86_64) and push it where the router pods pull it
    (the stack's registry: the account that runs the commands, in the stack's region)."""
    image = routing.image("$REGISTRY")
    context = BUILD_CONTEXT.relative_to(BUILD_CONTEXT.parents[1])
    return [
        f'REGISTRY="{ACCOUNT}.dkr.ecr.{region}.amazonaws.com"',
        f'aws ecr get-login-password --region {region} | docker login --username AWS --password-stdin "$REGISTRY"',
        f'docker build --platform linux/amd64 -t "{image}" {context}',
        f'docker push "{image}"',
    ]


def check(settings: Settings, ecr: Any) -> Check:
    """The pinned tag exists in the stack account's repository (when the stack runs the router)."""
    if settings.routing_mode != "router":
        return skipped(ROW, f"routing.mode {settings.routing_mode}: no router pods")
    fix = f"python -m ops router-image --stack {settings.stack} (prints the build and push commands)"
    try:
        found = ecr.describe_images(
            repositoryName=routing.IMAGE_REPOSITORY, imageIds=[{"imageTag": ROUTER_VERSION}]
        ).get("imageDetails", [])
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        if code not in MISSING:
            raise
        what = "no repository" if code == MISSING[0] else f"no tag {ROUTER_VERSION} in"
        return failed(
            ROW,
            f"{what} {routing.IMAGE_REPOSITORY} in this account's ECR ({settings.region}): the router pods could not"
            " start and the ALB would have no target",
            fix,
        )
    if not found:
        return failed(ROW, f"{routing.IMAGE_REPOSITORY}:{ROUTER_VERSION} not found", fix)
    return passed(ROW, f"{routing.IMAGE_REPOSITORY}:{ROUTER_VERSION} is {found[0].get('imageDigest', '?')}")


def main(settings: Settings) -> int:
    print(f"# The router image for stack {settings.stack}: vllm-router {ROUTER_VERSION} from PyPI (hash-pinned),")
    print(
        f"# into ECR repository {routing.IMAGE_REPOSITORY} of the account that runs the stack. From the repository root:"
    )
    print("\n".join(commands(settings.region)))
    return 0
