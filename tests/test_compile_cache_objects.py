"""The shared compile cache as the stack renders it: its key (every input changes it, taken from
the profile code), the setting, the node stager's fetch and publish, the role's rights, and the
manifest checks the fetch applies (tests/test_compile_cache.py runs them against S3)."""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest

from components.facts import catalog, versions
from components.kubernetes import pod_security
from components.platform import config
from components.serving import compile_cache_key, profiles, supply_chain, workload
from components.settings.stack import Settings, SettingsError, parse
from components.weights import compile_cache as cc
from components.weights import compile_cache_objects as objects
from components.weights import mirror as weight_mirror
from components.weights import staging as weight_staging
from ops.offline.engine import Rendering, render

SHA = "5fb9455421adc47f561f139d4e925b4c88c44367"


@functools.cache
def rendered(stack: str = "prod-8gpu") -> Rendering:
    return render(stack)


def pod_spec(r: Rendering) -> dict:
    return r.vllm_deployment().inputs["spec"]["template"]["spec"]


def stager(r: Rendering) -> dict:
    """The node stager's pod spec (the DaemonSet stage-weights)."""
    (ds,) = [
        x for x in r.of_type("kubernetes:apps/v1:DaemonSet") if x.inputs["metadata"]["name"] == weight_staging.NAME
    ]
    return ds.inputs["spec"]["template"]["spec"]


def stage(r: Rendering) -> dict:
    (container,) = stager(r)["containers"]
    return container


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container["env"]}


def prod(gpu_nodes: dict | None = None, **serving: Any) -> Settings:
    """prod-8gpu's settings with some keys changed (parsed and checked like the stack file)."""
    raw, region = config.split_stack_config(config.read_stack_file("prod-8gpu"))
    raw = {**raw, "serving": {**raw["serving"], **serving}, "gpuNodes": {**raw["gpuNodes"], **(gpu_nodes or {})}}
    return parse(raw, "prod-8gpu", region)


def inputs_of(s: Settings, image: str | None = None) -> dict:
    t = workload.timers(s.serving, s.weights.source)
    image = image or pod_spec(rendered())["containers"][0]["image"]  # from the stack's registry
    return compile_cache_key.key_inputs(s.serving, s.gpu_nodes.instance, image, workload.plain_env(t))


# --- the key ------------------------------------------------------------------------------------


def test_the_key_inputs_are_the_profile_codes_argv_and_the_vllm_containers_environment():
    r, s = rendered(), config.from_stack_file("prod-8gpu")
    pod = pod_spec(r)
    vllm, node = pod["containers"][0], stage(r)
    inputs = json.loads(env_of(node)["COMPILE_CACHE_INPUTS"])
    assert inputs["argv"] == profiles.vllm_argv(s.serving) == vllm["command"] + vllm["args"]
    assert inputs["env"] == {k: v for k, v in env_of(vllm).items() if v is not None}  # all but the secrets
    assert "VLLM_API_KEY" not in inputs["env"] and "HF_TOKEN" not in inputs["env"]
    assert inputs["image"] == vllm["image"] != node["image"] and inputs["vllm"] == versions.VLLM_RELEASE
    assert (inputs["model"], inputs["revision"], inputs["profile"], inputs["gpu"]) == (
        s.serving.model,
        SHA,
        "tp8-ep",
        "H100",
    )
    assert env_of(node)["COMPILE_CACHE_ENTRY"] == cc.key(inputs) == cc.key(inputs_of(s))


# A setting, and the key input it must reach (besides the argv, which most of them also change).
CHANGES = {
    "model": ("model", lambda: inputs_of(prod(model="MiniMaxAI/MiniMax-M2.1"))),
    "revision": ("revision", lambda: inputs_of(prod(revision="f" * 40))),
    "profile": ("profile", lambda: inputs_of(prod(profile="dp8-ep"))),
    "instance type": ("gpu", lambda: inputs_of(prod({"instanceType": "p5e.48xlarge"}))),
    "a flag": ("argv", lambda: inputs_of(prod(maxModelLen=65536))),
    "an extra flag": ("argv", lambda: inputs_of(prod(extraArgs=["--max-num-seqs", "64"]))),
    "the KV cache dtype": ("argv", lambda: inputs_of(prod(kvCacheDtype="fp8"))),
    "the image digest": ("image", lambda: inputs_of(prod(), image=f"{versions.VLLM_IMAGE}@sha256:{'a' * 64}")),
    "the image's registry": ("image", lambda: inputs_of(prod(), image=supply_chain.pinned_image(versions.VLLM_IMAGE))),
}


