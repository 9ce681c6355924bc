"""Stack configuration -> typed, frozen, validated settings.

The only module that reads `pulumi.Config` or a stack file. Every bad value fails here,
before any resource is declared, with the key, the value, the rule and the fix.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components import profiles, versions

PROJECT = "minimax-vllm"
STACKS_DIR = Path(__file__).resolve().parent.parent / "stacks"

# Keys whose values are Pulumi secrets (`pulumi config set --secret`), never plain text.
SECRET_KEYS = ("apiKey", "hfToken")
REQUIRED_SECRETS = ("apiKey",)


# p5 family: all eight GPUs per node. gpu_memory_gib is per GPU (HBM).
@dataclass(frozen=True)
class InstanceType:
    name: str
    gpus: int
    gpu_model: str
    gpu_memory_gib: int
    vcpus: int
    memory_gib: int
    price_per_hour_usd: float  # us-east on-demand list price, for the plan's cost line


INSTANCE_TYPES = {
    t.name: t
    for t in (
        InstanceType("p5.48xlarge", 8, "H100", 80, 192, 2048, 55.04),
        InstanceType("p5e.48xlarge", 8, "H200", 141, 192, 2048, 63.30),
        InstanceType("p5en.48xlarge", 8, "H200", 141, 192, 2048, 63.30),
    )
}
CAPACITY_TYPES = ("ON_DEMAND", "CAPACITY_BLOCK")
SCHEMES = ("internal", "internet-facing")

_IMAGE_TAG = re.compile(r"^v\d+\.\d+\.\d+(\.post\d+)?$")
_REVISION = re.compile(r"^[0-9a-f]{40}$|^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")
_SERVED_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_RESERVATION = re.compile(r"^cr-[0-9a-f]{8,17}$")
_AZ = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d[a-z]$")
_ARN = re.compile(r"^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:\d{12}:.+$")
_ACM_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$")
_VPC = re.compile(r"^vpc-[0-9a-f]{8,17}$")
_SUBNET = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_NAME_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._:/=+@-]{0,62}$")


class SettingsError(ValueError):
    """Raised with every problem in a stack's configuration, each with its fix."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid stack configuration ({len(problems)} problem(s)):\n{lines}")


@dataclass(frozen=True)
class ServingSettings:
    profile: str
    model: str
    revision: str | None
    served_model_name: str
    reasoning_parser: str
    tensor_parallel_size: int
    replicas: int
    spread_across_nodes: bool
    max_model_len: int
    gpu_memory_utilization: float
    piecewise_cudagraph: bool
    extra_args: tuple[str, ...]
    image: str

    @property
    def gpus_per_replica(self) -> int:
        return profiles.PROFILES[self.profile].gpus_per_replica


@dataclass(frozen=True)
class NetworkSettings:
    vpc_cidr: str
    availability_zones: tuple[str, ...]  # empty: the first two zones that offer the GPU type
    existing_vpc_id: str | None
    public_subnet_ids: tuple[str, ...]
    private_subnet_ids: tuple[str, ...]


@dataclass(frozen=True)
class ClusterSettings:
    kubernetes_version: str
    public_access_cidrs: tuple[str, ...]  # empty: private API endpoint only
    admin_principal_arns: tuple[str, ...]
    system_instance_type: str
    log_retention_days: int


@dataclass(frozen=True)
class GpuNodeSettings:
    instance_type: str
    min_size: int
    desired_size: int
    max_size: int
    capacity_type: str
    capacity_reservation_id: str | None
    availability_zones: tuple[str, ...]  # empty: zones looked up at deploy time
    root_volume_gib: int

    @property
    def instance(self) -> InstanceType:
        return INSTANCE_TYPES[self.instance_type]


@dataclass(frozen=True)
class EndpointSettings:
    scheme: str
    source_ranges: tuple[str, ...]
    certificate_arn: str | None
    idle_timeout_seconds: int


