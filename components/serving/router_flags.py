"""vLLM router (PyPI `vllm-router` 0.1.17) flags shared by the Deployment and the loopback replay.

One place, so the tests that run the real binary exercise the flags the cluster runs with.
"""

from __future__ import annotations

from components.settings.routing import POLICIES as POLICIES  # the settings own the names

ROUTER_VERSION = "0.1.17"

# A dead replica must leave the pick before a request's retries run out: the router retries
# (--retry-max-retries 5) by choosing again, but only skips a worker whose circuit breaker is open.
# With the default --cb-failure-threshold 10, consistent_hash picked the dead replica for all six
# attempts and returned 500 (measured in tests/test_routing_replay.py); 3 opens it within one request.
RETRIES = 5
CB_FAILURE_THRESHOLD = 3
RESILIENCE: tuple[str, ...] = (
    "--retry-max-retries",
    str(RETRIES),
    "--cb-failure-threshold",
    str(CB_FAILURE_THRESHOLD),
)
