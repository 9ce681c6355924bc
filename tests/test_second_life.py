"""A prod stack's second life: `pulumi up`, `pulumi destroy`, `pulumi up` again, with S3 and KMS
answered by moto and the weight mirror (bucket and signing key) kept by the destroy
(weights.retainOnDestroy).

The walk runs the real program under the offline engine; only S3 is swapped for moto. The
engine's rules are modelled from Pulumi's own description of the `import` option
(pulumi/pulumi developer-docs/architecture/import.md): a resource the stack does not hold is
imported when the program gives an import id (it must exist and match the program's inputs),
created otherwise; a resource the stack holds under the same id is left as any other resource.
Creating an S3 bucket the account already owns outside us-east-1 is 409 BucketAlreadyOwnedByYou,
in moto as in S3; creating a KMS alias that exists is AlreadyExistsException, in moto as in KMS.
The provider's lookups fail as the provider's do: a missing alias is an error.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends

from components.platform.config import from_stack_file
from components.settings.stack import Settings
from components.settings.weights import WeightsSettings
from components.weights import mirror as weight_mirror
from components.weights import mirror_trust
from ops.aws_checks import mirror as preflight_mirror
from ops.offline import engine as offline
from ops.offline.mocks import OfflineMocks
from ops.report import Check

pytestmark = pytest.mark.slow  # three renderings of a stack against a mock AWS account

REGION = "us-east-2"  # prod-8gpu's region: not us-east-1, where S3 would accept the second create
BUCKET = "aws:s3/bucket:Bucket"
KEY, ALIAS = "aws:kms/key:Key", "aws:kms/alias:Alias"


def driven(typ: str, name: str) -> bool:
    """What the walk drives in moto: the buckets with their settings, and the mirror's signing key
    (the cluster's own key stays the engine's)."""
    return typ.startswith("aws:s3/") or (typ in (KEY, ALIAS) and "-weights-" in name)


def mirror_bucket_of(r: offline.Rendering) -> Any:
    """The weight mirror's bucket (the stack also owns its ALB access-log bucket: components/aws/edge.py)."""
    (bucket,) = [b for b in r.of_type(BUCKET) if "-weights-" in b.inputs["bucket"]]
    return bucket


