"""A small evaluator of the IAM policy statements the mirror renders (moto does not enforce IAM).

It covers the elements those statements use: Effect, Action (wildcards), Resource and
NotResource (wildcards), Principal "*", and the condition operators Bool, StringEquals,
StringLike, ArnEquals and ArnNotEquals. Same-account rule (IAM User Guide, "Policy evaluation
logic"): an explicit Deny in either policy wins; otherwise an Allow in the identity policy or
the bucket policy allows.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any


def _list(v: Any) -> list:
    return v if isinstance(v, list) else [v]


def _condition(cond: dict[str, dict[str, Any]], ctx: dict[str, str]) -> bool:
    for op, pairs in cond.items():
        for key, want in pairs.items():
            have = ctx.get(key)
            wants = [str(w).lower() if op == "Bool" else str(w) for w in _list(want)]
            if op == "Bool" or op in ("StringEquals", "ArnEquals"):
                ok = have is not None and have in wants
            elif op == "StringLike":
                ok = have is not None and any(fnmatchcase(have, w) for w in wants)
            elif op == "ArnNotEquals":
                ok = have is None or have not in wants
            else:
                raise ValueError(f"operator {op} not covered")
            if not ok:
                return False
    return True


def _matches(s: dict[str, Any], action: str, resource: str, ctx: dict[str, str]) -> bool:
    if not any(fnmatchcase(action, a) for a in _list(s["Action"])):
        return False
    if "Resource" in s and not any(fnmatchcase(resource, r) for r in _list(s["Resource"])):
        return False
    if "NotResource" in s and any(fnmatchcase(resource, r) for r in _list(s["NotResource"])):
        return False
    return _condition(s.get("Condition", {}), ctx)


def allowed(identity: list[dict], bucket: list[dict], action: str, resource: str, ctx: dict[str, str]) -> bool:
    statements = [*identity, *bucket]
    if any(s["Effect"] == "Deny" and _matches(s, action, resource, ctx) for s in statements):
        return False
    return any(s["Effect"] == "Allow" and _matches(s, action, resource, ctx) for s in statements)
