"""The EKS best-practices baseline: pod security, network policy, node roles and trust,
encrypted logs, flow logs, and the supply-chain rules, on every rendered stack."""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from test_policies import STACKS, rendered

from components.aws import iam_trust
from components.facts import versions
from components.kubernetes import network_policy, pod_security
from components.platform import config, deploy_gate
from components.platform.config import from_stack_file, parse
from components.serving import supply_chain, workload
from components.settings.stack import SettingsError
from components.weights import staging as weight_staging
from ops import preflight, registry
from ops.offline.mocks import ACCOUNT_ID
from tests import hops

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
ROLE = "aws:iam/role:Role"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
ADDON = "aws:eks/addon:Addon"
SUBNET = "aws:ec2/subnet:Subnet"
SHA = "0123456789abcdef0123456789abcdef01234567"
DIGEST = "sha256:" + "ab" * 32


def pod(stack: str) -> dict:
    return rendered(stack).vllm_deployment().inputs["spec"]["template"]["spec"]


# ------------------------------------------------------------ the pod


@pytest.mark.parametrize("stack", STACKS)
def test_every_container_uses_the_one_security_context(stack: str) -> None:
    spec = pod(stack)
    containers = [*spec.get("initContainers", []), *spec["containers"]]
    assert all(c["securityContext"] == pod_security.container_security_context() for c in containers)
    context = pod_security.container_security_context()
    assert context["capabilities"] == {"drop": ["ALL"]} and context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False and context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False


@pytest.mark.parametrize("stack", STACKS)
def test_everything_vllm_writes_lands_on_a_writable_volume(stack: str) -> None:
    """With a read-only root filesystem, each cache directory must lie under a mounted volume."""
    spec = pod(stack)
    (container,) = spec["containers"]
    mounts = [m["mountPath"] for m in container["volumeMounts"]]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert {m["name"] for m in container["volumeMounts"]} <= set(volumes)
    env = {e["name"]: e.get("value") for e in container["env"]}
    for name in pod_security.cache_env(workload.CACHE_MOUNT):
        assert any(env[name] == m or env[name].startswith(m + "/") for m in mounts), (name, env[name])
    assert {"HOME", "TMPDIR", "TRITON_CACHE_DIR", "TORCHINDUCTOR_CACHE_DIR", "VLLM_CACHE_ROOT"} <= set(env)
    assert all("sizeLimit" in volumes[v.name]["emptyDir"] for v in pod_security.SCRATCH_VOLUMES)


# Which installed source file reads each variable the pod sets (None: read by a tool outside
# Python, the CUDA driver, or a standard POSIX/XDG variable).
READERS = {
    "VLLM_CACHE_ROOT": "vllm/envs.py",
    "VLLM_CONFIG_ROOT": "vllm/envs.py",
    "HF_HOME": "huggingface_hub/constants.py",
    "TRITON_CACHE_DIR": "triton/knobs.py",
    "TORCHINDUCTOR_CACHE_DIR": "torch/_inductor/runtime/cache_dir_utils.py",
    "FLASHINFER_WORKSPACE_BASE": "flashinfer/jit/env.py",
    "NUMBA_CACHE_DIR": "numba/core/config.py",
    "CUDA_CACHE_PATH": None,
    "HOME": None,
    "TMPDIR": None,
    "XDG_CACHE_HOME": None,
    "XDG_CONFIG_HOME": None,
}


@pytest.mark.parametrize("name", sorted(READERS))
def test_each_cache_variable_is_read_by_the_installed_library(name: str) -> None:
    """A library that renames its variable would write to the read-only root filesystem: fail here."""
    assert set(READERS) == set(pod_security.cache_env(workload.CACHE_MOUNT))
    reader = READERS[name]
    if reader is None:
        return
    package = reader.split("/", 1)[0]
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        pytest.skip(f"{package} is not installed here (the image ships it)")
    source = Path(spec.origin).parent / reader.split("/", 1)[1]
    assert f'"{name}"' in source.read_text(), f"{source} no longer reads {name}"


# ------------------------------------------------------------ network policy


