"""Bucket names, apart from the resources: ops commands (preflight, sweep) name the stack's
buckets without importing Pulumi."""

from __future__ import annotations

import hashlib

S3_NAME_MAX = 63


def unique_bucket_name(cluster_name: str, purpose: str, account_id: str, region: str) -> str:
    """`<cluster>-<purpose>-<account>-<region>`: known before `pulumi up` (the plan, the pods and
    `ops sweep` state it) and unique across accounts and regions, as S3 bucket names are global;
    a long cluster name is cut and keeps a hash of itself."""
    tail = f"-{purpose}-{account_id}-{region}"
    base = cluster_name.lower()
    if len(base) + len(tail) > S3_NAME_MAX:
        digest = hashlib.sha256(base.encode()).hexdigest()[:6]
        base = f"{base[: S3_NAME_MAX - len(tail) - 7].rstrip('-')}-{digest}"
    return base + tail
