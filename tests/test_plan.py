"""`make plan`: the offline rendering a user reads before spending on p5 hours."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.facts import versions
from components.platform import config
from components.serving import profiles
from components.settings import stack as settings
from ops import plan
from ops.offline.engine import PLACEHOLDER_SECRETS, render

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("stack", ["dev", "prod-4gpu", "prod-8gpu", "staging"])
def test_plan_prints_the_exact_vllm_command_and_writes_manifests(stack, tmp_path, capsys):
    assert plan.main(stack, str(tmp_path)) == 0
    out = capsys.readouterr().out
    s = config.from_stack_file(stack)
    assert shlex.join(profiles.vllm_argv(s.serving)) in out
    env = " ".join(f"{k}={v}" for k, v in profiles.vllm_env().items())
    assert f"{env} vllm serve" in out
    assert f"{s.gpu_nodes.instance_type} (8 x" in out
    assert "Capacity:" in out and "Cost: about $" in out
    docs = list(yaml.safe_load_all((tmp_path / "kubernetes.yaml").read_text()))
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "Secret", "Namespace", "PodDisruptionBudget"} <= kinds
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == s.serving.replicas and isinstance(deployment["spec"]["replicas"], int)
    releases = list(yaml.safe_load_all((tmp_path / "helm-releases.yaml").read_text()))
    scaled = s.scaling.enabled
    autoscalers = {"keda", "cluster-autoscaler"} if scaled else set()
    assert {r["chart"] for r in releases} == {
        "nvidia-device-plugin",
        "aws-load-balancer-controller",
        "kube-prometheus-stack",
        "dcgm-exporter",
        *autoscalers,
    }
    assert ("ScaledObject" in kinds) == scaled
    scaling_section = out.split("Scaling:")[1].split("Cost:")[0]
    if scaled:
        assert (
            "trigger queue (prometheus)" in scaling_section
            and "GPU nodes 0..1 by the Cluster Autoscaler" in scaling_section
        )
        assert "Expected with scaling: about $" in out and "/day over a week" in out
    else:
        assert "off: " in scaling_section and "Expected with scaling" not in out


def test_plan_output_and_files_hold_no_secret_value(tmp_path, capsys):
    plan.main("prod-8gpu", str(tmp_path))
    written = capsys.readouterr().out + "".join(p.read_text() for p in tmp_path.iterdir())
    for value in PLACEHOLDER_SECRETS.values():
        assert value not in written
    assert "<redacted: Pulumi secret>" in written
    assert "kubeconfig: [secret]" in written


def test_plan_of_a_bad_stack_exits_2_with_the_fix(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(settings, "STACKS_DIR", tmp_path)
    (tmp_path / "Pulumi.broken.yaml").write_text(
        "config:\n  aws:region: us-east-2\n  minimax-vllm:owner: me\n  minimax-vllm:serving:\n    profile: tp3\n"
    )
    assert plan.main("broken", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert "minimax-vllm:serving.profile = 'tp3'" in err and "pulumi config set --path 'serving.profile'" in err
    assert not (tmp_path / "out").exists()


def test_plan_lists_what_to_set_before_pulumi_up(tmp_path, capsys):
    plan.main("prod-8gpu", str(tmp_path))
    todo = capsys.readouterr().out.split("Before `pulumi up`")[1]
    assert "pulumi config set --secret minimax-vllm:apiKey" in todo
    assert "cluster.publicAccessCidrs ['203.0.113.0/24'] is not routable" in todo
    assert "endpoint.sourceRanges ['203.0.113.0/24'] is not routable" in todo
    assert "serving.revision is unpinned" not in todo  # prod stacks pin a commit (remote code runs)
    assert "endpoint.certificateArn None is required on an internet-facing endpoint" in todo
    assert "--record-digest" in todo  # no image digest recorded yet


def test_plan_shows_the_exposed_paths(tmp_path, capsys):
    plan.main("prod-8gpu", str(tmp_path))
    out = capsys.readouterr().out
    assert "forwarded: /v1/*, /health (API key required under /v1); every other path: the ALB's own 404" in out
    assert "idle timeout 3600s (floor 300s: 2 x 196608 tokens at 2000 tokens/s, x1.5)" in out  # prod-8gpu's window


def test_plan_lists_an_unpinned_revision_of_a_non_prod_stack(tmp_path, capsys):
    plan.main("dev", str(tmp_path))
    assert "serving.revision is unpinned" in capsys.readouterr().out.split("Before `pulumi up`")[1]


def test_a_stack_with_real_networks_pinned_revision_and_tls_has_only_the_secret_to_set(monkeypatch):
    monkeypatch.setattr(versions, "VLLM_IMAGE_DIGESTS", {f"v{versions.VLLM_RELEASE}": "sha256:" + "ab" * 32})
    zones = ["us-east-2b", "us-east-2c"]
    raw = {
        "owner": "ml-platform",
        "serving": {"revision": "a" * 40},
        "network": {"availabilityZones": zones, "subnetLayout": "byZone"},
        "gpuNodes": {"availabilityZones": zones},
        "cluster": {"publicAccessCidrs": ["52.1.2.3/32"]},
        "endpoint": {
            "scheme": "internet-facing",
            "sourceRanges": ["52.0.0.0/16"],
            "certificateArn": "arn:aws:acm:us-east-2:123456789012:certificate/0f2b4a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
        },
    }
    todo = plan.before_up(config.parse(raw, "x", "us-east-2"))
    assert len(todo) == 1 and "apiKey" in todo[0]


def _stack_copy(tmp_path, monkeypatch, source: str, name: str, extra: dict) -> None:
    """A copy of a shipped stack file with some config keys changed, as a new stack `name`."""
    doc = yaml.safe_load((settings.STACKS_DIR / f"Pulumi.{source}.yaml").read_text())
    doc["config"].update(extra)
    (tmp_path / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump(doc))
    monkeypatch.setattr(settings, "STACKS_DIR", tmp_path)


@pytest.mark.slow  # two processes render the stack
def test_plan_is_byte_identical_across_runs(tmp_path):
    # Separate processes with different hash seeds: registration order and set order vary there.
    outputs = []
    for seed in ("1", "2"):
        out = tmp_path / f"run{seed}"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        run = subprocess.run(
            [sys.executable, "-m", "ops", "plan", "--stack", "prod-8gpu", "--out", str(out)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        files = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
        outputs.append((run.stdout.replace(str(out), "OUT"), files))
    assert outputs[0] == outputs[1]


def test_plan_writes_mappings_with_sorted_keys(tmp_path, capsys):
    plan.main("prod-8gpu", str(tmp_path))
    text = (tmp_path / "kubernetes.yaml").read_text()
    docs = list(yaml.safe_load_all(text))
    assert text == yaml.safe_dump_all(docs, sort_keys=True, width=120)


def test_plan_shows_values_aws_assigns_as_unknown_not_as_mock_ids(tmp_path, capsys):
    plan.main("prod-8gpu", str(tmp_path))
    out = capsys.readouterr().out
    written = out + "".join(p.read_text() for p in tmp_path.iterdir())
    rendering = render("prod-8gpu")
    assert rendering.invented  # the mocks did invent ids and hostnames
    for token in rendering.invented:
        assert token not in written.lower(), token
    assert "vpcId: <assigned by AWS>" in out
    assert "endpointUrl: http://<assigned by AWS>" in out
    assert "vpcId: <assigned by AWS>" in (tmp_path / "helm-releases.yaml").read_text()
    assert "clusterName: minimax-vllm-prod-8gpu" in out  # what the stack fixes stays visible


def test_plan_renders_the_hugging_face_token_only_when_the_stack_sets_it(tmp_path, monkeypatch, capsys):
    plan.main("dev", str(tmp_path / "without"))
    out = capsys.readouterr().out
    assert "HF_TOKEN" not in out
    assert "hf-token" not in (tmp_path / "without" / "kubernetes.yaml").read_text()
    _stack_copy(tmp_path, monkeypatch, "dev", "dev-token", {"minimax-vllm:hfToken": {"secure": "v1:AAAA"}})
    plan.main("dev-token", str(tmp_path / "with"))
    out = capsys.readouterr().out
    assert "HF_TOKEN from Secret hf-token, to the stage-weights pods (Hub source) only" in out
    assert "token: '<redacted: Pulumi secret>'" in (tmp_path / "with" / "kubernetes.yaml").read_text()


def test_plan_does_not_ask_for_a_secret_the_stack_already_holds(tmp_path, monkeypatch, capsys):
    _stack_copy(tmp_path, monkeypatch, "prod-8gpu", "keyed", {"minimax-vllm:apiKey": {"secure": "v1:AAAA"}})
    assert plan.main("keyed", str(tmp_path / "out")) == 0
    todo = capsys.readouterr().out.split("Before `pulumi up`")[1]
    assert "apiKey" not in todo
    assert "--record-digest" in todo  # what the stack does not hold is still listed


def test_a_one_replica_tp4_stack_is_not_told_two_replicas_share_a_node(tmp_path, monkeypatch, capsys):
    doc = yaml.safe_load((settings.STACKS_DIR / "Pulumi.prod-4gpu.yaml").read_text())
    serving = {**doc["config"]["minimax-vllm:serving"], "replicas": 1}
    _stack_copy(tmp_path, monkeypatch, "prod-4gpu", "one", {"minimax-vllm:serving": serving})
    assert plan.main("one", str(tmp_path / "out")) == 0
    out = capsys.readouterr().out
    assert "two replicas" not in out and "2 replica(s) per" not in out
    assert "1 replica(s) x 4 GPUs = 4 of 8 GPUs, 1 replica(s) per p5.48xlarge" in out


def test_plan_of_a_stack_file_with_a_yaml_syntax_error_names_file_line_and_column(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(settings, "STACKS_DIR", tmp_path)
    path = tmp_path / "Pulumi.typo.yaml"
    path.write_text("config:\n  aws:region: us-east-2\n  minimax-vllm:owner: [me\n  minimax-vllm:environment: dev\n")
    assert plan.main("typo", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert f"{path}:4:" in err and "YAML syntax error" in err
    assert "Traceback" not in err and "<unicode string>" not in err
    assert len(err.strip().splitlines()) == 2  # the heading and the one problem


def test_the_offline_engine_runs_after_code_that_used_asyncio_run():
    # asyncio.run() leaves the thread without an event loop; the engine must not depend on
    # what ran before it (a test, a tool, another worker's order).
    import asyncio

    asyncio.run(asyncio.sleep(0))
    assert render("dev").of_type("aws:eks/cluster:Cluster")
