"""What the stack's AWS provider authenticates as, read from its `aws:` config.

The kubeconfig (components/aws/cluster.py) runs `aws eks get-token`; it must act as the same
principal as the provider that created the cluster's access entry, so it gets the provider's
profile and the role it assumes. pulumi-aws 7 reads a role chain from `aws:assumeRoles` (a list);
the last role of the chain is the principal that acts. Also the region as the AWS SDKs in the
stack's containers read it. Imports nothing of the project.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
# The keys read here, as `aws:<key>` in the stack's config.
PROFILE, ASSUME_ROLES, OLD_ASSUME_ROLE = "profile", "assumeRoles", "assumeRole"
ROLE_FIX = "pulumi config set --path 'aws:assumeRoles[0].roleArn' arn:aws:iam::<account>:role/<name>"
# botocore (boto3, s3transfer) reads only AWS_DEFAULT_REGION; the AWS CLI v2 and the other SDKs
# read AWS_REGION first. With AWS_REGION alone a boto3 client signs for us-east-1 and reaches the
# bucket only through S3's redirects (an extra round trip per client).
REGION_ENV_KEYS = ("AWS_DEFAULT_REGION", "AWS_REGION")


def region_env(region: str) -> dict[str, str]:
    """The environment that puts every AWS SDK of a container in `region`: every container that
    names its region takes it from here."""
    return dict.fromkeys(REGION_ENV_KEYS, region)


@dataclass(frozen=True)
class AwsIdentity:
    profile: str | None = None  # aws:profile
    role_arn: str | None = None  # the last role of aws:assumeRoles


def identity(aws: Mapping[str, Any]) -> tuple[AwsIdentity, list[str]]:
    """The provider's profile and assumed role, or the problems with their config."""
    problems: list[str] = []
    profile = aws.get(PROFILE)
    if profile is not None and (not isinstance(profile, str) or not profile.strip()):
        problems.append(f"aws:profile = {profile!r} must be a profile name. Fix: pulumi config set aws:profile <name>")
        profile = None
    if aws.get(OLD_ASSUME_ROLE) is not None:
        problems.append(
            f"aws:assumeRole = {aws[OLD_ASSUME_ROLE]!r} is not read by pulumi-aws 7, which takes a role chain in"
            f" aws:assumeRoles. Fix: pulumi config rm aws:assumeRole && {ROLE_FIX}"
        )
    roles = aws.get(ASSUME_ROLES)
    role_arn = None
    if roles is not None:
        arns = [r.get("roleArn") if isinstance(r, Mapping) else None for r in roles] if isinstance(roles, list) else []
        if not arns or not all(isinstance(a, str) and ROLE_ARN.fullmatch(a) for a in arns):
            problems.append(
                f"aws:assumeRoles = {roles!r} must be a list of {{roleArn: <IAM role ARN>}} entries. Fix: {ROLE_FIX}"
            )
        else:
            role_arn = arns[-1]
    return AwsIdentity(profile=profile or None, role_arn=role_arn), problems
