"""The import graph of docs/architecture.md sees every arrow between rooms, also one inside a
function (tests/test_docs.py holds the page's block to the graph of the tree)."""

from __future__ import annotations

import shutil

from ops import architecture


def test_a_new_arrow_between_rooms_changes_the_graph(tmp_path):
    for package in ("components", "ops"):
        shutil.copytree(architecture.ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    assert architecture.mermaid(tmp_path) == architecture.mermaid()
    assert "facts --> serving" not in architecture.mermaid()
    facts = tmp_path / "components" / "facts" / "timeline.py"
    facts.write_text(
        facts.read_text() + "\n\ndef _late() -> None:\n    from components.serving import profiles  # noqa: F401\n"
    )
    assert "  facts --> serving\n" in architecture.mermaid(tmp_path)
