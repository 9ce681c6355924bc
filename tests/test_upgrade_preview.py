"""The upgrade preview (ops/upgrade.py): what the next `pulumi up` does to a running stack, and
what it costs, for the changes operators make; refused when it would take the service down."""

from __future__ import annotations

import pytest

from components.facts import catalog, timeline, versions
from components.scaling.policy import NODE_PROVISION_SECONDS
from ops import upgrade
from ops.offline import mocks
from ops.offline.diff import CREATE, DELETE, REPLACE, UPDATE, Item, diff
from ops.offline.engine import render, zones_recorded

TLS_ARN = "arn:aws:acm:us-east-2:123456789012:certificate/0f2b4a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
PROD = ("prod-8gpu", "prod-4gpu")
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def sets(stack: str, *pairs: str) -> dict:
    return upgrade.overrides(stack, pairs)


def by_kind(costed: list[upgrade.Costed]) -> dict[tuple[str, str], upgrade.Costed]:
    return {(c.change.type, c.change.name): c for c in costed}


def gpu_group(costed: list[upgrade.Costed]) -> upgrade.Costed | None:
    return next((c for c in costed if upgrade.GPU_NODE_GROUP in c.change.urn), None)


def vllm(costed: list[upgrade.Costed]) -> upgrade.Costed:
    return next(c for c in costed if upgrade.VLLM_DEPLOYMENT in c.change.urn)


# --- the diff's rules ------------------------------------------------------------------


def item(urn: str, type_: str, inputs: dict, id_: str = "id-0000000000", dbr: bool = False) -> Item:
    return Item(urn, type_, urn, id_, inputs, dbr)


def test_forcing_inputs_replace_others_update_and_a_new_id_reaches_dependents() -> None:
    subnet = "aws:ec2/subnet:Subnet"
    before = [
        item("s", subnet, {"cidrBlock": "10.0.0.0/19", "tags": {"a": "1"}}, "subnet-0123456789"),
        item("ng", NODE_GROUP, {"subnetIds": ["subnet-0123456789"]}, "ng-0123456789", dbr=True),
        item("gone", subnet, {}),
    ]
    tags_only = [before[0].__class__(**{**before[0].__dict__, "inputs": {"cidrBlock": "10.0.0.0/19", "tags": {}}})]
    assert [(c.urn, c.action) for c in diff(before[:2], tags_only + before[1:2])] == [("s", UPDATE)]
    moved = [item("s", subnet, {"cidrBlock": "10.0.32.0/19", "tags": {"a": "1"}}, "subnet-0123456789"), before[1]]
    moved.append(item("new", subnet, {}))
    changes = {c.urn: c for c in diff(before, moved)}
    assert changes["s"].action == REPLACE and not changes["s"].delete_first
    assert changes["ng"].action == REPLACE and changes["ng"].delete_first and changes["ng"].because == ("s",)
    assert changes["gone"].action == DELETE and changes["new"].action == CREATE


def test_kubernetes_immutable_fields_replace_and_a_named_object_goes_delete_first() -> None:
    def deployment(selector: str, image: str) -> Item:
        spec = {
            "selector": {"matchLabels": {"app": selector}},
            "template": {"spec": {"containers": [{"image": image}]}},
        }
        return item("d", DEPLOYMENT, {"metadata": {"name": "vllm"}, "spec": spec})

    (image,) = diff([deployment("a", "v1")], [deployment("a", "v2")])
    assert image.action == UPDATE
    (selector,) = diff([deployment("a", "v1")], [deployment("b", "v1")])
    assert selector.action == REPLACE and selector.delete_first and selector.paths == ("spec.selector.matchLabels.app",)


# --- the changes operators make, on both prod stacks ----------------------------------------


@pytest.mark.parametrize("stack", PROD)
def test_instance_type_replaces_the_gpu_group_delete_first_and_is_refused(stack: str) -> None:
    costed = upgrade.preview(stack, sets(stack, "gpuNodes.instanceType=p5e.48xlarge"))
    group = gpu_group(costed)
    assert group and group.change.kind == "replace (delete first)" and group.change.paths == ("instanceTypes[0]",)
    assert "without service" in group.refused and upgrade.ACK_FLAG in group.refused
    # The node's boot, then a new node's start from the S3 mirror (the prod stacks' weights.source).
    cold = (
        NODE_PROVISION_SECONDS
        + timeline.new_node(catalog.MODEL_CATALOG[catalog.MODELS[0]].weights_gb, source="s3").total
    )
    assert group.downtime == timeline.duration(cold) and group.data == "NVMe caches lost"
    assert not [c for c in costed if c.change.type == "aws:ec2/subnet:Subnet"]


@pytest.mark.parametrize("stack", PROD)
def test_moving_onto_a_capacity_block_is_refused_for_its_outage(stack: str) -> None:
    block = ("gpuNodes.capacityType=CAPACITY_BLOCK", "gpuNodes.capacityReservationId=cr-0123456789abcdef0")
    costed = upgrade.preview(stack, sets(stack, *block, "gpuNodes.availabilityZones=[us-east-2b]"))
    group = gpu_group(costed)
    assert group and group.change.action == REPLACE and group.change.delete_first
    assert "capacityType" in group.change.paths and group.refused


@pytest.mark.parametrize("stack", PROD)
def test_kubernetes_minor_upgrade_updates_in_place_and_rolls_the_gpu_node(stack: str) -> None:
    costed = upgrade.preview(stack, base_values=sets(stack, "cluster.kubernetesVersion=1.34"))
    kinds = {(c.change.type, c.change.kind) for c in costed}
    assert ("aws:eks/cluster:Cluster", "update") in kinds and not any(c.change.action == REPLACE for c in costed)
    group = gpu_group(costed)
    assert group and group.change.paths == ("version",) and "down at once" in group.downtime and not group.refused
    forced = "EKS forces it after 15m" in group.downtime
    assert forced == (stack == "prod-4gpu")  # two replicas on one node cannot drain under the budget


