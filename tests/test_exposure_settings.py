"""What may reach the endpoint: every unsafe value is refused with the key, the rule and the fix."""

from __future__ import annotations

from typing import Any

import pytest

from components.facts import timeline
from components.platform import deploy_gate
from components.platform.config import parse
from components.serving import exposure as exposure_rules
from components.settings.stack import SettingsError
from ops.offline import mocks
from ops.offline.engine import render, zones_recorded

REGION = "us-east-2"
TLS_ARN = "arn:aws:acm:us-east-2:123456789012:certificate/0f2b4a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
WAF_ARN = "arn:aws:wafv2:us-east-2:123456789012:regional/webacl/minimax-rate/0f2b4a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
# Ready for a real deploy: routable networks, TLS.
READY = {
    "cluster": {"publicAccessCidrs": ["52.1.2.3/32"]},
    "endpoint": {"scheme": "internet-facing", "sourceRanges": ["52.0.0.0/16"], "certificateArn": TLS_ARN},
}


def base(**sections: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "owner": "ml-platform",
        "serving": {"profile": "tp8-ep", "maxModelLen": 131072},
        "cluster": {"publicAccessCidrs": ["198.51.100.0/24"]},
        "endpoint": {"scheme": "internal", "sourceRanges": ["10.0.0.0/8"]},
    }
    for name, value in sections.items():
        raw[name] = {**raw.get(name, {}), **value}
    return raw


