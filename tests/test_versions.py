"""Pins agree with each other: the image runs the release the flag tests validate."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from components.facts import versions
from components.settings.stack import STACKS_DIR

ROOT = Path(__file__).resolve().parent.parent


def test_vllm_image_tag_is_the_release_the_tests_install():
    pinned = re.search(r"^vllm==(\S+)$", (ROOT / "requirements-dev.txt").read_text(), re.M)
    assert pinned, "requirements-dev.txt must pin vllm=="
    assert versions.VLLM_IMAGE == f"vllm/vllm-openai:v{pinned.group(1)}"


def test_every_requirement_is_pinned_exactly():
    for name in ("requirements.txt", "requirements-dev.txt"):
        for line in (ROOT / name).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-r"):
                assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][0-9A-Za-z.+]*", line), f"{name}: {line}"


def test_no_stack_overrides_the_pinned_image_or_kubernetes_version():
    for path in STACKS_DIR.glob("Pulumi.*.yaml"):
        config = yaml.safe_load(path.read_text())["config"]
        assert "imageTag" not in (config.get("minimax-vllm:serving") or {}), path.name
        assert "kubernetesVersion" not in (config.get("minimax-vllm:cluster") or {}), path.name


def test_pulumi_project_uses_the_stacks_folder_and_a_virtualenv():
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "minimax-vllm"
    assert project["stackConfigDir"] == "stacks"
    assert project["runtime"]["name"] == "python" and project["runtime"]["options"]["virtualenv"] == ".venv"
