"""Who may write the weights, evaluated over the rendered policies (tests/iam_eval.py): only the
owning stack's fill Job, only under a bucket of this account, only over TLS; a second stack on
the same bucket (`weights.existingBucket`) and an administrator are refused."""

from __future__ import annotations

import functools
import json

import pytest

from components.weights import mirror as weight_mirror
from components.weights import staging as weight_staging
from ops.offline.engine import Rendering, render
from tests import iam_eval

SHA = "5fb9455421adc47f561f139d4e925b4c88c44367"
PREFIX = f"MiniMaxAI/MiniMax-M2.5/{SHA}/"
ACCOUNT = "123456789012"  # the offline engine's account
ASSOCIATION = "aws:eks/podIdentityAssociation:PodIdentityAssociation"


@functools.cache
def owner() -> Rendering:
    return render("prod-8gpu")


def bucket_name() -> str:
    (b,) = [x for x in owner().of_type("aws:s3/bucket:Bucket") if x.name.endswith("-weights-bucket")]
    return b.inputs["bucket"]


@functools.cache
def second_stack() -> Rendering:
    overrides = {
        "serving": {"profile": "tp4", "maxModelLen": 32768, "revision": SHA},
        "weights": {"source": "s3", "existingBucket": bucket_name()},
    }
    return render("dev", overrides=overrides)


def stager_spec(r: Rendering) -> dict:
    (ds,) = [
        x for x in r.of_type("kubernetes:apps/v1:DaemonSet") if x.inputs["metadata"]["name"] == weight_staging.NAME
    ]
    return ds.inputs["spec"]["template"]["spec"]


def role_of(r: Rendering, service_account: str) -> tuple[str, list[dict]]:
    """(role ARN, inline policy statements) of the Pod Identity role for a service account."""
    (a,) = [x for x in r.of_type(ASSOCIATION) if x.inputs["serviceAccount"] == service_account]
    (role,) = [x for x in r.of_type("aws:iam/role:Role") if x.outputs["arn"] == a.inputs["roleArn"]]
    (p,) = [x for x in r.of_type("aws:iam/rolePolicy:RolePolicy") if x.inputs["role"] == role.outputs["name"]]
    return a.inputs["roleArn"], json.loads(p.inputs["policy"])["Statement"]


def bucket_statements() -> list[dict]:
    (policy,) = [p for p in owner().of_type("aws:s3/bucketPolicy:BucketPolicy") if p.name.endswith("-weights-policy")]
    return json.loads(policy.inputs["policy"])["Statement"]


def may(principal: str, identity: list[dict], action: str, key: str, *, account: str = ACCOUNT, tls: bool = True):
    ctx = {"aws:PrincipalArn": principal, "aws:SecureTransport": str(tls).lower(), "s3:ResourceAccount": account}
    return iam_eval.allowed(identity, bucket_statements(), action, f"arn:aws:s3:::{bucket_name()}/{key}", ctx)


ADMIN = [{"Effect": "Allow", "Action": "*", "Resource": "*"}]
ADMIN_ARN = f"arn:aws:iam::{ACCOUNT}:role/admin"


def test_the_fill_job_writes_its_revision_over_tls_in_this_account_only():
    writer, statements = role_of(owner(), weight_mirror.JOB_SERVICE_ACCOUNT)
    assert may(writer, statements, "s3:PutObject", PREFIX + "model.safetensors")
    assert not may(writer, statements, "s3:PutObject", PREFIX + "model.safetensors", tls=False)
    assert not may(writer, statements, "s3:PutObject", PREFIX + "model.safetensors", account="999999999999")
    assert not may(writer, statements, "s3:PutObject", f"MiniMaxAI/MiniMax-M2.5/{'e' * 40}/x")


def test_a_second_stack_on_the_bucket_gets_no_writer_and_its_write_is_refused():
    r = second_stack()
    assert {a.inputs["serviceAccount"] for a in r.of_type(ASSOCIATION)} >= {weight_mirror.POD_SERVICE_ACCOUNT}
    assert weight_mirror.JOB_SERVICE_ACCOUNT not in {a.inputs["serviceAccount"] for a in r.of_type(ASSOCIATION)}
    assert not r.of_type("kubernetes:batch/v1:Job")
    reader, statements = role_of(r, weight_mirror.POD_SERVICE_ACCOUNT)
    assert may(reader, statements, "s3:GetObject", PREFIX + "model.safetensors")
    for action in ("s3:PutObject", "s3:DeleteObject"):
        assert not may(reader, statements, action, PREFIX + "model.safetensors")
    # Even a role of that stack granted the writer's rights is refused by the owner's bucket.
    granted = json.loads(weight_mirror.writer_policy(f"arn:aws:s3:::{bucket_name()}", PREFIX, ACCOUNT, "k"))
    assert not may(reader, granted["Statement"], "s3:PutObject", PREFIX + "model.safetensors")


