"""The S3 weight mirror as rendered: setting and rules, bucket, gateway endpoint, Pod Identity
permissions, the fill Job, the pods' copy from S3, the order of up and destroy, the timeline."""

from __future__ import annotations

import dataclasses
import functools
import json
import re

import pytest

from components.facts import catalog, timeline
from components.kubernetes import network_policy
from components.platform import config
from components.serving import workload
from components.settings.stack import SettingsError
from components.weights import compile_cache_objects, mirror_bucket
from components.weights import mirror as weight_mirror
from components.weights import staging as weight_staging
from ops.offline import graph_order
from ops.offline.engine import Rendering, render

SHA = "5fb9455421adc47f561f139d4e925b4c88c44367"
PREFIX = f"MiniMaxAI/MiniMax-M2.5/{SHA}/"
JOB = "kubernetes:batch/v1:Job"
DAEMONSET = "kubernetes:apps/v1:DaemonSet"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
BUCKET = "aws:s3/bucket:Bucket"
ASSOCIATION = "aws:eks/podIdentityAssociation:PodIdentityAssociation"
EDGE = re.compile(r"-edge(-|$)")

WEIGHTS_GB = catalog.MODEL_CATALOG[catalog.MODELS[0]].weights_gb  # the default model's


def _without_edge(r: Rendering) -> Rendering:
    """The rendering without the ALB's web ACL and access-log bucket (components/aws/edge.py,
    tests/test_edge.py): the S3 resources left are the mirror's."""
    return dataclasses.replace(r, resources=[x for x in r.resources if not EDGE.search(x.name)])


@functools.cache
def rendered(stack: str = "prod-8gpu") -> Rendering:
    return _without_edge(render(stack))


def dev_with(weights: dict) -> Rendering:
    return _without_edge(
        render(
            "dev", overrides={"serving": {"profile": "tp4", "maxModelLen": 32768, "revision": SHA}, "weights": weights}
        )
    )


def pod_spec(r: Rendering) -> dict:
    return r.vllm_deployment().inputs["spec"]["template"]["spec"]


def stager_spec(r: Rendering) -> dict:
    (ds,) = [x for x in r.of_type(DAEMONSET) if x.inputs["metadata"]["name"] == weight_staging.NAME]
    return ds.inputs["spec"]["template"]["spec"]


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container["env"]}


def inline_policy(r: Rendering, who: str) -> dict:
    """The role's policy on the weights; the compile-cache statements are tests/test_compile_cache_objects.py's."""
    (p,) = [x for x in r.of_type("aws:iam/rolePolicy:RolePolicy") if x.name.endswith(f"weights-{who}-policy")]
    doc = json.loads(p.inputs["policy"])
    cache_sids = {s["Sid"] for s in compile_cache_objects.policy_statements("arn:aws:s3:::b", "p/")}
    return {**doc, "Statement": [s for s in doc["Statement"] if s["Sid"] not in cache_sids]}


# --- the setting --------------------------------------------------------------------------------


def test_hub_is_the_default_and_dev_stays_on_it_while_prod_stacks_use_the_mirror():
    assert config.from_stack_file("dev").weights.source == "hub"
    assert config.from_stack_file("staging").weights.source == "hub"
    for stack in ("prod-4gpu", "prod-8gpu"):
        s = config.from_stack_file(stack)
        assert s.weights.source == "s3" and s.weights.retain_on_destroy
    assert not rendered("dev").of_type(BUCKET) and not rendered("dev").of_type(JOB)


