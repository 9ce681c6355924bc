"""The stack's settings as a declared schema: typed, frozen, validated sections.

Every bad value fails here, before any resource is declared, in one message per problem:
key, bad value, rule (with the allowed values of a closed set) and the `pulumi config set`
fix. Reading `pulumi.Config` and stack files is `components/platform/config.py`'s job.

Adding a setting is one typed field, one rule and one test:

    class ServingSettings:
        max_num_seqs: Int = rule(256, "must be from 1 to 1024", ge=1, le=1024)   # YAML key maxNumSeqs

    def test_max_num_seqs_is_bounded():   # tests/test_settings.py, or a row in BAD_INPUTS
        assert "from 1 to 1024" in problems_of(with_("serving.maxNumSeqs", 0))[0]

The field's camelCase alias is the YAML key; `rule(...)`'s text is what a user reads when
the value breaks the constraint (`ge`/`le`) or the check in the field's type (`matches`,
`one_of`, `each`). Rules between settings go into `components/platform/settings_rules.py`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, field_validator
from pydantic.dataclasses import dataclass

from components.facts import versions
from components.facts.catalog import (
    CAPACITY_TYPES,
    INSTANCE_TYPES,
    SCHEMES,
    SUBNET_LAYOUTS,
    InstanceType,
)
from components.settings import aws as aws_config
from components.settings.access import AccessEntry, refuse_legacy_admins, unique_principals
from components.settings.capacity_block import CapacityBlockSettings
from components.settings.endpoint import EndpointSettings
from components.settings.node_update import CAPACITY_BLOCK_UPDATES
from components.settings.observability import ObservabilitySettings
from components.settings.routing import RoutingSettings
from components.settings.scaling import ScalingSettings
from components.settings.schema import (
    SECTION,
    Bool,
    Int,
    SettingsError,
    Str,
    StrList,
    cidr,
    closed,
    each,
    holds,
    matches,
    one_of,
    render_errors,
    rule,
    unknown_key,
)
from components.settings.serving import ServingSettings
from components.settings.weights import WeightsSettings

__all__ = ["CAPACITY_TYPES", "INSTANCE_TYPES", "SCHEMES", "InstanceType", "SettingsError"]  # re-exported facts

PROJECT = "minimax-vllm"
STACKS_DIR = Path(__file__).resolve().parents[2] / "stacks"  # stacks/Pulumi.<stack>.yaml
# Keys whose values are Pulumi secrets (`pulumi config set --secret`), never plain text.
SECRET_KEYS = ("apiKey", "hfToken")
REQUIRED_SECRETS = ("apiKey",)
# EKS allows 100 characters; the cluster name is `minimax-vllm-<stack>`.
CLUSTER_NAME_MAX = 100
_STACK_NAME = re.compile(r"^[A-Za-z0-9-]+$")


_AZ = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d[a-z]$").fullmatch
_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 180, 365)  # CloudWatch Logs retention values
_AUDIT_RETENTION_DAYS = tuple(d for d in _RETENTION_DAYS if d >= 90)
_SUBNET = re.compile(r"^subnet-[0-9a-f]{8,17}$").fullmatch
_NAME_TAG = r"^[A-Za-z0-9][A-Za-z0-9 ._:/=+@-]{0,62}$"


# --- the schema -----------------------------------------------------------------------


@dataclass(frozen=True, config=SECTION)
class NetworkSettings:
    vpc_cidr: Annotated[Str, holds(lambda v: cidr(v, 16, 20))] = rule(
        "10.42.0.0/16", "must be an IPv4 CIDR from /16 to /20 with no host bits set"
    )
    # empty: the first two zones that offer the GPU type (offline; a real deploy needs them recorded)
    availability_zones: Annotated[StrList, each(_AZ, 2), holds(lambda v: len(set(v)) == len(v))] = rule(
        (), "must be a list of at least two zone names like us-east-2a", ["us-east-2a"]
    )
    # Recorded with the zones (ops preflight prints both); unset: byZone, and a real deploy stops.
    subnet_layout: Annotated[Str, one_of(SUBNET_LAYOUTS)] | None = rule(None, closed("a subnet layout", SUBNET_LAYOUTS))
    existing_vpc_id: Annotated[Str, matches(r"^vpc-[0-9a-f]{8,17}$")] | None = rule(
        None, "must be a VPC id like vpc-0123456789abcdef0", "vpc-0123456789abcdef0"
    )
    public_subnet_ids: Annotated[StrList, each(_SUBNET)] = rule(
        (),
        "must be a list of subnet ids: the ALB's subnets, whatever its scheme; no nodes or pods there",
        ["subnet-0123456789abcdef0"],
    )
    private_subnet_ids: Annotated[StrList, each(_SUBNET)] = rule(
        (), "must be a list of subnet ids", ["subnet-0123456789abcdef0"]
    )


@dataclass(frozen=True, config=SECTION)
class ClusterSettings:
    kubernetes_version: Annotated[Str, one_of(versions.EKS_ADDON_VERSIONS)] = rule(
        versions.KUBERNETES_VERSION,
        f"must be an EKS version with pinned add-ons: {', '.join(versions.EKS_ADDON_VERSIONS)}"
        " (to add one, pin its add-ons in components/facts/versions.py EKS_ADDON_VERSIONS)",
    )
    # empty: private API endpoint only
    public_access_cidrs: Annotated[StrList, each(lambda c: cidr(c, min_prefix=1))] = rule(
        (),
        "must be IPv4 CIDRs, and never 0.0.0.0/0 (the Kubernetes API would be open to the world)",
        ["198.51.100.7/32"],
    )
    # Who may use the Kubernetes API beside the deployer, with which EKS access policy and scope
    # (components/settings/access.py).
    access_entries: Annotated[tuple[AccessEntry, ...], AfterValidator(unique_principals)] = rule(
        (), "must be a list of {principalArn, policy, namespaces} entries"
    )
    # Replaced by accessEntries: refused with the commands that move its ARNs there.
    admin_principal_arns: Annotated[tuple[str, ...], BeforeValidator(refuse_legacy_admins)] = rule(
        (), "was replaced by cluster.accessEntries"
    )
    system_instance_type: Annotated[Str, matches(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")] = rule(
        "m7i.large", "must be an instance type name like m7i.large"
    )
    # The control plane's audit log is the record of who changed the cluster: kept 90 days at least.
    log_retention_days: Annotated[Int, one_of(_AUDIT_RETENTION_DAYS)] = rule(
        90, f"must be a CloudWatch retention of 90 days or more: {', '.join(map(str, _AUDIT_RETENTION_DAYS))}"
    )


@dataclass(frozen=True, config=SECTION)
class GpuNodeSettings:
    instance_type: Annotated[Str, one_of(INSTANCE_TYPES)] = rule(
        "p5.48xlarge", closed("a supported GPU instance type", INSTANCE_TYPES)
    )
    min_size: Int = rule(1, "must be an integer from 0 to 100", ge=0, le=100)
    desired_size: Int = rule(1, "must be an integer from 0 to 100", ge=0, le=100)
    max_size: Int = rule(1, "must be an integer from 1 to 100", ge=1, le=100)
    capacity_type: Annotated[Str, one_of(CAPACITY_TYPES)] = rule("ON_DEMAND", closed("a capacity type", CAPACITY_TYPES))
    capacity_reservation_id: Annotated[Str, matches(r"^cr-[0-9a-f]{8,17}$")] | None = rule(
        None, "must be a capacity reservation id like cr-0123456789abcdef0", "cr-0123456789abcdef0"
    )
    # empty: the network zones that offer the type (offline; a real deploy needs them recorded)
    availability_zones: Annotated[StrList, each(_AZ, 1)] = rule(
        (), "must be a list of zone names like us-east-2a", ["us-east-2a"]
    )
    root_volume_gib: Int = rule(
        200, "must be from 100 to 2000 GiB (the vLLM image alone is tens of GB)", ge=100, le=2000, alias="rootVolumeGiB"
    )
    # How a Capacity Block group takes upgrades (EKS needs it at 0 nodes): components/settings/node_update.py.
    capacity_block_update: Annotated[Str, one_of(CAPACITY_BLOCK_UPDATES)] = rule(
        "hold", closed("a Capacity Block update mode", CAPACITY_BLOCK_UPDATES)
    )

    @property
    def instance(self) -> InstanceType:
        return INSTANCE_TYPES[self.instance_type]


@dataclass(frozen=True, config=SECTION)
class SecuritySettings:
    # Every accepted and rejected connection of the VPC, to a KMS-encrypted log group: the record
    # an incident needs. Costs CloudWatch ingestion, so only the prod stacks turn it on.
    flow_logs: Bool = rule(False, "must be true or false")
    flow_log_retention_days: Annotated[Int, one_of(_RETENTION_DAYS)] = rule(
        90, f"must be a CloudWatch retention: {', '.join(map(str, _RETENTION_DAYS))}"
    )


@dataclass(frozen=True, config=SECTION)
class Settings:
    stack: str
    region: str
    owner: Annotated[Str, matches(_NAME_TAG)] = Field(
        description="must name a team or person (tag value, 1-63 characters)",
        json_schema_extra={"example": "ml-platform", "required": "every AWS resource is tagged with its owner"},
    )
    environment: Annotated[Str, matches(_NAME_TAG)] | None = rule(
        None, "must match [A-Za-z0-9._:/=+@-]{1,63}", validate_default=True
    )
    serving: ServingSettings = Field(default_factory=ServingSettings)
    network: NetworkSettings = Field(default_factory=NetworkSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    gpu_nodes: GpuNodeSettings = Field(default_factory=GpuNodeSettings)
    endpoint: EndpointSettings = Field(default_factory=EndpointSettings)
    capacity_block: CapacityBlockSettings = Field(default_factory=CapacityBlockSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    scaling: ScalingSettings = Field(default_factory=ScalingSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)  # components/settings/routing.py
    weights: WeightsSettings = Field(default_factory=WeightsSettings)  # components/settings/weights.py
    # Facts of the stack's AWS provider (`aws:profile`, `aws:assumeRoles`), never set under
    # minimax-vllm: the kubeconfig acts as the same principal (components/settings/aws.py).
    aws_profile: str | None = None
    aws_role_arn: str | None = None

    @field_validator("environment")
    @classmethod
    def _environment_defaults_to_the_stack(cls, value: str | None, info: Any) -> str:
        return value or info.data.get("stack", "")

    @property
    def cluster_name(self) -> str:
        """EKS cluster name: fixed (not auto-named) because subnet tags must name it up front.

        One-to-one with the stack name (see `stack_name_problems`), so two stacks never share it.
        """
        return f"{PROJECT}-{self.stack}"

    @property
    def is_production(self) -> bool:
        """A production stack: its environment or stack name starts with "prod" (the one definition)."""
        return any(name.lower().startswith("prod") for name in (self.environment, self.stack))

    @property
    def replicas_per_node(self) -> int:
        """How many replicas one GPU node can hold (one when they are spread across nodes)."""
        per_node = self.gpu_nodes.instance.gpus // self.serving.gpus_per_replica
        return 1 if self.serving.spread_across_nodes else per_node

    @property
    def can_have_replicas(self) -> bool:
        """More than one prefix cache can serve the stack: several replicas, autoscaling past one,
        or dp8-ep (each data-parallel rank holds its own prefix cache)."""
        scaling = self.scaling.enabled and self.scaling.max_replicas > 1
        return self.serving.replicas > 1 or scaling or self.serving.profile == "dp8-ep"

    @property
    def routing_mode(self) -> str:
        """The routing mode the stack runs: the one set, else the default for its shape."""
        return self.routing.mode or ("router" if self.can_have_replicas else "direct")

    @property
    def tags(self) -> dict[str, str]:
        """Tags on every AWS resource: who owns it and which stack made it."""
        return {"project": PROJECT, "stack": self.stack, "environment": self.environment, "owner": self.owner}


@dataclass(frozen=True)
class Secrets:
    """Secret config values as Pulumi secret Outputs (never plain strings)."""

    api_key: Any
    hf_token: Any | None


# The keys a stack sets (`stack` and `region` come from Pulumi), and all keys it may hold.
PULUMI_GIVEN = ("stack", "region", "aws_profile", "aws_role_arn")  # from Pulumi and the `aws:` config
USER_FIELDS = tuple(f.alias or n for n, f in Settings.__pydantic_fields__.items() if n not in PULUMI_GIVEN)
TOP_LEVEL_KEYS = (*USER_FIELDS, *SECRET_KEYS)


# --- parsing --------------------------------------------------------------------------


def parse(raw: Mapping[str, Any], stack: str, region: str | None, aws: Mapping[str, Any] | None = None) -> Settings:
    """Validate raw config (keys without the project prefix) into Settings, or raise SettingsError.

    aws: the stack's `aws:` config (keys without the prefix), for the provider's identity.
    Checks the schema only; `config.parse` adds the rules between settings and the capacity check.
    """
    problems = stack_name_problems(stack)
    who, aws_problems = aws_config.identity(aws or {})
    problems += aws_problems
    if not region:
        problems.append("aws:region is not set. Fix: pulumi config set aws:region us-east-2")
    data = {
        k: _without_nones(v) for k, v in raw.items() if k not in SECRET_KEYS and (v is not None or k not in USER_FIELDS)
    }
    for key in PULUMI_GIVEN:  # Pulumi's to give, not the stack file's
        if key in data:
            problems.append(unknown_key(PROJECT, "", key, data.pop(key), TOP_LEVEL_KEYS))
    try:
        settings = Settings(
            stack=stack, region=region or "", aws_profile=who.profile, aws_role_arn=who.role_arn, **data
        )
    except ValidationError as err:
        raise SettingsError(problems + render_errors(err, Settings, data, PROJECT, TOP_LEVEL_KEYS)) from None
    if problems:
        raise SettingsError(problems)
    return settings


def _without_nones(value: Any) -> Any:
    """An unset field (`~` in YAML) reads as its default, as `pulumi config` treats it."""
    return {k: v for k, v in value.items() if v is not None} if isinstance(value, Mapping) else value


def stack_name_problems(stack: str) -> list[str]:
    """Two stacks must never share a cluster: the stack name must map one-to-one to its name."""
    prefix = f"{PROJECT}-"
    if _STACK_NAME.fullmatch(stack) and len(prefix + stack) <= CLUSTER_NAME_MAX:
        return []
    return [
        f"stack name {stack!r} cannot name its EKS cluster one-to-one: cluster names allow only letters,"
        f" digits and hyphens, at most {CLUSTER_NAME_MAX - len(prefix)} characters after '{prefix}',"
        " so another stack could map to the same cluster. Fix: use a stack name of letters, digits and"
        f" hyphens, e.g. pulumi stack rename {re.sub(r'[^A-Za-z0-9-]', '-', stack)[: CLUSTER_NAME_MAX - len(prefix)]}"
        " (and rename its stacks/Pulumi.<stack>.yaml)"
    ]
