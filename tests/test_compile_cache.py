"""The shared compile cache (components/weights/compile_cache.py) against moto's S3 server on loopback.

A node's cache is a folder with vLLM's layout (torch_compile_cache, triton, FlashInfer); a replica
publishes it, another fetches it into an empty folder. What a user needs: a good entry arrives
byte for byte; a partial, corrupt, tampered, foreign or path-escaping entry is ignored and leaves
the node's cache exactly as it was (vLLM compiles cold); two publishers leave one complete entry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import multiprocessing
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from components.weights import compile_cache as cc

pytestmark = pytest.mark.slow  # an S3 server, processes

REGION = "us-east-2"
BUCKET = "minimax-vllm-weights-ccache"
PREFIX = "compile-cache/minimax-vllm-test/"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
ROOTS = ("compile/triton", "vllm")
INPUTS = {
    "argv": ["vllm", "serve", "MiniMaxAI/MiniMax-M2.5", "--tensor-parallel-size", "8"],
    "env": {"VLLM_CACHE_ROOT": "/cache/vllm"},
    "gpu": "H100",
    "image": "vllm/vllm-openai:v0.32.0",
    "model": "MiniMaxAI/MiniMax-M2.5",
    "profile": "tp8-ep",
    "revision": "5fb9455421adc47f561f139d4e925b4c88c44367",
    "vllm": "0.32.0",
}
KEY = cc.key(INPUTS)
# What a compiled node holds (a few MB; the real one is about 1-2 GB, docs/operations.md).
ARTEFACTS = {
    "vllm/torch_compile_cache/torch_aot_compile/ab12/rank_0_0/model": os.urandom(3 * 1024 * 1024),
    "vllm/torch_compile_cache/torch_aot_compile/ab12/inductor_cache/fx/x.py": b"def kernel(): ...\n",
    "vllm/flashinfer_autotune_cache/0.7.0/90a/c0ffee/autotune_configs.json": b'{"configs": []}',
    "compile/triton/QX/triton_.cubin": os.urandom(200_000),
}
NODE_ONLY = {  # this node's probe, and writes in flight: never shared
    "vllm/gpu_p2p_access_cache_for_0,1,2,3,4,5,6,7.json": b"{}",
    "vllm/torch_compile_cache/torch_aot_compile/ab12/inductor_cache/fx/.123.456.tmp": b"half",
    "compile/triton/tmp.pid_77_abc/triton_.cubin": b"half",
}


@pytest.fixture(scope="module")
def endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    url = "http://{}:{}".format(*server.get_host_and_port())
    client(url).create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    yield url
    server.stop()


def client(url: str) -> Any:
    return boto3.client("s3", region_name=REGION, endpoint_url=url, **CREDENTIALS)


def cache(url: str, base: Path, prefix: str = PREFIX, inputs: dict | None = None) -> cc.Cache:
    inputs = inputs or INPUTS
    return cc.Cache(client(url), BUCKET, prefix, cc.key(inputs), inputs, base, ROOTS)


def compiled_node(base: Path) -> Path:
    for rel, data in {**ARTEFACTS, **NODE_ONLY}.items():
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_bytes(data)
    return base


def snapshot(base: Path) -> dict[str, bytes]:
    """Every file under the base, with its bytes: what 'untouched' is compared against."""
    return {p.relative_to(base).as_posix(): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}


def published(url: str, tmp_path: Path, name: str) -> cc.Cache:
    """A fresh prefix with one complete entry of KEY."""
    prefix = f"{PREFIX}{name}/"
    assert cc.publish(cache(url, compiled_node(tmp_path / "publisher"), prefix), log=lambda _: None) == "published"
    return cache(url, tmp_path / "node", prefix)


def manifest(c: cc.Cache) -> dict:
    return json.loads(c.s3.get_object(Bucket=BUCKET, Key=f"{c.entry}{cc.MANIFEST}")["Body"].read())


def put_manifest(c: cc.Cache, doc: dict) -> None:
    """Overwrite the manifest as a writer outside the publisher's rules would."""
    c.s3.put_object(Bucket=BUCKET, Key=f"{c.entry}{cc.MANIFEST}", Body=json.dumps(doc).encode())


def node_with_own_files(base: Path) -> dict[str, bytes]:
    (base / "vllm/modelinfos").mkdir(parents=True)
    (base / "vllm/modelinfos/own.json").write_text("this node's own")
    return snapshot(base)


def test_publish_then_fetch_puts_every_artefact_in_place_byte_for_byte(endpoint, tmp_path):
    c = published(endpoint, tmp_path, "roundtrip")
    logs: list[str] = []
    assert cc.fetch(c, log=logs.append) == "fetched"
    assert {k: v for k, v in snapshot(c.base).items() if not k.startswith(cc.LOCAL_STATE)} == ARTEFACTS
    assert "all verified" in logs[-1]
    doc = manifest(c)
    assert doc["key"] == KEY and doc["inputs"] == INPUTS
    assert {f["path"]: f["sha256"] for f in doc["files"]} == {
        p: hashlib.sha256(d).hexdigest() for p, d in ARTEFACTS.items()
    }
    # The node now holds the entry: a restart does not download it again.
    assert cc.fetch(c, log=logs.append) == "present"


