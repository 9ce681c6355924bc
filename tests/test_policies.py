"""The guardrails pack: every shipped stack passes it, and every rule catches what it names."""

from __future__ import annotations

import copy
import functools
import inspect
import json
import runpy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import policy_fixtures_edge
import pulumi_policy
import pytest
from pulumi_policy import EnforcementLevel, PolicyResource, ResourceValidationArgs, StackValidationArgs
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from components.facts import gpu_pool
from components.platform import config
from components.serving import endpoint, routing, workload
from components.weights import mirror as weight_mirror
from ops.offline.engine import PLACEHOLDER_SECRETS, Rendering, render
from policies import rules
from policies.rules import capacity as capacity_rules
from policies.rules import cluster_access, common, exposure, hardening, routing_hop, supply_chain
from policies.rules import edge as edge_rules
from policies.rules import iam as iam_rules

STACKS = ("dev", "staging", "prod-4gpu", "prod-8gpu")
POLICY_DIR = Path(__file__).resolve().parent.parent / "policies"
CLUSTER = "aws:eks/cluster:Cluster"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
DAEMONSET = "kubernetes:apps/v1:DaemonSet"
SERVICE = "kubernetes:core/v1:Service"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
TLS_ARN = "arn:aws:acm:us-east-2:123456789012:certificate/0f2b4a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
A = "alb.ingress.kubernetes.io"
RELEASE = "kubernetes:helm.sh/v3:Release"
SECRETS = tuple(PLACEHOLDER_SECRETS.values())
PROD_REVISION = "5fb9455421adc47f561f139d4e925b4c88c44367"  # stacks/Pulumi.prod-8gpu.yaml


@functools.cache
def rendered(stack: str) -> Rendering:
    """The stack as it would be deployed: its endpoint gets its certificate, internal or
    internet-facing (the shipped files leave it to be set, and the deploy gate insists on it)."""
    section = dict(config.read_stack_file(stack).get("minimax-vllm:endpoint") or {})
    return render(stack, overrides={"endpoint": {**section, "certificateArn": TLS_ARN}})


def props(type_token: str, stack: str = "prod-8gpu", name_part: str = "") -> dict[str, Any]:
    """A deep copy of one rendered resource's inputs, free to modify."""
    found = [r for r in rendered(stack).of_type(type_token) if name_part in r.name]
    if type_token == SERVICE:  # the serving Service, not the stager's node-local one
        found = [r for r in found if r.inputs["metadata"]["name"] == workload.APP]
    assert len(found) == 1, [r.name for r in found]
    return copy.deepcopy(found[0].inputs)


def vllm_container(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def check(rule_name: str, type_token: str, resource: dict[str, Any]) -> list[str]:
    """Run one resource rule; the secrets rule also looks for the offline placeholder values."""
    if rule_name == "no-plaintext-secrets":
        return hardening.no_plaintext_secrets(type_token, resource, known_secrets=SECRETS)
    rule = next(r for r in rules.RESOURCE_RULES if r.name == rule_name)
    return rule.check(type_token, resource)


# ------------------------------------------------------------ every stack passes


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("rule", rules.RESOURCE_RULES, ids=lambda r: r.name)
def test_every_stack_passes_resource_rule(stack: str, rule: rules.Rule) -> None:
    violations = [
        f"{r.type} {r.name}: {message}"
        for r in rendered(stack).resources
        for message in check(rule.name, r.type, r.inputs)
    ]
    assert violations == []


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("rule", rules.STACK_RULES, ids=lambda r: r.name)
def test_every_stack_passes_stack_rule(stack: str, rule: rules.StackRule) -> None:
    assert rule.check([(r.type, r.inputs) for r in rendered(stack).resources]) == []


@pytest.mark.parametrize("stack", STACKS)
def test_no_pulumi_secret_reaches_a_workload_spec(stack: str) -> None:
    """Secrets reach Kubernetes only as Secret objects; a workload carrying one would leak it."""
    leaking = {
        r.name: sorted(r.secret_paths)
        for r in rendered(stack).kubernetes_objects()
        if r.secret_paths and r.inputs.get("kind") != "Secret"
    }
    assert leaking == {}


# ------------------------------------------------------------ failing and passing fixtures


def _without(resource: dict[str, Any], *path: str | int) -> dict[str, Any]:
    target = resource
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return resource


def _with(resource: dict[str, Any], mutate: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    mutate(resource)
    return resource


def _pod(resource: dict[str, Any]) -> dict[str, Any]:
    return resource["spec"]["template"]["spec"]


def _device_plugin_daemonset(privileged: bool, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "device-plugin", "namespace": "kube-system"},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "device-plugin"}},
                "spec": {
                    "hostNetwork": True,
                    "volumes": [{"name": "plugins", "hostPath": {"path": "/var/lib/kubelet/device-plugins"}}],
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [
                        {
                            "name": "plugin",
                            "image": image,
                            "securityContext": {"privileged": privileged},
                            "resources": {"requests": {"cpu": "10m", "memory": "20Mi"}, "limits": {"memory": "50Mi"}},
                        }
                    ],
                },
            }
        },
    }


def _env(resource: dict[str, Any], name: str, value: str) -> None:
    vllm_container(resource).setdefault("env", []).append({"name": name, "value": value})


