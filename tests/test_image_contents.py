"""Every program and Python module the rendered pods run in an image is one that image holds.

components/facts/data/vllm-image-contents.json records what `vllm/vllm-openai:v0.32.0` holds (from vLLM's
Dockerfile and the wheel's requirements, `python -m ops.image.contents`); stage-weights-image-contents.json
what the stager image holds (images/stage-weights/, `python -m ops.image.stager_contents`), which runs the
node's stager, the mirror Job and the copy module's ConfigMap. ops/image/pod_commands.py reads what the
containers, Jobs and ConfigMap scripts of every stack call.
"""

from __future__ import annotations

import copy
import functools

import pytest

from components.facts import versions
from components.platform import config
from ops.image import contents as image_contents
from ops.image import pod_commands, stager_contents
from ops.offline import mocks
from ops.offline.engine import render

STACKS = ("dev", "staging", "prod-4gpu", "prod-8gpu")
RECORD = image_contents.load()
STAGER_RECORD = stager_contents.load()
BUILTINS = frozenset(RECORD["shell_builtins"])  # dash's, in both images


@functools.cache
def objects(stack: str) -> tuple[dict, ...]:
    return tuple(x.inputs for x in render(stack).kubernetes_objects())


def repository(stack: str, image: str) -> str:
    """The stack's in-region repository of an image, as the pods name it."""
    s = config.from_stack_file(stack)
    return f"{mocks.ACCOUNT_ID}.dkr.ecr.{s.region}.amazonaws.com/minimax-vllm/{s.cluster_name}/{image}"


def _missing(uses: list[pod_commands.Use], record: dict, image: str) -> list[str]:
    out = []
    for use in uses:
        if use.kind == "executable" and use.name not in record["executables"]:
            why = record["absent"].get(use.name)
            out.append(f"{use.where}: runs `{use.name}`, which {image} does not hold" + (f" ({why})" if why else ""))
        if use.kind == "module" and use.name not in record["python_modules"] and use.name not in record["stdlib"]:
            why = record["absent"].get(use.name)
            out.append(f"{use.where}: imports `{use.name}`, which {image} does not hold" + (f" ({why})" if why else ""))
    return out


def missing(objs: list[dict], stack: str = "dev") -> list[str]:
    """Each use an image cannot satisfy, with where it is written: the vLLM image's containers,
    and the stager image's containers with the copy module they run from the ConfigMap."""
    vllm = pod_commands.rendered_uses(objs, repository(stack, "vllm-openai"), BUILTINS, config_maps=False)
    stager = pod_commands.rendered_uses(objs, repository(stack, "stage-weights"), BUILTINS)
    return _missing(vllm, RECORD, versions.VLLM_IMAGE) + _missing(stager, STAGER_RECORD, "the stager image")


@pytest.mark.parametrize("stack", STACKS)
def test_every_program_and_module_the_pods_run_is_in_their_image(stack):
    objs = list(objects(stack))
    vllm = pod_commands.rendered_uses(objs, repository(stack, "vllm-openai"), BUILTINS, config_maps=False)
    stager = pod_commands.rendered_uses(objs, repository(stack, "stage-weights"), BUILTINS)
    # The reader sees the scripts at all: vLLM's wait and entrypoint, the stager's script and probe.
    assert {"sh", "sleep", "vllm"} <= {u.name for u in vllm}
    assert {"sh", "mkdir", "du", "test"} <= {u.name for u in stager}
    assert not missing(objs, stack), "\n".join(missing(objs, stack))


def test_the_copies_needs_are_read_from_the_rendered_config_map():
    uses = pod_commands.rendered_uses(list(objects("prod-8gpu")), repository("prod-8gpu", "stage-weights"), BUILTINS)
    modules = {u.name for u in uses if u.kind == "module"}
    assert {"boto3", "huggingface_hub", "botocore"} <= modules
    assert "hf" in {
        u.name for u in pod_commands.rendered_uses(list(objects("dev")), repository("dev", "stage"), BUILTINS)
    }


def test_the_record_is_of_the_pinned_image_and_says_where_each_need_comes_from():
    assert RECORD["image"] == versions.VLLM_IMAGE
    dists = RECORD["distributions"]
    assert dists["vllm"]["requirement"] == f"=={versions.VLLM_RELEASE}"
    # boto3 is nowhere pinned: only runai-model-streamer[s3] (a Dockerfile install) pulls it in.
    assert dists["boto3"]["via"] == "runai-model-streamer-s3"
    assert dists["s3transfer"]["via"] == "boto3"
    assert dists["huggingface-hub"] == {"requirement": ">=1.31.0", "via": "vllm"}
    assert RECORD["executables"]["hf"] == "console script of huggingface-hub (pip)"
    assert "awscrt" not in RECORD["python_modules"]


