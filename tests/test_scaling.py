"""Autoscaling: the scaling settings' rules, the policy derived from the cold start, and what each
stack renders (KEDA objects valid against KEDA's schema, the Cluster Autoscaler, the node group,
the Deployment left to the scaler, destroy order)."""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import re
from pathlib import Path

import pytest
from cloudcoil.models.keda.v1alpha1 import ScaledObject, TriggerAuthentication
from pydantic import ValidationError

from components.aws import gpu_nodes
from components.facts import catalog, gpu_pool, image_pins, timeline, versions
from components.observability.values import PROMETHEUS_URL
from components.platform.config import from_stack_file, parse
from components.scaling import cluster_autoscaler
from components.scaling import manifests as scaling_manifests
from components.scaling import policy as scaling
from components.scaling.rules import check, replica_capacity
from components.serving import endpoint, workload
from components.settings.scaling import ScalingSettings
from components.settings.stack import SettingsError
from components.settings.stack import parse as schema_parse
from ops.offline.engine import Rendering, render

SCALED_STACKS = ("dev", "staging")
WEIGHTS_GB = catalog.MODEL_CATALOG[catalog.MODELS[0]].weights_gb  # the default model's
FIXED_STACKS = ("prod-4gpu", "prod-8gpu")
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
TRIGGER_AUTH = "kubernetes:keda.sh/v1alpha1:TriggerAuthentication"
RELEASE = "kubernetes:helm.sh/v3:Release"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
ALB = endpoint.load_balancer_name("minimax-vllm-dev")


def parse_scaling(raw: dict, rules: bool = True) -> ScalingSettings:
    """The `scaling` section through the stack's schema and, with `rules`, the rules between settings."""
    stack = {
        "owner": "me",
        "serving": {"profile": "tp4", "maxModelLen": 32768},
        "gpuNodes": {"minSize": 0, "maxSize": 4},
    }
    return (parse if rules else schema_parse)({**stack, "scaling": raw}, "t", "us-east-2").scaling


@functools.cache
def rendered(stack: str) -> Rendering:
    return render(stack)


def settings_with(**gpu) -> object:
    raw = {"owner": "me", "serving": {"profile": "tp4", "maxModelLen": 32768, "replicas": 1}}
    raw["gpuNodes"] = {"minSize": 0, "desiredSize": 1, "maxSize": 1, **gpu}
    return parse(raw, "t", "us-east-2")


# --- the scaling section ---------------------------------------------------------------------


def test_scaling_is_off_by_default_and_for_the_prod_stacks():
    assert not ScalingSettings().enabled
    for stack in FIXED_STACKS:
        assert not from_stack_file(stack).scaling.enabled


def test_camel_case_keys_from_the_stack_file_are_read():
    sc = parse_scaling({"enabled": "true", "minReplicas": "0", "maxReplicas": 2, "schedule": {"startHour": 7}})
    assert sc.enabled and sc.scale_to_zero and sc.max_replicas == 2 and sc.schedule.start_hour == 7


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"maxReplicas": 0}, "minimax-vllm:scaling.maxReplicas = 0 must be from 1 to 64"),
        ({"minReplicas": 3, "maxReplicas": 2}, "scaling.minReplicas = 3 is above scaling.maxReplicas (2)"),
        ({"targetKvCacheUsage": 1.5}, "scaling.targetKvCacheUsage = 1.5"),
        ({"schedule": {"timezone": "Mars/Olympus"}}, "must be an IANA time zone"),
        ({"schedule": {"startHour": 9, "endHour": 9}}, "startHour and endHour must differ"),
        ({"schedule": {"days": "mon-fri"}}, "must be cron days of the week"),
        ({"maxReplica": 2}, "(did you mean maxReplicas?)"),
    ],
)
def test_bad_scaling_values_name_the_key_the_rule_and_the_fix(raw, expected):
    with pytest.raises(SettingsError) as caught:
        parse_scaling(raw)
    assert expected in str(caught.value)
    assert "Fix: pulumi config" in str(caught.value)