# (rule, type, props factory, text the message must contain)
FAILING: list[tuple[str, str, Callable[[], dict[str, Any]], str]] = [
    ("eks-secrets-encryption", CLUSTER, lambda: _without(props(CLUSTER), "encryptionConfig"), 'resources ["secrets"]'),
    (
        "eks-secrets-encryption",
        CLUSTER,
        lambda: _with(props(CLUSTER), lambda p: p["encryptionConfig"].update(resources=[])),
        "not KMS-encrypted",
    ),
    (
        "eks-control-plane-logging",
        CLUSTER,
        lambda: _with(props(CLUSTER), lambda p: p.update(enabledClusterLogTypes=["api"])),
        "['audit', 'authenticator']",
    ),
    (
        "eks-control-plane-logging",
        CLUSTER,
        lambda: _without(props(CLUSTER), "enabledClusterLogTypes"),
        "['api', 'audit', 'authenticator']",
    ),
    (
        "eks-endpoint-not-public",
        CLUSTER,
        lambda: _with(props(CLUSTER), lambda p: p["vpcConfig"].update(publicAccessCidrs=["10.0.0.0/8", "0.0.0.0/0"])),
        "contains 0.0.0.0/0",
    ),
    (
        "eks-endpoint-not-public",
        CLUSTER,
        lambda: _without(props(CLUSTER), "vpcConfig", "publicAccessCidrs"),
        "no publicAccessCidrs",
    ),
    ("eks-endpoint-not-public", CLUSTER, lambda: {"vpcConfig": {"subnetIds": ["subnet-1"]}}, "opens to 0.0.0.0/0"),
    (
        "launch-template-imdsv2",
        LAUNCH_TEMPLATE,
        lambda: _with(
            props(LAUNCH_TEMPLATE, name_part="gpu-lt"), lambda p: p["metadataOptions"].update(httpTokens="optional")
        ),
        "httpTokens is 'optional'",
    ),
    (
        "launch-template-imdsv2",
        LAUNCH_TEMPLATE,
        lambda: _without(props(LAUNCH_TEMPLATE, name_part="gpu-lt"), "metadataOptions"),
        "IMDSv2",
    ),
    (
        "launch-template-encrypted-ebs",
        LAUNCH_TEMPLATE,
        lambda: _with(
            props(LAUNCH_TEMPLATE, name_part="gpu-lt"),
            lambda p: p["blockDeviceMappings"][0]["ebs"].update(encrypted="false"),
        ),
        "/dev/xvda is not encrypted",
    ),
    (
        "launch-template-encrypted-ebs",
        LAUNCH_TEMPLATE,
        lambda: _without(props(LAUNCH_TEMPLATE, name_part="gpu-lt"), "blockDeviceMappings"),
        "no EBS blockDeviceMappings",
    ),
    (
        "no-privileged-pods",
        DEPLOYMENT,
        lambda: _with(props(DEPLOYMENT), lambda p: _pod(p).update(hostNetwork=True)),
        "sets hostNetwork: true",
    ),
    (
        "no-privileged-pods",
        DEPLOYMENT,
        lambda: _with(props(DEPLOYMENT), lambda p: _pod(p).update(hostPID=True, hostIPC=True)),
        "sets hostPID: true",
    ),
    (
        "no-privileged-pods",
        DEPLOYMENT,
        lambda: _with(props(DEPLOYMENT), lambda p: vllm_container(p)["securityContext"].update(privileged=True)),
        "container 'vllm' is privileged",
    ),
    (
        "no-privileged-pods",
        DAEMONSET,
        lambda: _device_plugin_daemonset(True, "example.com/not-nvidia/plugin:v1"),
        "is privileged",
    ),
    (
        "container-resources",
        DEPLOYMENT,
        lambda: _without(props(DEPLOYMENT), "spec", "template", "spec", "containers", 0, "resources"),
        "no resources requests.cpu, requests.memory, limits.memory",
    ),
    (
        "container-resources",
        DEPLOYMENT,
        lambda: _with(props(DEPLOYMENT), lambda p: vllm_container(p)["resources"]["limits"].pop("memory")),
        "limits.memory",
    ),
    (
        "pinned-images",
        DEPLOYMENT,
        lambda: _with(props(DEPLOYMENT), lambda p: vllm_container(p).update(image="vllm/vllm-openai")),
        "without a tag",
    ),
    (
        "pinned-images",
        DEPLOYMENT,
        lambda: _with(props(DEPLOYMENT), lambda p: vllm_container(p).update(image="localhost:5000/vllm-openai")),
        "without a tag",
    ),
    (
        "pinned-images",
        DEPLOYMENT,
        lambda: _with(props(DEPLOYMENT), lambda p: vllm_container(p).update(image="vllm/vllm-openai:latest")),
        "`latest` is not a pinned version",
    ),
    (
        "pinned-images",
        RELEASE,
        lambda: _without(props(RELEASE, name_part="nvidia"), "version"),
        "'nvidia-device-plugin' has no pinned version",
    ),
    (
        "pinned-images",
        RELEASE,
        lambda: _with(props(RELEASE, name_part="lbc"), lambda p: p.update(version="^3.5.0")),
        "is a range",
    ),
    (
        "pinned-images",
        RELEASE,
        lambda: _with(props(RELEASE, name_part="lbc"), lambda p: p.update(version="3.x")),
        "is a range",
    ),
    (
        "gpu-pods-tolerate-taint",
        DEPLOYMENT,
        lambda: _without(props(DEPLOYMENT), "spec", "template", "spec", "tolerations"),
        "does not tolerate the GPU node taint nvidia.com/gpu=true:NoSchedule",
    ),
    (
        "gpu-pods-tolerate-taint",
        DEPLOYMENT,
        lambda: _with(
            props(DEPLOYMENT),
            lambda p: _pod(p).update(
                tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}]
            ),
        ),
        "does not tolerate",
    ),
    (
        "gpu-pods-tolerate-taint",
        DEPLOYMENT,
        lambda: _with(
            props(DEPLOYMENT), lambda p: _pod(p).update(tolerations=[{"key": "nvidia.com/gpu", "value": "false"}])
        ),
        "does not tolerate",
    ),
    (
        "no-plaintext-secrets",
        DEPLOYMENT,
        lambda: _with(props(DEPLOYMENT), lambda p: _env(p, "VLLM_API_KEY", "sk-123")),
        "env VLLM_API_KEY has a literal value; use valueFrom.secretKeyRef",
    ),
    (
        "no-plaintext-secrets",
        DEPLOYMENT,
        lambda: _with(props(DEPLOYMENT), lambda p: _env(p, "DB_PASSWORD", "hunter2")),
        "env DB_PASSWORD has a literal value",
    ),
    (
        "no-plaintext-secrets",
        DEPLOYMENT,
        lambda: _with(props(DEPLOYMENT), lambda p: _env(p, "EXTRA", SECRETS[1])),
        "env EXTRA carries a secret value",
    ),
    (
        "no-plaintext-secrets",
        DEPLOYMENT,
        lambda: _with(props(DEPLOYMENT), lambda p: vllm_container(p)["args"].extend(["--api-key", "sk-123"])),
        "args passes --api-key on the command line",
    ),
    (
        "no-plaintext-secrets",
        DEPLOYMENT,
        lambda: _with(
            props(DEPLOYMENT), lambda p: vllm_container(p).update(command=["sh", "-c", "vllm serve --hf-token=$T"])
        ),
        "command passes --hf-token",
    ),
    (
        "no-plaintext-secrets",
        INGRESS,
        lambda: _with(props(INGRESS), lambda p: p["metadata"]["annotations"].update(note=SECRETS[0])),
        "annotation 'note' carries a secret value",
    ),
    (
        "public-endpoint-tls-and-ranges",
        INGRESS,
        lambda: _with(
            props(INGRESS),
            lambda p: (
                p["metadata"]["annotations"].pop(f"{A}/certificate-arn"),
                p["metadata"]["annotations"].update({f"{A}/listen-ports": '[{"HTTP": 80}]'}),
            ),
        ),
        "without TLS (plain listeners ['HTTP 80'], certificate-arn missing)",
    ),
    (
        "public-endpoint-tls-and-ranges",
        INGRESS,
        lambda: _with(
            props(INGRESS),
            lambda p: p["metadata"]["annotations"].update({f"{A}/listen-ports": '[{"HTTP": 80}, {"HTTPS": 443}]'}),
        ),
        "plain listeners ['HTTP 80']",
    ),
    (
        "public-endpoint-tls-and-ranges",
        INGRESS,
        lambda: _with(props(INGRESS), lambda p: p["metadata"]["annotations"].pop(f"{A}/inbound-cidrs")),
        "no inbound-cidrs",
    ),
    (
        "public-endpoint-tls-and-ranges",
        INGRESS,
        lambda: _with(
            props(INGRESS),
            lambda p: p["metadata"]["annotations"].update({f"{A}/ssl-policy": "ELBSecurityPolicy-TLS13-1-2-2021-06"}),
        ),
        "is not a restricted (-Res-) one",
    ),
    (
        "public-endpoint-tls-and-ranges",
        INGRESS,
        lambda: _with(props(INGRESS), lambda p: p["metadata"]["annotations"].pop(f"{A}/ssl-policy")),
        "(the ELB default, ELBSecurityPolicy-2016-08) is not a restricted",
    ),
    (
        "public-endpoint-tls-and-ranges",
        INGRESS,
        lambda: _with(
            props(INGRESS),
            lambda p: p["metadata"]["annotations"].update({f"{A}/inbound-cidrs": "0.0.0.0/1,128.0.0.0/1"}),
        ),
        "together cover the whole internet",
    ),
    (
        "public-endpoint-tls-and-ranges",
        INGRESS,
        lambda: _with(
            props(INGRESS),
            lambda p: p["metadata"]["annotations"].update({f"{A}/inbound-cidrs": "52.0.0.0/16,64.0.0.0/6"}),
        ),
        "shorter than /8",
    ),
    (
        "only-allowed-paths-exposed",
        INGRESS,
        lambda: _with(props(INGRESS), lambda p: _paths(p).append(_path("/", "Prefix"))),
        "forwards / (Prefix) to a backend",
    ),
    (
        "only-allowed-paths-exposed",
        INGRESS,
        lambda: _with(props(INGRESS), lambda p: _paths(p).append(_path("/invocations", "Exact"))),
        "forwards /invocations (Exact)",
    ),
    (
        "only-allowed-paths-exposed",
        INGRESS,
        lambda: _with(props(INGRESS), lambda p: _paths(p)[0].update(pathType="ImplementationSpecific", path="/*")),
        "forwards /* (ImplementationSpecific)",
    ),
    (
        "only-allowed-paths-exposed",
        INGRESS,
        lambda: _with(props(INGRESS), lambda p: p["spec"].update(defaultBackend=_path("/", "Prefix")["backend"])),
        "defaultBackend that is not a fixed 404",
    ),
    (
        "eks-endpoint-not-public",
        CLUSTER,
        lambda: _with(props(CLUSTER), lambda p: p["vpcConfig"].update(publicAccessCidrs=["0.0.0.0/1", "128.0.0.0/1"])),
        "together cover the whole internet",
    ),
    (
        "no-plaintext-secrets",
        DEPLOYMENT,
        lambda: _with(
            props(DEPLOYMENT),
            lambda p: p["spec"]["template"]["metadata"].update(annotations={"example.com/api-key": "abc"}),
        ),
        "annotation 'example.com/api-key' looks like a secret",
    ),
]


