"""The `endpoint.*` settings: how clients reach vLLM through the Application Load Balancer.

A pydantic model, so the settings schema can take it as its `endpoint` section as it is;
`parse_endpoint` turns validation errors into the project's problems (key, value, rule, fix).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from components import exposure_rules
from components.exposure_rules import Problem

SCHEMES = ("internal", "internet-facing")
# ALB connection idle timeout range (elbv2 load balancer attribute idle_timeout.timeout_seconds).
ALB_IDLE_TIMEOUT_RANGE = (1, 4000)
ACM_ARN = r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$"
WAFV2_ARN = r"^arn:aws[a-z-]*:wafv2:[a-z0-9-]+:\d{12}:regional/webacl/[A-Za-z0-9_-]{1,128}/[0-9a-f-]{36}$"


class EndpointSettings(BaseModel):
    """The load balancer in front of vLLM (see components/endpoint.py for what it exposes)."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)

    scheme: Literal["internal", "internet-facing"] = "internal"
    # Client networks allowed in (the ALB's security group); IPv4, as the ALB is IPv4.
    source_ranges: tuple[str, ...] = ()
    certificate_arn: str | None = Field(default=None, pattern=ACM_ARN)
    # An hour: a 196K-token prefill or a non-streaming answer can be silent for many minutes.
    idle_timeout_seconds: int = Field(default=3600, ge=ALB_IDLE_TIMEOUT_RANGE[0], le=ALB_IDLE_TIMEOUT_RANGE[1])
    # A WAFv2 regional web ACL, e.g. with a per-IP rate-based rule.
    waf_acl_arn: str | None = Field(default=None, pattern=WAFV2_ARN)
    # The loud opt-out of TLS on an internet-facing endpoint.
    insecure_allow_plain_http_on_internet: bool = False

    @field_validator("source_ranges")
    @classmethod
    def _narrow_ipv4_networks(cls, ranges: tuple[str, ...]) -> tuple[str, ...]:
        for cidr in ranges:
            try:
                net = ipaddress.ip_network(cidr, strict=True)
            except ValueError:
                raise ValueError(f"must be IPv4 CIDRs without host bits; {cidr!r} is not") from None
            if net.version != 4:
                raise ValueError(f"must be IPv4 CIDRs (the load balancer is IPv4); {cidr!r} is not")
        found = exposure_rules.world_range_problems("endpoint.sourceRanges", ranges)
        if found:
            raise ValueError(found[0].rule)
        return ranges


ENDPOINT_KEYS = tuple(f.alias or name for name, f in EndpointSettings.model_fields.items())
_FIELD_BY_ALIAS = {f.alias or name: name for name, f in EndpointSettings.model_fields.items()}

# What each field accepts and an example value for the fix.
_RULES: dict[str, tuple[str, str]] = {
    "scheme": (f"is not a load balancer scheme; choose one of: {', '.join(SCHEMES)}", "internal"),
    "sourceRanges": ("must be a list of IPv4 CIDRs", "198.51.100.0/24"),
    "certificateArn": ("must be an ACM certificate ARN", "arn:aws:acm:us-east-2:123456789012:certificate/<uuid>"),
    "idleTimeoutSeconds": (
        f"must be from {ALB_IDLE_TIMEOUT_RANGE[0]} to {ALB_IDLE_TIMEOUT_RANGE[1]} seconds (the ALB idle timeout range)",
        "3600",
    ),
    "wafAclArn": (
        "must be a WAFv2 regional web ACL ARN",
        "arn:aws:wafv2:us-east-2:123456789012:regional/webacl/<name>/<uuid>",
    ),
    "insecureAllowPlainHttpOnInternet": ("must be true or false", "false"),
}


def parse_endpoint(raw: Mapping[str, Any]) -> tuple[EndpointSettings, list[Problem]]:
    """The endpoint section, or its defaults and every problem found (unknown keys are the caller's)."""
    known = {k: v for k, v in raw.items() if k in _FIELD_BY_ALIAS and v is not None}
    try:
        return EndpointSettings.model_validate(known), []
    except ValidationError as err:
        problems = []
        for e in err.errors():
            alias = str(e["loc"][0])
            rule, example = _RULES[alias]
            if e["type"] == "value_error":  # our validators' messages say it all
                rule = str(e["ctx"]["error"])
            fix = f"pulumi config set --path 'endpoint.{alias}{'[0]' if alias == 'sourceRanges' else ''}' {example}"
            problems.append(Problem(f"endpoint.{alias}", known.get(alias), rule, fix))
        return EndpointSettings(), problems
