"""The weight mirror's copy and verification (components/weights/mirror_copy.py) against moto's S3 and a
fake Hub listing: what the Job and the init container run."""

from __future__ import annotations

import hashlib
import io
from contextlib import contextmanager

import boto3
import pytest
from moto import mock_aws

from components.weights import mirror_copy as mc
from components.weights import mirror_trust as trust

pytestmark = pytest.mark.slow  # a mock AWS account: `make test`, not `make test-fast`

BUCKET = "minimax-vllm-weights-test"
SHA = "5fb9455421adc47f561f139d4e925b4c88c44367"
PREFIX = f"MiniMaxAI/MiniMax-M2.5/{SHA}/"
FILES = {
    "config.json": b'{"architectures": ["MiniMaxM2ForCausalLM"]}',
    "model-00001-of-00002.safetensors": bytes(range(256)) * 4000,
    "model-00002-of-00002.safetensors": b"\x07" * 300_000,
}
LFS = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}


def git_blob(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub:
    """The Hub's listing of FILES; `serve` may hand out other bytes than it lists."""

    def __init__(self, serve: dict[str, bytes] | None = None):
        self.serve = {**FILES, **(serve or {})}
        self.opened: list[str] = []

    def files(self) -> list[mc.HubFile]:
        return [
            mc.HubFile(p, len(d), hashlib.sha256(d).hexdigest(), None)
            if p in LFS
            else mc.HubFile(p, len(d), None, git_blob(d))
            for p, d in sorted(FILES.items())
        ]

    @contextmanager
    def open(self, path: str):
        self.opened.append(path)
        yield io.BytesIO(self.serve[path])


OWNER = "123456789012"  # moto's account


def signing_key(kms, bucket: str = BUCKET) -> str:
    """The bucket's manifest key as the stack makes it: asymmetric, sign/verify, under its alias."""
    key = kms.create_key(KeySpec=trust.KEY_SPEC, KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=trust.key_alias(bucket), TargetKeyId=key)
    return trust.key_alias(bucket)


@pytest.fixture
def mirror():
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-2")
        kms = boto3.client("kms", region_name="us-east-2")
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-east-2"})
        yield mc.Mirror(s3, BUCKET, PREFIX, trust.KmsAnchor(kms, signing_key(kms)), OWNER)


def keys(m: mc.Mirror) -> set[str]:
    return {o["Key"] for o in m.s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}


def test_fill_copies_every_listed_file_and_writes_the_marker_last(mirror):
    hub, lines = FakeHub(), []
    assert mc.fill(hub, mirror, log=lines.append) == 0
    assert keys(mirror) == {PREFIX + p for p in FILES} | {PREFIX + mc.MARKER, PREFIX + trust.SIGNATURE}
    assert [f.path for f in mirror.marker()] == sorted(FILES)
    body = mirror.s3.get_object(Bucket=BUCKET, Key=PREFIX + "model-00002-of-00002.safetensors")["Body"].read()
    assert body == FILES["model-00002-of-00002.safetensors"]


def test_a_second_run_is_a_no_op(mirror):
    mc.fill(FakeHub(), mirror)
    again, lines = FakeHub(), []
    assert mc.fill(again, mirror, log=lines.append) == 0
    assert again.opened == [] and "nothing to copy" in lines[0]


@pytest.mark.parametrize(
    ("path", "served"),
    [
        ("model-00001-of-00002.safetensors", FILES["model-00001-of-00002.safetensors"][:-10]),  # truncated
        ("model-00002-of-00002.safetensors", b"\x08" + FILES["model-00002-of-00002.safetensors"][1:]),  # one byte
        ("config.json", b'{"architectures": ["Evil"]}' + b" " * 17),  # same size, other content (git blob id)
    ],
    ids=["truncated", "corrupted-lfs", "corrupted-small-file"],
)
def test_a_download_that_does_not_match_the_listing_fails_and_leaves_no_marker(mirror, path, served):
    with pytest.raises(mc.MirrorError, match=path):
        mc.fill(FakeHub(serve={path: served}), mirror)
    assert PREFIX + mc.MARKER not in keys(mirror)
    assert PREFIX + path not in keys(mirror)  # never left looking complete


def test_an_object_damaged_in_s3_is_caught_by_the_read_back_and_copied_again_next_run(mirror):
    path = "model-00001-of-00002.safetensors"
    hub = FakeHub()
    real_copy = mc._copy

    def copy_then_damage(m, hub_, f, transfer):
        real_copy(m, hub_, f, transfer)
        if f.path == path:  # S3 holds other bytes than were sent, metadata intact
            head = m.s3.head_object(Bucket=BUCKET, Key=m.key(path))
            m.s3.put_object(Bucket=BUCKET, Key=m.key(path), Body=b"\0" * f.size, Metadata=head["Metadata"])

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mc, "_copy", copy_then_damage)
        with pytest.raises(mc.MirrorError, match=f"{path}: sha256"):
            mc.fill(hub, mirror)
    assert PREFIX + mc.MARKER not in keys(mirror)
    retry = FakeHub()
    assert mc.fill(retry, mirror) == 0
    assert retry.opened == [path]  # resumed: only the damaged file again


def test_a_partial_copy_resumes_with_the_missing_files_only(mirror):
    first = "config.json"
    f = next(x for x in FakeHub().files() if x.path == first)
    mirror.s3.put_object(Bucket=BUCKET, Key=PREFIX + first, Body=FILES[first], Metadata=mc._metadata(f))
    hub = FakeHub()
    assert mc.fill(hub, mirror) == 0
    assert sorted(hub.opened) == sorted(set(FILES) - {first})


