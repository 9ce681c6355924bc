"""The compile cache shared through S3: one file the pods run from a ConfigMap.

    python3 compile_cache.py fetch            before vLLM starts: S3 -> the node's cache, verified
    python3 compile_cache.py publish --wait   once the node's vLLM answers /health: the node's cache -> S3

Imports nothing of the project (the ConfigMap carries exactly this file), only the standard
library and boto3 (in the node stager's image, images/stage-weights/). All it reads is the
environment (COMPILE_CACHE_*: bucket, prefix, entry (the key), inputs, base, roots;
VLLM_HEALTH_URL; AWS_REGION).

What vLLM 0.32.0 writes, and where, and why the key covers it: components/serving/compile_cache_key.py.

Layout: `<prefix><key>/manifest.json`, written last and only if absent (If-None-Match), names an
upload id; files lie under `<prefix><key>/<upload>/<path>`: publishers share no file, the first manifest wins. A fetch reads the manifest, refuses
it unless its key and inputs match and every path lies under COMPILE_CACHE_ROOTS (no `..`, not
absolute), downloads every file into a scratch folder checking size and sha256, and only then
moves the files into place (never over an existing file). Anything wrong: the scratch folder is
removed, the node's cache is untouched, and vLLM compiles cold. A fetch never fails the pod.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath
from typing import Any

FORMAT = 1
MANIFEST = "manifest.json"
KEY_FIELDS = ("argv", "env", "gpu", "image", "model", "profile", "revision", "vllm")
LOCAL_STATE = ".compile-cache"  # under the base: <key>.json once this node holds the entry
INCOMING = ".compile-cache-incoming-"  # scratch folders of a fetch, under the base
# This node's own files, and writes in flight: inductor's write_atomic `.<pid>.<tid>.tmp`, Triton's `tmp.pid_*/`.
SKIP_NAMES, SKIP_DIRS = ("gpu_p2p_access_cache_for_*.json", "*.lock", ".*.tmp"), ("startup_plan", "tmp.pid_*")
MAX_ENTRY_BYTES = 50 * 10**9  # a manifest asking for more is refused (the NVMe also holds weights)
UPLOAD_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
LOST_RACE = ("PreconditionFailed", "ConditionalRequestConflict")  # 412: a manifest exists; 409: one is being written
CHUNK = 8 * 1024 * 1024
# Thousands of small files at 100-200 ms each (AWS, "Performance design patterns for Amazon S3"): many in flight.
WORKERS = 32


def key(inputs: Mapping[str, Any]) -> str:
    """sha256 of the inputs' canonical JSON; every field of KEY_FIELDS, and nothing else."""
    if set(inputs) != set(KEY_FIELDS):
        raise ValueError(f"compile cache key inputs must be exactly {KEY_FIELDS}, got {sorted(inputs)}")
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class Cache:
    s3: Any  # a boto3 S3 client
    bucket: str
    prefix: str  # compile-cache/<cluster>/
    key: str
    inputs: Mapping[str, Any]
    base: Path  # the node cache's mount
    roots: tuple[str, ...]  # dirs under base that hold compile artefacts

    @property
    def entry(self) -> str:
        return f"{self.prefix}{self.key}/"

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.entry}"

    def marker(self) -> Path:
        return self.base / LOCAL_STATE / f"{self.key}.json"


def _log(msg: str) -> None:
    print(f"compile cache: {msg}", flush=True)


def path_problem(path: Any, roots: tuple[str, ...]) -> str | None:
    """Why a manifest path may not be written under the base, or None."""
    if not isinstance(path, str) or not path or "\\" in path or "\0" in path:
        return f"{path!r} is not a plain relative path"
    p = PurePosixPath(path)
    if p.is_absolute():
        return f"{path!r} is absolute"
    if any(part in ("..", ".") for part in path.split("/")) or "" in path.split("/"):
        return f"{path!r} has a '..', '.' or empty part"
    if not any(p.parts[: len(PurePosixPath(r).parts)] == PurePosixPath(r).parts for r in roots):
        return f"{path!r} lies outside the compile cache dirs {list(roots)}"
    return None