def problems_of(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        parse(raw, "test", REGION)
    return caught.value.problems


# --- the API key --------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["", "   ", "k", "x" * 31, " " + "x" * 40, "x" * 40 + "\n"])
def test_short_blank_or_padded_api_key_is_refused_without_printing_it(key: str) -> None:
    (problem,) = exposure_rules.api_key_problems(key)
    assert problem.key == "apiKey"
    assert repr(problem.value) == f"<secret of {len(key)} characters>"
    assert "at least 32 characters" in problem.rule
    assert 'pulumi config set --secret minimax-vllm:apiKey "$(openssl rand -hex 32)"' == problem.fix


def test_a_32_character_key_is_accepted() -> None:
    assert exposure_rules.api_key_problems("k" * 32) == []


def test_program_refuses_a_short_api_key_before_any_resource(monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[str] = []
    original = mocks.OfflineMocks.new_resource
    monkeypatch.setattr(mocks.OfflineMocks, "new_resource", lambda self, a: created.append(a.typ) or original(self, a))
    with pytest.raises(SettingsError) as caught:
        render("dev", secrets={"apiKey": "hunter2"})
    message = str(caught.value)
    assert "minimax-vllm:apiKey = <secret of 7 characters> is too short" in message
    assert "hunter2" not in message
    assert created == []


# --- source ranges -----------------------------------------------------------------------

WORLD = [
    ["0.0.0.0/0"],
    ["0.0.0.0/1", "128.0.0.0/1"],
    # Every /8 except the private and reserved ones still reaches every routable address.
    [f"{i}.0.0.0/8" for i in range(256) if i not in (0, 10, 127)],
]


@pytest.mark.parametrize("ranges", WORLD, ids=["0/0", "two-halves", "all-public-/8s"])
@pytest.mark.parametrize("key", ["endpoint.sourceRanges", "cluster.publicAccessCidrs"])
def test_ranges_that_cover_the_internet_are_refused_by_arithmetic(key: str, ranges: list[str]) -> None:
    section, field = key.split(".")
    problems = problems_of(base(**{section: {field: ranges}}))
    ours = [p for p in problems if f"minimax-vllm:{key} =" in p]
    assert ours, problems
    assert any("whole internet" in p or "never 0.0.0.0/0" in p for p in ours), ours
    assert any(f"pulumi config set --path '{key}[0]'" in p for p in ours)


@pytest.mark.parametrize("key", ["endpoint.sourceRanges", "cluster.publicAccessCidrs"])
def test_a_prefix_shorter_than_8_is_refused(key: str) -> None:
    section, field = key.split(".")
    problems = problems_of(base(**{section: {field: ["52.0.0.0/16", "64.0.0.0/7"]}}))
    assert any("64.0.0.0/7" in p and "shorter than /8" in p for p in problems), problems


def test_ipv6_world_is_recognised_too() -> None:
    assert exposure_rules.covers_the_internet(["::/0"])
    assert exposure_rules.covers_the_internet(["::/1", "8000::/1"])
    assert exposure_rules.covers_the_internet(["2000::/3"])  # all of global unicast
    assert not exposure_rules.covers_the_internet(["2001:db8::/32", "2600::/12"])
    assert exposure_rules.world_range_problems("x", ["2600::/7"])[0].rule.startswith("has a prefix shorter")


def test_narrow_ranges_pass() -> None:
    assert not exposure_rules.covers_the_internet(["52.0.0.0/8", "10.0.0.0/8"])
    assert exposure_rules.world_range_problems("endpoint.sourceRanges", ["52.0.0.0/8", "198.51.100.7/32"]) == []


@pytest.mark.parametrize(
    "cidr", ["203.0.113.0/24", "198.51.100.0/24", "192.0.2.0/24", "10.0.0.0/8", "100.64.0.0/10", "2001:db8::/32"]
)
def test_non_routable_ranges_on_an_internet_facing_endpoint_stop_a_deploy(cidr: str) -> None:
    found = exposure_rules.deploy_problems("internet-facing", [cidr], TLS_ARN, False, ["52.1.2.3/32"])
    assert [p.key for p in found] == ["endpoint.sourceRanges"]
    assert found[0].value == [cidr] and "not routable" in found[0].rule
    found = exposure_rules.deploy_problems("internal", ["52.0.0.0/16"], TLS_ARN, False, [cidr])
    assert [p.key for p in found] == ["cluster.publicAccessCidrs"]


def test_private_ranges_on_an_internal_endpoint_are_fine() -> None:
    assert exposure_rules.deploy_problems("internal", ["10.0.0.0/8"], TLS_ARN, False, []) == []


# --- TLS ------------------------------------------------------------------------------------


def test_internet_facing_without_a_certificate_stops_a_deploy_unless_the_loud_opt_out() -> None:
    (problem,) = exposure_rules.deploy_problems("internet-facing", ["52.0.0.0/16"], None, False, [])
    assert problem.key == "endpoint.certificateArn" and "in clear" in problem.rule
    assert "endpoint.insecureAllowPlainHttpOnInternet" in problem.rule
    assert problem.fix.startswith("pulumi config set --path 'endpoint.certificateArn' arn:aws:acm:")
    assert exposure_rules.deploy_problems("internet-facing", ["52.0.0.0/16"], None, True, []) == []


def test_internal_without_a_certificate_stops_a_deploy_unless_acknowledged() -> None:
    """The key and the prompts cross the client networks too: an internal ALB needs TLS as well."""
    (problem,) = exposure_rules.deploy_problems("internal", ["10.0.0.0/8"], None, False, [])
    assert problem.key == "endpoint.certificateArn" and "in clear" in problem.rule
    assert "pulumi config set --path 'endpoint.plainHttpAcknowledged' true" in problem.rule
    assert problem.fix.startswith("pulumi config set --path 'endpoint.certificateArn' ")
    assert "Private CA" in problem.fix
    assert exposure_rules.deploy_problems("internal", ["10.0.0.0/8"], None, True, []) == []


@pytest.mark.parametrize(
    ("endpoint", "accepted"),
    [
        ({"scheme": "internal", "plainHttpAcknowledged": "true"}, True),
        ({"scheme": "internal"}, False),
        # each scheme's opt-out covers that scheme only
        ({"scheme": "internal", "insecureAllowPlainHttpOnInternet": "true"}, False),
        ({"scheme": "internet-facing", "sourceRanges": ["52.0.0.0/16"], "plainHttpAcknowledged": "true"}, False),
        ({"scheme": "internal", "plainHttpAcknowledged": "true", "certificateArn": TLS_ARN}, False),
    ],
)
def test_plain_http_is_accepted_only_by_the_schemes_own_opt_out(endpoint: dict, accepted: bool) -> None:
    s = parse(base(endpoint=endpoint), "test", REGION)
    assert s.endpoint.plain_http_accepted is accepted


def test_the_opt_out_is_a_setting_of_the_endpoint() -> None:
    s = parse(base(endpoint={"insecureAllowPlainHttpOnInternet": "true"}), "test", REGION)
    assert s.endpoint.insecure_allow_plain_http_on_internet is True


# --- endpoint.* values ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("idleTimeoutSeconds", 0, "from 1 to 4000 seconds"),
        ("idleTimeoutSeconds", 4001, "from 1 to 4000 seconds"),
        ("idleTimeoutSeconds", "soon", "from 1 to 4000 seconds"),
        ("wafAclArn", "arn:aws:waf::123456789012:webacl/x", "WAFv2 regional web ACL ARN"),
        ("certificateArn", "arn:aws:iam::123456789012:server-certificate/x", "ACM certificate ARN"),
        ("scheme", "public", "choose one of: internal, internet-facing"),
        ("sourceRanges", ["10.0.0.1/8"], "without host bits"),
        ("sourceRanges", ["2001:db8::/32"], "the load balancer is IPv4"),
    ],
)
def test_bad_endpoint_value_names_key_value_rule_and_fix(field: str, value: Any, expected: str) -> None:
    (problem,) = problems_of(base(endpoint={field: value}))
    assert problem.startswith(f"minimax-vllm:endpoint.{field} = {value!r}"), problem
    assert expected in problem and f"Fix: pulumi config set --path 'endpoint.{field}" in problem


