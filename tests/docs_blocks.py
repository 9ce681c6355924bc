"""The docs' generated blocks: each one is what a command prints, or a table made from the
source of truth (the settings schema, the rendered stacks, the alert rules).

A block sits between `<!-- generated: NAME -->` and `<!-- end generated: NAME -->` in a
Markdown file. `make docs` (`python -m tests.docs_blocks --write`) writes every block;
tests/test_docs.py fails when a block differs from what its source gives now, so a change that
moves a figure regenerates the docs in the same commit. It lives beside the tests because the
sample runs use the same fakes they do (the fake vLLM server).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import io
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops import architecture

ROOT = Path(__file__).resolve().parent.parent
MARK = re.compile(
    r"(?P<open><!-- generated: (?P<name>[a-z0-9-]+) -->\n)(?P<body>.*?)(?P<close><!-- end generated: (?P=name) -->)",
    re.S,
)
STACKS = ("dev", "staging", "prod-4gpu", "prod-8gpu")
# argparse wraps help text to the terminal's width: fix it, or the docs follow the terminal.
HELP_COLUMNS = "100"


@dataclass(frozen=True)
class Block:
    name: str
    doc: str  # path from the repository root
    make: Callable[[], str]
    slow: bool = False  # runs real binaries for tens of seconds: the slow test tier checks it


def _captured(run: Callable[[], Any]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            run()
        except SystemExit:
            pass
    return out.getvalue()


def _sample(command: str, output: str) -> str:
    """A shell sample: the command a reader types, then what it prints."""
    return f"```text\n$ {command}\n{output.rstrip()}\n```\n"


# --- command outputs ----------------------------------------------------------------------


@functools.cache
def _plan_output(stack: str) -> str:
    from ops.__main__ import main

    with tempfile.TemporaryDirectory() as out:
        text = _captured(lambda: main(["plan", "--stack", stack, "--out", out]))
        return text.replace(out, f"plan-out/{stack}")


def _plan_section(stack: str, heading: str) -> str:
    """One section of `make plan`'s summary: from its heading to the next blank line."""
    sections = _plan_output(stack).split("\n\n")
    (section,) = [s for s in sections if s.startswith(heading)]
    return section


def plan_cold_start() -> str:
    """The phases and the timers of prod-8gpu's cold start (its assumptions stay in `make plan`)."""
    section = _plan_section("prod-8gpu", "Cold start of").split("\n  assumptions:")[0]
    return _sample("make plan STACK=prod-8gpu   # the cold-start section, without its assumptions", section)


def plan_cold_start_staging() -> str:
    section = _plan_section("staging", "Cold start of").split("\n  assumptions:")[0]
    return _sample("make plan STACK=staging   # the cold-start section, without its assumptions", section)


def scaling_dev() -> str:
    from ops.scaling_sim import main

    return _sample("make scaling STACK=dev", _captured(lambda: main(["--stack", "dev"])))


def capacity_table() -> str:
    from ops.capacity.report import main

    return _sample("make capacity", _captured(lambda: main([])))


def settings_error() -> str:
    """What a user reads for two typical mistakes: a window past the model's, a misspelled key."""
    from components.platform.config import parse, read_stack_file, split_stack_config
    from components.settings.stack import SettingsError

    raw, region = split_stack_config(read_stack_file("prod-8gpu"))
    raw = json.loads(json.dumps(raw))
    raw.setdefault("serving", {})["maxModelLen"] = 300000
    raw.setdefault("gpuNodes", {})["rootVolumeGib"] = 500
    try:
        parse(raw, "prod-8gpu", region)
    except SettingsError as e:
        return f"```text\n{e}\n```\n"
    raise AssertionError("the sample settings were accepted")


