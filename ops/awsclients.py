"""boto3 clients and error handling shared by preflight and sweep.

AWS errors fall into three kinds the commands treat differently: missing credentials
(nothing can be checked), access denied (this check cannot be made), and throttling
(retried with backoff, then reported).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from ops.report import Check, failed

Sleep = Callable[[float], None]

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
    }
)
DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthFailure"})
CREDENTIALS_FIX = "configure AWS credentials: `aws configure`, `aws sso login --profile <profile>` or AWS_PROFILE=<profile>; check with `aws sts get-caller-identity`"

# botocore retries throttling itself first ("standard" mode); `call` adds bounded retries on top.
BOTO_CONFIG = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10, read_timeout=30)


class CredentialsMissing(Exception):
    """No AWS credentials were found: every AWS check would fail the same way."""


class Throttled(Exception):
    """AWS kept throttling an API call after the retries."""

    def __init__(self, operation: str, attempts: int):
        self.operation = operation
        self.attempts = attempts
        super().__init__(f"{operation} throttled by AWS after {attempts} attempts")


def error_code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def error_message(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Message", "")) or str(err)


def is_denied(err: ClientError) -> bool:
    return error_code(err) in DENIED_CODES


def operation_of(fn: Callable[..., Any]) -> str:
    """`describe_capacity_reservations` -> `ec2:DescribeCapacityReservations`, for IAM fixes."""
    client = getattr(fn, "__self__", None)
    prefix = client.meta.service_model.signing_name if client is not None else ""
    name = "".join(part.capitalize() for part in getattr(fn, "__name__", "call").split("_"))
    return f"{prefix}:{name}" if prefix else name


def call(
    fn: Callable[..., Any], *, sleep: Sleep = time.sleep, attempts: int = 4, base_delay: float = 1.0, **kwargs: Any
) -> Any:
    """Call a boto3 method, retrying throttling with exponential backoff; raise `Throttled` after that."""
    for attempt in range(1, attempts + 1):
        try:
            return fn(**kwargs)
        except NoCredentialsError as err:
            raise CredentialsMissing(str(err)) from err
        except ClientError as err:
            if error_code(err) not in THROTTLING_CODES:
                raise
            if attempt == attempts:
                raise Throttled(operation_of(fn), attempts) from err
            sleep(min(base_delay * 2 ** (attempt - 1), 20.0))
    raise AssertionError("unreachable")


class AccessDenied(Exception):
    """AWS refused an API call: names the IAM action to grant, and keeps AWS's error code."""

    def __init__(self, operation: str, message: str, code: str = ""):
        self.operation, self.message, self.code = operation, message, code
        super().__init__(f"{operation}: {message}")


def call_checked(fn: Callable[..., Any], sleep: Sleep = time.sleep, **kwargs: Any) -> Any:
    """`call`, with access denied raised as `AccessDenied` naming the IAM action it needs."""
    try:
        return call(fn, sleep=sleep, **kwargs)
    except ClientError as err:
        if is_denied(err):
            raise AccessDenied(operation_of(fn), error_message(err), error_code(err)) from err
        raise


def stack_session(profile: str | None, role_arn: str | None, sts: Any = None) -> boto3.session.Session:
    """The AWS identity the stack's own provider uses (`aws:profile`, then the role of
    `aws:assumeRoles`), so preflight and sweep look at the account `pulumi up` changes.

    sts: the client that assumes the role (default: one from the profile's session)."""
    try:
        session = boto3.session.Session(profile_name=profile) if profile else boto3.session.Session()
    except BotoCoreError as err:  # ProfileNotFound: aws:profile names no profile of this machine
        raise CredentialsMissing(f"the stack's aws:profile {profile!r}: {err}") from err
    if not role_arn:
        return session
    sts = sts or session.client("sts", config=BOTO_CONFIG)
    try:
        found = sts.assume_role(RoleArn=role_arn, RoleSessionName="minimax-vllm-ops")["Credentials"]
    except (ClientError, BotoCoreError) as err:
        raise CredentialsMissing(f"cannot assume the stack's role {role_arn} (aws:assumeRoles): {err}") from err
    return boto3.session.Session(
        aws_access_key_id=found["AccessKeyId"],
        aws_secret_access_key=found["SecretAccessKey"],
        aws_session_token=found["SessionToken"],
        region_name=session.region_name,
    )


def clients(region: str, *services: str, session: boto3.session.Session | None = None) -> tuple[Any, ...]:
    """One boto3 client per service in the stack's region."""
    session = session or boto3.session.Session()
    return tuple(session.client(s, region_name=region, config=BOTO_CONFIG) for s in services)


def guard(name: str, check: Callable[[], list[Check]]) -> list[Check]:
    """Turn AWS errors into a failed row with its fix, so one denied API does not hide the rest."""
    try:
        return check()
    except Throttled as err:
        return [
            failed(
                name,
                str(err),
                "wait a minute and run preflight again; other tools in this account may be saturating the EC2 API",
            )
        ]
    except AccessDenied as err:
        return [
            failed(
                name,
                f"access denied to {err.operation}: {err.message}",
                f"grant {err.operation} to this principal (check it with `aws sts get-caller-identity`)",
            )
        ]
    except ClientError as err:
        return [failed(name, f"{error_code(err)}: {error_message(err)}")]
    except BotoCoreError as err:  # endpoint unreachable, proxy or TLS trouble
        return [
            failed(name, f"could not reach AWS: {err}", "check network access to the AWS APIs (proxy, VPC endpoints)")
        ]
