"""The stack's `routing` section: whether vLLM's router stands between the ALB and the replicas.

A conversation's prefix is cached only on the replica that served it; with more than one replica
the ALB spreads turns and most of them recompute their whole prefix. The router sends each turn
to the replica holding it (components/serving/routing.py; measured by `make routing`).
"""

from __future__ import annotations

from typing import Annotated

from pydantic.dataclasses import dataclass

from components.settings.schema import SECTION as SECTION_CONFIG
from components.settings.schema import Str, closed, one_of, rule

SECTION = "routing"
MODES = ("direct", "router")
# routing.policy -> the router's --policy value (vllm_router/router_args.py in the 0.1.17 wheel).
POLICIES = {"cache-aware": "cache_aware", "consistent-hash": "consistent_hash", "round-robin": "round_robin"}
# The headers consistent_hash takes its key from, in its order (vllm-project/router
# src/policies/hash_key.rs at v0.1.17); any other header would be ignored and the body hashed.
SESSION_HEADERS = ("x-session-id", "x-user-id", "x-tenant-id", "x-correlation-id", "x-request-id", "x-trace-id")


@dataclass(frozen=True, config=SECTION_CONFIG)
class RoutingSettings:
    # unset: `router` wherever more than one replica can exist, `direct` otherwise (see `Settings.routing_mode`).
    mode: Annotated[Str, one_of(MODES)] | None = rule(None, closed("a routing mode", MODES), "router")
    # consistent-hash: the one policy that keeps a conversation on its replica through both router
    # pods, and spreads conversations (vllm-router 0.1.17's cache_aware put every chat conversation
    # on one replica; measured by `make routing` and tests/test_routing_replay.py).
    policy: Annotated[Str, one_of(POLICIES)] = rule("consistent-hash", closed("a routing policy", tuple(POLICIES)))
    session_header: Annotated[Str, one_of(SESSION_HEADERS)] = rule(
        "x-session-id", closed("a header the router's consistent hashing reads", SESSION_HEADERS)
    )