def ops_help() -> str:
    """Every `python -m ops` command's --help, as argparse prints it."""
    from ops.__main__ import parser

    os.environ["COLUMNS"] = HELP_COLUMNS
    top = parser()
    chunks = [("python -m ops --help", top.format_help())]
    sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    for name, command in sub.choices.items():
        chunks.append((f"python -m ops {name} --help", command.format_help()))
        nested = [a for a in command._actions if isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001
        for verbs in nested:
            for verb, p in verbs.choices.items():
                chunks.append((f"python -m ops {name} {verb} --help", p.format_help()))
    return "\n".join(_sample(c, text) for c, text in chunks)


def verify_sample() -> str:
    """`ops verify` against the fake vLLM server the tests use, as it prints a healthy endpoint."""
    from ops import report, verify
    from tests.fake_vllm_server import FakeVllm

    server = FakeVllm().start()
    try:
        served = server.behaviour.served_names
        target = verify.Target(
            server.url, served[0], server.behaviour.api_key, "minimax_m2_append_think", served, idle_timeout=3600
        )
        title, checks = verify.main(target, timeout=10)
        text = report.render(title, checks).replace(server.url, "https://<alb-dns-name>")
        # The fake answers at once: its stream timings are noise of the machine, shown as zero.
        text = re.sub(r"\b\d+\.\d s\b", "0.0 s", text)
    finally:
        server.stop()
    return _sample("python -m ops verify --stack prod-8gpu", text)


def preflight_sample() -> str:
    """`ops preflight` for prod-8gpu against botocore stubs (the test suite's): a quota too small
    for one p5, no image digest recorded yet, everything else in order."""
    from components.platform.config import from_stack_file
    from ops import preflight, report
    from tests.test_image_steps import images_in_place
    from tests.test_preflight import (
        K8S,
        cluster_version,
        eks_client,
        first_up_mirror_clients,
        no_sleep,
        quota_client,
        stubbed_ec2,
    )

    # EKS's published end of standard support for 1.35 (Kubernetes version calendar).
    supported = cluster_version(
        K8S, "STANDARD_SUPPORT", endOfStandardSupportDate=dt.datetime(2027, 3, 27, tzinfo=dt.UTC)
    )
    eks = eks_client(version_replies=[{"clusterVersions": [supported]}])[0]
    clients = {
        "ec2": stubbed_ec2(None)[0],
        "service-quotas": quota_client(value=96.0)[0],
        "eks": eks,
        **first_up_mirror_clients(identity_calls=2),
        "ecr": images_in_place(from_stack_file("prod-8gpu")),
    }

    class Session:
        def client(self, service: str, **_: Any) -> Any:
            return clients[service]

    title, checks = preflight.main(
        from_stack_file("prod-8gpu"),
        session=Session(),
        sleep=no_sleep,
        resolve=lambda image: "sha256:" + "4f" * 32,
        which=lambda program: f"/usr/local/bin/{program}",
    )
    text = report.render(title, checks) + f"\n$ echo $?\n{report.exit_code(checks)}"
    return _sample("python -m ops preflight --stack prod-8gpu", text)


def _excerpt(checks: list[Any], names: tuple[str, ...]) -> str:
    """Some rows of a report, as the command prints them ("..." where rows are left out)."""
    from ops import report

    lines = report.render("", checks).splitlines()[3:-1]
    kept, skipping = [], False
    for line in lines:
        if line[:1] != " ":
            skipping = not any(line.startswith(n + " ") for n in names)
            if skipping and kept and kept[-1] != "...":
                kept.append("...")
        if not skipping:
            kept.append(line)
    while kept and kept[-1] == "...":
        kept.pop()
    return "```text\n" + "\n".join(kept) + "\n```\n"


def preflight_extended_support() -> str:
    """The kubernetes-version row for a stack still on 1.34 once it has left standard support."""
    from ops import preflight
    from tests.test_preflight import cluster_version, eks_client, eks_rows, with_kubernetes

    newest = cluster_version(
        "1.35", "STANDARD_SUPPORT", endOfStandardSupportDate=dt.datetime(2027, 3, 27, tzinfo=dt.UTC)
    )
    eks = eks_client(
        [{"clusterVersions": [cluster_version("1.34", "EXTENDED_SUPPORT")]}, {"clusterVersions": [newest]}]
    )[0]
    rows = eks_rows(with_kubernetes("1.34"), eks)
    assert preflight  # the rows are preflight.run's
    return _excerpt(list(rows.values()), ("kubernetes version",))


def preflight_capacity_block(
    window_hours: int | None, start_h: float, end_h: float, state: str, names: tuple[str, ...]
) -> str:
    """Capacity Block rows for a block `start_h`..`end_h` hours from the tests' fixed now."""
    from components.settings.capacity_block import CapacityBlockSettings
    from tests.test_capacity_block_state import NOW, block, hours, rows

    window = CapacityBlockSettings(min_window_hours=window_hours) if window_hours else None
    found = rows(block(state, NOW + hours(start_h), NOW + hours(end_h)), window)
    return _excerpt(list(found.values()), names)


def sweep_sample() -> str:
    """`ops sweep` for prod-8gpu in a mock account (moto) after an interrupted destroy: the cluster is
    gone, the load balancer the controller made for the Ingress is left, with its target group and
    security group. AWS's random ids are replaced by stable stand-ins, in order of appearance."""
    import boto3
    from moto import mock_aws

    from components.serving import endpoint
    from ops import report
    from ops.sweep import run as sweep
    from tests.sweep_world import CONTROLLER, REGION, SETTINGS, World, as_tags

    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(
        {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}
    )
    try:
        with mock_aws():
            w = World(boto3.client)
            vpc = w.vpc("10.43.0.0/16", {})
            subnets = [w.subnet(vpc, f"10.43.{i}.0/24", z, {}) for i, z in enumerate("ab")]
            group = w.group(vpc, "k8s-minimaxv-vllm-6ec3a0fb", CONTROLLER)
            lb = w.raw_elbv2.create_load_balancer(
                Name=endpoint.load_balancer_name(SETTINGS.cluster_name),
                Subnets=subnets,
                SecurityGroups=[group],
                Type="application",
                Tags=as_tags(CONTROLLER),
            )["LoadBalancers"][0]["LoadBalancerArn"]
            tg = w.raw_elbv2.create_target_group(
                Name="k8s-minimaxv-vllm-8000",
                Protocol="HTTP",
                Port=8000,
                VpcId=vpc,
                TargetType="ip",
                Tags=as_tags(CONTROLLER),
            )["TargetGroups"][0]["TargetGroupArn"]
            w.raw_elbv2.create_listener(
                LoadBalancerArn=lb, Protocol="HTTP", Port=80, DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}]
            )
            eks = boto3.client("eks", region_name=REGION)
            title = f"sweep (%s): cluster {SETTINGS.cluster_name}, stack {SETTINGS.stack}, {SETTINGS.region}"
            texts = []
            for apply in (False, True):
                rows = sweep.run(
                    SETTINGS, w.ec2, w.elbv2, eks, apply=apply, sleep=lambda _: None, account_id="123456789012"
                )
                command = "python -m ops sweep --stack prod-8gpu" + (" --apply" if apply else "")
                texts.append(f"$ {command}\n" + report.render(title % ("apply" if apply else "dry run"), rows))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    text, seen = "\n\n".join(texts), {}
    for match in dict.fromkeys(re.findall(r"\b(?:sg|eni|vpc|subnet)-[0-9a-f]{8,17}\b", text)):
        kind = match.split("-")[0]
        seen[kind] = seen.get(kind, 0) + 1
        text = text.replace(match, f"{kind}-0{seen[kind]:016x}")
    return f"```text\n{text}\n```\n"


