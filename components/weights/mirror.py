"""The S3 weight mirror as plain objects: bucket and IAM policies, and the Kubernetes objects
that fill it (ConfigMap with the copy module, ServiceAccounts, the Job, its NetworkPolicy).

Layout: `s3://<bucket>/<model>/<commit>/<file>`, one prefix per revision, and
`<prefix>mirror-complete.json` with its KMS signature once the Job has verified every file
(components/weights/mirror_copy.py, mirror_trust.py; the trust model: docs/mirror.md).
Who may do what, through EKS Pod Identity (never the node role):
- the Job's service account `weights-mirror`, only in the stack that owns the bucket: read and
  write that one revision's prefix, and sign with the bucket's manifest key;
- the node stager's service account `stage-weights`: read that prefix and verify signatures,
  nothing else (the vLLM pods have no AWS identity);
- everyone else: no write under any weights prefix (the bucket policy denies it).
Every statement holds only for a bucket of this account (s3:ResourceAccount).
Why the pods copy to the NVMe instead of streaming with the Run:ai streamer: docs/weights.md.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from components.aws.bucket_name import unique_bucket_name
from components.kubernetes import network_policy
from components.settings import aws as aws_config
from components.weights import mirror_trust

COPY_MODULE = Path(__file__).with_name("mirror_copy.py")
TRUST_MODULE = Path(__file__).with_name("mirror_trust.py")  # imported by the copy module, shipped beside it
CONFIGMAP = "weights-mirror-code"
MODULE_DIR = "/opt/weights-mirror"  # the ConfigMap, read-only
MODULE_PATH = f"{MODULE_DIR}/mirror_copy.py"
JOB_APP = "weights-mirror"
JOB_SERVICE_ACCOUNT = "weights-mirror"
POD_SERVICE_ACCOUNT = "stage-weights"  # the node stager (components/weights/staging.py)
JOB_LABELS = {"app.kubernetes.io/name": JOB_APP, "app.kubernetes.io/part-of": "minimax-vllm"}
# A Job pod retried this often before the Job fails (each retry resumes the copy).
BACKOFF_LIMIT = 6
# The Job streams Hub -> S3 and reads S3 back to verify: network and hashing, no disk.
JOB_RESOURCES = {"cpu": "8", "memory": "16Gi"}
JOB_WORKERS = 8
# S3 lifecycle: multipart uploads a killed copy left behind are removed after this many days.
ABORT_INCOMPLETE_UPLOAD_DAYS = 7


def prefix(model: str, revision: str) -> str:
    """One revision's folder in the bucket: `<org>/<name>/<commit>/`."""
    return f"{model}/{revision}/"


def bucket_name(cluster_name: str, account_id: str, region: str) -> str:
    """A new mirror's name: known before `pulumi up` (so the plan, the pods and `ops sweep` can
    state it) and unique across accounts and regions, as S3 bucket names are global."""
    return unique_bucket_name(cluster_name, "weights", account_id, region)


def bucket_tags(stack_tags: Mapping[str, str]) -> dict[str, str]:
    """A created mirror's tags; a kept one must carry exactly these to be imported (ops/aws_checks/mirror.py)."""
    return {**stack_tags, "purpose": "weight-mirror"}


def job_name(model: str, revision: str) -> str:
    """A new revision is a new Job (a Job's pod template cannot change)."""
    return f"{JOB_APP}-{hashlib.sha256(prefix(model, revision).encode()).hexdigest()[:10]}"


# --- AWS policies ------------------------------------------------------------------------


def _doc(statements: list[dict[str, Any]]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)


# Prefixes of the bucket that are not weights and have their own statements (the shared
# compile cache); the weights Deny below leaves them to those.
NOT_WEIGHTS = ("compile-cache/",)
# Every way to put or change bytes under a key. Not s3:DeleteObjectVersion: `pulumi destroy`
# with force_destroy empties the bucket with it, and a removed version makes the stager
# refuse (a file missing or not matching the signed manifest), never serve other bytes.
WEIGHT_WRITES = (
    "s3:AbortMultipartUpload",
    "s3:DeleteObject",
    "s3:PutObject",
    "s3:PutObjectAcl",
    "s3:PutObjectLegalHold",
    "s3:PutObjectRetention",
    "s3:PutObjectTagging",
    "s3:RestoreObject",
)


