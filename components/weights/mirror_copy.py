"""The weight mirror's two copies, as one file the pods run from a ConfigMap.

    python3 mirror_copy.py fill    the weights-mirror Job: Hub -> s3://$BUCKET/$PREFIX
    python3 mirror_copy.py stage   the stage-weights init container: S3 mirror -> the node's cache

Runs in the vLLM image, which has everything it needs: Python, huggingface_hub (a vLLM
requirement) and boto3 (through runai-model-streamer[s3], which the image installs). Imports
nothing of the project, so the ConfigMap carries exactly this file.

fill: every file the Hub lists for the revision is streamed into S3 while its size and hash
are computed; it is then read back from S3 and checked again against the Hub's listing
(sha256 for LFS files, the git blob id for the others). Only when every file matches is the
completion marker written, holding that listing. A marker present: nothing to do. A run cut
short: the files already in S3 with the listed size and hash are kept, the rest are copied.
stage: refuses a mirror without a marker, downloads each file into the Hugging Face cache
layout vLLM reads offline (`hub/models--Org--Name/snapshots/<commit>/`), checks size and
sha256 against the marker, and only then moves it into place; a restart resumes. Replicas on
one node share that cache: a stager holds an exclusive lock on a file in the snapshot folder
(flock, released by the kernel when the process ends, however it ends), so the others wait and
then find every file in place; partial files carry the pod's name and process id, and a file
another stager finished meanwhile counts as done.
"""

from __future__ import annotations

import hashlib
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
from typing import Any, BinaryIO, Protocol

MARKER = "mirror-complete.json"  # under the revision's prefix, written last
CHUNK = 8 * 1024 * 1024
PARTIAL_SUFFIX = ".mirror-partial"
LOCK_FILE = ".stage-weights.lock"  # in the snapshot folder; vLLM loads weights by pattern, not by listing


class MirrorError(RuntimeError):
    """The mirror is missing, incomplete or does not match the Hub: the pod must not go on."""


@dataclass(frozen=True)
class HubFile:
    """A file of the revision as the Hub lists it."""

    path: str
    size: int
    sha256: str | None = None  # LFS files: the Hub lists their sha256
    git_sha1: str | None = None  # every file: its git blob id (for LFS files, the pointer's)


class Hub(Protocol):
    def files(self) -> list[HubFile]: ...

    def open(self, path: str) -> Any:  # a context manager giving an object with read(n)
        ...


# --- hashing ----------------------------------------------------------------------------


class Digest:
    """sha256 and the git blob id of a stream, as the Hub lists them."""

    def __init__(self, size: int):
        self.sha256 = hashlib.sha256()
        self.git = hashlib.sha1(f"blob {size}\0".encode(), usedforsecurity=False)
        self.size = 0

    def update(self, data: bytes) -> None:
        self.sha256.update(data)
        self.git.update(data)
        self.size += len(data)

    def problem(self, f: HubFile) -> str | None:
        """Why these bytes are not the file the Hub lists, or None."""
        if self.size != f.size:
            return f"{f.path}: {self.size} bytes, the Hub lists {f.size}"
        if f.sha256 and self.sha256.hexdigest() != f.sha256:
            return f"{f.path}: sha256 {self.sha256.hexdigest()}, the Hub lists {f.sha256}"
        if not f.sha256 and f.git_sha1 and self.git.hexdigest() != f.git_sha1:
            return f"{f.path}: git blob {self.git.hexdigest()}, the Hub lists {f.git_sha1}"
        if not f.sha256 and not f.git_sha1:
            return f"{f.path}: the Hub lists no hash to check it against"
        return None


class HashingReader:
    """A read()-able stream that hashes what passes through (boto3 uploads from it)."""

    def __init__(self, raw: Any, digest: Digest):
        self.raw, self.digest = raw, digest

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.digest.update(data)
        return data


