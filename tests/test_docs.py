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


# Pages that name their evidence: each cited test file, test, policy-pack rule and checkov check
# must exist, so a renamed or deleted test cannot leave the page pointing at nothing.
EVIDENCE_PAGES = ("docs/security.md", "docs/mirror.md")


def _defined_tests() -> dict[str, set[str]]:
    return {
        p.name: set(re.findall(r"^(?:async )?def (test_\w+)", p.read_text(), re.M))
        for p in (ROOT / "tests").glob("test_*.py")
    }


@pytest.mark.parametrize("page", EVIDENCE_PAGES)
def test_every_cited_test_rule_and_check_exists(page: str) -> None:
    from policies.rules import all_rule_names

    text = (ROOT / page).read_text()
    tests = _defined_tests()
    every_test = set().union(*tests.values())
    checks = set(
        re.findall(
            r'id="(CKV_MMV_\d+)"', "".join(p.read_text() for p in (ROOT / "policies" / "checkov_checks").glob("*.py"))
        )
    )
    missing = [f for f in re.findall(r"tests/(test_\w+\.py)", text) if f not in tests]
    missing += [
        f"{f}::{t}" for f, t in re.findall(r"tests/(test_\w+\.py)::(test_\w+)", text) if t not in tests.get(f, ())
    ]
    missing += [t for t in re.findall(r"`(test_\w+)`", text) if t not in every_test]
    for cited in re.findall(r"rules? ((?:`[a-z0-9-]+`(?:,? (?:and )?)?)+)", text):
        missing += [f"rule {r}" for r in re.findall(r"`([a-z0-9-]+)`", cited) if r not in all_rule_names()]
    missing += [c for c in re.findall(r"CKV_MMV_\d+", text) if c not in checks]
    assert not missing, f"{page} cites what does not exist: {sorted(set(missing))}"
