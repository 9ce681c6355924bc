"""Settings that name an AWS resource must fit the stack's region, partition and account, and the
idle timeout must outlast the longest silence of a request; both refused before any resource."""

from __future__ import annotations

from typing import Any

import pytest

from components.facts import timeline
from components.platform import arn_rules, config
from components.platform.config import parse
from tests.test_settings import REGION, STACKS, base, problems_of, with_

UUID = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
ACCOUNT, OTHER = "123456789012", "210987654321"


def cert(region: str = REGION, account: str = ACCOUNT, partition: str = "aws") -> str:
    return f"arn:{partition}:acm:{region}:{account}:certificate/{UUID}"


def waf(region: str = REGION, account: str = ACCOUNT) -> str:
    return f"arn:aws:wafv2:{region}:{account}:regional/webacl/rate-limit/{UUID}"


def endpoint(**extra: Any) -> dict[str, Any]:
    raw = base()
    raw["endpoint"].update(extra)
    return raw


def role(account: str) -> dict[str, Any]:
    return {"assumeRoles": [{"roleArn": f"arn:aws:iam::{account}:role/deployer"}]}


def problems_with(raw: dict[str, Any], aws: dict[str, Any] | None = None, region: str = REGION) -> list[str]:
    with pytest.raises(config.SettingsError) as caught:
        parse(raw, "test", region, aws)
    return caught.value.problems


def only(problems: list[str]) -> str:
    assert len(problems) == 1, problems
    return problems[0]


# --- the certificate and the web ACL -------------------------------------------------------


def test_a_certificate_of_the_stacks_region_and_account_is_accepted():
    s = parse(endpoint(certificateArn=cert(), wafAclArn=waf()), "test", REGION, role(ACCOUNT))
    assert s.endpoint.certificate_arn == cert()


def test_a_certificate_from_another_region_is_refused_with_the_fix():
    message = only(problems_of(endpoint(certificateArn=cert("eu-west-1"))))
    assert message.startswith(f"minimax-vllm:endpoint.certificateArn = {cert('eu-west-1')!r} is in region eu-west-1")
    assert f"not the stack's aws:region {REGION}" in message
    assert "an ALB uses only an ACM certificate of its own region" in message
    assert f"Fix: pulumi config set --path 'endpoint.certificateArn' {cert()}" in message


def test_a_malformed_certificate_arn_is_refused_by_the_schema():
    message = only(problems_of(endpoint(certificateArn=f"arn:aws:acm:{REGION}:{ACCOUNT}:cert/{UUID}")))
    assert "minimax-vllm:endpoint.certificateArn" in message and "must be an ACM certificate ARN" in message
    assert "Fix: pulumi config set --path 'endpoint.certificateArn'" in message


def test_a_web_acl_from_another_region_is_refused():
    message = only(problems_of(endpoint(wafAclArn=waf("us-west-2"))))
    assert "minimax-vllm:endpoint.wafAclArn" in message and "is in region us-west-2" in message
    assert "protects only load balancers of its own region" in message
    assert f"Fix: pulumi config set --path 'endpoint.wafAclArn' {waf()}" in message


def test_a_certificate_and_a_web_acl_of_two_accounts_are_refused():
    message = only(problems_of(endpoint(certificateArn=cert(), wafAclArn=waf(account=OTHER))))
    assert f"minimax-vllm:endpoint.wafAclArn = {waf(account=OTHER)!r} is in account {OTHER}" in message
    assert f"the certificate in {ACCOUNT}" in message
    assert f"Fix: pulumi config set --path 'endpoint.wafAclArn' arn:aws:wafv2:{REGION}:{ACCOUNT}:" in message


@pytest.mark.parametrize("key", ["certificateArn", "wafAclArn"])
def test_a_resource_outside_the_assumed_roles_account_is_refused(key):
    value = cert(account=OTHER) if key == "certificateArn" else waf(account=OTHER)
    message = only(problems_with(endpoint(**{key: value}), role(ACCOUNT)))
    assert f"minimax-vllm:endpoint.{key} = {value!r} is in account {OTHER}" in message
    assert f"the stack deploys into account {ACCOUNT}" in message
    assert f"Fix: name the resource of account {ACCOUNT}: pulumi config set --path 'endpoint.{key}'" in message


def test_a_certificate_of_another_partition_is_refused():
    message = only(problems_of(endpoint(certificateArn=cert(partition="aws-cn"))))
    assert "is in partition aws-cn, but aws:region us-east-2 is in partition aws" in message
    assert f"Fix: pulumi config set --path 'endpoint.certificateArn' {cert()}" in message


def test_a_china_region_takes_the_china_partition():
    assert (arn_rules.partition_of("cn-north-1"), arn_rules.partition_of(REGION)) == ("aws-cn", "aws")
    region = "cn-north-1"
    raw = endpoint(certificateArn=cert(region, partition="aws-cn"))
    raw["network"] = {"availabilityZones": ["cn-north-1a", "cn-north-1b"]}
    assert parse(raw, "test", region).endpoint.certificate_arn == cert(region, partition="aws-cn")