@pytest.mark.parametrize("revision", [None, "main", "v1.0"])
def test_the_mirror_needs_a_commit_sha_not_a_moving_name(revision):
    raw = config.read_stack_file("prod-8gpu")
    values = {k.split(":", 1)[1]: v for k, v in raw.items() if k.startswith("minimax-vllm:")}
    values["serving"] = {**values["serving"], "revision": revision}
    with pytest.raises(SettingsError) as caught:
        config.parse(values, "prod-8gpu", "us-east-2")
    (problem,) = [p for p in caught.value.problems if "weights.source is s3" in p]
    assert "minimax-vllm:serving.revision" in problem and "Fix: pulumi config set --path 'serving.revision'" in problem


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ({"source": "gcs"}, "choose one of: hub, s3"),
        ({"source": "s3", "existingBucket": "Not_A_Bucket"}, "S3 bucket name"),
        ({"source": "hub", "existingBucket": "shared-weights"}, "used only when weights.source is s3"),
        ({"source": "s3", "noncurrentDays": 0}, "from 1 to 365"),
        ({"source": "s3", "retainOnDestroy": "keep"}, "true or false"),
    ],
)
def test_bad_weight_settings_name_key_rule_and_fix(weights, expected):
    values = {
        "owner": "ml-platform",
        "serving": {"revision": SHA},
        "cluster": {"publicAccessCidrs": ["198.51.100.0/24"]},
        "weights": weights,
    }
    with pytest.raises(SettingsError) as caught:
        config.parse(values, "test", "us-east-2")
    (problem,) = caught.value.problems
    assert "minimax-vllm:weights." in problem and expected in problem and "Fix: pulumi config" in problem


# --- the bucket -----------------------------------------------------------------------------------


