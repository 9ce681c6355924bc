"""A prod stack's second life: `pulumi up`, `pulumi destroy`, `pulumi up` again, with S3 answered
by moto and the weight mirror kept by the destroy (weights.retainOnDestroy).

The walk runs the real program under the offline engine; only S3 is swapped for moto. The
engine's rules are modelled from Pulumi's own description of the `import` option
(pulumi/pulumi developer-docs/architecture/import.md): a resource the stack does not hold is
imported when the program gives an import id (it must exist and match the program's inputs),
created otherwise; a resource the stack holds under the same id is left as any other resource.
Creating an S3 bucket the account already owns outside us-east-1 is 409 BucketAlreadyOwnedByYou,
in moto as in S3.
"""

from __future__ import annotations

import dataclasses
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
from ops.aws_checks import mirror as preflight_mirror
from ops.offline import engine as offline
from ops.offline.mocks import OfflineMocks
from ops.report import Check

pytestmark = pytest.mark.slow  # three renderings of a stack against a mock AWS account

REGION = "us-east-2"  # prod-8gpu's region: not us-east-1, where S3 would accept the second create
BUCKET = "aws:s3/bucket:Bucket"


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
            if r.type.startswith("aws:s3/") and not r.options["retainOnDelete"]:
                self._delete(r)
        self.state = {}

    def new_resource(self, args: Any) -> tuple[str, dict]:
        held = self.state.get((args.typ, args.name))
        if held is not None:
            assert args.resource_id in ("", None, held), "an import id other than the held one replaces it"
            step = "same"
        elif args.resource_id:
            step = "import"
            if args.typ.startswith("aws:s3/"):
                try:
                    self._check_import(args)
                except ImportMismatch as err:
                    if not self.previewing:
                        raise
                    self.warnings.append(f"{err}; importing this resource will fail")
        else:
            step = "create"
            if args.typ.startswith("aws:s3/") and not self.previewing:
                self._create(args.typ, args.inputs)
        resource_id, outputs = super().new_resource(args)
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
        return super().call(args)

    # --- S3 as the provider would drive it ---------------------------------------------------

    def _create(self, typ: str, inputs: dict[str, Any]) -> None:
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

    def _check_import(self, args: Any) -> None:
        """Pulumi's import: the resource must exist, and the program's inputs must match what the
        provider reads (for a bucket: its tags, and forceDestroy false, the importer's value)."""
        if args.typ != BUCKET:
            raise AssertionError(f"the walk models the import of the bucket only, not {args.typ}")
        self.s3.head_bucket(Bucket=args.resource_id)  # 404: "resource does not exist"
        tags = {t["Key"]: t["Value"] for t in self.s3.get_bucket_tagging(Bucket=args.resource_id)["TagSet"]}
        read = {"bucket": args.resource_id, "tags": tags, "forceDestroy": False}
        if read != {k: args.inputs.get(k) for k in read}:
            raise ImportMismatch(f"inputs to import do not match the existing resource: {read}")

    def _delete(self, r: offline.Resource) -> None:
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


def s3_plan(world: S3World) -> list[str]:
    """The `up`'s steps for the weight mirror, as `pulumi preview` would list them."""
    sign = {"create": "+ create", "import": "= import", "same": "  same"}
    return sorted(
        f"{sign[step]} {typ.split(':')[-1]} {name} ({rid if step == 'import' else ''})".replace(" ()", "")
        for step, typ, name, rid in world.plan
        if typ.startswith("aws:s3/") and "-weights-" in name  # the mirror, not the ALB log bucket
    )


def preflight(world: S3World, settings: Settings) -> Check:
    eks, sts = (boto3.client(s, region_name=REGION) for s in ("eks", "sts"))
    (row,) = preflight_mirror.check(settings, world.s3, eks, sts, sleep=lambda _: None)
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
    assert [line.split()[0:2] for line in s3_plan(world)] == [["+", "create"]] * 7
    # A filled mirror. Written past the API: moto does not evaluate aws:SecureTransport, so the
    # bucket's TLS-only policy denies it every object request.
    objects = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
    objects.put_object(bucket, "MiniMaxAI/MiniMax-M2.5/x/mirror-complete.json", b"{}")
    kept = _settings(world, bucket)

    again = world.up("prod-8gpu")  # an ordinary `up` while the stack holds the bucket
    assert {line.split()[0] for line in s3_plan(world)} == {"same"}, s3_plan(world)

    world.destroy(first)
    cluster(present=False)
    assert world.s3.head_bucket(Bucket=bucket)  # retainOnDestroy: the bucket and its settings stay
    row = preflight(world, settings)
    assert row.status == "PASS" and "pulumi up imports it" in row.detail, row

    world.up("prod-8gpu")  # the second life
    plan = s3_plan(world)
    print("\nthe second `pulumi up`'s plan for the weight mirror:\n" + "\n".join(plan))
    assert plan == [
        "+ create BucketLifecycleConfiguration minimax-vllm-prod-8gpu-weights-lifecycle",
        "+ create BucketOwnershipControls minimax-vllm-prod-8gpu-weights-ownership",
        "+ create BucketPolicy minimax-vllm-prod-8gpu-weights-policy",
        "+ create BucketPublicAccessBlock minimax-vllm-prod-8gpu-weights-public-access",
        "+ create BucketServerSideEncryptionConfiguration minimax-vllm-prod-8gpu-weights-encryption",
        "+ create BucketVersioning minimax-vllm-prod-8gpu-weights-versioning",
        f"= import Bucket minimax-vllm-prod-8gpu-weights-bucket ({bucket})",
    ]
    assert [b["Name"] for b in world.s3.list_buckets()["Buckets"] if "-weights-" in b["Name"]] == [bucket]
    assert list(objects.get_bucket(bucket).keys) == ["MiniMaxAI/MiniMax-M2.5/x/mirror-complete.json"]
    assert _settings(world, bucket) == kept
    assert mirror_bucket_of(again).options["import"] == bucket  # set on every `up`; a no-op while held


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
    (warning,) = world.preview("prod-8gpu", overrides)
    assert "inputs to import do not match the existing resource" in warning

    if "owner" in changed:  # the fix: the bucket takes the stack's tags (the command's TagSet)
        assert row.fix.startswith(f"aws s3api put-bucket-tagging --bucket {bucket} --region {REGION} --tagging")
        want = weight_mirror.bucket_tags(settings.tags)
        assert all(f"{{Key={k},Value={v}}}" in row.fix for k, v in want.items())
        world.s3.put_bucket_tagging(
            Bucket=bucket, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in want.items()]}
        )
    else:  # the fix: keep retainOnDestroy for the adopting up
        assert row.fix.startswith("pulumi config set --path 'weights.retainOnDestroy' true")
        settings, overrides = from_stack_file("prod-8gpu"), {}
    assert preflight(world, settings).status == "PASS"
    world.up("prod-8gpu", overrides)
    assert f"= import Bucket minimax-vllm-prod-8gpu-weights-bucket ({bucket})" in s3_plan(world)
