"""The S3 weight mirror on the AWS side: the bucket and the two Pod Identity roles that use it.

The bucket: SSE-S3 encryption (the weights are a public model's; SSE-KMS would add a KMS
request per object read and a key policy every sharing stack must be written into), all
public access blocked, ACLs off (bucket owner enforced), TLS only, versioned, and a lifecycle
rule that removes a retired revision 30 days (`weights.noncurrentDays`) after its prefix is
deleted. `pulumi destroy` leaves it, its settings and its signing key (Pulumi retain_on_delete)
unless the stack sets `weights.retainOnDestroy: false`; `ops sweep` never deletes it and lists it
as retained. The next `pulumi up` adopts what was kept: creating the same bucket name again
fails outside us-east-1 (409 BucketAlreadyOwnedByYou), and the same alias again fails
(AlreadyExistsException), so a lookup of the account's buckets decides whether the bucket, the
key and its alias are imported; the bucket's settings are declared again (docs/weights.md, "A
second life").
With `weights.existingBucket` nothing of the bucket is created, and the stack only reads: its
stagers' role and no writer, no fill Job (the stack that owns the bucket fills it).
Roles: the mirror Job may write its revision's prefix and sign the manifest with the bucket's
KMS key (ECC_NIST_P256, SIGN_VERIFY; alias from the bucket's name, mirror_trust.key_alias), the
node stagers may only read and verify; both through EKS Pod Identity (trust:
components/aws/iam_trust.py), never the node role. The writer exists only while the revision
is unsigned: once its signature is in the bucket, the next `up` removes the Job's role and
association (and the Job), and the bucket policy then refuses every write under a weights prefix
(`weights.refill` brings the writer back, docs/mirror.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.aws.pod_identity import workload_identity
from components.aws.private_bucket import private_bucket_settings
from components.weights import compile_cache_objects, mirror_trust
from components.weights import mirror as weight_mirror
from components.weights.mirror import bucket_name

__all__ = ["MirrorBucket", "MirrorBucketArgs", "bucket_name"]


@dataclass(frozen=True)
class MirrorBucketArgs:
    bucket: str  # the mirror's name: created here, or an existing bucket's
    create: bool  # False: weights.existingBucket, made elsewhere
    key_prefix: str  # <model>/<commit>/
    cluster_name: pulumi.Input[str]
    cluster_arn: pulumi.Output[str]
    namespace: str
    partition: str
    region: str  # where the bucket is (and is looked up)
    account_id: str  # the bucket's owner: this account (ExpectedBucketOwner, s3:ResourceAccount)
    retain_on_destroy: bool
    noncurrent_days: int
    tags: dict[str, str]
    # Pod Identity associations need the agent add-on.
    depends_on: tuple[pulumi.Resource, ...] = ()
    # weights.compileCache: the folder of the stack's current compile-cache key, which the pods' role may also write.
    compile_cache_entry: str | None = None
    # weights.refill: a fill although the revision is signed.
    refill: bool = False


class MirrorBucket(pulumi.ComponentResource):
    bucket: str
    owner: str
    fills: bool  # this stack owns the bucket and runs the fill Job
    associations: list[pulumi.Resource]  # the pods that use the mirror must start after these

    def __init__(self, name: str, args: MirrorBucketArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("minimax-vllm:aws:MirrorBucket", name, None, opts)
        self.bucket, self.owner = args.bucket, args.account_id
        arn = f"arn:{args.partition}:s3:::{args.bucket}"
        present = args.create and exists(args.bucket, args.region)
        # The owner fills a revision its bucket holds no signature for (or on weights.refill).
        self.fills = args.create and (
            args.refill or not (present and signed(args.bucket, args.region, args.key_prefix))
        )
        key_arn = self._key(name, args, present) if args.create else _shared_key_arn(args)
        who_may: list[tuple[str, str, pulumi.Output[str]]] = [
            (
                "pods",
                weight_mirror.POD_SERVICE_ACCOUNT,
                key_arn.apply(lambda k: _pods_policy(args, arn, k)),
            )
        ]
        if self.fills:
            who_may.insert(
                0,
                (
                    "job",
                    weight_mirror.JOB_SERVICE_ACCOUNT,
                    key_arn.apply(lambda k: weight_mirror.writer_policy(arn, args.key_prefix, args.account_id, k)),
                ),
            )
        self.associations = []
        identities = {}
        # The bucket with its settings is in place before any pod gets an identity to use it;
        # its policy names the writer role, so it follows the roles, and the pods wait for it too.
        bucket_ready, keep = self._bucket(name, args, arn, present) if args.create else ([], None)
        for who, service_account, policy in who_may:
            granted = workload_identity(
                f"{name}-{who}",
                self,
                cluster_name=args.cluster_name,
                cluster_arn=args.cluster_arn,
                namespace=args.namespace,
                service_account=service_account,
                tags=args.tags,
                policy_document=policy,
                depends_on=[*bucket_ready, *args.depends_on],
            )
            identities[who] = granted
            self.associations.append(granted.association)
        if keep is not None:
            writer = identities["job"].role.arn if "job" in identities else pulumi.Output.from_input("")
            self.associations.append(
                aws.s3.BucketPolicy(
                    f"{name}-policy",
                    bucket=args.bucket,
                    policy=writer.apply(lambda w: weight_mirror.bucket_policy(arn, w or None)),
                    opts=pulumi.ResourceOptions.merge(keep, pulumi.ResourceOptions(depends_on=bucket_ready)),
                )
            )
        self.register_outputs({"bucket": args.bucket})

    def _key(self, name: str, args: MirrorBucketArgs, present: bool) -> pulumi.Output[str]:
        """The manifest's signing key: kept with the bucket, as the signatures in it need it, and
        adopted with it. No deletion window is declared: AWS does not report it, so an import that
        declared one would not match (the provider's delete then schedules KMS's default, 30 days)."""
        keep = pulumi.ResourceOptions(parent=self, retain_on_delete=args.retain_on_destroy)
        alias_name = mirror_trust.key_alias(args.bucket)
        # A bucket that exists holds its key's alias (kept together); while the stack holds them,
        # the same import ids change nothing.
        kept = aws.kms.get_alias(name=alias_name, region=args.region) if present else None
        key = aws.kms.Key(
            f"{name}-manifest-key",
            description=f"Signs the weight manifests in s3://{args.bucket} (minimax-vllm)",
            customer_master_key_spec=mirror_trust.KEY_SPEC,
            key_usage="SIGN_VERIFY",
            tags=args.tags,
            opts=pulumi.ResourceOptions.merge(
                keep, pulumi.ResourceOptions(import_=kept.target_key_id if kept else None)
            ),
        )
        aws.kms.Alias(
            f"{name}-manifest-key-alias",
            name=alias_name,
            target_key_id=key.key_id,
            opts=pulumi.ResourceOptions.merge(
                keep, pulumi.ResourceOptions(depends_on=[key], import_=alias_name if kept else None)
            ),
        )
        return key.arn

    def _bucket(
        self, name: str, args: MirrorBucketArgs, arn: str, present: bool
    ) -> tuple[list[pulumi.Resource], pulumi.ResourceOptions]:
        # Everything that makes the bucket private and encrypted stays with it on destroy.
        keep = pulumi.ResourceOptions(parent=self, retain_on_delete=args.retain_on_destroy)
        bucket = aws.s3.Bucket(
            f"{name}-bucket",
            bucket=args.bucket,
            # Only a stack that asks for the bucket to go may delete a bucket that holds weights.
            force_destroy=not args.retain_on_destroy,
            tags=weight_mirror.bucket_tags(args.tags),
            # Pulumi imports the bucket when the stack does not hold it; while the stack holds
            # it under the same id, the option changes nothing.
            opts=pulumi.ResourceOptions.merge(keep, pulumi.ResourceOptions(import_=args.bucket if present else None)),
        )
        # The settings below are not imported: each is created with a Put that S3 accepts over the
        # kept one, so the adopting `up` applies what the stack declares now (a changed
        # weights.noncurrentDays, a policy edited by hand meanwhile) instead of failing Pulumi's
        # import check on the difference.
        on_bucket = pulumi.ResourceOptions.merge(keep, pulumi.ResourceOptions(depends_on=[bucket]))
        block, ownership, encryption = private_bucket_settings(f"{name}", bucket, on_bucket)
        versioning = aws.s3.BucketVersioning(
            f"{name}-versioning", bucket=bucket.id, versioning_configuration={"status": "Enabled"}, opts=on_bucket
        )
        lifecycle = aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket.id,
            rules=weight_mirror.lifecycle_rules(args.noncurrent_days),
            opts=pulumi.ResourceOptions.merge(on_bucket, pulumi.ResourceOptions(depends_on=[versioning])),
        )
        return [bucket, block, ownership, encryption, versioning, lifecycle], keep


def _shared_key_arn(args: MirrorBucketArgs) -> pulumi.Output[str]:
    """A shared bucket's signing key, made by the stack that owns the bucket."""
    alias = aws.kms.get_alias_output(name=mirror_trust.key_alias(args.bucket), region=args.region)
    return alias.target_key_arn


def exists(bucket: str, region: str) -> bool:
    """Whether this account already has the bucket in the region (S3 ListBuckets, filtered by
    prefix and region; no error when there is none, unlike a lookup of the bucket itself)."""
    found = aws.s3.get_buckets(prefix=bucket, bucket_region=region)
    return any(b.name == bucket for b in found.buckets)


def signed(bucket: str, region: str, key_prefix: str) -> bool:
    """Whether the revision's manifest signature is in the bucket (S3 ListObjectsV2 on its exact
    key: no error when it is absent). The stagers still verify it with KMS before they trust it."""
    key = f"{key_prefix}{mirror_trust.SIGNATURE}"
    found = aws.s3.get_objects(bucket=bucket, prefix=key, max_keys=1, region=region)
    return key in found.keys


def _pods_policy(args: MirrorBucketArgs, arn: str, key_arn: str) -> str:
    """The stagers' reads, and with weights.compileCache the writes of their own cache entry."""
    policy = weight_mirror.reader_policy(arn, args.key_prefix, args.account_id, key_arn)
    if not args.compile_cache_entry:
        return policy
    cache = compile_cache_objects.policy_statements(arn, args.compile_cache_entry, args.account_id)
    return compile_cache_objects.with_statements(policy, cache)
