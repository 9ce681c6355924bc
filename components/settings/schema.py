"""Building blocks of the settings schema, and its errors in the project's own words.

Strict value types (what YAML and `pulumi config set --path` deliver: numbers and booleans
may arrive as strings, but "yes" is not a boolean and true is not a number), the `rule`
that gives a field its default and the text a user reads, checks for a field's type, and
`render_errors`, which turns pydantic's report into one message per bad key: key, bad value,
rule (with the allowed values of a closed set) and the `pulumi config set` fix. The rule is the
field's description, or the text of a validator's `PydanticCustomError("rule", ...)`.
Imports nothing of the project.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, get_args

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel
from pydantic.fields import FieldInfo

# Every section: frozen (set by the decorator), unknown keys refused, camelCase YAML keys.
SECTION = ConfigDict(extra="forbid", alias_generator=to_camel, validate_by_name=True, validate_by_alias=True)


def _int(value: Any) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError("not an integer")


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("not a number")
    return float(value)


def _bool(value: Any) -> bool:
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    if isinstance(value, bool):
        return value
    raise ValueError("not true or false")


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("not a non-empty string")
    return value


def _str_list(value: Any) -> tuple[str, ...]:
    if (
        isinstance(value, str)
        or not isinstance(value, (list, tuple))
        or not all(isinstance(v, str) and v for v in value)
    ):
        raise ValueError("not a list of non-empty strings")
    return tuple(value)


Int = Annotated[int, BeforeValidator(_int)]
Float = Annotated[float, BeforeValidator(_float)]
Bool = Annotated[bool, BeforeValidator(_bool)]
Str = Annotated[str, BeforeValidator(_str)]
StrList = Annotated[tuple[str, ...], BeforeValidator(_str_list)]


def holds(test: Callable[[Any], Any]) -> AfterValidator:
    """A check on a field's parsed value; when it fails, the user reads the field's rule."""

    def check(value: Any) -> Any:
        if not test(value):
            raise ValueError("breaks the rule")
        return value

    return AfterValidator(check)


def matches(pattern: str) -> AfterValidator:
    """The whole value matches: `re.match` with `$` would let a trailing newline through."""
    return holds(re.compile(pattern).fullmatch)


def one_of(options: Iterable[Any]) -> AfterValidator:
    return holds(tuple(options).__contains__)


def each(test: Callable[[str], Any], at_least: int = 0) -> AfterValidator:
    """Every item of a list passes `test`, and a list that is set has at least `at_least` of them
    (empty is the default: looked up or not used)."""
    return holds(lambda items: (not items or len(items) >= at_least) and all(test(i) for i in items))


def rule(default: Any, text: str, example: Any = None, **constraints: Any) -> Any:
    """A field's default and the rule a user reads when the value breaks it."""
    extra = {"example": example} if example is not None else None
    return Field(default, description=text, json_schema_extra=extra, **constraints)


def closed(noun: str, options: Iterable[str]) -> str:
    """The rule of a closed set, listing every allowed value."""
    return f"is not {noun}; choose one of: {', '.join(options)}"


def cidr(value: str, min_prefix: int = 0, max_prefix: int = 32) -> bool:
    """An IPv4 network with no host bits set, its prefix length within the bounds."""
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError:
        return False
    return net.version == 4 and min_prefix <= net.prefixlen <= max_prefix


# --- errors ---------------------------------------------------------------------------


