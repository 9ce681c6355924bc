"""docs/architecture.md's import graph is the code's, and a new arrow in the code makes it stale."""

from __future__ import annotations

import shutil

from ops import architecture


def test_the_pages_import_graph_is_drawn_from_the_code():
    assert architecture.current() == architecture.block(), "run `make architecture`"


def test_a_new_arrow_between_rooms_makes_the_graph_stale(tmp_path):
    for package in ("components", "ops"):
        shutil.copytree(architecture.ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    assert architecture.block(tmp_path) == architecture.current()
    facts = tmp_path / "components" / "facts" / "timeline.py"
    facts.write_text(
        facts.read_text() + "\n\ndef _late() -> None:\n    from components.serving import profiles  # noqa: F401\n"
    )
    assert "facts --> serving" in architecture.block(tmp_path)
    assert architecture.block(tmp_path) != architecture.current()