def _paths(ingress: dict[str, Any]) -> list[dict[str, Any]]:
    return ingress["spec"]["rules"][0]["http"]["paths"]


def _path(path: str, path_type: str) -> dict[str, Any]:
    return {"path": path, "pathType": path_type, "backend": {"service": {"name": "vllm", "port": {"name": "http"}}}}


def _lookalike_privileged_pod() -> dict[str, Any]:
    """The issue's example: privileged, hostPID, image merely starting with NVIDIA's repository."""
    return _with(
        _device_plugin_daemonset(True, "nvcr.io/nvidia/k8s-device-plugin-tools:v1"),
        lambda p: _pod(p).update(hostPID=True),
    )


def _sys_admin_host_root() -> dict[str, Any]:
    """The issue's example: SYS_ADMIN with the node's / mounted."""

    def mutate(p: dict[str, Any]) -> None:
        vllm_container(p)["securityContext"] = {"capabilities": {"add": ["SYS_ADMIN"]}}
        vllm_container(p)["volumeMounts"].append({"name": "host", "mountPath": "/host"})
        _pod(p)["volumes"].append({"name": "host", "hostPath": {"path": "/"}})

    return _with(props(DEPLOYMENT), mutate)


def _hop_limit_2() -> dict[str, Any]:
    return _with(
        props(LAUNCH_TEMPLATE, name_part="gpu-lt"), lambda p: p["metadataOptions"].update(httpPutResponseHopLimit=2)
    )


