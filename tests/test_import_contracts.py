"""The import contracts of `.importlinter` (run by `make lint`) hold on the tree, and each kind
of wrong arrow breaks them: a room importing a higher room, `components` importing `ops`, and
an import circle. Each case plants one import in a copy of the tree, never in the tree itself."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # five runs of lint-imports on copies of the tree; `make lint` runs it on the tree

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _copy(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    for package in ("components", "ops", "policies"):
        shutil.copytree(ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__", "data"))
    shutil.copy(ROOT / ".importlinter", tree / ".importlinter")
    return tree


def _plant(tree: Path, module: str, line: str) -> None:
    path = tree / module
    text = path.read_text()
    marker = "from __future__ import annotations\n"
    assert marker in text, module
    path.write_text(text.replace(marker, f"{marker}\n{line}\n", 1))


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=tree, capture_output=True, text=True, check=False, timeout=120
    )


def test_the_tree_keeps_every_contract(tmp_path):
    result = _lint(_copy(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # the AWS side reaching up into a Helm component (what the node-template tags once did)
        (
            "components/aws/gpu_nodes.py",
            "from components.scaling import cluster_autoscaler  # noqa: F401",
            "each room imports only the rooms below it BROKEN",
        ),
        # a fact that depends on the settings built on it
        (
            "components/facts/timeline.py",
            "from components.settings import stack  # noqa: F401",
            "each room imports only the rooms below it BROKEN",
        ),
        (
            "components/serving/workload.py",
            "from ops import report  # noqa: F401",
            "components never imports ops BROKEN",
        ),
    ],
)
def test_a_planted_wrong_import_breaks_a_contract(tmp_path, module, line, broken):
    tree = _copy(tmp_path)
    _plant(tree, module, line)
    result = _lint(tree)
    assert result.returncode != 0
    assert broken in result.stdout


def test_an_import_circle_breaks_the_acyclic_contract(tmp_path):
    tree = _copy(tmp_path)
    # Arrows inside one room are allowed, so only the circle contract can catch these two.
    _plant(tree, "components/facts/timeline.py", "from components.facts import catalog  # noqa: F401")
    _plant(tree, "components/facts/catalog.py", "from components.facts import timeline  # noqa: F401")
    result = _lint(tree)
    assert result.returncode != 0
    assert "no import cycles between sibling modules or packages BROKEN" in result.stdout
    assert "each room imports only the rooms below it KEPT" in result.stdout