# --- principals -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arn",
    [
        f"arn:aws:sts::{ACCOUNT}:assumed-role/Admin/jane",
        f"arn:aws:s3:{REGION}:{ACCOUNT}:bucket",
        f"arn:aws:iam::{ACCOUNT}:group/admins",
    ],
    ids=["sts-session", "not-iam", "iam-group"],
)
def test_an_admin_that_is_not_an_iam_role_or_user_is_refused(arn):
    entries = [{"principalArn": a, "policy": "AmazonEKSViewPolicy"} for a in (f"arn:aws:iam::{ACCOUNT}:role/Ok", arn)]
    message = only(problems_of(with_("cluster.accessEntries", entries)))
    assert f"minimax-vllm:cluster.accessEntries[1].principalArn = {arn!r} is not an IAM role or user ARN" in message
    assert (
        f"Fix: pulumi config set --path 'cluster.accessEntries[1].principalArn' arn:aws:iam::{ACCOUNT}:role/<name>"
        in message
    )


def test_an_admin_of_another_account_is_accepted_as_a_standard_access_entry_allows():
    entry = {"principalArn": f"arn:aws:iam::{OTHER}:role/Admin", "policy": "AmazonEKSClusterAdminPolicy"}
    s = parse(with_("cluster.accessEntries", [entry]), "test", REGION, role(ACCOUNT))
    assert [e.principal_arn for e in s.cluster.access_entries] == [f"arn:aws:iam::{OTHER}:role/Admin"]


def test_an_admin_of_another_partition_is_refused():
    arn = f"arn:aws-us-gov:iam::{ACCOUNT}:user/ops"
    message = only(
        problems_of(with_("cluster.accessEntries", [{"principalArn": arn, "policy": "AmazonEKSViewPolicy"}]))
    )
    assert "cluster.accessEntries[0].principalArn" in message and "is in partition aws-us-gov" in message


def test_an_assumed_role_of_another_partition_is_refused():
    message = only(problems_with(base(), {"assumeRoles": [{"roleArn": f"arn:aws-cn:iam::{ACCOUNT}:role/d"}]}))
    assert message.startswith("aws:assumeRoles = ") and "is in partition aws-cn" in message
    assert "Fix: pulumi config set --path 'aws:assumeRoles[0].roleArn' arn:aws:iam::" in message


# --- the idle timeout ---------------------------------------------------------------------


def test_the_floor_is_the_silent_phase_of_a_full_window_prompt_with_the_margin():
    a = timeline.Assumptions()
    silent = timeline.silent_request(196_608, a)
    assert silent.seconds == -(-2 * 196_608 // int(a.prefill_tokens_s))  # itself and one prefill ahead
    floor = timeline.idle_timeout_floor(196_608, a)
    assert floor % 60 == 0 and silent.seconds * timeline.SAFETY <= floor < silent.seconds * timeline.SAFETY + 60
    assert timeline.idle_timeout_floor(32_768, a) < floor  # a shorter window is silent for less


def test_an_idle_timeout_under_the_floor_is_refused_with_the_reason():
    floor = timeline.idle_timeout_floor(131_072)
    message = only(problems_of(with_("endpoint.idleTimeoutSeconds", 30)))
    assert message.startswith("minimax-vllm:endpoint.idleTimeoutSeconds = 30 is below")
    assert f"is below {floor} s: a 131072-token prompt (serving.maxModelLen)" in message
    assert "vLLM sends no token until the prefill ends" in message
    assert f"Fix: pulumi config set --path 'endpoint.idleTimeoutSeconds' {floor} or more" in message


def test_the_floor_itself_is_accepted_and_one_second_less_is_not():
    floor = timeline.idle_timeout_floor(131_072)
    assert parse(with_("endpoint.idleTimeoutSeconds", floor), "test", REGION).endpoint.idle_timeout_seconds == floor
    assert problems_of(with_("endpoint.idleTimeoutSeconds", floor - 1))


def test_the_floor_follows_the_served_window():
    raw = with_("endpoint.idleTimeoutSeconds", timeline.idle_timeout_floor(32_768))
    raw["serving"]["maxModelLen"] = 32_768
    assert parse(raw, "test", REGION)
    raw["serving"]["maxModelLen"] = 196_608
    assert "a 196608-token prompt" in only(problems_of(raw))


@pytest.mark.parametrize("stack", STACKS)
def test_every_shipped_stack_clears_the_floor(stack):
    s = config.from_stack_file(stack)
    assert s.endpoint.idle_timeout_seconds >= timeline.idle_timeout_floor(s.serving.max_model_len)


def test_every_window_has_a_floor_the_alb_can_be_set_to():
    from components.facts.catalog import MAX_CONTEXT_TOKENS
    from components.settings.endpoint import ALB_IDLE_TIMEOUT_RANGE

    assert timeline.idle_timeout_floor(MAX_CONTEXT_TOKENS) <= ALB_IDLE_TIMEOUT_RANGE[1]
