"""`make plan STACK=<s> BASE=<ref>`: what the next `pulumi up` does to a running stack, offline.

Renders the stack twice with the same engine: as the base (a git ref, checked out in a temp
worktree, or the current tree with `--base-set` overrides) and as it is now (with `--set`
overrides), then prints per resource whether it is created, updated in place, replaced
(create- or delete-first) or deleted, with the cost of each change from the cold-start
timeline. Replacements that take the service down for a cold start or cannot succeed at all
(the GPU node group delete-first; any subnet) are refused without `--accept-replacement`.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.facts import timeline
from components.platform import config
from components.scaling import node_drain
from components.scaling.policy import NODE_PROVISION_SECONDS
from components.settings.stack import Settings
from ops.offline.diff import CREATE, DELETE, REPLACE, UPDATE, Change, Item, diff

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "plan-out" / ".base-renders"
GPU_NODE_GROUP = "minimax-vllm:aws:GpuNodeGroup$aws:eks/nodeGroup:NodeGroup"
VLLM_DEPLOYMENT = "minimax-vllm:k8s:VllmService$kubernetes:apps/v1:Deployment"
SUBNET = "aws:ec2/subnet:Subnet"
MIRROR_BUCKET = "aws:s3/bucket:Bucket"
CLUSTER = "aws:eks/cluster:Cluster"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
ACK_FLAG = "--accept-replacement"
# Runs in the base tree (cwd) with this interpreter: the base's own engine renders the base.
_BASE_SCRIPT = """
import json, sys
try:
    from ops.offline.engine import render
except ImportError:  # a base from before ops/ had packages
    from ops.offline import render
r = render(sys.argv[1], overrides=json.loads(sys.argv[2]) or None)
json.dump([{"urn": x.urn, "type": x.type, "name": x.name, "id": x.id, "inputs": x.inputs, "parent": x.parent,
  "dbr": bool(x.options.get("deleteBeforeReplace"))} for x in r.resources], sys.stdout, sort_keys=True, default=str)
"""


def overrides(stack: str, pairs: Sequence[str]) -> dict[str, Any]:
    """`section.key=value` pairs (values in YAML) as render overrides of whole sections."""
    values = config.read_stack_file(stack)
    out: dict[str, Any] = {}
    for pair in pairs:
        path, sep, raw = pair.partition("=")
        if not sep or "." not in path:
            raise ValueError(f"--set {pair!r}: expected section.key=value, e.g. gpuNodes.instanceType=p5e.48xlarge")
        section, *keys = path.split(".")
        node = out.setdefault(section, json.loads(json.dumps(values.get(f"{config.PROJECT}:{section}") or {})))
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        value = yaml.safe_load(raw)
        node[keys[-1]] = raw if isinstance(value, float) else value  # `1.35` is a version, not a number
    return out


def _items(rows: Iterable[Mapping[str, Any]]) -> list[Item]:
    return [Item(r["urn"], r["type"], r["name"], r["id"], r["inputs"], r["dbr"], r["parent"]) for r in rows]


def items_of(rendering: Any) -> list[Item]:
    """The diff's view of an offline rendering (ops/offline/engine.py Rendering)."""
    return [
        Item(x.urn, x.type, x.name, x.id, x.inputs, bool(x.options.get("deleteBeforeReplace")), x.parent)
        for x in rendering.resources
    ]


@functools.cache
def _render_now(stack: str, key: str) -> tuple[Item, ...]:
    from ops.offline.engine import render

    return tuple(items_of(render(stack, overrides=json.loads(key) or None)))


def render_now(stack: str, values: Mapping[str, Any] | None = None) -> list[Item]:
    """The current tree's rendering (cached per stack and overrides: tests render often)."""
    return list(_render_now(stack, json.dumps(values or {}, sort_keys=True)))


