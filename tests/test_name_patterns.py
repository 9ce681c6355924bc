"""A name check accepts the whole value or nothing: `re.match` with `$` lets a trailing newline through.

`"prod-8gpu\\n"` passed the stack-name checks of the settings and of sweep; a newline in a
tag, an ARN or a resource id reaches AWS as a different, invalid name. Every pattern that
validates a setting is found by walking the settings schema, so a new one is covered too.
"""

from __future__ import annotations

import ast
import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import AfterValidator, ValidationError

from components.platform.config import parse
from components.serving.supply_chain import remote_code_revision_problems
from components.settings.aws import ASSUME_ROLES, identity
from components.settings.scaling import ScheduleSettings
from components.settings.stack import Settings, SettingsError
from ops.report import UsageError
from ops.sweep.scope import check_stack_name

REGION = "us-east-2"
SHA = "0123456789abcdef0123456789abcdef01234567"
UUID = "01234567-89ab-cdef-0123-456789abcdef"
# A valid value for every setting a pattern validates (the walk below fails on a new one).
VALID: dict[str, Any] = {
    "owner": "ml-platform",
    "environment": "prod",
    "serving.revision": SHA,
    "serving.servedModelName": "minimax",
    "serving.imageTag": "v0.32.0",
    "network.availabilityZones": ["us-east-2a", "us-east-2b"],
    "network.existingVpcId": "vpc-0123456789abcdef0",
    "network.publicSubnetIds": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    "network.privateSubnetIds": ["subnet-0123456789abcdef2", "subnet-0123456789abcdef3"],
    "cluster.accessEntries.principalArn": "arn:aws:iam::123456789012:role/admin",
    "cluster.accessEntries.namespaces": ["minimax-vllm"],
    "cluster.systemInstanceType": "m7i.xlarge",
    "gpuNodes.capacityReservationId": "cr-0123456789abcdef0",
    "gpuNodes.availabilityZones": ["us-east-2a"],
    "endpoint.certificateArn": f"arn:aws:acm:us-east-2:123456789012:certificate/{UUID}",
    "endpoint.wafAclArn": f"arn:aws:wafv2:us-east-2:123456789012:regional/webacl/minimax/{UUID}",
    "weights.existingBucket": "team-weights",
    "scaling.schedule.days": "1-5",
}
CONTEXT = {"weights.existingBucket": {"source": "s3"}}  # read only with a mirror
# Fields of a list of sections: the list, and a valid entry to put the field in.
LIST_ITEMS = {
    "cluster.accessEntries": {"principalArn": "arn:aws:iam::123456789012:role/a", "policy": "AmazonEKSViewPolicy"}
}


def shown(path: str) -> str:
    """The key as an error names it: a list entry's field with its index."""
    for listed in LIST_ITEMS:
        if path.startswith(listed + "."):
            return f"{listed}[0]{path[len(listed) :]}"
    return path


def _patterns(obj: Any, seen: set[int]) -> Iterator[tuple[re.Pattern[str], str]]:
    """(pattern, method) of every compiled pattern a type's validators call, through closures."""
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, AfterValidator):
        yield from _patterns(obj.func, seen)
    if isinstance(getattr(obj, "__self__", None), re.Pattern):
        yield obj.__self__, obj.__name__
    for cell in getattr(obj, "__closure__", None) or ():
        yield from _patterns(cell.cell_contents, seen)
    for meta in getattr(obj, "__metadata__", ()):
        yield from _patterns(meta, seen)
    for arg in typing.get_args(obj):
        yield from _patterns(arg, seen)


def pattern_settings(model: Any = Settings, prefix: str = "") -> dict[str, list[tuple[re.Pattern[str], str]]]:
    found: dict[str, list[tuple[re.Pattern[str], str]]] = {}
    for name, field in model.__pydantic_fields__.items():
        key = prefix + (field.alias or name)
        if used := [p for source in (field.annotation, *field.metadata) for p in _patterns(source, set())]:
            found[key] = used
        for sub in (field.annotation, *typing.get_args(field.annotation)):
            if hasattr(sub, "__pydantic_fields__"):
                found.update(pattern_settings(sub, f"{key}."))
    return found


def with_(path: str, value: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"owner": "ml-platform"}
    for listed, entry in LIST_ITEMS.items():
        if path.startswith(listed + "."):
            section, key = listed.split(".")
            raw[section] = {key: [{**entry, path[len(listed) + 1 :]: value}]}
            return raw
    *sections, key = path.split(".")
    where = raw
    for section in sections:
        where = where.setdefault(section, dict(CONTEXT.get(path, {})) if section == sections[0] else {})
    where[key] = value
    return raw


def problems(raw: dict[str, Any], stack: str = "test") -> list[str]:
    try:
        parse(raw, stack, REGION)
    except SettingsError as err:
        return err.problems
    return []


def with_newline(value: Any) -> Any:
    return [value[0] + "\n", *value[1:]] if isinstance(value, list) else value + "\n"


def test_every_pattern_checked_setting_has_a_case_here_and_matches_whole_values() -> None:
    found = pattern_settings()
    assert set(found) == set(VALID), "add a valid value for each new pattern-checked setting to VALID"
    assert {key: [m for _, m in used if m != "fullmatch"] for key, used in found.items()} == {k: [] for k in found}


@pytest.mark.parametrize("path", sorted(VALID))
def test_a_trailing_newline_is_refused_in_every_pattern_checked_setting(path: str) -> None:
    good, bad = VALID[path], with_newline(VALID[path])
    assert not [p for p in problems(with_(path, good)) if f"minimax-vllm:{shown(path)} = {good!r}" in p]
    assert [p for p in problems(with_(path, bad)) if f"minimax-vllm:{shown(path)} = {bad!r}" in p], path


def test_a_stack_name_with_a_trailing_newline_names_no_cluster() -> None:
    assert not problems(with_("owner", "ml-platform"), stack="team-a")
    (message,) = problems(with_("owner", "ml-platform"), stack="team-a\n")
    assert "cannot name its EKS cluster one-to-one" in message
    check_stack_name("prod-8gpu", "minimax-vllm-prod-8gpu")
    with pytest.raises(UsageError, match="letters, digits and hyphens"):
        check_stack_name("prod-8gpu\n", "minimax-vllm-prod-8gpu\n")


def test_the_other_name_checks_refuse_a_trailing_newline_too() -> None:
    role = "arn:aws:iam::123456789012:role/deploy"
    assert identity({ASSUME_ROLES: [{"roleArn": role}]})[0].role_arn == role
    assert identity({ASSUME_ROLES: [{"roleArn": role + "\n"}]})[1]
    ScheduleSettings(days="1-5")
    with pytest.raises(ValidationError, match="days"):
        ScheduleSettings(days="1-5\n")
    argv = ["--trust-remote-code"]
    assert not remote_code_revision_problems(True, argv, "MiniMaxAI/MiniMax-M2.5", SHA)
    assert remote_code_revision_problems(True, argv, "MiniMaxAI/MiniMax-M2.5", SHA + "\n")


def test_no_project_code_matches_only_a_prefix() -> None:
    """`pattern.match` / `re.match` anchor only the start: a check of a name uses `fullmatch`."""
    root = Path(__file__).resolve().parent.parent
    found = [
        f"{path.relative_to(root)}:{node.lineno}"
        for folder in ("components", "ops", "policies")
        for path in sorted((root / folder).rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "match"
    ]
    assert found == [], "use fullmatch (or re.search with an explicit \\Z): " + ", ".join(found)
