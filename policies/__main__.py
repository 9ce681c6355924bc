"""The minimax-vllm guardrails pack: `pulumi preview --policy-pack policies`.

Thin on purpose: the rules and their wrapping live in rules.py, where tests import them.
The Pulumi CLI runs this file with `policies/` on the path, hence the top-level import.
"""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, PolicyPack
from rules import all_policies

PolicyPack(
    name="minimax-vllm-guardrails",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=all_policies(),
)
