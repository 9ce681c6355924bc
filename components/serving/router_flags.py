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
# A replica at vLLM's admission cap (serving.maxQueuedRequests) answers 503 too, and the router
# counts it alike (vllm-project/router v0.1.17: src/routers/http/router.rs records any 5xx as a
# failure, src/core/retry.rs retries 503): after three its circuit opens and the request goes to a
# replica with room; consistent_hash has no other way off a full replica (it retries the same pick).
# The full replica then gets no new request for this long (the binary's default, src/main.rs) while
# it works off its queue, then its half-open circuit lets requests in again. A replica at the cap
# holds far more than this long of work (docs/scaling.md, "Admission cap"), so it never idles for it.
# Measured in tests/test_routing_replay.py.
CB_OPEN_SECONDS = 60
RESILIENCE: tuple[str, ...] = (
    "--retry-max-retries",
    str(RETRIES),
    "--cb-failure-threshold",
    str(CB_FAILURE_THRESHOLD),
    "--cb-timeout-duration-secs",
    str(CB_OPEN_SECONDS),
)