def render_at(ref: str, stack: str, values: Mapping[str, Any] | None = None) -> list[Item]:
    """The stack rendered by the program at git `ref` (cached on disk per commit)."""
    sha = subprocess.run(
        ["git", "rev-parse", f"{ref}^{{commit}}"], cwd=ROOT, check=True, capture_output=True, text=True
    )
    key = json.dumps(values or {}, sort_keys=True)
    cached = CACHE / f"{sha.stdout.strip()}-{stack}-{abs(hash(key)) % 10**12}.json"
    if not cached.is_file():
        with tempfile.TemporaryDirectory(prefix="minimax-vllm-base-") as tmp:
            tree = Path(tmp) / "tree"
            subprocess.run(
                ["git", "worktree", "add", "--detach", str(tree), sha.stdout.strip()],
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
            try:
                done = subprocess.run(
                    [sys.executable, "-c", _BASE_SCRIPT, stack, key], cwd=tree, capture_output=True, text=True
                )
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True)
            if done.returncode:
                raise RuntimeError(f"rendering {stack} at {ref} failed:\n{done.stderr[-2000:]}")
            CACHE.mkdir(parents=True, exist_ok=True)
            cached.write_text(done.stdout)
    return _items(json.loads(cached.read_text()))


@dataclass(frozen=True)
class Costed:
    change: Change
    downtime: str  # expected serving downtime
    spare_gpu: bool  # a second GPU node is needed while it runs
    data: str  # what is kept or lost
    refused: str = ""  # why it needs the acknowledgement, and how to avoid it


@dataclass(frozen=True)
class Moves:
    """What the change moves under the replicas: new weights (model or revision), a new image."""

    weights: bool = False
    image: bool = False

    @classmethod
    def between(cls, before: Settings | None, after: Settings) -> Moves:
        if before is None:  # the base's settings could not be read: assume the worst
            return cls(True, True)
        b, a = before.serving, after.serving
        return cls((b.model, b.revision) != (a.model, a.revision), b.image != a.image)


def cost(change: Change, settings: Settings, moves: Moves = Moves()) -> Costed:
    """What one change costs the running service, from the cold-start timeline."""
    gb, source = settings.serving.model_facts.weights_gb, settings.weights.source
    cold = NODE_PROVISION_SECONDS + timeline.new_node(gb, source=source).total
    kind, urn = change.action, change.urn
    if GPU_NODE_GROUP in urn and kind == REPLACE and change.delete_first:
        why = (
            f"the only GPU node group is deleted before its replacement exists: {timeline.duration(cold)} without"
            f" service (node launch + cold start), NVMe weight and compile caches lost; forced by {', '.join(change.paths)}"
        )
        fix = (
            "avoid it: keep instanceType/capacityType and the GPU zones, or move in a maintenance window;"
            f" to proceed, run again with {ACK_FLAG}"
        )
        return Costed(change, timeline.duration(cold), False, "NVMe caches lost", f"{why}. {fix}")
    if GPU_NODE_GROUP in urn and kind == REPLACE:
        return Costed(change, "none if the new group is Ready first", True, "NVMe caches start empty on the new node")
    if GPU_NODE_GROUP in urn and kind == UPDATE:
        rolling = any(p.startswith(("version", "launchTemplate", "releaseVersion")) for p in change.paths)
        if rolling:
            drain = node_drain.node_update(settings, force=node_drain.needs_force(settings))
            how = (
                f"the budget blocks the drain, EKS forces it after {timeline.duration(node_drain.EKS_DRAIN_LIMIT_SECONDS)}"
                if drain.forced
                else "drained under the budget"
            )
            return Costed(
                change,
                f"{timeline.duration(drain.seconds)} until every replica is back, {drain.most_down} of"
                f" {node_drain.update_replicas(settings)} down at once ({how}; nodes replaced one at a time, MINIMAL)",
                False,
                "NVMe caches start empty on the new node",
            )
        return Costed(change, "none", False, "kept")
    if kind in (REPLACE, DELETE) and change.type == SUBNET:
        why = (
            f"subnet {change.name} is {'replaced' if kind == REPLACE else 'deleted'}: EC2 refuses a second subnet on the"
            " same range (InvalidSubnet.Conflict), and the node groups and NAT gateway in it go with it"
        )
        fix = (
            "avoid it: record the zones and layout the stack was deployed with"
            f" (`python -m ops preflight --stack {settings.stack}` prints them); to proceed, run again with {ACK_FLAG}"
        )
        return Costed(change, f"{timeline.duration(cold)} or more", False, "kept", f"{why}. {fix}")
    if VLLM_DEPLOYMENT in urn and kind == UPDATE and any(p.startswith("spec.template") for p in change.paths):
        image = moves.image or any(p.endswith(".image") for p in change.paths)
        rolled = timeline.rollout(gb, source=source, new_image=image, new_weights=moves.weights)
        seconds = rolled.total
        what = rolled.start.removeprefix("rolling update, ")
        if image or moves.weights:
            what += ": fetched and compiled again"
        only = "; the only replica: an outage" if settings.serving.replicas == 1 else ""
        return Costed(
            change, f"{timeline.duration(seconds)} per replica, one at a time ({what}){only}", False, "NVMe cache kept"
        )
    if change.type == "kubernetes:batch/v1:Job" and kind in (REPLACE, CREATE) and "mirror" in change.name:
        fill = timeline.mirror_fill(gb).total
        return Costed(change, f"none; the weight copy runs again ({timeline.duration(fill)})", False, "kept")
    if kind == REPLACE and change.type == CLUSTER:
        return Costed(change, "the whole stack is rebuilt", False, "everything in the cluster lost")
    if change.type == MIRROR_BUCKET and kind in (REPLACE, DELETE):
        return Costed(change, "none", False, "weight mirror emptied: every revision copied again")
    if kind == REPLACE and change.delete_first:
        return Costed(change, "the object is absent between delete and create", False, "recreated from the program")
    return Costed(change, "none", False, "kept")