def test_a_fetch_never_replaces_a_file_the_node_already_has(endpoint, tmp_path):
    c = published(endpoint, tmp_path, "keep")
    own = "vllm/flashinfer_autotune_cache/0.7.0/90a/c0ffee/autotune_configs.json"
    (c.base / own).parent.mkdir(parents=True)
    (c.base / own).write_text("this node's own tuning")
    assert cc.fetch(c, log=lambda _: None) == "fetched"
    assert (c.base / own).read_text() == "this node's own tuning"
    assert {k: v for k, v in snapshot(c.base).items() if k != own and not k.startswith(cc.LOCAL_STATE)} == {
        k: v for k, v in ARTEFACTS.items() if k != own
    }


def test_a_second_publisher_never_overwrites_a_complete_entry(endpoint, tmp_path):
    c = published(endpoint, tmp_path, "second")
    before = manifest(c)
    other = compiled_node(tmp_path / "other")
    (other / "vllm/extra").write_bytes(b"x")
    assert cc.publish(cache(endpoint, other, c.prefix), log=lambda _: None) == "exists"
    assert manifest(c) == before


class DiesAfter:
    """An S3 client whose process dies after `n` uploads (a node lost mid-publish)."""

    def __init__(self, s3: Any, n: int):
        self.s3, self.left = s3, n

    def __getattr__(self, name: str) -> Any:
        return getattr(self.s3, name)

    def upload_fileobj(self, *args: Any, **kw: Any) -> Any:
        if self.left == 0:
            raise SystemExit("node lost")
        self.left -= 1
        return self.s3.upload_fileobj(*args, **kw)


def test_a_partial_upload_has_no_manifest_and_is_ignored(endpoint, tmp_path):
    prefix = f"{PREFIX}partial/"
    dying = cache(endpoint, compiled_node(tmp_path / "publisher"), prefix)
    dying = dataclasses.replace(dying, s3=DiesAfter(dying.s3, 2))
    with pytest.raises(SystemExit):
        cc.publish(dying, log=lambda _: None, workers=1)
    c = cache(endpoint, tmp_path / "node", prefix)
    listed = [o["Key"] for o in c.s3.list_objects_v2(Bucket=BUCKET, Prefix=c.entry).get("Contents", [])]
    assert len(listed) == 2 and not any(k.endswith(cc.MANIFEST) for k in listed)  # files, no manifest
    before = node_with_own_files(c.base)
    assert cc.fetch(c, log=lambda _: None) == "absent"
    assert snapshot(c.base) == before


def test_a_corrupt_file_is_ignored_and_the_node_cache_is_untouched(endpoint, tmp_path):
    c = published(endpoint, tmp_path, "corrupt")
    upload = manifest(c)["upload"]
    bad = "compile/triton/QX/triton_.cubin"
    c.s3.put_object(Bucket=BUCKET, Key=f"{c.entry}{upload}/{bad}", Body=b"\0" * len(ARTEFACTS[bad]))
    before = node_with_own_files(c.base)
    logs: list[str] = []
    assert cc.fetch(c, log=logs.append) == "ignored"
    assert snapshot(c.base) == before
    assert "IGNORED" in logs[-1] and bad in logs[-1]


def test_a_tampered_manifest_is_ignored(endpoint, tmp_path):
    """Someone swaps a file and writes its hash into the manifest: the key no longer matches the inputs."""
    c = published(endpoint, tmp_path, "tampered")
    doc = manifest(c)
    doc["inputs"] = {**doc["inputs"], "image": "attacker/vllm:latest"}
    put_manifest(c, doc)
    before = node_with_own_files(c.base)
    assert cc.fetch(c, log=lambda _: None) == "ignored"
    assert snapshot(c.base) == before


def test_a_manifest_whose_key_field_differs_is_ignored(endpoint, tmp_path):
    c = published(endpoint, tmp_path, "keyfield")
    put_manifest(c, {**manifest(c), "key": cc.key({**INPUTS, "profile": "tp4"})})  # filed under the wrong key
    before = node_with_own_files(c.base)
    logs: list[str] = []
    assert cc.fetch(c, log=logs.append) == "ignored"
    assert snapshot(c.base) == before and "key field" in logs[-1]


def test_another_keys_entry_is_never_fetched(endpoint, tmp_path):
    c = published(endpoint, tmp_path, "otherkey")
    changed = cache(
        endpoint, tmp_path / "node2", c.prefix, {**INPUTS, "argv": [*INPUTS["argv"], "--max-model-len", "8"]}
    )
    assert cc.fetch(changed, log=lambda _: None) == "absent"
    assert snapshot(changed.base) == {}


