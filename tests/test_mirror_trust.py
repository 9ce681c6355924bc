"""What a stager refuses (components/weights/mirror_trust.py, mirror_copy.py) against moto's S3
and KMS: a tampered manifest, a manifest without or with another signature, one moved from
another prefix, a `../` path even under a valid signature, a file whose bytes changed in place
on the node; and that every S3 call names the bucket's owner."""

from __future__ import annotations

import hashlib
import io
import json
from contextlib import contextmanager

import boto3
import pytest
from moto import mock_aws

from components.weights import mirror_copy as mc
from components.weights import mirror_trust as trust

pytestmark = pytest.mark.slow  # a mock AWS account

REGION, OWNER, BUCKET = "us-east-2", "123456789012", "minimax-vllm-weights-trust"
SHA = "5fb9455421adc47f561f139d4e925b4c88c44367"
PREFIX = f"MiniMaxAI/MiniMax-M2.5/{SHA}/"
FILES = {"config.json": b'{"architectures": ["MiniMaxM2ForCausalLM"]}', "model.safetensors": b"\x07" * 300_000}


class Hub:
    def __init__(self, files: dict[str, bytes] = FILES):
        self.data = files

    def files(self) -> list[mc.HubFile]:
        return [mc.HubFile(p, len(d), hashlib.sha256(d).hexdigest()) for p, d in sorted(self.data.items())]

    @contextmanager
    def open(self, path: str):
        yield io.BytesIO(self.data[path])


def new_key(kms, alias: str) -> str:
    key = kms.create_key(KeySpec=trust.KEY_SPEC, KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=alias, TargetKeyId=key)
    return alias


