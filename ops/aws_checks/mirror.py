"""Will `pulumi up` get the stack's weight mirror? Checked with boto3 before the `up`.

The mirror bucket has a fixed name and, in prod, outlives `pulumi destroy`
(weights.retainOnDestroy), with the KMS key that signs its manifests and that key's alias. The
next `up` imports all three (components/weights/mirror_bucket.py). Pulumi imports a resource
only when the program declares exactly what the provider reads back; for the bucket that is its
tags and `forceDestroy`, which the provider reads as false on import (terraform-provider-aws sets
it so in the bucket's importer); for the key, its tags. This check finds a kept bucket and says
whether those imports will pass, with the commands that make them pass, before anything is
created.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from components.settings.stack import Settings
from components.weights import mirror as weight_mirror
from components.weights import mirror_trust
from ops.awsclients import Sleep, error_code
from ops.awsclients import call_checked as _aws
from ops.report import Check, failed, passed, skipped

ROW = "weight mirror"
MISSING = frozenset({"404", "NoSuchBucket", "NotFound"})


def check(settings: Settings, s3: Any, eks: Any, sts: Any, kms: Any, sleep: Sleep) -> list[Check]:
    w = settings.weights
    if w.source != "s3":
        return [skipped(ROW, "weights.source is hub: no mirror")]
    if w.existing_bucket:
        return [skipped(ROW, f"s3://{w.existing_bucket} is made elsewhere (weights.existingBucket)")]
    account = _aws(sts.get_caller_identity, sleep)["Account"]
    name = weight_mirror.bucket_name(settings.cluster_name, account, settings.region)
    try:
        _aws(s3.head_bucket, sleep, Bucket=name)
    except ClientError as err:
        if error_code(err) in MISSING:
            return [passed(ROW, f"s3://{name} does not exist: pulumi up creates it")]
        if error_code(err) == "403":
            return [
                failed(
                    ROW,
                    f"s3://{name} exists and this account may not use it (403): another account owns the name",
                    "pulumi config set --path 'weights.existingBucket' <a mirror bucket of this account>",
                )
            ]
        raise
    if _cluster_exists(eks, settings.cluster_name, sleep):
        return [passed(ROW, f"s3://{name}: the stack's own mirror, and its cluster is up")]
    return [_adoption(settings, s3, kms, name, sleep)]


def _cluster_exists(eks: Any, cluster: str, sleep: Sleep) -> bool:
    try:
        _aws(eks.describe_cluster, sleep, name=cluster)
    except ClientError as err:
        if error_code(err) == "ResourceNotFoundException":
            return False
        raise
    return True


def _adoption(settings: Settings, s3: Any, kms: Any, name: str, sleep: Sleep) -> Check:
    """A bucket kept by an earlier destroy: will the next `up`'s import of it and its key pass?"""
    try:
        tag_set = _aws(s3.get_bucket_tagging, sleep, Bucket=name)["TagSet"]
    except ClientError as err:
        if error_code(err) != "NoSuchTagSet":
            raise
        tag_set = []
    have = {t["Key"]: t["Value"] for t in tag_set}
    want = weight_mirror.bucket_tags(settings.tags)
    problems, fixes = [], []
    if have != want:
        problems.append(
            f"its tags {json.dumps(have, sort_keys=True)} are not the stack's {json.dumps(want, sort_keys=True)}"
        )
        tagging = ",".join(f"{{Key={k},Value={v}}}" for k, v in sorted(want.items()))
        fixes.append(
            f"aws s3api put-bucket-tagging --bucket {name} --region {settings.region} --tagging 'TagSet=[{tagging}]'"
        )
    key_problem, key_fix = _signing_key(settings, kms, name, sleep)
    if key_problem:
        problems.append(key_problem)
        fixes.append(key_fix)
    if not settings.weights.retain_on_destroy:
        problems.append("weights.retainOnDestroy is false, so the program asks for forceDestroy true")
        fixes.append(
            "pulumi config set --path 'weights.retainOnDestroy' true (set it to false again after that up,"
            " if the stack should delete the bucket)"
        )
    kept = f"s3://{name} was kept by an earlier pulumi destroy"
    if problems:
        return failed(ROW, f"{kept}; pulumi up's import of it would fail: {'; '.join(problems)}", "; then ".join(fixes))
    return passed(ROW, f"{kept}: pulumi up imports it, objects and all, and applies the stack's settings to it")


def _signing_key(settings: Settings, kms: Any, bucket: str, sleep: Sleep) -> tuple[str, str]:
    """The kept key behind the bucket's alias, with the stack's tags: what its import reads."""
    alias = mirror_trust.key_alias(bucket)
    try:
        key_id = _aws(kms.describe_key, sleep, KeyId=alias)["KeyMetadata"]["KeyId"]
    except ClientError as err:
        if error_code(err) != "NotFoundException":
            raise
        return (
            f"its signing key's alias {alias} does not exist, and the up looks it up to adopt it",
            f"aws kms create-key --key-spec {mirror_trust.KEY_SPEC} --key-usage SIGN_VERIFY --region {settings.region}"
            f" and aws kms create-alias --alias-name {alias} --target-key-id <its KeyId>; the up adopts it, and"
            " `pulumi config set --path 'weights.refill' true` has the fill Job sign the mirror with it",
        )
    tags = _aws(kms.list_resource_tags, sleep, KeyId=key_id)["Tags"]
    have = {t["TagKey"]: t["TagValue"] for t in tags}
    want = dict(settings.tags)
    if have == want:
        return "", ""
    tagging = " ".join(f"TagKey={k},TagValue={v}" for k, v in sorted(want.items()))
    fix = f"aws kms tag-resource --key-id {key_id} --region {settings.region} --tags {tagging}"
    if extra := sorted(set(have) - set(want)):
        fix += f" and aws kms untag-resource --key-id {key_id} --region {settings.region} --tag-keys {' '.join(extra)}"
    return (
        f"its signing key {key_id}'s tags {json.dumps(have, sort_keys=True)} are not the stack's"
        f" {json.dumps(want, sort_keys=True)}",
        fix,
    )