# The section is written like every other (pydantic dataclass, `rule()`, the schema's strict
# types): what a stack file or `pulumi config set` writes parses to the same values as before,
# and a bad value reads like any other setting's problem, down to a key inside `schedule`.
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"enabled": "true", "minReplicas": "0", "maxReplicas": "3"},
            {"enabled": True, "min_replicas": 0, "max_replicas": 3},
        ),
        ({"enabled": False, "wakeOnRequests": "false"}, {"enabled": False, "wake_on_requests": False}),
        (
            {"targetWaitingRequests": "7", "targetKvCacheUsage": 1},
            {"target_waiting_requests": 7.0, "target_kv_cache_usage": 1.0},
        ),
        ({"idleMinutes": 5}, {"idle_minutes": 5, "schedule": None}),
    ],
)
def test_scaling_values_parse_as_written(raw, expected):
    sc = parse_scaling(raw, rules=False)
    assert {k: getattr(sc, k) for k in expected} == expected


def test_a_schedule_parses_with_its_defaults():
    sc = parse_scaling({"schedule": {"timezone": "Europe/Berlin", "days": "1,3-5", "endHour": "18"}}, rules=False)
    assert (sc.schedule.timezone, sc.schedule.start_hour, sc.schedule.end_hour, sc.schedule.replicas) == (
        "Europe/Berlin",
        8,
        18,
        1,
    )
    assert sc.schedule.day_numbers() == {1, 3, 4, 5} and sc.schedule.hours_per_day == 10


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (
            {"enabled": "yes"},
            "scaling.enabled = 'yes' must be true or false. Fix: pulumi config set --path 'scaling.enabled' false",
        ),
        (
            {"minReplicas": -1},
            "scaling.minReplicas = -1 must be from 0 to 64. Fix: pulumi config set --path 'scaling.minReplicas' 1",
        ),
        (
            {"minReplicas": True},
            "scaling.minReplicas = True must be from 0 to 64. Fix: pulumi config set --path 'scaling.minReplicas' 1",
        ),
        (
            {"targetKvCacheUsage": 0},
            "scaling.targetKvCacheUsage = 0 must be from 0 (exclusive) to 1. Fix: pulumi config set --path 'scaling.targetKvCacheUsage' 0.8",
        ),
        (
            {"idleMinutes": 4},
            "scaling.idleMinutes = 4 must be from 5 to 1440 minutes. Fix: pulumi config set --path 'scaling.idleMinutes' 30",
        ),
        (
            {"schedule": []},
            "scaling.schedule = [] must be an object. Fix: pulumi config set --path 'scaling.schedule.<field>' <value>",
        ),
        (
            {"schedule": {"timezone": "Mars/Base"}},
            "scaling.schedule.timezone = 'Mars/Base' must be an IANA time zone such as Europe/Berlin or America/New_York. "
            "Fix: pulumi config set --path 'scaling.schedule.timezone' UTC",
        ),
        (
            {"schedule": {"startHour": 24}},
            "scaling.schedule.startHour = 24 must be an hour from 0 to 23. Fix: pulumi config set --path 'scaling.schedule.startHour' 8",
        ),
        (
            {"schedule": {"days": "7"}},
            "scaling.schedule.days = '7' must be cron days of the week such as 1-5 (Monday-Friday) or 0-6. "
            "Fix: pulumi config set --path 'scaling.schedule.days' 1-5",
        ),
        (
            {"schedule": {"replica": 2}},
            "scaling.schedule.replica = 2 is not a known setting; known fields of scaling.schedule: "
            "timezone, startHour, endHour, days, replicas (did you mean replicas?). "
            "Fix: pulumi config rm --path 'scaling.schedule.replica'",
        ),
    ],
)
def test_a_bad_scaling_value_is_one_problem_with_its_key_rule_and_fix(raw, problem):
    with pytest.raises(SettingsError) as caught:
        parse_scaling(raw, rules=False)
    assert caught.value.problems == [f"minimax-vllm:{problem}"]


def test_max_replicas_above_what_the_node_group_holds_is_rejected_with_the_node_count():
    s = settings_with()
    assert replica_capacity(s) == 2  # two 4-GPU replicas per p5
    problems = check(ScalingSettings(enabled=True, min_replicas=0, max_replicas=3), s)
    assert len(problems) == 1
    assert "maxReplicas = 3 exceeds what the GPU node group holds" in problems[0]
    assert "pulumi config set --path 'scaling.maxReplicas' 2" in problems[0] and "gpuNodes.maxSize to 2" in problems[0]