def _api(value: Any) -> Any:
    """Pulumi's camelCase inputs as the S3 API's PascalCase shapes (`id` is `ID` there)."""
    if isinstance(value, dict):
        return {("ID" if k == "id" else k[:1].upper() + k[1:]): _api(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_api(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the wire format carries every number as a double
    return value


class ImportMismatch(RuntimeError):
    """Pulumi's `error: inputs to import do not match the existing resource`."""


class S3World(OfflineMocks):
    """The offline engine with S3 in moto, a stack state, and the plan of each `up`."""

    def __init__(self, region: str):
        super().__init__(region)
        self.s3 = boto3.client("s3", region_name=region)
        self.kms = boto3.client("kms", region_name=region)
        self.state: dict[tuple[str, str], str] = {}  # (type, name) -> id: what the stack holds
        self.plan: list[tuple[str, str, str, str]] = []  # (step, type, name, id) of the last `up`
        self.previewing, self.warnings = False, []

    def up(self, stack: str, overrides: dict[str, Any] | None = None) -> offline.Rendering:
        self.plan, self.warnings = [], []
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(offline, "OfflineMocks", lambda region: (OfflineMocks.__init__(self, region), self)[1])
            rendering = offline.render(stack, overrides)
        if not self.previewing:
            self.state = {(r.type, r.name): r.id for r in rendering.resources}
        return rendering

    def preview(self, stack: str, overrides: dict[str, Any] | None = None) -> list[str]:
        """`pulumi preview`: nothing changes; an import that would fail is a warning."""
        self.previewing = True
        try:
            self.up(stack, overrides)
        finally:
            self.previewing = False
        return self.warnings

    def destroy(self, rendering: offline.Rendering) -> None:
        """Delete what is not retained (dependents first); the stack then holds nothing."""
        for r in reversed(rendering.resources):
            if driven(r.type, r.name) and not r.options["retainOnDelete"]:
                self._delete(r)
        self.state = {}

    def new_resource(self, args: Any) -> tuple[str, dict]:
        held = self.state.get((args.typ, args.name))
        real_id = None
        if held is not None:
            assert args.resource_id in ("", None, held), "an import id other than the held one replaces it"
            step, real_id = "same", held
        elif args.resource_id:
            step, real_id = "import", args.resource_id
            if driven(args.typ, args.name):
                try:
                    self._check_import(args)
                except ImportMismatch as err:
                    if not self.previewing:
                        raise
                    self.warnings.append(f"{err}; importing this resource will fail")
        else:
            step = "create"
            if driven(args.typ, args.name) and not self.previewing:
                real_id = self._create(args.typ, args.inputs)
        resource_id, outputs = super().new_resource(args)
        if (
            args.typ == KEY and real_id and driven(args.typ, args.name)
        ):  # the key's id is KMS's, not the engine's invention
            resource_id = real_id
            outputs.update(keyId=real_id, arn=self.kms.describe_key(KeyId=real_id)["KeyMetadata"]["Arn"])
        self.plan.append((step, args.typ, args.name, resource_id))
        return resource_id, outputs

    def call(self, args: Any) -> tuple[dict, list]:
        if args.token == "aws:s3/getBuckets:getBuckets":
            listing = self.s3.list_buckets(Prefix=args.args["prefix"], BucketRegion=args.args["bucketRegion"])
            names = [
                {"name": b["Name"], "bucketRegion": self.s3.get_bucket_location(Bucket=b["Name"])["LocationConstraint"]}
                for b in listing["Buckets"]
            ]
            return {"buckets": names, "region": self.region, "id": "buckets"}, []
        if args.token == "aws:s3/getObjects:getObjects":
            # Past the API, as the objects were written: moto refuses the TLS-only bucket every request.
            keys = sorted(k for k in objects_of(args.args["bucket"]) if k.startswith(args.args.get("prefix", "")))
            return {"keys": keys[: int(args.args.get("maxKeys", 1000))], "bucket": args.args["bucket"], "id": "o"}, []
        if args.token == "aws:kms/getAlias:getAlias":
            name = args.args["name"]
            found = [a for a in self.kms.list_aliases()["Aliases"] if a["AliasName"] == name]
            if not found:
                raise RuntimeError(f"reading KMS Alias ({name}): not found")  # the provider's lookup fails
            key = self.kms.describe_key(KeyId=found[0]["TargetKeyId"])["KeyMetadata"]
            return {
                "name": name,
                "arn": found[0]["AliasArn"],
                "targetKeyId": key["KeyId"],
                "targetKeyArn": key["Arn"],
                "id": name,
            }, []
        return super().call(args)

    # --- S3 as the provider would drive it ---------------------------------------------------

    def _create(self, typ: str, inputs: dict[str, Any]) -> str | None:
        if typ == KEY:
            tags = [{"TagKey": k, "TagValue": v} for k, v in sorted(inputs.get("tags", {}).items())]
            meta = self.kms.create_key(
                Description=inputs["description"],
                KeySpec=inputs["customerMasterKeySpec"],
                KeyUsage=inputs["keyUsage"],
                Tags=tags,
            )["KeyMetadata"]
            return meta["KeyId"]
        if typ == ALIAS:  # AlreadyExistsException when a kept alias has that name
            self.kms.create_alias(AliasName=inputs["name"], TargetKeyId=inputs["targetKeyId"])
            return None
        b = inputs.get("bucket")
        if typ == BUCKET:
            self.s3.create_bucket(Bucket=b, CreateBucketConfiguration={"LocationConstraint": self.region})
            tags = [{"Key": k, "Value": v} for k, v in sorted(inputs.get("tags", {}).items())]
            self.s3.put_bucket_tagging(Bucket=b, Tagging={"TagSet": tags})
        elif typ == "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock":
            block = {k: v for k, v in inputs.items() if k != "bucket"}
            self.s3.put_public_access_block(Bucket=b, PublicAccessBlockConfiguration=_api(block))
        elif typ == "aws:s3/bucketOwnershipControls:BucketOwnershipControls":
            self.s3.put_bucket_ownership_controls(Bucket=b, OwnershipControls={"Rules": [_api(inputs["rule"])]})
        elif typ == "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration":
            rules = _api(inputs["rules"])
            for rule in rules:
                rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] = rule[
                    "ApplyServerSideEncryptionByDefault"
                ].pop("SseAlgorithm")
            self.s3.put_bucket_encryption(Bucket=b, ServerSideEncryptionConfiguration={"Rules": rules})
        elif typ == "aws:s3/bucketVersioning:BucketVersioning":
            status = inputs["versioningConfiguration"]["status"]
            self.s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": status})
        elif typ == "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration":
            rules = [{**_api(r), "Filter": {"Prefix": ""}} for r in inputs["rules"]]
            self.s3.put_bucket_lifecycle_configuration(Bucket=b, LifecycleConfiguration={"Rules": rules})
        elif typ == "aws:s3/bucketPolicy:BucketPolicy":
            self.s3.put_bucket_policy(Bucket=b, Policy=inputs["policy"])
        else:
            raise AssertionError(f"the walk has no S3 call for {typ}")
        return None

    def _check_import(self, args: Any) -> None:
        """Pulumi's import: the resource must exist, and the program's inputs must match what the
        provider reads (for a bucket: its tags, and forceDestroy false, the importer's value; for a
        key: what DescribeKey and its tags report, and no deletion window, which AWS never reports;
        for an alias: its target)."""
        if args.typ == KEY:
            meta = self.kms.describe_key(KeyId=args.resource_id)["KeyMetadata"]  # NotFoundException
            tags = {t["TagKey"]: t["TagValue"] for t in self.kms.list_resource_tags(KeyId=args.resource_id)["Tags"]}
            read = {
                "description": meta["Description"],
                "customerMasterKeySpec": meta["KeySpec"],
                "keyUsage": meta["KeyUsage"],
                "tags": tags,
                "deletionWindowInDays": None,
            }
        elif args.typ == ALIAS:
            found = [a for a in self.kms.list_aliases()["Aliases"] if a["AliasName"] == args.resource_id]
            if not found:
                raise ImportMismatch(f"alias {args.resource_id} does not exist")
            read = {"name": args.resource_id, "targetKeyId": found[0]["TargetKeyId"]}
        elif args.typ == BUCKET:
            self.s3.head_bucket(Bucket=args.resource_id)  # 404: "resource does not exist"
            tags = {t["Key"]: t["Value"] for t in self.s3.get_bucket_tagging(Bucket=args.resource_id)["TagSet"]}
            read = {"bucket": args.resource_id, "tags": tags, "forceDestroy": False}
        else:
            raise AssertionError(f"the walk models the import of the mirror's bucket and key only, not {args.typ}")
        if read != {k: args.inputs.get(k) for k in read}:
            raise ImportMismatch(f"inputs to import do not match the existing resource: {read}")

    def _delete(self, r: offline.Resource) -> None:
        if r.type == KEY:
            self.kms.schedule_key_deletion(KeyId=r.id, PendingWindowInDays=30)
            return
        if r.type == ALIAS:
            self.kms.delete_alias(AliasName=r.inputs["name"])
            return
        b = r.inputs["bucket"]
        if r.type == BUCKET:
            versions = self.s3.list_object_versions(Bucket=b)
            for v in versions.get("Versions", []) + versions.get("DeleteMarkers", []):
                self.s3.delete_object(Bucket=b, Key=v["Key"], VersionId=v["VersionId"])  # forceDestroy
            self.s3.delete_bucket(Bucket=b)
        elif r.type == "aws:s3/bucketPolicy:BucketPolicy":
            self.s3.delete_bucket_policy(Bucket=b)
        elif r.type == "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration":
            self.s3.delete_bucket_lifecycle(Bucket=b)
        elif r.type == "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration":
            self.s3.delete_bucket_encryption(Bucket=b)
        elif r.type == "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock":
            self.s3.delete_public_access_block(Bucket=b)
        elif r.type == "aws:s3/bucketOwnershipControls:BucketOwnershipControls":
            self.s3.delete_bucket_ownership_controls(Bucket=b)
        # versioning: the provider suspends it; the bucket goes with forceDestroy anyway


def objects_of(bucket: str) -> dict[str, Any]:
    """The bucket's objects in moto's store (written and listed past the API: see below)."""
    return dict(s3_backends[DEFAULT_ACCOUNT_ID]["global"].get_bucket(bucket).keys)


def s3_plan(world: S3World) -> list[str]:
    """The `up`'s steps for the weight mirror (bucket, settings, signing key), as `pulumi preview`
    would list them."""
    sign = {"create": "+ create", "import": "= import", "same": "  same"}
    return sorted(
        f"{sign[step]} {typ.split(':')[-1]} {name} ({rid if step == 'import' else ''})".replace(" ()", "")
        for step, typ, name, rid in world.plan
        if driven(typ, name) and "-weights-" in name  # the mirror, not the ALB log bucket
    )


def writer(r: offline.Rendering) -> list[str]:
    """What lets the fill Job write the mirror: its Pod Identity association, its service
    account and the Job itself."""
    sa = weight_mirror.JOB_SERVICE_ACCOUNT
    found = [
        f"association {a.inputs['serviceAccount']}"
        for a in r.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
        if a.inputs["serviceAccount"] == sa
    ]
    found += [
        f"{x.type.split(':')[-1]} {x.inputs['metadata']['name']}"
        for x in r.resources
        if x.type in ("kubernetes:core/v1:ServiceAccount", "kubernetes:batch/v1:Job")
        and (x.inputs["metadata"]["name"] == sa or x.type.endswith("Job"))
    ]
    return sorted(found)


def sign(bucket: str, prefix: str) -> None:
    """The fill Job's last two writes: the manifest and its signature."""
    store = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
    for key in (mirror_trust.MANIFEST, mirror_trust.SIGNATURE):
        store.put_object(bucket, f"{prefix}{key}", b"{}")


def mirror_policy(r: offline.Rendering) -> dict[str, Any]:
    (policy,) = [p for p in r.of_type("aws:s3/bucketPolicy:BucketPolicy") if "-weights-" in p.name]
    return json.loads(policy.inputs["policy"])


def preflight(world: S3World, settings: Settings) -> Check:
    eks, sts = (boto3.client(s, region_name=REGION) for s in ("eks", "sts"))
    (row,) = preflight_mirror.check(settings, world.s3, eks, sts, world.kms, sleep=lambda _: None)
    return row


def cluster(present: bool) -> None:
    """The stack's EKS cluster, as `up` makes it and `destroy` removes it (moto's EKS)."""
    eks = boto3.client("eks", region_name=REGION)
    if present:
        role = "arn:aws:iam::123456789012:role/cluster"
        eks.create_cluster(name="minimax-vllm-prod-8gpu", roleArn=role, resourcesVpcConfig={})
    else:
        eks.delete_cluster(name="minimax-vllm-prod-8gpu")


@pytest.fixture
def world():
    with mock_aws():
        yield S3World(REGION)


def _settings(world: S3World, bucket: str) -> dict[str, Any]:
    s3 = world.s3
    return {
        "versioning": s3.get_bucket_versioning(Bucket=bucket).get("Status"),
        "sse": s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0][
            "ApplyServerSideEncryptionByDefault"
        ]["SSEAlgorithm"],
        "public": s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"],
        "lifecycle": sorted(r["ID"] for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]),
        "policy": bool(s3.get_bucket_policy(Bucket=bucket)["Policy"]),
    }


