"""What a later `pulumi up` does to each resource, from two offline renderings of a stack.

Pure: resources are plain records (ops/upgrade.py makes them from the engine or from a base
ref's rendering). Resources match by URN. An input change at or below a path of
ops/offline/replace_rules.py replaces the resource; any other change updates it in place. A replaced
resource gets a new id, so a resource whose inputs carry that id changes too (the offline ids
are stable per name, so this is propagated here, as Pulumi's preview would show it unknown).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ops.offline import replace_rules

CREATE, UPDATE, REPLACE, DELETE = "create", "update", "replace", "delete"
_INDEX = re.compile(r"\[\d+\]")
# Offline ids of AWS resources (ops/offline/mocks.py: prefix + hash) are long enough to be found in
# another resource's inputs without false matches; short ids (Kubernetes names) are not used.
_MIN_ID = 10


@dataclass(frozen=True)
class Item:
    """One resource of a rendering, as the diff needs it."""

    urn: str
    type: str
    name: str
    id: str
    inputs: Mapping[str, Any]
    delete_before_replace: bool = False
    parent: str = ""


@dataclass(frozen=True)
class Change:
    urn: str
    type: str
    name: str
    action: str  # create | update | replace | delete
    paths: tuple[str, ...] = ()  # changed inputs (update) or those forcing the replacement
    delete_first: bool = False  # a replacement that deletes the old resource before creating
    because: tuple[str, ...] = field(default=())  # replaced resources whose new id reaches this one
    parent: str = ""

    @property
    def kind(self) -> str:
        if self.action != REPLACE:
            return self.action
        return "replace (delete first)" if self.delete_first else "replace (create first)"


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Leaf values by dotted path (`spec.template.spec.containers[0].image`)."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k in sorted(value):
            out.update(flatten(value[k], f"{prefix}.{k}" if prefix else str(k)))
        return out or {prefix: {}}
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}[{i}]"))
        return out or {prefix: []}
    return {prefix: value}


def changed_paths(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[str, ...]:
    a, b = flatten(before), flatten(after)
    return tuple(sorted(p for p in set(a) | set(b) if a.get(p, _MISSING) != b.get(p, _MISSING)))


_MISSING = object()


def forcing(type_token: str, paths: Iterable[str]) -> tuple[str, ...]:
    """The changed paths that force a replacement of this type."""
    rules = replace_rules.rules(type_token) or ()
    found = []
    for p in paths:
        bare = _INDEX.sub("", p)
        if any(bare == r or bare.startswith(r + ".") for r in rules):
            found.append(p)
    return tuple(found)


def _delete_first(item: Item) -> bool:
    """Pulumi replaces delete-first when asked to; pulumi-kubernetes does so for an object with a
    fixed metadata.name (the new one cannot be created beside the old)."""
    if item.delete_before_replace:
        return True
    return item.type.startswith("kubernetes:") and bool((item.inputs.get("metadata") or {}).get("name"))


def diff(before: Iterable[Item], after: Iterable[Item]) -> list[Change]:
    """Every resource that `pulumi up` would touch, sorted by URN; unchanged ones left out."""
    old = {i.urn: i for i in before}
    new = {i.urn: i for i in after}
    paths = {u: changed_paths(old[u].inputs, new[u].inputs) for u in old.keys() & new.keys()}
    replaced = {u for u, p in paths.items() if forcing(new[u].type, p)}
    because: dict[str, set[str]] = {}
    grew = True
    while grew:  # a replacement's new id reaches the resources that carry the old one
        grew = False
        tokens = {old[u].id: u for u in replaced if len(old[u].id) >= _MIN_ID}
        for u in sorted(set(paths) - replaced):
            leaves = flatten(new[u].inputs)
            hits = {p: src for p, v in leaves.items() for tok, src in tokens.items() if isinstance(v, str) and tok in v}
            if not hits:
                continue
            because.setdefault(u, set()).update(hits.values())
            paths[u] = tuple(sorted(set(paths[u]) | set(hits)))
            if forcing(new[u].type, hits):
                replaced.add(u)
                grew = True
    changes = []
    for u in sorted(old.keys() | new.keys()):
        item = new.get(u) or old[u]
        if u not in new:
            changes.append(Change(u, item.type, item.name, DELETE, parent=item.parent))
        elif u not in old:
            changes.append(Change(u, item.type, item.name, CREATE, parent=item.parent))
        elif u in replaced:
            changes.append(
                Change(
                    u,
                    item.type,
                    item.name,
                    REPLACE,
                    forcing(item.type, paths[u]),
                    _delete_first(item),
                    tuple(sorted(because.get(u, ()))),
                    item.parent,
                )
            )
        elif paths[u]:
            changes.append(
                Change(
                    u,
                    item.type,
                    item.name,
                    UPDATE,
                    paths[u],
                    because=tuple(sorted(because.get(u, ()))),
                    parent=item.parent,
                )
            )
    return changes