FAILING += [
    ("launch-template-imds-hop-limit", LAUNCH_TEMPLATE, _hop_limit_2, "httpPutResponseHopLimit is 2, not 1"),
    (
        "launch-template-imds-hop-limit",
        LAUNCH_TEMPLATE,
        lambda: _without(props(LAUNCH_TEMPLATE, name_part="system-lt"), "metadataOptions"),
        "is None, not 1",
    ),
    ("no-privileged-pods", DAEMONSET, _lookalike_privileged_pod, "sets hostPID: true"),
    ("hostpath-only-model-cache", DEPLOYMENT, _sys_admin_host_root, "mounts hostPath '/'"),
    ("hostpath-only-model-cache", DAEMONSET, _lookalike_privileged_pod, "mounts hostPath"),
    ("restricted-security-context", DEPLOYMENT, _sys_admin_host_root, "adds capabilities ['SYS_ADMIN']"),
    ("restricted-security-context", DEPLOYMENT, _sys_admin_host_root, "does not drop ALL capabilities"),
    (
        "restricted-security-context",
        DEPLOYMENT,
        lambda: _with(
            props(DEPLOYMENT),
            lambda p: (
                vllm_container(p)["securityContext"].pop("seccompProfile"),
                _pod(p)["securityContext"].pop("seccompProfile"),
            ),
        ),
        "seccomp profile None",
    ),
    (
        "restricted-security-context",
        DEPLOYMENT,
        lambda: _with(
            props(DEPLOYMENT), lambda p: vllm_container(p)["securityContext"].pop("allowPrivilegeEscalation")
        ),
        "allowPrivilegeEscalation",
    ),
    (
        "no-token-automount",
        DEPLOYMENT,
        lambda: _without(props(DEPLOYMENT), "spec", "template", "spec", "automountServiceAccountToken"),
        "automountServiceAccountToken: false",
    ),
]
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ROLE_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"


def _gpu_pull_policy() -> dict[str, Any]:
    return props(ROLE_POLICY, name_part="gpu-node-ecr-pull")


def _pull_on(resource: str, action: Any = "ecr:BatchGetImage") -> dict[str, Any]:
    statement = {"Effect": "Allow", "Action": action, "Resource": resource}
    return {**_gpu_pull_policy(), "policy": json.dumps({"Version": "2012-10-17", "Statement": [statement]})}


FAILING += [
    (
        "no-ecr-read-on-every-repository",
        ROLE_ATTACHMENT,
        lambda: {"role": "r", "policyArn": "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"},
        "attaches AmazonEC2ContainerRegistryReadOnly",
    ),
    ("no-ecr-read-on-every-repository", ROLE_POLICY, lambda: _pull_on("*"), "ecr:BatchGetImage on Resource *"),
    ("no-ecr-read-on-every-repository", ROLE_POLICY, lambda: _pull_on("*", ["ecr:*"]), "ecr:* on Resource *"),
]
# The lookalike DaemonSet also mounts a hostPath, so the hostPath rule has something to reject.
_device_plugin_volume = {"name": "plugins", "hostPath": {"path": "/var/lib/kubelet/device-plugins"}}

