"""Stagers that share one node's cache (prod-4gpu: two replicas on one p5, one hostPath).

Each stager is its own process running the stage function (components/weights/mirror_copy.py) against
moto's S3 server on loopback, through s3transfer's real download path (ranged parts into its
temporary file, then its rename), all released at the same instant. What a node must see: no
stager fails, the cache holds one verified copy of each file and nothing else, and the node
reads the weights from S3 once, not once per replica.
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from components.weights import mirror_copy as mc
from components.weights import mirror_trust as trust

pytestmark = pytest.mark.slow  # an S3 server and stager processes

REGION = "us-east-2"
BUCKET = "minimax-vllm-weights-race"
SHA = "5fb9455421adc47f561f139d4e925b4c88c44367"
PREFIX = f"MiniMaxAI/MiniMax-M2.5/{SHA}/"
MB = 1024 * 1024
# Twelve shards of 3 MB (three ranged parts each, at the 1 MB part size below) and a config.
FILES = {
    **{
        f"model-{i:05d}-of-00012.safetensors": hashlib.sha256(str(i).encode()).digest() * (3 * MB // 32)
        for i in range(1, 13)
    },
    "config.json": b'{"architectures": ["MiniMaxM2ForCausalLM"]}',
}
OWNER = "123456789012"  # moto's account
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class Hub:
    """The Hub's listing of FILES, to fill the mirror with its marker."""

    def files(self) -> list[mc.HubFile]:
        return [mc.HubFile(p, len(d), hashlib.sha256(d).hexdigest()) for p, d in sorted(FILES.items())]

    @contextmanager
    def open(self, path: str):
        yield io.BytesIO(FILES[path])


@pytest.fixture(scope="module")
def endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    url = "http://{}:{}".format(*server.get_host_and_port())
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=url, **CREDENTIALS)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    kms = boto3.client("kms", region_name=REGION, endpoint_url=url, **CREDENTIALS)
    key = kms.create_key(KeySpec=trust.KEY_SPEC, KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=trust.key_alias(BUCKET), TargetKeyId=key)
    mc.fill(Hub(), mirror(s3, kms), log=lambda _: None)
    yield url
    server.stop()


def mirror(s3: Any, kms: Any) -> mc.Mirror:
    return mc.Mirror(s3, BUCKET, PREFIX, trust.KmsAnchor(kms, trust.key_alias(BUCKET)), OWNER)


def _stager(url: str, dest: str, start: Any, results: Any, locked: bool) -> None:
    """One init container: its own process, its own client, the stage function."""
    from boto3.s3.transfer import TransferConfig

    if not locked:  # a cache where the lock does not hold (flock unsupported, an older stager)
        mc._one_stager = lambda dest, log: nullcontext()

    s3 = boto3.client("s3", region_name=REGION, endpoint_url=url, **CREDENTIALS)
    read: list[int] = []
    s3.meta.events.register("after-call.s3.GetObject", lambda parsed, **_: read.append(parsed["ContentLength"]))
    transfer = TransferConfig(multipart_threshold=MB, multipart_chunksize=MB, max_concurrency=4)
    start.wait()
    try:
        kms = boto3.client("kms", region_name=REGION, endpoint_url=url, **CREDENTIALS)
        mc.stage(mirror(s3, kms), Path(dest), workers=8, log=lambda _: None, transfer=transfer)
        results.put(("ok", sum(read)))
    except BaseException as err:  # the test reports what failed, in which process
        results.put((f"{type(err).__name__}: {err}", sum(read)))


@pytest.mark.parametrize("stagers", [2, 3])
def test_stagers_on_one_cache_copy_once_and_none_fails(endpoint, tmp_path, stagers):
    dest = mc.snapshot_dir(str(tmp_path), "MiniMaxAI/MiniMax-M2.5", SHA)
    outcomes = _run(endpoint, dest, stagers, locked=True)
    assert [o for o, _ in outcomes] == ["ok"] * stagers
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=endpoint, **CREDENTIALS)
    marker = sum(s3.head_object(Bucket=BUCKET, Key=PREFIX + k)["ContentLength"] for k in (mc.MARKER, trust.SIGNATURE))
    # The weights came from S3 once; each stager read only the mirror's signed manifest besides.
    read, weights = sum(n for _, n in outcomes), sum(map(len, FILES.values()))
    assert read - stagers * marker == weights, f"{(read - stagers * marker) / weights:.2f} copies read from S3"
    on_disk = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
    assert on_disk - {mc.LOCK_FILE} == set(FILES), "partial or temporary files left in the cache"
    assert all((dest / p).read_bytes() == data for p, data in FILES.items())


def test_stagers_without_the_lock_still_never_collide(endpoint, tmp_path):
    """Each reads everything then, but each writes and renames only its own files."""
    dest = mc.snapshot_dir(str(tmp_path), "MiniMaxAI/MiniMax-M2.5", SHA)
    outcomes = _run(endpoint, dest, 3, locked=False)
    assert [o for o, _ in outcomes] == ["ok"] * 3
    on_disk = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
    assert on_disk == set(FILES)
    assert all((dest / p).read_bytes() == data for p, data in FILES.items())


def _run(endpoint: str, dest: Path, stagers: int, *, locked: bool) -> list[tuple[str, int]]:
    """Start `stagers` processes, release them at once, and collect (outcome, bytes read from S3)."""
    spawn = multiprocessing.get_context("spawn")
    start, results = spawn.Barrier(stagers), spawn.Queue()
    args = (endpoint, str(dest), start, results, locked)
    procs = [spawn.Process(target=_stager, args=args) for _ in range(stagers)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    return outcomes
