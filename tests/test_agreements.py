"""Values that two components must agree on, tested together: each test fails when one side
changes alone (a port, a pin and its policy file, a controller value and the stack it runs in).

Each reads the rendered stack (what AWS and the cluster receive) and derives the expected value
from the other side, never from today's literal.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

import pytest

from components.aws import launch_template as node_template
from components.facts import catalog, timeline, versions
from components.kubernetes import load_balancer_controller, network_policy
from components.platform import config, settings_rules
from components.serving import capacity_tables, endpoint, vllm_service, workload
from components.settings import aws as aws_config
from components.settings.stack import SettingsError
from ops import preflight, report
from ops.offline.engine import Rendering, render
from tests import hops

STACKS = ("dev", "staging", "prod-4gpu", "prod-8gpu")
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
RELEASE = "kubernetes:helm.sh/v3:Release"
VPC = "aws:ec2/vpc:Vpc"
SUBNET = "aws:ec2/subnet:Subnet"
POLICY = "aws:iam/policy:Policy"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
ACCESS_ENTRY = "aws:eks/accessEntry:AccessEntry"
K8S_PROVIDER = "pulumi:providers:kubernetes"
CONTROLLER_CHART = versions.AWS_LOAD_BALANCER_CONTROLLER_CHART[1]
ROLE = "arn:aws:iam::123456789012:role/deployer"


def _freeze(overrides: dict[str, Any] | None) -> str:
    return json.dumps(overrides or {}, sort_keys=True)


@functools.cache
def _rendered(stack: str, frozen: str) -> Rendering:
    return render(stack, json.loads(frozen) or None)


def rendered(stack: str, overrides: dict[str, Any] | None = None) -> Rendering:
    return _rendered(stack, _freeze(overrides))


def pod(r: Rendering) -> dict:
    return r.vllm_deployment().inputs["spec"]["template"]["spec"]


def vllm_container(r: Rendering) -> dict:
    (c,) = [c for c in pod(r)["containers"] if c["name"] == "vllm"]
    return c


def controller(r: Rendering) -> Any:
    (found,) = [x for x in r.of_type(RELEASE) if x.inputs["chart"] == CONTROLLER_CHART]
    return found


# --- the port vLLM listens on ------------------------------------------------------------------


def listening_port(container: dict) -> int:
    argv = [*container["command"], *container["args"]]
    return int(argv[argv.index("--port") + 1])


def resolve(port: int | str, container: dict) -> int:
    """A port as Kubernetes resolves it against the container: a number, or a named container port."""
    if isinstance(port, int):
        return port
    (found,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return found


@pytest.mark.parametrize("stack", STACKS)
def test_the_port_vllm_listens_on_is_the_port_every_probe_the_service_and_the_ingress_reach(stack):
    r = rendered(stack)
    vllm = vllm_container(r)
    port = listening_port(vllm)
    assert [p["containerPort"] for p in vllm["ports"]] == [port]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert resolve(vllm[probe]["httpGet"]["port"], vllm) == port, probe
    # The hop the ALB takes: the Ingress's Service, to the port its pods listen on (vLLM's, or the
    # router's `--port`, whose discovery then dials vLLM's port).
    front = hops.container(hops.front(r))
    front_port = port if front is vllm else int(hops.flag(front["args"], "--port"))
    assert resolve(front["readinessProbe"]["httpGet"]["port"], front) == front_port
    svc = hops.front_service(r).inputs
    (svc_port,) = svc["spec"]["ports"]
    assert resolve(svc_port["targetPort"], front) == front_port
    ingress = r.one(INGRESS).inputs["spec"]
    for rule in ingress["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == svc["metadata"]["name"]
            assert backend["port"] in ({"name": svc_port["name"]}, {"number": svc_port["port"]})
    if front is not vllm:
        assert int(hops.flag(front["args"], "--service-discovery-port")) == port
    # The NetworkPolicies admit the load balancer (or the router) and the scraper on those same ports.
    (serving,) = [p for p in r.of_type(NETPOL) if p.inputs["metadata"]["name"] == workload.APP]
    assert {p["port"] for rule in serving.inputs["spec"]["ingress"] for p in rule["ports"]} == {port}
    alb_rule = hops.policy_for(r, hops.front(r))["spec"]["ingress"][0]
    assert [p["port"] for p in alb_rule["ports"]] == [front_port]


def test_the_container_port_follows_the_argv_when_the_listening_port_changes():
    serving = config.from_stack_file("dev").serving
    argv = ["vllm", "serve", "m", "--port", "8123"]
    assert workload.listen_port(argv) == 8123
    ports = workload.deployment(serving, config.from_stack_file("dev").gpu_nodes.instance)
    container = ports["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == listening_port(container)


# --- the load balancer controller: chart pin, IAM policy, region and VPC ------------------------


def test_the_iam_policy_file_is_the_one_published_for_the_pinned_chart_and_the_one_used():
    version = versions.AWS_LOAD_BALANCER_CONTROLLER_CHART[2]
    expected = load_balancer_controller.DATA / f"aws-load-balancer-controller-v{version}-iam-policy.json"
    assert expected.is_file(), f"no IAM policy for the pinned controller {version}: add {expected.name}"
    assert load_balancer_controller.IAM_POLICY_FILE == expected
    # No policy file of another release lies around to be picked by mistake.
    kept = sorted(load_balancer_controller.DATA.glob("aws-load-balancer-controller-v*-iam-policy.json"))
    assert kept == [expected]
    document = json.loads(expected.read_text())
    # The controller's policy, as rendered, is exactly that file with its security-group
    # statements held to the stack's VPC (tests/test_aws_scoping.py checks the scoping).
    (vpc,) = rendered("dev").of_type("aws:ec2/vpc:Vpc")
    scoped = load_balancer_controller.vpc_scoped(document, "aws", "us-east-2", "123456789012", vpc.id)
    used = [p for p in rendered("dev").of_type(POLICY) if json.loads(p.inputs["policy"]) == scoped]
    assert len(used) == 1


def test_a_chart_bump_without_its_policy_file_names_the_missing_file():
    missing = load_balancer_controller.iam_policy_file("99.0.0")
    assert missing.name == "aws-load-balancer-controller-v99.0.0-iam-policy.json" and not missing.exists()


@pytest.mark.parametrize("stack", STACKS)
def test_the_controller_is_told_the_stacks_region_and_vpc_because_nodes_hide_instance_metadata(stack):
    # With an IMDS hop limit of 1 a pod cannot read the instance metadata, so the controller
    # cannot discover its region or VPC and fails to start (aws-load-balancer-controller #2231, #3155).
    r = rendered(stack)
    limits = {t.inputs["metadataOptions"]["httpPutResponseHopLimit"] for t in r.of_type(LAUNCH_TEMPLATE)}
    assert limits == {node_template.IMDS_HOP_LIMIT} == {1}
    values = controller(r).inputs["values"]
    assert values["region"] == config.from_stack_file(stack).region == r.outputs["region"]
    assert values["vpcId"] == r.outputs["vpcId"] == r.one(VPC).id


def test_the_controller_gets_an_existing_vpcs_id():
    private = [f"subnet-0{i}{i}{i}aaaabbbbcccc" for i in range(1, 4)]
    existing = {"existingVpcId": "vpc-0123456789abcdef0", "publicSubnetIds": ["subnet-0f0f0f0f0f0f0f0f0"]}
    r = rendered("staging", {"network": {**existing, "privateSubnetIds": private}})
    assert controller(r).inputs["values"]["vpcId"] == "vpc-0123456789abcdef0"


@pytest.mark.parametrize("stack", STACKS)
def test_the_ingress_names_the_class_the_controller_creates(stack):
    r = rendered(stack)
    values = controller(r).inputs["values"]
    assert values["createIngressClassResource"] is True
    assert r.one(INGRESS).inputs["spec"]["ingressClassName"] == values["ingressClass"]


# --- the VPC ------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_the_vpc_resolves_and_names_hosts_as_eks_nodes_and_a_private_api_endpoint_need(stack):
    vpc = rendered(stack).one(VPC).inputs
    assert vpc["enableDnsSupport"] is True and vpc["enableDnsHostnames"] is True


# --- one node per replica ----------------------------------------------------------------------

PROD_4GPU = config.split_stack_config(config.read_stack_file("prod-4gpu"))[0]  # two tp4 replicas, one p5
SPREAD = {
    "serving": {**PROD_4GPU["serving"], "spreadAcrossNodes": True},
    "gpuNodes": {**PROD_4GPU["gpuNodes"], "minSize": 2, "desiredSize": 2, "maxSize": 2},
}


def hostname_spread(r: Rendering) -> dict:
    (found,) = [c for c in pod(r)["topologySpreadConstraints"] if c["topologyKey"] == "kubernetes.io/hostname"]
    return found


def test_with_spread_across_nodes_the_scheduler_must_give_each_replica_its_own_node():
    s = config.parse({**PROD_4GPU, **SPREAD}, "prod-4gpu", "us-east-2")
    assert s.replicas_per_node == 1  # what settings and the node count assume
    spread = hostname_spread(rendered("prod-4gpu", SPREAD))
    assert spread["whenUnsatisfiable"] == "DoNotSchedule" and spread["maxSkew"] == 1
    assert spread["labelSelector"]["matchLabels"] == workload.LABELS
    # Capacity planning counts the same nodes: two replicas need two nodes, one is refused.
    crowded = {**SPREAD, "gpuNodes": {**SPREAD["gpuNodes"], "minSize": 1, "desiredSize": 1}}
    raw = {**PROD_4GPU, **crowded}
    with pytest.raises(SettingsError, match="2 p5.48xlarge node"):
        config.parse(raw, "prod-4gpu", "us-east-2")
    assert "; 1 replica(s) per p5.48xlarge" in "\n".join(capacity_tables.table_for(s))


def test_without_spread_two_replicas_may_share_a_p5_so_the_spread_is_soft():
    s = config.from_stack_file("prod-4gpu")
    assert not s.serving.spread_across_nodes and s.replicas_per_node == 2
    assert settings_rules.check(s) == []
    assert hostname_spread(rendered("prod-4gpu"))["whenUnsatisfiable"] == "ScheduleAnyway"


# --- client addresses: the ALB proxies ----------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_the_pods_admit_the_albs_own_subnets_because_it_proxies_and_client_ranges_are_the_albs(stack):
    r, s = rendered(stack), config.from_stack_file(stack)
    annotations = r.one(INGRESS).inputs["metadata"]["annotations"]
    # An ALB with IP targets: it ends the client's connection and opens its own from its nodes,
    # whose addresses lie in the subnets it is placed in (client addresses travel in
    # X-Forwarded-For). Client IP preservation is an NLB target-group attribute that ALB target
    # groups do not have.
    assert annotations[f"{endpoint.ANNOTATION}/target-type"] == "ip"
    assert "preserve_client_ip" not in annotations[f"{endpoint.ANNOTATION}/target-group-attributes"]
    assert all(x.inputs["spec"]["type"] == "ClusterIP" for x in r.of_type(SERVICE))
    # The ALB is placed in named subnets, whatever its scheme, and the pods admit exactly those.
    subnets = {x.id: x.inputs["cidrBlock"] for x in r.of_type(SUBNET)}
    placed = annotations[endpoint.SUBNETS_ANNOTATION].split(",")
    lb_rule = hops.policy_for(r, hops.front(r))["spec"]["ingress"][0]
    assert sorted(b["ipBlock"]["cidr"] for b in lb_rule["from"]) == sorted(subnets[i] for i in placed)
    # (The control-plane webhook ports in monitoring and keda admit any address: their own
    # policies and tests/test_system_network_policies.py say why.)
    for p in r.of_type(NETPOL):
        if p.inputs["metadata"].get("namespace") != workload.NAMESPACE:
            continue
        assert r.one(VPC).inputs["cidrBlock"] not in json.dumps(p.inputs["spec"].get("ingress", []))
        assert network_policy.WORLD not in json.dumps(p.inputs["spec"].get("ingress", []))
    # So the clients are limited on the ALB, exactly to endpoint.sourceRanges.
    inbound = annotations.get(f"{endpoint.ANNOTATION}/inbound-cidrs")
    assert (inbound.split(",") if inbound else []) == list(s.endpoint.source_ranges)


def test_every_client_network_reaches_the_alb_and_only_through_it():
    ranges = ["52.0.0.0/16", "34.64.0.0/16"]
    r = rendered("prod-8gpu", {"endpoint": {"scheme": "internet-facing", "sourceRanges": ranges}})
    annotations = r.one(INGRESS).inputs["metadata"]["annotations"]
    assert annotations[f"{endpoint.ANNOTATION}/inbound-cidrs"].split(",") == ranges
    (serving,) = [p for p in r.of_type(NETPOL) if p.inputs["metadata"]["name"] == workload.APP]
    admitted = {
        b["ipBlock"]["cidr"] for rule in serving.inputs["spec"]["ingress"] for b in rule["from"] if "ipBlock" in b
    }
    assert admitted.isdisjoint(ranges)  # clients never reach the pods directly


# --- the Deployment's timeouts -----------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_pulumi_waits_on_the_deployment_exactly_as_long_as_the_cold_start_timeline_says(stack):
    timeouts = rendered(stack).vllm_deployment().options["customTimeouts"]
    s = config.from_stack_file(stack)
    weights_gb, source = s.serving.model_facts.weights_gb, s.weights.source
    t = timeline.timers(s.serving.replicas, weights_gb, source=source)
    expected = {k: f"{math.ceil(getattr(t, f'{k}_timeout') / 60)}m" for k in ("create", "update", "delete")}
    assert timeouts == expected  # missing timeouts ({}) fail here, not only wrong ones
    assert int(timeouts["create"][:-1]) * 60 >= timeline.new_node(weights_gb, source=source).total


def test_the_rollout_timeouts_are_the_timelines():
    t = timeline.timers(2, catalog.MODEL_CATALOG[catalog.MODELS[0]].weights_gb)
    ct = vllm_service.rollout_timeouts(t)
    assert (ct.create, ct.update, ct.delete) == tuple(
        f"{math.ceil(v / 60)}m" for v in (t.create_timeout, t.update_timeout, t.delete_timeout)
    )


# --- the kubeconfig acts as the stack's AWS provider -------------------------------------------


def exec_block(kubeconfig: str) -> dict:
    (user,) = json.loads(kubeconfig)["users"]
    return user["user"]["exec"]


def option(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def test_the_kubeconfig_uses_the_stacks_aws_profile_and_assumed_role():
    overrides = {"aws:profile": "ml-deploy", "aws:assumeRoles": [{"roleArn": ROLE}]}
    r = rendered("dev", overrides)
    for kubeconfig in (r.outputs["kubeconfig"], r.one(K8S_PROVIDER).inputs["kubeconfig"]):
        block = exec_block(kubeconfig)
        assert block["command"] == "aws" and "get-token" in block["args"]
        assert option(block["args"], "--profile") == "ml-deploy"
        assert option(block["args"], "--role-arn") == ROLE
        assert option(block["args"], "--region") == r.outputs["region"]
    # The role the kubeconfig assumes is the principal that holds the cluster's admin access entry.
    principals = {e.inputs["principalArn"] for e in r.of_type(ACCESS_ENTRY)}
    assert ROLE in principals


def test_without_a_profile_or_role_the_kubeconfig_uses_the_ambient_credentials_as_the_provider_does():
    args = exec_block(rendered("dev").outputs["kubeconfig"])["args"]
    assert "--profile" not in args and "--role-arn" not in args
    assert args[args.index("eks") :][:2] == ["eks", "get-token"]


def test_the_ops_commands_read_the_same_identity_from_the_stack_file(monkeypatch):
    values = {
        **config.read_stack_file("dev"),
        "aws:profile": "ml-deploy",
        "aws:assumeRoles": [{"roleArn": ROLE}],
    }
    monkeypatch.setattr(config, "read_stack_file", lambda stack, stacks_dir=None: values)
    s = config.from_stack_file("dev")
    assert (s.aws_profile, s.aws_role_arn) == ("ml-deploy", ROLE)


def test_a_role_chain_acts_as_its_last_role():
    first = "arn:aws:iam::111111111111:role/hop"
    who, problems = aws_config.identity({"assumeRoles": [{"roleArn": first}, {"roleArn": ROLE}]})
    assert problems == [] and who.role_arn == ROLE


@pytest.mark.parametrize(
    ("aws", "wording"),
    [
        ({"assumeRole": {"roleArn": ROLE}}, "pulumi config rm aws:assumeRole"),
        ({"assumeRoles": [{"roleArn": "deployer"}]}, "aws:assumeRoles[0].roleArn"),
        ({"assumeRoles": {"roleArn": ROLE}}, "must be a list"),
    ],
)
def test_aws_identity_config_that_the_provider_would_not_use_as_meant_is_refused_with_the_fix(aws, wording):
    raw = config.split_stack_config(config.read_stack_file("dev"))[0]
    with pytest.raises(SettingsError) as err:
        config.parse(raw, "dev", "us-east-2", aws)
    assert any(wording in p for p in err.value.problems)


def test_preflight_requires_the_aws_cli_the_kubeconfig_runs():
    assert preflight.aws_cli(lambda _: "/usr/local/bin/aws").status == "PASS"
    row = preflight.aws_cli(lambda _: None)
    assert row.failed and "get-token" in row.detail and "aws --version" in row.fix


def test_preflight_main_runs_the_aws_cli_check(monkeypatch):
    from ops import awsclients

    monkeypatch.setattr(
        awsclients, "clients", lambda region, *services, session=None: tuple(object() for _ in services)
    )
    monkeypatch.setattr(preflight, "run", lambda *a, **k: [])
    monkeypatch.setattr(
        preflight.preflight_images,
        "check",
        lambda settings, *a: [
            report.passed(f"{preflight.preflight_images.ROW}: {image}", "stubbed")
            for image, _ in preflight.preflight_images.wanted(settings)
        ],
    )
    s = config.from_stack_file("dev")
    _, checks = preflight.main(
        s, sleep=lambda _: None, resolve=lambda image: "sha256:" + "0" * 64, which=lambda _: None
    )
    assert [c.name for c in checks if c.failed] == ["aws CLI on PATH"]
    assert "image in-region: vllm-router" in [c.name for c in checks]  # dev runs the router: its image is checked


# --- the pending endpoint ----------------------------------------------------------------------


def test_the_pending_endpoint_advice_reruns_the_program():
    text = vllm_service._url(None, "https", 443)
    assert text.startswith("pending")
    # `pulumi refresh` alone re-reads the Ingress but never re-runs the program, so it cannot
    # change an output computed in an apply.
    assert "pulumi up --refresh" in text
    assert "`pulumi refresh`" not in text and "`pulumi refresh --run-program`" in text


def test_the_readme_gives_the_same_pending_advice():
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    paragraph = readme.split("`pulumi up` does not wait for the ALB's address")[1].split("Outputs:")[0]
    assert "pulumi up --refresh" in paragraph and "--run-program" in paragraph
    assert "run `pulumi refresh` once" not in readme
