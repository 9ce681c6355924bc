"""The router image: how it is built and pushed into the stack's own ECR repository.

No release-tagged image of vllm-router is published (Docker Hub vllm/vllm-router carries dated
nightlies only, about 15 kept: vllm-project/router issue #163, vllm-project/vllm issue #41350), so
images/vllm-router/Dockerfile builds the pinned wheel (router_flags.ROUTER_VERSION, hash-checked)
into the stack's repository `minimax-vllm/<cluster>/vllm-router` (components/aws/image_registry.py).
A router pod whose image tag is missing cannot start, and the ALB then has no target: preflight
checks the tag before `pulumi up` (ops/aws_checks/images.py, row "image in-region: vllm-router").
"""

from __future__ import annotations

from pathlib import Path

from components.aws import image_registry
from components.serving import routing
from components.serving.router_flags import ROUTER_VERSION
from components.settings.stack import Settings

BUILD_CONTEXT = Path(__file__).resolve().parents[2] / "images" / "vllm-router"
ACCOUNT = "$(aws sts get-caller-identity --query Account --output text)"


def commands(settings: Settings) -> list[str]:
    """Build the image for the system nodes (x86_64) and push it where the router pods pull it
    (the stack's registry: the account that runs the commands, in the stack's region)."""
    registry = image_registry.Registry("$REGISTRY", settings.cluster_name)
    image = routing.image(registry.url(image_registry.ROUTER))
    context = BUILD_CONTEXT.relative_to(BUILD_CONTEXT.parents[1])
    region = settings.region
    return [
        f'REGISTRY="{ACCOUNT}.dkr.ecr.{region}.amazonaws.com"',
        f'aws ecr get-login-password --region {region} | docker login --username AWS --password-stdin "$REGISTRY"',
        f'docker build --platform linux/amd64 -t "{image}" {context}',
        f'docker push "{image}"',
    ]


def main(settings: Settings) -> int:
    repository = image_registry.Registry("", settings.cluster_name).repository(image_registry.ROUTER)
    print(f"# The router image for stack {settings.stack}: vllm-router {ROUTER_VERSION} from PyPI (hash-pinned),")
    print(f"# into ECR repository {repository} of the account that runs the stack. From the repository root:")
    print("\n".join(commands(settings)))
    return 0