def test_an_administrator_cannot_write_weights_but_may_empty_the_bucket_and_use_the_compile_cache():
    for action in weight_mirror.WEIGHT_WRITES:
        assert not may(ADMIN_ARN, ADMIN, action, PREFIX + "model.safetensors"), action
        assert not may(ADMIN_ARN, ADMIN, action, "SomeOrg/other-model/abc/x"), action
    # pulumi destroy with force_destroy removes every version; the compile cache has its own statements.
    assert may(ADMIN_ARN, ADMIN, "s3:DeleteObjectVersion", PREFIX + "model.safetensors")
    for prefix in weight_mirror.NOT_WEIGHTS:
        assert may(ADMIN_ARN, ADMIN, "s3:PutObject", f"{prefix}key")


@pytest.mark.parametrize("who", [weight_mirror.POD_SERVICE_ACCOUNT, weight_mirror.JOB_SERVICE_ACCOUNT])
def test_every_s3_statement_of_the_mirror_roles_is_pinned_to_this_account(who):
    _, statements = role_of(owner(), who)
    s3 = [s for s in statements if str(s["Action"]).find("s3:") >= 0]
    allows = [s for s in s3 if s["Effect"] == "Allow"]  # a Deny without the pin only refuses more
    assert allows and all(s["Condition"]["StringEquals"]["s3:ResourceAccount"] == ACCOUNT for s in allows)
    kms = [s for s in statements if s not in s3]
    allowed_kms = {"kms:Verify"} if who == weight_mirror.POD_SERVICE_ACCOUNT else {"kms:Sign", "kms:Verify"}
    assert {a for s in kms for a in iam_eval._list(s["Action"])} == allowed_kms


def test_the_manifest_key_signs_only_and_stays_with_the_bucket():
    (key,) = [k for k in owner().of_type("aws:kms/key:Key") if k.inputs.get("keyUsage") == "SIGN_VERIFY"]
    assert key.inputs["customerMasterKeySpec"] == "ECC_NIST_P256"
    assert key.options["retainOnDelete"] is True
    (alias,) = [a for a in owner().of_type("aws:kms/alias:Alias") if a.inputs["targetKeyId"] == key.outputs["keyId"]]
    assert alias.inputs["name"] == f"alias/{bucket_name()}-manifest"
    _, statements = role_of(owner(), weight_mirror.POD_SERVICE_ACCOUNT)
    assert [s["Resource"] for s in statements if s["Action"] == "kms:Verify"] == [key.outputs["arn"]]
    (stage,) = stager_spec(owner())["containers"]
    env = {e["name"]: e.get("value") for e in stage["env"]}
    assert env["MANIFEST_SIGNER"] == alias.inputs["name"] and env["BUCKET_OWNER"] == ACCOUNT


def test_the_vllm_container_reads_the_weights_and_the_staged_marker_read_only():
    spec = owner().vllm_deployment().inputs["spec"]["template"]["spec"]
    (vllm,) = spec["containers"]
    env = {e["name"]: e.get("value") for e in vllm["env"]}
    ro = {m["mountPath"] for m in vllm["volumeMounts"] if m.get("readOnly")}
    assert {f"{env['HF_HOME']}/hub", f"{env['HF_HOME']}/staged"} <= ro
    # The compile caches stay writable: no read-only mount above them.
    for var in ("VLLM_CACHE_ROOT", "TRITON_CACHE_DIR", "TORCHINDUCTOR_CACHE_DIR"):
        assert not any(env[var].startswith(p) for p in ro), var
    # The node's stager is the only writer; vLLM's own wait for it reads the cache read-only.
    (stage,) = stager_spec(owner())["containers"]
    assert not any(m.get("readOnly") for m in stage["volumeMounts"] if m["name"] == "cache")
    (wait,) = spec["initContainers"]
    assert all(m.get("readOnly") for m in wait["volumeMounts"] if m["name"] == "cache")