def upgrade_preview(stack: str, sets: tuple[str, ...], base_sets: tuple[str, ...]) -> str:
    """What `ops plan --set/--base-set` prints for one settings change of a running stack."""
    from ops import upgrade

    text = _captured(lambda: upgrade.main(stack, None, list(sets), list(base_sets), accept=False))
    return f"```\n{text.rstrip()}\n```\n"


# --- tables from the source of truth ---------------------------------------------------------


# Fields of Settings that are facts of the stack and its AWS provider (the stack name,
# `aws:region`, `aws:profile`, `aws:assumeRoles`), never set under `minimax-vllm:`.
NOT_SETTINGS = frozenset({"stack", "region", "awsProfile", "awsRoleArn"})


def _fields(cls: Any) -> dict[str, Any]:
    return getattr(cls, "__pydantic_fields__", None) or cls.model_fields


def _default(info: Any) -> str:
    from pydantic_core import PydanticUndefined

    if info.default is not PydanticUndefined:
        value = info.default
    elif info.default_factory is not None:
        value = info.default_factory()
    else:
        return "required"
    if value is None:
        return "unset"
    if isinstance(value, tuple):
        value = list(value)
    return f"`{json.dumps(value)}`"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def settings_reference() -> str:
    """Every setting the schema knows: key, default, and the rule a bad value is told."""
    from pydantic.alias_generators import to_camel

    from components.settings.stack import Settings

    rows = ["| setting | default | rule (what a bad value is told) |", "|---|---|---|"]

    def walk(cls: Any, prefix: str) -> None:
        for name, info in _fields(cls).items():
            key = prefix + (info.alias or to_camel(name))
            if key in NOT_SETTINGS:
                continue
            section = info.annotation if isinstance(info.annotation, type) else None
            if section is not None and _fields_or_none(section) is not None:
                walk(section, key + ".")
                continue
            rows.append(f"| `{key}` | {_cell(_default(info))} | {_cell(info.description or '')} |")

    walk(Settings, "")
    return "\n".join(rows) + "\n"