def test_scale_to_zero_with_a_gpu_node_floor_is_rejected():
    problems = check(ScalingSettings(enabled=True, min_replicas=0, max_replicas=2), settings_with(minSize=1))
    assert any("gpuNodes.minSize = 1 keeps 1 p5.48xlarge running" in p for p in problems)
    assert any("pulumi config set --path 'gpuNodes.minSize' 0" in p for p in problems)


def test_starting_replicas_must_lie_within_the_bounds_and_a_schedule_needs_scaling_on():
    s = settings_with()
    assert any(
        "serving.replicas = 1" in p for p in check(ScalingSettings(enabled=True, min_replicas=2, max_replicas=2), s)
    )
    off_with_schedule = parse_scaling({"schedule": {"startHour": 8}}, rules=False)
    assert "scaling.enabled is false" in check(off_with_schedule, s)[0]
    assert check(ScalingSettings(enabled=True, min_replicas=0, max_replicas=2), s) == []


def test_a_bad_scaling_section_stops_the_program_before_any_resource(monkeypatch):
    from ops.offline import mocks

    created = []
    original = mocks.OfflineMocks.new_resource
    monkeypatch.setattr(mocks.OfflineMocks, "new_resource", lambda self, a: created.append(a.typ) or original(self, a))
    with pytest.raises(SettingsError, match="scaling.maxReplicas = 5 exceeds"):
        render("dev", overrides={"scaling": {"enabled": True, "minReplicas": 0, "maxReplicas": 5}})
    assert created == []


# --- the policy ------------------------------------------------------------------------------


def test_the_cold_start_adapter_reads_the_cold_start_timeline():
    cold = scaling.cold_start_inputs(WEIGHTS_GB)
    assert cold.first_start_seconds == timeline.new_node(WEIGHTS_GB).total
    assert cold.warm_start_seconds == timeline.warm_restart(WEIGHTS_GB).total
    assert cold.warm_start_seconds < cold.first_start_seconds < cold.new_node_replica_seconds


def test_behavior_follows_the_cold_start_within_the_api_limits():
    slow = scaling.ColdStart(node_provision_seconds=600, first_start_seconds=3600, warm_start_seconds=900)
    fast = scaling.ColdStart(node_provision_seconds=300, first_start_seconds=900, warm_start_seconds=300)
    b_slow, b_fast = scaling.behavior(slow, 2), scaling.behavior(fast, 2)
    assert b_slow.scale_down.stabilization_window_seconds == scaling.HPA_MAX_WINDOW_SECONDS
    assert b_fast.scale_down.stabilization_window_seconds == fast.new_node_replica_seconds == 1200
    assert b_slow.scale_up.policies[0].period_seconds == scaling.HPA_MAX_PERIOD_SECONDS
    assert b_fast.scale_up.policies[0] == scaling.Policy("Pods", 2, 1200)  # one node's worth per cold start
    assert b_fast.scale_down.policies[0].value == 1


def test_the_schedule_opens_one_cold_start_before_the_start_hour():
    sched = parse_scaling({"schedule": {"startHour": 8, "endHour": 20}}, rules=False).schedule
    cold = scaling.cold_start_inputs(WEIGHTS_GB)
    start, end = scaling.schedule_window(sched, cold)
    lead = -(-cold.new_node_replica_seconds // 300) * 5  # a new node and a first start, rounded up to 5 minutes
    assert (start, end) == (8 * 60 - lead, 20 * 60)


def test_wake_trigger_is_rendered_only_with_the_load_balancer_name():
    sc = parse_scaling({"enabled": True, "minReplicas": 0, "maxReplicas": 2})
    cold = scaling.cold_start_inputs(WEIGHTS_GB)
    without = scaling.replica_policy(sc, 2, cold, region="us-east-2", prometheus_url=PROMETHEUS_URL)
    assert without.trigger("wake") is None and "wake on requests" in without.notes[0]
    wake = scaling.replica_policy(
        sc, 2, cold, region="us-east-2", prometheus_url=PROMETHEUS_URL, load_balancer=ALB
    ).trigger("wake")
    assert wake.type == "aws-cloudwatch" and wake.authentication == scaling.AWS_TRIGGER_AUTH
    assert scaling.wake_load_balancer_name(wake.metadata["expression"]) == ALB
    assert 'MetricName="HTTPCode_ELB_503_Count"' in wake.metadata["expression"]
    fixed_floor = parse_scaling({"enabled": True, "minReplicas": 1, "maxReplicas": 2})
    assert (
        scaling.replica_policy(
            fixed_floor, 2, cold, region="us-east-2", prometheus_url=PROMETHEUS_URL, load_balancer=ALB
        ).trigger("wake")
        is None
    )


@pytest.mark.parametrize(
    "cluster",
    ["minimax-vllm-dev", "minimax-vllm-staging", "x" * 100, "internal-lab", "A_b.c--d", "-", "team/llm-2"],
)
def test_the_alb_name_is_a_valid_elb_name_and_fixed_by_the_cluster_name(cluster):
    name = endpoint.load_balancer_name(cluster)
    # Elastic Load Balancing: at most 32 letters, digits and hyphens, no hyphen at either end, and
    # not starting with "internal-"; the controller (v3.5.0) rejects a longer annotation value.
    assert re.fullmatch(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,30}[a-zA-Z0-9])?", name), name
    assert not name.startswith("internal-") and "--" not in name
    assert name == endpoint.load_balancer_name(cluster)
    assert name != endpoint.load_balancer_name(cluster + "x")


