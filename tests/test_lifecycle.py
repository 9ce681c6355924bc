"""The life cycle around the objects: first start, rollout timers, and the order of up and destroy."""

from __future__ import annotations

import dataclasses
import functools
import re

import pytest

from components.facts import catalog, gpu_pool, timeline
from components.platform import config
from components.serving import profiles, workload
from components.weights import staging as weight_staging
from ops.offline import graph_order
from ops.offline.engine import Rendering, render

STACKS = ("dev", "staging", "prod-4gpu", "prod-8gpu")
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
SERVICE = "kubernetes:core/v1:Service"
DAEMONSET = "kubernetes:apps/v1:DaemonSet"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
DEREGISTRATION = "deregistration_delay.timeout_seconds="
DEFAULT_WEIGHTS_GB = catalog.MODEL_CATALOG[catalog.MODELS[0]].weights_gb  # what the docs quote


@functools.cache
def rendered(stack: str) -> Rendering:
    return render(stack)


def pod_spec(r: Rendering) -> dict:
    return r.vllm_deployment().inputs["spec"]["template"]["spec"]


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container["env"]}


def minutes(timeout: str) -> int:
    assert timeout.endswith("m"), timeout
    return int(timeout[:-1]) * 60


def cold_start_alert_threshold(r: Rendering) -> int:
    """The pod age past which VllmColdStartOverBudget fires, read back from the rendered rule."""
    rule = r.one("kubernetes:monitoring.coreos.com/v1:PrometheusRule")
    (expr,) = [
        x["expr"] for g in rule.inputs["spec"]["groups"] for x in g["rules"] if x["alert"] == "VllmColdStartOverBudget"
    ]
    return int(re.search(r"kube_pod_start_time\{[^}]*\}\) > (\d+)\)", expr).group(1))


def rendered_timers(r: Rendering) -> timeline.Timers:
    """The timers as the cluster and Pulumi receive them, read back from the rendering."""
    deployment = r.vllm_deployment()
    spec = deployment.inputs["spec"]
    pod = spec["template"]["spec"]
    vllm = pod["containers"][0]
    timeouts = deployment.options["customTimeouts"]
    annotations = r.one(INGRESS).inputs["metadata"]["annotations"]
    attributes = annotations["alb.ingress.kubernetes.io/target-group-attributes"]
    delay = next(a for a in attributes.split(",") if a.startswith(DEREGISTRATION))
    return timeline.Timers(
        engine_ready_timeout=int(env_of(vllm)["VLLM_ENGINE_READY_TIMEOUT_S"]["value"]),
        startup_probe_period=vllm["startupProbe"]["periodSeconds"],
        startup_probe_failures=vllm["startupProbe"]["failureThreshold"],
        progress_deadline=spec["progressDeadlineSeconds"],
        cold_start_alert=cold_start_alert_threshold(r),
        create_timeout=minutes(timeouts["create"]),
        update_timeout=minutes(timeouts["update"]),
        delete_timeout=minutes(timeouts["delete"]),
        deregistration_delay=int(delay.removeprefix(DEREGISTRATION)),
        pre_stop=vllm["lifecycle"]["preStop"]["sleep"]["seconds"],
        grace=pod["terminationGracePeriodSeconds"],
    )


# --- the timeline and its timers -------------------------------------------------------------


def test_a_new_node_downloads_the_weights_and_a_warm_restart_does_not():
    cold, warm = timeline.new_node(DEFAULT_WEIGHTS_GB), timeline.warm_restart(DEFAULT_WEIGHTS_GB)
    assert cold.seconds(timeline.DOWNLOAD) >= DEFAULT_WEIGHTS_GB * 1000 / 125  # the checkpoint at the assumed 1 Gbit/s
    assert warm.seconds(timeline.DOWNLOAD, timeline.IMAGE_PULL) == 0
    assert 30 * 60 <= cold.total <= 60 * 60 and warm.total < 15 * 60


