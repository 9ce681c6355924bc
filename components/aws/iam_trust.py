"""Trust policies of every IAM role the stack makes, each with the conditions AWS supports for
its service principal (confused-deputy prevention).

- eks.amazonaws.com (cluster role): aws:SourceAccount and aws:SourceArn = the cluster's ARN
  (EKS user guide, "Cross-service confused deputy prevention in Amazon EKS").
- vpc-flow-logs.amazonaws.com (flow log delivery): aws:SourceAccount and aws:SourceArn =
  this account's flow logs in the region (VPC user guide, IAM role for flow logs).
- pods.eks.amazonaws.com (EKS Pod Identity): AWS documents no aws:SourceAccount/SourceArn
  for it; it documents the session tags it sets instead, and the role is scoped by them to
  one service account in one namespace of this cluster, which is narrower than an account.
- ec2.amazonaws.com (node roles): EC2 sets neither key when an instance profile's role is
  assumed, so a condition on them would stop every node from getting credentials. The node
  roles are protected by who may pass them (iam:PassRole) and by IMDS hop limit 1.
"""

from __future__ import annotations

import json
from typing import Any


def _trust(service: str, actions: list[str], condition: dict[str, Any] | None = None) -> str:
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": {"Service": service}, "Action": actions}
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]}, sort_keys=True)


def cluster_arn(partition: str, region: str, account_id: str, cluster_name: str) -> str:
    return f"arn:{partition}:eks:{region}:{account_id}:cluster/{cluster_name}"


def eks_cluster_role(partition: str, region: str, account_id: str, cluster_name: str) -> str:
    return _trust(
        "eks.amazonaws.com",
        ["sts:AssumeRole", "sts:TagSession"],
        {
            "StringEquals": {"aws:SourceAccount": account_id},
            "ArnEquals": {"aws:SourceArn": cluster_arn(partition, region, account_id, cluster_name)},
        },
    )


def ec2_node_role() -> str:
    """No condition: see the module docstring."""
    return _trust("ec2.amazonaws.com", ["sts:AssumeRole"])


def pod_identity_role(cluster_arn_value: str, namespace: str, service_account: str) -> str:
    """One service account of one cluster, by the session tags EKS Pod Identity sets."""
    return _trust(
        "pods.eks.amazonaws.com",
        ["sts:AssumeRole", "sts:TagSession"],
        {
            "StringEquals": {
                "aws:RequestTag/eks-cluster-arn": cluster_arn_value,
                "aws:RequestTag/kubernetes-namespace": namespace,
                "aws:RequestTag/kubernetes-service-account": service_account,
            }
        },
    )


def flow_logs_role(partition: str, region: str, account_id: str) -> str:
    return _trust(
        "vpc-flow-logs.amazonaws.com",
        ["sts:AssumeRole"],
        {
            "StringEquals": {"aws:SourceAccount": account_id},
            "ArnLike": {"aws:SourceArn": f"arn:{partition}:ec2:{region}:{account_id}:vpc-flow-log/*"},
        },
    )


def logs_key_policy(partition: str, region: str, account_id: str, log_group_names: list[str]) -> str:
    """KMS key policy: the account administers the key (IAM policies decide who); CloudWatch Logs
    of this region may use it only for the named log groups (encryption-context condition)."""
    log_group_arns = sorted(f"arn:{partition}:logs:{region}:{account_id}:log-group:{n}" for n in log_group_names)
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AccountAdministersTheKeyThroughIam",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Sid": "CloudWatchLogsEncryptsTheStackLogGroups",
                    "Effect": "Allow",
                    "Principal": {"Service": f"logs.{region}.amazonaws.com"},
                    "Action": [
                        "kms:Encrypt*",
                        "kms:Decrypt*",
                        "kms:ReEncrypt*",
                        "kms:GenerateDataKey*",
                        "kms:Describe*",
                    ],
                    "Resource": "*",
                    "Condition": {"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": log_group_arns}},
                },
            ],
        },
        sort_keys=True,
    )
