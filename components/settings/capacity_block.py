"""How long a Capacity Block must still last for `ops preflight` to pass.

A block that ends a few hours after `pulumi up` buys little serving time: the cluster and
the model download take the first hour, and EKS wants the node group scaled to zero before
the block ends. These thresholds turn that into a preflight failure instead of a surprise.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# The longest Capacity Block EC2 sells: 182 days (EC2 API, CapacityDurationHours).
MAX_BLOCK_HOURS = 182 * 24


class CapacityBlockSettings(BaseModel):
    """Stack section `capacityBlock` (camelCase keys: minWindowHours, endingSoonHours)."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)

    # Preflight fails when the block leaves fewer hours than this from now (or from its start).
    min_window_hours: int = Field(24, ge=1, le=MAX_BLOCK_HOURS)
    # An active block ending within this many hours is reported as ending soon.
    ending_soon_hours: int = Field(48, ge=1, le=MAX_BLOCK_HOURS)
