"""Stack settings: defaults, every shipped stack, and what a bad value is told."""

from __future__ import annotations

from typing import Any

import pytest

from components.platform import config
from components.platform.config import parse
from components.settings import stack as settings
from components.settings.stack import SettingsError

STACKS = ("dev", "staging", "prod-4gpu", "prod-8gpu")
REGION = "us-east-2"


def base() -> dict[str, Any]:
    return {
        "owner": "ml-platform",
        "serving": {"profile": "tp8-ep", "replicas": 1, "maxModelLen": 131072},
        "cluster": {"publicAccessCidrs": ["198.51.100.0/24"]},
        "gpuNodes": {"minSize": 1, "desiredSize": 1, "maxSize": 1},
        "endpoint": {"scheme": "internal", "sourceRanges": ["10.0.0.0/8"]},
    }


def with_(path: str, value: Any) -> dict[str, Any]:
    raw = base()
    section, _, field = path.partition(".")
    if field:
        raw.setdefault(section, {})[field] = value
    else:
        raw[section] = value
    return raw


def problems_of(raw: dict[str, Any], region: str | None = REGION, stack: str = "test") -> list[str]:
    with pytest.raises(SettingsError) as caught:
        parse(raw, stack, region)
    return caught.value.problems


def test_defaults_give_the_guides_8gpu_shape_on_one_p5():
    s = parse(base(), "test", REGION)
    assert s.serving.model == "MiniMaxAI/MiniMax-M2.5"
    assert s.serving.reasoning_parser == "minimax_m2_append_think"
    assert s.serving.tensor_parallel_size == 8
    assert s.serving.image == "vllm/vllm-openai:v0.32.0"
    assert s.gpu_nodes.instance_type == "p5.48xlarge"
    assert s.gpu_nodes.capacity_type == "ON_DEMAND"
    assert s.endpoint.idle_timeout_seconds >= 3600  # the ALB default (60 s) would cut long requests


def test_settings_are_frozen():
    s = parse(base(), "test", REGION)
    with pytest.raises(AttributeError):
        s.serving.replicas = 3  # type: ignore[misc]


@pytest.mark.parametrize("stack", STACKS)
def test_every_shipped_stack_is_valid(stack):
    s = config.from_stack_file(stack)
    assert s.owner and s.region
    assert s.tags == {"project": "minimax-vllm", "stack": stack, "environment": s.environment, "owner": s.owner}


def test_prod_4gpu_packs_two_4gpu_replicas_on_one_p5_and_prod_8gpu_uses_expert_parallel():
    four, eight = config.from_stack_file("prod-4gpu"), config.from_stack_file("prod-8gpu")
    assert (four.serving.profile, four.serving.replicas, four.gpu_nodes.desired_size) == ("tp4", 2, 1)
    assert (eight.serving.profile, eight.serving.tensor_parallel_size) == ("tp8-ep", 8)


def test_no_stack_file_holds_a_secret_in_plain_text():
    for stack in STACKS:
        values = config.read_stack_file(stack)
        for key in settings.SECRET_KEYS:
            value = values.get(f"minimax-vllm:{key}")
            assert value is None or (isinstance(value, dict) and "secure" in value), (stack, key)


def test_numbers_and_booleans_set_with_config_set_path_arrive_as_strings_and_are_accepted():
    raw = with_("serving.replicas", "1")
    raw["serving"]["piecewiseCudagraph"] = "true"
    raw["serving"]["gpuMemoryUtilization"] = "0.85"
    s = parse(raw, "test", REGION)
    assert (s.serving.replicas, s.serving.piecewise_cudagraph, s.serving.gpu_memory_utilization) == (1, True, 0.85)


