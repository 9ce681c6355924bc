"""The stack's `endpoint` section, and its facts: schemes, the ALB's idle-timeout range, ARN shapes.

What the endpoint exposes is `components/serving/endpoint.py`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic.dataclasses import dataclass

from components.settings.schema import SECTION, Bool, Int, Str, StrList, cidr, closed, each, matches, one_of, rule

SCHEMES = ("internal", "internet-facing")
MIN_API_KEY_CHARS = 32  # `openssl rand -hex 32` gives 64; the WAF refuses shorter bearer values too
# WAF rate-based rules: requests per client IP in the evaluation window (5 minutes by default);
# AWS WAF accepts limits from 10 up (AWS WAF Developer Guide, "Rate-based rule statement").
WAF_RATE_LIMIT_MIN = 10
# ALB connection idle timeout range (elbv2 load balancer attribute idle_timeout.timeout_seconds).
ALB_IDLE_TIMEOUT_RANGE = (1, 4000)
ACM_ARN = r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$"
WAFV2_ARN = r"^arn:aws[a-z-]*:wafv2:[a-z0-9-]+:\d{12}:regional/webacl/[A-Za-z0-9_-]{1,128}/[0-9a-f-]{36}$"


@dataclass(frozen=True, config=SECTION)
class EndpointSettings:
    """The Application Load Balancer in front of vLLM (components/serving/endpoint.py: what it exposes)."""

    scheme: Annotated[Str, one_of(SCHEMES)] = rule("internal", closed("a load balancer scheme", SCHEMES))
    # Client networks allowed in (the ALB's security group); IPv4, as the ALB is IPv4. Ranges that
    # together open it to the internet are refused in settings_rules (by address arithmetic).
    source_ranges: Annotated[StrList, each(cidr)] = rule(
        (), "must be a list of IPv4 CIDRs without host bits (the load balancer is IPv4)", ["198.51.100.0/24"]
    )
    certificate_arn: Annotated[Str, matches(ACM_ARN)] | None = rule(
        None, "must be an ACM certificate ARN", "arn:aws:acm:us-east-2:123456789012:certificate/<uuid>"
    )
    # An hour: a 196K-token prefill or a non-streaming answer can be silent for many minutes.
    # ALB idle_timeout.timeout_seconds allows 1-4000 s, with or without TLS.
    idle_timeout_seconds: Int = rule(
        3600,
        f"must be from {ALB_IDLE_TIMEOUT_RANGE[0]} to {ALB_IDLE_TIMEOUT_RANGE[1]} seconds (the ALB idle timeout range)",
        ge=ALB_IDLE_TIMEOUT_RANGE[0],
        le=ALB_IDLE_TIMEOUT_RANGE[1],
    )
    # A WAFv2 regional web ACL, e.g. with a per-IP rate-based rule.
    waf_acl_arn: Annotated[Str, matches(WAFV2_ARN)] | None = rule(
        None,
        "must be a WAFv2 regional web ACL ARN",
        "arn:aws:wafv2:us-east-2:123456789012:regional/webacl/<name>/<uuid>",
    )
    # The stack's web ACL blocks a client IP that sends more than this in 5 minutes
    # (components/aws/edge.py). An agent session sends a few requests a minute.
    waf_rate_limit: Int = rule(
        2000, f"must be a whole number of requests per 5 minutes, at least {WAF_RATE_LIMIT_MIN}", ge=WAF_RATE_LIMIT_MIN
    )
    # The loud opt-out of TLS on an internet-facing endpoint.
    insecure_allow_plain_http_on_internet: Bool = rule(False, "must be true or false")
    # The loud opt-out of TLS on an internal endpoint: the key and the prompts then cross the
    # client networks (`sourceRanges`) in clear. Without it an internal endpoint needs
    # `certificateArn` too (ACM: a private CA's certificate, or an imported one).
    plain_http_acknowledged: Bool = rule(False, "must be true or false")

    @property
    def plain_http_accepted(self) -> bool:
        """No certificate, and the scheme's opt-out says so on purpose."""
        if self.certificate_arn:
            return False
        if self.scheme == "internet-facing":
            return self.insecure_allow_plain_http_on_internet
        return self.plain_http_acknowledged
