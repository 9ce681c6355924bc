"""The stager image's build recipe: a base pinned by digest, every wheel pinned with its hash, the
same versions the tests run, and a tag that names exactly this recipe."""

from __future__ import annotations

import importlib.metadata as md
import re

from components.weights import staging
from ops.image import stager_contents

# Not installed for the tests (the copy code uses it only through boto3's CRT transfer client).
ONLY_IN_THE_IMAGE = {"awscrt"}


def test_the_base_image_is_pinned_by_digest():
    assert re.fullmatch(r"python:3\.12-slim-bookworm@sha256:[0-9a-f]{64}", stager_contents.base_image())


def test_every_wheel_is_pinned_with_its_hash_and_is_the_version_the_tests_run():
    pins = stager_contents.pins()  # raises on a line without `==` and a sha256
    assert {"boto3", "botocore", "s3transfer", "huggingface-hub", "awscrt"} <= set(pins)
    drift = {
        name: (version, md.version(name)) for name, version in pins.items()
        if name not in ONLY_IN_THE_IMAGE and md.version(name) != version
    }  # fmt: skip
    assert not drift, f"the stager image would run other versions than the tests: {drift}"


def test_the_tag_names_the_recipe(tmp_path, monkeypatch):
    tag = staging.image_tag()
    assert re.fullmatch(r"src-[0-9a-f]{12}", tag)
    for name in staging.IMAGE_FILES:
        (tmp_path / name).write_bytes((staging.IMAGE_DIR / name).read_bytes())
    monkeypatch.setattr(staging, "IMAGE_DIR", tmp_path)
    assert staging.image_tag() == tag
    (tmp_path / "requirements.txt").write_text((tmp_path / "requirements.txt").read_text() + "\n# changed\n")
    assert staging.image_tag() != tag  # a new recipe is a new (immutable) tag