def test_stage_puts_the_revision_where_vllm_reads_it_offline(mirror, tmp_path):
    mc.fill(FakeHub(), mirror)
    dest = mc.snapshot_dir(str(tmp_path), "MiniMaxAI/MiniMax-M2.5", SHA)
    assert mc.stage(mirror, dest) == 0
    assert dest == tmp_path / "hub" / "models--MiniMaxAI--MiniMax-M2.5" / "snapshots" / SHA
    assert {p: (dest / p).read_bytes() for p in FILES} == FILES
    assert not list(dest.rglob(f"*{mc.PARTIAL_SUFFIX}"))


def test_stage_refuses_a_mirror_without_its_marker(mirror, tmp_path):
    for p, data in FILES.items():
        mirror.s3.put_object(Bucket=BUCKET, Key=PREFIX + p, Body=data)
    with pytest.raises(mc.MirrorError, match="has not finished"):
        mc.stage(mirror, tmp_path / "snap")
    assert not (tmp_path / "snap").exists()


@pytest.mark.parametrize("damage", ["truncated", "corrupted", "missing"])
def test_stage_catches_a_damaged_or_missing_file_before_vllm_starts(mirror, tmp_path, damage):
    mc.fill(FakeHub(), mirror)
    path = "model-00002-of-00002.safetensors"
    key = PREFIX + path
    if damage == "missing":
        mirror.s3.delete_object(Bucket=BUCKET, Key=key)
    else:
        data = FILES[path][:-1] if damage == "truncated" else b"\x09" * len(FILES[path])
        mirror.s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    dest = tmp_path / "snap"
    with pytest.raises(mc.MirrorError, match=path):
        mc.stage(mirror, dest)
    assert not (dest / path).exists()


def test_a_restarted_stage_keeps_verified_files_and_fetches_the_rest(mirror, tmp_path):
    mc.fill(FakeHub(), mirror)
    dest = tmp_path / "snap"
    mc.stage(mirror, dest)
    (dest / "config.json").unlink()
    fetched = []
    real = mirror.s3.download_fileobj
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mirror.s3, "download_fileobj", lambda b, k, f, **kw: (fetched.append(k), real(b, k, f, **kw)))
        mc.stage(mirror, dest)
    assert fetched == [PREFIX + "config.json"]


def test_a_stager_holding_the_lock_clears_partial_files_killed_stagers_left(mirror, tmp_path):
    mc.fill(FakeHub(), mirror)
    dest = tmp_path / "snap"
    dest.mkdir()
    left = [
        dest / f"config.json.vllm-0-7f9c-12{mc.PARTIAL_SUFFIX}",  # a killed pod's verified-size copy
        dest / f"model-00001-of-00002.safetensors.vllm-1-2b4d-40{mc.PARTIAL_SUFFIX}.9fA3c1D0",  # s3transfer's
    ]
    for f in left:
        f.write_bytes(b"\0" * 10)
    mc.stage(mirror, dest)
    assert not any(f.exists() for f in left)
    assert {p.name for p in dest.iterdir()} == set(FILES) | {mc.LOCK_FILE}


def test_a_stager_waits_for_the_one_filling_the_cache_then_reads_no_weights(mirror, tmp_path):
    import fcntl
    import threading

    mc.fill(FakeHub(), mirror)
    dest = tmp_path / "snap"
    dest.mkdir()
    lines: list[str] = []
    with (dest / mc.LOCK_FILE).open("a") as held:  # another pod's stager, mid-copy
        fcntl.flock(held, fcntl.LOCK_EX)
        waiter = threading.Thread(target=mc.stage, args=(mirror, dest), kwargs={"log": lines.append})
        waiter.start()
        waiter.join(timeout=1)
        assert waiter.is_alive() and any("waiting" in line for line in lines)
        for p, data in FILES.items():  # ...which then puts every verified file in place
            (dest / p).write_bytes(data)
    waiter.join(timeout=30)  # the lock is released: closed, as when that process ends
    assert not waiter.is_alive()
    assert "(0 read from S3, the rest already in place)" in lines[-1]


def test_the_hub_listing_maps_lfs_files_to_sha256_and_the_others_to_their_git_blob(monkeypatch):
    """The real adapter, over huggingface_hub's own listing types (no network)."""
    import huggingface_hub
    from huggingface_hub.hf_api import BlobLfsInfo, RepoSibling

    weights = "model-00001-of-00002.safetensors"
    siblings = [
        RepoSibling(rfilename="config.json", size=44, blob_id=git_blob(FILES["config.json"]), lfs=None),
        RepoSibling(
            rfilename=weights,
            size=135,
            blob_id="pointer",
            lfs=BlobLfsInfo(size=1024000, sha256="ab" * 32, pointer_size=135),
        ),
    ]

    class Info:
        sha = SHA

    Info.siblings = siblings
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", lambda self, *a, **kw: Info)
    files = {f.path: f for f in mc.HfHub("MiniMaxAI/MiniMax-M2.5", SHA).files()}
    assert files[weights] == mc.HubFile(weights, 1024000, "ab" * 32, None)
    assert files["config.json"] == mc.HubFile("config.json", 44, None, git_blob(FILES["config.json"]))
    Info.sha = "f" * 40
    with pytest.raises(mc.MirrorError, match="commit shas only"):
        mc.HfHub("MiniMaxAI/MiniMax-M2.5", SHA).files()
