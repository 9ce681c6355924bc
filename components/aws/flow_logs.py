"""VPC flow logs to a CloudWatch log group encrypted with the stack's KMS key.

Delivery uses a role only the flow logs service of this account and region may assume
(components/aws/iam_trust.py); the role may write only to its own log group.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.aws import iam_trust
from components.aws.launch_template import short_name

ROLE_NAME_PREFIX_MAX = 38  # IAM role names <= 64 characters; a name_prefix adds 26


def flow_logs_group_name(cluster_name: str) -> str:
    return f"/aws/vpc-flow-logs/{cluster_name}"


@dataclass(frozen=True)
class FlowLogsArgs:
    vpc_id: pulumi.Input[str]
    log_group_name: str
    retention_days: int
    kms_key_arn: pulumi.Input[str]  # its key policy must allow CloudWatch Logs for this group
    partition: str
    region: str
    account_id: str
    tags: Mapping[str, str]


class FlowLogs(pulumi.ComponentResource):
    def __init__(self, name: str, args: FlowLogsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("minimax-vllm:aws:FlowLogs", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)
        group = aws.cloudwatch.LogGroup(
            f"{name}-group",
            name=args.log_group_name,
            retention_in_days=args.retention_days,
            kms_key_id=args.kms_key_arn,
            tags=tags,
            opts=child,
        )
        role = aws.iam.Role(
            f"{name}-role",
            name_prefix=short_name(name, "", ROLE_NAME_PREFIX_MAX),
            assume_role_policy=iam_trust.flow_logs_role(args.partition, args.region, args.account_id),
            tags=tags,
            opts=child,
        )
        write = aws.iam.RolePolicy(
            f"{name}-write",
            role=role.id,
            policy=group.arn.apply(
                lambda arn: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": [
                                    "logs:CreateLogStream",
                                    "logs:PutLogEvents",
                                    "logs:DescribeLogGroups",
                                    "logs:DescribeLogStreams",
                                ],
                                "Resource": [arn, f"{arn}:*"],
                            }
                        ],
                    },
                    sort_keys=True,
                )
            ),
            opts=child,
        )
        self.flow_log = aws.ec2.FlowLog(
            f"{name}-vpc",
            vpc_id=args.vpc_id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=group.arn,
            iam_role_arn=role.arn,
            max_aggregation_interval=60,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[write]),
        )
        self.register_outputs({"logGroup": group.name, "flowLogId": self.flow_log.id})