def test_up_destroy_up_adopts_the_kept_mirror_and_keeps_its_objects(world):
    settings = from_stack_file("prod-8gpu")
    assert "does not exist: pulumi up creates it" in preflight(world, settings).detail
    first = world.up("prod-8gpu")
    cluster(present=True)
    assert "its cluster is up" in preflight(world, settings).detail
    bucket = mirror_bucket_of(first).inputs["bucket"]
    prefix = weight_mirror.prefix(settings.serving.model, settings.serving.revision)
    assert [line.split()[0:2] for line in s3_plan(world)] == [["+", "create"]] * 9
    # An unsigned revision: the fill Job, its service account and its writer identity exist.
    job = weight_mirror.job_name(settings.serving.model, settings.serving.revision)
    assert writer(first) == sorted(
        [
            f"association {weight_mirror.JOB_SERVICE_ACCOUNT}",
            f"Job {job}",
            f"ServiceAccount {weight_mirror.JOB_SERVICE_ACCOUNT}",
        ]
    )
    # The Job fills and signs the mirror. Written past the API: moto does not evaluate
    # aws:SecureTransport, so the bucket's TLS-only policy denies it every object request.
    sign(bucket, prefix)
    kept = _settings(world, bucket)

    again = world.up("prod-8gpu")  # an ordinary `up` after the fill: the writer is gone
    assert {line.split()[0] for line in s3_plan(world)} == {"same"}, s3_plan(world)
    assert writer(again) == []
    (nobody,) = [s for s in mirror_policy(again)["Statement"] if s["Sid"] == "NobodyWritesWeights"]
    assert "Condition" not in nobody and nobody["Principal"] == "*", nobody

    world.destroy(first)
    cluster(present=False)
    assert world.s3.head_bucket(Bucket=bucket)  # retainOnDestroy: the bucket, its settings and its key stay
    row = preflight(world, settings)
    assert row.status == "PASS" and "pulumi up imports it" in row.detail, row

    second = world.up("prod-8gpu")  # the second life
    plan = s3_plan(world)
    print("\nthe second `pulumi up`'s plan for the weight mirror:\n" + "\n".join(plan))
    (alias,) = world.kms.list_aliases(KeyId=world.state[(KEY, "minimax-vllm-prod-8gpu-weights-manifest-key")])[
        "Aliases"
    ]
    assert plan == [
        "+ create BucketLifecycleConfiguration minimax-vllm-prod-8gpu-weights-lifecycle",
        "+ create BucketOwnershipControls minimax-vllm-prod-8gpu-weights-ownership",
        "+ create BucketPolicy minimax-vllm-prod-8gpu-weights-policy",
        "+ create BucketPublicAccessBlock minimax-vllm-prod-8gpu-weights-public-access",
        "+ create BucketServerSideEncryptionConfiguration minimax-vllm-prod-8gpu-weights-encryption",
        "+ create BucketVersioning minimax-vllm-prod-8gpu-weights-versioning",
        f"= import Alias minimax-vllm-prod-8gpu-weights-manifest-key-alias ({alias['AliasName']})",
        f"= import Bucket minimax-vllm-prod-8gpu-weights-bucket ({bucket})",
        f"= import Key minimax-vllm-prod-8gpu-weights-manifest-key ({alias['TargetKeyId']})",
    ]
    assert [b["Name"] for b in world.s3.list_buckets()["Buckets"] if "-weights-" in b["Name"]] == [bucket]
    assert len(world.kms.list_keys()["Keys"]) == 1  # the kept key signs on; no second key
    assert sorted(objects_of(bucket)) == [f"{prefix}{mirror_trust.MANIFEST}", f"{prefix}{mirror_trust.SIGNATURE}"]
    assert _settings(world, bucket) == kept
    assert mirror_bucket_of(again).options["import"] == bucket  # set on every `up`; a no-op while held
    assert writer(second) == []  # the kept signature still holds: no fill, no writer


