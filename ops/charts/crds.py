"""The CRD schemas of the pinned charts, as data; and the check of a custom resource against them.

The API server rejects a custom resource whose fields its CRD does not declare (unless the CRD
keeps unknown fields), or prunes them silently; mocks accept anything. So the openAPIV3Schema
of each CRD the program's custom resources use is recorded in components/facts/data/chart-crds.json,
from the CRDs the pinned charts install (KEDA's `templates/crds`, kube-prometheus-stack's `crds`
subchart, which carries the prometheus-operator CRDs of its appVersion, and the load balancer
controller's `crds`, whose IngressClassParams the chart renders from the values it is given). Descriptions are left
out; types, fields, enums and required lists stay.

    python -m ops.charts.crds   (part of `make chart-values`)
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from components.facts import DATA
from ops.charts import sources as chart_sources

DATA_FILE = DATA / "chart-crds.json"
GENERATOR = "python -m ops.charts.crds (make chart-values)"

# chart -> (folder of CRD files in the chart, CRD names to record)
CRDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "keda": (
        "templates/crds",
        ("scaledobjects.keda.sh", "triggerauthentications.keda.sh", "clustertriggerauthentications.keda.sh"),
    ),
    "kube-prometheus-stack": (
        "charts/crds/crds",
        (
            "podmonitors.monitoring.coreos.com",
            "servicemonitors.monitoring.coreos.com",
            "prometheusrules.monitoring.coreos.com",
        ),
    ),
    "aws-load-balancer-controller": ("crds", ("ingressclassparams.elbv2.k8s.aws",)),
}
# Custom resources a chart renders from values it passes through whole (templates/ingressclass.yaml
# of the load balancer controller: `spec: {{ toYaml .Values.ingressClassParams.spec }}`):
# chart -> (the values path of the spec, the switch that renders it, apiVersion, kind).
PASSED_THROUGH = {
    "aws-load-balancer-controller": (
        ("ingressClassParams", "spec"),
        ("ingressClassParams", "create"),
        "elbv2.k8s.aws/v1beta1",
        "IngressClassParams",
    ),
}
_TEMPLATE_LINE = re.compile(r"^\s*\{\{.*\}\}\s*$")
_TEMPLATE_INLINE = re.compile(r"\{\{[^}]*\}\}")


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads a bare `=` (an enum value in some CRDs) as its `value` tag: keep it a string."""


_Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def _untemplated(text: str) -> str:
    """A chart's CRD template as plain YAML: its Helm directives touch only metadata."""
    lines = [line for line in text.splitlines() if not _TEMPLATE_LINE.fullmatch(line)]
    return _TEMPLATE_INLINE.sub("templated", "\n".join(lines))


def _strip(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in sorted(node.items()) if k != "description"}
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def record(snapshots: Path) -> dict[str, Any]:
    kinds: dict[str, Any] = {}
    sources: dict[str, Any] = {}
    for chart, (folder, names) in sorted(CRDS.items()):
        version = chart_sources.PINS[chart][2]
        checkout = chart_sources.checkout(chart, version, snapshots)
        sources[chart] = {"version": version, **checkout.provenance(), "folder": folder}
        found = {}
        for path in checkout.files(folder):
            text = checkout.read(path)
            if not any(f"name: {n}" in text for n in names):
                continue
            for doc in yaml.load_all(_untemplated(text), Loader=_Loader):
                if doc and doc.get("kind") == "CustomResourceDefinition" and doc["metadata"]["name"] in names:
                    found[doc["metadata"]["name"]] = (path, doc)
        missing = set(names) - set(found)
        if missing:
            raise chart_sources.SourceMissing(f"{chart} {version}: no CRD {sorted(missing)} under {folder}")
        for name, (path, crd) in sorted(found.items()):
            spec = crd["spec"]
            for v in spec["versions"]:
                if not v.get("served"):
                    continue
                kinds[f"{spec['group']}/{v['name']}/{spec['names']['kind']}"] = {
                    "crd": name,
                    "chart": chart,
                    "file": f"{checkout.source.path}/{path}",
                    "schema": _strip(v["schema"]["openAPIV3Schema"]),
                }
    return {"generated_by": GENERATOR, "sources": sources, "kinds": dict(sorted(kinds.items()))}


# --- the check ----------------------------------------------------------------------------------


def load() -> dict[str, Any]:
    return json.loads(DATA_FILE.read_text())


def kind_key(obj: dict[str, Any]) -> str:
    return f"{obj['apiVersion']}/{obj['kind']}"


def json_schema(openapi: dict[str, Any]) -> dict[str, Any]:
    """The structural schema as JSON Schema, with the API server's rules made explicit:
    fields a schema does not declare are refused unless it preserves unknown fields."""
    node = copy.deepcopy(openapi)
    if node.pop("x-kubernetes-int-or-string", False):
        node.pop("type", None)
        node.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if node.pop("nullable", False) and "type" in node:
        node["type"] = [node["type"], "null"]
    preserve = node.pop("x-kubernetes-preserve-unknown-fields", False)
    for key in [k for k in node if k.startswith("x-kubernetes-")]:
        node.pop(key)  # list/map types, CEL rules: the API server's, not checked here
    if "properties" in node:
        node["properties"] = {k: json_schema(v) for k, v in node["properties"].items()}
        if not preserve and "additionalProperties" not in node:
            node["additionalProperties"] = False
    if isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = json_schema(node["additionalProperties"])
    if isinstance(node.get("items"), dict):
        node["items"] = json_schema(node["items"])
    for key in ("anyOf", "allOf", "oneOf"):
        if key in node:
            node[key] = [json_schema(s) for s in node[key]]
    return node


def from_release(chart: str, values: dict[str, Any]) -> list[dict[str, Any]]:
    """The custom resources `chart` renders from values passed through whole, as the API server gets them."""
    if chart not in PASSED_THROUGH:
        return []
    spec_path, switch, api_version, kind = PASSED_THROUGH[chart]
    node: Any = values
    for key in spec_path:
        node = node.get(key) if isinstance(node, dict) else None
    on: Any = values
    for key in switch:
        on = on.get(key) if isinstance(on, dict) else None
    if not node or on is False:
        return []
    return [{"apiVersion": api_version, "kind": kind, "metadata": {"name": chart}, "spec": node}]


def problems(obj: dict[str, Any], crds: dict[str, Any]) -> list[str]:
    """What the API server would refuse in `obj` (a custom resource), by its CRD's schema."""
    import jsonschema

    entry = crds["kinds"].get(kind_key(obj))
    if entry is None:
        return [f"{kind_key(obj)}: no CRD recorded for this kind (add it to ops/charts/crds.py CRDS)"]
    schema = json_schema(entry["schema"])
    # The API server checks metadata itself; a CRD's root only names it.
    schema.setdefault("properties", {}).update(
        {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}
    )
    name = f"{obj['kind']} {obj.get('metadata', {}).get('name', '?')}"
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{name}: {'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message} ({entry['crd']}, {entry['chart']})"
        for e in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshots", type=Path, default=chart_sources.DEFAULT_SNAPSHOTS)
    args = parser.parse_args(argv)
    try:
        made = record(args.snapshots)
    except chart_sources.SourceMissing as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    DATA_FILE.write_text(json.dumps(made, indent=None, separators=(",", ":")) + "\n")
    print(f"wrote {DATA_FILE}: {', '.join(made['kinds'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
