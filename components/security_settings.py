"""Security settings of a stack: VPC flow logs (on for prod, off for dev).

A pydantic section to be added to `Settings` as `security`; until it is, `for_environment`
gives each stack its default from its environment.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# CloudWatch Logs retention values (days) this project allows, as for the control-plane logs.
RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 180, 365)
PROD = "prod"


class SecuritySettings(BaseModel):
    """`minimax-vllm:security` in a stack file."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)

    # Every accepted and rejected connection of the VPC, to a KMS-encrypted log group: the
    # record an incident needs. Costs CloudWatch ingestion, so dev leaves it off.
    flow_logs: bool = False
    flow_log_retention_days: int = Field(default=90, json_schema_extra={"allowed": RETENTION_DAYS})

    def model_post_init(self, _: object) -> None:
        if self.flow_log_retention_days not in RETENTION_DAYS:
            raise ValueError(
                f"security.flowLogRetentionDays {self.flow_log_retention_days} must be a CloudWatch retention:"
                f" {', '.join(map(str, RETENTION_DAYS))}"
            )


def for_environment(environment: str) -> SecuritySettings:
    """The default for a stack until the section is read from its file: flow logs for prod."""
    return SecuritySettings(flow_logs=environment == PROD)