def test_two_clusters_that_share_a_long_prefix_get_different_albs():
    a, b = "minimax-vllm-research-team-one-dev", "minimax-vllm-research-team-one-dev2"
    assert endpoint.load_balancer_name(a) != endpoint.load_balancer_name(b)


def test_a_search_for_one_alb_does_not_select_another_by_the_same_prefix():
    # SEARCH matches consecutive tokens, so the ALB's name ends in a hash: no other stack's
    # `app/<name>/<id>` starts with this name and a slash.
    dev, staging = (endpoint.load_balancer_name(f"minimax-vllm-{s}") for s in SCALED_STACKS)
    assert not dev.startswith(staging) and not staging.startswith(dev)
    assert f"LoadBalancer=app/{dev}/'" in scaling.wake_expression(dev)


def test_engine_metrics_are_the_pinned_vllm_releases_own():
    spec = importlib.util.find_spec("vllm")
    loggers = Path(spec.origin).parent / "v1" / "metrics" / "loggers.py"
    names = set(re.findall(r'name="(vllm:[a-z_]+)"', loggers.read_text()))
    assert {scaling.WAITING_METRIC, scaling.KV_CACHE_METRIC} <= names


# --- KEDA's schema ---------------------------------------------------------------------------
# Types and required fields: cloudcoil-models-keda (KEDA's CRDs as pydantic models). Its newest
# build for Python 3.11 is KEDA 2.16.1; between 2.16.1 and the pinned 2.20.2 the ScaledObject CRD
# only gained fields (HPA `tolerance`, scalingModifiers enums, status) and one CEL rule, checked
# below with KEDA 2.20.2's config/crd/bases/keda.sh_scaledobjects.yaml as the source.
# Trigger metadata: the fields KEDA 2.20.2's scalers declare without `optional` or `default`
# (pkg/scalers/{prometheus,cron,aws_cloudwatch}_scaler.go, `keda:"name=...,order=triggerMetadata"`).
REQUIRED_METADATA = {
    "prometheus": {"serverAddress", "query", "threshold"},
    "cron": {"start", "end", "timezone", "desiredReplicas"},
    "aws-cloudwatch": {"targetMetricValue", "minMetricValue", "awsRegion"},
}
# Every key KEDA 2.20.2's aws-cloudwatch scaler reads (awsCloudwatchMetadata): anything else
# is a typo KEDA ignores.
CLOUDWATCH_METADATA = {
    "namespace",
    "metricName",
    "dimensionName",
    "dimensionValue",
    "expression",
    "targetMetricValue",
    "activationTargetMetricValue",
    "minMetricValue",
    "ignoreNullValues",
    "metricCollectionTime",
    "metricStat",
    "metricUnit",
    "metricStatPeriod",
    "metricEndTimeOffset",
    "awsRegion",
    "awsEndpoint",
    "identityOwner",
}
NUMERIC_METADATA = {
    "threshold",
    "activationThreshold",
    "desiredReplicas",
    "targetMetricValue",
    "activationTargetMetricValue",
    "minMetricValue",
    "metricStatPeriod",
    "metricCollectionTime",
}


