"""Every program and Python module the rendered pods run in the vLLM image is one the image holds.

components/facts/data/vllm-image-contents.json records what `vllm/vllm-openai:v0.32.0` holds (from vLLM's
Dockerfile and the wheel's requirements, `python -m ops.image.contents`); ops/image/pod_commands.py reads
what the init containers, Jobs and ConfigMap scripts of every stack call.
"""

from __future__ import annotations

import copy
import functools

import pytest

from components.facts import versions
from ops.image import contents as image_contents
from ops.image import pod_commands
from ops.offline.engine import render

STACKS = ("dev", "staging", "prod-4gpu", "prod-8gpu")
RECORD = image_contents.load()
BUILTINS = frozenset(RECORD["shell_builtins"])


@functools.cache
def objects(stack: str) -> tuple[dict, ...]:
    return tuple(x.inputs for x in render(stack).kubernetes_objects())


def missing(objs: list[dict]) -> list[str]:
    """Each use the image cannot satisfy, with where it is written."""
    out = []
    for use in pod_commands.rendered_uses(objs, versions.VLLM_IMAGE_REPOSITORY, BUILTINS):
        if use.kind == "executable" and use.name not in RECORD["executables"]:
            why = RECORD["absent"].get(use.name)
            out.append(
                f"{use.where}: runs `{use.name}`, which {versions.VLLM_IMAGE} does not hold"
                + (f" ({why})" if why else "")
            )
        if use.kind == "module" and use.name not in RECORD["python_modules"] and use.name not in RECORD["stdlib"]:
            why = RECORD["absent"].get(use.name)
            out.append(
                f"{use.where}: imports `{use.name}`, which {versions.VLLM_IMAGE} does not hold"
                + (f" ({why})" if why else "")
            )
    return out


@pytest.mark.parametrize("stack", STACKS)
def test_every_program_and_module_the_pods_run_is_in_the_image(stack):
    uses = pod_commands.rendered_uses(list(objects(stack)), versions.VLLM_IMAGE_REPOSITORY, BUILTINS)
    assert {"sh", "mkdir", "vllm"} <= {u.name for u in uses}  # the reader sees the scripts at all
    assert not missing(list(objects(stack))), "\n".join(missing(list(objects(stack))))


def test_the_copies_needs_are_read_from_the_rendered_config_map():
    uses = pod_commands.rendered_uses(list(objects("prod-8gpu")), versions.VLLM_IMAGE_REPOSITORY, BUILTINS)
    modules = {u.name for u in uses if u.kind == "module"}
    assert {"boto3", "huggingface_hub", "botocore"} <= modules
    assert "hf" in {u.name for u in pod_commands.rendered_uses(list(objects("dev")), "vllm/", BUILTINS)}


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
    deployment = next(o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "vllm")
    (init,) = deployment["spec"]["template"]["spec"]["initContainers"]
    return objs, init


@pytest.mark.parametrize(
    ("planted", "reported"),
    [
        ('aws s3 sync "s3://$BUCKET" "$HF_HOME"', "runs `aws`"),
        ('huggingface-cli download "$MODEL"', "runs `huggingface-cli`"),
        ('echo "$(jq -r .sha256 marker.json)"', "runs `jq`"),
        ("python3 -c 'import awscrt'", "imports `awscrt`"),
    ],
)
def test_a_command_that_calls_what_the_image_lacks_is_refused(planted, reported):
    objs, init = _stage_weights(objects("dev"))
    init["command"][2] += "\n" + planted + "\n"
    (problem,) = missing(objs)
    assert reported in problem and "Deployment/vllm initContainer stage-weights" in problem


def test_a_config_map_script_importing_what_the_image_lacks_is_refused():
    objs = copy.deepcopy(list(objects("prod-8gpu")))
    code = next(o for o in objs if o["kind"] == "ConfigMap" and "mirror_copy.py" in o.get("data", {}))
    code["data"]["mirror_copy.py"] = "import awscrt.s3\n" + code["data"]["mirror_copy.py"]
    (problem,) = missing(objs)
    assert "mirror_copy.py: imports `awscrt`" in problem and "boto3[crt] is not installed" in problem


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
