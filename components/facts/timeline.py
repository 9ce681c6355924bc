"""The cold-start timeline of one vLLM replica, and every timer derived from it.

Ground floor: imports nothing of the project but its own graph scheduler. A start is a graph of
steps (components/facts/timeline_graph.py): the vLLM image pull, the weight copy by the staging
pod, the compile-cache download, loading, compiling, the API server and the load balancer, each
computed from a few assumptions with their sources. Steps that run at once share the node's
network and disks. The scenarios: a new node (weights from the Hub or the stack's S3 mirror, the
shared compile cache cold or warm) and a restart on a warm node. The timers (startup probe, vLLM's
engine-ready timeout, `progressDeadlineSeconds`, the Pulumi custom timeouts of the Deployment, the
drain and grace periods, the load balancer's deregistration delay) all come from here, and
`guards` states which phase each timer must outlast, so a test can prove the chain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from components.facts.timeline_assumptions import HEALTH_CHECK, Assumptions, HealthCheck
from components.facts.timeline_graph import Phase, Timeline, sequence
from components.facts.timeline_scenarios import (
    API,
    CACHE_DOWNLOAD,
    COMPILE,
    COMPILE_NODE,
    COMPILE_SHARED,
    DEFAULTS,
    DOWNLOAD,
    ENGINE_START,
    IMAGE_PULL,
    IMAGE_SOURCES,
    LB_READY,
    LOAD,
    LOAD_BALANCER,
    LOAD_CACHED,
    PHASE_ORDER,
    REGISTER,
    ROUTER,
    ROUTER_READY,
    ROUTER_SEES,
    ROUTER_START,
    ROUTING,
    SOURCES,
    STAGER,
    STAGER_POD,
    UNPACK,
    VLLM_POD,
    new_node,
    rollout,
    scenarios,
    warm_restart,
    worst,
)

# The scenarios and the assumptions are read through this module.
__all__ = [
    "API",
    "Assumptions",
    "CACHE_DOWNLOAD",
    "COMPILE",
    "COMPILE_NODE",
    "COMPILE_SHARED",
    "DEFAULTS",
    "DOWNLOAD",
    "ENGINE_START",
    "HEALTH_CHECK",
    "HealthCheck",
    "IMAGE_PULL",
    "IMAGE_SOURCES",
    "LB_READY",
    "LOAD",
    "LOAD_BALANCER",
    "LOAD_CACHED",
    "PHASE_ORDER",
    "Phase",
    "REGISTER",
    "ROUTER",
    "ROUTER_READY",
    "ROUTER_SEES",
    "ROUTER_START",
    "ROUTING",
    "rollout",
    "SOURCES",
    "STAGER",
    "STAGER_POD",
    "Timeline",
    "UNPACK",
    "VLLM_POD",
    "new_node",
    "scenarios",
    "warm_restart",
    "worst",
]

# The weights size (GB) is the caller's: the model catalogue (components/facts/catalog.py) has it per model.

# Every timer is at least this multiple of the phase it guards, rounded up to a whole minute:
# the assumptions are planning figures, not measurements of this account.
SAFETY = 1.5


def _pull_root_volume(a: Assumptions) -> Phase:
    """The weights-mirror Job's image pull: Docker Hub onto a node's gp3 root volume."""
    seconds = a.image_compressed_gb * 1000 / a.registry_mb_s + a.image_unpacked_gb * 1000 / a.root_volume_mb_s
    return Phase(
        IMAGE_PULL,
        math.ceil(seconds),
        f"{a.image_compressed_gb:g} GB at {a.registry_mb_s:g} MB/s + unpack {a.image_unpacked_gb:g} GB at {a.root_volume_mb_s:g} MB/s",
    )


def _minutes(seconds: float) -> int:
    """Seconds rounded up to a whole minute."""
    return math.ceil(seconds / 60) * 60


def _margin(seconds: float) -> int:
    return _minutes(seconds * SAFETY)


@dataclass(frozen=True)
class Timers:
    """Every timer of the start/stop chain, in seconds."""

    engine_ready_timeout: int  # VLLM_ENGINE_READY_TIMEOUT_S
    startup_probe_period: int
    startup_probe_failures: int
    progress_deadline: int  # Deployment progressDeadlineSeconds
    cold_start_alert: int  # VllmColdStartOverBudget: a start older than this is stuck
    create_timeout: int  # Pulumi custom timeout of the Deployment
    update_timeout: int
    delete_timeout: int
    deregistration_delay: int  # load balancer target group
    pre_stop: int  # preStop sleep: keep serving while the load balancer drains
    grace: int  # terminationGracePeriodSeconds

    @property
    def startup_budget(self) -> int:
        return self.startup_probe_period * self.startup_probe_failures


STARTUP_PROBE_PERIOD = 10
# What vLLM's front end waits for (VLLM_ENGINE_READY_TIMEOUT_S, vllm/v1/engine/core_client.py): from
# its processes starting to the engine core reporting ready.
ENGINE_READY = (ENGINE_START, LOAD, COMPILE)


def timers(replicas: int, weights_gb: float, a: Assumptions = DEFAULTS, source: str = "hub") -> Timers:
    """The timers for a Deployment of `replicas` replicas, each with its margin over its phase.

    With the S3 mirror the Deployment is created only after the mirror Job has filled it, so
    its pods copy from S3 (mirror_fill covers the Job)."""
    cold = worst(weights_gb, a, source)
    engine_ready = _margin(cold.seconds(*ENGINE_READY))
    startup_budget = engine_ready + _margin(cold.seconds(API))
    # Until vLLM's container starts (image pulled, weights staged), its startup probe, then the
    # load balancer's health checks and the readiness gate.
    progress = _margin(cold.phase(ENGINE_START).start) + startup_budget + _margin(cold.seconds(LB_READY))
    deregistration = math.ceil(a.stream_drain_s)
    pre_stop = deregistration + math.ceil(a.deregistration_propagation_s)
    grace = pre_stop + math.ceil(a.vllm_exit_s)
    return Timers(
        engine_ready_timeout=engine_ready,
        startup_probe_period=STARTUP_PROBE_PERIOD,
        startup_probe_failures=math.ceil(startup_budget / STARTUP_PROBE_PERIOD),
        progress_deadline=progress,
        # The alert fires when Kubernetes reports the rollout stuck: not earlier (a normal new-node
        # start would page), and not later (`pulumi up` would fail before anyone is told).
        cold_start_alert=progress,
        # Pulumi must not give up before Kubernetes reports the rollout stuck.
        create_timeout=progress + _minutes(grace),
        # maxUnavailable 1, no surge: replicas roll one after another, each stops, then cold-starts.
        update_timeout=replicas * (grace + progress),
        delete_timeout=_minutes(grace) + 300,
        deregistration_delay=deregistration,
        pre_stop=pre_stop,
        grace=grace,
    )


@dataclass(frozen=True)
class Guard:
    """A timer and the stretch of time it must outlast."""

    timer: str
    seconds: int
    guards: str
    needed: int

    @property
    def short(self) -> bool:
        return self.seconds < self.needed


def guards(t: Timers, replicas: int, weights_gb: float, a: Assumptions = DEFAULTS, source: str = "hub") -> list[Guard]:
    """Each timer of the chain against the phase it guards (new node: the longest start)."""
    cold = worst(weights_gb, a, source)
    drain = math.ceil(a.stream_drain_s)
    return [
        Guard(
            "VLLM_ENGINE_READY_TIMEOUT_S",
            t.engine_ready_timeout,
            "engine start + load + compile (weights already staged)",
            cold.seconds(*ENGINE_READY),
        ),
        Guard(
            "startup probe budget",
            t.startup_budget,
            "engine-ready timeout + API server start, so vLLM's own error shows first",
            t.engine_ready_timeout + cold.seconds(API),
        ),
        Guard("progressDeadlineSeconds", t.progress_deadline, "a new node's whole cold start", cold.total),
        Guard(
            "progressDeadlineSeconds",
            t.progress_deadline,
            "image pulled and weights staged + startup probe budget + load balancer health checks",
            cold.phase(ENGINE_START).start + t.startup_budget + cold.seconds(LB_READY),
        ),
        Guard("VllmColdStartOverBudget", t.cold_start_alert, "a new node's whole cold start", cold.total),
        Guard("Pulumi create timeout", t.create_timeout, "progressDeadlineSeconds", t.progress_deadline),
        Guard(
            "Pulumi update timeout",
            t.update_timeout,
            f"{replicas} replica(s) one after another: grace + progress deadline each",
            replicas * (t.grace + t.progress_deadline),
        ),
        Guard("Pulumi delete timeout", t.delete_timeout, "terminationGracePeriodSeconds", t.grace),
        Guard("deregistration delay", t.deregistration_delay, "a stream in flight", drain),
        Guard(
            "preStop sleep",
            t.pre_stop,
            "deregistration propagation + deregistration delay",
            math.ceil(a.deregistration_propagation_s) + t.deregistration_delay,
        ),
        Guard("terminationGracePeriodSeconds", t.grace, "preStop + vLLM exit", t.pre_stop + math.ceil(a.vllm_exit_s)),
    ]


SILENT = "queue + prefill, no token sent"


def silent_request(window_tokens: int, a: Assumptions = DEFAULTS) -> Phase:
    """The longest a request's connection carries no data: vLLM sends a stream's first token only
    after the prefill, so a full-window prompt waits for the prefills ahead of it and its own."""
    prefills = a.prefills_ahead + 1
    return Phase(
        SILENT,
        math.ceil(prefills * window_tokens / a.prefill_tokens_s),
        f"{prefills:g} x {window_tokens} tokens at {a.prefill_tokens_s:g} tokens/s",
    )


def idle_timeout_floor(window_tokens: int, a: Assumptions = DEFAULTS) -> int:
    """The shortest load balancer idle timeout that does not cut a silent request (with the margin)."""
    return _margin(silent_request(window_tokens, a).seconds)


FILL_HUB = "Hub -> S3 copy"
FILL_VERIFY = "read back + verify"


def mirror_fill(weights_gb: float, a: Assumptions = DEFAULTS) -> Timeline:
    """The weights-mirror Job, once per revision: pull the image, copy from the Hub, read every
    object back from S3 and check it against the Hub's listing."""
    return sequence(
        "mirror fill (once per revision)",
        (
            _pull_root_volume(a),
            Phase(FILL_HUB, math.ceil(weights_gb * 1000 / a.hub_mb_s), f"{weights_gb:g} GB at {a.hub_mb_s:g} MB/s"),
            Phase(FILL_VERIFY, math.ceil(weights_gb / a.s3_gb_s), f"{weights_gb:g} GB at {a.s3_gb_s:g} GB/s"),
        ),
    )


def job_timeout(weights_gb: float, a: Assumptions = DEFAULTS) -> int:
    """Pulumi's wait for the mirror Job (its default is 10 minutes)."""
    return _margin(mirror_fill(weights_gb, a).total)


def transfer_cost(weights_gb: float, a: Assumptions = DEFAULTS, source: str = "hub") -> float:
    """Dollars of data transfer for one new node's weights: NAT processing from the Hub, or
    S3 GET requests over the free gateway endpoint."""
    if source == "s3":
        requests = math.ceil(weights_gb * 1000 / a.s3_part_mb)
        return weights_gb * a.s3_gateway_usd_per_gb + requests * a.s3_get_usd_per_1000 / 1000
    return weights_gb * a.nat_usd_per_gb


def usd(amount: float) -> str:
    """Dollars, with the digits a fraction of a cent needs."""
    return f"${amount:.2f}" if amount >= 0.01 or amount == 0 else f"${amount:.4f}"


def duration(seconds: int) -> str:
    """`95` -> `1m35s`, `3600` -> `60m`."""
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s" if s else f"{m}m"