class SettingsError(ValueError):
    """Raised with every problem in a stack's configuration, each with its fix."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid stack configuration ({len(problems)} problem(s)):\n{lines}")


def set_command(path: str, example: Any) -> str:
    """The `pulumi config set` that puts `example` at `path` (a list: its first item)."""
    if isinstance(example, (list, tuple)):
        path, example = f"{path}[0]", example[0] if example else "<value>"
    if isinstance(example, bool):
        example = str(example).lower()
    return f"pulumi config set --path '{path}' {example if example is not None else '<value>'}"


def did_you_mean(key: str, known: Iterable[str]) -> str:
    """The known key a misspelled one most resembles, if any is close."""
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _section(annotation: Any) -> type | None:
    """The schema class of a field, also when the section is optional (`Section | None`)."""
    if isinstance(annotation, type):
        return annotation
    members = [a for a in get_args(annotation) if a is not type(None)]
    return members[0] if len(members) == 1 and isinstance(members[0], type) else None


def _item_section(annotation: Any) -> type | None:
    """The schema class of a list-of-sections field (`tuple[Section, ...]`), else None."""
    for arg in get_args(annotation) or ():
        found = _item_section(arg) if get_args(arg) else None
        if isinstance(arg, type) and _fields(arg):
            return arg
        if found:
            return found
    return None


def _fields(cls: type) -> dict[str, FieldInfo]:
    """A schema class's fields by YAML key (alias)."""
    return {(f.alias or name): f for name, f in getattr(cls, "__pydantic_fields__", {}).items()}


def render_errors(
    err: ValidationError, root: type, data: Mapping[str, Any], project: str, top_level_keys: Iterable[str]
) -> list[str]:
    """One message per bad key (the first error pydantic reports for it), in the schema's order."""
    problems: dict[str, str] = {}
    for e in err.errors():
        cls, path, info, consumed = root, [], None, 0
        for part in e["loc"]:
            item = _item_section(info.annotation) if info is not None else None
            if isinstance(part, int) and path and item is not None:  # an entry of a list of sections
                path[-1] += f"[{part}]"
                cls, consumed = item, consumed + 1
                continue
            fields = _fields(cls)
            if not isinstance(part, str) or part not in fields:
                break
            path.append(part)
            consumed += 1
            info = fields[part]
            cls = _section(info.annotation)
        key = ".".join(path)
        if e["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
            unknown = str(e["loc"][consumed])
            known = tuple(_fields(cls)) if key else tuple(top_level_keys)
            problems.setdefault(f"{key}.{unknown}", unknown_key(project, key, unknown, e["input"], known))
            continue
        if key in problems or info is None:
            continue
        value = _lookup(data, path, e["input"])
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        ctx = e.get("ctx") or {}
        if cls is not None and _fields(cls):  # a whole section of the wrong shape
            rule, fix = "must be an object", f"pulumi config set --path '{key}.<field>' <value>"
        elif e["type"] == "missing":
            value, rule = None, f"is required: {extra.get('required', info.description)}"
            example = extra.get("example", "<value>")
            fix = set_command(key, example) if "." in key else f"pulumi config set {project}:{key} {example}"
        else:
            rule = e["msg"] if e["type"] == "rule" else (info.description or e["msg"])
            example = ctx.get("example", extra.get("example", info.get_default(call_default_factory=False)))
            fix = ctx.get("fix") or set_command(key, example)
        problems[key] = f"{project}:{key} = {value!r} {rule}. Fix: {fix}"
    return list(problems.values())


def unknown_key(project: str, section: str, key: str, value: Any, known: tuple[str, ...]) -> str:
    """A key the schema does not know: the known ones, the likely intended one, how to remove it."""
    if not section:
        return (
            f"{project}:{key} = {value!r} is not a known setting; known: {', '.join(known)}"
            f"{did_you_mean(key, known)}. Fix: pulumi config rm {project}:{key}"
        )
    return (
        f"{project}:{section}.{key} = {value!r} is not a known setting; known fields of {section}: "
        f"{', '.join(known)}{did_you_mean(key, known)}. Fix: pulumi config rm --path '{section}.{key}'"
    )


def _lookup(data: Mapping[str, Any], path: list[str], fallback: Any) -> Any:
    """The value as the user wrote it (a whole list, not the one bad item)."""
    value: Any = data
    for part in path:
        if not isinstance(value, Mapping) or part not in value:
            return fallback
        value = value[part]
    return value
