"""The Kubernetes layer as rendered by the offline engine: what the cluster would receive."""

from __future__ import annotations

import functools
import json

import kubernetes_validate
import pytest

from components.facts import gpu_pool, versions
from components.platform import config
from components.serving import profiles, workload
from components.settings import stack as settings
from ops.offline import graph_order, mocks
from ops.offline.engine import PLACEHOLDER_SECRETS, Rendering, render

STACKS = ("dev", "staging", "prod-4gpu", "prod-8gpu")
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
SECRET = "kubernetes:core/v1:Secret"
RELEASE = "kubernetes:helm.sh/v3:Release"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
TLS_ARN = "arn:aws:acm:us-east-2:123456789012:certificate/0f2b4a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"


@functools.cache
def rendered(stack: str) -> Rendering:
    return render(stack)


def container(r: Rendering) -> dict:
    return r.vllm_deployment().inputs["spec"]["template"]["spec"]["containers"][0]


def pod_spec(r: Rendering) -> dict:
    return r.vllm_deployment().inputs["spec"]["template"]["spec"]


def gpu_node_group(r: Rendering):
    (group,) = [
        g
        for g in r.of_type(NODE_GROUP)
        if g.inputs.get("labels", {}).get(gpu_pool.POOL_LABEL[0]) == gpu_pool.POOL_LABEL[1]
    ]
    return group


def release(r: Rendering, chart: str):
    (found,) = [x for x in r.of_type(RELEASE) if x.inputs["chart"] == chart]
    return found


def selects(terms: list[dict], labels: dict[str, str]) -> bool:
    """Whether a node with `labels` matches required nodeSelectorTerms (any term, all expressions)."""
    return any(
        all(e["operator"] == "In" and labels.get(e["key"]) in e["values"] for e in term["matchExpressions"])
        for term in terms
    )


def tolerates(tolerations: list[dict], taint: dict) -> bool:
    effect = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}[
        taint["effect"]
    ]
    return any(
        t["key"] == taint["key"]
        and t.get("effect", effect) == effect
        and (t["operator"] == "Exists" or t.get("value") == taint.get("value"))
        for t in tolerations
    )


@pytest.mark.parametrize("stack", STACKS)
def test_vllm_runs_exactly_the_profile_argv_with_the_guides_environment(stack):
    r, s = rendered(stack), config.from_stack_file(stack)
    c = container(r)
    assert c["command"] + c["args"] == profiles.vllm_argv(s.serving)
    # The pinned release, pulled from the stack's own in-region copy of it.
    tag = versions.VLLM_IMAGE.split(":")[1]
    assert (
        c["image"]
        == f"{mocks.ACCOUNT_ID}.dkr.ecr.{s.region}.amazonaws.com/minimax-vllm/{s.cluster_name}/vllm-openai:{tag}"
    )
    env = {e["name"]: e for e in c["env"]}
    assert env["SAFETENSORS_FAST_GPU"]["value"] == "1"