@pytest.mark.parametrize("replicas", [1, 2, 8])
@pytest.mark.parametrize("weights_gb", sorted({m.weights_gb for m in catalog.MODEL_CATALOG.values()} | {460}))
def test_every_derived_timer_covers_the_phase_it_guards(replicas, weights_gb):
    t = timeline.timers(replicas, weights_gb)
    assert [g for g in timeline.guards(t, replicas, weights_gb) if g.short] == []
    assert t.progress_deadline >= timeline.new_node(weights_gb).total
    assert t.update_timeout >= replicas * timeline.new_node(weights_gb).total


@pytest.mark.parametrize("stack", STACKS)
def test_the_rendered_deployment_carries_exactly_the_derived_timers(stack):
    r, s = rendered(stack), config.from_stack_file(stack)
    weights_gb, source = s.serving.model_facts.weights_gb, s.weights.source
    assert rendered_timers(r) == timeline.timers(s.serving.replicas, weights_gb, source=source)
    assert [
        g for g in timeline.guards(rendered_timers(r), s.serving.replicas, weights_gb, source=source) if g.short
    ] == []


@pytest.mark.parametrize(
    ("timer", "default", "name"),
    [
        ("engine_ready_timeout", 600, "VLLM_ENGINE_READY_TIMEOUT_S"),  # vLLM's default
        ("progress_deadline", 600, "progressDeadlineSeconds"),  # Kubernetes' default
        ("create_timeout", 600, "Pulumi create timeout"),  # Pulumi's default for a Deployment
        ("grace", 30, "terminationGracePeriodSeconds"),  # Kubernetes' default
    ],
)
def test_the_chain_check_fails_on_the_platform_defaults(timer, default, name):
    t = dataclasses.replace(timeline.timers(1, DEFAULT_WEIGHTS_GB), **{timer: default})
    assert name in {g.timer for g in timeline.guards(t, 1, DEFAULT_WEIGHTS_GB) if g.short}


@pytest.mark.parametrize("stack", STACKS)
def test_the_deployment_has_pulumi_custom_timeouts_for_create_update_and_delete(stack):
    timeouts = rendered(stack).vllm_deployment().options["customTimeouts"]
    assert set(timeouts) == {"create", "update", "delete"}
    assert minutes(timeouts["create"]) > 10 * 60  # Pulumi's default would cut a first start


def test_plan_prints_the_timeline_with_its_assumptions(tmp_path, capsys):
    from ops import plan

    assert plan.main("prod-8gpu", str(tmp_path)) == 0
    out = capsys.readouterr().out.split("Cold start")[1]
    for phase in timeline.new_node(DEFAULT_WEIGHTS_GB).phases:
        assert phase.name in out
    assert "VLLM_ENGINE_READY_TIMEOUT_S" in out and "progressDeadlineSeconds" in out
    assert "hub_mb_s" in out and "gp3 baseline throughput" in out


# --- weights staged before vLLM starts ---------------------------------------------------------


def stager_spec(r: Rendering) -> dict:
    (ds,) = [x for x in r.of_type(DAEMONSET) if x.inputs["metadata"]["name"] == weight_staging.NAME]
    return ds.inputs["spec"]["template"]["spec"]


