"""Where settings come from: the running Pulumi program's config, or a stack file.

The only reader of `pulumi.Config` and of stacks/Pulumi.<stack>.yaml. Parses with the
schema in `settings`, then runs the capacity check (which needs the parsed settings).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from components.platform import settings_rules
from components.serving import capacity
from components.serving import exposure as exposure_rules
from components.settings import aws as aws_config
from components.settings import stack as settings
from components.settings.stack import PROJECT, REQUIRED_SECRETS, SECRET_KEYS, Secrets, Settings, SettingsError


def parse(raw: Mapping[str, Any], stack: str, region: str | None, aws: Mapping[str, Any] | None = None) -> Settings:
    """Settings that pass the schema, the rules between settings and the capacity check."""
    parsed = settings.parse(raw, stack, region, aws)
    if problems := settings_rules.check(parsed) or capacity.check(parsed):
        raise SettingsError(problems)
    return parsed


def stack_file(stack: str, stacks_dir: Path | None = None) -> Path:
    return (stacks_dir or settings.STACKS_DIR) / f"Pulumi.{stack}.yaml"


def read_stack_file(stack: str, stacks_dir: Path | None = None) -> dict[str, Any]:
    """The `config:` map of stacks/Pulumi.<stack>.yaml (or another folder's), keys as written (`ns:key`)."""
    path = stack_file(stack, stacks_dir)
    if not path.is_file():
        known = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in path.parent.glob("Pulumi.*.yaml"))
        raise SettingsError([f"stack '{stack}' has no file {path}; known stacks: {', '.join(known)}"])
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        what = " ".join(str(p) for p in (err.context, err.problem) if p)
        raise SettingsError(
            [f"{where}: YAML syntax error: {what}. Fix: correct the file at that line and column"]
        ) from None
    if not isinstance(doc, Mapping) or not isinstance(doc.get("config") or {}, Mapping):
        raise SettingsError([f"{path}: must be a YAML mapping with a `config:` mapping"])
    return dict(doc.get("config") or {})


def split_stack_config(config: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Project keys (prefix removed, secure values dropped) and the AWS region."""
    ours = {}
    for key, value in config.items():
        ns, _, name = key.partition(":")
        if ns == PROJECT and name not in SECRET_KEYS:
            ours[name] = value
    return ours, config.get("aws:region")


def aws_config_of(config: Mapping[str, Any]) -> dict[str, Any]:
    """The stack's `aws:` keys (prefix removed) that say who the AWS provider acts as."""
    keys = (aws_config.PROFILE, aws_config.ASSUME_ROLES, aws_config.OLD_ASSUME_ROLE)
    return {k: config[f"aws:{k}"] for k in keys if config.get(f"aws:{k}") is not None}


def secrets_set_in(config: Mapping[str, Any]) -> frozenset[str]:
    """Secret keys a stack file already holds (as `secure:` values)."""
    return frozenset(k for k in SECRET_KEYS if config.get(f"{PROJECT}:{k}") is not None)


def from_stack_file(stack: str) -> Settings:
    """Settings of a stack straight from its file, for the ops commands (no Pulumi engine)."""
    values = read_stack_file(stack)
    raw, region = split_stack_config(values)
    return parse(raw, stack, region, aws_config_of(values))


def load() -> tuple[Settings, Secrets]:
    """Settings and secrets of the running Pulumi program (the only `pulumi.Config` reader)."""
    import pulumi

    cfg = pulumi.Config(PROJECT)
    scalars = ("environment", "owner")
    raw: dict[str, Any] = {key: cfg.get_object(key) for key in settings.USER_FIELDS if key not in scalars}
    raw.update({key: cfg.get(key) for key in scalars})
    raw = {k: v for k, v in raw.items() if v is not None}
    raw.update({key: None for key in _unknown_config_keys()})
    problems = [
        f"{PROJECT}:{key} is not set; it is a required secret. Fix: pulumi config set --secret {PROJECT}:{key} <value>"
        for key in REQUIRED_SECRETS
        if cfg.get_secret(key) is None
    ]
    if "apiKey" not in [p.split(":", 1)[1].split(" ", 1)[0] for p in problems]:
        # The key's length only: the value itself stays a Pulumi secret and is never printed.
        problems += [
            f"{PROJECT}:{p.key} = {p.value!r} {p.rule}. Fix: {p.fix}"
            for p in exposure_rules.api_key_problems(cfg.get("apiKey"))
        ]
    try:
        aws = pulumi.Config("aws")
        who = {aws_config.PROFILE: aws.get(aws_config.PROFILE)}
        who.update({k: aws.get_object(k) for k in (aws_config.ASSUME_ROLES, aws_config.OLD_ASSUME_ROLE)})
        parsed = parse(raw, pulumi.get_stack(), aws.get("region"), {k: v for k, v in who.items() if v is not None})
    except SettingsError as err:
        raise SettingsError(problems + err.problems) from None
    if problems:
        raise SettingsError(problems)
    return parsed, Secrets(api_key=cfg.require_secret("apiKey"), hf_token=cfg.get_secret("hfToken"))


def _unknown_config_keys() -> list[str]:
    """Project keys in the stack's config that the schema does not know (typos)."""
    from pulumi.runtime import config as runtime_config

    present = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env() or {})
    prefix = f"{PROJECT}:"
    known = settings.TOP_LEVEL_KEYS
    return sorted(k[len(prefix) :] for k in present if k.startswith(prefix) and k[len(prefix) :] not in known)
