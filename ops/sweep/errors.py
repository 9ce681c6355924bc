"""Every AWS or network error sweep can meet, as a report row's detail and the fix for it.

The fix depends on the error code, not on the call: a denied delete needs an IAM grant,
never "turn off deletion protection"; throttling needs a later rerun, never a permission.
"""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ProxyConnectionError,
    ReadTimeoutError,
    SSLError,
)

from ops.awsclients import CREDENTIALS_FIX, DENIED_CODES, CredentialsMissing, Throttled, error_code, error_message

# Anything a boto3 call may raise that is about AWS or the network, never a bug of ours.
AWS_ERRORS = (ClientError, BotoCoreError, Throttled, CredentialsMissing)

NOT_FOUND_CODES = frozenset(
    {
        "LoadBalancerNotFound",
        "TargetGroupNotFound",
        "ListenerNotFound",
        "InvalidGroup.NotFound",
        "InvalidGroupId.NotFound",
        "InvalidNetworkInterfaceID.NotFound",
        "InvalidSubnetID.NotFound",
        "InvalidVpcID.NotFound",
        "InvalidRouteTableID.NotFound",
        "InvalidInternetGatewayID.NotFound",
        "InvalidAllocationID.NotFound",
        "NatGatewayNotFound",
        "InvalidNatGatewayID.NotFound",
        "InvalidVpcEndpointId.NotFound",
    }
)
# Clear by themselves once a dependent finishes deleting (an NLB's ENIs take minutes).
IN_USE_CODES = frozenset(
    {"DependencyViolation", "ResourceInUse", "InvalidNetworkInterface.InUse", "InvalidIPAddress.InUse"}
)
EXPIRED_CODES = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired"})
BAD_CREDENTIAL_CODES = frozenset(
    {"AuthFailure", "InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch"}
)
UNREACHABLE = (EndpointConnectionError, ConnectTimeoutError, ProxyConnectionError, SSLError, ConnectionClosedError)
RERUN = "run sweep again (reruns are safe: what is gone is skipped)"


def iam_action(service: str, method: str) -> str:
    """('elasticloadbalancing', 'delete_load_balancer') -> 'elasticloadbalancing:DeleteLoadBalancer'."""
    return f"{service}:{''.join(part.capitalize() for part in method.split('_'))}"


def explain(err: Exception, action: str, *, in_use_by: str = "", protected_fix: str = "") -> tuple[str, str]:
    """(detail, fix) for a failed call of IAM `action`.

    in_use_by: what still uses the resource, for DependencyViolation and friends.
    protected_fix: the fix when AWS answers OperationNotPermitted (deletion protection).
    """
    if isinstance(err, Throttled):
        return (
            f"{err.operation} throttled by AWS after {err.attempts} attempts",
            f"the account's API rate limit is exhausted (often by other tools): wait a few minutes, then {RERUN}",
        )
    if isinstance(err, (CredentialsMissing, NoCredentialsError)):
        return f"no AWS credentials: {err}", CREDENTIALS_FIX
    if isinstance(err, ReadTimeoutError):
        return f"{action}: AWS did not answer in time ({err})", f"check the network, then {RERUN}"
    if isinstance(err, UNREACHABLE):
        return (
            f"{action}: cannot reach the AWS endpoint ({err})",
            "check network access to AWS (proxy: HTTPS_PROXY; private subnets: a VPC endpoint or NAT), then " + RERUN,
        )
    if isinstance(err, BotoCoreError):
        return f"{action}: {err}", f"fix the AWS client setup named above, then {RERUN}"
    if not isinstance(err, ClientError):
        return f"{action}: {err}", RERUN
    code = error_code(err)
    detail = f"{code}: {error_message(err)}"
    if code in BAD_CREDENTIAL_CODES:  # before DENIED_CODES: EC2's AuthFailure is about the keys, not IAM
        return detail, CREDENTIALS_FIX
    if code in DENIED_CODES:
        fix = f"grant {action} to the identity running sweep (`aws sts get-caller-identity`)"
        if code == "UnauthorizedOperation":
            fix += "; `aws sts decode-authorization-message --encoded-message <message>` shows the denying policy"
        return detail, fix
    if code in EXPIRED_CODES:
        return detail, f"the credentials expired: refresh them (`aws sso login --profile <profile>`), then {RERUN}"
    if code == "OperationNotPermitted" and protected_fix:
        return detail, protected_fix
    if code in IN_USE_CODES:
        used = in_use_by or "another resource"
        return detail, f"still used by {used}: remove that first (or wait until it is gone), then {RERUN}"
    return detail, f"see the AWS message above; {RERUN}"
