"""Are the stack's images in its own ECR repositories? Checked with boto3 before `pulumi up`.

The pods pull only from the stack's repositories (components/aws/image_registry.py): the copy of
the pinned vLLM image (by its recorded digest once there is one), the stager image (tag: the hash
of images/stage-weights/) and, with routing.mode router, the router. A missing image is a pod in
ImagePullBackOff after the node is paid for, so each one is a row here, with the step that puts
it there (`python -m ops image copy`, ops/image/registry_steps.py).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from components.aws import image_registry
from components.facts import versions
from components.serving import router_flags
from components.settings.stack import Settings
from components.weights import staging
from ops.awsclients import Sleep, error_code
from ops.awsclients import call_checked as _aws
from ops.report import Check, failed, passed

ROW = "image in-region"
NOT_THERE = frozenset({"RepositoryNotFoundException", "ImageNotFoundException"})


def wanted(settings: Settings) -> list[tuple[str, dict[str, str]]]:
    """(image, ECR image id) the stack's pods pull: by digest where one is recorded, else by tag."""
    tag = settings.serving.image_tag
    digest = versions.VLLM_IMAGE_DIGESTS.get(tag)
    out = [
        (image_registry.VLLM, {"imageDigest": digest} if digest else {"imageTag": tag}),
        (image_registry.STAGER, {"imageTag": staging.image_tag()}),
    ]
    if settings.routing_mode == "router":
        out.append((image_registry.ROUTER, {"imageTag": router_flags.ROUTER_VERSION}))
    return out


def check(settings: Settings, ecr: Any, sts: Any, sleep: Sleep) -> list[Check]:
    account = _aws(sts.get_caller_identity, sleep)["Account"]
    registry = image_registry.Registry(image_registry.registry_host(account, settings.region), settings.cluster_name)
    copy = f"python -m ops image copy --stack {settings.stack}  (prints each step; --run performs the copy and build)"
    rows = []
    for image, image_id in wanted(settings):
        fix = copy
        name = f"{ROW}: {image}"
        where = f"{registry.url(image)}{'@' if 'imageDigest' in image_id else ':'}{next(iter(image_id.values()))}"
        try:
            found = _aws(ecr.describe_images, sleep, repositoryName=registry.repository(image), imageIds=[image_id])[
                "imageDetails"
            ]
        except ClientError as err:
            if error_code(err) not in NOT_THERE:
                raise
            what = "repository" if error_code(err) == "RepositoryNotFoundException" else "image"
            rows.append(failed(name, f"{where}: no such {what} yet, so the pods cannot start", fix))
            continue
        tag = settings.serving.image_tag
        if image == image_registry.VLLM and "imageDigest" in image_id and tag not in found[0].get("imageTags", []):
            rows.append(failed(name, f"{where} is there but not tagged {tag}", fix))
            continue
        rows.append(passed(name, f"{where} is in the stack's repository"))
    return rows