@pytest.fixture
def aws():
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        kms = boto3.client("kms", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        new_key(kms, trust.key_alias(BUCKET))
        yield s3, kms


def mirror(s3, kms, prefix: str = PREFIX) -> mc.Mirror:
    return mc.Mirror(s3, BUCKET, prefix, trust.KmsAnchor(kms, trust.key_alias(BUCKET)), OWNER)


def manifest(s3) -> bytes:
    return s3.get_object(Bucket=BUCKET, Key=PREFIX + mc.MARKER)["Body"].read()


def test_a_filled_mirror_stages_under_its_signature(aws, tmp_path):
    s3, kms = aws
    mc.fill(Hub(), mirror(s3, kms), log=lambda _: None)
    assert mc.stage(mirror(s3, kms), tmp_path / "snap", log=lambda _: None) == 0
    assert (tmp_path / "snap" / "model.safetensors").read_bytes() == FILES["model.safetensors"]


def test_a_rewritten_manifest_and_file_are_refused_before_any_weight_is_read(aws, tmp_path):
    """A bucket writer swaps a file and lists its hash in the manifest: the signature no longer holds."""
    s3, kms = aws
    mc.fill(Hub(), mirror(s3, kms), log=lambda _: None)
    evil = b"\x08" * 300_000
    s3.put_object(Bucket=BUCKET, Key=PREFIX + "model.safetensors", Body=evil)
    doc = json.loads(manifest(s3))
    for f in doc["files"]:
        if f["path"] == "model.safetensors":
            f["sha256"] = hashlib.sha256(evil).hexdigest()
    s3.put_object(Bucket=BUCKET, Key=PREFIX + mc.MARKER, Body=json.dumps(doc, indent=1, sort_keys=True).encode())
    with pytest.raises(mc.MirrorError, match="does not match its signature") as refused:
        mc.stage(mirror(s3, kms), tmp_path / "snap", log=lambda _: None)
    assert not (tmp_path / "snap").exists()
    # The operator is told how to have the mirror checked and signed again (the writer is gone).
    assert "pulumi config set --path 'weights.refill' true" in str(refused.value)


def test_a_manifest_without_its_signature_is_refused(aws, tmp_path):
    s3, kms = aws
    mc.fill(Hub(), mirror(s3, kms), log=lambda _: None)
    s3.delete_object(Bucket=BUCKET, Key=PREFIX + trust.SIGNATURE)
    with pytest.raises(mc.MirrorError, match="carries no signature"):
        mc.stage(mirror(s3, kms), tmp_path / "snap", log=lambda _: None)


def test_a_manifest_signed_with_another_key_is_refused(aws, tmp_path):
    """Whoever may write the bucket but not use the bucket's key signs with a key of their own."""
    s3, kms = aws
    mc.fill(Hub(), mirror(s3, kms), log=lambda _: None)
    other = trust.KmsAnchor(kms, new_key(kms, "alias/someone-elses"))
    s3.put_object(
        Bucket=BUCKET, Key=PREFIX + trust.SIGNATURE, Body=other.sign(trust.statement(BUCKET, PREFIX, manifest(s3)))
    )
    with pytest.raises(mc.MirrorError, match="does not match its signature"):
        mc.stage(mirror(s3, kms), tmp_path / "snap", log=lambda _: None)


def test_a_signed_manifest_copied_from_another_revision_is_refused(aws, tmp_path):
    s3, kms = aws
    mc.fill(Hub(), mirror(s3, kms), log=lambda _: None)
    other = f"MiniMaxAI/MiniMax-M2.5/{'e' * 40}/"
    for key in (mc.MARKER, trust.SIGNATURE, *FILES):
        s3.copy_object(Bucket=BUCKET, Key=other + key, CopySource={"Bucket": BUCKET, "Key": PREFIX + key})
    with pytest.raises(mc.MirrorError, match="does not match its signature"):
        mc.stage(mirror(s3, kms, other), tmp_path / "snap", log=lambda _: None)


@pytest.mark.parametrize(
    "path", ["../../modules/transformers_modules/evil.py", "/etc/cron.d/x", "a/./b", "a//b", "a\\..\\b", ""]
)
def test_a_path_that_would_leave_the_snapshot_folder_is_refused_even_when_signed(aws, tmp_path, path):
    """The fill signs only what the Hub lists; a signed listing with such a path is refused all the same."""
    s3, kms = aws
    m = mirror(s3, kms)
    doc = {"files": [{"path": path, "size": 3, "sha256": hashlib.sha256(b"bad").hexdigest(), "git_sha1": None}]}
    body = json.dumps(doc).encode()
    m.put(m.key(mc.MARKER), body)
    m.put(m.key(trust.SIGNATURE), m.anchor.sign(trust.statement(BUCKET, PREFIX, body)))
    s3.put_object(Bucket=BUCKET, Key=PREFIX + path, Body=b"bad")
    with pytest.raises(mc.MirrorError, match="only relative paths of plain names"):
        mc.stage(m, tmp_path / "cache" / "snap", log=lambda _: None)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_a_symlink_in_the_snapshot_folder_cannot_lead_a_write_outside(tmp_path):
    dest = tmp_path / "snap"
    dest.mkdir()
    (dest / "sub").symlink_to(tmp_path)
    with pytest.raises(trust.TrustError, match="outside"):
        trust.inside(dest, "sub/x")


def test_the_fill_refuses_a_hub_listing_with_an_escaping_path(aws):
    s3, kms = aws
    with pytest.raises(mc.MirrorError, match="the Hub's listing"):
        mc.fill(Hub({"../x": b"x"}), mirror(s3, kms), log=lambda _: None)


def test_a_file_changed_on_the_node_with_its_size_kept_is_hashed_and_fetched_again(aws, tmp_path):
    s3, kms = aws
    mc.fill(Hub(), mirror(s3, kms), log=lambda _: None)
    dest = tmp_path / "snap"
    mc.stage(mirror(s3, kms), dest, log=lambda _: None)
    (dest / "model.safetensors").write_bytes(b"\x09" * 300_000)  # same size, other bytes
    lines: list[str] = []
    mc.stage(mirror(s3, kms), dest, log=lines.append)
    assert (dest / "model.safetensors").read_bytes() == FILES["model.safetensors"]
    assert "(1 read from S3" in lines[-1]


def test_a_fill_under_a_new_key_checks_every_file_again_and_signs_anew(aws):
    """A bucket kept through a destroy whose key is gone: the old signature does not hold, so
    the next fill reads every file back against the Hub (no new download) and signs again."""
    s3, kms = aws
    mc.fill(Hub(), mirror(s3, kms), log=lambda _: None)
    kms.update_alias(AliasName=trust.key_alias(BUCKET), TargetKeyId=_key(kms))
    hub = Hub()
    opened: list[str] = []
    hub.open = lambda path: (opened.append(path), Hub.open(hub, path))[1]  # type: ignore[method-assign]
    lines: list[str] = []
    assert mc.fill(hub, mirror(s3, kms), log=lines.append) == 0
    assert opened == [] and "checking every file" in lines[0] and "signed" in lines[-1]
    assert mirror(s3, kms).marker() is not None


def _key(kms) -> str:
    return kms.create_key(KeySpec=trust.KEY_SPEC, KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]


def test_every_s3_call_names_the_bucket_owner(aws, tmp_path):
    s3, kms = aws
    calls: list[tuple[str, str | None]] = []
    s3.meta.events.register(
        "provide-client-params.s3.*",
        lambda params, model, **_: calls.append((model.name, params.get("ExpectedBucketOwner"))),
    )
    mc.fill(Hub(), mirror(s3, kms), log=lambda _: None)
    mc.stage(mirror(s3, kms), tmp_path / "snap", log=lambda _: None)
    ops = {name for name, _ in calls}
    assert {"HeadObject", "GetObject", "PutObject"} <= ops
    assert [c for c in calls if c[1] != OWNER] == []


def test_the_streaming_hash_catches_a_corrupted_range_with_no_second_read(tmp_path, monkeypatch):
    """moto's S3 server on loopback, s3transfer's ranged parts: one part's bytes changed in S3;
    the digest fed by the download itself refuses the file, and nothing reads it back from disk."""
    from boto3.s3.transfer import TransferConfig
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        url = "http://{}:{}".format(*server.get_host_and_port())
        creds = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": REGION}
        s3, kms = boto3.client("s3", endpoint_url=url, **creds), boto3.client("kms", endpoint_url=url, **creds)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        new_key(kms, trust.key_alias(BUCKET))
        shard = bytes(range(256)) * 4096  # 1 MiB: sixteen 64 KiB ranged parts
        mc.fill(Hub({"model.safetensors": shard}), mirror(s3, kms), log=lambda _: None)
        bad = shard[: 9 * 65536] + b"\0" * 100 + shard[9 * 65536 + 100 :]  # inside the tenth part
        s3.put_object(Bucket=BUCKET, Key=PREFIX + "model.safetensors", Body=bad)
        parts: list[str] = []
        s3.meta.events.register(
            "provide-client-params.s3.GetObject", lambda params, **_: parts.append(params.get("Range"))
        )
        for module in (trust, mc):
            monkeypatch.setattr(module, "digest_of", lambda *a: pytest.fail("a second read pass over the file"))
        transfer = TransferConfig(multipart_threshold=65536, multipart_chunksize=65536, max_concurrency=4)
        with pytest.raises(mc.MirrorError, match="model.safetensors: sha256"):
            mc.stage(mirror(s3, kms), tmp_path / "snap", log=lambda _: None, transfer=transfer)
        assert len([r for r in parts if r]) == 16  # really ranged, out of order on the wire
        assert list((tmp_path / "snap").iterdir()) == [tmp_path / "snap" / mc.LOCK_FILE]
    finally:
        server.stop()