PASSING: list[tuple[str, str, Callable[[], dict[str, Any]]]] = [
    ("no-ecr-read-on-every-repository", ROLE_POLICY, _gpu_pull_policy),
    ("no-ecr-read-on-every-repository", ROLE_POLICY, lambda: _pull_on("*", "ecr:GetAuthorizationToken")),
    (
        "no-ecr-read-on-every-repository",
        ROLE_ATTACHMENT,
        lambda: {"role": "r", "policyArn": "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy"},
    ),
    ("public-endpoint-tls-and-ranges", INGRESS, lambda: props(INGRESS)),
    ("public-endpoint-tls-and-ranges", INGRESS, lambda: props(INGRESS, stack="dev")),  # internal
    (
        "public-endpoint-tls-and-ranges",
        INGRESS,
        lambda: (
            render(
                "prod-8gpu",
                overrides={
                    "endpoint": {
                        "scheme": "internet-facing",
                        "sourceRanges": ["52.0.0.0/16"],
                        "insecureAllowPlainHttpOnInternet": True,
                    }
                },
            )
            .one(INGRESS)
            .inputs
        ),  # the stack's explicit opt-out
    ),
    ("only-allowed-paths-exposed", INGRESS, lambda: props(INGRESS)),
    (
        "only-allowed-paths-exposed",
        INGRESS,
        lambda: _with(props(INGRESS), lambda p: p["spec"].pop("defaultBackend")),  # the controller's own 404
    ),
    ("eks-endpoint-not-public", CLUSTER, lambda: {"vpcConfig": {"publicAccessCidrs": ["52.0.0.0/8", "2600::/12"]}}),
    ("launch-template-imds-hop-limit", LAUNCH_TEMPLATE, lambda: props(LAUNCH_TEMPLATE, name_part="gpu-lt")),
    ("launch-template-imds-hop-limit", LAUNCH_TEMPLATE, lambda: props(LAUNCH_TEMPLATE, name_part="system-lt")),
    ("hostpath-only-model-cache", DEPLOYMENT, lambda: props(DEPLOYMENT)),
    (
        "hostpath-only-model-cache",
        DAEMONSET,
        lambda: _with(
            _device_plugin_daemonset(True, "nvcr.io/nvidia/k8s-device-plugin:v0.20.1"),
            lambda p: _pod(p).update(volumes=[_device_plugin_volume]),
        ),
    ),
    ("restricted-security-context", DEPLOYMENT, lambda: props(DEPLOYMENT)),
    ("restricted-security-context", DEPLOYMENT, lambda: props(DEPLOYMENT, stack="dev", name_part="-vllm-deployment")),
    ("restricted-security-context", DEPLOYMENT, lambda: props(DEPLOYMENT, stack="dev", name_part=routing.APP)),
    ("no-token-automount", DEPLOYMENT, lambda: props(DEPLOYMENT)),
    (
        "no-token-automount",
        DAEMONSET,
        lambda: _device_plugin_daemonset(False, "nvcr.io/nvidia/k8s-device-plugin@sha256:" + "a" * 64),
    ),
    ("eks-secrets-encryption", CLUSTER, lambda: props(CLUSTER)),
    ("eks-secrets-encryption", CLUSTER, lambda: {"encryptionConfig": [{"resources": ["secrets"]}]}),
    ("eks-control-plane-logging", CLUSTER, lambda: {"enabledClusterLogTypes": ["authenticator", "audit", "api"]}),
    ("eks-endpoint-not-public", CLUSTER, lambda: props(CLUSTER)),
    (
        "eks-endpoint-not-public",
        CLUSTER,
        lambda: {"vpcConfig": {"endpointPublicAccess": False, "endpointPrivateAccess": True}},
    ),
    ("launch-template-imdsv2", LAUNCH_TEMPLATE, lambda: props(LAUNCH_TEMPLATE, name_part="gpu-lt")),
    ("launch-template-encrypted-ebs", LAUNCH_TEMPLATE, lambda: props(LAUNCH_TEMPLATE, name_part="gpu-lt")),
    ("launch-template-imdsv2", LAUNCH_TEMPLATE, lambda: props(LAUNCH_TEMPLATE, name_part="system-lt")),
    ("launch-template-encrypted-ebs", LAUNCH_TEMPLATE, lambda: props(LAUNCH_TEMPLATE, name_part="system-lt")),
    (
        "launch-template-encrypted-ebs",
        LAUNCH_TEMPLATE,
        lambda: {
            "blockDeviceMappings": [
                {"deviceName": "/dev/xvda", "ebs": {"encrypted": True}},
                {"deviceName": "/dev/sdb", "virtualName": "ephemeral0"},
            ]
        },
    ),
    ("no-privileged-pods", DEPLOYMENT, lambda: props(DEPLOYMENT)),
    (
        "no-privileged-pods",
        DAEMONSET,
        lambda: _device_plugin_daemonset(True, "nvcr.io/nvidia/k8s-device-plugin:v0.20.1"),
    ),
    ("container-resources", DEPLOYMENT, lambda: props(DEPLOYMENT)),
    (
        "container-resources",
        DAEMONSET,
        lambda: _device_plugin_daemonset(False, "nvcr.io/nvidia/k8s-device-plugin:v0.20.1"),
    ),
    ("pinned-images", DEPLOYMENT, lambda: props(DEPLOYMENT)),
    (
        "pinned-images",
        DEPLOYMENT,
        lambda: _with(
            props(DEPLOYMENT), lambda p: vllm_container(p).update(image="localhost:5000/vllm@sha256:" + "a" * 64)
        ),
    ),
    ("pinned-images", RELEASE, lambda: props(RELEASE, name_part="nvidia")),
    (
        "pinned-images",
        RELEASE,
        lambda: _with(props(RELEASE, name_part="lbc"), lambda p: p.update(version="1.0.0-linux")),
    ),
    ("gpu-pods-tolerate-taint", DEPLOYMENT, lambda: props(DEPLOYMENT)),
    (
        "gpu-pods-tolerate-taint",
        DEPLOYMENT,
        lambda: _with(
            props(DEPLOYMENT),
            lambda p: _pod(p).update(tolerations=[{"key": "nvidia.com/gpu", "operator": "Equal", "value": "true"}]),
        ),
    ),
    (
        "gpu-pods-tolerate-taint",
        DEPLOYMENT,
        lambda: _with(props(DEPLOYMENT), lambda p: _pod(p).update(tolerations=[{"operator": "Exists"}])),
    ),
    (
        "gpu-pods-tolerate-taint",
        DAEMONSET,
        lambda: _with(_device_plugin_daemonset(False, "busybox:1.36"), lambda p: _pod(p).pop("tolerations")),
    ),
    ("no-plaintext-secrets", DEPLOYMENT, lambda: props(DEPLOYMENT)),
    (
        "no-plaintext-secrets",
        DEPLOYMENT,
        lambda: _with(props(DEPLOYMENT), lambda p: _env(p, "TOKENIZERS_PARALLELISM", "false")),
    ),
    ("no-plaintext-secrets", SERVICE, lambda: props(SERVICE)),
]

TRIGGER_AUTH = "kubernetes:keda.sh/v1alpha1:TriggerAuthentication"
ACCESS_POLICY = "aws:eks/accessPolicyAssociation:AccessPolicyAssociation"


def _kps() -> dict[str, Any]:
    return props(RELEASE, name_part="observability-stack")


def _access(policy: str, scope: dict[str, Any]) -> dict[str, Any]:
    found = props(ACCESS_POLICY)
    found["policyArn"] = found["policyArn"].rsplit("/", 1)[0] + "/" + policy
    found["accessScope"] = scope
    return found


FAILING += [
    (
        "keda-identity-owner-explicit",
        TRIGGER_AUTH,
        lambda: _with(props(TRIGGER_AUTH, stack="dev"), lambda p: p["spec"]["podIdentity"].pop("identityOwner")),
        "without identityOwner",
    ),
    (
        "node-exporter-off-host-network",
        RELEASE,
        lambda: _with(_kps(), lambda p: p["values"]["prometheus-node-exporter"].pop("hostNetwork")),
        "hostNetwork on",
    ),
    (
        "access-policy-scoped",
        ACCESS_POLICY,
        lambda: _access("AmazonEKSClusterAdminPolicy", {"type": "namespace", "namespaces": ["minimax-vllm"]}),
        "cluster-wide whatever the scope",
    ),
    (
        "access-policy-scoped",
        ACCESS_POLICY,
        lambda: _access("AmazonEKSFooPolicy", {"type": "cluster"}),
        "is not one of",
    ),
]
PASSING += [
    ("keda-identity-owner-explicit", TRIGGER_AUTH, lambda: props(TRIGGER_AUTH, stack="dev")),
    ("node-exporter-off-host-network", RELEASE, _kps),
    ("access-policy-scoped", ACCESS_POLICY, lambda: props(ACCESS_POLICY)),
    (
        "access-policy-scoped",
        ACCESS_POLICY,
        lambda: _access("AmazonEKSViewPolicy", {"type": "namespace", "namespaces": ["minimax-vllm"]}),
    ),
]


FAILING += policy_fixtures_edge.FAILING
PASSING += policy_fixtures_edge.PASSING


