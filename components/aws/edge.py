"""What stands in front of the ALB: the stack's WAF web ACL and the bucket for its access logs.

The load balancer controller creates the ALB from the Ingress; these are created beside the
cluster and handed to it through the Ingress annotations (`wafv2-acl-arn`, and the
`access_logs.s3.*` load balancer attributes; components/serving/endpoint.py). Every stack gets
both, whatever its scheme: the web ACL is what keeps a keyless request from waking a GPU node
(components/scaling/policy.py, the wake trigger), and the logs are the only record of who
called. The Ingress depends on them, so `pulumi destroy` removes the ALB first: a web ACL still
associated cannot be deleted, and no log file lands in the bucket once it is being emptied.

The rules themselves are pure data (`web_acl_rules`), so the tests evaluate them on requests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.aws.bucket_name import unique_bucket_name
from components.aws.private_bucket import private_bucket_settings
from components.settings.endpoint import MIN_API_KEY_CHARS

# vLLM accepts `Authorization: Bearer <key>`, the scheme in any case
# (vllm/entrypoints/serve/middleware/authenticate.py); the stack's keys are MIN_API_KEY_CHARS or more.
BEARER = "bearer "
MIN_AUTHORIZATION_BYTES = len(BEARER) + MIN_API_KEY_CHARS
KEYLESS_RULE = "require-bearer-key"
SHORT_KEY_RULE = "require-key-length"
RATE_RULE = "rate-per-client-ip"
# WAF answers a refused request itself; 401 is what vLLM answers a missing key, so a client sees
# the same status with or without the web ACL.
REFUSED_STATUS = 401
# ELB access logs: SSE-S3 is the only server-side encryption they support, and the bucket policy
# grants the log delivery service principal (Elastic Load Balancing User Guide for Application
# Load Balancers, "Enable access logs for your Application Load Balancer", steps 1 and 2).
LOG_DELIVERY_PRINCIPAL = "logdelivery.elasticloadbalancing.amazonaws.com"
LOG_PREFIX = "alb"
LOG_RETENTION_DAYS = 90


@dataclass(frozen=True)
class EdgeArgs:
    cluster_name: str
    account_id: str
    region: str
    partition: str
    rate_limit: int  # requests per client IP in WAF's 5-minute window
    # False when endpoint.wafAclArn names a web ACL of the operator's: an ALB takes one web ACL,
    # so that one must then hold the key and rate rules itself.
    own_web_acl: bool
    tags: dict[str, str]


def logs_bucket_name(cluster_name: str, account_id: str, region: str) -> str:
    """Known before `pulumi up` (the Ingress annotation and the plan state it), unique across
    accounts and regions; a long cluster name is cut and keeps a hash of itself."""
    return unique_bucket_name(cluster_name, "alb-logs", account_id, region)


def _visibility(metric: str) -> dict[str, Any]:
    return {"cloudwatch_metrics_enabled": True, "metric_name": metric, "sampled_requests_enabled": True}


def _authorization() -> dict[str, Any]:
    return {"single_header": {"name": "authorization"}}  # WAF wants header names in lower case


def web_acl_rules(rate_limit: int) -> list[dict[str, Any]]:
    """Block, answering 401: no `Bearer` authorization, or one too short to hold a stack's key.
    Then a per-client-IP rate limit. Requests that pass reach the ALB's listener rules."""
    block = {"block": {"custom_response": {"response_code": REFUSED_STATUS}}}
    return [
        {
            "name": KEYLESS_RULE,
            "priority": 0,
            "action": block,
            "statement": {
                "not_statement": {
                    "statement": {
                        "byte_match_statement": {
                            "field_to_match": _authorization(),
                            "positional_constraint": "STARTS_WITH",
                            "search_string": BEARER,
                            "text_transformations": [{"priority": 0, "type": "LOWERCASE"}],
                        }
                    }
                }
            },
            "visibility_config": _visibility(KEYLESS_RULE),
        },
        {
            "name": SHORT_KEY_RULE,
            "priority": 1,
            "action": block,
            "statement": {
                "size_constraint_statement": {
                    "field_to_match": _authorization(),
                    "comparison_operator": "LT",
                    "size": MIN_AUTHORIZATION_BYTES,
                    "text_transformations": [{"priority": 0, "type": "NONE"}],
                }
            },
            "visibility_config": _visibility(SHORT_KEY_RULE),
        },
        {
            "name": RATE_RULE,
            "priority": 2,
            "action": {"block": {}},
            "statement": {"rate_based_statement": {"aggregate_key_type": "IP", "limit": rate_limit}},
            "visibility_config": _visibility(RATE_RULE),
        },
    ]


