"""The import graph of the rooms of `components` (and from `ops` into them), from the code.

Read from the source with `ast` (every import, also inside functions), one arrow per pair of
rooms, sorted: the graph changes only when an arrow appears or goes. docs/architecture.md
shows it as a generated block (`make docs`; tests/test_docs.py fails when it is stale).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _room(module: str) -> str | None:
    """`components.aws.cluster` -> `aws`; `ops...` -> `ops`; anything else is not drawn."""
    parts = module.split(".")
    if parts[0] == "ops":
        return "ops"
    if parts[0] == "components" and len(parts) > 1:
        return parts[1]
    return None


def _imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and not node.level:
        return [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return []


def edges(root: Path = ROOT) -> list[tuple[str, str]]:
    """(importer, imported) rooms, each pair once, sorted."""
    found: set[tuple[str, str]] = set()
    for path in sorted([*root.glob("components/**/*.py"), *root.glob("ops/**/*.py")]):
        source = _room(".".join(path.relative_to(root).with_suffix("").parts))
        if source is None:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            for name in _imported(node):
                target = _room(name)
                if target and target != source:
                    found.add((source, target))
    return sorted(found)


def mermaid(root: Path = ROOT) -> str:
    """The graph as a Mermaid block; an arrow reads "imports"."""
    lines = ["```mermaid", "graph TD", *(f"  {a} --> {b}" for a, b in edges(root)), "```"]
    return "\n".join(lines) + "\n"
