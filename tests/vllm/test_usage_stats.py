"""The vLLM container never reports usage: judged by the pinned release's own `usage_lib`.

vLLM posts a usage report to VLLM_USAGE_STATS_SERVER unless `is_usage_stats_enabled()` says no,
and the serving pods may reach any HTTPS address. The check runs that function in an
environment made of exactly the rendered container's plain variables.
"""

from __future__ import annotations

import functools
import os
from unittest import mock

import pytest

from ops.offline.engine import Rendering, render

pytestmark = pytest.mark.vllm

STACKS = ("dev", "staging", "prod-4gpu", "prod-8gpu")
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


@functools.cache
def rendered(stack: str) -> Rendering:
    return render(stack)


def vllm_plain_env(r: Rendering) -> dict[str, str]:
    (container,) = [
        c for c in r.vllm_deployment().inputs["spec"]["template"]["spec"]["containers"] if c["name"] == "vllm"
    ]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def reports_usage(env: dict[str, str], tmp_path) -> bool:
    """vLLM's own verdict in a process with exactly this environment (and no opt-out file)."""
    from vllm.usage import usage_lib

    clean = {k: v for k, v in os.environ.items() if "TRACK" not in k and not k.startswith("VLLM_")}
    with (
        mock.patch.dict(os.environ, {**clean, **env}, clear=True),
        mock.patch.object(usage_lib, "_USAGE_STATS_DO_NOT_TRACK_PATH", str(tmp_path / "absent")),
        mock.patch.object(usage_lib, "_USAGE_STATS_ENABLED", None),
    ):
        return usage_lib.is_usage_stats_enabled()


def test_the_check_sees_usage_reporting_when_nothing_opts_out(tmp_path):
    assert reports_usage({}, tmp_path) is True


@pytest.mark.parametrize("stack", STACKS)
def test_the_vllm_container_opts_out_of_usage_reports(stack, tmp_path):
    env = vllm_plain_env(rendered(stack))
    assert reports_usage(env, tmp_path) is False
    # Both ways vLLM honours: its own switch, and the cross-tool DO_NOT_TRACK convention.
    for key in ("VLLM_NO_USAGE_STATS", "DO_NOT_TRACK"):
        assert reports_usage({k: v for k, v in env.items() if k != key}, tmp_path) is False, key
