"""The docs quote what the commands print now: every generated block equals its source's output."""

from __future__ import annotations

import re

import pytest
from pydantic.alias_generators import to_camel

from components.observability import alerts
from components.platform.config import from_stack_file
from components.settings.stack import Settings
from tests import docs_blocks
from tests.docs_blocks import BLOCKS, ROOT

DOCS = sorted({*ROOT.glob("docs/*.md"), ROOT / "README.md"})


@pytest.mark.parametrize(
    "block", [pytest.param(b, marks=[pytest.mark.slow] if b.slow else []) for b in BLOCKS], ids=lambda b: b.name
)
def test_every_generated_block_is_what_its_command_prints_now(block: docs_blocks.Block) -> None:
    found = docs_blocks.blocks_in((ROOT / block.doc).read_text())
    assert block.name in found, f"{block.doc} has no <!-- generated: {block.name} --> block"
    assert found[block.name] == block.make(), f"{block.doc}: block {block.name} is stale: run `make docs`"


def test_every_marker_in_the_docs_names_a_known_block() -> None:
    known = {b.name: b.doc for b in BLOCKS}
    for doc in DOCS:
        for name in docs_blocks.blocks_in(doc.read_text()):
            assert known.get(name) == str(doc.relative_to(ROOT)), f"{doc.name}: unknown or misplaced block {name}"


def test_a_changed_figure_is_caught() -> None:
    """The comparison sees a one-character change inside a block (what a hand edit would be)."""
    text = (ROOT / "docs/scaling.md").read_text()
    body = docs_blocks.blocks_in(text)["scaling-dev"]
    edited = text.replace(body, body.replace("PASS", "PASS ", 1))
    assert docs_blocks.blocks_in(edited)["scaling-dev"] != docs_blocks.scaling_dev()


def _leaf_settings(cls: type, prefix: str = "") -> set[str]:
    keys = set()
    for name, info in docs_blocks._fields(cls).items():  # noqa: SLF001
        key = prefix + (info.alias or to_camel(name))
        if key in docs_blocks.NOT_SETTINGS:
            continue
        section = info.annotation if isinstance(info.annotation, type) else None
        if section is not None and getattr(section, "__pydantic_fields__", None) is not None:
            keys |= _leaf_settings(section, key + ".")
        else:
            keys.add(key)
    return keys


def test_the_settings_reference_lists_every_setting_of_the_schema() -> None:
    page = (ROOT / "docs/settings.md").read_text()
    listed = set(re.findall(r"^\| `([A-Za-z0-9.]+)` \|", page, re.M))
    expected = _leaf_settings(Settings)
    assert {"serving.maxModelLen", "gpuNodes.instanceType", "endpoint.certificateArn"} <= expected
    assert expected == listed


def test_the_roles_table_lists_every_role_the_stacks_create() -> None:
    page = (ROOT / "docs/security.md").read_text()
    listed = set(re.findall(r"^\| `([a-z0-9-]+)` \|", page, re.M))
    made = {
        docs_blocks._short(role.name, stack)  # noqa: SLF001
        for variant, (stack, _) in docs_blocks.VARIANTS.items()
        for role in docs_blocks._rendering(variant).of_type("aws:iam/role:Role")  # noqa: SLF001
    }
    assert {"gpu-node-role", "lbc-role", "weights-pods-role"} <= made
    assert made <= listed


def test_the_alert_table_lists_every_rule() -> None:
    page = (ROOT / "docs/operations.md").read_text()
    listed = set(re.findall(r"^\| \[([A-Za-z]+)\]\(#", page, re.M))
    assert listed == alerts.alert_names(from_stack_file("prod-8gpu").observability)
