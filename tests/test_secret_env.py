"""Every Secret-backed environment variable of every container, per stack: each secret goes only
where it is used. The API key to vLLM (which checks it); the Hugging Face token only to what calls
the Hub (the stager of a Hub-sourced stack, the mirror fill Job), never to the vLLM container,
which runs the model repository's own code, nor to an S3 stager, which reads with its role."""

from __future__ import annotations

import functools

import pytest

from components.platform import config
from components.serving import workload
from components.weights import mirror as weight_mirror
from components.weights import staging as weight_staging
from ops.offline.engine import PLACEHOLDER_SECRETS, Rendering, render

STACKS = ("dev", "staging", "prod-4gpu", "prod-8gpu")
API_KEY = ("VLLM_API_KEY", workload.CREDENTIALS_SECRET, "api-key")
HF_TOKEN = ("HF_TOKEN", workload.HF_TOKEN_SECRET, workload.HF_TOKEN_KEY)


@functools.cache
def rendered(stack: str, token: bool) -> Rendering:
    return render(stack, secrets={"hfToken": PLACEHOLDER_SECRETS["hfToken"] if token else None})


def secret_env(r: Rendering) -> dict[tuple[str, str], set[tuple[str, str, str]]]:
    """(kind/name, container) -> {(variable, secret, key)} over every pod template rendered."""
    found: dict[tuple[str, str], set[tuple[str, str, str]]] = {}
    for obj in r.kubernetes_objects():
        spec = (obj.inputs.get("spec") or {}).get("template", {}).get("spec")
        if not spec:
            continue
        who = f"{obj.inputs['kind']}/{obj.inputs['metadata']['name']}"
        for c in [*spec.get("initContainers", []), *spec.get("containers", [])]:
            refs = set()
            for e in c.get("env", []):
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    refs.add((e["name"], ref["name"], ref["key"]))
            for source in c.get("envFrom", []):
                if "secretRef" in source:
                    refs.add(("*", source["secretRef"]["name"], "*"))
            if refs:
                found[(who, c["name"])] = refs
    return found


def allowed(stack: str, token: bool) -> dict[tuple[str, str], set[tuple[str, str, str]]]:
    s = config.from_stack_file(stack)
    expected = {("Deployment/vllm", "vllm"): {API_KEY}}
    if token and s.weights.source == "hub":
        expected[(f"DaemonSet/{weight_staging.NAME}", weight_staging.NAME)] = {HF_TOKEN}
    if token and s.weights.source == "s3":
        job = weight_mirror.job_name(s.serving.model, weight_staging.revision(s.serving.revision))
        expected[(f"Job/{job}", "fill")] = {HF_TOKEN}
    return expected


@pytest.mark.parametrize("token", [True, False])
@pytest.mark.parametrize("stack", STACKS)
def test_each_secret_reaches_only_the_containers_that_use_it(stack, token):
    assert secret_env(rendered(stack, token)) == allowed(stack, token)


def test_the_token_never_shares_a_secret_with_the_api_key():
    r = rendered("dev", True)
    secrets = {
        x.inputs["metadata"]["name"]: set(x.inputs["stringData"]) for x in r.of_type("kubernetes:core/v1:Secret")
    }
    assert secrets == {workload.CREDENTIALS_SECRET: {"api-key"}, workload.HF_TOKEN_SECRET: {workload.HF_TOKEN_KEY}}