def _fields_or_none(cls: type) -> dict[str, Any] | None:
    return getattr(cls, "__pydantic_fields__", None)


# The shipped stacks, and prod-8gpu in AMP mode (its roles exist only there).
VARIANTS: dict[str, tuple[str, dict[str, Any] | None]] = {
    **{s: (s, None) for s in STACKS},
    "observability.mode amp": ("prod-8gpu", {"observability": {"mode": "amp"}}),
}


@functools.cache
def _rendering(variant: str) -> Any:
    from ops.offline.engine import render

    stack, overrides = VARIANTS[variant]
    return render(stack, overrides=overrides)


def _short(name: str, stack: str) -> str:
    return name.removeprefix(f"minimax-vllm-{stack}-")


def _principal(document: str | dict) -> tuple[str, str]:
    doc = json.loads(document) if isinstance(document, str) else document
    principals, conditions = set(), set()
    for statement in doc["Statement"]:
        for service in [statement["Principal"]["Service"]] if "Service" in statement["Principal"] else []:
            principals.update([service] if isinstance(service, str) else service)
        for keys in statement.get("Condition", {}).values():
            conditions.update(keys)
    return ", ".join(f"`{p}`" for p in sorted(principals)), ", ".join(f"`{c}`" for c in sorted(conditions)) or "none"