def keda_problems(obj: dict) -> list[str]:
    """Everything the API server, KEDA's admission webhook or its scalers would reject."""
    model = {"ScaledObject": ScaledObject, "TriggerAuthentication": TriggerAuthentication}[obj["kind"]]
    try:
        parsed = model.model_validate(obj)
    except ValidationError as err:
        return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()]
    problems = []
    if _canonical(parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")) != _canonical(obj):
        problems.append("unknown field (dropped by the schema)")
    if obj["kind"] != "ScaledObject":
        return problems
    spec = obj["spec"]
    if spec.get("minReplicaCount", 0) > spec.get("maxReplicaCount", 100):
        problems.append("minReplicaCount must be less than or equal to maxReplicaCount")
    if not spec["triggers"]:
        problems.append("triggers: at least one")
    behavior = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior", {})
    for direction, rules in behavior.items():
        # autoscaling/v2 HPAScalingRules validation (the model checks stabilizationWindowSeconds)
        if rules.get("selectPolicy", "Max") not in ("Max", "Min", "Disabled"):
            problems.append(f"{direction}.selectPolicy must be Max, Min or Disabled")
        for p in rules.get("policies", []):
            if p["type"] not in ("Pods", "Percent") or p["value"] <= 0 or not 0 < p["periodSeconds"] <= 1800:
                problems.append(f"{direction} policy {p}: type Pods|Percent, value > 0, periodSeconds 1..1800")
    for t in spec["triggers"]:
        missing = REQUIRED_METADATA.get(t["type"], set()) - set(t["metadata"])
        if missing:
            problems.append(f"trigger {t.get('name')}: missing metadata {sorted(missing)}")
        for key in NUMERIC_METADATA & set(t["metadata"]):
            try:
                float(t["metadata"][key])
            except ValueError:
                problems.append(f"trigger {t.get('name')}: {key} is not a number")
        if t["type"] == "aws-cloudwatch":
            problems += [f"trigger {t.get('name')}: {p}" for p in _cloudwatch_problems(t["metadata"])]
        if t.get("metricType", "AverageValue") not in ("AverageValue", "Value", "Utilization"):
            problems.append(f"trigger {t.get('name')}: metricType")
        ref = t.get("authenticationRef")
        if ref and ref.get("kind", "TriggerAuthentication") not in (
            "TriggerAuthentication",
            "ClusterTriggerAuthentication",
        ):
            problems.append(f"trigger {t.get('name')}: authenticationRef.kind")
    return problems


def _cloudwatch_problems(meta: dict) -> list[str]:
    """awsCloudwatchMetadata.Validate() in KEDA 2.20.2, and its unknown keys."""
    problems = [f"unknown metadata {k}" for k in sorted(set(meta) - CLOUDWATCH_METADATA)]
    if not meta.get("expression") and not all(
        meta.get(k) for k in ("namespace", "metricName", "dimensionName", "dimensionValue")
    ):
        problems.append("expression, or namespace, metricName, dimensionName and dimensionValue")
    try:
        period, collection = int(meta.get("metricStatPeriod", 300)), int(meta.get("metricCollectionTime", 300))
    except ValueError:
        return [*problems, "metricStatPeriod and metricCollectionTime are integers"]
    if period < 1 or (period <= 60 and period not in (1, 5, 10, 30, 60)) or (period > 60 and period % 60):
        problems.append("metricStatPeriod: 1, 5, 10, 30, 60 or a multiple of 60")
    if collection < 0 or collection % period:
        problems.append("metricCollectionTime: a multiple of metricStatPeriod")
    return problems


def _canonical(value: dict) -> str:
    return json.dumps(value, sort_keys=True)


@pytest.mark.parametrize("stack", SCALED_STACKS)
def test_each_scaled_stack_renders_keda_objects_valid_against_the_schema(stack):
    r = rendered(stack)
    objects = [x.inputs for x in r.kubernetes_objects() if x.inputs["apiVersion"].startswith("keda.sh/")]
    # dev and staging scale to zero and wake on requests: CloudWatch, with KEDA's own identity
    assert sorted(o["kind"] for o in objects) == ["ScaledObject", "TriggerAuthentication"]
    for obj in objects:
        assert keda_problems(obj) == [], obj


def test_the_wake_trigger_and_its_authentication_are_valid_too():
    sc = from_stack_file("dev").scaling
    policy = scaling.replica_policy(
        sc,
        2,
        scaling.cold_start_inputs(WEIGHTS_GB),
        region="us-east-2",
        prometheus_url=PROMETHEUS_URL,
        load_balancer=ALB,
    )
    assert keda_problems(scaling_manifests.scaled_object(policy, workload.LABELS)) == []
    assert keda_problems(scaling_manifests.aws_trigger_authentication(workload.LABELS)) == []


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("spec", "pollingIntervall"), 15, "unknown field"),
        (("spec", "minReplicaCount"), "zero", "minReplicaCount"),
        (("spec", "minReplicaCount"), 5, "less than or equal to maxReplicaCount"),
        (("spec", "triggers", 0, "metadata", "threshold"), 5, "metadata"),  # metadata values are strings
        (("spec", "triggers", 0, "metadata", "threshold"), "five", "threshold is not a number"),
        (("spec", "triggers", 3, "metadata", "timezone"), None, "missing metadata ['timezone']"),
        (
            (
                "spec",
                "advanced",
                "horizontalPodAutoscalerConfig",
                "behavior",
                "scaleDown",
                "stabilizationWindowSeconds",
            ),
            7200,
            "3600",
        ),
        (
            (
                "spec",
                "advanced",
                "horizontalPodAutoscalerConfig",
                "behavior",
                "scaleUp",
                "policies",
                0,
                "periodSeconds",
            ),
            3600,
            "1..1800",
        ),
        (("spec", "scaleTargetRef"), None, "scaleTargetRef"),
    ],
)
def test_the_schema_check_rejects_a_broken_scaled_object(path, value, expected):
    obj = copy.deepcopy(rendered("dev").one(SCALED_OBJECT).inputs)
    assert keda_problems(obj) == []
    *parents, last = path
    target = obj
    for key in parents:
        target = target[key]
    if value is None:
        del target[last]
    else:
        target[last] = value
    assert any(expected in p for p in keda_problems(obj)), keda_problems(obj)


