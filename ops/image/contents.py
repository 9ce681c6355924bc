"""What the vLLM image holds that the pods use, as data; and the check of the rendered commands.

The stage-weights init container, the weights-mirror Job and the ConfigMap scripts run programs
and Python modules inside `vllm/vllm-openai`. Whether the image has them is decided by vLLM's
Dockerfile and its pinned requirements, not by this project: components/facts/data/vllm-image-contents.json
records it, generated from

- the Dockerfile's `vllm-base` / `vllm-openai` stages (apt packages, extra pip installs, base
  image), entered below with their source;
- the vLLM wheel's own requirements (its METADATA, the same wheel the image installs: the tests'
  vllm==0.32.0), followed transitively through the installed distributions' metadata.

    python -m ops.image.contents

Versions are the requirement specifiers; the exact builds are the image's, known only by pulling
it (`ops preflight` says so in one row).
"""

from __future__ import annotations

import importlib.metadata as md
import json
import re
import sys
from pathlib import Path
from typing import Any

from packaging.markers import Marker
from packaging.requirements import Requirement

from components.facts import DATA, versions
from ops.report import Check, skipped

DATA_FILE = DATA / "vllm-image-contents.json"
GENERATOR = "python -m ops.image.contents"

DOCKERFILE = {
    "repository": "https://github.com/vllm-project/vllm",
    "path": "docker/Dockerfile",
    "commit": "6e448d0ea9bf3d88d898b65449ca6dc2aec170ac",
    "note": (
        "The v0.32.0 tag (commit 5df63a720, vllm/_version.py of the wheel) is not among the stored"
        " sources; this is the nearest stored revision: the same CUDA 13.0.3 / Ubuntu 22.04 base,"
        " the same cu13 requirement rewrites, and `vllm serve` as the entrypoint."
    ),
}
PYTHON = "3.12"  # ARG PYTHON_VERSION
BASE_IMAGE = "nvidia/cuda:13.0.3-base-ubuntu22.04"  # FINAL_BASE_IMAGE
MARKER_ENV = {
    "python_version": PYTHON,
    "python_full_version": f"{PYTHON}.0",
    "platform_machine": "x86_64",
    "platform_system": "Linux",
    "sys_platform": "linux",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "extra": "",
}
# Executables by where they come from. Ubuntu 22.04's essential packages are in every Ubuntu
# base image; the apt and pip lines are the Dockerfile's `vllm-base` stage.
EXECUTABLES: dict[str, tuple[str, ...]] = {
    "ubuntu 22.04 essential: dash (/bin/sh)": ("sh",),
    "ubuntu 22.04 essential: bash": ("bash",),
    "ubuntu 22.04 essential: coreutils 8.32": tuple(
        "[ arch b2sum base32 base64 basename basenc cat chcon chgrp chmod chown chroot cksum comm cp csplit"
        " cut date dd df dir dircolors dirname du echo env expand expr factor false fmt fold groups head hostid"
        " id install join link ln logname ls md5sum mkdir mkfifo mknod mktemp mv nice nl nohup nproc numfmt od"
        " paste pathchk pinky pr printenv printf ptx pwd readlink realpath rm rmdir runcon seq sha1sum sha224sum"
        " sha256sum sha384sum sha512sum shred shuf sleep sort split stat stdbuf stty sum sync tac tail tee test"
        " timeout touch tr true truncate tsort tty uname unexpand uniq unlink users vdir wc who whoami yes".split()
    ),
    "ubuntu 22.04 essential: grep, sed, findutils, gzip, tar": ("grep", "sed", "find", "xargs", "gzip", "tar"),
    "Dockerfile vllm-base: apt-get install": ("curl", "sudo", "ffmpeg", "numactl"),
    "Dockerfile vllm-base: python${PYTHON_VERSION} + update-alternatives": ("python3", f"python{PYTHON}"),
    "Dockerfile vllm-base: get-pip.py, `pip install uv`": ("pip", "pip3", "uv"),
}
# dash's builtins and reserved words: no program needed.
SHELL_BUILTINS = tuple(
    ". : [ alias bg break cd chdir command continue echo eval exec exit export false fc fg getopts hash jobs"
    " kill local printf pwd read readonly return set shift test times trap true type ulimit umask unalias"
    " unset wait".split()
)
# `pip install` lines of the Dockerfile's vllm-base stage, besides the vLLM wheel itself.
DOCKERFILE_PIP = (
    "accelerate",
    "modelscope<1.38",
    "bitsandbytes>=0.46.1",
    "timm>=1.0.17",
    "runai-model-streamer[s3,gcs,azure]>=0.15.7",
)
# Requirements of distributions the test environment does not install, from their PyPI
# metadata (runai-model-streamer-s3 0.17.1: `Requires-Dist: boto3`).
NOT_INSTALLED_HERE = {
    "runai-model-streamer": ("runai-model-streamer-s3", "runai-model-streamer-gcs", "runai-model-streamer-azure"),
    "runai-model-streamer-s3": ("boto3",),
}
# Modules a pod might reach for that the image does NOT have, and what that means.
ABSENT = {
    "awscrt": "boto3[crt] is not installed: s3transfer uses its classic (Python) transfer manager",
    "huggingface-cli": "huggingface_hub >= 1.0 ships `hf`; the old CLI exits with a deprecation",
}
_REMOVED_IN_312 = {"asynchat", "asyncore", "distutils", "imp", "smtpd"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requires(dist: str) -> list[Requirement]:
    if dist in NOT_INSTALLED_HERE:
        return [Requirement(r) for r in NOT_INSTALLED_HERE[dist]]
    try:
        raw = md.distribution(dist).requires or []
    except md.PackageNotFoundError:
        return []
    return [r for r in map(Requirement, raw) if r.marker is None or r.marker.evaluate(MARKER_ENV)]


def _closure(roots: list[Requirement]) -> dict[str, dict[str, str]]:
    """Every distribution the roots pull in: its requirement and who asked for it."""
    found: dict[str, dict[str, str]] = {}
    todo = [(r, "Dockerfile") for r in roots]
    while todo:
        req, via = todo.pop(0)
        name = _norm(req.name)
        if name in found:
            continue
        found[name] = {"requirement": str(req.specifier) or "any", "via": via}
        todo += [(r, name) for r in _requires(req.name)]
        for extra in sorted(req.extras):
            try:
                raw = md.distribution(req.name).requires or []
            except md.PackageNotFoundError:
                continue
            env = {**MARKER_ENV, "extra": extra}
            todo += [
                (r, f"{name}[{extra}]")
                for r in map(Requirement, raw)
                if r.marker and Marker(str(r.marker)).evaluate(env)
            ]
    return dict(sorted(found.items()))


def record() -> dict[str, Any]:
    vllm = md.distribution("vllm")
    roots = [Requirement(f"vllm=={vllm.version}"), *map(Requirement, DOCKERFILE_PIP)]
    dists = _closure(roots)
    modules: dict[str, str] = {}
    scripts: dict[str, str] = {}
    for module, owners in md.packages_distributions().items():
        for owner in owners:
            if _norm(owner) in dists and not module.startswith("_") and module.isidentifier():
                modules[module] = _norm(owner)
    for name in dists:
        try:
            entry_points = md.distribution(name).entry_points
        except md.PackageNotFoundError:
            continue
        scripts.update({ep.name: name for ep in entry_points if ep.group == "console_scripts"})
    executables = {exe: source for source, names in EXECUTABLES.items() for exe in names}
    executables.update({exe: f"console script of {dist} (pip)" for exe, dist in scripts.items()})
    return {
        "image": versions.VLLM_IMAGE,
        "generated_by": GENERATOR,
        "sources": {
            "dockerfile": DOCKERFILE,
            "base_image": BASE_IMAGE,
            "requirements": (
                f"vllm {vllm.version} wheel METADATA (Requires-Dist) and the Dockerfile's pip lines; below"
                " them, each distribution's own requirements as installed for the tests (requirements-dev.txt):"
                " the image resolved its own versions within the same specifiers when it was built"
            ),
        },
        "python": PYTHON,
        "shell_builtins": sorted(SHELL_BUILTINS),
        "executables": dict(sorted(executables.items())),
        "distributions": dists,
        "python_modules": dict(sorted(modules.items())),
        "stdlib": sorted(set(sys.stdlib_module_names) - _REMOVED_IN_312),
        "absent": ABSENT,
    }


def load() -> dict[str, Any]:
    return json.loads(DATA_FILE.read_text())


def preflight_row(image: str) -> Check:
    """What preflight cannot check without pulling the image, and how to check it by hand."""
    recorded = load()["image"]
    by_hand = (
        f"docker run --rm --entrypoint sh {image} -c"
        " 'command -v python3 hf && python3 -c \"import boto3, huggingface_hub\"'"
    )
    if image != recorded:
        return skipped(
            "image contents",
            f"{image} is not the recorded {recorded}: what the pods run in it is unchecked; by hand: {by_hand}",
        )
    return skipped(
        "image contents",
        f"not checked without pulling {image}; the tests hold the pods' commands to its Dockerfile and"
        f" requirements ({DATA_FILE.relative_to(DATA.parents[2])}); by hand: {by_hand}",
    )


def write_record(path: Path, made: dict[str, Any]) -> int:
    """Write an image's contents record (the vLLM image's, or the stager's) and say what it holds."""
    path.write_text(json.dumps(made, indent=1) + "\n")
    print(f"wrote {path}: {len(made['executables'])} executables, {len(made['python_modules'])} modules")
    return 0


def main() -> int:
    return write_record(DATA_FILE, record())


if __name__ == "__main__":
    sys.exit(main())
