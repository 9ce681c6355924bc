"""Settings that name an AWS resource by ARN must name one the stack can use: its partition,
its region, and one account.

- An ALB uses only an ACM certificate of its own region and account; a regional WAFv2 web ACL
  is associated only with a load balancer of its own region and account. The load balancer
  controller would fail to reconcile at deploy time; this refuses before anything is created.
- The account is known offline only through ARNs: the certificate and the web ACL must share
  one, and it must be the account of the role the provider assumes (`aws:assumeRoles`).
- Access entries take IAM roles and users (not STS session ARNs), of the stack's partition; a
  STANDARD entry may name another account's principal (EKS user guide, "Create access entries").

Ids without a region or account (capacity reservation, VPC, subnets, bucket name) cannot be
judged offline: `ops preflight` looks them up in the stack's region.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from components.settings.schema import set_command
from components.settings.stack import PROJECT, Settings

# An IAM role or user (a path is allowed): what an EKS access entry takes.
IAM_PRINCIPAL = re.compile(r"arn:[a-z-]+:iam::\d{12}:(role|user)/[\w+=,.@/-]+")


@dataclass(frozen=True)
class Arn:
    partition: str
    service: str
    region: str
    account: str
    resource: str


def parse(arn: str) -> Arn | None:
    """`arn:partition:service:region:account:resource`, or None when it is not that shape."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return None
    return Arn(*parts[1:])


@functools.cache
def partition_of(region: str) -> str | None:
    """The partition of a region, from botocore's endpoint data (None: a region it does not know)."""
    import botocore.session
    from botocore.exceptions import UnknownRegionError

    try:
        return botocore.session.get_session().get_partition_for_region(region)
    except UnknownRegionError:
        return None


def _fail(key: str, value: object, rule_text: str, fix: str) -> str:
    return f"{PROJECT}:{key} = {value!r} {rule_text}. Fix: {fix}"


def check(st: Settings) -> list[str]:
    """Region, partition and account of every ARN setting against the stack and each other."""
    ep, out = st.endpoint, []
    partition = partition_of(st.region) if st.region else None
    regional = (
        ("endpoint.certificateArn", ep.certificate_arn, "an ALB uses only an ACM certificate of its own region"),
        ("endpoint.wafAclArn", ep.waf_acl_arn, "a regional web ACL protects only load balancers of its own region"),
    )
    found: dict[str, tuple[str, Arn]] = {}
    for key, value, why in regional:
        arn = parse(value) if value else None
        if value is None or arn is None:
            continue
        found[key] = (value, arn)
        example = f"{value.replace(f':{arn.region}:', f':{st.region}:', 1)}"
        if st.region and arn.region != st.region:
            out.append(
                _fail(
                    key,
                    value,
                    f"is in region {arn.region}, not the stack's aws:region {st.region} ({why})",
                    f"{set_command(key, example)} (the same resource made in {st.region})",
                )
            )
        elif partition and arn.partition != partition:
            out.append(_partition_problem(key, value, arn, partition, st.region))
    role = parse(st.aws_role_arn) if st.aws_role_arn else None
    if role:
        for key, (value, arn) in found.items():
            if arn.account != role.account:
                out.append(
                    _fail(
                        key,
                        value,
                        f"is in account {arn.account}, but the stack deploys into account {role.account}"
                        f" (the aws:assumeRoles role {st.aws_role_arn})",
                        f"name the resource of account {role.account}: {set_command(key, '<arn>')}",
                    )
                )
    elif len({arn.account for _, arn in found.values()}) > 1:
        cert, waf = found["endpoint.certificateArn"][1], found["endpoint.wafAclArn"][1]
        out.append(
            _fail(
                "endpoint.wafAclArn",
                ep.waf_acl_arn,
                f"is in account {waf.account}, the certificate in {cert.account}; both attach to one load balancer,"
                " which uses only its own account's certificates and web ACLs",
                set_command(
                    "endpoint.wafAclArn",
                    f"arn:{cert.partition}:wafv2:{st.region}:{cert.account}:regional/webacl/<name>/<id>",
                ),
            )
        )
    out += _principal_problems(tuple(e.principal_arn for e in st.cluster.access_entries), partition, st.region)
    if role and partition and role.partition != partition:
        out.append(
            f"aws:assumeRoles = {st.aws_role_arn!r} is in partition {role.partition}, but aws:region {st.region} is in"
            f" {partition}. Fix: pulumi config set --path 'aws:assumeRoles[0].roleArn' arn:{partition}:iam::<account>:role/<name>"
        )
    return out


def _partition_problem(key: str, value: str, arn: Arn, partition: str, region: str) -> str:
    return _fail(
        key,
        value,
        f"is in partition {arn.partition}, but aws:region {region} is in partition {partition}",
        set_command(key, value.replace(f"arn:{arn.partition}:", f"arn:{partition}:", 1)),
    )


def _principal_problems(arns: tuple[str, ...], partition: str | None, region: str) -> list[str]:
    """Access entries take an IAM role or user ARN (no region), of the stack's partition."""
    out = []
    for i, value in enumerate(arns):
        key, arn = f"cluster.accessEntries[{i}].principalArn", parse(value)
        if arn is None:
            continue
        if not IAM_PRINCIPAL.fullmatch(value):
            out.append(
                _fail(
                    key,
                    value,
                    "is not an IAM role or user ARN (arn:<partition>:iam::<account>:role/<name>); an EKS access entry"
                    " takes the role, not an STS assumed-role session or another service's ARN",
                    set_command(key, f"arn:{partition or 'aws'}:iam::{arn.account}:role/<name>"),
                )
            )
        elif partition and arn.partition != partition:
            out.append(_partition_problem(key, value, arn, partition, region))
    return out