# --- what each stack renders -----------------------------------------------------------------


def gpu_node_group(r: Rendering):
    (group,) = [g for g in r.of_type(NODE_GROUP) if g.inputs["labels"].get(gpu_pool.POOL_LABEL[0]) == "gpu"]
    return group


def release(r: Rendering, chart: str):
    (found,) = [x for x in r.of_type(RELEASE) if x.inputs["chart"] == chart]
    return found


@pytest.mark.parametrize("stack", FIXED_STACKS)
def test_fixed_size_stacks_have_no_autoscaler_and_pulumi_owns_their_sizes(stack):
    r = rendered(stack)
    assert not r.of_type(SCALED_OBJECT) and not r.of_type("aws:autoscaling/tag:Tag")
    assert not {"keda", "cluster-autoscaler"} & {x.inputs["chart"] for x in r.of_type(RELEASE)}
    assert gpu_node_group(r).options["ignoreChanges"] == []
    assert r.vllm_deployment().options["ignoreChanges"] == []


@pytest.mark.parametrize("stack", SCALED_STACKS)
def test_the_scaler_owns_replicas_and_the_autoscaler_owns_the_node_count(stack):
    r, s = rendered(stack), from_stack_file(stack)
    sc = s.scaling
    deployment = r.vllm_deployment()
    assert deployment.options["ignoreChanges"] == ["spec.replicas"]
    assert deployment.inputs["spec"]["replicas"] == s.serving.replicas  # the starting count
    spec = r.one(SCALED_OBJECT).inputs["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment.inputs["metadata"]["name"],
    }
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (sc.min_replicas, sc.max_replicas)
    assert spec["maxReplicaCount"] <= replica_capacity(s)
    group = gpu_node_group(r)
    assert "scalingConfig.desiredSize" in group.options["ignoreChanges"]
    assert (
        group.inputs["scalingConfig"]["minSize"] == 0
        and group.inputs["scalingConfig"]["maxSize"] == s.gpu_nodes.max_size
    )


@pytest.mark.parametrize("stack", SCALED_STACKS)
def test_a_node_group_at_zero_describes_its_gpu_nodes_to_the_autoscaler(stack):
    r = rendered(stack)
    group = gpu_node_group(r)
    asg = group.outputs["resources"][0]["autoscalingGroups"][0]["name"]
    tags = {t.inputs["tag"]["key"]: t.inputs["tag"] for t in r.of_type("aws:autoscaling/tag:Tag")}
    assert all(t.inputs["autoscalingGroupName"] == asg for t in r.of_type("aws:autoscaling/tag:Tag"))
    prefix = "k8s.io/cluster-autoscaler/node-template"
    for key, value in group.inputs["labels"].items():
        assert tags[f"{prefix}/label/{key}"]["value"] == value
    (taint,) = group.inputs["taints"]
    assert tags[f"{prefix}/taint/{taint['key']}"]["value"] == f"{taint['value']}:NoSchedule"
    assert tags[f"{prefix}/resources/nvidia.com/gpu"]["value"] == "8"
    assert group.inputs["labels"][gpu_nodes.ACCELERATOR_LABEL] == "nvidia-h100"


