"""How long a Capacity Block must still last for `ops preflight` to pass.

A block that ends a few hours after `pulumi up` buys little serving time: the cluster and
the model download take the first hour, and EKS wants the node group scaled to zero before
the block ends. These thresholds turn that into a preflight failure instead of a surprise.
"""

from __future__ import annotations

from pydantic.dataclasses import dataclass

from components.settings.schema import SECTION, Int, rule

# The longest Capacity Block EC2 sells: 182 days (EC2 API, CapacityDurationHours).
MAX_BLOCK_HOURS = 182 * 24


@dataclass(frozen=True, config=SECTION)
class CapacityBlockSettings:
    """Stack section `capacityBlock` (camelCase keys: minWindowHours, endingSoonHours)."""

    # Preflight fails when the block leaves fewer hours than this from now (or from its start).
    min_window_hours: Int = rule(24, f"must be from 1 to {MAX_BLOCK_HOURS} hours", ge=1, le=MAX_BLOCK_HOURS)
    # An active block ending within this many hours is reported as ending soon.
    ending_soon_hours: Int = rule(48, f"must be from 1 to {MAX_BLOCK_HOURS} hours", ge=1, le=MAX_BLOCK_HOURS)