@pytest.mark.parametrize(
    ("rule_name", "type_token", "make", "expected"), FAILING, ids=[f"{f[0]}-{i}" for i, f in enumerate(FAILING)]
)
def test_rule_rejects_failing_fixture(
    rule_name: str, type_token: str, make: Callable[[], dict[str, Any]], expected: str
) -> None:
    messages = check(rule_name, type_token, make())
    assert messages, f"{rule_name} accepted a fixture it must reject"
    assert any(expected in m for m in messages), messages


@pytest.mark.parametrize(
    ("rule_name", "type_token", "make"), PASSING, ids=[f"{p[0]}-{i}" for i, p in enumerate(PASSING)]
)
def test_rule_accepts_passing_fixture(rule_name: str, type_token: str, make: Callable[[], dict[str, Any]]) -> None:
    assert check(rule_name, type_token, make()) == []


def test_every_resource_rule_has_failing_and_passing_fixtures() -> None:
    names = {r.name for r in rules.RESOURCE_RULES}
    assert names <= {f[0] for f in FAILING}
    assert names <= {p[0] for p in PASSING}


# ------------------------------------------------------------ the cross-resource rule


def _stack(service: dict[str, Any], *workloads: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(SERVICE, service)] + [(DEPLOYMENT, w) for w in workloads]


def _open_service(ranges: list[str] | None) -> dict[str, Any]:
    """An internet-facing NLB Service in front of the vLLM pods (what the stack no longer renders)."""
    service = props(SERVICE)
    service["metadata"]["annotations"] = {
        common.SCHEME_ANNOTATION: "internet-facing",
        common.LB_TYPE_ANNOTATION: "external",
    }
    service["spec"] = {**service["spec"], "type": "LoadBalancer", "loadBalancerClass": common.LBC_CLASS}
    if ranges is not None:
        service["spec"]["loadBalancerSourceRanges"] = ranges
    return service


def _deployment_without_api_key() -> dict[str, Any]:
    deployment = props(DEPLOYMENT)
    vllm_container(deployment)["env"] = [e for e in vllm_container(deployment)["env"] if e["name"] != "VLLM_API_KEY"]
    return deployment


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        (
            lambda: _stack(_open_service(["0.0.0.0/0"]), _deployment_without_api_key()),
            "does not read VLLM_API_KEY from a secretKeyRef",
        ),
        (lambda: _stack(_open_service(None), _deployment_without_api_key()), "with no loadBalancerSourceRanges"),
        (lambda: _stack(_open_service(["::/0"])), "selects no workload that requires an API key"),
        (
            lambda: _stack(_open_service(["0.0.0.0/1", "128.0.0.0/1"]), _deployment_without_api_key()),
            "does not read VLLM_API_KEY",
        ),
        (
            lambda: _stack(
                _open_service(["0.0.0.0/0"]),
                _with(props(DEPLOYMENT), lambda p: p["metadata"].update(namespace="elsewhere")),
            ),
            "selects no workload",
        ),
        (
            lambda: _stack(
                _with(
                    _open_service(None),
                    lambda s: (
                        s["metadata"]["annotations"].pop(common.SCHEME_ANNOTATION),
                        s["spec"].pop("loadBalancerClass"),
                        s["metadata"]["annotations"].pop(common.LB_TYPE_ANNOTATION),
                    ),
                )
            ),
            "internet-facing",  # the in-tree controller's default scheme
        ),
    ],
    ids=["open-without-key", "no-ranges", "no-workload", "split-world", "other-namespace", "in-tree-default-scheme"],
)
def test_public_endpoint_without_api_key_is_rejected(resources: Callable[[], list], expected: str) -> None:
    messages = exposure.public_endpoint_requires_api_key(resources())
    assert messages and any(expected in m for m in messages), messages
    assert "Service minimax-vllm/vllm" in messages[0]


@pytest.mark.parametrize(
    "resources",
    [
        lambda: _stack(_open_service(["0.0.0.0/0"]), props(DEPLOYMENT)),
        lambda: _stack(_open_service(["203.0.113.0/24"]), _deployment_without_api_key()),
        lambda: _stack(
            _with(
                _open_service(None),
                lambda s: s["metadata"]["annotations"].update({common.SCHEME_ANNOTATION: "internal"}),
            ),
            _deployment_without_api_key(),
        ),
        lambda: _stack(
            _with(_open_service(None), lambda s: s["spec"].update(type="ClusterIP")), _deployment_without_api_key()
        ),
    ],
    ids=["open-with-key", "source-restricted", "internal", "not-a-load-balancer"],
)
def test_public_endpoint_rule_accepts(resources: Callable[[], list]) -> None:
    assert exposure.public_endpoint_requires_api_key(resources()) == []


@pytest.mark.parametrize("kind", ["LoadBalancer", "NodePort"])
def test_a_service_that_exposes_every_path_of_vllm_is_rejected(kind: str) -> None:
    service = _with(_open_service(["52.0.0.0/16"]), lambda s: s["spec"].update(type=kind))
    messages = exposure.vllm_only_behind_the_path_list(_stack(service, props(DEPLOYMENT)))
    assert messages == [
        f"Service minimax-vllm/vllm of type {kind} exposes every path of the vLLM pods it selects; "
        "use a ClusterIP Service behind the Ingress's path list"
    ]


@pytest.mark.parametrize(
    "resources",
    [
        lambda: _stack(props(SERVICE), props(DEPLOYMENT)),  # the rendered ClusterIP Service
        lambda: _stack(_open_service(["52.0.0.0/16"]), _deployment_without_api_key()),  # not vLLM
    ],
    ids=["cluster-ip", "other-workload"],
)
def test_path_list_rule_accepts(resources: Callable[[], list]) -> None:
    assert exposure.vllm_only_behind_the_path_list(resources()) == []


def test_the_pack_reads_the_same_path_list_as_the_ingress() -> None:
    assert common.ALLOWED_PATHS == {(p.path, p.path_type) for p in endpoint.EXPOSED_PATHS}
    assert common.EXPOSED_PATHS_FILE == endpoint.EXPOSED_PATHS_FILE
    assert common.PLAIN_HTTP_ACCEPTED_ANNOTATION == endpoint.PLAIN_HTTP_ACCEPTED
    assert common.ALB == endpoint.ANNOTATION