@pytest.mark.parametrize("stack", STACKS)
def test_weights_are_staged_by_the_nodes_stager_into_the_cache_vllm_reads_offline(stack):
    r, s = rendered(stack), config.from_stack_file(stack)
    pod, node = pod_spec(r), stager_spec(r)
    (stage,) = node["containers"]
    (wait,) = pod["initContainers"]
    vllm = pod["containers"][0]
    stage_env, wait_env, vllm_env = env_of(stage), env_of(wait), env_of(vllm)
    # The stager: its own small image; vLLM's wait runs in the vLLM image (that pull overlaps the copy).
    assert stage["image"] != vllm["image"] and "/stage-weights:src-" in stage["image"]
    assert wait["name"] == weight_staging.WAIT_NAME and wait["image"] == vllm["image"]
    fetch = 'hf download "$MODEL" --revision "$REVISION"' if s.weights.source == "hub" else 'mirror_copy.py" stage'
    assert fetch in stage["command"][-1]
    assert stage_env["MODEL"]["value"] == s.serving.model == profiles.vllm_argv(s.serving)[2]
    assert stage_env["HF_HOME"]["value"] == vllm_env["HF_HOME"]["value"]
    # Same marker, same node folder: the stager writes it last, the wait reads it.
    assert stage_env["STAGED_MARKER"] == wait_env["STAGED_MARKER"]
    (node_cache,) = [v for v in node["volumes"] if v["name"] == "cache"]
    (pod_cache,) = [v for v in pod["volumes"] if v["name"] == "cache"]
    assert node_cache == pod_cache and node_cache["hostPath"]["path"] == gpu_pool.MODEL_CACHE_HOST_PATH
    assert next(m for m in stage["volumeMounts"] if m["name"] == "cache")["mountPath"] == workload.CACHE_MOUNT
    assert wait["volumeMounts"] == [{"name": "cache", "mountPath": workload.CACHE_MOUNT, "readOnly": True}]
    assert vllm_env["HF_HUB_OFFLINE"]["value"] == "1"
    assert stage["securityContext"] == wait["securityContext"] == vllm["securityContext"] == workload.security_context()
    assert stage["resources"]["requests"] == stage["resources"]["limits"]
    # On every GPU node, from the moment it joins: the GPU taint tolerated, the GPU pool selected,
    # no GPU requested (so it does not wait for the device plugin).
    assert node["tolerations"] == pod["tolerations"] and node["affinity"] == pod["affinity"]
    assert "nvidia.com/gpu" not in stage["resources"]["requests"]
    # The wait holds nothing: no secret, no AWS identity on the vLLM pod.
    assert all("valueFrom" not in e for e in wait["env"]) and "serviceAccountName" not in pod


def test_a_pinned_revision_is_staged_and_served_alike_and_unpinned_means_main_for_both():
    sha = "0123456789abcdef0123456789abcdef01234567"
    r = render("dev", overrides={"serving": {"profile": "tp4", "maxModelLen": 32768, "revision": sha}})
    pod = pod_spec(r)
    argv = pod["containers"][0]["command"] + pod["containers"][0]["args"]
    staged = env_of(stager_spec(r)["containers"][0])["REVISION"]["value"]
    assert argv[argv.index("--revision") + 1] == staged == env_of(pod["initContainers"][0])["REVISION"]["value"] == sha
    unpinned = rendered("dev")
    assert "--revision" not in pod_spec(unpinned)["containers"][0]["args"]
    assert env_of(stager_spec(unpinned)["containers"][0])["REVISION"]["value"] == "main"


def test_the_hugging_face_token_reaches_the_hub_stager_only_when_set():
    r = render("dev", secrets={"hfToken": "hf_offline_test_token"})
    with_token = env_of(stager_spec(r)["containers"][0])
    assert with_token["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": workload.HF_TOKEN_SECRET,
        "key": workload.HF_TOKEN_KEY,
    }
    without = render("dev", secrets={"hfToken": None})
    assert "HF_TOKEN" not in env_of(stager_spec(without)["containers"][0])


def test_the_hugging_face_hub_release_vllm_requires_has_the_hf_cli():
    from importlib import metadata

    scripts = {e.name for e in metadata.distribution("huggingface_hub").entry_points if e.group == "console_scripts"}
    assert "hf" in scripts
    requirement = next(r for r in metadata.requires("vllm") if r.startswith("huggingface_hub"))
    assert ">=1." in requirement  # every allowed release ships `hf download`


# --- destroy and up order from the graph -------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_everything_the_controller_needs_is_deleted_after_every_load_balancer_object(stack):
    r = rendered(stack)
    assert any(graph_order.carries_lb_finalizer(x) for x in r.resources)
    needs = {x.type for x in graph_order.controller_needs(r.resources)}
    assert {"aws:ec2/route:Route", "aws:eks/addon:Addon", "kubernetes:helm.sh/v3:Release"} <= needs
    assert graph_order.lb_teardown_problems(r.resources) == []