def manifest_problem(doc: Any, c: Cache) -> str | None:
    """Why this manifest is not a complete entry of exactly this key, or None."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return f"not a format {FORMAT} manifest"
    if doc.get("key") != c.key:
        return f"its key field is {doc.get('key')!r}, this replica's key is {c.key}"
    try:
        if key(doc.get("inputs") or {}) != c.key:
            return "its inputs do not hash to its key"
    except ValueError as err:
        return str(err)
    if not isinstance(doc.get("upload"), str) or not UPLOAD_ID.fullmatch(doc["upload"]):
        return f"upload id {doc.get('upload')!r} is not valid"
    files = doc.get("files")
    if not isinstance(files, list) or not files:
        return "it lists no files"
    seen: set[str] = set()
    for f in files:
        if not isinstance(f, dict):
            return "a file entry is not an object"
        if problem := path_problem(f.get("path"), c.roots):
            return problem
        if f["path"] in seen:
            return f"{f['path']} is listed twice"
        seen.add(f["path"])
        if not isinstance(f.get("size"), int) or f["size"] < 0 or not SHA256.fullmatch(str(f.get("sha256"))):
            return f"{f['path']}: no valid size and sha256"
    if sum(f["size"] for f in files) > MAX_ENTRY_BYTES:
        return f"it asks for more than {MAX_ENTRY_BYTES / 1e9:.0f} GB"
    return None


def _missing(err: Exception) -> bool:
    return getattr(err, "response", {}).get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")


# --- fetch: S3 -> the node's cache ----------------------------------------------------------


def _download(c: Cache, upload: str, f: Mapping[str, Any], scratch: Path) -> str | None:
    """One file into the scratch folder, hashed as it streams; why it is bad, or None."""
    target = scratch / f["path"]
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    try:
        body = c.s3.get_object(Bucket=c.bucket, Key=f"{c.entry}{upload}/{f['path']}")["Body"]
    except Exception as err:  # noqa: BLE001 (any failure only means: not this entry)
        return f"{f['path']}: {err}"
    with target.open("wb") as out:
        while chunk := body.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if size > f["size"]:
                return f"{f['path']}: more than the {f['size']} bytes the manifest lists"
            out.write(chunk)
    if size != f["size"] or digest.hexdigest() != f["sha256"]:
        return f"{f['path']}: {size} bytes, sha256 {digest.hexdigest()}; the manifest lists {f['size']}, {f['sha256']}"
    return None


def _inside(path: Path, base: Path) -> bool:
    """The real location stays under the base (a symlink in the node's cache cannot redirect a write)."""
    return path.resolve().is_relative_to(base.resolve())


def _move_into_place(c: Cache, files: list[Mapping[str, Any]], scratch: Path) -> tuple[int, int]:
    placed = kept = 0
    for f in files:
        final = c.base / f["path"]
        if final.exists() or final.is_symlink() or not _inside(final.parent, c.base):
            kept += 1  # the node's own file wins, never overwritten; nothing goes through a symlink
            continue
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(scratch / f["path"], final)
        placed += 1
    return placed, kept


def fetch(c: Cache, log: Callable[[str], None] = _log, workers: int = WORKERS) -> str:
    """Put a verified entry into the node's cache. Returns what happened; never raises for a bad entry."""
    if c.marker().is_file():
        log(f"this node already holds {c.key[:12]} ({c.marker()}): nothing to fetch")
        return "present"
    try:
        raw = c.s3.get_object(Bucket=c.bucket, Key=f"{c.entry}{MANIFEST}")["Body"].read()
    except Exception as err:  # noqa: BLE001
        if _missing(err):
            log(f"no complete entry at {c.url} (no {MANIFEST}): vLLM compiles cold; the first ready replica publishes")
            return "absent"
        log(f"cannot read {c.url}{MANIFEST} ({err}): ignored, vLLM compiles cold")
        return "ignored"
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    if problem := manifest_problem(doc, c):
        log(f"IGNORED {c.url}: {problem}; the node's cache is untouched, vLLM compiles cold")
        return "ignored"
    files = doc["files"]
    total = sum(f["size"] for f in files)
    started = time.monotonic()
    c.base.mkdir(parents=True, exist_ok=True)
    scratch = c.base / f"{INCOMING}{os.getpid()}-{secrets.token_hex(3)}"
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            problems = [p for p in pool.map(lambda f: _download(c, doc["upload"], f, scratch), files) if p]
        if problems:
            log(f"IGNORED {c.url}: {'; '.join(problems[:3])}; the node's cache is untouched, vLLM compiles cold")
            return "ignored"
        placed, kept = _move_into_place(c, files, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _mark(c, doc["upload"], "fetched")
    log(
        f"fetched {len(files)} files ({total / 1e9:.2f} GB) from {c.url} in {time.monotonic() - started:.0f} s,"
        f" all verified; {placed} placed, {kept} already on this node"
    )
    return "fetched"


def _mark(c: Cache, upload: str, how: str) -> None:
    c.marker().parent.mkdir(parents=True, exist_ok=True)
    c.marker().write_text(json.dumps({"key": c.key, "upload": upload, how: time.strftime("%Y-%m-%dT%H:%M:%SZ")}))


# --- publish: the node's cache -> S3 --------------------------------------------------------


def local_files(c: Cache) -> list[str]:
    """The compile artefacts on this node, as sorted paths relative to the base (no symlinks)."""
    found: set[str] = set()
    for root in c.roots:
        for dirpath, dirnames, filenames in os.walk(c.base / root):
            dirnames[:] = sorted(d for d in dirnames if not any(fnmatch(d, s) for s in SKIP_DIRS))
            for name in filenames:
                p = Path(dirpath) / name
                if p.is_symlink() or not p.is_file() or any(fnmatch(name, s) for s in SKIP_NAMES):
                    continue
                found.add(p.relative_to(c.base).as_posix())
    return sorted(found)


def _head(c: Cache, k: str) -> bool:
    try:
        c.s3.head_object(Bucket=c.bucket, Key=k)
        return True
    except Exception as err:  # noqa: BLE001
        if _missing(err):
            return False
        raise


class _Hashing:
    """read() only, so s3transfer reads it in order: the bytes uploaded are the bytes hashed, in bounded memory."""

    def __init__(self, raw: Any):
        self.raw, self.digest, self.size = raw, hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.digest.update(data)
        self.size += len(data)
        return data


def _upload(c: Cache, upload: str, path: str) -> dict[str, Any] | None:
    try:
        f = (c.base / path).open("rb")
    except FileNotFoundError:
        return None
    with f:
        c.s3.upload_fileobj(stream := _Hashing(f), c.bucket, f"{c.entry}{upload}/{path}")
    return {"path": path, "size": stream.size, "sha256": stream.digest.hexdigest()}


def publish(c: Cache, log: Callable[[str], None] = _log, workers: int = WORKERS) -> str:
    """Upload this node's cache as the entry of its key, unless a complete entry exists."""
    if _head(c, f"{c.entry}{MANIFEST}"):
        log(f"{c.url} is complete already: nothing to publish")
        return "exists"
    paths = local_files(c)
    if not paths:
        log(f"nothing under {[str(c.base / r) for r in c.roots]} to publish")
        return "empty"
    upload = re.sub(r"[^a-z0-9-]", "-", f"{socket.gethostname()}-{os.getpid()}".lower())[:50].strip("-")
    upload = f"{upload or 'u'}-{secrets.token_hex(4)}"
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        files = [f for f in pool.map(lambda p: _upload(c, upload, p), paths) if f]
    doc = {
        "format": FORMAT,
        "key": c.key,
        "inputs": dict(c.inputs),
        "upload": upload,
        "files": files,
        "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    body = json.dumps(doc, indent=1, sort_keys=True).encode()
    try:  # written last, and only if no other publisher's manifest is there
        c.s3.put_object(Bucket=c.bucket, Key=f"{c.entry}{MANIFEST}", Body=body, IfNoneMatch="*")
    except Exception as err:  # noqa: BLE001
        if getattr(err, "response", {}).get("Error", {}).get("Code") not in LOST_RACE:
            raise
        for f in files:  # another replica won: its entry stands, ours goes
            c.s3.delete_object(Bucket=c.bucket, Key=f"{c.entry}{upload}/{f['path']}")
        log(f"another replica published {c.url} first: its entry stands, this upload was removed")
        return "lost"
    _mark(c, upload, "published")
    total = sum(f["size"] for f in files)
    log(f"published {len(files)} files ({total / 1e9:.2f} GB) to {c.url} in {time.monotonic() - started:.0f} s")
    return "published"


def wait_healthy(url: str, timeout_s: float, every_s: float = 10, log: Callable[[str], None] = _log) -> bool:
    """Poll vLLM's /health until it answers 200 (the compile is over), or give up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 (loopback URL from the pod spec)
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(every_s)
    log(f"{url} did not answer within {timeout_s:.0f} s: nothing published")
    return False


# --- the command line -----------------------------------------------------------------------


def from_env(env: Mapping[str, str], s3: Any = None) -> Cache:
    inputs = json.loads(env["COMPILE_CACHE_INPUTS"])
    if key(inputs) != env["COMPILE_CACHE_ENTRY"]:
        raise ValueError("COMPILE_CACHE_INPUTS does not hash to COMPILE_CACHE_ENTRY")
    if s3 is None:
        import boto3
        from botocore.config import Config

        s3 = boto3.client("s3", config=Config(max_pool_connections=WORKERS))
    roots = tuple(r for r in env["COMPILE_CACHE_ROOTS"].split(",") if r)
    bucket, prefix, base = env["COMPILE_CACHE_BUCKET"], env["COMPILE_CACHE_PREFIX"], Path(env["COMPILE_CACHE_BASE"])
    return Cache(s3, bucket, prefix, env["COMPILE_CACHE_ENTRY"], inputs, base, roots)


def _stay() -> None:
    """A sidecar that exits is restarted: after publishing, wait for the pod to end."""
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()


def main(argv: list[str], env: Mapping[str, str] = os.environ) -> int:
    command = argv[1:2]
    if command not in (["fetch"], ["publish"]):
        print("usage: compile_cache.py fetch | publish [--wait | --stay]", file=sys.stderr)
        return 2
    try:
        c = from_env(env)
        if command == ["fetch"]:
            fetch(c)
        else:  # --wait / --stay: a vLLM that is slow to come (its image, a restart) is waited for
            timeout = float(env.get("COMPILE_CACHE_HEALTH_TIMEOUT_S", "7200"))
            patient = "--stay" in argv or "--wait" in argv
            while not (healthy := wait_healthy(env["VLLM_HEALTH_URL"], timeout)) and patient:
                pass
            if healthy:
                publish(c)
    except Exception as err:  # noqa: BLE001 (the cache is an optimisation: never stop the replica)
        _log(f"{command[0]} failed, vLLM goes on without it: {type(err).__name__}: {err}")
    if "--stay" in argv:
        _stay()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
