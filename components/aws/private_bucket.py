"""The settings every bucket of the stack gets: no public access, ACLs off, SSE-S3.

One place for the weight mirror and the ALB's access logs. SSE-S3 (AES256): the only server-side
encryption ELB log delivery supports, and enough for a public model's weights (an SSE-KMS key
would add a KMS request to every ranged GET of a copy at line rate).
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws


def private_bucket_settings(name: str, bucket: aws.s3.Bucket, opts: pulumi.ResourceOptions) -> list[pulumi.Resource]:
    """The public-access block, ownership (ACLs off) and default encryption of `bucket`."""
    block = aws.s3.BucketPublicAccessBlock(
        f"{name}-public-access",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=opts,
    )
    ownership = aws.s3.BucketOwnershipControls(
        f"{name}-ownership", bucket=bucket.id, rule={"object_ownership": "BucketOwnerEnforced"}, opts=opts
    )
    encryption = aws.s3.BucketServerSideEncryptionConfiguration(
        f"{name}-encryption",
        bucket=bucket.id,
        rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
        opts=opts,
    )
    return [block, ownership, encryption]