def bucket_policy(bucket_arn: str, writer_role_arn: str | None) -> str:
    """Nothing reaches the bucket without TLS (aws:SecureTransport), and no principal but the
    mirror Job's role writes under a weights prefix: an administrator's or another stack's
    write is refused by the bucket, whatever its own IAM policy allows. Without a writer (the
    revision is signed, no fill runs) nobody writes there."""
    only_writer: dict[str, Any] = {
        "Sid": "OnlyTheMirrorJobWritesWeights" if writer_role_arn else "NobodyWritesWeights",
        "Effect": "Deny",
        "Principal": "*",
        "Action": sorted(WEIGHT_WRITES),
        "NotResource": [f"{bucket_arn}/{p}*" for p in NOT_WEIGHTS],
    }
    if writer_role_arn:
        only_writer["Condition"] = {"ArnNotEquals": {"aws:PrincipalArn": writer_role_arn}}
    return _doc(
        [
            {
                "Sid": "TlsOnly",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, f"{bucket_arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
            only_writer,
        ]
    )


def _this_account(account_id: str) -> dict[str, Any]:
    return {"StringEquals": {"s3:ResourceAccount": account_id}}


def reader_policy(bucket_arn: str, key_prefix: str, account_id: str, key_arn: str) -> str:
    """The node stager: list and read one revision's prefix, and verify the manifest's signature."""
    return _doc(
        [
            {
                "Sid": "ListTheRevision",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": bucket_arn,
                "Condition": {"StringLike": {"s3:prefix": [f"{key_prefix}*"]}, **_this_account(account_id)},
            },
            {
                "Sid": "ReadTheRevision",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": f"{bucket_arn}/{key_prefix}*",
                "Condition": _this_account(account_id),
            },
            {"Sid": "VerifyTheManifest", "Effect": "Allow", "Action": "kms:Verify", "Resource": key_arn},
        ]
    )


def writer_policy(bucket_arn: str, key_prefix: str, account_id: str, key_arn: str) -> str:
    """The mirror Job: read and write one revision's prefix (a file that fails verification is
    deleted), and sign its manifest."""
    return _doc(
        [
            {
                "Sid": "ListTheRevision",
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:ListBucketMultipartUploads"],
                "Resource": bucket_arn,
                "Condition": {"StringLike": {"s3:prefix": [f"{key_prefix}*"]}, **_this_account(account_id)},
            },
            {
                "Sid": "WriteTheRevision",
                "Effect": "Allow",
                "Action": [
                    "s3:AbortMultipartUpload",
                    "s3:DeleteObject",
                    "s3:GetObject",
                    "s3:ListMultipartUploadParts",
                    "s3:PutObject",
                ],
                "Resource": f"{bucket_arn}/{key_prefix}*",
                "Condition": _this_account(account_id),
            },
            {"Sid": "SignTheManifest", "Effect": "Allow", "Action": ["kms:Sign", "kms:Verify"], "Resource": key_arn},
        ]
    )


def lifecycle_rules(noncurrent_days: int) -> list[dict[str, Any]]:
    """Retiring a revision is deleting its prefix: versioning keeps it restorable for
    `noncurrent_days`, then it is gone; a killed copy's multipart parts do not linger."""
    return [
        {
            "id": "expire-retired-revisions",
            "status": "Enabled",
            "filter": {},
            "noncurrent_version_expiration": {"noncurrent_days": noncurrent_days},
            "expiration": {"expired_object_delete_marker": True},
        },
        {
            "id": "abort-incomplete-uploads",
            "status": "Enabled",
            "filter": {},
            "abort_incomplete_multipart_upload": {"days_after_initiation": ABORT_INCOMPLETE_UPLOAD_DAYS},
        },
    ]


# --- Kubernetes objects ------------------------------------------------------------------------


def config_map(namespace: str, labels: Mapping[str, str]) -> dict:
    """The copy module as the pods run it: exactly the file in this repository."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CONFIGMAP, "namespace": namespace, "labels": dict(labels)},
        "data": {m.name: m.read_text() for m in (COPY_MODULE, TRUST_MODULE)},
    }


def service_account(name: str, namespace: str, labels: Mapping[str, str]) -> dict:
    # No API token: the pods never call Kubernetes. EKS Pod Identity mounts its own token
    # (audience pods.eks.amazonaws.com) for the credentials, independent of this setting.
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "automountServiceAccountToken": False,
    }


def module_volume() -> dict:
    return {"name": "mirror-code", "configMap": {"name": CONFIGMAP, "defaultMode": 0o444}}


def module_mount() -> dict:
    return {"name": "mirror-code", "mountPath": MODULE_DIR, "readOnly": True}


def mirror_env(bucket: str, model: str, revision: str, region: str, owner: str) -> dict[str, str]:
    """What the copy module reads: the bucket, its owner's account, the manifest key's alias, the revision."""
    return {
        "BUCKET": bucket,
        "BUCKET_OWNER": owner,
        "MANIFEST_SIGNER": mirror_trust.key_alias(bucket),
        "MODEL": model,
        "REVISION": revision,
        **aws_config.region_env(region),
    }


def job(
    *,
    namespace: str,
    image: str,
    bucket: str,
    model: str,
    revision: str,
    region: str,
    owner: str,
    secret_env: list[dict[str, Any]],
    security_context: dict[str, Any],
    pod_security_context: dict[str, Any],
    scratch_env: Mapping[str, str],
    scratch_volumes: list[dict[str, Any]],
    scratch_mounts: list[dict[str, str]],
    node_affinity: dict[str, Any],
    tolerations: list[dict[str, Any]],
    annotations: Mapping[str, str] | None = None,
) -> dict:
    """Hub -> S3 once per revision, on a GPU node (it pulls the vLLM image anyway, and has the
    network); no GPU requested. A retry resumes; a complete mirror makes it exit at once."""
    env = {
        **scratch_env,
        **mirror_env(bucket, model, revision, region, owner),
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "MAX_WORKERS": str(JOB_WORKERS),
        "PYTHONUNBUFFERED": "1",
    }
    container = {
        "name": "fill",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", MODULE_PATH, "fill"],
        "env": [{"name": k, "value": v} for k, v in sorted(env.items())] + list(secret_env),
        "resources": {"requests": dict(JOB_RESOURCES), "limits": dict(JOB_RESOURCES)},
        "volumeMounts": [module_mount(), *scratch_mounts],
        "securityContext": security_context,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(model, revision),
            "namespace": namespace,
            "labels": dict(JOB_LABELS),
            "annotations": dict(annotations or {}),
        },
        "spec": {
            "backoffLimit": BACKOFF_LIMIT,
            "template": {
                "metadata": {"labels": dict(JOB_LABELS)},
                "spec": {
                    "serviceAccountName": JOB_SERVICE_ACCOUNT,
                    "automountServiceAccountToken": False,
                    "restartPolicy": "Never",
                    "securityContext": pod_security_context,
                    "tolerations": tolerations,
                    "affinity": {"nodeAffinity": node_affinity},
                    "containers": [container],
                    "volumes": [module_volume(), *scratch_volumes],
                },
            },
        },
    }


def job_network_policy(namespace: str) -> dict:
    """The Job's pods: nothing in; out only DNS, HTTPS (Hub, S3) and the Pod Identity agent."""
    spec = {
        "podSelector": {"matchLabels": dict(JOB_LABELS)},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [],
        "egress": network_policy.egress_rules(pod_identity=True),
    }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": JOB_APP, "namespace": namespace, "labels": dict(JOB_LABELS)},
        "spec": spec,
    }