def digest_of(stream: BinaryIO, size: int) -> Digest:
    d = Digest(size)
    while chunk := stream.read(CHUNK):
        d.update(chunk)
    return d


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

    def key(self, path: str) -> str:
        return f"{self.prefix}{path}"

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def marker(self) -> list[HubFile] | None:
        if self.head(self.key(MARKER)) is None:
            return None
        body = self.s3.get_object(Bucket=self.bucket, Key=self.key(MARKER))["Body"].read()
        return [HubFile(**f) for f in json.loads(body)["files"]]


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
            ExtraArgs={"Metadata": _metadata(f)},
            Config=transfer,
        )
    if problem := digest.problem(f):
        m.s3.delete_object(Bucket=m.bucket, Key=m.key(f.path))
        raise MirrorError(f"download from the Hub does not match its listing: {problem}")


def _verify(m: Mirror, f: HubFile) -> str | None:
    """Read the object back from S3: what a node would get."""
    head = m.head(m.key(f.path))
    if head is None:
        return f"{f.path}: missing from {m.url}"
    body = m.s3.get_object(Bucket=m.bucket, Key=m.key(f.path))["Body"]
    if problem := digest_of(body, f.size).problem(f):
        m.s3.delete_object(Bucket=m.bucket, Key=m.key(f.path))  # the next run copies it again
        return problem
    return None


def fill(hub: Hub, m: Mirror, workers: int = 8, log: Callable[[str], None] = print, transfer: Any = None) -> int:
    """Copy the revision into the mirror and mark it complete; a no-op when it already is."""
    if m.marker() is not None:
        log(f"{m.url} is complete ({MARKER} present): nothing to copy")
        return 0
    files = hub.files()
    if not files:
        raise MirrorError("the Hub lists no files for this revision")
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
    m.s3.put_object(Bucket=m.bucket, Key=m.key(MARKER), Body=json.dumps(doc, indent=1, sort_keys=True).encode())
    log(f"{m.url} complete: {len(files)} files verified, {MARKER} written")
    return 0


# --- stage: S3 -> the node's cache ------------------------------------------------------------


def _in_place(final: Path, f: HubFile) -> bool:
    return final.is_file() and final.stat().st_size == f.size  # verified before it was moved into place


def _stage_one(m: Mirror, f: HubFile, dest: Path, transfer: Any) -> bool:
    """Put one file in place; True when it was read from S3."""
    final = dest / f.path
    if _in_place(final, f):
        return False
    final.parent.mkdir(parents=True, exist_ok=True)
    # This download's own name: the pod (the container's hostname), the process, and a random
    # part for pods that would share both (hostNetwork). s3transfer writes a temporary file
    # beside it and renames it to this name, so no two stagers share either.
    own = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
    partial = final.with_name(f"{final.name}.{own}{PARTIAL_SUFFIX}")
    from botocore.exceptions import ClientError

    try:
        m.s3.download_file(m.bucket, m.key(f.path), str(partial), Config=transfer)
    except ClientError as err:
        raise MirrorError(f"the mirror has lost {f.path}, vLLM is not started: {err} ({m.url})") from None
    with partial.open("rb") as stream:
        problem = digest_of(stream, f.size).problem(f)
    if problem:
        partial.unlink()
        raise MirrorError(f"the mirror's copy is damaged, vLLM is not started: {problem} ({m.url})")
    if _in_place(final, f):  # another stager put its verified copy there meanwhile
        partial.unlink()
    else:
        partial.replace(final)
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


def main(argv: list[str]) -> int:
    import boto3
    from boto3.s3.transfer import TransferConfig

    env = os.environ
    model, revision = env["MODEL"], env["REVISION"]
    workers = int(env.get("MAX_WORKERS", "16"))
    mirror = Mirror(boto3.client("s3"), env["BUCKET"], f"{model}/{revision}/")
    # Parallel ranged parts per file on top of parallel files: S3 serves each connection at
    # tens of MB/s, so throughput comes from many connections.
    transfer = TransferConfig(multipart_chunksize=64 * 1024 * 1024, max_concurrency=8)
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