def logs_bucket_policy(bucket_arn: str, account_id: str) -> str:
    """ELB log delivery may write this account's log prefix; nobody may use the bucket without TLS."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ElbLogDelivery",
                    "Effect": "Allow",
                    "Principal": {"Service": LOG_DELIVERY_PRINCIPAL},
                    "Action": "s3:PutObject",
                    "Resource": f"{bucket_arn}/{LOG_PREFIX}/AWSLogs/{account_id}/*",
                },
                {
                    "Sid": "TlsOnly",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [bucket_arn, f"{bucket_arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                },
            ],
        },
        sort_keys=True,
    )


class Edge(pulumi.ComponentResource):
    web_acl_arn: pulumi.Output[str] | None  # None: endpoint.wafAclArn's web ACL is used
    logs_bucket: str
    ready: list[pulumi.Resource]  # the Ingress depends on these (created before, deleted after it)

    def __init__(self, name: str, args: EdgeArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("minimax-vllm:aws:Edge", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.logs_bucket = logs_bucket_name(args.cluster_name, args.account_id, args.region)
        arn = f"arn:{args.partition}:s3:::{self.logs_bucket}"
        # Access logs are kept LOG_RETENTION_DAYS; `pulumi destroy` empties and deletes the bucket.
        bucket = aws.s3.Bucket(
            f"{name}-logs",
            bucket=self.logs_bucket,
            force_destroy=True,
            tags={**args.tags, "purpose": "alb-access-logs"},
            opts=child,
        )
        on_bucket = pulumi.ResourceOptions(parent=self, depends_on=[bucket])
        block, ownership, encryption = private_bucket_settings(f"{name}-logs", bucket, on_bucket)
        lifecycle = aws.s3.BucketLifecycleConfiguration(
            f"{name}-logs-lifecycle",
            bucket=bucket.id,
            rules=[
                {
                    "id": "expire-access-logs",
                    "status": "Enabled",
                    "filter": {"prefix": f"{LOG_PREFIX}/"},
                    "expiration": {"days": LOG_RETENTION_DAYS},
                }
            ],
            opts=on_bucket,
        )
        policy = aws.s3.BucketPolicy(
            f"{name}-logs-policy",
            bucket=bucket.id,
            policy=logs_bucket_policy(arn, args.account_id),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[block]),
        )
        self.ready = [bucket, block, ownership, encryption, lifecycle, policy]
        self.web_acl_arn = None
        if not args.own_web_acl:
            self.register_outputs({"logsBucket": self.logs_bucket})
            return
        acl = aws.wafv2.WebAcl(
            f"{name}-waf",
            scope="REGIONAL",
            description="minimax-vllm endpoint: requests without an API key never reach the load balancer's targets",
            default_action={"allow": {}},
            rules=web_acl_rules(args.rate_limit),
            visibility_config=_visibility(f"{args.cluster_name}-waf"),
            tags=args.tags,
            opts=child,
        )
        self.web_acl_arn = acl.arn
        self.ready.append(acl)
        self.register_outputs({"webAclArn": acl.arn, "logsBucket": self.logs_bucket})
