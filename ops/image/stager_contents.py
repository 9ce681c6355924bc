"""What the stager image holds, as data: components/facts/data/stage-weights-image-contents.json.

The stager pods (the node's stage-weights DaemonSet, the weights-mirror Job) and the copy module
they run from a ConfigMap use only this image (images/stage-weights/). Its contents follow from
its Dockerfile: the Debian bookworm base of python:3.12-slim-bookworm (Essential packages), the
official image's Python in /usr/local, and the pinned wheels of requirements.txt. Every pin but
awscrt's is the version the tests install (tests/test_stager_image.py), so the distributions'
modules and console scripts are read from their installed metadata here; awscrt's come from its
wheel (module `awscrt` and the extension `_awscrt`, no scripts).

    python -m ops.image.stager_contents
"""

from __future__ import annotations

import importlib.metadata as md
import json
import re
import sys
from typing import Any

from components.facts import DATA
from components.weights import staging
from ops.image.contents import _REMOVED_IN_312, write_record

DATA_FILE = DATA / "stage-weights-image-contents.json"
GENERATOR = "python -m ops.image.stager_contents"
DOCKERFILE = staging.IMAGE_DIR / "Dockerfile"
REQUIREMENTS = staging.IMAGE_DIR / "requirements.txt"
PYTHON = "3.12"
# Executables by where they come from: Debian bookworm's Essential packages (in every Debian base
# image), and the official Python image's /usr/local/bin (its Dockerfile links the unversioned names).
EXECUTABLES: dict[str, tuple[str, ...]] = {
    "debian bookworm essential: dash (/bin/sh)": ("sh", "dash"),
    "debian bookworm essential: bash": ("bash",),
    "debian bookworm essential: coreutils 9.1": tuple(
        "[ arch b2sum base32 base64 basename basenc cat chcon chgrp chmod chown chroot cksum comm cp csplit"
        " cut date dd df dir dircolors dirname du echo env expand expr factor false fmt fold groups head hostid"
        " id install join link ln logname ls md5sum mkdir mkfifo mknod mktemp mv nice nl nohup nproc numfmt od"
        " paste pathchk pinky pr printenv printf ptx pwd readlink realpath rm rmdir runcon seq sha1sum sha224sum"
        " sha256sum sha384sum sha512sum shred shuf sleep sort split stat stdbuf stty sum sync tac tail tee test"
        " timeout touch tr true truncate tsort tty uname unexpand uniq unlink users vdir wc who whoami yes".split()
    ),
    "debian bookworm essential: grep, sed, findutils, gzip, tar": ("grep", "sed", "find", "xargs", "gzip", "tar"),
    "python:3.12-slim-bookworm: /usr/local/bin": ("python3", "python", f"python{PYTHON}", "pip", "pip3"),
}
# Not installed in the test environment: what its wheel holds.
NOT_INSTALLED_HERE = {"awscrt": {"modules": ("_awscrt", "awscrt"), "scripts": ()}}
ABSENT = {
    "vllm": "the stager image has no vLLM: only the vLLM image runs it",
    "aws": "no AWS CLI: the copy module uses boto3",
    "huggingface-cli": "huggingface_hub >= 1.0 ships `hf`; the old CLI exits with a deprecation",
    "curl": "not in the slim image",
}
_PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)\s+--hash=sha256:[0-9a-f]{64}$")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins() -> dict[str, str]:
    """The requirements file's `name==version` pins (each line carries its wheel's hash)."""
    found = {}
    for line in REQUIREMENTS.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = _PIN.fullmatch(line.strip())
        if not match:
            raise ValueError(f"{REQUIREMENTS}: not a hashed pin: {line!r}")
        found[_norm(match.group(1))] = match.group(2)
    return dict(sorted(found.items()))


def base_image() -> str:
    (line,) = [x for x in DOCKERFILE.read_text().splitlines() if x.startswith("FROM ")]
    return line.split()[1]


def record() -> dict[str, Any]:
    pinned = pins()
    modules: dict[str, str] = {}
    for module, owners in md.packages_distributions().items():
        for owner in owners:
            if _norm(owner) in pinned and owner not in NOT_INSTALLED_HERE and module.isidentifier():
                modules[module] = _norm(owner)
    scripts: dict[str, str] = {}
    for name in pinned:
        if name in NOT_INSTALLED_HERE:
            modules.update({m: name for m in NOT_INSTALLED_HERE[name]["modules"]})
            continue
        scripts.update({ep.name: name for ep in md.distribution(name).entry_points if ep.group == "console_scripts"})
    executables = {exe: source for source, names in EXECUTABLES.items() for exe in names}
    executables.update({exe: f"console script of {dist} (requirements.txt)" for exe, dist in scripts.items()})
    return {
        "image": f"stage-weights ({staging.IMAGE_DIR.name}/, tag {staging.image_tag()})",
        "generated_by": GENERATOR,
        "base_image": base_image(),
        "python": PYTHON,
        "distributions": pinned,
        "executables": dict(sorted(executables.items())),
        "python_modules": dict(sorted(modules.items())),
        "stdlib": sorted(set(sys.stdlib_module_names) - _REMOVED_IN_312),
        "absent": ABSENT,
    }


def load() -> dict[str, Any]:
    return json.loads(DATA_FILE.read_text())


def main() -> int:
    return write_record(DATA_FILE, record())


if __name__ == "__main__":
    sys.exit(main())
