"""The network sweep's VPC endpoints: the S3 gateway endpoint `components/aws/network.py` makes.

A VPC with an endpoint cannot be deleted (DeleteVpc: every gateway and resource must go
first), so the stack's own gateway endpoints go before its subnets and route tables, unless a
kept subnet's route table still routes to them (`needs.py`). DeleteVpcEndpoints
answers failures in its reply, not as an error: each is read back into a row.
"""

from __future__ import annotations

from typing import Any

from ops.report import Check, failed, passed
from ops.sweep.errors import AWS_ERRORS, NOT_FOUND_CODES, RERUN, explain

# `p` below is ops/sweep/network.py's planner (its ec2 client, the plan and the kept network),
# passed in by that module: importing it here, even for types, would close a circle.
_Planner = Any

GATEWAY = "Gateway"
GONE_STATES = frozenset({"deleted", "deleting"})


def live_endpoints(found: list[dict[str, Any]], vpc_id: str | None = None) -> list[dict[str, Any]]:
    return [
        e
        for e in found
        if e.get("State", "").lower() not in GONE_STATES and (vpc_id is None or e.get("VpcId") == vpc_id)
    ]


def plan_endpoints(p: _Planner) -> None:
    """Steps for this stack's gateway endpoints; any other endpoint keeps the VPC (its row says so)."""
    for endpoint in live_endpoints(p.found["VPC endpoints"]):
        vpce, kind = endpoint["VpcEndpointId"], endpoint.get("VpcEndpointType", "")
        name = f"VPC endpoint {vpce} ({endpoint.get('ServiceName', kind)})"
        own = p.judge(endpoint)
        if own.kind != "ours":
            p.keep(name, own)
            continue
        if kind != GATEWAY:
            continue  # an interface endpoint's ENIs keep its subnets; the VPC row names it
        if row := p.blocked(name, vpce):
            p.add(name, row=row)
            continue
        p.endpoints_going.add(vpce)
        p.add(name, act=lambda n=name, i=vpce: drop_endpoint(p, n, i))


def drop_endpoint(p: _Planner, name: str, vpce: str) -> Check:
    try:
        reply = p.sweeper._call(p.sweeper.ec2.delete_vpc_endpoints, VpcEndpointIds=[vpce])
    except AWS_ERRORS as err:
        return failed(name, *explain(err, "ec2:DeleteVpcEndpoints"))
    for item in reply.get("Unsuccessful", []):
        error = item.get("Error", {})
        if error.get("Code") in NOT_FOUND_CODES:
            return passed(name, "already gone")
        return failed(name, f"{error.get('Code')}: {error.get('Message')}", f"see the AWS message above; {RERUN}")
    return passed(name, "deleted")