@pytest.mark.parametrize("value", [str(timeline.idle_timeout_floor(131072)), "3600", 4000])
def test_idle_timeout_accepts_the_alb_range_above_the_floor_also_as_strings(value: Any) -> None:
    """From the floor (tests/test_resource_settings.py) to the ALB's maximum."""
    assert parse(base(endpoint={"idleTimeoutSeconds": value}), "t", REGION).endpoint.idle_timeout_seconds == int(value)


def test_waf_acl_is_optional_and_accepted() -> None:
    assert parse(base(), "t", REGION).endpoint.waf_acl_arn is None
    assert parse(base(endpoint={"wafAclArn": WAF_ARN}), "t", REGION).endpoint.waf_acl_arn == WAF_ARN


def test_unknown_endpoint_field_is_refused() -> None:
    (problem,) = problems_of(base(endpoint={"idleTimeout": 3600}))
    assert "endpoint.idleTimeout" in problem and "pulumi config rm --path 'endpoint.idleTimeout'" in problem


# --- serving.extraArgs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tokens", "shown", "expands"),
    [
        (["--api-ke=sk-live-123"], "--api-ke=<hidden>", "--api-key"),
        (["--max-model-l", "8192"], "--max-model-l", "--max-model-len"),
        (["--max-num-seq=8"], "--max-num-seq=<hidden>", "--max-num-seqs"),
        (["--enable-minimax-turbo"], "--enable-minimax-turbo", None),
    ],
)
def test_extra_args_must_be_exact_flags_of_the_pinned_vllm(tokens: list[str], shown: str, expands: str | None) -> None:
    (problem,) = problems_of(base(serving={"extraArgs": tokens}))
    assert f"minimax-vllm:serving.extraArgs = {shown!r} is not an exact flag of vLLM 0.32.0" in problem
    assert "sk-live-123" not in problem
    if expands:
        assert f"abbreviation of {expands}" in problem


def test_abbreviated_secret_flag_points_to_the_secret_setting() -> None:
    (problem,) = problems_of(base(serving={"extraArgs": ["--api-ke", "sk-1"]}))
    assert "pulumi config set --secret minimax-vllm:apiKey" in problem


def test_abbreviated_owned_flag_points_to_the_setting() -> None:
    (problem,) = problems_of(base(serving={"extraArgs": ["--max-model-l=8192"]}))
    assert "set the matching serving.* setting instead" in problem


@pytest.mark.parametrize("token", ["-O3", "-q"])
def test_short_flags_are_refused(token: str) -> None:
    (problem,) = problems_of(base(serving={"extraArgs": [token]}))
    assert "is a short flag" in problem


@pytest.mark.parametrize(
    "tokens",
    [
        ["--max-num-seqs=64"],
        ["--max_num_seqs", "64"],
        ["--max-num-batched-tokens", "16384"],
        ["--no-enable-prefix-caching"],
        ["--seed", "-1"],
        ["--speculative-config.method=ngram"],
    ],
)
def test_exact_flags_and_their_values_are_accepted(tokens: list[str]) -> None:
    assert parse(base(serving={"extraArgs": tokens}), "t", REGION).serving.extra_args == tuple(tokens)


# --- placeholders never reach AWS ---------------------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "staging", "prod-4gpu", "prod-8gpu"])
def test_shipped_stacks_stop_a_real_run_before_any_resource(stack: str, monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[str] = []
    original = mocks.OfflineMocks.new_resource
    monkeypatch.setattr(mocks.OfflineMocks, "new_resource", lambda self, a: created.append(a.typ) or original(self, a))
    with pytest.raises(SettingsError) as caught:
        render(stack, as_deploy=True)
    message = str(caught.value)
    assert "cluster.publicAccessCidrs = ['203.0.113.0/24'] is not routable" in message
    assert "Fix: pulumi config set --path 'cluster.publicAccessCidrs[0]'" in message
    assert "nothing was created" in message
    assert created == []


def test_prod_stack_stops_for_its_endpoint_ranges_and_missing_certificate() -> None:
    with pytest.raises(SettingsError) as caught:
        render("prod-8gpu", as_deploy=True)
    message = str(caught.value)
    assert "endpoint.sourceRanges = ['203.0.113.0/24'] is not routable" in message
    assert "Fix: pulumi config set --path 'endpoint.certificateArn'" in message


def test_a_ready_stack_deploys() -> None:
    r = render("prod-8gpu", overrides={**READY, **zones_recorded("prod-8gpu")}, as_deploy=True)
    assert r.one("kubernetes:networking.k8s.io/v1:Ingress")


def test_the_offline_mark_exists_only_inside_the_offline_engine() -> None:
    """(Every shipped stack renders offline: tests/test_kubernetes_layer.py renders them all.)"""
    assert not deploy_gate.is_offline_run()
    render("dev")
    assert not deploy_gate.is_offline_run()
    with pytest.raises(SettingsError):  # a config key cannot set the mark: it is an unknown setting
        render("dev", overrides={"offline": True}, as_deploy=True)