BAD_INPUTS = [
    # (path, value, text the message must contain)
    ("capacityBlock.minWindowHours", 0, "must be from 1 to 4368 hours"),
    ("capacityBlock.endingSoonHours", "soon", "must be from 1 to 4368 hours"),
    ("serving.profile", "tp16", "choose one of: tp4, tp8-ep, dp8-ep"),
    ("serving.model", "MiniMaxAI/MiniMax-M3", "choose one of: MiniMaxAI/MiniMax-M2.5"),
    ("serving.reasoningParser", "deepseek_r1", "minimax_m2_append_think, minimax_m2"),
    ("serving.tensorParallelSize", 3, "must divide the tp8-ep profile's 8 GPUs"),
    ("serving.tensorParallelSize", 16, "must divide"),
    ("serving.maxModelLen", 300000, "196608 tokens (the model's context window)"),
    ("serving.maxModelLen", "long", "196608"),
    ("serving.gpuMemoryUtilization", 0, "(0, 1]"),
    ("serving.gpuMemoryUtilization", 1.2, "(0, 1]"),
    ("serving.replicas", 0, "from 1 to 64"),
    ("serving.imageTag", "latest", "never 'latest'"),
    ("serving.imageTag", "0.32", "pinned vLLM release tag"),
    ("serving.servedModelName", "has spaces", "letters, digits"),
    ("serving.piecewiseCudagraph", "yes", "true or false"),
    ("serving.kvCacheDtype", "fp8_e5m2", "is not a KV-cache dtype; choose one of: auto, fp8"),
    ("serving.kvCacheDtype", "int8", "choose one of: auto, fp8"),
    ("serving.maxQueuedRequests", -1, "must be 0 (no cap) or the requests one replica may hold"),
    ("serving.maxQueuedRequests", 100_001, "from 1 to 100000"),
    ("serving.maxQueuedRequests", "many", "from 1 to 100000"),
    ("serving.acceptNonCommercialLicense", "yes", "true or false"),
    ("serving.extraArgs", "--max-num-seqs 8", "list of strings"),
    ("serving.unknownField", 1, "not a known setting"),
    ("network.vpcCidr", "10.0.0.0/33", "IPv4 CIDR"),
    ("network.vpcCidr", "10.0.0.1/16", "no host bits"),
    ("network.availabilityZones", ["us-east-2a"], "at least two zone"),
    ("cluster.publicAccessCidrs", ["0.0.0.0/0"], "never 0.0.0.0/0"),
    ("cluster.publicAccessCidrs", ["not-a-cidr"], "IPv4 CIDRs"),
    ("cluster.kubernetesVersion", "1.2x", "EKS version with pinned add-ons: 1.34, 1.35"),
    ("cluster.kubernetesVersion", "1.29", "components/facts/versions.py EKS_ADDON_VERSIONS"),
    ("cluster.adminPrincipalArns", ["arn:aws:iam::123456789012:role/a"], "was replaced by cluster.accessEntries"),
    ("cluster.logRetentionDays", 45, "CloudWatch retention"),
    ("cluster.logRetentionDays", 30, "90 days or more"),  # the audit log: who changed the cluster
    ("gpuNodes.instanceType", "g5.48xlarge", "supported GPU instance type"),
    ("gpuNodes.capacityType", "SPOT", "ON_DEMAND, CAPACITY_BLOCK"),
    ("gpuNodes.capacityReservationId", "reservation-1", "cr-0123456789abcdef0"),
    ("gpuNodes.rootVolumeGiB", 20, "100 to 2000"),
    ("gpuNodes.maxSize", 0, "from 1 to 100"),
    ("endpoint.scheme", "public", "internal, internet-facing"),
    ("endpoint.sourceRanges", ["10.0.0.0/99"], "IPv4 CIDRs"),
    ("endpoint.certificateArn", "arn:aws:iam::123456789012:server-certificate/x", "ACM certificate ARN"),
    ("endpoint.idleTimeoutSeconds", 7200, "1 to 4000"),
    ("owner", "", "owner"),
    ("routing.mode", "gateway", "is not a routing mode; choose one of: direct, router"),
    ("routing.policy", "cache_aware", "choose one of: cache-aware, consistent-hash, round-robin"),
    ("routing.sessionHeader", "x-conversation-id", "consistent hashing reads; choose one of: x-session-id"),
]


@pytest.mark.parametrize(("path", "value", "expected"), BAD_INPUTS, ids=[f"{p}={v!r}" for p, v, _ in BAD_INPUTS])
def test_bad_value_names_key_value_rule_and_fix(path, value, expected):
    problems = problems_of(with_(path, value))
    assert len(problems) == 1, problems
    message = problems[0]
    assert f"minimax-vllm:{path}" in message
    assert repr(value) in message
    assert expected in message
    assert "Fix: pulumi config" in message


def test_a_bad_value_is_not_silently_replaced_by_the_default():
    with pytest.raises(SettingsError):
        parse(with_("serving.maxModelLen", 999999), "test", REGION)


def test_all_problems_are_reported_at_once():
    raw = with_("serving.profile", "tp16")
    raw["endpoint"]["scheme"] = "public"
    raw["gpuNodes"]["capacityType"] = "SPOT"
    assert len(problems_of(raw)) == 3