@pytest.mark.parametrize("what", ["nat route", "coredns"])
def test_the_teardown_check_fails_when_a_nat_route_or_coredns_has_no_dependent(what):
    r = rendered("prod-8gpu")
    if what == "nat route":
        target = next(x for x in r.of_type("aws:ec2/route:Route") if x.inputs.get("natGatewayId"))
    else:
        target = next(x for x in r.of_type("aws:eks/addon:Addon") if x.inputs["addonName"] == "coredns")
    broken = graph_order.without_dependents(r.resources, {target.urn})
    problems = graph_order.lb_teardown_problems(broken)
    assert any(target.name in p for p in problems)


def test_waves_follow_dependencies_parents_and_providers():
    @dataclasses.dataclass(frozen=True)
    class N:
        urn: str
        type: str = "t"
        name: str = ""
        inputs: dict = dataclasses.field(default_factory=dict)
        parent: str = ""
        provider: str = ""
        dependencies: tuple[str, ...] = ()

    nodes = [
        N("net"),
        N("cluster", dependencies=("net",)),
        N("prov", parent="cluster"),
        N("svc", provider="prov::id-1", inputs={"kind": "Service", "spec": {"type": "LoadBalancer"}}),
        N("ing", provider="prov::id-1", inputs={"kind": "Ingress"}),
        N("lonely-route"),
    ]
    assert graph_order.delete_waves(nodes) == [["ing", "lonely-route", "svc"], ["prov"], ["cluster"], ["net"]]
    assert {n.urn for n in nodes if graph_order.carries_lb_finalizer(n)} == {"svc", "ing"}


@pytest.mark.parametrize("stack", STACKS)
def test_node_groups_wait_for_the_nat_routes_of_their_subnets(stack):
    r = rendered(stack)
    associations = r.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")
    routes = [x for x in r.of_type("aws:ec2/route:Route") if x.inputs.get("natGatewayId")]
    groups = r.of_type(NODE_GROUP)
    assert len(groups) == 2
    for group in groups:
        before = graph_order.created_after(r.resources, group.urn)
        mine = [a for a in associations if a.inputs["subnetId"] in group.inputs["subnetIds"]]
        assert mine
        for assoc in mine:
            assert assoc.urn in before, (group.name, assoc.name)
            (route,) = [x for x in routes if x.inputs["routeTableId"] == assoc.inputs["routeTableId"]]
            assert route.urn in before, (group.name, route.name)


def test_the_controller_waits_for_coredns_and_the_networking_add_ons():
    r = rendered("dev")
    release = next(
        x for x in r.of_type("kubernetes:helm.sh/v3:Release") if x.inputs["chart"] == "aws-load-balancer-controller"
    )
    before = graph_order.created_after(r.resources, release.urn)
    addons = {x.inputs["addonName"] for x in r.of_type("aws:eks/addon:Addon") if x.urn in before}
    assert addons == set(graph_order.CONTROLLER_ADDONS)


# The guides quote the timeline through generated blocks (tests/test_docs.py).


def test_destroy_stops_the_mirror_job_and_the_pods_before_their_identities_and_keeps_s3_to_the_end():
    """weights.source s3 (prod stacks): nothing that reads or writes the mirror outlives its
    credentials, and the S3 gateway endpoint stays until the nodes are gone."""
    r = rendered("prod-8gpu")
    wave = {urn: i for i, urns in enumerate(graph_order.delete_waves(r.resources)) for urn in urns}
    job, deployment = r.one("kubernetes:batch/v1:Job"), r.vllm_deployment()
    identities = [
        x
        for x in r.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
        if x.inputs["namespace"] != "kube-system"
    ]
    assert len(identities) == 2
    for identity in identities:
        assert wave[job.urn] < wave[identity.urn] and wave[deployment.urn] < wave[identity.urn]
    endpoint = r.one("aws:ec2/vpcEndpoint:VpcEndpoint")
    assert all(wave[g.urn] < wave[endpoint.urn] for g in r.of_type(NODE_GROUP))
    assert graph_order.lb_teardown_problems(r.resources) == []