def test_the_record_is_what_the_generator_makes():
    assert image_contents.record() == RECORD, "run `python -m ops.image.contents`"


def _stage_weights(objs: tuple[dict, ...]) -> tuple[list[dict], dict]:
    objs = copy.deepcopy(list(objs))
    stager = next(o for o in objs if o["kind"] == "DaemonSet" and o["metadata"]["name"] == "stage-weights")
    (container,) = stager["spec"]["template"]["spec"]["containers"]
    return objs, container


@pytest.mark.parametrize(
    ("planted", "reported"),
    [
        ('aws s3 sync "s3://$BUCKET" "$HF_HOME"', "runs `aws`"),
        ('huggingface-cli download "$MODEL"', "runs `huggingface-cli`"),
        ('echo "$(jq -r .sha256 marker.json)"', "runs `jq`"),
        ("python3 -c 'import vllm'", "imports `vllm`"),
    ],
)
def test_a_command_that_calls_what_the_image_lacks_is_refused(planted, reported):
    objs, stage = _stage_weights(objects("dev"))
    stage["command"][2] += "\n" + planted + "\n"
    (problem,) = missing(objs)
    assert reported in problem and "DaemonSet/stage-weights container stage-weights" in problem


def test_the_vllm_pods_wait_may_use_only_what_the_vllm_image_holds():
    objs = copy.deepcopy(list(objects("dev")))
    deployment = next(o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "vllm")
    (wait,) = deployment["spec"]["template"]["spec"]["initContainers"]
    wait["command"][2] += "\npython3 -c 'import awscrt'\n"
    (problem,) = missing(objs)
    assert "Deployment/vllm initContainer wait-for-weights: imports `awscrt`" in problem


def test_a_config_map_script_importing_what_the_stager_image_lacks_is_refused():
    objs = copy.deepcopy(list(objects("prod-8gpu")))
    code = next(o for o in objs if o["kind"] == "ConfigMap" and "mirror_copy.py" in o.get("data", {}))
    code["data"]["mirror_copy.py"] = "import torch\n" + code["data"]["mirror_copy.py"]
    (problem,) = missing(objs, "prod-8gpu")
    assert "mirror_copy.py: imports `torch`, which the stager image does not hold" in problem


def test_the_stager_image_holds_the_aws_crt_for_the_copy_module():
    assert STAGER_RECORD["python_modules"]["awscrt"] == "awscrt"
    assert STAGER_RECORD["executables"]["hf"] == "console script of huggingface-hub (requirements.txt)"


def test_the_stager_record_is_what_the_generator_makes():
    assert stager_contents.record() == STAGER_RECORD, "run `python -m ops.image.stager_contents`"


def test_the_shell_reader_finds_commands_in_substitutions_traps_and_conditions():
    script = """set -eu
X=1 Y="$(basename "$0")" mkdir -p "$D" 2>/dev/null
if [ -f "$M" ] && ! grep -q x "$M"; then exit 0; fi
echo "$(( $(du -sk "$H" | cut -f1) / 1000 )) GB at $(date -u +%T)"
trap 'kill "$pid" 2>/dev/null; rm -f "$T"' TERM
for f in a b; do sha256sum "$f" > "$f.sum"; done
exec python3 -m huggingface_hub.cli.hf version
"""
    uses = pod_commands.script_uses(script, "here", BUILTINS)
    assert {u.name for u in uses} == {
        "mkdir", "basename", "grep", "du", "cut", "date", "rm", "sha256sum", "python3", "huggingface_hub",
    }  # fmt: skip


def test_preflight_states_what_it_cannot_check_without_pulling_the_image():
    row = image_contents.preflight_row(versions.VLLM_IMAGE)
    assert row.status == "SKIP" and "not checked without pulling vllm/vllm-openai:v0.32.0" in row.detail
    assert "vllm-image-contents.json" in row.detail and "docker run" in row.detail
    other = image_contents.preflight_row("registry.example.com/vllm:custom")
    assert other.status == "SKIP" and "is not the recorded vllm/vllm-openai:v0.32.0" in other.detail
