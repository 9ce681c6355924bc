"""`ops image copy` (the steps that put the stack's images in its ECR repositories) and the
preflight rows that check each image is there (botocore Stubber: ECR's describe_images)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from components.facts import versions
from components.platform import config
from components.serving.router_flags import ROUTER_VERSION
from components.weights import staging
from ops.__main__ import main as ops_main
from ops.aws_checks import images
from ops.image import registry_steps
from ops.offline.engine import render

ACCOUNT = "123456789012"
DIGEST = "sha256:" + "cd" * 32
TAG = versions.VLLM_IMAGE.split(":")[1]


def no_sleep(_: float) -> None:
    pass


def test_the_targeted_up_names_exactly_the_rendered_repositories():
    s = config.from_stack_file("prod-8gpu")
    rendered = {x.urn for x in render("prod-8gpu").of_type("aws:ecr/repository:Repository")}
    assert set(registry_steps.repository_urns(s)) == rendered


@pytest.mark.parametrize(
    ("tool", "copy"), [("crane", "crane copy"), ("skopeo", "skopeo copy --all --preserve-digests")]
)
def test_the_copy_keeps_the_recorded_digest(monkeypatch, tool, copy):
    monkeypatch.setitem(versions.VLLM_IMAGE_DIGESTS, TAG, DIGEST)
    s = config.from_stack_file("prod-8gpu")
    _, step, build = registry_steps.steps(s, ACCOUNT, tool)
    (line,) = [c for c in step.commands if c.startswith(copy)]
    repo = f"{ACCOUNT}.dkr.ecr.us-east-2.amazonaws.com/minimax-vllm/{s.cluster_name}"
    assert f"vllm/vllm-openai:{TAG}@{DIGEST}" in line and line.endswith(f"{repo}/vllm-openai:{TAG}")
    assert f"-t {repo}/stage-weights:{staging.image_tag()} images/stage-weights" in " ".join(build.commands)


def test_run_performs_the_copy_and_build_in_order_and_stops_at_a_failure():
    chosen = registry_steps.steps(config.from_stack_file("dev"), ACCOUNT)
    ran: list[str] = []
    assert registry_steps.run(chosen, lambda c: ran.append(c) or 0) == 0
    assert not any(c.startswith("pulumi up") for c in ran)  # the targeted up stays the user's
    assert ran == [c for s in chosen[1:] for c in s.commands]
    ran.clear()
    assert registry_steps.run(chosen, lambda c: ran.append(c) or (3 if "crane copy" in c else 0)) == 3
    assert ran[-1].startswith("crane copy") and not any(c.startswith("docker ") for c in ran)


def test_the_cli_prints_the_steps_without_running_them(capsys):
    assert ops_main(["image", "copy", "--stack", "dev", "--account-id", ACCOUNT]) == 0
    out = capsys.readouterr().out
    assert out.startswith("1. create the stack's ECR repositories") and "$ " not in out


# --- preflight ----------------------------------------------------------------------------------


def clients(*responses: tuple[str, Any]) -> tuple[Any, Any]:
    ecr = boto3.client("ecr", region_name="us-east-2", aws_access_key_id="x", aws_secret_access_key="x")
    sts = boto3.client("sts", region_name="us-east-2", aws_access_key_id="x", aws_secret_access_key="x")
    sts_stub, ecr_stub = Stubber(sts), Stubber(ecr)
    sts_stub.add_response("get_caller_identity", {"Account": ACCOUNT, "Arn": "arn:aws:iam::1:user/x", "UserId": "x"})
    for params, answer in responses:
        if isinstance(answer, str):
            ecr_stub.add_client_error("describe_images", service_error_code=answer, expected_params=params)
        else:
            ecr_stub.add_response("describe_images", {"imageDetails": [answer]}, expected_params=params)
    sts_stub.activate()
    ecr_stub.activate()
    return ecr, sts


def asked(s: Any, image: str, image_id: dict[str, str]) -> dict[str, Any]:
    return {"repositoryName": f"minimax-vllm/{s.cluster_name}/{image}", "imageIds": [image_id]}


def images_in_place(s: Any) -> Any:
    """An ECR client that finds each image the stack wants (the documentation's sample)."""
    ecr = boto3.client("ecr", region_name=s.region)
    stub = Stubber(ecr)
    for image, image_id in images.wanted(s):
        stub.add_response("describe_images", {"imageDetails": [{"imageTags": [TAG]}]}, asked(s, image, image_id))
    stub.activate()
    return ecr


def test_preflight_passes_when_the_recorded_digest_and_the_stager_are_in_the_stacks_repositories(monkeypatch):
    monkeypatch.setitem(versions.VLLM_IMAGE_DIGESTS, TAG, DIGEST)
    s = config.from_stack_file("prod-8gpu")
    ecr, sts = clients(
        (asked(s, "vllm-openai", {"imageDigest": DIGEST}), {"imageDigest": DIGEST, "imageTags": [TAG]}),
        (asked(s, "stage-weights", {"imageTag": staging.image_tag()}), {"imageTags": [staging.image_tag()]}),
    )
    rows = images.check(s, ecr, sts, no_sleep)
    assert [r.status for r in rows] == ["PASS", "PASS"], rows
    assert f"/vllm-openai@{DIGEST} is in the stack's repository" in rows[0].detail


def test_preflight_fails_with_the_copy_step_when_an_image_is_missing():
    s = config.from_stack_file("dev")  # no digest recorded: looked up by tag; the router in front
    ecr, sts = clients(
        (asked(s, "vllm-openai", {"imageTag": TAG}), "RepositoryNotFoundException"),
        (asked(s, "stage-weights", {"imageTag": staging.image_tag()}), "ImageNotFoundException"),
        (asked(s, "vllm-router", {"imageTag": ROUTER_VERSION}), "ImageNotFoundException"),
    )
    vllm, stager, router = images.check(s, ecr, sts, no_sleep)
    assert vllm.status == stager.status == router.status == "FAIL"
    assert "no such repository yet" in vllm.detail and "no such image yet" in stager.detail
    assert vllm.fix.startswith("python -m ops image copy --stack dev")
    assert router.fix.startswith("python -m ops image copy --stack dev")


def test_preflight_fails_when_the_digest_is_there_under_another_tag(monkeypatch):
    monkeypatch.setitem(versions.VLLM_IMAGE_DIGESTS, TAG, DIGEST)
    s = config.from_stack_file("prod-8gpu")
    ecr, sts = clients(
        (asked(s, "vllm-openai", {"imageDigest": DIGEST}), {"imageDigest": DIGEST, "imageTags": ["other"]}),
        (asked(s, "stage-weights", {"imageTag": staging.image_tag()}), {"imageTags": [staging.image_tag()]}),
    )
    vllm, _ = images.check(s, ecr, sts, no_sleep)
    assert vllm.status == "FAIL" and f"not tagged {TAG}" in vllm.detail


def test_the_router_image_is_checked_only_with_the_router_in_the_path():
    assert [i for i, _ in images.wanted(config.from_stack_file("prod-8gpu"))] == ["vllm-openai", "stage-weights"]
    assert [i for i, _ in images.wanted(config.from_stack_file("prod-4gpu"))][-1] == "vllm-router"
    values = config.read_stack_file("prod-4gpu")
    raw, region = config.split_stack_config(values)
    direct = config.parse({**raw, "routing": {"mode": "direct"}}, "prod-4gpu", region, config.aws_config_of(values))
    assert [i for i, _ in images.wanted(direct)] == ["vllm-openai", "stage-weights"]