def test_the_bucket_is_private_encrypted_versioned_tls_only_and_expires_retired_revisions():
    r = rendered()
    bucket = r.one(BUCKET)
    name = bucket.inputs["bucket"]
    assert name == "minimax-vllm-prod-8gpu-weights-123456789012-us-east-2"
    assert bucket.inputs["forceDestroy"] is False
    block = r.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert all(
        block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    sse = r.one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration").inputs
    assert sse["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    assert r.one("aws:s3/bucketVersioning:BucketVersioning").inputs["versioningConfiguration"]["status"] == "Enabled"
    assert r.one("aws:s3/bucketOwnershipControls:BucketOwnershipControls").inputs["rule"]["objectOwnership"] == (
        "BucketOwnerEnforced"
    )
    rules = {
        x["id"]: x for x in r.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").inputs["rules"]
    }
    assert rules["expire-retired-revisions"]["noncurrentVersionExpiration"]["noncurrentDays"] == 30
    assert rules["abort-incomplete-uploads"]["abortIncompleteMultipartUpload"]["daysAfterInitiation"] == 7
    statements = json.loads(r.one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])["Statement"]
    (deny,) = [s for s in statements if s["Sid"] == "TlsOnly"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert set(deny["Resource"]) == {f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"}


def test_bucket_names_fit_s3_for_long_stack_names_and_stay_apart():
    long_a = mirror_bucket.bucket_name("minimax-vllm-" + "a" * 80, "123456789012", "ap-southeast-2")
    long_b = mirror_bucket.bucket_name("minimax-vllm-" + "a" * 79 + "b", "123456789012", "ap-southeast-2")
    assert len(long_a) <= 63 and len(long_b) <= 63 and long_a != long_b
    assert mirror_bucket.bucket_name("minimax-vllm-Dev", "1", "us-east-2") == "minimax-vllm-dev-weights-1-us-east-2"


def test_destroy_keeps_the_bucket_and_its_settings_unless_the_stack_says_otherwise():
    kept = [x for x in rendered().resources if x.options["retainOnDelete"]]
    # The bucket, its settings, and the key its manifests are signed with.
    assert kept and {x.type.split(":")[1].split("/")[0] for x in kept} == {"s3", "kms"}
    mirror_kinds = ("aws:s3/", "aws:kms/alias", "aws:kms/key")
    mirror_types = {x.type for x in rendered().resources if x.type.startswith(mirror_kinds) and "-weights-" in x.name}
    assert {x.type for x in kept} == mirror_types
    gone = dev_with({"source": "s3", "retainOnDestroy": False})
    assert not any(x.options["retainOnDelete"] for x in gone.resources)
    assert gone.one(BUCKET).inputs["forceDestroy"] is True


def test_an_existing_bucket_is_used_as_it_is_and_only_the_roles_are_made():
    r = dev_with({"source": "s3", "existingBucket": "team-weights"})
    assert not [x for x in r.resources if x.type.startswith("aws:s3/")]
    reader = inline_policy(r, "pods")
    assert {s["Resource"] for s in reader["Statement"] if s["Action"] != "kms:Verify"} == {
        "arn:aws:s3:::team-weights",
        f"arn:aws:s3:::team-weights/{PREFIX}*",
    }
    (stage,) = stager_spec(r)["containers"]
    assert env_of(stage)["BUCKET"] == "team-weights"


# --- network and permissions --------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "prod-8gpu"])
def test_s3_traffic_takes_the_gateway_endpoint_on_every_private_route_table(stack):
    r = rendered(stack)
    endpoint = r.one("aws:ec2/vpcEndpoint:VpcEndpoint").inputs
    assert endpoint["vpcEndpointType"] == "Gateway" and endpoint["serviceName"] == "com.amazonaws.us-east-2.s3"
    nat_tables = {x.inputs["routeTableId"] for x in r.of_type("aws:ec2/route:Route") if x.inputs.get("natGatewayId")}
    assert set(endpoint["routeTableIds"]) == nat_tables
    for group in r.of_type("aws:eks/nodeGroup:NodeGroup"):  # in place before any node, gone after them
        assert r.one("aws:ec2/vpcEndpoint:VpcEndpoint").urn in graph_order.created_after(r.resources, group.urn)


def test_the_pods_may_only_read_and_the_job_only_write_their_revisions_prefix():
    r = rendered()
    bucket = f"arn:aws:s3:::{r.one(BUCKET).inputs['bucket']}"
    reader = inline_policy(r, "pods")["Statement"]
    assert {a for s in reader for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])} == {
        "s3:ListBucket",
        "s3:GetObject",
        "kms:Verify",
    }
    reader = [s for s in reader if s["Action"] != "kms:Verify"]
    assert {s["Resource"] for s in reader} == {bucket, f"{bucket}/{PREFIX}*"}
    assert all(s["Condition"]["StringLike"]["s3:prefix"] == [f"{PREFIX}*"] for s in reader if s["Resource"] == bucket)
    writer = [s for s in inline_policy(r, "job")["Statement"] if s["Sid"] != "SignTheManifest"]
    assert {s["Resource"] for s in writer} == {bucket, f"{bucket}/{PREFIX}*"}
    assert "s3:PutObject" in next(s["Action"] for s in writer if s["Resource"].endswith("*"))
    assert not any("*" == s["Resource"] or s["Resource"] == f"{bucket}/*" for s in reader + writer)


def test_the_pod_identity_roles_trust_one_service_account_each_and_the_node_role_gets_nothing():
    r = rendered()
    associations = {x.inputs["serviceAccount"]: x for x in r.of_type(ASSOCIATION)}
    assert {"stage-weights", "weights-mirror"} <= set(associations) and "vllm" not in associations
    for sa in ("stage-weights", "weights-mirror"):
        assert associations[sa].inputs["namespace"] == workload.NAMESPACE
        role = next(x for x in r.of_type("aws:iam/role:Role") if x.outputs["arn"] == associations[sa].inputs["roleArn"])
        (trust,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
        assert trust["Condition"]["StringEquals"]["aws:RequestTag/kubernetes-service-account"] == sa
    for attachment in r.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment"):
        assert "S3" not in attachment.inputs["policyArn"]


def test_only_pods_with_an_aws_role_may_reach_the_pod_identity_agent():
    r = rendered()
    policies = {
        p.inputs["metadata"]["name"]: p.inputs["spec"]
        for p in r.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
    }
    agent = {"to": [{"ipBlock": {"cidr": "169.254.170.23/32"}}], "ports": [{"protocol": "TCP", "port": 80}]}
    assert agent in policies[weight_staging.NAME]["egress"] and agent in policies[weight_mirror.JOB_APP]["egress"]
    assert policies[weight_mirror.JOB_APP]["ingress"] == [] and policies[workload.APP]["egress"] == []
    hub = {
        p.inputs["metadata"]["name"]: p.inputs["spec"]
        for p in rendered("dev").of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
    }
    assert agent not in hub[weight_staging.NAME]["egress"] and hub[workload.APP]["egress"] == []
    assert network_policy.POD_IDENTITY_AGENT == "169.254.170.23/32"


# --- the Job and the pods ----------------------------------------------------------------------------


def test_the_job_runs_the_shipped_copy_module_on_a_gpu_node_without_a_gpu():
    r = rendered()
    job = r.one(JOB).inputs
    pod = job["spec"]["template"]["spec"]
    (fill,) = pod["containers"]
    assert fill["command"] == ["python3", weight_mirror.MODULE_PATH, "fill"]
    assert env_of(fill)["BUCKET"] == r.one(BUCKET).inputs["bucket"] and env_of(fill)["REVISION"] == SHA
    assert "nvidia.com/gpu" not in fill["resources"]["limits"]
    assert pod["serviceAccountName"] == "weights-mirror" and pod["automountServiceAccountToken"] is False
    assert pod["tolerations"] == pod_spec(r)["tolerations"] and pod["affinity"] == pod_spec(r)["affinity"]
    code = next(
        x for x in r.of_type("kubernetes:core/v1:ConfigMap") if x.inputs["metadata"]["name"] == weight_mirror.CONFIGMAP
    )
    assert code.inputs["data"]["mirror_copy.py"] == weight_mirror.COPY_MODULE.read_text()
    assert job["metadata"]["name"] == weight_mirror.job_name("MiniMaxAI/MiniMax-M2.5", SHA)
    assert weight_mirror.job_name("MiniMaxAI/MiniMax-M2.5", "f" * 40) != job["metadata"]["name"]


def test_the_stager_copies_from_the_mirror_into_the_cache_vllm_reads_offline_with_its_own_identity():
    r = rendered()
    pod, node = pod_spec(r), stager_spec(r)
    (stage,) = node["containers"]
    vllm = pod["containers"][0]
    assert f'python3 "{weight_mirror.MODULE_PATH}" stage' in stage["command"][-1]
    assert "hf download" not in stage["command"][-1]
    env = env_of(stage)
    assert (
        env["BUCKET"] == r.one(BUCKET).inputs["bucket"] and env["REVISION"] == SHA and env["AWS_REGION"] == "us-east-2"
    )
    assert env["HF_HOME"] == env_of(vllm)["HF_HOME"] and env_of(vllm)["HF_HUB_OFFLINE"] == "1"
    assert node["serviceAccountName"] == "stage-weights" and node["automountServiceAccountToken"] is False
    assert weight_mirror.module_mount() in stage["volumeMounts"] and weight_mirror.module_volume() in node["volumes"]
    # An S3 stager reads with its role and holds no token; the vLLM pod has no AWS identity at all.
    assert "HF_TOKEN" not in env_of(stager_spec(render("prod-8gpu", secrets={"hfToken": "hf_x"}))["containers"][0])
    assert "serviceAccountName" not in pod and weight_mirror.module_volume() not in pod["volumes"]
    assert "--load-format" not in " ".join(vllm["args"])  # vLLM loads the staged files as with the Hub


def test_up_fills_the_mirror_before_any_vllm_pod_and_the_job_waits_for_its_identity():
    r = rendered()
    job, deployment = r.one(JOB), r.vllm_deployment()
    (stager,) = [x for x in r.of_type(DAEMONSET) if x.inputs["metadata"]["name"] == weight_staging.NAME]
    before_stagers = graph_order.created_after(r.resources, stager.urn)
    assert job.urn in before_stagers and stager.urn in graph_order.created_after(r.resources, deployment.urn)
    (reader,) = [x.urn for x in r.of_type(ASSOCIATION) if x.inputs["serviceAccount"] == "stage-weights"]
    assert reader in before_stagers
    before_job = graph_order.created_after(r.resources, job.urn)
    assert {x.urn for x in r.of_type(ASSOCIATION) if x.inputs["serviceAccount"] == "weights-mirror"} <= before_job
    assert r.one("aws:s3/bucketPolicy:BucketPolicy").urn in before_job
    assert job.options["customTimeouts"]["create"] == f"{-(-timeline.job_timeout(WEIGHTS_GB) // 60)}m"
    assert job.options["deleteBeforeReplace"] is True


def test_the_deployment_timers_follow_the_mirror_path():
    s = config.from_stack_file("prod-8gpu")
    spec = rendered().vllm_deployment().inputs["spec"]
    t = timeline.timers(s.serving.replicas, s.serving.model_facts.weights_gb, source="s3")
    assert (
        spec["progressDeadlineSeconds"]
        == t.progress_deadline
        < timeline.timers(s.serving.replicas, s.serving.model_facts.weights_gb).progress_deadline
    )
    assert [
        g for g in timeline.guards(t, s.serving.replicas, s.serving.model_facts.weights_gb, source="s3") if g.short
    ] == []
    assert timeline.job_timeout(WEIGHTS_GB) >= timeline.mirror_fill(WEIGHTS_GB).total


# --- the timeline and the plan -------------------------------------------------------------------------


def test_the_mirror_path_is_faster_and_costs_no_nat_per_new_node():
    hub, s3 = timeline.new_node(WEIGHTS_GB, source="hub"), timeline.new_node(WEIGHTS_GB, source="s3")
    assert s3.seconds(timeline.DOWNLOAD) < 10 * 60 < hub.seconds(timeline.DOWNLOAD)
    assert timeline.transfer_cost(WEIGHTS_GB, source="hub") == pytest.approx(WEIGHTS_GB * 0.045)
    assert timeline.transfer_cost(WEIGHTS_GB, source="s3") < 0.01
    a = timeline.Assumptions()
    assert a.s3_gb_s == pytest.approx(1420 / 906, rel=0.03)  # ai-on-eks: 1.42 TB in 906 s


def test_plan_prints_both_paths_with_their_cost_and_sources(tmp_path, capsys):
    from ops import plan

    assert plan.main("prod-8gpu", str(tmp_path)) == 0
    out = capsys.readouterr().out
    section = out.split("Cold start")[1]
    hub, s3 = timeline.new_node(WEIGHTS_GB, source="hub"), timeline.new_node(WEIGHTS_GB, source="s3")
    assert "new node, Hub, cold compile cache" in section and "new node, S3, warm compile cache" in section
    assert "this stack: weights.source s3" in section
    assert f"{timeline.duration(hub.total)}" in section and f"{timeline.duration(s3.total)}" in section
    assert (
        timeline.usd(timeline.transfer_cost(WEIGHTS_GB, source="hub")) in section
        and "ai-on-eks" in section
        and "gateway endpoint" in section
    )
    assert "s3://minimax-vllm-prod-8gpu-weights-123456789012-us-east-2/" in out
    assert "weights-mirror" in out


def test_the_staged_revision_is_the_mirror_key_and_the_marker_path():
    assert weight_mirror.prefix("MiniMaxAI/MiniMax-M2.5", SHA) == PREFIX
    assert weight_staging.revision(SHA) == SHA


def test_the_weights_guide_states_the_figures_the_timeline_computes():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    guide = (root / "docs" / "weights.md").read_text()
    hub, s3, fill = (
        timeline.new_node(WEIGHTS_GB, source="hub"),
        timeline.new_node(WEIGHTS_GB, source="s3"),
        timeline.mirror_fill(WEIGHTS_GB),
    )
    d = timeline.duration
    assert f"| a new node's download | {d(hub.seconds(timeline.DOWNLOAD))} from the Hub" in guide
    assert f"| {d(s3.seconds(timeline.DOWNLOAD))} from S3" in guide
    assert f"| new node, first answer | {d(hub.total)} | {d(s3.total)} |" in guide
    assert f"| {timeline.usd(timeline.transfer_cost(WEIGHTS_GB, source='hub'))} (NAT" in guide
    assert f"| {timeline.usd(timeline.transfer_cost(WEIGHTS_GB, source='s3'))} (S3 GETs" in guide
    assert fill.total > s3.total  # the fill (once per revision) is the longest wait of a first deploy
