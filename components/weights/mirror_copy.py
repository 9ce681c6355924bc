"""The weight mirror's two copies, as one file the pods run from a ConfigMap.

    python3 mirror_copy.py fill    the weights-mirror Job: Hub -> s3://$BUCKET/$PREFIX
    python3 mirror_copy.py stage   the node's stage-weights pod: S3 mirror -> the node's cache

Runs in the stager image (images/stage-weights/: Python, huggingface_hub, boto3 with the AWS
CRT). Imports nothing of the project but mirror_trust.py, which the ConfigMap carries beside it.

fill: every file the Hub lists for the revision is streamed into S3 while its size and hash
are computed; it is then read back from S3 and checked again against the Hub's listing
(sha256 for LFS files, the git blob id for the others). Only when every file matches is the
manifest written, holding that listing, and then its KMS signature (mirror_trust.py). A signed
manifest present: nothing to do. A run cut short: the files already in S3 with the listed size
and hash are kept, the rest are copied.
stage: refuses a mirror whose manifest is missing, unsigned or signed for something else,
and any path that would leave the snapshot folder; streams each file into the Hugging Face
cache layout vLLM reads offline (`hub/models--Org--Name/snapshots/<commit>/`), hashing the
bytes as they arrive (no second read pass), checks size and sha256 against the manifest, and
only then moves it into place. A restart resumes: a file already in place is hashed again
before it counts. Every S3 call names the bucket's owner (ExpectedBucketOwner): a bucket of
the same name in another account is never read or written. Replicas on one node share that cache: a stager holds an exclusive lock on a file in the snapshot folder
(flock, released by the kernel when the process ends, however it ends), so the others wait and
then find every file in place; partial files carry the pod's name and process id, and a file
another stager finished meanwhile counts as done.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import secrets
import socket
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

# In the repository a module of the package; in the pods a file beside this one in the ConfigMap.
trust = importlib.import_module("components.weights.mirror_trust" if __package__ else "mirror_trust")

MARKER = trust.MANIFEST
HubFile, Digest, HashingReader, HashingWriter, digest_of = (
    trust.HubFile,
    trust.Digest,
    trust.HashingReader,
    trust.HashingWriter,
    trust.digest_of,
)
CHUNK = 8 * 1024 * 1024
PARTIAL_SUFFIX = ".mirror-partial"
LOCK_FILE = ".stage-weights.lock"  # in the snapshot folder; vLLM loads weights by pattern, not by listing


class MirrorError(RuntimeError):
    """The mirror is missing, incomplete, untrusted or does not match the Hub: the pod must not go on."""


class Hub(Protocol):
    def files(self) -> list[HubFile]: ...

    def open(self, path: str) -> Any:  # a context manager giving an object with read(n)
        ...


# --- the Hub ------------------------------------------------------------------------------


class HfHub:
    """The Hugging Face Hub through huggingface_hub (the token from HF_TOKEN, if set)."""

    def __init__(self, model: str, revision: str):
        self.model, self.revision = model, revision

    def files(self) -> list[HubFile]:
        from huggingface_hub import HfApi

        info = HfApi().model_info(self.model, revision=self.revision, files_metadata=True)
        if info.sha != self.revision:
            raise MirrorError(f"{self.model}@{self.revision} resolves to {info.sha}: the mirror takes commit shas only")
        out = []
        for s in info.siblings or []:
            lfs = s.lfs
            out.append(
                HubFile(
                    s.rfilename,
                    int(lfs.size if lfs else s.size),
                    sha256=lfs.sha256 if lfs else None,
                    git_sha1=None if lfs else s.blob_id,
                )
            )
        return sorted(out, key=lambda f: f.path)

    @contextmanager
    def open(self, path: str) -> Iterator[Any]:
        from huggingface_hub import hf_hub_url
        from huggingface_hub.utils import build_hf_headers, get_session

        url = hf_hub_url(self.model, path, revision=self.revision)
        with get_session().stream("GET", url, headers=build_hf_headers(), follow_redirects=True) as response:
            response.raise_for_status()
            yield _IterReader(response.iter_bytes(CHUNK))


class _IterReader:
    """read(n) over an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes]):
        self.chunks, self.buffer = chunks, b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self.buffer) < n:
            chunk = next(self.chunks, None)
            if chunk is None:
                break
            self.buffer += chunk
        data, self.buffer = (self.buffer, b"") if n < 0 else (self.buffer[:n], self.buffer[n:])
        return data


# --- fill: Hub -> S3 ------------------------------------------------------------------------


