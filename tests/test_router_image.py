"""The router image: its Dockerfile and hash-pinned requirements, the build commands, and
preflight's check that the pinned tag is in the stack account's ECR before `pulumi up`."""

from __future__ import annotations

import importlib.metadata as md
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from components.aws import image_registry
from components.platform import config
from components.serving import routing
from components.serving.router_flags import ROUTER_VERSION
from ops.image import registry_steps
from ops.offline.engine import render
from tests import hops

CONTEXT = registry_steps.ROUTER_BUILD_CONTEXT
DOCKERFILE = (CONTEXT / "Dockerfile").read_text()
REQUIREMENTS = (CONTEXT / "requirements.txt").read_text()


def pins() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of requirements.txt (continuation lines joined)."""
    found = {}
    for line in REQUIREMENTS.replace("\\\n", " ").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        spec, *options = line.split()
        name, version = spec.split("==")
        found[name] = (version, [o.removeprefix("--hash=sha256:") for o in options if o.startswith("--hash=")])
    return found


def closure(name: str) -> dict[str, str]:
    """The installed distribution and what it requires, recursively: the versions the tests run."""
    seen: dict[str, str] = {}
    todo = [name]
    while todo:
        d = md.distribution(todo.pop())
        key = re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower()
        if key in seen:
            continue
        seen[key] = d.version
        for r in d.requires or []:
            req = Requirement(r)
            if not req.marker or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def test_the_base_image_is_pinned_by_digest_and_the_user_is_the_pods() -> None:
    (base,) = re.findall(r"^FROM (\S+)", DOCKERFILE, re.M)
    assert re.fullmatch(r"python:3\.11-[a-z-]+@sha256:[0-9a-f]{64}", base), base
    (user,) = re.findall(r"^USER (\d+):(\d+)", DOCKERFILE, re.M)
    container = hops.container(hops.front(render("dev")))
    assert container["securityContext"]["runAsUser"] == int(user[0]) == routing.IMAGE_UID
    assert container["securityContext"]["runAsNonRoot"] is True
    (entry,) = re.findall(r"^ENTRYPOINT (.+)$", DOCKERFILE, re.M)
    assert container["command"] == eval(entry)  # noqa: S307 (a JSON-form list of the file itself)
    assert "--require-hashes" in DOCKERFILE and "--only-binary=:all:" in DOCKERFILE


def test_every_requirement_is_one_version_and_one_hash_and_the_router_is_the_pinned_one() -> None:
    found = pins()
    assert found["vllm-router"][0] == ROUTER_VERSION
    assert all(len(hashes) == 1 and re.fullmatch(r"[0-9a-f]{64}", hashes[0]) for _, hashes in found.values())


def test_the_image_installs_the_versions_the_loopback_tests_run() -> None:
    pytest.importorskip("vllm_router")
    assert {n: v for n, (v, _) in pins().items()} == closure("vllm-router")


def test_the_printed_commands_build_this_context_and_push_the_tag_the_pods_pull() -> None:
    s = config.from_stack_file("prod-4gpu")
    account = "123456789012"
    (step,) = [st for st in registry_steps.steps(s, account) if "router image" in st.what]
    lines = step.commands
    build = next(line for line in lines if line.startswith("docker build"))
    assert build.endswith(" images/vllm-router") and Path(CONTEXT / "Dockerfile").is_file()
    pushed = next(line for line in lines if line.startswith("docker push")).split()[-1]
    pulled = hops.container(hops.front(render("prod-4gpu")))["image"]
    repository = image_registry.Registry("", s.cluster_name).repository(image_registry.ROUTER)
    assert pushed.split("/", 1)[1] == pulled.split("/", 1)[1] == f"{repository}:{ROUTER_VERSION}"
    assert pushed.startswith(f"{account}.dkr.ecr.{s.region}.amazonaws.com/")
    assert step.runnable


def test_a_stack_without_the_router_builds_no_router_image() -> None:
    s = config.from_stack_file("prod-8gpu")  # routing direct: one replica
    assert s.routing_mode == "direct"
    assert not [st for st in registry_steps.steps(s, "123456789012") if "router image" in st.what]