@pytest.mark.parametrize("stack", SCALED_STACKS)
def test_cluster_autoscaler_discovers_this_cluster_with_a_pod_identity_limited_to_its_groups(stack):
    r, s = rendered(stack), from_stack_file(stack)
    values = release(r, "cluster-autoscaler").inputs["values"]
    assert values["autoDiscovery"]["clusterName"] == s.cluster_name and values["awsRegion"] == s.region
    tag = versions.CLUSTER_AUTOSCALER_IMAGE_TAGS[s.cluster.kubernetes_version]
    assert tag.startswith(f"v{s.cluster.kubernetes_version}.")
    # The control plane's minor, at its recorded digest (image-pins.json) when there is one.
    assert values["image"]["tag"] == image_pins.tag_or_pinned(cluster_autoscaler.IMAGE_REPOSITORY, tag)
    assert values["image"]["tag"].split("@")[0] == tag
    (assoc,) = [
        a
        for a in r.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
        if a.inputs["serviceAccount"] == values["rbac"]["serviceAccount"]["name"]
    ]
    role = next(x for x in r.of_type("aws:iam/role:Role") if x.outputs["arn"] == assoc.inputs["roleArn"])
    assert json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Principal"] == {
        "Service": "pods.eks.amazonaws.com"
    }
    policy = json.loads(
        next(p for p in r.of_type("aws:iam/policy:Policy") if "SetDesiredCapacity" in p.inputs["policy"]).inputs[
            "policy"
        ]
    )
    scaling_statement = next(st for st in policy["Statement"] if "autoscaling:SetDesiredCapacity" in st["Action"])
    assert scaling_statement["Condition"] == {
        "StringEquals": {f"aws:ResourceTag/k8s.io/cluster-autoscaler/{s.cluster_name}": "owned"}
    }


