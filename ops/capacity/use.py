"""`ops capacity use <offering-id>`: how to buy a Capacity Block and point the stack at it.

Buying is the user's decision: by default this only prints the `aws ec2
purchase-capacity-block` command. `--purchase` buys after the offering id is typed back.
Then the `pulumi config set` commands that make the next `pulumi up` land on the block:
its region, capacity type, reservation id, exactly its one zone (a reservation is zonal),
and a node group sized to the block. The resulting stack settings are checked here, with
the same rules `pulumi up` applies, before anything is printed as the way forward.
"""

from __future__ import annotations

import copy
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from components.platform import config
from ops.awsclients import Sleep, call_checked
from ops.capacity.block_state import scale_to_zero_command
from ops.capacity.find import Offering, money, when_utc

INSTANCE_PLATFORM = "Linux/UNIX"  # the EKS AL2023 NVIDIA AMI
# Stands in for the reservation id until the block is bought. Settings reject it (not hex),
# so a stack configured with it cannot reach `pulumi up` by mistake.
RESERVATION_PLACEHOLDER = "cr-REPLACE-WITH-RESERVATION-ID"


@dataclass(frozen=True)
class ConfigChange:
    """One `pulumi config` edit: set `key` (a --path into the project's object) or remove it."""

    key: str
    value: str | None  # None: `pulumi config rm`
    path: bool = True

    def command(self, stack: str) -> str:
        verb = "set" if self.value is not None else "rm"
        parts = ["pulumi", "config", verb, "--stack", stack]
        if self.path:
            parts.append("--path")
        parts.append(self.key)
        if self.value is not None:
            parts.append(self.value)
        return shlex.join(parts)


def purchase_command(offering: Offering) -> str:
    return shlex.join(
        [
            "aws",
            "ec2",
            "purchase-capacity-block",
            "--capacity-block-offering-id",
            offering.offering_id,
            "--instance-platform",
            INSTANCE_PLATFORM,
            "--region",
            offering.region,
        ]
    )


def reservation_lookup_command(offering: Offering) -> str:
    """Finds the reservation id of a bought block later (the purchase output shows it too)."""
    return shlex.join(
        [
            "aws",
            "ec2",
            "describe-capacity-reservations",
            "--region",
            offering.region,
            "--filters",
            f"Name=availability-zone,Values={offering.zone}",
            f"Name=instance-type,Values={offering.instance_type}",
            "--query",
            "CapacityReservations[].[CapacityReservationId,ReservationType,State,StartDate,EndDate]",
            "--output",
            "text",
        ]
    )


def changes(offering: Offering, reservation_id: str, raw_config: dict[str, Any]) -> list[ConfigChange]:
    """The edits that select this block, given the stack file's current `config:` map."""
    project = config.PROJECT
    gpu = raw_config.get(f"{project}:gpuNodes") or {}
    network = raw_config.get(f"{project}:network") or {}
    count = str(offering.instance_count)
    out = [ConfigChange("aws:region", offering.region, path=False)]
    if gpu.get("instanceType", offering.instance_type) != offering.instance_type:
        out.append(ConfigChange("gpuNodes.instanceType", offering.instance_type))
    out += [
        ConfigChange("gpuNodes.capacityType", "CAPACITY_BLOCK"),
        ConfigChange("gpuNodes.capacityReservationId", reservation_id),
        # Remove first, so no second zone of an earlier list survives: a block is in one zone.
        ConfigChange("gpuNodes.availabilityZones", None),
        ConfigChange("gpuNodes.availabilityZones[0]", offering.zone),
        ConfigChange("gpuNodes.minSize", count),
        ConfigChange("gpuNodes.desiredSize", count),
        ConfigChange("gpuNodes.maxSize", count),
    ]
    zones = network.get("availabilityZones")
    if zones and offering.zone not in zones:
        # The GPU zone needs a subnet: added after the recorded zones, whose subnets stay (byZone
        # CIDRs follow each zone; `make plan BASE=...` shows what a byPosition stack would move).
        out.append(ConfigChange(f"network.availabilityZones[{len(zones)}]", offering.zone))
    return out


def apply(raw_config: dict[str, Any], edits: list[ConfigChange]) -> dict[str, Any]:
    """The stack's config after the edits (for checking them with the settings rules)."""
    out = copy.deepcopy(raw_config)
    for e in edits:
        if not e.path:
            out[e.key] = e.value
            continue
        section, _, rest = e.key.partition(".")
        full = f"{config.PROJECT}:{section}"
        obj = dict(out.get(full) or {})
        field, _, index = rest.partition("[")
        if e.value is None:
            obj.pop(field, None)
        elif index:
            items = list(obj.get(field) or [])
            items[int(index.rstrip("]")) : int(index.rstrip("]")) + 1] = [e.value]
            obj[field] = items
        else:
            obj[field] = int(e.value) if e.value.isdigit() else e.value
        out[full] = obj
    return out