@dataclass(frozen=True)
class Mirror:
    s3: Any  # a boto3 S3 client
    bucket: str
    prefix: str  # <model>/<revision>/
    anchor: Any = None  # mirror_trust.KmsAnchor: signs (fill) and verifies (stage) the manifest
    owner: str | None = None  # the bucket owner's account id, sent as ExpectedBucketOwner

    @property
    def pin(self) -> dict[str, str]:
        return {"ExpectedBucketOwner": self.owner} if self.owner else {}

    def key(self, path: str) -> str:
        return f"{self.prefix}{path}"

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return self.s3.head_object(Bucket=self.bucket, Key=key, **self.pin)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def read(self, key: str) -> bytes | None:
        if self.head(key) is None:
            return None
        return self.s3.get_object(Bucket=self.bucket, Key=key, **self.pin)["Body"].read()

    def marker(self) -> list[HubFile] | None:
        """The signed manifest's listing; None when there is no manifest; MirrorError when it
        is not trusted (unsigned, changed, signed for another prefix, or an unsafe path)."""
        if self.anchor is None:
            raise MirrorError("no signing key given (MANIFEST_SIGNER): an unsigned mirror is never trusted")
        body = self.read(self.key(MARKER))
        if body is None:
            return None
        try:
            doc = trust.verified_manifest(
                self.anchor, self.bucket, self.prefix, body, self.read(self.key(trust.SIGNATURE))
            )
        except trust.TrustError as err:
            raise MirrorError(
                f"{err}; vLLM is not started. Once the cause is known, `pulumi config set --path"
                " 'weights.refill' true` and `pulumi up` run the fill Job again: it checks every file"
                " against the Hub and signs anew"
            ) from None
        return [HubFile(**f) for f in doc["files"]]

    def put(self, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, **self.pin)

    def delete(self, key: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=key, **self.pin)


def _metadata(f: HubFile) -> dict[str, str]:
    return {k: v for k, v in (("sha256", f.sha256), ("git-sha1", f.git_sha1)) if v}


def _copied(m: Mirror, f: HubFile) -> bool:
    """Already in S3 from an earlier run, with the listed size and hash (checked again below)."""
    head = m.head(m.key(f.path))
    return bool(head) and head["ContentLength"] == f.size and head.get("Metadata", {}) == _metadata(f)


def _copy(m: Mirror, hub: Hub, f: HubFile, transfer: Any) -> None:
    digest = Digest(f.size)
    with hub.open(f.path) as stream:
        m.s3.upload_fileobj(
            HashingReader(stream, digest),
            m.bucket,
            m.key(f.path),
            ExtraArgs={"Metadata": _metadata(f), **m.pin},
            Config=transfer,
        )
    if problem := digest.problem(f):
        m.delete(m.key(f.path))
        raise MirrorError(f"download from the Hub does not match its listing: {problem}")


def _verify(m: Mirror, f: HubFile) -> str | None:
    """Read the object back from S3: what a node would get."""
    head = m.head(m.key(f.path))
    if head is None:
        return f"{f.path}: missing from {m.url}"
    body = m.s3.get_object(Bucket=m.bucket, Key=m.key(f.path), **m.pin)["Body"]
    if problem := digest_of(body, f.size).problem(f):
        m.delete(m.key(f.path))  # the next run copies it again
        return problem
    return None


