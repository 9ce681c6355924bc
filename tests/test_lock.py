"""The virtualenv the tests run in is the locked one: every installed distribution is in
constraints.txt at the version installed, so a clean clone cannot drift under the image pins."""

from __future__ import annotations

import importlib.metadata as md
import re
import sysconfig
from pathlib import Path

LOCK = Path(__file__).resolve().parents[1] / "constraints.txt"
# Installed by their own steps, not through the lock: pip by venv, torch (CPU build) by the
# Makefile's first step; vLLM's media extras are uninstalled after it (see the Makefile).
OUTSIDE_THE_LOCK = {"pip", "setuptools", "torch"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not pinned with =="
            pins[_norm(name)] = version
    return pins


def test_every_installed_distribution_is_locked_at_its_version() -> None:
    pins = locked()
    # The virtualenv's own site-packages only: setuptools puts its vendored copies on sys.path
    # once imported, and those are setuptools' business, not the lock's.
    site = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    installed = {_norm(d.metadata["Name"]): d.version for d in md.distributions(path=site)}
    drift = {
        name: (pins.get(name), version) for name, version in installed.items()
        if name not in OUTSIDE_THE_LOCK and pins.get(name) != version
    }  # fmt: skip
    assert not drift, f"installed versions differ from constraints.txt (locked, installed): {drift}"


def test_the_lock_pins_what_the_requirements_pin() -> None:
    pins = locked()
    root = LOCK.parent
    for requirements in ("requirements.txt", "requirements-dev.txt"):
        for line in (root / requirements).read_text().splitlines():
            m = re.match(r"^([A-Za-z0-9_.-]+)(?:\[[^]]*\])?==([^\s#]+)", line)
            if m and _norm(m[1]) not in OUTSIDE_THE_LOCK:
                assert pins.get(_norm(m[1])) == m[2], f"{requirements}: {m[1]}=={m[2]}, lock: {pins.get(_norm(m[1]))}"