def roles_table() -> str:
    """Every IAM role the four stacks make: who may assume it, with which conditions, and what it holds."""
    roles: dict[str, dict[str, Any]] = {}
    for variant, (stack, _) in VARIANTS.items():
        r = _rendering(variant)
        arn_of = {x.outputs.get("arn"): x for x in r.of_type("aws:iam/role:Role")}
        policy_name = {x.outputs.get("arn"): _short(x.name, stack) for x in r.of_type("aws:iam/policy:Policy")}
        accounts = {
            a.inputs["roleArn"]: f"`{a.inputs['namespace']}/{a.inputs['serviceAccount']}`"
            for a in r.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
        }
        for addon in r.of_type("aws:eks/addon:Addon"):  # an add-on's own associations (vpc-cni)
            for a in addon.inputs.get("podIdentityAssociations") or []:
                accounts[a["roleArn"]] = f"`kube-system/{a['serviceAccount']}`"
        for role in arn_of.values():
            name = _short(role.name, stack)
            row = roles.setdefault(name, {"stacks": [], "holds": set(), "for": set()})
            if variant not in row["stacks"]:
                row["stacks"].append(variant)
            row["trust"] = _principal(role.inputs["assumeRolePolicy"])
            row["for"].add(accounts.get(role.outputs.get("arn"), ""))
        by_ref = {ref: x for x in arn_of.values() for ref in (x.id, x.outputs.get("name"))}
        for attachment in r.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment"):
            role = by_ref[attachment.inputs["role"]]
            arn = attachment.inputs["policyArn"]
            held = policy_name.get(arn, arn.rsplit("/", 1)[-1])
            roles[_short(role.name, stack)]["holds"].add(f"`{held}`")
        for inline in r.of_type("aws:iam/rolePolicy:RolePolicy"):
            role = by_ref[inline.inputs["role"]]
            roles[_short(role.name, stack)]["holds"].add(f"inline `{_short(inline.name, stack)}`")
    rows = [
        "| role | trusted principal | trust conditions | service account | policies | stacks |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in sorted(roles.items()):
        principal, conditions = row["trust"]
        account = ", ".join(sorted(a for a in row["for"] if a)) or "-"
        rows.append(
            f"| `{name}` | {principal} | {conditions} | {account} | {', '.join(sorted(row['holds'])) or '-'} | {_stacks_cell(row['stacks'])} |"
        )
    return "\n".join(rows) + "\n"


def alerts_table() -> str:
    """The serving alerts as Prometheus loads them (prod-8gpu's thresholds), with their runbooks."""
    from components.observability import alerts
    from components.platform.config import from_stack_file
    from components.platform.kubernetes_layer import release_namespaces
    from components.serving import workload

    settings = from_stack_file("prod-8gpu")
    budget = workload.timers(settings.serving, settings.weights.source).cold_start_alert
    namespaces = release_namespaces(settings, settings.scaling)
    rows = ["| alert | severity | fires when (for) | summary |", "|---|---|---|---|"]
    for a in alerts.serving_alerts(settings.observability, budget, namespaces):
        rows.append(
            f"| [{a.name}](#{a.runbook_anchor}) | {a.severity} | `{_cell(a.expr)}` ({a.for_}) | {_cell(a.summary)} |"
        )
    return "\n".join(rows) + "\n"


def _stacks_cell(stacks: list[str]) -> str:
    """The stacks (or variants) a row holds for, in the order they were rendered."""
    return "every stack" if set(STACKS) <= set(stacks) else ", ".join(stacks)


def secret_env_table() -> str:
    """Every Secret-backed environment variable, per container, with the Hugging Face token set."""
    from tests.test_secret_env import rendered, secret_env

    rows: dict[tuple[str, str, str], list[str]] = {}
    for stack in STACKS:
        for (who, container), refs in secret_env(rendered(stack, True)).items():
            who = re.sub(r"^Job/.*", "Job/<mirror fill>", who)
            for variable, secret, key in sorted(refs):
                rows.setdefault((f"`{who}` `{container}`", f"`{variable}`", f"`{secret}/{key}`"), []).append(stack)
    lines = ["| pod / container | variable | Secret / key | stacks |", "|---|---|---|---|"]
    lines += [f"| {w} | {v} | {s} | {_stacks_cell(st)} |" for (w, v, s), st in sorted(rows.items())]
    return "\n".join(lines) + "\n"


def _namespace_securities() -> dict[str, Any]:
    from components.kubernetes import device_plugin
    from components.kubernetes import pod_security_admission as psa
    from components.observability import values as observability
    from components.scaling import replica_autoscaler
    from components.serving import workload

    declared = (
        psa.KUBE_SYSTEM,
        device_plugin.POD_SECURITY,
        observability.POD_SECURITY,
        observability.NODE_METRICS_POD_SECURITY,
        replica_autoscaler.POD_SECURITY,
        workload.POD_SECURITY,
    )
    return {s.namespace: s for s in declared}


def _selected(selector: dict | None) -> str:
    """A pod selector in a few words: the app it names, or every pod."""
    if not selector:
        return "any pod"
    labels = selector.get("matchLabels", {})
    for expr in selector.get("matchExpressions", []):
        if expr["key"] == "app.kubernetes.io/name" and expr["operator"] == "In":
            return " or ".join(expr["values"])
    for key in ("app.kubernetes.io/name", "k8s-app", "app", "app.kubernetes.io/component"):
        if key in labels:
            return labels[key]
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _peer(peer: dict) -> str:
    if "ipBlock" in peer:
        return peer["ipBlock"]["cidr"]
    ns = peer.get("namespaceSelector")
    where = "" if ns is None else "any namespace/" if not ns else f"{ns['matchLabels']['kubernetes.io/metadata.name']}/"
    return where + _selected(peer.get("podSelector"))


def _port(port: dict) -> str:
    proto = port.get("protocol", "TCP")
    return f"{port['port']}" + ("" if proto == "TCP" else f"/{proto.lower()}")


def _rules(rules: list[dict], side: str) -> str:
    if not rules:
        return "nothing"
    parts = []
    for rule in rules:
        peers = ", ".join(_peer(p) for p in rule.get(side, [])) or "anywhere"
        ports = ", ".join(_port(p) for p in rule.get("ports", [])) or "every port"
        parts.append(f"{peers} : {ports}")
    return "<br>".join(parts)


def network_table() -> str:
    """Per namespace: its Pod Security level and why, then each NetworkPolicy: what may reach the
    pods it selects, and what they may reach (the four rendered stacks)."""
    securities = _namespace_securities()
    levels: dict[str, set[str]] = {}
    rows: dict[tuple[str, str, str, str, str], list[str]] = {}
    for stack in STACKS:
        for obj in _rendering(stack).kubernetes_objects():
            kind, meta = obj.inputs["kind"], obj.inputs["metadata"]
            if kind == "Namespace":
                levels.setdefault(meta["name"], set()).add(meta["labels"]["pod-security.kubernetes.io/enforce"])
            elif kind == "NetworkPolicy":
                spec = obj.inputs["spec"]
                types = spec.get("policyTypes", [])
                row = (
                    meta["namespace"],
                    f"`{meta['name']}`: {_selected(spec.get('podSelector'))}",
                    _rules(spec.get("ingress", []), "from") if "Ingress" in types else "not restricted",
                    _rules(spec.get("egress", []), "to") if "Egress" in types else "not restricted",
                    "",
                )
                rows.setdefault(row, []).append(stack)
    lines = ["| namespace | Pod Security (enforce) | why not stricter |", "|---|---|---|"]
    for ns, found in sorted(levels.items()):
        (level,) = found
        security = securities[ns]
        if security.level != level:
            raise AssertionError(f"{ns}: rendered {level}, declared {security.level}")
        lines.append(f"| `{ns}` | {level} | {_cell(security.why) if level != 'restricted' else '-'} |")
    lines += ["", "| namespace | policy: pods | in from : ports | out to : ports | stacks |", "|---|---|---|---|---|"]
    lines += [f"| `{r[0]}` | {r[1]} | {r[2]} | {r[3]} | {_stacks_cell(st)} |" for r, st in sorted(rows.items())]
    return "\n".join(lines) + "\n"


BLOCKS: tuple[Block, ...] = (
    Block("plan-cold-start", "README.md", plan_cold_start),
    Block("settings-error", "README.md", settings_error),
    Block("scaling-dev", "docs/scaling.md", scaling_dev),
    Block("plan-cold-start-staging", "docs/operations.md", plan_cold_start_staging),
    Block("capacity", "docs/operations.md", capacity_table),
    Block("preflight-sample", "docs/operations.md", preflight_sample),
    Block("preflight-extended-support", "docs/operations.md", preflight_extended_support),
    Block(
        "preflight-block-next-week",
        "docs/operations.md",
        functools.partial(
            preflight_capacity_block,
            None,
            99.5,
            99.5 + 168,
            "scheduled",
            ("reservation state", "block window", "block end"),
        ),
    ),
    Block(
        "preflight-block-too-short",
        "docs/operations.md",
        functools.partial(preflight_capacity_block, 24, -40, 5, "active", ("block window",)),
    ),
    Block("verify-sample", "docs/operations.md", verify_sample),
    Block("sweep-sample", "docs/operations.md", sweep_sample),
    Block(
        "preview-kubernetes-minor",
        "docs/operations.md",
        functools.partial(upgrade_preview, "prod-4gpu", (), ("cluster.kubernetesVersion=1.34",)),
    ),
    Block(
        "preview-instance-type",
        "docs/operations.md",
        functools.partial(upgrade_preview, "prod-8gpu", ("gpuNodes.instanceType=p5e.48xlarge",), ()),
    ),
    Block(
        "preview-model-revision",
        "docs/operations.md",
        functools.partial(
            upgrade_preview, "prod-8gpu", ("serving.revision=" + "0123456789abcdef" * 2 + "01234567",), ()
        ),
    ),
    Block("alerts", "docs/operations.md", alerts_table),
    Block("roles", "docs/security.md", roles_table),
    Block("secret-env", "docs/security.md", secret_env_table),
    Block("network", "docs/security.md", network_table),
    Block("ops-help", "docs/commands.md", ops_help),
    Block("settings-reference", "docs/settings.md", settings_reference),
    Block("import-graph", "docs/architecture.md", architecture.mermaid),
    Block("routing", "README.md", lambda: routing_table(), slow=True),
)


def routing_table() -> str:
    """`make routing`'s table: the router binary replayed on loopback (only port-independent figures)."""
    from ops.routing import report

    return "\n".join(report.table()) + "\n"


def blocks_in(text: str) -> dict[str, str]:
    return {m["name"]: m["body"] for m in MARK.finditer(text)}


def regenerate(text: str, made: dict[str, str]) -> str:
    return MARK.sub(lambda m: m["open"] + made.get(m["name"], m["body"]) + m["close"], text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.docs_blocks", description=__doc__.splitlines()[0])
    p.add_argument("--write", action="store_true", help="write the blocks into the docs (else: list stale ones)")
    args = p.parse_args(argv)
    stale = 0
    for doc in sorted({b.doc for b in BLOCKS}):
        path = ROOT / doc
        text = path.read_text()
        made = {b.name: b.make() for b in BLOCKS if b.doc == doc}
        missing = sorted(set(made) - set(blocks_in(text)))
        if missing:
            print(f"{doc}: no markers for {', '.join(missing)}", file=sys.stderr)
            return 2
        new = regenerate(text, made)
        if new != text:
            stale += 1
            if args.write:
                path.write_text(new)
            print(f"{doc}: {'written' if args.write else 'stale'}")
    return 0 if args.write or not stale else 1


if __name__ == "__main__":
    sys.exit(main())
