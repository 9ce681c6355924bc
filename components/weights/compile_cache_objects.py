"""The shared compile cache as plain objects: its S3 prefix and IAM statements, the ConfigMap that
carries components/weights/compile_cache.py, its environment, the fetch step and the publisher.

Where: `s3://<weights bucket>/compile-cache/<cluster>/<key>/`, beside the weights prefix and
never inside it, one folder per stack. Who: the role that stages weights may list, read, write
and delete (a publisher that lost the race removes its own upload) in its current key's folder
only, so neither another stack sharing the bucket (weights.existingBucket) nor code in the
serving pod (which has no AWS identity at all) can seed an entry for a key it does not run; it may write the `manifest.json` only
with If-None-Match (an entry is never overwritten) and never delete it. S3 evaluates `s3:if-none-match` on PutObject
(docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes-enforce.html).

How it runs: the node's stager (components/weights/staging.py, a DaemonSet in its own image with
boto3) fetches after the weights and before its marker (`FETCH`), and once the node's vLLM
answers /health (through the node-local Service) publishes once (`PUBLISH`). Both read only the
environment built here. The vLLM pod holds no AWS identity and has no egress.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from components.settings import aws as aws_config
from components.weights import compile_cache

MODULE = Path(compile_cache.__file__)
CONFIGMAP = "compile-cache-code"
MODULE_DIR = "/opt/compile-cache"
MODULE_PATH = f"{MODULE_DIR}/compile_cache.py"
PREFIX_ROOT = "compile-cache/"
# The variables that say where compile artefacts are written (components/kubernetes/pod_security.py
# cache_env sets each under the node cache): VLLM_CACHE_ROOT (torch.compile, FlashInfer autotune,
# DeepGEMM JIT), Triton's, inductor's, FlashInfer's JIT and the CUDA driver's PTX cache.
ARTEFACT_ENV = (
    "VLLM_CACHE_ROOT",
    "TRITON_CACHE_DIR",
    "TORCHINDUCTOR_CACHE_DIR",
    "FLASHINFER_WORKSPACE_BASE",
    "CUDA_CACHE_PATH",
)

# POSIX sh lines for the stager's script: a failed fetch only means a cold compile; publish waits
# for the node's vLLM (through its restarts) and never fails the stager.
FETCH = 'python3 "$COMPILE_CACHE_MODULE" fetch || echo "compile cache: fetch failed; vLLM compiles cold"'
PUBLISH = 'python3 "$COMPILE_CACHE_MODULE" publish --wait || echo "compile cache: publish failed"'


def prefix(cluster_name: str) -> str:
    """This stack's folder of the cache in the bucket."""
    return f"{PREFIX_ROOT}{cluster_name}/"


def roots(cache_env: Mapping[str, str], mount: str) -> tuple[str, ...]:
    """The artefact dirs relative to the cache mount: what is published, and all a manifest may write."""
    found = set()
    for name in ARTEFACT_ENV:
        rel = PurePosixPath(cache_env[name]).relative_to(mount)
        found.add(rel.as_posix())
    return tuple(sorted(found))


def entry(key_prefix: str, key: str) -> str:
    """One key's folder: the only place this stack's pods may write."""
    return f"{key_prefix}{key}/"


def policy_statements(bucket_arn: str, entry_prefix: str, account_id: str | None = None) -> list[dict[str, Any]]:
    """The stager's rights on its key's entry only (statement ids are unique in the merged policy):
    code the serving pod runs cannot seed the entry of a key it does not serve. account_id: the
    bucket owner, pinned like every other S3 Allow of the role (s3:ResourceAccount); the Denies
    stay unconditioned."""
    manifest = f"{bucket_arn}/{entry_prefix}{compile_cache.MANIFEST}"
    owner = {"StringEquals": {"s3:ResourceAccount": account_id}} if account_id else {}
    return [
        {
            # Without it a missing manifest answers 403, not 404.
            "Sid": "ListTheCompileCache",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": bucket_arn,
            "Condition": {"StringLike": {"s3:prefix": [f"{entry_prefix}*"]}, **owner},
        },
        {
            "Sid": "UseTheCompileCache",
            "Effect": "Allow",
            "Action": ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
            "Resource": f"{bucket_arn}/{entry_prefix}*",
            **({"Condition": owner} if owner else {}),
        },
        {
            # The manifest is written once: only with If-None-Match, so an existing one stays.
            "Sid": "NoManifestOverwrite",
            "Effect": "Deny",
            "Action": "s3:PutObject",
            "Resource": manifest,
            "Condition": {"Null": {"s3:if-none-match": "true"}},
        },
        {"Sid": "NoManifestDelete", "Effect": "Deny", "Action": "s3:DeleteObject", "Resource": manifest},
    ]


def with_statements(policy_json: str, statements: list[dict[str, Any]]) -> str:
    """An IAM policy document with these statements added (one role, one policy)."""
    doc = json.loads(policy_json)
    doc["Statement"] = [*doc["Statement"], *statements]
    return json.dumps(doc, sort_keys=True)


def config_map(namespace: str, labels: Mapping[str, str]) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CONFIGMAP, "namespace": namespace, "labels": dict(labels)},
        "data": {MODULE.name: MODULE.read_text()},
    }


def module_volume() -> dict:
    return {"name": "compile-cache-code", "configMap": {"name": CONFIGMAP, "defaultMode": 0o444}}


def module_mount() -> dict:
    return {"name": "compile-cache-code", "mountPath": MODULE_DIR, "readOnly": True}


def env(
    *,
    bucket: str,
    region: str,
    key_prefix: str,
    inputs: Mapping[str, Any],
    base: str,
    artefact_roots: tuple[str, ...],
    health_url: str,
    health_timeout_s: int,
) -> dict[str, str]:
    """Everything fetch and publish read (compile_cache.from_env), key computed here from the inputs."""
    return {
        "COMPILE_CACHE_BUCKET": bucket,
        "COMPILE_CACHE_PREFIX": key_prefix,
        "COMPILE_CACHE_ENTRY": compile_cache.key(inputs),
        "COMPILE_CACHE_INPUTS": json.dumps(inputs, sort_keys=True, separators=(",", ":")),
        "COMPILE_CACHE_BASE": base,
        "COMPILE_CACHE_ROOTS": ",".join(artefact_roots),
        "COMPILE_CACHE_MODULE": MODULE_PATH,
        "COMPILE_CACHE_HEALTH_TIMEOUT_S": str(health_timeout_s),
        "VLLM_HEALTH_URL": health_url,
        "PYTHONUNBUFFERED": "1",
        **aws_config.region_env(region),
    }