@pytest.mark.parametrize(
    "cidrs",
    [["0.0.0.0/0"], ["0.0.0.0/1", "128.0.0.0/1"], ["::/1", "8000::/1"], ["2000::/3"], ["52.0.0.0/8"], ["2600::/12"]],
)
def test_the_packs_cidr_arithmetic_agrees_with_the_settings(cidrs: list[str]) -> None:
    from components.serving import exposure as exposure_rules

    assert common._covers_world(cidrs) == exposure_rules.covers_the_internet(cidrs)


# ------------------------------------------------------------ wiring into pulumi-policy


def test_all_policies_wraps_every_rule_once_with_its_kind() -> None:
    policies = rules.all_policies()
    assert [p.name for p in policies] == rules.all_rule_names()
    assert len(set(rules.all_rule_names())) == len(policies)
    by_name = {p.name: p for p in policies}
    assert all(isinstance(by_name[r.name], pulumi_policy.ResourceValidationPolicy) for r in rules.RESOURCE_RULES)
    assert all(isinstance(by_name[r.name], pulumi_policy.StackValidationPolicy) for r in rules.STACK_RULES)


def test_every_check_function_in_rules_is_registered() -> None:
    """A rule written but not registered would silently never run."""
    registered = {r.check for r in rules.RESOURCE_RULES} | {r.check for r in rules.STACK_RULES}
    public = {
        fn
        for module in (
            exposure,
            hardening,
            iam_rules,
            supply_chain,
            capacity_rules,
            routing_hop,
            cluster_access,
            edge_rules,
        )
        for name, fn in vars(module).items()
        if inspect.isfunction(fn) and fn.__module__ == module.__name__ and not name.startswith("_")
    }
    assert public == registered


def test_every_rule_is_mandatory_and_says_so() -> None:
    for policy in rules.all_policies():
        assert policy.enforcement_level is EnforcementLevel.MANDATORY, policy.name
        assert policy.description.startswith("Mandatory."), policy.name


def test_policy_pack_main_registers_all_policies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs policies/__main__.py as the CLI does, with PolicyPack (which starts a gRPC server) replaced."""
    captured: dict[str, Any] = {}
    monkeypatch.setattr(pulumi_policy, "PolicyPack", lambda **kwargs: captured.update(kwargs))

    def forget_the_pack() -> None:
        for name in [n for n in sys.modules if n == "rules" or n.startswith("rules.")]:
            sys.modules.pop(name)

    forget_the_pack()
    try:
        runpy.run_path(str(POLICY_DIR), run_name="__main__")
    finally:
        forget_the_pack()
    assert captured["name"] == "minimax-vllm-guardrails"
    assert captured["enforcement_level"] is EnforcementLevel.MANDATORY
    assert [p.name for p in captured["policies"]] == rules.all_rule_names()


def test_policy_pack_project_file_runs_python_in_its_own_virtualenv() -> None:
    import yaml

    project = yaml.safe_load((POLICY_DIR / "PulumiPolicy.yaml").read_text())
    assert project["runtime"]["name"] == "python"
    assert project["runtime"]["options"]["virtualenv"]
    requirements = (POLICY_DIR / "requirements.txt").read_text()
    dev_pin = next(
        line
        for line in (POLICY_DIR.parent / "requirements-dev.txt").read_text().splitlines()
        if line.startswith("pulumi-policy==")
    )
    assert dev_pin in requirements.splitlines()


def test_resource_policy_reports_through_the_engine_wrapper() -> None:
    """The wrapper hands messages to report_violation, with props as the engine's unknown-checking proxy."""
    policy = next(p for p in rules.all_policies() if p.name == "launch-template-imdsv2")
    resource = _with(
        props(LAUNCH_TEMPLATE, name_part="gpu-lt"), lambda p: p["metadataOptions"].update(httpTokens="optional")
    )
    reported: list[str] = []
    args = ResourceValidationArgs(LAUNCH_TEMPLATE, unknown_checking_proxy(resource), "urn:lt", "lt", None, None)
    policy.validate(args, lambda message, urn=None: reported.append(message))
    assert reported == ["launch template metadataOptions.httpTokens is 'optional', not \"required\" (IMDSv2)"]


def test_stack_policy_reports_through_the_engine_wrapper() -> None:
    policy = next(p for p in rules.all_policies() if p.name == "public-endpoint-requires-api-key")
    resources = [
        PolicyResource(t, unknown_checking_proxy(p), f"urn:{i}", str(i), None, None, None, [], {})
        for i, (t, p) in enumerate(_stack(_open_service(["0.0.0.0/0"]), _deployment_without_api_key()))
    ]
    reported: list[str] = []
    policy.validate(StackValidationArgs(resources), lambda message, urn=None: reported.append(message))
    assert len(reported) == 1 and "VLLM_API_KEY" in reported[0]


@pytest.mark.parametrize("stack", STACKS)
def test_rules_read_engine_proxies_and_ignore_unrelated_unknowns(stack: str) -> None:
    """During preview, ids and ARNs are unknown; rules that do not judge them must still run."""
    for r in rendered(stack).resources:
        resource = copy.deepcopy(r.inputs)
        if r.type == CLUSTER:
            resource["roleArn"] = UNKNOWN_STRING_VALUE
            resource["vpcConfig"]["subnetIds"] = [UNKNOWN_STRING_VALUE]
            resource["encryptionConfig"]["provider"]["keyArn"] = UNKNOWN_STRING_VALUE
        for rule in rules.RESOURCE_RULES:
            assert check(rule.name, r.type, unknown_checking_proxy(resource)) == [], (r.name, rule.name)


def test_gpu_taint_matches_the_node_group() -> None:
    """The pack cannot import the program, so it repeats the taint; this keeps the copies equal."""
    assert common.GPU_TAINT == {
        "key": gpu_pool.TAINT_KEY,
        "value": gpu_pool.TAINT_VALUE,
        "effect": gpu_pool.TAINT_EFFECT,
    }
    assert common.GPU_RESOURCE == gpu_pool.TAINT_KEY


# ------------------------------------------------------------ the issue's examples and the new stack rules


