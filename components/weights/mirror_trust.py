"""What a stager trusts of the mirror, and why a bucket writer cannot change it.

The manifest (`mirror-complete.json`, the Hub's listing of the revision) lies in the bucket, so
whoever can write the bucket could rewrite it together with the weights. Its anchor lies
elsewhere: the fill Job signs a short statement holding the manifest's sha256, the bucket and
the prefix with an asymmetric KMS key (ECC_NIST_P256, ECDSA_SHA_256) that only the writer role
may use for kms:Sign. The stager reads the manifest and the signature, and asks KMS to verify
(kms:Verify, its role's only KMS right) before it reads one weight. A rewritten manifest, a
signature from another key, or a manifest moved from another prefix is refused.

Paths: a manifest path is a relative POSIX path of plain names (no `..`, `.`, empty part,
backslash or NUL, not absolute); the stager writes only those paths, each inside the snapshot
folder.

Shipped beside mirror_copy.py in the pods' ConfigMap: imports nothing of the project.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

CHUNK = 8 * 1024 * 1024
MANIFEST = "mirror-complete.json"  # under the revision's prefix, written last but one
SIGNATURE = f"{MANIFEST}.sig"  # written last: a signed manifest is a complete mirror
KEY_SPEC = "ECC_NIST_P256"
SIGNING_ALGORITHM = "ECDSA_SHA_256"
STATEMENT_VERSION = 1


class TrustError(RuntimeError):
    """The mirror cannot be trusted: the pod must not go on."""


@dataclass(frozen=True)
class HubFile:
    """A file of the revision as the Hub lists it."""

    path: str
    size: int
    sha256: str | None = None  # LFS files: the Hub lists their sha256
    git_sha1: str | None = None  # every file: its git blob id (for LFS files, the pointer's)


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


class HashingWriter:
    """A write()-only sink: s3transfer then writes the parts in order (its non-seekable path),
    so the digest sees the bytes exactly as they land on the disk."""

    def __init__(self, raw: BinaryIO, digest: Digest):
        self.raw, self.digest = raw, digest

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.raw.write(data)


def digest_of(stream: BinaryIO, size: int) -> Digest:
    d = Digest(size)
    while chunk := stream.read(CHUNK):
        d.update(chunk)
    return d


def key_alias(bucket: str) -> str:
    """The signing key's alias: derived from the bucket, so every stack that reads the bucket
    names the same key without a second setting."""
    return f"alias/{bucket}-manifest"


def statement(bucket: str, prefix: str, manifest: bytes) -> bytes:
    """What is signed (KMS signs at most 4096 raw bytes; a manifest of 130 shards is larger)."""
    doc = {
        "bucket": bucket,
        "manifestSha256": hashlib.sha256(manifest).hexdigest(),
        "prefix": prefix,
        "version": STATEMENT_VERSION,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


class KmsAnchor:
    """Sign (the fill Job) and verify (every stager) through KMS: the private key never leaves it."""

    def __init__(self, kms: Any, key_id: str):
        self.kms, self.key_id = kms, key_id

    def sign(self, message: bytes) -> bytes:
        out = self.kms.sign(KeyId=self.key_id, Message=message, MessageType="RAW", SigningAlgorithm=SIGNING_ALGORITHM)
        return out["Signature"]

    def verify(self, message: bytes, signature: bytes) -> bool:
        from botocore.exceptions import ClientError

        try:
            out = self.kms.verify(
                KeyId=self.key_id,
                Message=message,
                MessageType="RAW",
                Signature=signature,
                SigningAlgorithm=SIGNING_ALGORITHM,
            )
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "KMSInvalidSignatureException":
                return False
            raise
        return bool(out.get("SignatureValid"))


def checked_path(path: str) -> str:
    """A manifest path the stager may write, or TrustError."""
    pure = PurePosixPath(path)
    bad = (
        not path
        or "\\" in path
        or "\0" in path
        or pure.is_absolute()
        or path.startswith("/")
        or any(part in ("", ".", "..") for part in path.split("/"))
    )
    if bad:
        raise TrustError(f"the manifest lists the path {path!r}: only relative paths of plain names are staged")
    return path


def inside(dest: Path, path: str) -> Path:
    """`dest / path`, refused unless it stays inside dest (symlinks resolved)."""
    target = dest / checked_path(path)
    root = dest.resolve()
    if not target.resolve().is_relative_to(root):
        raise TrustError(f"{path!r} resolves outside {dest}: refused")
    return target


def verified_manifest(
    anchor: KmsAnchor, bucket: str, prefix: str, manifest: bytes, signature: bytes | None
) -> dict[str, Any]:
    """The manifest's document once its signature holds for this bucket and prefix, else TrustError."""
    where = f"s3://{bucket}/{prefix}"
    if signature is None:
        raise TrustError(f"{where}{MANIFEST} carries no signature ({SIGNATURE}): it was not written by the fill Job")
    if not anchor.verify(statement(bucket, prefix, manifest), signature):
        raise TrustError(
            f"{where}{MANIFEST} does not match its signature under {anchor.key_id}: "
            "the manifest was changed after the fill Job signed it (or signed for another prefix)"
        )
    doc = json.loads(manifest)
    for f in doc["files"]:
        checked_path(f["path"])
    return doc