def fill(hub: Hub, m: Mirror, workers: int = 8, log: Callable[[str], None] = print, transfer: Any = None) -> int:
    """Copy the revision into the mirror and sign it complete; a no-op when it already is.
    A manifest whose signature does not hold is not complete: every file is checked again."""
    try:
        if m.marker() is not None:
            log(f"{m.url} is complete ({MARKER} signed): nothing to copy")
            return 0
    except MirrorError as err:
        log(f"{m.url}: {err}; checking every file against the Hub again")
    files = hub.files()
    if not files:
        raise MirrorError("the Hub lists no files for this revision")
    for f in files:
        try:
            trust.checked_path(f.path)
        except trust.TrustError as err:
            raise MirrorError(f"the Hub's listing: {err}") from None
    todo = [f for f in files if not _copied(m, f)]
    log(f"{len(files) - len(todo)} of {len(files)} files already in {m.url}; copying {len(todo)}")
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda f: _copy(m, hub, f, transfer), todo))
    log(f"copied {sum(f.size for f in todo) / 1e9:.1f} GB in {time.monotonic() - started:.0f} s; verifying every file")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        problems = [p for p in pool.map(lambda f: _verify(m, f), files) if p]
    if problems:
        raise MirrorError(
            "the mirror does not match the Hub (no marker written; a re-run copies these again): " + "; ".join(problems)
        )
    doc = {"files": [asdict(f) for f in files], "completedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    manifest = json.dumps(doc, indent=1, sort_keys=True).encode()
    m.put(m.key(MARKER), manifest)
    m.put(m.key(trust.SIGNATURE), m.anchor.sign(trust.statement(m.bucket, m.prefix, manifest)))
    log(f"{m.url} complete: {len(files)} files verified, {MARKER} written and signed")
    return 0


# --- stage: S3 -> the node's cache ------------------------------------------------------------


def _in_place(final: Path, f: HubFile) -> bool:
    """Hashed again: the cache is on the node's disk, and a size says nothing of the bytes."""
    if not final.is_file() or final.stat().st_size != f.size:
        return False
    with final.open("rb") as stream:
        return digest_of(stream, f.size).problem(f) is None


def _stage_one(m: Mirror, f: HubFile, dest: Path, transfer: Any) -> bool:
    """Put one file in place; True when it was read from S3."""
    try:
        final = trust.inside(dest, f.path)
    except trust.TrustError as err:
        raise MirrorError(f"{err}; vLLM is not started ({m.url})") from None
    if _in_place(final, f):
        return False
    final.parent.mkdir(parents=True, exist_ok=True)
    # This download's own name: the pod (the container's hostname), the process, and a random
    # part for pods that would share both (hostNetwork), so no two stagers share it.
    own = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
    partial = final.with_name(f"{final.name}.{own}{PARTIAL_SUFFIX}")
    from botocore.exceptions import ClientError

    digest = Digest(f.size)
    try:
        with partial.open("xb") as out:
            m.s3.download_fileobj(m.bucket, m.key(f.path), HashingWriter(out, digest), ExtraArgs=m.pin, Config=transfer)
    except ClientError as err:
        partial.unlink(missing_ok=True)
        raise MirrorError(f"the mirror has lost {f.path}, vLLM is not started: {err} ({m.url})") from None
    if problem := digest.problem(f):
        partial.unlink()
        raise MirrorError(f"the mirror's copy is damaged, vLLM is not started: {problem} ({m.url})")
    partial.replace(final)  # atomic: a verified copy another stager put there meanwhile is the same bytes
    return True


@contextmanager
def _one_stager(dest: Path, log: Callable[[str], None]) -> Iterator[None]:
    """Hold the snapshot folder's lock; waiting, if another stager on this node holds it."""
    import fcntl

    dest.mkdir(parents=True, exist_ok=True)
    with (dest / LOCK_FILE).open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"another stager on this node is filling {dest}: waiting for it to finish")
            fcntl.flock(lock, fcntl.LOCK_EX)
        # Holding the lock, no other stager is writing: partial files here are from killed ones.
        for left in dest.rglob(f"*{PARTIAL_SUFFIX}*"):
            left.unlink(missing_ok=True)
        yield


def stage(m: Mirror, dest: Path, workers: int = 16, log: Callable[[str], None] = print, transfer: Any = None) -> int:
    files = m.marker()
    if files is None:
        raise MirrorError(
            f"{m.url} has no {MARKER}: the weights-mirror Job has not finished filling it "
            "(kubectl -n minimax-vllm logs job -l app.kubernetes.io/name=weights-mirror)"
        )
    log(f"staging {len(files)} files ({sum(f.size for f in files) / 1e9:.1f} GB) from {m.url} into {dest}")
    with _one_stager(dest, log), ThreadPoolExecutor(max_workers=workers) as pool:
        fetched = sum(pool.map(lambda f: _stage_one(m, f, dest, transfer), files))
    log(f"staged and verified {len(files)} files from {m.url} ({fetched} read from S3, the rest already in place)")
    return 0


def snapshot_dir(hf_home: str, model: str, revision: str) -> Path:
    """Where huggingface_hub (and so vLLM under HF_HUB_OFFLINE) finds a commit of a model."""
    return Path(hf_home) / "hub" / f"models--{model.replace('/', '--')}" / "snapshots" / revision


def transfer_config(config: Any) -> Any:
    """The AWS CRT's transfer client when the image has it (boto3[crt]: awscrt; on a p5 it sizes
    its connections for the instance's network), else s3transfer's classic one. Either way many
    ranged parts per file on top of parallel files: S3 serves each connection at tens of MB/s."""
    if importlib.util.find_spec("awscrt") is None:
        return config(multipart_chunksize=64 * 1024 * 1024, max_concurrency=8, preferred_transfer_client="classic")
    return config(multipart_chunksize=64 * 1024 * 1024, max_concurrency=8, preferred_transfer_client="crt")


def main(argv: list[str]) -> int:
    import boto3
    from boto3.s3.transfer import TransferConfig

    env = os.environ
    model, revision = env["MODEL"], env["REVISION"]
    workers = int(env.get("MAX_WORKERS", "16"))
    anchor = trust.KmsAnchor(boto3.client("kms"), env["MANIFEST_SIGNER"])
    mirror = Mirror(boto3.client("s3"), env["BUCKET"], f"{model}/{revision}/", anchor, env["BUCKET_OWNER"])
    transfer = transfer_config(TransferConfig)
    try:
        if argv[1:] == ["fill"]:
            return fill(HfHub(model, revision), mirror, workers, transfer=transfer)
        if argv[1:] == ["stage"]:
            return stage(mirror, snapshot_dir(env["HF_HOME"], model, revision), workers, transfer=transfer)
    except MirrorError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print("usage: mirror_copy.py fill|stage", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