def test_a_new_revision_or_refill_brings_the_writer_back_for_that_fill_only(world):
    settings = from_stack_file("prod-8gpu")
    first = world.up("prod-8gpu")
    bucket = mirror_bucket_of(first).inputs["bucket"]
    sign(bucket, weight_mirror.prefix(settings.serving.model, settings.serving.revision))
    assert writer(world.up("prod-8gpu")) == []

    refill = world.up("prod-8gpu", {"weights": {"source": "s3", "refill": True}})
    assert f"association {weight_mirror.JOB_SERVICE_ACCOUNT}" in writer(refill)
    (only,) = [s for s in mirror_policy(refill)["Statement"] if s["Sid"] == "OnlyTheMirrorJobWritesWeights"]
    assert only["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]

    revision = "0" * 40
    bumped = world.up("prod-8gpu", {"serving": {"revision": revision}})
    assert f"Job {weight_mirror.job_name(settings.serving.model, revision)}" in writer(bumped)


def test_a_mirror_the_stack_lets_go_is_deleted_and_made_anew(world):
    overrides = {
        "serving": {"profile": "tp4", "maxModelLen": 32768, "revision": "5fb9455421adc47f561f139d4e925b4c88c44367"},
        "weights": {"source": "s3", "retainOnDestroy": False},
    }
    with pytest.MonkeyPatch.context() as mp:
        real = offline.render
        mp.setattr(offline, "render", lambda stack, _=None: real(stack, overrides))
        first = world.up("dev")
        bucket = mirror_bucket_of(first).inputs["bucket"]
        world.destroy(first)
        assert world.s3.list_buckets()["Buckets"] == []
        world.up("dev")
    assert "+ create Bucket minimax-vllm-dev-weights-bucket" in s3_plan(world)
    assert world.s3.head_bucket(Bucket=bucket)


@pytest.mark.parametrize(
    ("overrides", "changed"),
    [
        ({"owner": "research"}, {"owner": "research"}),  # the stack's tags changed between the lives
        (
            {"weights": {"source": "s3", "retainOnDestroy": False}},
            {"weights": WeightsSettings(source="s3", retain_on_destroy=False)},
        ),
    ],
    ids=["tags-changed", "retain-turned-off"],
)
def test_a_kept_mirror_the_import_would_refuse_is_refused_by_preflight_with_the_fix(world, overrides, changed):
    first = world.up("prod-8gpu")
    bucket = mirror_bucket_of(first).inputs["bucket"]
    world.destroy(first)
    settings = dataclasses.replace(from_stack_file("prod-8gpu"), **changed)

    row = preflight(world, settings)
    assert row.status == "FAIL" and "import of it would fail" in row.detail, row
    # What preflight saves the user from: `pulumi up` would stop at the import.
    warnings = world.preview("prod-8gpu", overrides)
    assert warnings and all("inputs to import do not match the existing resource" in w for w in warnings)

    if "owner" in changed:  # the fix: the bucket and the key take the stack's tags
        assert len(warnings) == 2, warnings  # the bucket's import and the key's
        assert row.fix.startswith(f"aws s3api put-bucket-tagging --bucket {bucket} --region {REGION} --tagging")
        want = weight_mirror.bucket_tags(settings.tags)
        assert all(f"{{Key={k},Value={v}}}" in row.fix for k, v in want.items())
        world.s3.put_bucket_tagging(
            Bucket=bucket, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in want.items()]}
        )
        key_id = world.kms.describe_key(KeyId=mirror_trust.key_alias(bucket))["KeyMetadata"]["KeyId"]
        assert f"aws kms tag-resource --key-id {key_id} --region {REGION} --tags" in row.fix
        world.kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": k, "TagValue": v} for k, v in settings.tags.items()])
    else:  # the fix: keep retainOnDestroy for the adopting up
        assert row.fix.startswith("pulumi config set --path 'weights.retainOnDestroy' true")
        settings, overrides = from_stack_file("prod-8gpu"), {}
    assert preflight(world, settings).status == "PASS"
    world.up("prod-8gpu", overrides)
    assert f"= import Bucket minimax-vllm-prod-8gpu-weights-bucket ({bucket})" in s3_plan(world)


def test_a_kept_mirror_without_its_signing_key_is_refused_by_preflight_with_the_fix(world):
    """The up looks the kept key up by its alias, and a lookup that finds nothing stops the up."""
    first = world.up("prod-8gpu")
    bucket = mirror_bucket_of(first).inputs["bucket"]
    world.destroy(first)
    world.kms.delete_alias(AliasName=mirror_trust.key_alias(bucket))  # removed by hand meanwhile

    row = preflight(world, from_stack_file("prod-8gpu"))
    assert row.status == "FAIL" and f"alias {mirror_trust.key_alias(bucket)} does not exist" in row.detail, row
    assert "aws kms create-alias" in row.fix and "weights.refill" in row.fix
    with pytest.raises(Exception, match="not found"):
        world.up("prod-8gpu")
