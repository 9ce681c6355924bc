"""Every program and Python module a rendered pod runs in the vLLM image, read from its commands.

Container commands, `sh -c` scripts (with their `$(...)` substitutions and `trap` handlers),
`python3 -c` code, and the Python and shell scripts ConfigMaps carry into the pods are read
here, so tests/test_image_contents.py can hold each against the image's recorded contents
(components/facts/data/vllm-image-contents.json).
"""

from __future__ import annotations

import ast
import shlex
from dataclasses import dataclass
from typing import Any

SHELLS = ("sh", "bash", "dash")
# Words that run the next word as a command.
WRAPPERS = ("exec", "nohup", "env", "sudo", "command", "timeout", "numactl")
RESERVED = ("if", "then", "else", "elif", "fi", "while", "until", "do", "done", "!", "{", "}")
_SEPARATORS = {";", "&", "|", "&&", "||", "(", ")", "\n", ";;", "|&"}
_REDIRECTS = {">", "<", ">>", "<<", ">&", "<&", ">|", "<>"}
# The image's entrypoint (`ENTRYPOINT ["vllm", "serve"]`), for containers that give only args.
ENTRYPOINT = ["vllm", "serve"]


@dataclass(frozen=True, order=True)
class Use:
    """One program or module a pod needs from its image, and where the need is written."""

    kind: str  # "executable" | "module"
    name: str
    where: str


def _matching(text: str, open_at: int) -> int:
    depth = 0
    for i in range(open_at, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i
    raise ValueError(f"unbalanced parentheses in shell text: {text[open_at : open_at + 60]!r}")


def _substitutions(script: str) -> tuple[str, list[str]]:
    """The script with each `$(...)` replaced by a word, and the substituted scripts."""
    out: list[str] = []
    subs: list[str] = []
    i = 0
    while i < len(script):
        if script.startswith("$((", i):  # arithmetic: no command itself, but may hold substitutions
            end = _matching(script, i + 1)
            subs += _substitutions(script[i + 3 : end - 1])[1]
            out.append("0")
            i = end + 1
        elif script.startswith("$(", i):
            end = _matching(script, i + 1)
            subs.append(script[i + 2 : end])
            out.append("__substituted__")
            i = end + 1
        else:
            out.append(script[i])
            i += 1
    return "".join(out), subs


def simple_commands(script: str) -> list[list[str]]:
    """The words of each simple command in a POSIX sh script, substitutions included."""
    top, subs = _substitutions(script)
    lexer = shlex.shlex(top, posix=True, punctuation_chars=";&|()<>\n")
    lexer.whitespace = " \t\r"
    lexer.whitespace_split = True
    commands: list[list[str]] = []
    current: list[str] = []
    skip_until: str | None = None
    tokens = list(lexer)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in _SEPARATORS or token.strip(";&|()\n") == "":
            if current:
                commands.append(current)
            current = []
        elif token in _REDIRECTS or token.rstrip("&") in _REDIRECTS:
            i += 1  # the redirection's target is no argument
        elif skip_until:
            if token == skip_until:
                skip_until = None
        elif not current and token in ("for", "case"):
            skip_until = "do" if token == "for" else "esac"
        elif not current and token in RESERVED:
            pass
        elif not current and "=" in token and token.split("=", 1)[0].isidentifier():
            pass  # an assignment before the command
        else:
            current.append(token)
        i += 1
    if current:
        commands.append(current)
    for sub in subs:
        commands += simple_commands(sub)
    return commands


def python_imports(source: str) -> list[str]:
    """Top-level modules a Python source imports, wherever the import statement stands."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return sorted(names)


def argv_uses(argv: list[str], where: str, *, in_shell: bool, builtins: frozenset[str]) -> list[Use]:
    """What running `argv` needs from the image."""
    if not argv:
        return []
    name = argv[0].rsplit("/", 1)[-1]
    if in_shell and name in builtins:
        if name == "trap" and len(argv) > 1:
            return script_uses(argv[1], f"{where} (trap)", builtins)
        if name in ("exec", "command"):
            return argv_uses(_after_options(argv[1:]), where, in_shell=True, builtins=builtins)
        return []
    found = [Use("executable", name, where)]
    if name in SHELLS and "-c" in argv[1:]:
        found += script_uses(argv[argv.index("-c") + 1], where, builtins)
    elif name.startswith("python"):
        if "-c" in argv[1:]:
            found += [Use("module", m, where) for m in python_imports(argv[argv.index("-c") + 1])]
        elif "-m" in argv[1:]:
            found.append(Use("module", argv[argv.index("-m") + 1].split(".")[0], where))
    elif name in WRAPPERS:
        rest = _after_options(argv[1:])
        if name == "timeout" and rest:
            rest = rest[1:]  # the duration
        found += argv_uses(rest, where, in_shell=in_shell, builtins=builtins)
    return found


def _after_options(argv: list[str]) -> list[str]:
    i = 0
    while i < len(argv) and (argv[i].startswith("-") or ("=" in argv[i] and argv[i].split("=")[0].isidentifier())):
        i += 1
    return argv[i:]


def script_uses(script: str, where: str, builtins: frozenset[str]) -> list[Use]:
    return [u for argv in simple_commands(script) for u in argv_uses(argv, where, in_shell=True, builtins=builtins)]


def pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "Pod":
        return [spec]
    if obj.get("kind") == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    template = spec.get("template", {}).get("spec")
    return [template] if template else []


def rendered_uses(
    objects: list[dict[str, Any]], image_repository: str, builtins: frozenset[str], config_maps: bool = True
) -> list[Use]:
    """Everything the containers of `image_repository` need, and (config_maps) every ConfigMap script."""
    found: list[Use] = []
    for obj in objects:
        label = f"{obj['kind']}/{obj.get('metadata', {}).get('name', '?')}"
        for spec in pod_specs(obj):
            for role in ("initContainers", "containers"):
                for c in spec.get(role) or []:
                    if not str(c.get("image", "")).startswith(image_repository):
                        continue
                    where = f"{label} {role[:-1]} {c['name']}"
                    argv = list(c.get("command") or ENTRYPOINT) + list(c.get("args") or [])
                    found += argv_uses(argv, where, in_shell=False, builtins=builtins)
                    for hook in _exec_hooks(c):
                        found += argv_uses(hook, f"{where} (probe/hook)", in_shell=False, builtins=builtins)
        if config_maps and obj.get("kind") == "ConfigMap":
            for key, text in sorted((obj.get("data") or {}).items()):
                if key.endswith(".py"):
                    found += [Use("module", m, f"{label} {key}") for m in python_imports(text)]
                elif key.endswith(".sh"):
                    found += script_uses(text, f"{label} {key}", builtins)
    return sorted(set(found))


def _exec_hooks(container: dict[str, Any]) -> list[list[str]]:
    hooks = [container.get(p) or {} for p in ("livenessProbe", "readinessProbe", "startupProbe")]
    hooks += list((container.get("lifecycle") or {}).values())
    return [list(h["exec"]["command"]) for h in hooks if "exec" in h]