def test_replicas_are_never_evicted_by_the_cluster_autoscaler_and_fixed_stacks_keep_their_pods():
    pod = rendered("dev").vllm_deployment().inputs["spec"]["template"]
    assert pod["metadata"]["annotations"]["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
    fixed = rendered("prod-8gpu").vllm_deployment().inputs["spec"]["template"]
    assert fixed["metadata"] == {"labels": workload.LABELS}  # no template change, no restart


def _depends_on(r: Rendering, urn: str) -> set[str]:
    seen, todo = set(), [urn]
    while todo:
        res = r.by_urn(todo.pop())
        for dep in (*res.dependencies, *([res.provider.rsplit("::", 1)[0]] if res.provider else [])):
            if dep not in seen and any(x.urn == dep for x in r.resources):
                seen.add(dep)
                todo.append(dep)
    return seen


@pytest.mark.parametrize("stack", SCALED_STACKS)
def test_destroy_removes_the_scaled_object_while_keda_and_the_deployment_remain(stack):
    r = rendered(stack)
    deps = _depends_on(r, r.one(SCALED_OBJECT).urn)
    assert release(r, "keda").urn in deps  # KEDA clears its finalizer, then goes
    assert r.vllm_deployment().urn in deps
    for chart in ("keda", "cluster-autoscaler"):
        assert {
            n.urn for n in r.of_type(NODE_GROUP) if n.inputs["labels"].get("minimax-vllm/pool") == "system"
        } <= _depends_on(r, release(r, chart).urn)


@pytest.mark.parametrize("capacity_type", ["CAPACITY_BLOCK", "ON_DEMAND"])
def test_capacity_block_and_odcr_stacks_keep_their_reservation_when_autoscaled(capacity_type):
    gpu = {"instanceType": "p5.48xlarge", "minSize": 0, "desiredSize": 1, "maxSize": 1}
    gpu |= {"capacityType": capacity_type, "capacityReservationId": "cr-0123456789abcdef0"}
    gpu["availabilityZones"] = ["us-east-2a"]  # any reservation is zonal
    r = render("dev", overrides={"gpuNodes": gpu})
    group = gpu_node_group(r)
    (lt,) = [x for x in r.of_type("aws:ec2/launchTemplate:LaunchTemplate") if x.urn.endswith("gpu-lt")]
    target = lt.inputs["capacityReservationSpecification"]["capacityReservationTarget"]
    assert target == {"capacityReservationId": "cr-0123456789abcdef0"}  # every node the autoscaler adds
    assert group.inputs["capacityType"] == capacity_type
    assert "scalingConfig.desiredSize" in group.options["ignoreChanges"]
    assert r.of_type("aws:autoscaling/tag:Tag") and r.of_type(SCALED_OBJECT)


def test_the_wake_trigger_reads_cloudwatch_through_kedas_own_pod_identity():
    r = rendered("dev")
    spec = r.one(SCALED_OBJECT).inputs["spec"]
    (wake,) = [t for t in spec["triggers"] if t["type"] == "aws-cloudwatch"]
    auth = r.one(TRIGGER_AUTH)
    # identityOwner written out: the operator's own identity, never the scaled vLLM pods'.
    assert auth.inputs["spec"] == {"podIdentity": {"provider": "aws", "identityOwner": "keda"}}
    assert wake["authenticationRef"]["name"] == auth.inputs["metadata"]["name"]
    assert keda_problems(r.one(SCALED_OBJECT).inputs) == [] and keda_problems(auth.inputs) == []
    (assoc,) = [
        a for a in r.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation") if a.inputs["namespace"] == "keda"
    ]
    keda_values = release(r, "keda").inputs["values"]
    assert assoc.inputs["serviceAccount"] == keda_values["serviceAccount"]["operator"]["name"]
    (read,) = [p for p in r.of_type("aws:iam/rolePolicy:RolePolicy") if "cloudwatch" in p.inputs["policy"]]
    assert json.loads(read.inputs["policy"])["Statement"][0]["Action"] == ["cloudwatch:GetMetricData"]
    assert auth.urn in _depends_on(r, r.one(SCALED_OBJECT).urn)


@pytest.mark.parametrize("mode", ["off", "amp"])
def test_autoscaling_needs_the_in_cluster_prometheus_its_triggers_query(mode):
    with pytest.raises(SettingsError) as caught:
        parse({**dict(parse_stack("dev")), "observability": {"mode": mode}}, "dev", "us-east-2")
    (problem,) = [p for p in caught.value.problems if "observability.mode" in p]
    assert f"observability.mode = '{mode}' leaves the autoscaler without the in-cluster Prometheus" in problem
    assert "pulumi config set --path 'observability.mode' in-cluster" in problem


def parse_stack(stack: str) -> dict:
    from components.platform.config import read_stack_file, split_stack_config

    return split_stack_config(read_stack_file(stack))[0]


@pytest.mark.parametrize("stack", SCALED_STACKS)
def test_the_wake_query_selects_the_alb_the_ingress_names(stack):
    r = rendered(stack)
    (ingress,) = r.of_type(INGRESS)
    named = ingress.inputs["metadata"]["annotations"]["alb.ingress.kubernetes.io/load-balancer-name"]
    (wake,) = [t for t in r.one(SCALED_OBJECT).inputs["spec"]["triggers"] if t["type"] == "aws-cloudwatch"]
    assert scaling.wake_load_balancer_name(wake["metadata"]["expression"]) == named
    assert len(named) <= endpoint.LOAD_BALANCER_NAME_MAX


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"expresion": "x"}, "unknown metadata expresion"),
        ({"expression": ""}, "expression, or namespace"),
        ({"metricCollectionTime": "90"}, "a multiple of metricStatPeriod"),
        ({"metricStatPeriod": "45"}, "metricStatPeriod: 1, 5, 10, 30, 60"),
    ],
)
def test_the_cloudwatch_checks_catch_what_keda_would_reject(change, expected):
    sc = from_stack_file("dev").scaling
    policy = scaling.replica_policy(
        sc,
        2,
        scaling.cold_start_inputs(WEIGHTS_GB),
        region="us-east-2",
        prometheus_url=PROMETHEUS_URL,
        load_balancer=ALB,
    )
    obj = scaling_manifests.scaled_object(policy, workload.LABELS)
    (wake,) = [t for t in obj["spec"]["triggers"] if t["type"] == "aws-cloudwatch"]
    wake["metadata"].update(change)
    assert any(expected in p for p in keda_problems(obj))