@dataclass(frozen=True)
class Settings:
    stack: str
    environment: str
    owner: str
    region: str
    serving: ServingSettings
    network: NetworkSettings
    cluster: ClusterSettings
    gpu_nodes: GpuNodeSettings
    endpoint: EndpointSettings

    @property
    def cluster_name(self) -> str:
        """EKS cluster name: fixed (not auto-named) because subnet tags must name it up front."""
        return re.sub(r"[^A-Za-z0-9-]", "-", f"{PROJECT}-{self.stack}")[:100]

    @property
    def tags(self) -> dict[str, str]:
        """Tags on every AWS resource: who owns it and which stack made it."""
        return {
            "project": PROJECT,
            "stack": self.stack,
            "environment": self.environment,
            "owner": self.owner,
        }


@dataclass(frozen=True)
class Secrets:
    """Secret config values as Pulumi secret Outputs (never plain strings)."""

    api_key: Any
    hf_token: Any | None


# --- reading raw values ----------------------------------------------------------------


class _Reader:
    """Reads one structured config object, recording problems instead of raising at once."""

    def __init__(self, raw: Mapping[str, Any], problems: list[str]):
        self.raw = raw
        self.problems = problems

    def section(self, key: str, known: tuple[str, ...]) -> Mapping[str, Any]:
        value = self.raw.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.fail(key, value, "must be an object", f"pulumi config set --path '{key}.<field>' <value>")
            return {}
        for field in value:
            if field not in known:
                self.fail(
                    f"{key}.{field}",
                    value[field],
                    f"is not a known setting; known fields of {key}: {', '.join(known)}",
                    f"pulumi config rm --path '{key}.{field}'",
                )
        return value

    def fail(self, key: str, value: Any, rule: str, fix: str) -> None:
        self.problems.append(f"{PROJECT}:{key} = {value!r} {rule}. Fix: {fix}")

    def get(
        self,
        section: Mapping[str, Any],
        path: str,
        default: Any,
        convert: Callable[[Any], Any],
        rule: str,
        check: Callable[[Any], bool] = lambda _: True,
        example: Any = None,
    ) -> Any:
        """One field: converted, checked, or the default (which must itself be valid)."""
        field = path.split(".")[-1]
        if field not in section or section[field] is None:
            return default
        raw = section[field]
        try:
            value = convert(raw)
            ok = check(value)
        except (TypeError, ValueError):
            ok = False
            value = None
        if not ok:
            shown = example if example is not None else default
            self.fail(path, raw, rule, _set_command(path, shown))
            return default
        return value

    def choice(self, section: Mapping[str, Any], path: str, default: str, options: Iterable[str], noun: str) -> str:
        """A field from a closed set: the message lists every allowed value."""
        allowed = tuple(options)
        return self.get(
            section, path, default, _str, f"is not {noun}; choose one of: {', '.join(allowed)}", allowed.__contains__
        )


def _set_command(path: str, example: Any) -> str:
    if isinstance(example, (list, tuple)):
        first = example[0] if example else "<value>"
        return f"pulumi config set --path '{path}[0]' {first}"
    if isinstance(example, bool):
        example = str(example).lower()
    return f"pulumi config set --path '{path}' {example if example is not None else '<value>'}"


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("bool is not an int")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, int):
        return value
    raise TypeError(f"not an integer: {value!r}")