def problems(stack: str, raw_config: dict[str, Any]) -> list[str]:
    """What the settings rules say about a stack config (empty: `pulumi up` accepts it)."""
    raw, region = config.split_stack_config(raw_config)
    try:
        config.parse(raw, stack, region)
    except config.SettingsError as err:
        return err.problems
    return []


def purchase(ec2: Any, offering: Offering, sleep: Sleep = time.sleep) -> str:
    """Buy the block; returns its capacity reservation id (what the node group targets)."""
    reply = call_checked(
        ec2.purchase_capacity_block,
        sleep,
        CapacityBlockOfferingId=offering.offering_id,
        InstancePlatform=INSTANCE_PLATFORM,
    )
    reservation = reply.get("CapacityReservation") or next(iter(reply.get("CapacityReservations") or []), {})
    rid = reservation.get("CapacityReservationId")
    if not rid:
        rid = next(
            iter(b for blk in reply.get("CapacityBlocks", []) for b in blk.get("CapacityReservationIds", [])), ""
        )
    if not rid:
        raise RuntimeError(f"PurchaseCapacityBlock returned no capacity reservation id: {reply}")
    return rid


def _fee(offering: Offering) -> str:
    if offering.start is None:  # given on the command line, not listed by `capacity find`
        return "the fee listed by `aws ec2 describe-capacity-block-offerings`"
    return money(offering.upfront_fee, offering.currency)


def confirmed(offering: Offering, ask: Callable[[str], str], out: TextIO) -> bool:
    """The purchase is paid up front and not refundable: the offering id must be typed back."""
    print(f"About to buy {describe(offering)}; paid up front, not refundable.", file=out)
    try:
        answer = ask(f"Type the offering id ({offering.offering_id}) to buy it, anything else to stop: ")
    except EOFError:
        return False
    return answer.strip() == offering.offering_id


def describe(offering: Offering) -> str:
    when = (
        f", {when_utc(offering.start)} to {when_utc(offering.end)} UTC ({offering.duration_hours:g} h)"
        if offering.start
        else ""
    )
    return (
        f"Capacity Block offering {offering.offering_id}: {offering.instance_count} x {offering.instance_type}"
        f" in {offering.zone} ({offering.region}){when}, {_fee(offering)} up front"
    )


def guide(
    stack: str,
    offering: Offering,
    raw_config: dict[str, Any],
    reservation_id: str | None,
    *,
    bought: bool = False,
) -> tuple[str, bool]:
    """The text `capacity use` prints, and whether the resulting stack settings are valid."""
    rid = reservation_id or RESERVATION_PLACEHOLDER
    edits = changes(offering, rid, raw_config)
    lines = [describe(offering), ""]
    if bought:
        lines += [f"1. Bought: capacity reservation {rid}.", ""]
    else:
        lines += [
            "1. Buy it (nothing has been bought; the fee is paid up front and is not refundable):",
            f"   {purchase_command(offering)}",
            "   Its output names the reservation: CapacityReservation.CapacityReservationId (cr-...). Later:",
            f"   {reservation_lookup_command(offering)}",
            "",
        ]
    lines.append("2. Point the stack at the block:")
    lines += [f"   {e.command(stack)}" for e in edits]
    if rid == RESERVATION_PLACEHOLDER:
        lines.append(
            f"   (replace {RESERVATION_PLACEHOLDER} with the reservation id, or run again with --reservation-id)"
        )
    check_id = rid if rid != RESERVATION_PLACEHOLDER else "cr-0123456789abcdef0"
    found = problems(stack, apply(raw_config, changes(offering, check_id, raw_config)))
    if found:
        lines += ["", "These settings would be rejected; fix these first:", *(f"   - {p}" for p in found)]
    starts = f" ({when_utc(offering.start)} UTC)" if offering.start else ""
    ends = f" ({when_utc(offering.end)} UTC)" if offering.end else ""
    lines += [
        "",
        f"3. Once the block is active{starts}: python -m ops preflight --stack {stack}, then pulumi up --stack {stack}",
        f"4. Before the block ends{ends}, more than 30 minutes ahead, scale the GPU node group to 0"
        " (EKS user guide, Capacity Blocks for ML); EC2 takes the instances back at the end:",
        f"   {scale_to_zero_command(stack, offering.region, offering.instance_count)}",
    ]
    return "\n".join(lines), not found