@pytest.mark.parametrize("what", sorted(CHANGES))
def test_each_input_from_the_settings_changes_the_key(what):
    field, make = CHANGES[what]
    base, changed = inputs_of(prod()), make()
    assert changed[field] != base[field]
    assert cc.key(changed) != cc.key(base)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("vllm", f"{versions.VLLM_RELEASE}.post1"),
        ("image", f"{versions.VLLM_IMAGE}@sha256:{'1' * 64}"),
        ("gpu", catalog.INSTANCE_TYPES["p5e.48xlarge"].gpu_model),
        ("env", {"VLLM_USE_AOT_COMPILE": "0"}),
        ("argv", ["vllm", "serve", "x", "--enforce-eager"]),
    ],
)
def test_each_key_field_changes_the_key(field, value):
    base = inputs_of(prod())
    assert cc.key({**base, field: value}) != cc.key(base)


def test_a_timer_in_vllms_environment_changes_the_key_as_it_changes_vllms_own_hash():
    """VLLM_ENGINE_READY_TIMEOUT_S is not in envs.compile_factors' ignored list: vLLM rehashes on it."""
    s = prod()
    base = inputs_of(s)
    env = {**base["env"], "VLLM_ENGINE_READY_TIMEOUT_S": "1"}
    assert cc.key({**base, "env": env}) != cc.key(base)


def test_the_key_takes_exactly_its_fields():
    base = inputs_of(prod())
    with pytest.raises(ValueError, match="exactly"):
        cc.key({k: v for k, v in base.items() if k != "gpu"})
    with pytest.raises(ValueError, match="exactly"):
        cc.key({**base, "extra": 1})


# --- the setting ----------------------------------------------------------------------------------


def test_on_where_the_stack_has_a_bucket_off_for_hub_stacks_and_when_turned_off():
    assert config.from_stack_file("prod-8gpu").weights.shares_compile_cache
    assert not config.from_stack_file("dev").weights.shares_compile_cache  # source hub: no bucket
    raw, region = config.split_stack_config(config.read_stack_file("prod-8gpu"))
    off = parse({**raw, "weights": {"source": "s3", "compileCache": False}}, "prod-8gpu", region)
    assert not off.weights.shares_compile_cache
    with pytest.raises(SettingsError, match=r"weights.compileCache.*must be true or false"):
        parse({**raw, "weights": {"source": "s3", "compileCache": "yes"}}, "prod-8gpu", region)


def test_a_stack_without_the_cache_renders_no_fetch_no_publisher_no_route_and_no_rights():
    for r in (rendered("dev"), render("prod-8gpu", overrides={"weights": {"source": "s3", "compileCache": False}})):
        for spec in (pod_spec(r), stager(r)):
            assert "compile_cache" not in json.dumps(spec) and "COMPILE_CACHE" not in json.dumps(spec)
        assert not [x for x in r.of_type("kubernetes:core/v1:Service") if x.name.endswith("node-local")]
        assert not [x for x in r.of_type("kubernetes:core/v1:ConfigMap") if x.name.endswith("compile-cache-code")]
        policies = [x.inputs["policy"] for x in r.of_type("aws:iam/rolePolicy:RolePolicy")]
        assert not any(objects.PREFIX_ROOT in p for p in policies)


# --- the node stager --------------------------------------------------------------------------------


def test_the_fetch_runs_in_the_stager_after_the_weights_before_the_marker_and_cannot_stop_it():
    r = rendered()
    node = stage(r)
    script = node["command"][-1]
    # After the weights, before the marker: vLLM never starts on half of the cache.
    assert script.index("mirror_copy.py") < script.index(objects.FETCH) < script.index('> "$STAGED_MARKER"')
    assert "|| echo" in objects.FETCH  # `set -e` does not fail the stager on a missing cache
    env = env_of(node)
    assert env["COMPILE_CACHE_MODULE"] == objects.MODULE_PATH and objects.module_mount() in node["volumeMounts"]
    assert objects.module_volume() in stager(r)["volumes"]
    code = next(x for x in r.of_type("kubernetes:core/v1:ConfigMap") if x.name.endswith("compile-cache-code"))
    assert code.inputs["data"] == {"compile_cache.py": objects.MODULE.read_text()}