@pytest.mark.parametrize("stack", STACKS)
def test_namespace_is_default_deny_vllm_sends_nothing_and_only_the_stager_fetches(stack: str) -> None:
    settings = from_stack_file(stack)
    r = rendered(stack)
    policies = {p.inputs["metadata"]["name"]: p.inputs["spec"] for p in r.of_type(hops.NETPOL)}
    assert policies[network_policy.DEFAULT_DENY] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    serving = policies[workload.APP]
    assert serving["podSelector"] == {"matchLabels": workload.LABELS}
    # The ALB proxies: the pods it targets (vLLM's, or the router's in front of it) see its nodes'
    # addresses, in the (public) subnets it is placed in, and only those.
    front = hops.policy_for(r, hops.front(r))["spec"]
    sources = {b["ipBlock"]["cidr"] for b in front["ingress"][0]["from"]}
    public = {s.inputs["cidrBlock"] for s in r.of_type(SUBNET) if "-public-" in s.inputs["tags"]["Name"]}
    assert sources == public and settings.network.vpc_cidr not in sources
    if hops.routed(r, r.vllm_deployment()):
        # Behind the router, vLLM's requests come from the router's pods alone: no address at all.
        assert serving["ingress"][0]["from"] == [{"podSelector": {"matchLabels": hops.labels(hops.front(r))}}]
    else:
        assert front == serving
    ports = {(p["protocol"], p["port"]) for rule in serving["ingress"] for p in rule["ports"]}
    assert ports == {("TCP", 8000)}
    (scraper,) = serving["ingress"][1]["from"]
    assert scraper["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}
    assert scraper["podSelector"]["matchLabels"] == {"operator.prometheus.io/name": "kps-prometheus"}
    # vLLM runs the model repository's code and needs no network once the weights are staged.
    assert serving["egress"] == [] and "Egress" in serving["policyTypes"]
    stager = policies[weight_staging.NAME]
    assert stager["podSelector"] == {"matchLabels": weight_staging.LABELS} and stager["ingress"] == []
    # The shared compile cache: the stager reads its node's vLLM /health, on the serving port only.
    cache = settings.weights.shares_compile_cache
    to_vllm = [r for r in stager["egress"] if any("podSelector" in t and "namespaceSelector" not in t for t in r["to"])]
    admitted = serving["ingress"][2:]
    assert to_vllm == (
        [{"to": [{"podSelector": {"matchLabels": workload.LABELS}}], "ports": [{"protocol": "TCP", "port": 8000}]}]
        if cache
        else []
    )
    assert admitted == (
        [
            {
                "from": [{"podSelector": {"matchLabels": weight_staging.LABELS}}],
                "ports": [{"protocol": "TCP", "port": 8000}],
            }
        ]
        if cache
        else []
    )
    out = {(p["protocol"], p["port"]) for rule in stager["egress"] if rule not in to_vllm for p in rule["ports"]}
    # With the S3 mirror, also the Pod Identity agent's credentials endpoint, and only that address.
    agent = {("TCP", 80)} if settings.weights.source == "s3" else set()
    assert out == {("UDP", 53), ("TCP", 53), ("TCP", 443)} | agent
    to_port_80 = [
        b["ipBlock"]["cidr"] for rule in stager["egress"] if rule["ports"][0]["port"] == 80 for b in rule["to"]
    ]
    assert to_port_80 == (["169.254.170.23/32"] if agent else [])


def test_the_pods_never_admit_the_vpc_because_every_pod_has_a_vpc_address() -> None:
    # Client ranges are enforced on the ALB (inbound-cidrs); admitting them, or the VPC, at the
    # pods would let anything there bypass the load balancer's path list and vLLM's key check.
    policy = network_policy.serving_policy("vllm", "ns", {"a": "b"}, 8000, ["10.60.192.0/19", "10.60.224.0/19"])
    assert [b["ipBlock"]["cidr"] for b in policy["spec"]["ingress"][0]["from"]] == ["10.60.192.0/19", "10.60.224.0/19"]
    with pytest.raises(ValueError, match="subnets are unknown"):
        network_policy.serving_policy("vllm", "ns", {"a": "b"}, 8000, [])


@pytest.mark.parametrize("stack", STACKS)
def test_vpc_cni_enforces_network_policy_and_uses_pod_identity(stack: str) -> None:
    r = rendered(stack)
    (cni,) = [a for a in r.of_type(ADDON) if a.inputs["addonName"] == "vpc-cni"]
    assert json.loads(cni.inputs["configurationValues"]) == {"enableNetworkPolicy": "true"}
    (association,) = cni.inputs["podIdentityAssociations"]
    assert association["serviceAccount"] == "aws-node"
    role = next(x for x in r.of_type(ROLE) if x.outputs.get("arn") == association["roleArn"])
    attached = {
        a.inputs["policyArn"].rsplit("/", 1)[1]
        for a in r.of_type(ATTACHMENT)
        if a.inputs["role"] == role.outputs["name"]
    }
    assert attached == {"AmazonEKS_CNI_Policy"}
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Condition"]["StringEquals"]["aws:RequestTag/kubernetes-service-account"] == "aws-node"


# ------------------------------------------------------------ node roles and trust


def _list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


@pytest.mark.parametrize("stack", STACKS)
def test_system_and_gpu_nodes_have_separate_roles_without_the_cni_policy(stack: str) -> None:
    r = rendered(stack)
    groups = r.of_type("aws:eks/nodeGroup:NodeGroup")
    roles = {g.inputs["nodeRoleArn"] for g in groups}
    assert len(groups) == 2 and len(roles) == 2
    for arn in roles:
        role = next(x for x in r.of_type(ROLE) if x.outputs.get("arn") == arn)
        attached = {
            a.inputs["policyArn"].rsplit("/", 1)[1]
            for a in r.of_type(ATTACHMENT)
            if a.inputs["role"] == role.outputs["name"]
        }
        assert "AmazonEKS_CNI_Policy" not in attached and "AmazonEKSWorkerNodePolicy" in attached
        # AmazonSSMManagedInstanceCore grants ssm:GetParameter(s) on every parameter of the account.
        assert not any("SSM" in p for p in attached), attached
        (inline,) = [
            x for x in r.of_type("aws:iam/rolePolicy:RolePolicy") if x.inputs["role"] in (role.id, role.outputs["name"])
        ]
        # The one inline policy pulls images (tests/test_image_registry.py): nothing but ECR reads.
        actions = {a for st in json.loads(inline.inputs["policy"])["Statement"] for a in _list(st["Action"])}
        assert actions and all(a.startswith("ecr:") for a in actions), actions


@pytest.mark.parametrize("stack", STACKS)
def test_every_service_role_trust_policy_carries_its_supported_conditions(stack: str) -> None:
    s = from_stack_file(stack)
    for role in rendered(stack).of_type(ROLE):
        (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
        service = statement["Principal"]["Service"]
        condition = statement.get("Condition", {})
        if service == "ec2.amazonaws.com":
            assert condition == {}  # EC2 sets neither key (components/aws/iam_trust.py)
        elif service == "pods.eks.amazonaws.com":
            assert condition["StringEquals"]["aws:RequestTag/eks-cluster-arn"].endswith(f":cluster/{s.cluster_name}")
        else:
            assert condition["StringEquals"]["aws:SourceAccount"] == ACCOUNT_ID, service
            assert "aws:SourceArn" in {**condition.get("ArnEquals", {}), **condition.get("ArnLike", {})}, service
    cluster_trust = iam_trust.eks_cluster_role("aws", "us-east-2", ACCOUNT_ID, "c")
    assert json.loads(cluster_trust)["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"] == (
        f"arn:aws:eks:us-east-2:{ACCOUNT_ID}:cluster/c"
    )


# ------------------------------------------------------------ logs


@pytest.mark.parametrize("stack", STACKS)
def test_log_groups_use_the_stack_key_whose_policy_admits_cloudwatch_logs_for_them(stack: str) -> None:
    r = rendered(stack)
    s = from_stack_file(stack)
    # The stack key (the weight mirror's manifest key signs, it encrypts nothing).
    (key,) = [k for k in r.of_type("aws:kms/key:Key") if k.inputs.get("keyUsage") != "SIGN_VERIFY"]
    groups = r.of_type("aws:cloudwatch/logGroup:LogGroup")
    assert groups and all(g.inputs["kmsKeyId"] == key.outputs["arn"] for g in groups)
    statement = next(x for x in json.loads(key.inputs["policy"])["Statement"] if "Service" in x["Principal"])
    assert statement["Principal"]["Service"] == f"logs.{s.region}.amazonaws.com"
    allowed = statement["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"]
    assert sorted(allowed) == sorted(g.outputs["arn"] for g in groups)


@pytest.mark.parametrize("stack", STACKS)
def test_flow_logs_for_prod_stacks_only(stack: str) -> None:
    flow_logs = rendered(stack).of_type("aws:ec2/flowLog:FlowLog")
    prod = from_stack_file(stack).environment == "prod"
    assert len(flow_logs) == (1 if prod else 0)
    if prod:
        assert flow_logs[0].inputs["trafficType"] == "ALL"


def test_security_settings_reject_an_unknown_retention() -> None:
    with pytest.raises(SettingsError) as caught:
        config.parse({"owner": "ml-platform", "security": {"flowLogRetentionDays": 13}}, "test", "us-east-2")
    (problem,) = caught.value.problems
    assert problem.startswith("minimax-vllm:security.flowLogRetentionDays = 13 must be a CloudWatch retention")
    assert "Fix: pulumi config set --path 'security.flowLogRetentionDays' 90" in problem


def test_only_the_prod_stacks_turn_flow_logs_on() -> None:
    on = {stack for stack in STACKS if from_stack_file(stack).security.flow_logs}
    assert on == {stack for stack in STACKS if from_stack_file(stack).environment == "prod"}


# ------------------------------------------------------------ supply chain


def _serving(environment: str, revision: str | None) -> dict:
    serving = {"profile": "tp8-ep", **({"revision": revision} if revision else {})}
    return {"owner": "ml-platform", "environment": environment, "serving": serving}


@pytest.mark.parametrize("revision", [None, "main", "v1.0", SHA[:39]])
def test_prod_refuses_remote_code_from_an_unpinned_revision(revision: str | None) -> None:
    with pytest.raises(SettingsError, match=r"serving.revision = .* must be a 40-hex .* Fix: pulumi config set"):
        parse(_serving("prod", revision), "p", "us-east-2")


@pytest.mark.parametrize(("environment", "revision"), [("prod", SHA), ("dev", None), ("staging", "main")])
def test_pinned_prod_and_other_environments_pass(environment: str, revision: str | None) -> None:
    assert parse(_serving(environment, revision), "p", "us-east-2").serving.revision == revision


@pytest.mark.parametrize(("environment", "revision"), [("staging", "main"), ("dev", None), ("test", "v1.0")])
def test_a_branch_with_remote_code_stops_a_real_deploy_outside_prod_until_acknowledged(
    environment: str, revision: str | None
) -> None:
    settings = parse(_serving(environment, revision), "p", "us-east-2")
    (problem,) = deploy_gate.remote_code_problems(settings)
    assert problem.key == "serving.revision" and "runs code" in problem.rule
    assert "pulumi config set --path 'serving.revision'" in problem.fix
    assert "pulumi config set --path 'serving.allowUnpinnedRemoteCode' true" in problem.fix
    with pytest.raises(SettingsError, match="allowUnpinnedRemoteCode"):
        deploy_gate.stop_unless_ready(settings)
    acknowledged = _serving(environment, revision)
    acknowledged["serving"]["allowUnpinnedRemoteCode"] = True
    assert deploy_gate.remote_code_problems(parse(acknowledged, "p", "us-east-2")) == []
    assert deploy_gate.remote_code_problems(parse(_serving(environment, SHA), "p", "us-east-2")) == []


def test_the_acknowledgement_never_lets_prod_follow_a_branch() -> None:
    prod = _serving("prod", "main")
    prod["serving"]["allowUnpinnedRemoteCode"] = True
    with pytest.raises(SettingsError, match="must be a 40-hex"):
        parse(prod, "p", "us-east-2")


def test_only_dev_follows_a_branch_and_says_so() -> None:
    for stack in STACKS:
        s = from_stack_file(stack)
        assert (s.serving.revision is None) == (stack == "dev") == s.serving.allow_unpinned_remote_code
        assert deploy_gate.remote_code_problems(s) == []


def test_rule_ignores_stacks_without_remote_code() -> None:
    assert supply_chain.remote_code_revision_problems(True, ["vllm", "serve", "m"], "m", None) == []


def test_image_is_pinned_by_digest_once_recorded() -> None:
    image = versions.VLLM_IMAGE
    assert supply_chain.pinned_image(image, {}) == image
    tag = image.partition(":")[2]
    assert supply_chain.pinned_image(image, {tag: DIGEST}) == f"{image}@{DIGEST}"
    assert supply_chain.pinned_image("example.com/other:" + tag, {tag: DIGEST}) == "example.com/other:" + tag


class FakeRegistry(BaseHTTPRequestHandler):
    """A registry that demands a Bearer token, as Docker Hub does."""

    digest = DIGEST
    token = "pull-token"

    def log_message(self, *_: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        if self.path.startswith("/token?") and "scope=repository%3Avllm%2Fvllm-openai%3Apull" in self.path:
            body = json.dumps({"token": self.token}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)

    def do_HEAD(self) -> None:  # noqa: N802
        if self.headers.get("Authorization") != f"Bearer {self.token}":
            self.send_response(401)
            realm = f"http://127.0.0.1:{self.server.server_port}/token"
            self.send_header(
                "WWW-Authenticate",
                f'Bearer realm="{realm}",service="fake",scope="repository:vllm/vllm-openai:pull"',
            )
            self.end_headers()
        elif self.path == f"/v2/vllm/vllm-openai/manifests/v{versions.VLLM_RELEASE}":
            assert "application/vnd.oci.image.index.v1+json" in self.headers["Accept"]
            self.send_response(200)
            self.send_header("Docker-Content-Digest", self.digest)
            self.end_headers()
        else:
            self.send_response(404)
            self.end_headers()


@pytest.fixture
def fake_registry() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), FakeRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_registry_client_follows_the_token_challenge(fake_registry: str) -> None:
    ref = registry.parse(versions.VLLM_IMAGE, registry=fake_registry)
    assert registry.resolve_digest(ref) == DIGEST
    with pytest.raises(registry.RegistryError, match="does not exist"):
        registry.resolve_digest(registry.ImageRef(fake_registry, "vllm/vllm-openai", "v0.0.0"))


def test_registry_client_refuses_plain_http_off_loopback() -> None:
    with pytest.raises(registry.RegistryError, match="HTTPS"):
        registry.resolve_digest(registry.ImageRef("http://registry.example.com", "vllm/vllm-openai", "v1"))


@pytest.fixture
def versions_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "versions.py"
    path.write_text(Path(versions.__file__).read_text())
    monkeypatch.setattr(versions, "VLLM_IMAGE_DIGESTS", {})
    return path


def test_preflight_refuses_a_prod_stack_without_a_recorded_digest(fake_registry: str, versions_copy: Path) -> None:
    resolve = lambda image: registry.resolve_digest(registry.parse(image, registry=fake_registry))  # noqa: E731
    (check,) = preflight.image_digest(from_stack_file("prod-8gpu"), resolve, path=versions_copy)
    assert check.status == "FAIL" and "--record-digest" in check.fix
    (check,) = preflight.image_digest(from_stack_file("dev"), resolve, path=versions_copy)
    assert check.status == "SKIP"


def test_preflight_records_then_checks_the_digest(
    fake_registry: str, versions_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolve = lambda image: registry.resolve_digest(registry.parse(image, registry=fake_registry))  # noqa: E731
    prod = from_stack_file("prod-8gpu")
    (check,) = preflight.image_digest(prod, resolve, record=True, path=versions_copy)
    assert check.status == "PASS"
    assert (
        f'VLLM_IMAGE_DIGESTS: dict[str, str] = {{"v{versions.VLLM_RELEASE}": "{DIGEST}"}}' in versions_copy.read_text()
    )
    (check,) = preflight.image_digest(prod, resolve, path=versions_copy)
    assert check.status == "PASS"
    monkeypatch.setattr(FakeRegistry, "digest", "sha256:" + "cd" * 32)
    (check,) = preflight.image_digest(prod, resolve, path=versions_copy)
    assert check.status == "FAIL" and "re-pushed" in check.detail