def _float(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError("bool is not a number")
    return float(value)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    raise TypeError(f"not a boolean: {value!r}")


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError("not a non-empty string")
    return value


def _str_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise TypeError("not a list")
    if not all(isinstance(v, str) and v for v in value):
        raise TypeError("list items must be non-empty strings")
    return tuple(value)


def _cidr(value: str) -> bool:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError:
        return False
    return net.version == 4


def _all(pattern: re.Pattern[str] | Callable[[str], bool]) -> Callable[[tuple[str, ...]], bool]:
    test = pattern.match if isinstance(pattern, re.Pattern) else pattern
    return lambda items: all(test(i) for i in items)


# --- parsing --------------------------------------------------------------------------

_SECTIONS = {
    "serving": (
        "profile",
        "model",
        "revision",
        "servedModelName",
        "reasoningParser",
        "tensorParallelSize",
        "replicas",
        "spreadAcrossNodes",
        "maxModelLen",
        "gpuMemoryUtilization",
        "piecewiseCudagraph",
        "extraArgs",
        "imageTag",
    ),
    "network": ("vpcCidr", "availabilityZones", "existingVpcId", "publicSubnetIds", "privateSubnetIds"),
    "cluster": (
        "kubernetesVersion",
        "publicAccessCidrs",
        "adminPrincipalArns",
        "systemInstanceType",
        "logRetentionDays",
    ),
    "gpuNodes": (
        "instanceType",
        "minSize",
        "desiredSize",
        "maxSize",
        "capacityType",
        "capacityReservationId",
        "availabilityZones",
        "rootVolumeGiB",
    ),
    "endpoint": ("scheme", "sourceRanges", "certificateArn", "idleTimeoutSeconds"),
}
# Sections parsed by their own modules (components/scaling_settings.py), known here so the
# unknown-key check accepts them.
OTHER_SECTIONS = ("scaling",)
TOP_LEVEL_KEYS = ("environment", "owner", *_SECTIONS, *OTHER_SECTIONS, *SECRET_KEYS)


def parse(raw: Mapping[str, Any], stack: str, region: str | None) -> Settings:
    """Validate raw config (keys without the project prefix) into Settings, or raise SettingsError."""
    problems: list[str] = []
    r = _Reader(raw, problems)
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            r.fail(
                key,
                raw[key],
                f"is not a known setting; known: {', '.join(TOP_LEVEL_KEYS)}",
                f"pulumi config rm {PROJECT}:{key}",
            )
    if not region:
        problems.append("aws:region is not set. Fix: pulumi config set aws:region us-east-2")
        region = ""

    environment = r.get(raw, "environment", stack, _str, "must match [A-Za-z0-9._:/=+@-]{1,63}", _NAME_TAG.match)
    owner = r.get(
        raw,
        "owner",
        "",
        _str,
        "must name a team or person (tag value, 1-63 characters)",
        _NAME_TAG.match,
        example="ml-platform",
    )
    if not owner and "owner" not in raw:
        r.fail(
            "owner",
            None,
            "is required: every AWS resource is tagged with its owner",
            f"pulumi config set {PROJECT}:owner ml-platform",
        )

    serving = _parse_serving(r)
    network = _parse_network(r)
    cluster = _parse_cluster(r)
    gpu_nodes = _parse_gpu_nodes(r)
    endpoint = _parse_endpoint(r)
    if problems:
        raise SettingsError(problems)

    settings = Settings(stack, environment, owner, region, serving, network, cluster, gpu_nodes, endpoint)
    _check_together(settings, r)
    if problems:
        raise SettingsError(problems)
    return settings


def _parse_serving(r: _Reader) -> ServingSettings:
    s = r.section("serving", _SECTIONS["serving"])
    profile = r.choice(s, "serving.profile", "tp8-ep", profiles.PROFILES, "a profile")
    model = r.choice(s, "serving.model", profiles.MODELS[0], profiles.MODELS, "a supported model")
    default_tp = profiles.PROFILES[profile].tensor_parallel_size
    gpus = profiles.PROFILES[profile].gpus_per_replica
    return ServingSettings(
        profile=profile,
        model=model,
        revision=r.get(
            s,
            "serving.revision",
            None,
            _str,
            "must be a Hugging Face commit sha, branch or tag",
            _REVISION.match,
            example="<40-hex commit sha>",
        ),
        served_model_name=r.get(
            s,
            "serving.servedModelName",
            model.split("/")[-1].lower(),
            _str,
            "must be 1-64 characters of letters, digits, '.', '_' or '-'",
            _SERVED_NAME.match,
        ),
        reasoning_parser=r.choice(
            s,
            "serving.reasoningParser",
            profiles.REASONING_PARSERS[0],
            profiles.REASONING_PARSERS,
            "a MiniMax reasoning parser",
        ),
        tensor_parallel_size=r.get(
            s,
            "serving.tensorParallelSize",
            default_tp,
            _int,
            f"must divide the {profile} profile's {gpus} GPUs per replica (the rest run as data-parallel ranks)",
            lambda v: v in (1, 2, 4, 8) and v <= gpus and gpus % v == 0,
        ),
        replicas=r.get(s, "serving.replicas", 1, _int, "must be an integer from 1 to 64", lambda v: 1 <= v <= 64),
        spread_across_nodes=r.get(s, "serving.spreadAcrossNodes", False, _bool, "must be true or false"),
        max_model_len=r.get(
            s,
            "serving.maxModelLen",
            profiles.MAX_CONTEXT_TOKENS,
            _int,
            f"must be from 1024 to {profiles.MAX_CONTEXT_TOKENS} tokens (the model's context window)",
            lambda v: 1024 <= v <= profiles.MAX_CONTEXT_TOKENS,
        ),
        gpu_memory_utilization=r.get(
            s, "serving.gpuMemoryUtilization", 0.90, _float, "must be a fraction in (0, 1]", lambda v: 0 < v <= 1
        ),
        piecewise_cudagraph=r.get(s, "serving.piecewiseCudagraph", False, _bool, "must be true or false"),
        extra_args=_parse_extra_args(r, s),
        image=_parse_image(r, s),
    )


def _parse_extra_args(r: _Reader, s: Mapping[str, Any]) -> tuple[str, ...]:
    args = r.get(s, "serving.extraArgs", (), _str_list, "must be a list of strings", example=["--max-num-seqs=64"])
    for token in args:
        name = profiles.flag_name(token)
        if name in profiles.SECRET_FLAGS:
            r.fail(
                "serving.extraArgs",
                token,
                "would put a secret into the container's argv; the API key and Hugging Face token come from Kubernetes Secrets",
                f"pulumi config set --secret {PROJECT}:{'apiKey' if name == 'api-key' else 'hfToken'} <value>",
            )
        elif name in profiles.OWNED_FLAGS:
            r.fail(
                "serving.extraArgs",
                token,
                f"sets --{name}, which the profile and settings own and extra arguments may not override",
                "set the matching serving.* setting instead and remove it from serving.extraArgs",
            )
    return args


def _parse_image(r: _Reader, s: Mapping[str, Any]) -> str:
    default_tag = versions.VLLM_IMAGE.split(":", 1)[1]
    tag = r.get(
        s,
        "serving.imageTag",
        default_tag,
        _str,
        "must be a pinned vLLM release tag such as v0.32.0 (never 'latest', 'nightly' or a moving tag)",
        _IMAGE_TAG.match,
    )
    return f"{versions.VLLM_IMAGE.split(':', 1)[0]}:{tag}"


def _parse_network(r: _Reader) -> NetworkSettings:
    s = r.section("network", _SECTIONS["network"])
    return NetworkSettings(
        vpc_cidr=r.get(
            s,
            "network.vpcCidr",
            "10.42.0.0/16",
            _str,
            "must be an IPv4 CIDR from /16 to /20 with no host bits set",
            lambda v: _cidr(v) and 16 <= ipaddress.ip_network(v).prefixlen <= 20,
        ),
        availability_zones=r.get(
            s,
            "network.availabilityZones",
            (),
            _str_list,
            "must be a list of at least two zone names like us-east-2a",
            lambda v: len(v) >= 2 and len(set(v)) == len(v) and _all(_AZ)(v),
            example=["us-east-2a"],
        ),
        existing_vpc_id=r.get(
            s,
            "network.existingVpcId",
            None,
            _str,
            "must be a VPC id like vpc-0123456789abcdef0",
            _VPC.match,
            example="vpc-0123456789abcdef0",
        ),
        public_subnet_ids=r.get(
            s,
            "network.publicSubnetIds",
            (),
            _str_list,
            "must be a list of subnet ids",
            _all(_SUBNET),
            example=["subnet-0123456789abcdef0"],
        ),
        private_subnet_ids=r.get(
            s,
            "network.privateSubnetIds",
            (),
            _str_list,
            "must be a list of subnet ids",
            _all(_SUBNET),
            example=["subnet-0123456789abcdef0"],
        ),
    )


def _parse_cluster(r: _Reader) -> ClusterSettings:
    s = r.section("cluster", _SECTIONS["cluster"])
    return ClusterSettings(
        kubernetes_version=r.get(
            s,
            "cluster.kubernetesVersion",
            versions.KUBERNETES_VERSION,
            _str,
            f"must be an EKS version with pinned add-ons: {', '.join(versions.EKS_ADDON_VERSIONS)}"
            " (to add one, pin its add-ons in components/versions.py EKS_ADDON_VERSIONS)",
            lambda v: v in versions.EKS_ADDON_VERSIONS,
        ),
        public_access_cidrs=r.get(
            s,
            "cluster.publicAccessCidrs",
            (),
            _str_list,
            "must be IPv4 CIDRs, and never 0.0.0.0/0 (the Kubernetes API would be open to the world)",
            _all(lambda c: _cidr(c) and ipaddress.ip_network(c).prefixlen > 0),
            example=["198.51.100.7/32"],
        ),
        admin_principal_arns=r.get(
            s,
            "cluster.adminPrincipalArns",
            (),
            _str_list,
            "must be IAM role or user ARNs",
            _all(_ARN),
            example=["arn:aws:iam::123456789012:role/Admin"],
        ),
        system_instance_type=r.get(
            s,
            "cluster.systemInstanceType",
            "m7i.large",
            _str,
            "must be an instance type name like m7i.large",
            re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$").match,
        ),
        log_retention_days=r.get(
            s,
            "cluster.logRetentionDays",
            30,
            _int,
            "must be a CloudWatch retention: 1, 3, 5, 7, 14, 30, 60, 90, 180 or 365",
            lambda v: v in (1, 3, 5, 7, 14, 30, 60, 90, 180, 365),
        ),
    )


def _parse_gpu_nodes(r: _Reader) -> GpuNodeSettings:
    s = r.section("gpuNodes", _SECTIONS["gpuNodes"])

    def size(key: str, default: int) -> int:
        return r.get(s, f"gpuNodes.{key}", default, _int, "must be an integer from 0 to 100", lambda v: 0 <= v <= 100)

    return GpuNodeSettings(
        instance_type=r.choice(
            s, "gpuNodes.instanceType", "p5.48xlarge", INSTANCE_TYPES, "a supported GPU instance type"
        ),
        min_size=size("minSize", 1),
        desired_size=size("desiredSize", 1),
        max_size=r.get(s, "gpuNodes.maxSize", 1, _int, "must be an integer from 1 to 100", lambda v: 1 <= v <= 100),
        capacity_type=r.choice(s, "gpuNodes.capacityType", "ON_DEMAND", CAPACITY_TYPES, "a capacity type"),
        capacity_reservation_id=r.get(
            s,
            "gpuNodes.capacityReservationId",
            None,
            _str,
            "must be a capacity reservation id like cr-0123456789abcdef0",
            _RESERVATION.match,
            example="cr-0123456789abcdef0",
        ),
        availability_zones=r.get(
            s,
            "gpuNodes.availabilityZones",
            (),
            _str_list,
            "must be a list of zone names like us-east-2a",
            lambda v: len(v) >= 1 and _all(_AZ)(v),
            example=["us-east-2a"],
        ),
        root_volume_gib=r.get(
            s,
            "gpuNodes.rootVolumeGiB",
            200,
            _int,
            "must be from 100 to 2000 GiB (the vLLM image alone is tens of GB)",
            lambda v: 100 <= v <= 2000,
        ),
    )


def _parse_endpoint(r: _Reader) -> EndpointSettings:
    s = r.section("endpoint", _SECTIONS["endpoint"])
    return EndpointSettings(
        scheme=r.choice(s, "endpoint.scheme", "internal", SCHEMES, "a load balancer scheme"),
        source_ranges=r.get(
            s,
            "endpoint.sourceRanges",
            (),
            _str_list,
            "must be a list of IPv4 CIDRs",
            _all(_cidr),
            example=["10.0.0.0/8"],
        ),
        certificate_arn=r.get(
            s,
            "endpoint.certificateArn",
            None,
            _str,
            "must be an ACM certificate ARN",
            _ACM_ARN.match,
            example="arn:aws:acm:us-east-2:123456789012:certificate/<uuid>",
        ),
        # NLB TCP idle timeout range is 60-6000 s; the default 350 s cuts long generations.
        idle_timeout_seconds=r.get(
            s,
            "endpoint.idleTimeoutSeconds",
            3600,
            _int,
            "must be from 60 to 6000 seconds (the NLB TCP idle timeout range)",
            lambda v: 60 <= v <= 6000,
        ),
    )


def _check_together(st: Settings, r: _Reader) -> None:
    """Rules that involve more than one setting."""
    g, sv, net = st.gpu_nodes, st.serving, st.network
    if g.min_size > g.max_size:
        r.fail(
            "gpuNodes.minSize",
            g.min_size,
            f"is above gpuNodes.maxSize ({g.max_size})",
            f"pulumi config set --path 'gpuNodes.maxSize' {g.min_size}",
        )
    if not g.min_size <= g.desired_size <= g.max_size:
        r.fail(
            "gpuNodes.desiredSize",
            g.desired_size,
            f"must lie between gpuNodes.minSize ({g.min_size}) and gpuNodes.maxSize ({g.max_size})",
            f"pulumi config set --path 'gpuNodes.desiredSize' {max(g.min_size, min(g.desired_size, g.max_size))}",
        )
    per_node = g.instance.gpus
    needed = sv.replicas * sv.gpus_per_replica
    replicas_per_node = 1 if sv.spread_across_nodes else per_node // sv.gpus_per_replica
    nodes_needed = -(-sv.replicas // replicas_per_node)
    if nodes_needed > g.desired_size:
        r.fail(
            "serving.replicas",
            sv.replicas,
            f"needs {needed} GPUs on {nodes_needed} {g.instance_type} node(s) ({replicas_per_node} replica(s) of the {sv.profile} profile per node{', spread across nodes' if sv.spread_across_nodes else ''}), but gpuNodes.desiredSize is {g.desired_size}",
            f"pulumi config set --path 'gpuNodes.desiredSize' {nodes_needed} (and maxSize at least that), or lower serving.replicas",
        )
    if g.capacity_type == "CAPACITY_BLOCK" and not g.capacity_reservation_id:
        r.fail(
            "gpuNodes.capacityReservationId",
            None,
            "is required when gpuNodes.capacityType is CAPACITY_BLOCK",
            "pulumi config set --path 'gpuNodes.capacityReservationId' cr-0123456789abcdef0",
        )
    if g.capacity_type == "CAPACITY_BLOCK" and len(g.availability_zones) != 1:
        r.fail(
            "gpuNodes.availabilityZones",
            list(g.availability_zones),
            "must name exactly the one zone of the Capacity Block",
            "pulumi config set --path 'gpuNodes.availabilityZones[0]' <zone of the reservation>",
        )
    if net.existing_vpc_id and not (net.public_subnet_ids and net.private_subnet_ids):
        r.fail(
            "network.privateSubnetIds",
            list(net.private_subnet_ids),
            "and network.publicSubnetIds are both required with network.existingVpcId",
            "pulumi config set --path 'network.privateSubnetIds[0]' subnet-...",
        )
    if (net.public_subnet_ids or net.private_subnet_ids) and not net.existing_vpc_id:
        r.fail(
            "network.existingVpcId",
            None,
            "is required when subnet ids are given",
            "pulumi config set --path 'network.existingVpcId' vpc-...",
        )
    if net.availability_zones and g.availability_zones:
        stray = sorted(set(g.availability_zones) - set(net.availability_zones))
        if stray:
            r.fail(
                "gpuNodes.availabilityZones",
                list(g.availability_zones),
                f"names zones outside network.availabilityZones: {', '.join(stray)}",
                "pulumi config set --path 'gpuNodes.availabilityZones[0]' " + net.availability_zones[0],
            )
    for zone in (*net.availability_zones, *g.availability_zones):
        if st.region and not zone.startswith(st.region):
            r.fail(
                "network.availabilityZones",
                zone,
                f"is not a zone of aws:region {st.region}",
                f"use zones of {st.region}, e.g. {st.region}a",
            )
            break
    if st.endpoint.scheme == "internet-facing" and not st.endpoint.source_ranges:
        r.fail(
            "endpoint.sourceRanges",
            [],
            "must list the client networks allowed to reach an internet-facing endpoint",
            "pulumi config set --path 'endpoint.sourceRanges[0]' 198.51.100.0/24",
        )
    from components import capacity  # imports this module; deferred to avoid a cycle

    r.problems.extend(capacity.check(st))


# --- sources --------------------------------------------------------------------------


def read_stack_file(stack: str) -> dict[str, Any]:
    """The `config:` map of stacks/Pulumi.<stack>.yaml, keys as written (`ns:key`)."""
    stacks_dir = STACKS_DIR
    path = stacks_dir / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in stacks_dir.glob("Pulumi.*.yaml"))
        raise SettingsError([f"stack '{stack}' has no file {path}; known stacks: {', '.join(known)}"])
    doc = yaml.safe_load(path.read_text()) or {}
    return dict(doc.get("config") or {})


def split_stack_config(config: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Project keys (prefix removed, secure values dropped) and the AWS region."""
    ours = {}
    for key, value in config.items():
        ns, _, name = key.partition(":")
        if ns == PROJECT and name not in SECRET_KEYS:
            ours[name] = value
    return ours, config.get("aws:region")


def from_stack_file(stack: str) -> Settings:
    """Settings of a stack straight from its file, for the ops commands (no Pulumi engine)."""
    raw, region = split_stack_config(read_stack_file(stack))
    return parse(raw, stack, region)


def load() -> tuple[Settings, Secrets]:
    """Settings and secrets of the running Pulumi program (the only `pulumi.Config` reader)."""
    import pulumi

    cfg = pulumi.Config(PROJECT)
    raw = {key: cfg.get_object(key) for key in _SECTIONS}
    raw.update({key: cfg.get(key) for key in ("environment", "owner")})
    raw = {k: v for k, v in raw.items() if v is not None}
    raw.update({key: None for key in _unknown_config_keys()})
    problems: list[str] = []
    for key in REQUIRED_SECRETS:
        if cfg.get_secret(key) is None:
            problems.append(
                f"{PROJECT}:{key} is not set; it is a required secret. Fix: pulumi config set --secret {PROJECT}:{key} <value>"
            )
    try:
        settings = parse(raw, pulumi.get_stack(), pulumi.Config("aws").get("region"))
    except SettingsError as err:
        raise SettingsError(problems + err.problems) from None
    if problems:
        raise SettingsError(problems)
    return settings, Secrets(api_key=cfg.require_secret("apiKey"), hf_token=cfg.get_secret("hfToken"))


def _unknown_config_keys() -> list[str]:
    """Project keys in the stack's config that this module does not know (typos)."""
    from pulumi.runtime import config as runtime_config

    present = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env() or {})
    prefix = f"{PROJECT}:"
    return sorted(k[len(prefix) :] for k in present if k.startswith(prefix) and k[len(prefix) :] not in TOP_LEVEL_KEYS)
