"""`python -m ops image copy --stack NAME`: put the stack's images into its own ECR repositories.

The steps, printed in order (and, with --run, all but the first performed):
1. create the repositories alone (`pulumi up --target` on the ImageRepositories component's three
   repositories), so the images can be there before any pod asks for them;
2. copy the pinned vLLM image: `crane copy` keeps the multi-platform index as it is, so the digest
   recorded in components/facts/versions.py is the digest in ECR too (`skopeo copy --all
   --preserve-digests` does the same);
3. build and push the stager image (images/stage-weights/) under its recipe-hash tag;
4. with the router in the path (`Settings.routing_mode`), build and push the router image
   (images/vllm-router/): no release-tagged vllm-router image is published (Docker Hub
   vllm/vllm-router carries dated nightlies only, about 15 kept: vllm-project/router issue #163,
   vllm-project/vllm issue #41350), so the pinned wheel (router_flags.ROUTER_VERSION,
   hash-checked) is built under that version's tag.
`python -m ops preflight` checks that each image is there (ops/aws_checks/images.py).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from components.aws import image_registry
from components.facts import versions
from components.serving import routing
from components.serving.router_flags import ROUTER_VERSION
from components.settings.stack import PROJECT, Settings
from components.weights import staging

COMPONENT_TYPE = "minimax-vllm:aws:ImageRepositories"
REPOSITORY_TYPE = "aws:ecr/repository:Repository"
COPY_TOOLS = ("crane", "skopeo")
ROUTER_BUILD_CONTEXT = Path(__file__).resolve().parents[2] / "images" / "vllm-router"


@dataclass(frozen=True)
class Step:
    what: str
    commands: tuple[str, ...]
    runnable: bool  # --run performs it (the targeted `pulumi up` stays the user's to run)


def repository_urns(settings: Settings) -> list[str]:
    """The URNs `pulumi up --target` takes for the three repositories (aws_layer: `<cluster>-images`)."""
    base = f"{settings.cluster_name}-images"
    chain = f"{COMPONENT_TYPE}${REPOSITORY_TYPE}"
    return [f"urn:pulumi:{settings.stack}::{PROJECT}::{chain}::{base}-{i}" for i in image_registry.IMAGES]


def steps(settings: Settings, account_id: str, copy_tool: str = "crane") -> list[Step]:
    registry = image_registry.Registry(image_registry.registry_host(account_id, settings.region), settings.cluster_name)
    tag = settings.serving.image_tag
    digest = versions.VLLM_IMAGE_DIGESTS.get(tag)
    source = f"docker.io/{versions.VLLM_IMAGE_REPOSITORY}:{tag}" + (f"@{digest}" if digest else "")
    vllm = f"{registry.url(image_registry.VLLM)}:{tag}"
    login = f"aws ecr get-login-password --region {settings.region}"
    if copy_tool == "skopeo":
        copy = (
            f"{login} | skopeo login --username AWS --password-stdin {registry.host}",
            f"skopeo copy --all --preserve-digests docker://{source} docker://{vllm}",
        )
    else:
        copy = (
            f"{login} | crane auth login {registry.host} --username AWS --password-stdin",
            f"crane copy {source} {vllm}",
        )
    stager = f"{registry.url(image_registry.STAGER)}:{staging.image_tag()}"
    build_dir = f"images/{staging.IMAGE_DIR.name}"
    targets = " ".join(f"--target {shlex.quote(u)}" for u in repository_urns(settings))
    docker_login = f"{login} | docker login --username AWS --password-stdin {registry.host}"
    router = []
    if settings.routing_mode == "router":
        image = routing.image(registry.url(image_registry.ROUTER))
        context = ROUTER_BUILD_CONTEXT.relative_to(ROUTER_BUILD_CONTEXT.parents[1])
        router = [
            Step(
                f"build and push the router image (vllm-router {ROUTER_VERSION} from PyPI, hash-pinned;"
                " no release-tagged image is published)",
                (docker_login, f"docker build --platform linux/amd64 -t {image} {context}", f"docker push {image}"),
                True,
            )
        ]
    return [
        Step(
            "create the stack's ECR repositories (only them)", (f"pulumi up --stack {settings.stack} {targets}",), False
        ),
        Step(
            f"copy {source} into the stack's repository"
            + ("" if digest else " (no digest recorded: `python -m ops preflight --record-digest` first pins it)"),
            copy,
            True,
        ),
        Step(
            "build and push the stager image",
            (docker_login, f"docker build --platform linux/amd64 -t {stager} {build_dir}", f"docker push {stager}"),
            True,
        ),
        *router,
    ]


def render(chosen: Sequence[Step]) -> str:
    lines = []
    for n, step in enumerate(chosen, start=1):
        lines.append(f"{n}. {step.what}:")
        lines += [f"   {c}" for c in step.commands]
    return "\n".join(lines)


def run(chosen: Sequence[Step], shell: Callable[[str], int] | None = None) -> int:
    """Perform the runnable steps in order; stop at the first command that fails."""
    execute = shell or (lambda c: subprocess.run(c, shell=True, check=False).returncode)  # noqa: S602 (our own commands)
    for step in chosen:
        if not step.runnable:
            continue
        for command in step.commands:
            print(f"$ {command}", flush=True)
            if (code := execute(command)) != 0:
                return code
    return 0


def copy_tool(which: Callable[[str], str | None] = shutil.which) -> str:
    return next((t for t in COPY_TOOLS if which(t)), COPY_TOOLS[0])
