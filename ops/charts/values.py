"""The values keys each pinned chart knows, as data; and the check of a release's values against them.

Helm drops a values key that no template reads, without a word: a misspelt `nodeSelector`
leaves a pod unpinned, and nothing fails until the cluster shows it. So each pinned chart's keys
are recorded in components/facts/data/chart-values/<chart>.json, generated from the chart's own
values.yaml at the pinned version (subcharts under their alias), and every release's values
are walked against it.

    make chart-values      (python -m ops.charts.values [--snapshots DIR])

Kinds of key: `map` (its children are recorded), `free-form` (any content: `{}` in values.yaml,
or a map the templates pass through whole with `toYaml`/`range`, or listed in FREE_FORM),
`list`, `scalar`, and `any` (null in values.yaml, or read by a template without a default).
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from components.facts import DATA
from ops.charts import sources as chart_sources
from ops.charts.sources import Checkout

DATA_DIR = DATA / "chart-values"
GENERATOR = "python -m ops.charts.values (make chart-values)"

# Maps with defaults in values.yaml that still take any key: the template turns each entry into
# something (a flag, a tag, an env var) rather than reading known fields.
FREE_FORM: dict[str, dict[str, str]] = {
    "cluster-autoscaler": {
        "extraArgs": "each entry becomes a `--key=value` flag (templates/deployment.yaml)",
    },
    "kube-prometheus-stack": {
        "additionalPrometheusRulesMap": "rule groups by name, rendered into PrometheusRule objects",
    },
}
_OPENNESS = ["free-form", "any", "map", "list", "scalar"]
# Helm passes `global` to every chart and subchart.
ALWAYS = {"global": "free-form"}

_VALUES_REF = re.compile(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
_PASSED_WHOLE = re.compile(
    r"(?:toYaml|toJson|range\s+\$\w+\s*,\s*\$\w+\s*:=)\s*\(?\s*\$?\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)"
)
# `range $k, $v := index .Values "grafana.ini"`: a key with a dot, iterated whole.
_RANGE_INDEX = re.compile(r'range\s+\$\w+\s*,\s*\$\w+\s*:=\s*index\s+\$?\.Values\s+"([^"]+)"')
# `{{- with .Values.affinity }} affinity: {{- toYaml . | nindent 8 }}`: passed whole, too.
_WITH_WHOLE = re.compile(r"with\s+\$?\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)\s*-?\}\}[^{]*\{\{-?\s*toYaml\s+\.\s")


def record_for(checkout: Checkout, snapshots: Path) -> dict[str, Any]:
    """The record of one pinned chart with the subcharts it can resolve."""
    keys = _chart_keys(checkout, prefix="")
    subcharts: dict[str, Any] = {}
    for dep in checkout.chart_yaml().get("dependencies") or []:
        alias = dep.get("alias") or dep["name"]
        version = str(dep.get("version", ""))
        if dep["name"] not in chart_sources.SOURCES or not re.fullmatch(r"[0-9.]+", version):
            subcharts[alias] = {"chart": dep["name"], "version": version, "recorded": False}
            continue
        sub = chart_sources.checkout(dep["name"], version, snapshots)
        # The parent's own section for the subchart (its overrides) merges with the subchart's
        # keys; where the two disagree, the more open kind holds (the subchart reads the values).
        for path, kind in _chart_keys(sub, prefix=f"{alias}.").items():
            keys[path] = min(keys.get(path, kind), kind, key=_OPENNESS.index)
        keys[alias] = "map"
        subcharts[alias] = {"chart": dep["name"], "version": version, "recorded": True, "source": sub.provenance()}
    schema = json.loads(checkout.read("values.schema.json")) if checkout.exists("values.schema.json") else None
    return {
        "chart": checkout.chart,
        "version": checkout.version,
        "source": checkout.provenance(),
        "generated_by": GENERATOR,
        "subcharts": subcharts,
        "free_form_reasons": FREE_FORM.get(checkout.chart, {}),
        "values_schema": schema,
        "keys": dict(sorted(keys.items())),
    }


def _chart_keys(checkout: Checkout, prefix: str) -> dict[str, str]:
    values = yaml.safe_load(checkout.read("values.yaml")) or {}
    keys: dict[str, str] = {}
    _flatten(values, prefix, keys)
    keys.update({prefix + k: v for k, v in ALWAYS.items()})
    templates = "\n".join(
        checkout.read(f) for f in checkout.files("templates") if f.endswith((".yaml", ".yml", ".tpl", ".txt"))
    )
    passed = set(_PASSED_WHOLE.findall(templates)) | set(_WITH_WHOLE.findall(templates))
    passed |= {f".{key}" for key in _RANGE_INDEX.findall(templates)}
    for ref in sorted(passed):
        path = prefix + ref[1:]
        if keys.get(path) == "map":
            _free(keys, path)
    for ref in sorted(set(_VALUES_REF.findall(templates))):
        parts = ref[1:].split(".")
        for i in range(1, len(parts) + 1):
            path = prefix + ".".join(parts[:i])
            if path not in keys and not _under_open(keys, path):
                keys[path] = "map" if i < len(parts) else "any"
    for path in FREE_FORM.get(checkout.chart, {}):
        _free(keys, prefix + path)
    return keys


def _flatten(node: Any, prefix: str, out: dict[str, str]) -> None:
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            # A map keyed by label-like names (dots, slashes) is data, not settings.
            if not value or any(not isinstance(k, str) or "." in k or "/" in k for k in value):
                out[path] = "free-form"
            else:
                out[path] = "map"
                _flatten(value, f"{path}.", out)
        elif isinstance(value, list):
            out[path] = "list"
        elif value is None:
            out[path] = "any"
        else:
            out[path] = "scalar"


def _free(keys: dict[str, str], path: str) -> None:
    for child in [k for k in keys if k.startswith(path + ".")]:
        del keys[child]
    keys[path] = "free-form"


def _under_open(keys: dict[str, str], path: str) -> bool:
    parts = path.split(".")
    return any(keys.get(".".join(parts[:i])) in ("free-form", "any", "list") for i in range(1, len(parts)))


# --- the check ----------------------------------------------------------------------------------


def load(chart: str) -> dict[str, Any]:
    return json.loads((DATA_DIR / f"{chart}.json").read_text())


def unknown_keys(values: dict[str, Any], record: dict[str, Any]) -> list[str]:
    """Each values path the chart does not know, with the nearest known key."""
    keys: dict[str, str] = record["keys"]
    problems: list[str] = []

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key in sorted(node):
            path = f"{prefix}{key}"
            kind = keys.get(path)
            if kind is None:
                siblings = [k[len(prefix) :] for k in keys if k.startswith(prefix) and "." not in k[len(prefix) :]]
                near = difflib.get_close_matches(key, siblings, n=1, cutoff=0.6)
                hint = f"; did you mean `{prefix}{near[0]}`?" if near else ""
                problems.append(f"{record['chart']} {record['version']}: unknown values key `{path}`{hint}")
            elif kind == "map" and isinstance(node[key], dict):
                walk(node[key], f"{path}.")
            elif kind == "scalar" and isinstance(node[key], dict):
                problems.append(f"{record['chart']} {record['version']}: `{path}` is a single value, not a map")

    walk(values, "")
    return problems


def schema_problems(values: dict[str, Any], record: dict[str, Any]) -> list[str]:
    """values.schema.json, where the chart ships one (Helm validates against it on install)."""
    schema = record.get("values_schema")
    if not schema:
        return []
    import jsonschema

    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{record['chart']} {record['version']}: {'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in sorted(validator.iter_errors(values), key=lambda e: list(map(str, e.absolute_path)))
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshots", type=Path, default=chart_sources.DEFAULT_SNAPSHOTS)
    args = parser.parse_args(argv)
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    try:
        for chart, (_, _, version) in sorted(chart_sources.PINS.items()):
            record = record_for(chart_sources.checkout(chart, version, args.snapshots), args.snapshots)
            (DATA_DIR / f"{chart}.json").write_text(json.dumps(record, indent=1, sort_keys=False) + "\n")
            print(f"wrote {DATA_DIR / chart}.json: {len(record['keys'])} keys from {record['source']['ref']}")
    except chart_sources.SourceMissing as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
