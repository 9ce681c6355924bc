"""Facts of the `endpoint.*` settings: schemes, the ALB's idle-timeout range, ARN shapes.

The section itself is `settings.EndpointSettings`; what it exposes is `components/serving/endpoint.py`.
"""

from __future__ import annotations

SCHEMES = ("internal", "internet-facing")
# ALB connection idle timeout range (elbv2 load balancer attribute idle_timeout.timeout_seconds).
ALB_IDLE_TIMEOUT_RANGE = (1, 4000)
ACM_ARN = r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$"
WAFV2_ARN = r"^arn:aws[a-z-]*:wafv2:[a-z0-9-]+:\d{12}:regional/webacl/[A-Za-z0-9_-]{1,128}/[0-9a-f-]{36}$"
