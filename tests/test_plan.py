"""`make plan`: the offline rendering a user reads before spending on p5 hours."""

from __future__ import annotations

import shlex

import pytest
import yaml

from components import profiles, settings
from components.scaling_settings import scaling_from_stack_file
from ops import plan
from ops.offline import PLACEHOLDER_SECRETS


@pytest.mark.parametrize("stack", ["dev", "prod-4gpu", "prod-8gpu", "staging"])
def test_plan_prints_the_exact_vllm_command_and_writes_manifests(stack, tmp_path, capsys):
    assert plan.main(stack, str(tmp_path)) == 0
    out = capsys.readouterr().out
    s = settings.from_stack_file(stack)
    assert shlex.join(profiles.vllm_argv(s.serving)) in out
    assert "SAFETENSORS_FAST_GPU=1 vllm serve" in out
    assert f"{s.gpu_nodes.instance_type} (8 x" in out
    assert "Capacity:" in out and "Cost: about $" in out
    docs = list(yaml.safe_load_all((tmp_path / "kubernetes.yaml").read_text()))
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "Secret", "Namespace", "PodDisruptionBudget"} <= kinds
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == s.serving.replicas and isinstance(deployment["spec"]["replicas"], int)
    releases = list(yaml.safe_load_all((tmp_path / "helm-releases.yaml").read_text()))
    scaled = scaling_from_stack_file(stack, s).enabled
    autoscalers = {"keda", "cluster-autoscaler"} if scaled else set()
    assert {r["chart"] for r in releases} == {"nvidia-device-plugin", "aws-load-balancer-controller", *autoscalers}
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
    todo = capsys.readouterr().out.split("Before `pulumi up`:")[1]
    assert "pulumi config set --secret minimax-vllm:apiKey" in todo
    assert "cluster.publicAccessCidrs 203.0.113.0/24 is a documentation range" in todo
    assert "serving.revision is unpinned" in todo
    assert "plain HTTP" in todo  # internet-facing without a certificate


def test_a_stack_with_real_networks_pinned_revision_and_tls_has_only_the_secret_to_set():
    raw = {
        "owner": "ml-platform",
        "serving": {"revision": "a" * 40},
        "cluster": {"publicAccessCidrs": ["52.1.2.3/32"]},
        "endpoint": {
            "scheme": "internet-facing",
            "sourceRanges": ["52.0.0.0/16"],
            "certificateArn": "arn:aws:acm:us-east-2:123456789012:certificate/0f2b4a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
        },
    }
    todo = plan.before_up(settings.parse(raw, "x", "us-east-2"))
    assert len(todo) == 1 and "apiKey" in todo[0]
