"""Where each pinned chart's source lives, read from a local git snapshot at the pinned version.

The generators of components/facts/data/chart-values/ and components/facts/data/chart-crds.json read the
charts from bare git snapshots of their repositories (one folder per repository, named
`owner+name`, holding a `repo` git directory; CHART_SNAPSHOTS or --snapshots points at it).
Nothing is downloaded here: the snapshot is fetched once, by whoever regenerates the records.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from components.facts import versions

DEFAULT_SNAPSHOTS = Path(os.environ.get("CHART_SNAPSHOTS", "/work/.mirror"))


@dataclass(frozen=True)
class ChartSource:
    """A chart folder in a git repository; `tags` are tried in order with {v} the chart version."""

    repo: str  # owner/name on GitHub
    path: str  # the chart's folder in the repository
    tags: tuple[str, ...]
    # When the pinned version is not in the snapshot: the ref read instead, and why.
    fallback: tuple[str, str] | None = None


SOURCES: dict[str, ChartSource] = {
    "kube-prometheus-stack": ChartSource(
        "prometheus-community/helm-charts", "charts/kube-prometheus-stack", ("kube-prometheus-stack-{v}",)
    ),
    "kube-state-metrics": ChartSource(
        "prometheus-community/helm-charts", "charts/kube-state-metrics", ("kube-state-metrics-{v}",)
    ),
    "prometheus-node-exporter": ChartSource(
        "prometheus-community/helm-charts", "charts/prometheus-node-exporter", ("prometheus-node-exporter-{v}",)
    ),
    # kube-prometheus-stack 88 takes Grafana from grafana-community (its Chart.yaml's repository).
    "grafana": ChartSource("grafana-community/helm-charts", "charts/grafana", ("grafana-{v}",)),
    # dcgm-exporter tags are <DCGM version>-<exporter version>; the chart version is the latter.
    "dcgm-exporter": ChartSource("NVIDIA/dcgm-exporter", "deployment", ("*-{v}",)),
    "keda": ChartSource("kedacore/charts", "keda", ("v{v}",)),
    "cluster-autoscaler": ChartSource(
        "kubernetes/autoscaler", "cluster-autoscaler/charts/cluster-autoscaler", ("cluster-autoscaler-chart-{v}",)
    ),
    # eks-charts tags its repository, not its charts: the commit whose Chart.yaml has the version.
    "aws-load-balancer-controller": ChartSource("aws/eks-charts", "stable/aws-load-balancer-controller", ()),
    "nvidia-device-plugin": ChartSource(
        "NVIDIA/k8s-device-plugin",
        "deployments/helm/nvidia-device-plugin",
        ("v{v}",),
        fallback=(
            "v0.20.0",
            "0.20.1 is not in the repository snapshot (newest: v0.20.0, release-0.20 of 2026-08-19); "
            "read from v0.20.0, the same minor. Regenerate from v0.20.1 when the snapshot has it.",
        ),
    ),
}

# The charts the program installs, as pinned in versions.py.
PINS: dict[str, tuple[str, str, str]] = {
    pin[1]: pin
    for pin in (
        versions.KUBE_PROMETHEUS_STACK_CHART,
        versions.DCGM_EXPORTER_CHART,
        versions.KEDA_CHART,
        versions.CLUSTER_AUTOSCALER_CHART,
        versions.AWS_LOAD_BALANCER_CONTROLLER_CHART,
        versions.NVIDIA_DEVICE_PLUGIN_CHART,
    )
}


class SourceMissing(RuntimeError):
    """The snapshot lacks the repository or the pinned version."""


@dataclass(frozen=True)
class Checkout:
    """One chart at one ref of its snapshot: reads files without a work tree."""

    chart: str
    version: str
    source: ChartSource
    git_dir: Path
    ref: str  # the tag, or the commit, that was read
    commit: str
    note: str | None

    def read(self, relative: str) -> str:
        return _git(self.git_dir, "show", f"{self.commit}:{self.source.path}/{relative}")

    def exists(self, relative: str) -> bool:
        return bool(self.files(relative))

    def files(self, under: str = "") -> list[str]:
        """Paths (relative to the chart) of every file under `under`."""
        prefix = f"{self.source.path}/{under}".rstrip("/")
        out = _git(self.git_dir, "ls-tree", "-r", "--name-only", self.commit, "--", prefix)
        return sorted(line[len(self.source.path) + 1 :] for line in out.splitlines() if line)

    def chart_yaml(self) -> dict:
        return yaml.safe_load(self.read("Chart.yaml"))

    def provenance(self) -> dict[str, str]:
        out = {"repository": f"https://github.com/{self.source.repo}", "ref": self.ref, "commit": self.commit}
        out["path"] = self.source.path
        if self.note:
            out["note"] = self.note
        return out


def checkout(chart: str, version: str, snapshots: Path = DEFAULT_SNAPSHOTS) -> Checkout:
    """The chart at `version`, or SourceMissing naming what to fetch."""
    source = SOURCES[chart]
    git_dir = snapshots / source.repo.replace("/", "+") / "repo"
    if not git_dir.is_dir():
        raise SourceMissing(f"{chart}: no snapshot of {source.repo} at {git_dir} (fetch github:{source.repo})")
    ref = _find_ref(git_dir, source, version)
    note = None
    if ref is None and source.fallback:
        ref, note = source.fallback
    if ref is None:
        raise SourceMissing(f"{chart} {version}: no tag or commit of {source.repo} has it (fetch a newer snapshot)")
    commit = _git(git_dir, "rev-parse", f"{ref}^{{commit}}").strip()
    found = Checkout(chart, version, source, git_dir, ref, commit, note)
    actual = str(found.chart_yaml()["version"])
    if actual != version and note is None:
        raise SourceMissing(f"{chart}: {ref} holds chart version {actual}, not {version}")
    return found


def _find_ref(git_dir: Path, source: ChartSource, version: str) -> str | None:
    for pattern in source.tags:
        tags = _git(git_dir, "tag", "--list", pattern.format(v=version)).split()
        if tags:
            return sorted(tags)[-1]
    if source.tags:
        return None
    # Newest first: the first commit whose Chart.yaml carries the version.
    log = _git(git_dir, "log", "--all", "--format=%H", "--", f"{source.path}/Chart.yaml").split()
    for commit in log:
        try:
            chart = yaml.safe_load(_git(git_dir, "show", f"{commit}:{source.path}/Chart.yaml"))
        except subprocess.CalledProcessError:
            continue
        if str(chart.get("version")) == version:
            # The repository's tag at that commit, when there is one (eks-charts: v0.0.242 is 3.5.0).
            tags = _git(git_dir, "tag", "--points-at", commit).split()
            return sorted(tags)[0] if tags else commit
    return None


def _git(git_dir: Path, *args: str) -> str:
    return subprocess.run(["git", f"--git-dir={git_dir}", *args], check=True, capture_output=True, text=True).stdout