@pytest.mark.parametrize(
    "path",
    ["vllm/../huggingface/hub/x", "../etc/cron.d/x", "/etc/passwd", "huggingface/modules/evil.py", "vllm/./x"],
)
def test_a_path_outside_the_cache_dirs_is_ignored(endpoint, tmp_path, path):
    c = published(endpoint, tmp_path, f"path-{hashlib.sha256(path.encode()).hexdigest()[:6]}")
    doc = manifest(c)
    data = b"import os  # runs in the serving pod\n"
    c.s3.put_object(Bucket=BUCKET, Key=f"{c.entry}{doc['upload']}/{path.lstrip('/')}", Body=data)
    doc["files"].append({"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    put_manifest(c, doc)
    before = node_with_own_files(c.base)
    logs: list[str] = []
    assert cc.fetch(c, log=logs.append) == "ignored"
    assert snapshot(c.base) == before and not (tmp_path / "etc").exists()
    assert repr(path) in logs[-1]


def test_a_symlink_in_the_node_cache_cannot_redirect_a_fetched_file(endpoint, tmp_path):
    c = published(endpoint, tmp_path, "symlink")
    outside = tmp_path / "outside"
    outside.mkdir()
    (c.base / "compile").mkdir(parents=True)
    (c.base / "compile/triton").symlink_to(outside, target_is_directory=True)
    assert cc.fetch(c, log=lambda _: None) == "fetched"
    assert list(outside.iterdir()) == []


def _racer(url: str, base: str, prefix: str, start: Any, results: Any) -> None:
    c = cache(url, Path(base), prefix)
    start.wait()
    try:
        results.put(cc.publish(c, log=lambda _: None))
    except BaseException as err:  # reported by the test
        results.put(f"{type(err).__name__}: {err}")


def test_two_publishers_racing_leave_one_complete_entry(endpoint, tmp_path):
    prefix = f"{PREFIX}race/"
    spawn = multiprocessing.get_context("spawn")
    start, results = spawn.Barrier(2), spawn.Queue()
    bases = [compiled_node(tmp_path / f"node{i}") for i in range(2)]
    procs = [spawn.Process(target=_racer, args=(endpoint, str(b), prefix, start, results)) for b in bases]
    for p in procs:
        p.start()
    outcomes = sorted(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    s3 = client(endpoint)
    listed = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]}
    c = cache(endpoint, tmp_path / "fetcher", prefix)
    winner = manifest(c)["upload"]
    # Either both finished and one lost the conditional write, or the second saw the first's manifest.
    assert outcomes in (["lost", "published"], ["exists", "published"])
    assert listed == {f"{c.entry}{cc.MANIFEST}"} | {f"{c.entry}{winner}/{p}" for p in ARTEFACTS}
    assert cc.fetch(c, log=lambda _: None) == "fetched"


def test_a_publisher_that_checked_before_the_winner_wrote_loses_and_removes_its_upload(endpoint, tmp_path, monkeypatch):
    """The race window, made certain: the second publisher saw no manifest, then the first one wrote it."""
    c = published(endpoint, tmp_path, "window")
    before = manifest(c)
    monkeypatch.setattr(cc, "_head", lambda *_: False)
    late = cache(endpoint, compiled_node(tmp_path / "late"), c.prefix)
    assert cc.publish(late, log=lambda _: None) == "lost"
    assert manifest(c) == before
    listed = {o["Key"] for o in c.s3.list_objects_v2(Bucket=BUCKET, Prefix=c.entry)["Contents"]}
    assert listed == {f"{c.entry}{cc.MANIFEST}"} | {f"{c.entry}{before['upload']}/{p}" for p in ARTEFACTS}


def test_the_command_line_fetches_from_the_environment_and_never_fails_the_pod(endpoint, tmp_path):
    c = published(endpoint, tmp_path, "cli")
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "COMPILE_CACHE_BUCKET": BUCKET,
        "COMPILE_CACHE_PREFIX": c.prefix,
        "COMPILE_CACHE_ENTRY": KEY,
        "COMPILE_CACHE_INPUTS": json.dumps(INPUTS),
        "COMPILE_CACHE_BASE": str(c.base),
        "COMPILE_CACHE_ROOTS": ",".join(ROOTS),
    }
    run = [sys.executable, cc.__file__, "fetch"]  # the module file alone, as the ConfigMap carries it
    done = subprocess.run(run, env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0 and "all verified" in done.stdout, done.stdout + done.stderr
    assert {k: v for k, v in snapshot(c.base).items() if not k.startswith(cc.LOCAL_STATE)} == ARTEFACTS
    broken = {**env, "COMPILE_CACHE_ENTRY": "0" * 64, "COMPILE_CACHE_BASE": str(tmp_path / "empty")}
    done = subprocess.run(run, env=broken, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0 and "fetch failed, vLLM goes on without it" in done.stdout
    assert not (tmp_path / "empty").exists()


def test_publish_waits_for_vllms_health(tmp_path):
    answers = iter([503, 503, 200])

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(next(answers))
            self.end_headers()

        def log_message(self, *_):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/health"
        assert cc.wait_healthy(url, timeout_s=10, every_s=0.05, log=lambda _: None)
        assert next(answers, None) is None  # it asked until the third answer said healthy
    finally:
        server.shutdown()