@pytest.mark.parametrize(
    ("type_token", "make", "rejected_by"),
    [
        (LAUNCH_TEMPLATE, _hop_limit_2, {"launch-template-imds-hop-limit"}),
        (
            DAEMONSET,
            _lookalike_privileged_pod,
            {"no-privileged-pods", "hostpath-only-model-cache", "no-token-automount"},
        ),
        (DEPLOYMENT, _sys_admin_host_root, {"hostpath-only-model-cache", "restricted-security-context"}),
    ],
    ids=["hop-limit-2", "privileged-hostpid-lookalike-image", "sys-admin-hostpath-root"],
)
def test_the_pack_rejects_the_issue_examples(
    type_token: str, make: Callable[[], dict[str, Any]], rejected_by: set
) -> None:
    resource = make()
    rejecting = {rule.name for rule in rules.RESOURCE_RULES if check(rule.name, type_token, resource)}
    assert rejected_by <= rejecting


NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"


def _stack_resources(stack: str = "prod-8gpu") -> list[tuple[str, dict[str, Any]]]:
    return [(r.type, copy.deepcopy(r.inputs)) for r in rendered(stack).resources]


def test_network_policy_rule_rejects_an_unselected_workload() -> None:
    without = [(t, p) for t, p in _stack_resources() if t != NETPOL]
    messages = hardening.network_policy_selects_workloads(without)
    assert sorted(messages) == [
        "DaemonSet minimax-vllm/stage-weights is selected by no NetworkPolicy in namespace minimax-vllm",
        "Deployment minimax-vllm/vllm is selected by no NetworkPolicy in namespace minimax-vllm",
        f"Job minimax-vllm/{weight_mirror.job_name('MiniMaxAI/MiniMax-M2.5', PROD_REVISION)} is selected by no"
        " NetworkPolicy in namespace minimax-vllm",
    ]
    elsewhere = [(t, p) for t, p in without] + [
        (NETPOL, {"metadata": {"namespace": "other"}, "spec": {"podSelector": {}}}),
        (NETPOL, {"metadata": {"namespace": "minimax-vllm"}, "spec": {"podSelector": {"matchLabels": {"app": "x"}}}}),
    ]
    assert hardening.network_policy_selects_workloads(elsewhere)


def test_network_policy_rule_accepts_a_selecting_policy() -> None:
    assert hardening.network_policy_selects_workloads(_stack_resources()) == []
    only_deny = [(t, p) for t, p in _stack_resources() if t != NETPOL] + [
        (NETPOL, {"metadata": {"namespace": "minimax-vllm"}, "spec": {"podSelector": {}}})
    ]
    assert hardening.network_policy_selects_workloads(only_deny) == []


def _serving_ingress(resources: list, ingress: list[dict[str, Any]]) -> list:
    for t, p in resources:
        if t == NETPOL and p["metadata"]["name"] == "vllm":
            p["spec"]["ingress"] = ingress
    return resources


@pytest.mark.parametrize("stack", STACKS)
def test_vllm_port_rule_rejects_the_vpc_a_node_subnet_and_an_open_rule(stack: str) -> None:
    resources = _stack_resources(stack)
    assert rules.vllm_port_admits_no_pod_address(resources) == []
    vpc = next(p["cidrBlock"] for t, p in resources if t == "aws:ec2/vpc:Vpc")
    private = next(
        p["cidrBlock"] for t, p in resources if t == "aws:ec2/subnet:Subnet" and "-private-" in p["tags"]["Name"]
    )
    port = [{"protocol": "TCP", "port": 8000}]
    for ingress, says in (
        ([{"from": [{"ipBlock": {"cidr": vpc}}], "ports": port}], f"the whole VPC {vpc}"),  # the old policy
        ([{"from": [{"ipBlock": {"cidr": private}}], "ports": port}], f"holds subnet {private}"),
        ([{"ports": port}], "open to every source"),
    ):
        messages = rules.vllm_port_admits_no_pod_address(_serving_ingress(_stack_resources(stack), ingress))
        assert messages and all("NetworkPolicy minimax-vllm/vllm" in m for m in messages)
        assert any(says in m for m in messages), messages
    # Excepting every node subnet leaves only the load balancer's: accepted.
    nodes = [p["cidrBlock"] for t, p in resources if t == "aws:ec2/subnet:Subnet" and "-private-" in p["tags"]["Name"]]
    fenced = [{"from": [{"ipBlock": {"cidr": vpc, "except": nodes}}], "ports": port}]
    assert [
        m for m in rules.vllm_port_admits_no_pod_address(_serving_ingress(resources, fenced)) if "holds subnet" in m
    ] == []


def _with_args(resources: list, replace: Callable[[list[str]], list[str]]) -> list:
    for t, p in resources:
        if t == DEPLOYMENT:
            vllm_container(p)["args"] = replace(vllm_container(p)["args"])
    return resources


def _drop_revision(args: list[str]) -> list[str]:
    i = args.index("--revision")
    return args[:i] + args[i + 2 :]


@pytest.mark.parametrize(
    "replace",
    [_drop_revision, lambda a: [x if not x.startswith(("0", "5")) or len(x) != 40 else "main" for x in a]],
    ids=["no-revision", "branch"],
)
def test_revision_rule_rejects_remote_code_unpinned_in_prod(replace: Callable) -> None:
    messages = supply_chain.pinned_revision_with_remote_code(_with_args(_stack_resources("prod-8gpu"), replace))
    assert messages and "--trust-remote-code" in messages[0]


def test_revision_rule_accepts_pinned_prod_and_non_prod_stacks() -> None:
    assert supply_chain.pinned_revision_with_remote_code(_stack_resources("prod-8gpu")) == []
    assert supply_chain.pinned_revision_with_remote_code(_stack_resources("dev")) == []
    no_remote_code = _with_args(
        _stack_resources("prod-8gpu"), lambda a: [x for x in _drop_revision(a) if x != "--trust-remote-code"]
    )
    assert supply_chain.pinned_revision_with_remote_code(no_remote_code) == []


def test_model_cache_path_matches_the_node_pool() -> None:
    assert common.MODEL_CACHE_HOST_PATH == gpu_pool.MODEL_CACHE_HOST_PATH


def test_the_pack_names_the_weight_stager_as_the_program_does() -> None:
    from components.weights import staging

    assert staging.LABELS[routing_hop.NAME_LABEL] == routing_hop.STAGER_NAME
