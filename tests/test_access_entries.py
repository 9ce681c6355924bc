"""`cluster.accessEntries`: each principal's EKS access policy and scope, and the clear error
(with the `pulumi config set` fix) for every bad value, before any resource is declared."""

from __future__ import annotations

import pytest

from components.platform.config import parse
from components.settings.access import ACCESS_POLICIES
from tests.test_settings import REGION, problems_of, with_

ARN = "arn:aws:iam::123456789012:role/ml-engineers"


def entries(*items: dict) -> dict:
    return with_("cluster.accessEntries", list(items))


def test_an_entry_parses_to_its_policy_and_scope():
    s = parse(
        entries({"principalArn": ARN, "policy": "AmazonEKSEditPolicy", "namespaces": ["minimax-vllm"]}), "t", REGION
    )
    (entry,) = s.cluster.access_entries
    assert (entry.principal_arn, entry.policy, entry.namespaces, entry.scope) == (
        ARN,
        "AmazonEKSEditPolicy",
        ("minimax-vllm",),
        "namespace",
    )
    assert parse(with_("owner", "ml-platform"), "t", REGION).cluster.access_entries == ()  # nobody but the deployer


BAD = [
    (
        {"principalArn": ARN, "policy": "AmazonEKSReadOnlyPolicy"},
        "cluster.accessEntries[0].policy = 'AmazonEKSReadOnlyPolicy' is not an EKS access policy; choose one of: "
        + ", ".join(ACCESS_POLICIES),
        "pulumi config set --path 'cluster.accessEntries[0].policy' AmazonEKSViewPolicy",
    ),
    (
        {"principalArn": ARN, "policy": "AmazonEKSClusterAdminPolicy", "namespaces": ["minimax-vllm"]},
        "cluster.accessEntries[0].policy = 'AmazonEKSClusterAdminPolicy' is cluster-wide whatever the scope",
        "pulumi config set --path 'cluster.accessEntries[0].policy' AmazonEKSAdminPolicy",
    ),
    (
        {"principalArn": ARN},
        "cluster.accessEntries[0].policy = None is required",
        "pulumi config set --path 'cluster.accessEntries[0].policy' AmazonEKSViewPolicy",
    ),
    (
        {"principalArn": ARN, "policy": "AmazonEKSViewPolicy", "namespaces": ["Minimax_VLLM"]},
        "cluster.accessEntries[0].namespaces = ['Minimax_VLLM'] must be a list of namespace names",
        "pulumi config set --path 'cluster.accessEntries[0].namespaces[0]' minimax-vllm",
    ),
    (
        {"principalArn": ARN, "policy": "AmazonEKSViewPolicy", "scope": "cluster"},
        "cluster.accessEntries[0].scope = 'cluster' is not a known setting",
        "pulumi config rm --path 'cluster.accessEntries[0].scope'",
    ),
]


@pytest.mark.parametrize(
    ("entry", "says", "fix"), BAD, ids=["policy", "admin-in-namespaces", "no-policy", "namespace", "unknown"]
)
def test_a_bad_entry_is_refused_with_its_key_and_fix(entry, says, fix):
    (message,) = problems_of(entries(entry))
    assert f"minimax-vllm:{says}" in message
    assert f"Fix: {fix}" in message


def test_a_principal_named_twice_is_refused():
    (message,) = problems_of(
        entries(
            {"principalArn": ARN, "policy": "AmazonEKSViewPolicy"},
            {"principalArn": ARN, "policy": "AmazonEKSEditPolicy"},
        )
    )
    assert f"names {ARN} twice (entries 0 and 1)" in message
    assert "Fix: pulumi config rm --path 'cluster.accessEntries[1]'" in message


def test_the_old_every_admin_is_cluster_admin_setting_is_refused_with_the_move():
    (message,) = problems_of(with_("cluster.adminPrincipalArns", [ARN]))
    assert "minimax-vllm:cluster.adminPrincipalArns" in message and "was replaced by cluster.accessEntries" in message
    assert f"pulumi config set --path 'cluster.accessEntries[0].principalArn' {ARN}" in message
    assert "pulumi config set --path 'cluster.accessEntries[0].policy' AmazonEKSClusterAdminPolicy" in message
