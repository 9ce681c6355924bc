"""The images in-region: the stack's ECR repositories, the pods pulling only from them (vLLM by
digest), and node roles that may pull only there and from the region's EKS add-on registry."""

from __future__ import annotations

import functools
import json

import pytest

from components.aws import image_registry
from components.facts import versions
from components.platform import config
from ops.offline import graph_order, mocks
from ops.offline.engine import Rendering, render

STACKS = ("dev", "staging", "prod-4gpu", "prod-8gpu")
REPOSITORY = "aws:ecr/repository:Repository"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
ROLE = "aws:iam/role:Role"
DIGEST = "sha256:" + "ab" * 32


@functools.cache
def rendered(stack: str) -> Rendering:
    return render(stack)


def registry(stack: str) -> str:
    return f"{mocks.ACCOUNT_ID}.dkr.ecr.{config.from_stack_file(stack).region}.amazonaws.com"


@pytest.mark.parametrize("stack", STACKS)
def test_the_stack_owns_immutable_scanned_encrypted_repositories_that_destroy_removes(stack):
    s = config.from_stack_file(stack)
    repos = {r.inputs["name"]: r.inputs for r in rendered(stack).of_type(REPOSITORY)}
    # One set per stack: repository names are unique per account and region, and stacks may share both.
    assert sorted(repos) == [
        f"minimax-vllm/{s.cluster_name}/{i}" for i in ("stage-weights", "vllm-openai", "vllm-router")
    ]
    for repo in repos.values():
        assert repo["imageTagMutability"] == "IMMUTABLE"
        assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
        assert repo["encryptionConfigurations"] == [{"encryptionType": "KMS"}]
        assert repo["forceDelete"] is True  # a mirror of pinned images: the copy step restores it


@pytest.mark.parametrize("stack", STACKS)
def test_every_pod_of_the_namespace_pulls_from_the_stacks_repositories_after_they_exist(stack):
    r, s = rendered(stack), config.from_stack_file(stack)
    own = f"{registry(stack)}/minimax-vllm/{s.cluster_name}/"
    repos = {x.urn for x in r.of_type(REPOSITORY)}
    for obj in r.kubernetes_objects():
        spec = obj.inputs.get("spec", {}).get("template", {}).get("spec")
        if obj.inputs.get("metadata", {}).get("namespace") != "minimax-vllm" or not spec:
            continue
        for c in [*spec.get("initContainers", []), *spec["containers"]]:
            assert c["image"].startswith(own), (obj.name, c["image"])
        assert repos <= graph_order.created_after(r.resources, obj.urn), obj.name


def test_vllm_is_pulled_from_the_in_region_copy_by_the_recorded_digest(monkeypatch):
    monkeypatch.setitem(versions.VLLM_IMAGE_DIGESTS, versions.VLLM_IMAGE.split(":")[1], DIGEST)
    r, s = render("prod-8gpu"), config.from_stack_file("prod-8gpu")
    pod = r.vllm_deployment().inputs["spec"]["template"]["spec"]
    expected = f"{registry('prod-8gpu')}/minimax-vllm/{s.cluster_name}/vllm-openai:{s.serving.image_tag}@{DIGEST}"
    assert pod["containers"][0]["image"] == pod["initContainers"][0]["image"] == expected


@pytest.mark.parametrize("stack", STACKS)
def test_node_roles_pull_only_from_the_stacks_repositories_and_the_eks_addon_registry(stack):
    r, s = rendered(stack), config.from_stack_file(stack)
    node_roles = {g.inputs["nodeRoleArn"] for g in r.of_type(NODE_GROUP)}
    roles = [x for x in r.of_type(ROLE) if x.outputs.get("arn") in node_roles]
    keys = {x.id for x in roles} | {x.outputs["name"] for x in roles}
    pulls = [json.loads(p.inputs["policy"]) for p in r.of_type(ROLE_POLICY) if p.inputs["role"] in keys]
    assert len(pulls) == 2  # the system and the GPU node role
    for doc in pulls:
        by_resource = {st["Resource"]: st["Action"] for st in doc["Statement"]}
        assert by_resource == {
            "*": "ecr:GetAuthorizationToken",
            f"arn:aws:ecr:{s.region}:{mocks.ACCOUNT_ID}:repository/minimax-vllm/{s.cluster_name}/*": list(
                image_registry.PULL_ACTIONS
            ),
            # us-east-2's EKS add-on registry (the EKS user guide's table).
            f"arn:aws:ecr:{s.region}:602401143452:repository/*": list(image_registry.PULL_ACTIONS),
        }


def test_the_addon_registry_table_names_its_source_and_refuses_an_unknown_region():
    doc = json.loads(image_registry.REGISTRIES_FILE.read_text())
    assert doc["source"]["path"] == "latest/ug/workloads/add-ons-images.adoc" and len(doc["source"]["commit"]) == 40
    assert image_registry.eks_addon_account("us-east-2") == "602401143452"
    assert image_registry.eks_addon_account("il-central-1") == "066635153087"
    with pytest.raises(ValueError, match="no EKS add-on registry recorded for region 'xx-nowhere-1'"):
        image_registry.node_pull_policy("aws", "xx-nowhere-1", "123456789012", "c")