def test_replicas_that_do_not_fit_the_node_group_are_rejected_with_the_node_count_needed():
    raw = with_("serving.replicas", 2)  # two 8-GPU replicas on one p5
    (message,) = problems_of(raw)
    assert "minimax-vllm:serving.replicas" in message
    assert "needs 16 GPUs on 2 p5.48xlarge node(s)" in message
    assert "gpuNodes.desiredSize' 2" in message


def test_two_4gpu_replicas_share_one_node():
    raw = with_("serving.profile", "tp4")
    raw["serving"]["replicas"] = 2
    assert parse(raw, "test", REGION).serving.gpus_per_replica == 4
    raw["serving"]["replicas"] = 3
    assert "needs 12 GPUs on 2" in problems_of(raw)[0]


def test_node_min_above_max_is_rejected():
    raw = base()
    raw["gpuNodes"] = {"minSize": 3, "desiredSize": 3, "maxSize": 2}
    messages = "\n".join(problems_of(raw))
    assert "minimax-vllm:gpuNodes.minSize = 3 is above gpuNodes.maxSize (2)" in messages


def test_capacity_block_needs_a_reservation_and_one_zone():
    raw = with_("gpuNodes.capacityType", "CAPACITY_BLOCK")
    messages = "\n".join(problems_of(raw))
    assert (
        "gpuNodes.capacityReservationId" in messages
        and "required when gpuNodes.capacityType is CAPACITY_BLOCK" in messages
    )
    assert "exactly the one zone" in messages
    raw["gpuNodes"].update(capacityReservationId="cr-0123456789abcdef0", availabilityZones=["us-east-2b"])
    assert parse(raw, "test", REGION).gpu_nodes.capacity_reservation_id == "cr-0123456789abcdef0"


def test_zones_must_belong_to_the_region():
    raw = with_("network.availabilityZones", ["us-west-2a", "us-west-2b"])
    assert "is not a zone of aws:region us-east-2" in problems_of(raw)[0]


def test_missing_region_is_reported():
    assert "aws:region is not set" in problems_of(base(), region=None)[0]


def test_internet_facing_endpoint_needs_source_ranges():
    raw = with_("endpoint.scheme", "internet-facing")
    raw["endpoint"]["sourceRanges"] = []
    assert "minimax-vllm:endpoint.sourceRanges" in problems_of(raw)[0]


def test_existing_vpc_needs_both_subnet_lists():
    raw = with_("network.existingVpcId", "vpc-0123456789abcdef0")
    assert "network.privateSubnetIds" in problems_of(raw)[0]
    raw["network"].update(publicSubnetIds=["subnet-0123456789abcdef0"], privateSubnetIds=["subnet-0123456789abcdef1"])
    assert parse(raw, "test", REGION).network.existing_vpc_id == "vpc-0123456789abcdef0"


def test_the_load_balancers_subnets_may_not_be_node_subnets():
    # The pods admit the ALB's subnets whole: a node subnet among them would admit every pod there.
    raw = with_("network.existingVpcId", "vpc-0123456789abcdef0")
    both = "subnet-0123456789abcdef1"
    raw["network"].update(publicSubnetIds=["subnet-0123456789abcdef0", both], privateSubnetIds=[both])
    (problem,) = problems_of(raw)
    assert "minimax-vllm:network.publicSubnetIds" in problem and both in problem and "pulumi config set" in problem


@pytest.mark.parametrize(
    "token",
    [
        "--tensor-parallel-size=2",
        "--tensor_parallel_size",
        "-tp",
        "--no-enable-expert-parallel",
        "--reasoning-parser=deepseek_r1",
        "--port",
        "--model",
        "--max-model-len=8192",
    ],
)
def test_extra_args_cannot_override_profile_flags(token):
    (message,) = problems_of(with_("serving.extraArgs", [token]))
    assert "which the profile and settings own" in message
    assert "minimax-vllm:serving.extraArgs" in message


@pytest.mark.parametrize("token", ["--api-key=abc", "--hf-token", "--api_key"])
def test_extra_args_cannot_carry_secrets(token):
    (message,) = problems_of(with_("serving.extraArgs", [token, "abc"]))
    assert "would put a secret into the container's argv" in message
    assert "pulumi config set --secret" in message