@pytest.mark.parametrize("stack", STACKS)
def test_gpu_count_equals_the_profile_and_replicas_come_from_settings(stack):
    r, s = rendered(stack), config.from_stack_file(stack)
    limits = container(r)["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == str(profiles.PROFILES[s.serving.profile].gpus_per_replica)
    assert r.vllm_deployment().inputs["spec"]["replicas"] == s.serving.replicas


def test_two_4gpu_replicas_fit_one_p5_48xlarge():
    s = config.from_stack_file("prod-4gpu")
    requests = container(rendered("prod-4gpu"))["resources"]["requests"]
    inst = s.gpu_nodes.instance
    assert 2 * int(requests["cpu"]) <= inst.vcpus - 8
    assert 2 * int(requests["memory"].removesuffix("Gi")) <= inst.memory_gib - 32
    assert 2 * int(requests["nvidia.com/gpu"]) == inst.gpus


@pytest.mark.parametrize("stack", STACKS)
def test_vllm_pods_tolerate_the_gpu_taint_and_select_the_gpu_nodes(stack):
    r = rendered(stack)
    group = gpu_node_group(r)
    spec = pod_spec(r)
    for taint in group.inputs["taints"]:
        assert tolerates(spec["tolerations"], taint)
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert selects(terms, group.inputs["labels"])
    assert not selects(terms, {"kubernetes.io/os": "linux"})  # a system node is not chosen


@pytest.mark.parametrize("stack", STACKS)
def test_device_plugin_schedules_on_the_gpu_nodes_as_labelled_and_tainted(stack):
    r = rendered(stack)
    group = gpu_node_group(r)
    values = release(r, "nvidia-device-plugin").inputs["values"]
    terms = values["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert selects(terms, group.inputs["labels"])
    for taint in group.inputs["taints"]:
        assert tolerates(values["tolerations"], taint)


def test_scheduling_checks_fail_for_a_node_without_the_label_or_an_untolerated_taint():
    terms = [{"matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}]}]
    assert not selects(terms, {"minimax-vllm/pool": "gpu"})
    assert not tolerates([gpu_pool.TOLERATION], {"key": "other", "value": "x", "effect": "NO_SCHEDULE"})


@pytest.mark.parametrize("stack", STACKS)
def test_helm_charts_are_pinned(stack):
    r = rendered(stack)
    pins = {
        pin[1]: pin
        for pin in (
            versions.NVIDIA_DEVICE_PLUGIN_CHART,
            versions.AWS_LOAD_BALANCER_CONTROLLER_CHART,
            versions.KUBE_PROMETHEUS_STACK_CHART,
            versions.DCGM_EXPORTER_CHART,
            versions.KEDA_CHART,
            versions.CLUSTER_AUTOSCALER_CHART,
        )
    }
    assert {x.inputs["chart"] for x in r.of_type(RELEASE)} <= set(pins)
    for x in r.of_type(RELEASE):
        repo, _, version = pins[x.inputs["chart"]]
        assert x.inputs["version"] == version and x.inputs["repositoryOpts"]["repo"] == repo


def test_load_balancer_controller_gets_iam_through_pod_identity():
    r = rendered("prod-8gpu")
    (assoc,) = [
        x
        for x in r.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
        if x.inputs["namespace"] == "kube-system"
    ]
    values = release(r, "aws-load-balancer-controller").inputs["values"]
    assert (assoc.inputs["namespace"], assoc.inputs["serviceAccount"]) == (
        "kube-system",
        values["serviceAccount"]["name"],
    )
    role = next(x for x in r.of_type("aws:iam/role:Role") if x.outputs["arn"] == assoc.inputs["roleArn"])
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    policy = next(
        x
        for x in r.of_type("aws:iam/policy:Policy")
        if "elasticloadbalancing:DescribeListenerAttributes" in x.inputs["policy"]
    )
    assert len(policy.inputs["policy"]) <= 6144  # IAM managed policy size limit
    assert values["clusterName"] == config.from_stack_file("prod-8gpu").cluster_name


@pytest.mark.parametrize("stack", STACKS)
def test_the_ingress_class_admits_only_the_serving_namespace_and_the_stacks_scheme(stack):
    """Without IngressClassParams anyone who may create an Ingress could publish any pod on an ALB."""
    r = rendered(stack)
    values = release(r, "aws-load-balancer-controller").inputs["values"]
    params = values["ingressClassParams"]
    assert values["createIngressClassResource"] is True and params["create"] is True
    (ingress,) = r.of_type("kubernetes:networking.k8s.io/v1:Ingress")
    namespace = ingress.inputs["metadata"]["namespace"]
    scheme = ingress.inputs["metadata"]["annotations"]["alb.ingress.kubernetes.io/scheme"]
    assert params["spec"] == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
        "scheme": scheme,
    }
    assert ingress.inputs["spec"]["ingressClassName"] == values["ingressClass"]


@pytest.mark.parametrize("stack", STACKS)
def test_secrets_reach_vllm_only_through_a_kubernetes_secret(stack):
    r = render(stack, secrets={"hfToken": PLACEHOLDER_SECRETS["hfToken"]})
    secrets = {x.inputs["metadata"]["name"]: x for x in r.of_type(SECRET)}
    secret, token = secrets[workload.CREDENTIALS_SECRET], secrets[workload.HF_TOKEN_SECRET]
    # The API key and the token in Secrets of their own (tests/test_secret_env.py: who reads which).
    assert secret.inputs["stringData"] == {"api-key": PLACEHOLDER_SECRETS["apiKey"]}
    assert token.inputs["stringData"] == {workload.HF_TOKEN_KEY: PLACEHOLDER_SECRETS["hfToken"]}
    assert "stringData" in secret.secret_paths and "stringData" in token.secret_paths  # Pulumi secrets in the state
    env = {e["name"]: e for e in container(r)["env"]}
    assert env[workload.API_KEY_ENV]["valueFrom"]["secretKeyRef"]["name"] == secret.inputs["metadata"]["name"]
    assert "HF_TOKEN" not in env  # the vLLM container runs remote code and never calls the Hub
    for res in r.resources:
        if res in (secret, token):
            continue
        text = json.dumps(res.inputs)
        for value in PLACEHOLDER_SECRETS.values():
            assert value not in text, (res.type, res.name)
    assert not any(a.startswith("--api-key") for a in container(r)["args"])
    for name, value in r.outputs.items():
        for secret_value in PLACEHOLDER_SECRETS.values():
            assert secret_value not in str(value) or name in r.secret_outputs, name


def test_without_a_hugging_face_token_no_token_is_referenced():
    r = rendered("dev")  # no shipped stack sets hfToken, so the offline run has none either
    assert [x.inputs["metadata"]["name"] for x in r.of_type(SECRET)] == [workload.CREDENTIALS_SECRET]
    assert "hf-token" not in json.dumps([x.inputs for x in r.resources])
    assert "HF_TOKEN" not in {e["name"] for e in container(r)["env"]}


def test_missing_api_key_fails_before_any_resource_with_the_fix():
    with pytest.raises(
        settings.SettingsError, match=r"minimax-vllm:apiKey is not set.*pulumi config set --secret minimax-vllm:apiKey"
    ):
        render("dev", secrets={"apiKey": None})


def test_bad_config_fails_before_any_resource_is_declared(monkeypatch):
    from ops.offline import mocks

    created = []
    original = mocks.OfflineMocks.new_resource
    monkeypatch.setattr(mocks.OfflineMocks, "new_resource", lambda self, a: created.append(a.typ) or original(self, a))
    with pytest.raises(settings.SettingsError, match="serving.maxModelLen"):
        render("dev", overrides={"serving": {"profile": "tp4", "maxModelLen": 500000}})
    assert created == []


@pytest.mark.parametrize("stack", STACKS)
def test_caches_live_on_the_nodes_nvme_and_shm_is_memory_backed(stack):
    spec = pod_spec(rendered(stack))
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["cache"]["hostPath"]["path"].startswith(gpu_pool.NVME_MOUNT)
    assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"
    env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
    mount = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    assert env["HF_HOME"].startswith(mount["cache"]) and env["VLLM_CACHE_ROOT"].startswith(mount["cache"])
    assert mount["dshm"] == "/dev/shm"


def test_probes_allow_load_and_compile_after_staging_and_liveness_waits_for_startup():
    c = container(rendered("prod-8gpu"))
    startup = c["startupProbe"]
    assert startup["httpGet"]["path"] == "/health"
    # The 220 GB download happens in the init container, before the probes start.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 20 * 60
    assert c["readinessProbe"]["httpGet"]["path"] == "/health"
    assert "livenessProbe" in c and "initialDelaySeconds" not in c["livenessProbe"]


def test_rollout_never_needs_a_spare_gpu_node_and_streams_can_drain():
    spec = rendered("prod-4gpu").vllm_deployment().inputs["spec"]
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    pod = spec["template"]["spec"]
    drain = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert drain >= 120 and pod["terminationGracePeriodSeconds"] > drain
    pdb = rendered("prod-4gpu").one("kubernetes:policy/v1:PodDisruptionBudget").inputs["spec"]
    assert pdb["maxUnavailable"] == 1 and pdb["selector"]["matchLabels"] == spec["selector"]["matchLabels"]


@pytest.mark.parametrize("stack", STACKS)
def test_endpoint_is_an_alb_ingress_to_a_cluster_ip_service_with_a_long_idle_timeout(stack):
    s = config.from_stack_file(stack)
    r = rendered(stack)
    svc, ing = r.named(SERVICE, workload.APP).inputs, r.one(INGRESS).inputs
    assert svc["spec"]["type"] == "ClusterIP" and "loadBalancerClass" not in svc["spec"]
    a = ing["metadata"]["annotations"]
    assert ing["spec"]["ingressClassName"] == "alb"
    assert a["alb.ingress.kubernetes.io/scheme"] == s.endpoint.scheme
    assert a["alb.ingress.kubernetes.io/target-type"] == "ip"
    assert a["alb.ingress.kubernetes.io/healthcheck-path"] == "/health"
    assert (
        f"idle_timeout.timeout_seconds={s.endpoint.idle_timeout_seconds}"
        in a["alb.ingress.kubernetes.io/load-balancer-attributes"]
    )
    assert a["alb.ingress.kubernetes.io/inbound-cidrs"] == ",".join(s.endpoint.source_ranges)
    # `pulumi up` does not hang on the ALB status; destroy still waits (tests/test_finalizers.py).
    assert a["pulumi.com/waitFor"] == "jsonpath={.metadata.name}" and "pulumi.com/skipAwait" not in a
    backends = {p["backend"]["service"]["name"] for rule in ing["spec"]["rules"] for p in rule["http"]["paths"]}
    assert backends == {svc["metadata"]["name"]}
    # The pods of the namespace get the controller's readiness gates.
    (ns,) = [
        n.inputs
        for n in r.of_type("kubernetes:core/v1:Namespace")
        if n.inputs["metadata"]["name"] == workload.NAMESPACE
    ]
    assert ns["metadata"]["labels"]["elbv2.k8s.aws/pod-readiness-gate-inject"] == "enabled"


def test_tls_endpoint_listens_on_443_only_with_the_certificate_and_keeps_the_hour_idle_timeout():
    r = render(
        "prod-8gpu",
        overrides={
            "endpoint": {"scheme": "internet-facing", "sourceRanges": ["52.0.0.0/16"], "certificateArn": TLS_ARN}
        },
    )
    a = r.one(INGRESS).inputs["metadata"]["annotations"]
    assert a["alb.ingress.kubernetes.io/certificate-arn"] == TLS_ARN
    assert json.loads(a["alb.ingress.kubernetes.io/listen-ports"]) == [{"HTTPS": 443}]  # no plain-HTTP port
    assert a["alb.ingress.kubernetes.io/ssl-policy"].startswith("ELBSecurityPolicy-TLS13")
    attributes = dict(kv.split("=") for kv in a["alb.ingress.kubernetes.io/load-balancer-attributes"].split(","))
    # An ALB keeps its idle timeout under TLS (an NLB TLS listener is fixed at 350 s).
    assert int(attributes["idle_timeout.timeout_seconds"]) >= 3600
    assert r.outputs["endpointUrl"].startswith("https://") and ":443" not in r.outputs["endpointUrl"]


def test_the_endpoint_url_comes_from_the_ingress_status():
    r = rendered("prod-8gpu")
    host = r.one(INGRESS).outputs["status"]["loadBalancer"]["ingress"][0]["hostname"]
    assert r.outputs["endpointUrl"] == f"http://{host}"


@pytest.mark.parametrize("stack", STACKS)
def test_every_kubernetes_resource_uses_the_one_explicit_provider(stack):
    r = rendered(stack)
    (provider,) = r.of_type("pulumi:providers:kubernetes")
    k8s_resources = [x for x in r.resources if x.type.startswith("kubernetes:")]
    assert k8s_resources
    for x in k8s_resources:
        assert x.provider.startswith(provider.urn + "::"), (x.type, x.name, x.provider)


def _depends_on(r: Rendering, urn: str) -> set[str]:
    """Everything `urn` depends on (inputs, depends_on, parent, provider, transitively)."""
    return graph_order.created_after(r.resources, urn)


@pytest.mark.parametrize("stack", ["dev", "prod-8gpu"])
def test_destroy_removes_the_ingress_before_the_controller_nodes_and_network(stack):
    r = rendered(stack)
    deps = _depends_on(r, r.one(INGRESS).urn)
    controller = release(r, "aws-load-balancer-controller")
    assert controller.urn in deps
    assert gpu_node_group(r).urn in deps
    assert r.one("aws:eks/cluster:Cluster").urn in deps
    assert any(x.urn in deps for x in r.of_type("aws:ec2/subnet:Subnet"))
    (assoc,) = [
        a
        for a in r.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
        if a.inputs["serviceAccount"] == "aws-load-balancer-controller"
    ]
    assert assoc.urn in _depends_on(r, controller.urn)


@pytest.mark.parametrize("stack", STACKS)
def test_nothing_but_the_weight_mirror_bucket_is_retained_and_nothing_is_protected_on_destroy(stack):
    # The S3 mirror outlives the stack on purpose (weights.retainOnDestroy; tests/test_weight_mirror.py).
    for x in rendered(stack).resources:
        mirror = x.type.startswith("aws:s3/") and "-weights-" in x.name
        assert not x.options["protect"] and (mirror or not x.options["retainOnDelete"]), (x.type, x.name)


@pytest.mark.parametrize("stack", STACKS)
def test_every_rendered_kubernetes_object_validates_against_the_pinned_kubernetes_schemas(stack):
    objects = rendered(stack).kubernetes_objects()
    assert {o.inputs["kind"] for o in objects} >= {
        "Namespace",
        "Secret",
        "Deployment",
        "PodDisruptionBudget",
        "Service",
        "Ingress",
    }
    for o in objects:
        if o.inputs["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # the Prometheus operator's kinds: not in the Kubernetes schemas (tests/test_observability.py)
        if o.inputs["apiVersion"].startswith("keda.sh/"):
            continue  # custom resources: checked against KEDA's schema in tests/test_scaling.py
        kubernetes_validate.validate(o.inputs, f"{versions.KUBERNETES_VERSION}.0", strict=True)


def test_schema_validation_rejects_a_misspelt_field():
    obj = dict(rendered("dev").named(SERVICE, workload.APP).inputs)
    obj["spec"] = {**obj["spec"], "loadBalancerSourceRange": ["10.0.0.0/8"]}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(obj, f"{versions.KUBERNETES_VERSION}.0", strict=True)


def test_outputs_give_a_curl_that_reads_the_key_from_the_stacks_secret():
    out = rendered("prod-8gpu").outputs
    assert out["servedModelName"] == "minimax-m2.5"
    assert out["endpointUrl"].startswith("http://") and "elb.amazonaws.com" in out["endpointUrl"]
    assert "pulumi config get minimax-vllm:apiKey" in out["curl"]
    assert out["endpointUrl"] in out["curl"] and '"model": "minimax-m2.5"' in out["curl"]
