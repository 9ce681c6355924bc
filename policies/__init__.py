"""Policy-as-code guardrails; the rules are importable as `policies.rules`."""