def test_unknown_top_level_key_is_reported():
    raw = base()
    raw["servng"] = {"profile": "tp4"}
    assert "minimax-vllm:servng" in problems_of(raw)[0]


def test_unknown_stack_names_the_known_ones():
    with pytest.raises(SettingsError, match="known stacks: dev, prod-4gpu, prod-8gpu, staging"):
        config.from_stack_file("prod")


def test_cluster_name_is_the_project_and_stack_name():
    assert parse(base(), "team-prod-8", REGION).cluster_name == "minimax-vllm-team-prod-8"
    assert len(parse(base(), "x" * 87, REGION).cluster_name) == 100  # the EKS limit


@pytest.mark.parametrize("stack", ["team.prod_8", "team_prod", "prod 8", "x" * 88])
def test_stack_names_that_would_not_map_one_to_one_to_a_cluster_name_are_refused(stack):
    (message,) = problems_of(base(), stack=stack)
    assert f"stack name {stack!r} cannot name its EKS cluster one-to-one" in message
    assert "Fix: use a stack name of letters, digits and hyphens" in message


def test_two_stacks_that_differ_only_in_replaced_characters_cannot_both_exist():
    # Before the rule, both named the same cluster `minimax-vllm-team-a`.
    assert parse(base(), "team-a", REGION).cluster_name == "minimax-vllm-team-a"
    assert problems_of(base(), stack="team_a")


def test_shipped_stacks_have_distinct_cluster_names():
    names = [config.from_stack_file(stack).cluster_name for stack in STACKS]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize(
    ("raw_key", "expected"),
    [
        ("serving.maxModelLength", "did you mean maxModelLen?"),
        ("gpuNodes.rootVolumeGib", "did you mean rootVolumeGiB?"),
        ("endpoint.idleTimeout", "did you mean idleTimeoutSeconds?"),
    ],
)
def test_a_misspelled_key_is_told_the_key_it_resembles(raw_key, expected):
    (message,) = problems_of(with_(raw_key, 1))
    assert f"minimax-vllm:{raw_key} = 1 is not a known setting" in message
    assert expected in message
    assert f"Fix: pulumi config rm --path '{raw_key}'" in message


def test_a_misspelled_top_level_key_is_told_the_key_it_resembles():
    raw = base()
    raw["ownr"] = "ml-platform"
    (message,) = problems_of(raw)
    assert "did you mean owner?" in message and "Fix: pulumi config rm minimax-vllm:ownr" in message


def test_a_section_that_is_not_an_object_is_named():
    (message,) = problems_of(with_("gpuNodes", 5))
    assert "minimax-vllm:gpuNodes = 5 must be an object" in message


def test_a_yaml_syntax_error_names_the_file_line_and_column(tmp_path, monkeypatch):
    (tmp_path / "Pulumi.broken.yaml").write_text(
        "config:\n  aws:region: us-east-2\n  minimax-vllm:serving: {replicas: 1\n"
    )
    monkeypatch.setattr(settings, "STACKS_DIR", tmp_path)
    with pytest.raises(SettingsError) as caught:
        config.from_stack_file("broken")
    (message,) = caught.value.problems
    assert f"{tmp_path / 'Pulumi.broken.yaml'}:4:1: YAML syntax error" in message
    assert "<unicode string>" not in message


def test_spreading_replicas_across_nodes_needs_a_node_per_replica():
    raw = with_("serving.profile", "tp4")
    raw["serving"].update(replicas=2, spreadAcrossNodes=True)
    assert (
        "needs 8 GPUs on 2 p5.48xlarge node(s) (1 replica(s) of the tp4 profile per node, spread across nodes)"
        in problems_of(raw)[0]
    )
    raw["gpuNodes"] = {"minSize": 2, "desiredSize": 2, "maxSize": 2}
    assert parse(raw, "test", REGION).serving.spread_across_nodes is True


def test_the_router_is_the_default_wherever_more_than_one_replica_can_exist():
    assert parse(base(), "test", REGION).routing_mode == "direct"  # one tp8-ep replica, no autoscaling
    assert {s: config.from_stack_file(s).routing_mode for s in STACKS}["prod-4gpu"] == "router"  # two replicas
    dp = with_("serving.profile", "dp8-ep")  # eight data-parallel ranks, eight prefix caches
    assert parse(dp, "test", REGION).routing_mode == "router"
    assert (
        parse(with_("routing", {"mode": "direct"}) | {"serving": dp["serving"]}, "test", REGION).routing_mode
        == "direct"
    )