def test_the_publish_runs_in_the_stager_once_this_nodes_vllm_serves_from_the_same_cache_path():
    r = rendered()
    node, pod = stage(r), pod_spec(r)
    vllm = pod["containers"][0]
    script = node["command"][-1]
    assert script.index('> "$STAGED_MARKER"') < script.index(objects.PUBLISH)  # after the marker: vLLM starts first
    assert "--wait" in objects.PUBLISH and "|| echo" in objects.PUBLISH
    env = env_of(node)
    port = workload.listen_port(vllm["command"] + vllm["args"])
    (local,) = [x for x in r.of_type("kubernetes:core/v1:Service") if x.name.endswith("node-local")]
    name = local.inputs["metadata"]["name"]
    assert env["VLLM_HEALTH_URL"] == f"http://{name}.{workload.NAMESPACE}.svc:{port}/health"
    # Only the endpoints on the stager's own node, and those are the vLLM pods.
    assert local.inputs["spec"]["internalTrafficPolicy"] == "Local"
    assert local.inputs["spec"]["selector"] == pod_template_labels(r)
    assert [(p["port"], p["targetPort"]) for p in local.inputs["spec"]["ports"]] == [(port, port)]
    # The artefacts hold absolute paths: the stager mounts the node cache where vLLM does.
    assert env["COMPILE_CACHE_BASE"] == workload.CACHE_MOUNT
    mount = next(m for m in node["volumeMounts"] if m["name"] == "cache")
    assert mount == next(m for m in vllm["volumeMounts"] if m["name"] == "cache")
    (node_cache,) = [v for v in stager(r)["volumes"] if v["name"] == "cache"]
    assert node_cache == next(v for v in pod["volumes"] if v["name"] == "cache")


def test_the_vllm_pod_holds_no_aws_identity_and_no_cache_step():
    pod = pod_spec(rendered())
    assert "serviceAccountName" not in pod and [c["name"] for c in pod["initContainers"]] == [weight_staging.WAIT_NAME]
    assert "COMPILE_CACHE" not in json.dumps(pod) and "AWS_" not in json.dumps(pod)


def pod_template_labels(r: Rendering) -> dict:
    return r.vllm_deployment().inputs["spec"]["template"]["metadata"]["labels"]


def test_what_is_published_is_every_dir_vllm_and_its_compilers_write_and_nothing_else():
    env = env_of(stage(rendered()))
    roots = env["COMPILE_CACHE_ROOTS"].split(",")
    artefacts = {v for k, v in pod_security.cache_env(workload.CACHE_MOUNT).items() if k in objects.ARTEFACT_ENV}
    assert {f"{workload.CACHE_MOUNT}/{r}" for r in roots} == artefacts
    assert not any(r.startswith("huggingface") for r in roots)  # the weights and the model's code modules


# --- the role ------------------------------------------------------------------------------------


def pods_policy(r: Rendering) -> list[dict]:
    (p,) = [x for x in r.of_type("aws:iam/rolePolicy:RolePolicy") if x.name.endswith("weights-pods-policy")]
    return json.loads(p.inputs["policy"])["Statement"]


def _actions(s: dict) -> set[str]:
    return {s["Action"]} if isinstance(s["Action"], str) else set(s["Action"])


def test_the_stagers_role_writes_only_its_current_keys_entry_and_never_replaces_the_manifest():
    r = rendered()
    (weights,) = [b for b in r.of_type("aws:s3/bucket:Bucket") if b.name.endswith("-weights-bucket")]
    bucket = f"arn:aws:s3:::{weights.inputs['bucket']}"
    key = env_of(stage(r))["COMPILE_CACHE_ENTRY"]
    entry = f"{objects.prefix('minimax-vllm-prod-8gpu')}{key}/"
    statements = pods_policy(r)
    (association,) = [
        x
        for x in r.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
        if x.name.endswith("weights-pods-identity")
    ]
    assert association.inputs["serviceAccount"] == stager(r)["serviceAccountName"] == weight_staging.NAME
    writes = [s for s in statements if s["Effect"] == "Allow" and _actions(s) & {"s3:PutObject", "s3:DeleteObject"}]
    assert writes and all(s["Resource"] == f"{bucket}/{entry}*" for s in writes)
    weights = weight_mirror.prefix("MiniMaxAI/MiniMax-M2.5", SHA)
    assert not entry.startswith(weights) and not weights.startswith(objects.PREFIX_ROOT)
    denies = {s["Sid"]: s for s in statements if s["Effect"] == "Deny"}
    assert denies["NoManifestOverwrite"]["Resource"] == f"{bucket}/{entry}{cc.MANIFEST}"
    assert denies["NoManifestOverwrite"]["Condition"] == {"Null": {"s3:if-none-match": "true"}}
    assert denies["NoManifestDelete"]["Resource"] == f"{bucket}/{entry}{cc.MANIFEST}"
    (listing,) = [s for s in statements if s["Sid"] == "ListTheCompileCache"]
    assert listing["Condition"]["StringLike"]["s3:prefix"] == [f"{entry}*"]