def settings_of(stack: str, values: Mapping[str, Any], stack_text: str | None = None) -> Settings:
    """The settings a rendering used: the stack file (or its text at the base) with overrides."""
    all_values = yaml.safe_load(stack_text)["config"] if stack_text else config.read_stack_file(stack)
    raw, region = config.split_stack_config(all_values)
    raw.update(values)
    return config.parse(raw, stack, region)


def _base_settings(stack: str, base: str | None, values: Mapping[str, Any]) -> Settings | None:
    if not base:
        return settings_of(stack, values)
    shown = subprocess.run(
        ["git", "show", f"{base}:stacks/Pulumi.{stack}.yaml"], cwd=ROOT, capture_output=True, text=True
    )
    try:
        return settings_of(stack, values, shown.stdout) if shown.returncode == 0 else None
    except Exception:  # noqa: BLE001 (a base whose settings this version cannot read: assume the worst)
        return None


def preview(
    stack: str,
    now_values: Mapping[str, Any] | None = None,
    base_values: Mapping[str, Any] | None = None,
    base: str | None = None,
) -> list[Costed]:
    """The costed changes from the base (a git ref, or this tree with base_values) to this tree."""
    before = render_at(base, stack, base_values) if base else render_now(stack, base_values)
    after = render_now(stack, now_values)
    settings = settings_of(stack, now_values or {})
    moves = Moves.between(_base_settings(stack, base, base_values or {}), settings)
    return [cost(c, settings, moves) for c in diff(before, after)]


def report(costed: Sequence[Costed]) -> str:
    """The preview as text: one line per change, then the refusals."""
    counts = {k: sum(1 for c in costed if c.change.action == k) for k in (CREATE, UPDATE, REPLACE, DELETE)}
    lines = [", ".join(f"{n} to {k}" for k, n in counts.items())]
    for c in costed:
        ch = c.change
        lines.append(f"  {ch.kind:<24} {ch.type}  {ch.name}")
        if ch.paths:
            lines.append(f"      inputs: {', '.join(ch.paths[:6])}{' ...' if len(ch.paths) > 6 else ''}")
        if c.downtime != "none" or c.spare_gpu or c.data != "kept":
            lines.append(
                f"      downtime: {c.downtime}; spare GPU node: {'yes' if c.spare_gpu else 'no'}; data: {c.data}"
            )
    for c in costed:
        if c.refused:
            lines.append(f"REFUSED: {c.refused}")
    return "\n".join(lines)


def main(
    stack: str, base: str | None, sets: Sequence[str], base_sets: Sequence[str], accept: bool, out: Any = None
) -> int:
    """0: nothing refused (or acknowledged); 1: a refused replacement; 2: bad arguments."""
    out = out or sys.stdout
    try:
        now_values, base_values = overrides(stack, sets), overrides(stack, base_sets)
        costed = preview(stack, now_values, base_values, base)
    except ValueError as err:  # SettingsError too: a --set value the settings refuse
        print(err, file=sys.stderr)
        return 2
    print(
        f"changes to stack {stack} ({'base ' + base if base else 'this tree'} -> this tree{' with --set' if sets else ''})",
        file=out,
    )
    print(report(costed), file=out)
    refused = [c for c in costed if c.refused]
    if refused and not accept:
        print(f"{len(refused)} replacement(s) refused; nothing to run. Acknowledge with {ACK_FLAG}.", file=out)
        return 1
    return 0
