"""Running `helm template` on a pinned chart's source, with its subcharts, for one release's values."""

from __future__ import annotations

import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import yaml

from components.facts import versions

# Rendered as a cluster with these APIs would be: kube-prometheus-stack installs the monitoring
# CRDs before dcgm-exporter's ServiceMonitor, and the control plane is versions.KUBERNETES_VERSION.
API_VERSIONS = ("monitoring.coreos.com/v1", "keda.sh/v1alpha1", "autoscaling.k8s.io/v1")


def helm_template(helm: str, chart_dir: Path, release: dict[str, Any]) -> list[dict[str, Any]]:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        yaml.safe_dump(release["values"], f)
        f.flush()
        cmd = [helm, "template", release["name"], str(chart_dir), "--namespace", release["namespace"]]
        cmd += ["--kube-version", f"{versions.KUBERNETES_VERSION}.0", "--skip-tests", "-f", f.name]
        for api in API_VERSIONS:
            cmd += ["--api-versions", api]
        text = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    docs = [d for d in yaml.safe_load_all(text) if d]
    return [item for d in docs for item in (d.get("items") or [] if d.get("kind") == "List" else [d])]


def _subcharts(chart_dir: Path) -> list[dict[str, str]]:
    """Each subchart in charts/, unpacked or as a .tgz, by its own Chart.yaml."""
    found = []
    for sub in sorted((chart_dir / "charts").glob("*")):
        if sub.suffix == ".tgz":
            with tarfile.open(sub) as tar:
                member = next(m for m in tar.getmembers() if m.name.count("/") == 1 and m.name.endswith("/Chart.yaml"))
                meta = yaml.safe_load(tar.extractfile(member).read())  # type: ignore[union-attr]
        elif (sub / "Chart.yaml").exists():
            meta = yaml.safe_load((sub / "Chart.yaml").read_text())
        else:
            continue
        found.append({"name": meta["name"], "version": str(meta["version"])})
    return found