def test_a_new_key_moves_the_roles_write_right_with_it():
    s = config.from_stack_file("prod-8gpu")
    other = prod(maxModelLen=65536)
    upstream = supply_chain.pinned_image(s.serving.image)  # no registry: the image as published
    assert workload.compile_cache_key(s.serving, s.gpu_nodes.instance, None) == cc.key(inputs_of(s, upstream))
    assert workload.compile_cache_key(other.serving, other.gpu_nodes.instance, None) == cc.key(
        inputs_of(other, upstream)
    )
    assert cc.key(inputs_of(other, upstream)) != cc.key(inputs_of(s, upstream))


# --- the checks a fetch applies ----------------------------------------------------------------------

ROOTS = ("compile/triton", "vllm")


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("vllm/../huggingface/hub/x", "'..'"),
        ("../x", "'..'"),
        ("vllm/./x", "'.'"),
        ("vllm//x", "empty"),
        ("/vllm/x", "absolute"),
        ("huggingface/modules/x.py", "outside"),
        ("compile/nv/x", "outside"),
        ("vllmx/y", "outside"),
        ("vllm\\..\\x", "plain"),
        ("", "plain"),
        (None, "plain"),
    ],
)
def test_a_manifest_path_must_lie_under_a_cache_dir(path, why):
    assert why in (cc.path_problem(path, ROOTS) or "")


def test_a_plain_path_under_a_cache_dir_is_accepted():
    assert cc.path_problem("vllm/torch_compile_cache/ab/rank_0_0/model", ROOTS) is None
    assert cc.path_problem("compile/triton/QX/k.cubin", ROOTS) is None


def _cache(inputs: dict) -> cc.Cache:
    return cc.Cache(None, "b", "p/", cc.key(inputs), inputs, None, ROOTS)  # type: ignore[arg-type]


def _manifest(inputs: dict, **changes: Any) -> dict:
    f = {"path": "vllm/x", "size": 1, "sha256": "0" * 64}
    return {"format": 1, "key": cc.key(inputs), "inputs": inputs, "upload": "node-1-ab", "files": [f], **changes}


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"format": 2}, "format"),
        ({"key": "0" * 64}, "key field"),
        ({"upload": "../x"}, "upload id"),
        ({"files": []}, "no files"),
        ({"files": [{"path": "vllm/x", "size": 1, "sha256": "0" * 64}] * 2}, "twice"),
        ({"files": [{"path": "vllm/x", "size": -1, "sha256": "0" * 64}]}, "size and sha256"),
        ({"files": [{"path": "vllm/x", "size": 1, "sha256": "z"}]}, "size and sha256"),
        ({"files": [{"path": "vllm/x", "size": cc.MAX_ENTRY_BYTES + 1, "sha256": "0" * 64}]}, "more than"),
    ],
)
def test_a_manifest_that_is_not_a_complete_entry_of_this_key_is_refused(changes, why):
    inputs = inputs_of(prod())
    assert cc.manifest_problem(_manifest(inputs), _cache(inputs)) is None
    assert why in (cc.manifest_problem(_manifest(inputs, **changes), _cache(inputs)) or "")


def test_a_manifest_whose_inputs_do_not_hash_to_its_key_is_refused():
    inputs = inputs_of(prod())
    doc = {**_manifest(inputs), "inputs": {**inputs, "image": "attacker/vllm:latest"}}
    assert "inputs do not hash" in (cc.manifest_problem(doc, _cache(inputs)) or "")