@pytest.mark.parametrize("stack", PROD)
def test_model_revision_restarts_vllm_with_new_weights_and_copies_them_again(stack: str) -> None:
    costed = upgrade.preview(stack, sets(stack, f"serving.revision={'b' * 40}"))
    assert vllm(costed).change.action == UPDATE and "new weights" in vllm(costed).downtime
    job = next(c for c in costed if c.change.type == "kubernetes:batch/v1:Job")
    assert job.change.kind == "replace (delete first)" and "copy runs again" in job.downtime
    assert gpu_group(costed) is None and not any(c.refused for c in costed)


@pytest.mark.parametrize("stack", PROD)
def test_vllm_release_pulls_and_compiles_again(stack: str) -> None:
    costed = upgrade.preview(stack, base_values=sets(stack, "serving.imageTag=v0.31.0"))
    assert "new image" in vllm(costed).downtime and gpu_group(costed) is None


def test_profile_tp4_to_tp8_ep_restarts_vllm_without_touching_nodes() -> None:
    stack = "prod-4gpu"
    costed = upgrade.preview(stack, sets(stack, "serving.profile=tp8-ep", "serving.replicas=1"))
    assert vllm(costed).change.action == UPDATE and "warm restart" in vllm(costed).downtime
    # One replica per node drains under the budget: the forced node update is no longer needed.
    group = gpu_group(costed)
    assert group and group.change.action == UPDATE and group.change.paths == ("forceUpdateVersion",)
    assert group.downtime == "none" and not any(c.refused for c in costed)


def test_profile_tp4_to_tp8_ep_on_the_8gpu_stack() -> None:
    stack = "prod-8gpu"
    costed = upgrade.preview(stack, base_values=sets(stack, "serving.profile=tp4", "serving.maxModelLen=131072"))
    assert vllm(costed).change.action == UPDATE and "the only replica: an outage" in vllm(costed).downtime


@pytest.mark.parametrize("stack", PROD)
def test_certificate_updates_the_ingress_only(stack: str) -> None:
    costed = upgrade.preview(stack, sets(stack, f"endpoint.certificateArn={TLS_ARN}"))
    assert [(c.change.type, c.change.action) for c in costed] == [("kubernetes:networking.k8s.io/v1:Ingress", UPDATE)]
    assert costed[0].downtime == "none"


@pytest.mark.parametrize("stack", PROD)
def test_a_chart_bump_upgrades_its_release_and_its_crds_in_place(stack: str, monkeypatch: pytest.MonkeyPatch) -> None:
    before = upgrade.items_of(render(stack))
    repo, chart, _ = versions.KUBE_PROMETHEUS_STACK_CHART
    monkeypatch.setattr(versions, "KUBE_PROMETHEUS_STACK_CHART", (repo, chart, "88.6.0"))
    monkeypatch.setattr(versions, "PROMETHEUS_OPERATOR_APP", "v0.94.0")
    changes = diff(before, upgrade.items_of(render(stack)))
    releases = [c for c in changes if c.type == "kubernetes:helm.sh/v3:Release"]
    assert len(releases) == 1 and releases[0].action == UPDATE and "version" in releases[0].paths
    (crds,) = [c for c in changes if c.type == "kubernetes:yaml/v2:ConfigGroup"]
    assert crds.action == UPDATE and all(p.startswith("files[") for p in crds.paths)
    assert len(changes) == 2


@pytest.mark.parametrize("stack", PROD)
def test_a_changed_zone_offering_changes_nothing_once_zones_are_recorded(
    stack: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded = zones_recorded(stack)
    before = upgrade.items_of(render(stack, overrides=recorded))
    monkeypatch.setattr(mocks, "GPU_OFFERING_ZONE_SUFFIXES", ("a", "c"))
    assert diff(before, upgrade.items_of(render(stack, overrides=recorded))) == []
    # Unrecorded, the same change would move subnets: the preview refuses it.
    costed = [upgrade.cost(c, upgrade.settings_of(stack, {})) for c in diff(upgrade.items_of(render(stack)), before)]
    assert any(c.change.type == "aws:ec2/subnet:Subnet" and c.refused for c in costed)


# --- the command ----------------------------------------------------------------------------


def test_the_command_exits_1_on_a_refusal_and_0_when_acknowledged(capsys: pytest.CaptureFixture[str]) -> None:
    args = ("prod-8gpu", None, ["gpuNodes.instanceType=p5e.48xlarge"], [])
    assert upgrade.main(*args, accept=False) == 1
    out = capsys.readouterr().out
    assert "replace (delete first)" in out and "REFUSED" in out and upgrade.ACK_FLAG in out
    assert upgrade.main(*args, accept=True) == 0
    assert upgrade.main("prod-8gpu", None, ["instanceType=x"], [], accept=False) == 2


@pytest.mark.slow
@pytest.mark.skipif(not (upgrade.ROOT / ".git").exists(), reason="needs the git repository (not a copied tree)")
def test_a_git_base_is_rendered_by_its_own_tree() -> None:
    """The base ref is checked out in a temp worktree and rendered there (cached per commit)."""
    base = upgrade.render_at("HEAD", "prod-8gpu")
    assert any(upgrade.GPU_NODE_GROUP in i.urn for i in base)
    assert {i.type for i in base} == {i.type for i in upgrade.render_now("prod-8gpu")}
    assert list(upgrade.CACHE.glob("*-prod-8gpu-*.json"))


# docs/operations.md quotes three previews through generated blocks (tests/docs_blocks.py, make docs).
