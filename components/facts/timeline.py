"""The cold-start timeline of one vLLM replica, and every timer derived from it.

Ground floor: imports nothing of the project. Each phase is computed from a few assumptions,
each with its source, for two starts: a new node (nothing cached; weights from the Hub or from
the stack's S3 mirror) and a restart on a warm node (image, weights and compile cache already
on the node). The timers (startup probe, vLLM's
engine-ready timeout, `progressDeadlineSeconds`, the Pulumi custom timeouts of the Deployment,
the drain and grace periods, the load balancer's deregistration delay) all come from here, and
`guards` states which phase each timer must outlast, so a test can prove the chain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# The weights size (GB) is the caller's: the model catalogue (components/facts/catalog.py) has it per model.

# Every timer is at least this multiple of the phase it guards, rounded up to a whole minute:
# the assumptions below are planning figures, not measurements of this account.
SAFETY = 1.5


def _a(value: float, unit: str, source: str) -> float:
    return field(default=value, metadata={"unit": unit, "source": source})


@dataclass(frozen=True)
class Assumptions:
    """Planning figures for one replica's start; measure yours and adjust (see docs/operations.md)."""

    image_compressed_gb: float = _a(
        12, "GB", "upper end of the vllm/vllm-openai CUDA images; check: docker manifest inspect <image>"
    )
    image_unpacked_gb: float = _a(30, "GB", "about 2.5x the compressed layers (CUDA, torch, vLLM wheels)")
    registry_mb_s: float = _a(100, "MB/s", "assumption: one containerd pull from Docker Hub through the NAT gateway")
    root_volume_mb_s: float = _a(
        125, "MB/s", "gp3 baseline throughput; the launch template sets no extra throughput (EBS gp3 docs)"
    )
    hub_mb_s: float = _a(
        125,
        "MB/s",
        "assumption: 1 Gbit/s from the Hugging Face Hub; a NAT gateway scales to 100 Gbit/s (VPC docs), "
        "the Hub and the path to it are the limit",
    )
    nvme_load_gb_s: float = _a(
        1.0,
        "GB/s",
        "assumption: safetensors to GPU per replica from the instance-store RAID0 (log: 'Loading weights took')",
    )
    compile_cold_s: float = _a(
        600,
        "s",
        "assumption: torch.compile + CUDA graph capture with an empty VLLM_CACHE_ROOT "
        "(logs: 'Compiling a graph ... takes', 'Graph capturing finished in')",
    )
    compile_warm_s: float = _a(
        180, "s", "assumption: compiled graphs loaded from VLLM_CACHE_ROOT on the NVMe, capture again"
    )
    api_server_s: float = _a(60, "s", "assumption: API server start after the engine reports ready (tokenizer, routes)")
    lb_ready_s: float = _a(
        180,
        "s",
        "ALB target registration takes minutes (ELB docs) + 3 healthy checks at 10 s "
        "(load balancer controller defaults); the pod's readiness gate waits for it",
    )
    stream_drain_s: float = _a(300, "s", "policy: a generation in flight may take 5 minutes to finish")
    deregistration_propagation_s: float = _a(
        60,
        "s",
        "assumption: endpoint removal -> controller -> ALB stops new connections (controller docs advise a preStop sleep)",
    )
    vllm_exit_s: float = _a(
        60, "s", "vLLM 0.32.0 aborts requests on SIGTERM (shutdown_timeout 0); engine and GPU memory release"
    )
    s3_gb_s: float = _a(
        1.6,
        "GB/s",
        "S3 in-region to one node, parallel client: awslabs ai-on-eks copied 1.42 TB in 906 s (about 1.6 GB/s)",
    )
    verify_gb_s: float = _a(
        1.0, "GB/s", "assumption: sha256 of the staged files from the NVMe, 16 files in parallel (init container)"
    )
    nat_usd_per_gb: float = _a(0.045, "$/GB", "NAT gateway data processing, us-east (VPC pricing)")
    s3_gateway_usd_per_gb: float = _a(0.0, "$/GB", "S3 gateway endpoint: no charge; S3 to EC2 in one region: free")
    s3_get_usd_per_1000: float = _a(0.0004, "$", "S3 Standard GET per 1,000 requests, us-east (S3 pricing)")
    s3_part_mb: float = _a(64, "MB", "ranged GET size of the staging client (components/weights/mirror_copy.py)")
    prefill_tokens_s: float = _a(
        2000,
        "tokens/s",
        "assumption: one replica prefilling a full window while it decodes others (chunked prefill); well under "
        "the FLOP bound of 4 H100s for 10B active parameters plus full attention over 196K tokens "
        "(log: 'Avg prompt throughput')",
    )
    prefills_ahead: float = _a(1, "requests", "assumption: one other full-window prefill ahead in vLLM's FIFO queue")


@dataclass(frozen=True)
class Phase:
    name: str
    seconds: int
    basis: str  # how the figure is computed from the assumptions


@dataclass(frozen=True)
class Timeline:
    start: str  # "new node" or "warm restart"
    phases: tuple[Phase, ...]

    @property
    def total(self) -> int:
        return sum(p.seconds for p in self.phases)

    def seconds(self, *names: str) -> int:
        return sum(p.seconds for p in self.phases if p.name in names)


SOURCES = ("hub", "s3")
IMAGE_PULL = "image pull"
DOWNLOAD = "weight download"
LOAD = "load from NVMe"
COMPILE = "compile + CUDA graphs"
API = "API server start"
LB_READY = "ready in the load balancer"


def _pull(a: Assumptions) -> Phase:
    seconds = a.image_compressed_gb * 1000 / a.registry_mb_s + a.image_unpacked_gb * 1000 / a.root_volume_mb_s
    return Phase(
        IMAGE_PULL,
        math.ceil(seconds),
        f"{a.image_compressed_gb:g} GB at {a.registry_mb_s:g} MB/s + unpack {a.image_unpacked_gb:g} GB at {a.root_volume_mb_s:g} MB/s",
    )


def _download(weights_gb: float, a: Assumptions, source: str) -> Phase:
    """The init container's copy: from the Hub through the NAT, or from the S3 mirror (verified)."""
    if source == "s3":
        seconds = weights_gb / a.s3_gb_s + weights_gb / a.verify_gb_s
        basis = f"{weights_gb:g} GB at {a.s3_gb_s:g} GB/s from the S3 mirror + sha256 at {a.verify_gb_s:g} GB/s"
        return Phase(DOWNLOAD, math.ceil(seconds), basis)
    return Phase(
        DOWNLOAD, math.ceil(weights_gb * 1000 / a.hub_mb_s), f"{weights_gb:g} GB at {a.hub_mb_s:g} MB/s from the Hub"
    )


def new_node(weights_gb: float, a: Assumptions = Assumptions(), source: str = "hub") -> Timeline:
    """A replica on a node that has nothing cached: everything is fetched and compiled.

    source: where the weights come from (`weights.source`): the Hub, or the stack's S3 mirror.
    """
    return Timeline(
        "new node",
        (
            _pull(a),
            _download(weights_gb, a, source),
            Phase(LOAD, math.ceil(weights_gb / a.nvme_load_gb_s), f"{weights_gb:g} GB at {a.nvme_load_gb_s:g} GB/s"),
            Phase(COMPILE, math.ceil(a.compile_cold_s), "empty compile cache"),
            Phase(API, math.ceil(a.api_server_s), "after the engine is ready"),
            Phase(LB_READY, math.ceil(a.lb_ready_s), "target registered and healthy"),
        ),
    )


def warm_restart(weights_gb: float, a: Assumptions = Assumptions()) -> Timeline:
    """A replica restarting on a node that already holds the image, the weights and the compile cache."""
    return Timeline(
        "warm restart",
        (
            Phase(IMAGE_PULL, 0, "image present (IfNotPresent)"),
            Phase(DOWNLOAD, 0, "weights staged: the init container exits at once"),
            Phase(LOAD, math.ceil(weights_gb / a.nvme_load_gb_s), f"{weights_gb:g} GB at {a.nvme_load_gb_s:g} GB/s"),
            Phase(COMPILE, math.ceil(a.compile_warm_s), "compile cache on the NVMe"),
            Phase(API, math.ceil(a.api_server_s), "after the engine is ready"),
            Phase(LB_READY, math.ceil(a.lb_ready_s), "target registered and healthy"),
        ),
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


def timers(replicas: int, weights_gb: float, a: Assumptions = Assumptions(), source: str = "hub") -> Timers:
    """The timers for a Deployment of `replicas` replicas, each with its margin over its phase.

    With the S3 mirror the Deployment is created only after the mirror Job has filled it, so
    its pods copy from S3 (mirror_fill covers the Job)."""
    cold = new_node(weights_gb, a, source)
    engine_ready = _margin(cold.seconds(LOAD, COMPILE))
    startup_budget = engine_ready + _margin(cold.seconds(API))
    progress = _margin(cold.seconds(IMAGE_PULL, DOWNLOAD)) + startup_budget + _margin(cold.seconds(LB_READY))
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


def guards(
    t: Timers, replicas: int, weights_gb: float, a: Assumptions = Assumptions(), source: str = "hub"
) -> list[Guard]:
    """Each timer of the chain against the phase it guards (new node: the longest start)."""
    cold = new_node(weights_gb, a, source)
    drain = math.ceil(a.stream_drain_s)
    return [
        Guard(
            "VLLM_ENGINE_READY_TIMEOUT_S",
            t.engine_ready_timeout,
            "load + compile (weights already staged)",
            cold.seconds(LOAD, COMPILE),
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
            "image pull + download + startup probe budget + load balancer readiness",
            cold.seconds(IMAGE_PULL, DOWNLOAD, LB_READY) + t.startup_budget,
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


def silent_request(window_tokens: int, a: Assumptions = Assumptions()) -> Phase:
    """The longest a request's connection carries no data: vLLM sends a stream's first token only
    after the prefill, so a full-window prompt waits for the prefills ahead of it and its own."""
    prefills = a.prefills_ahead + 1
    return Phase(
        SILENT,
        math.ceil(prefills * window_tokens / a.prefill_tokens_s),
        f"{prefills:g} x {window_tokens} tokens at {a.prefill_tokens_s:g} tokens/s",
    )


def idle_timeout_floor(window_tokens: int, a: Assumptions = Assumptions()) -> int:
    """The shortest load balancer idle timeout that does not cut a silent request (with the margin)."""
    return _margin(silent_request(window_tokens, a).seconds)


FILL_HUB = "Hub -> S3 copy"
FILL_VERIFY = "read back + verify"


def mirror_fill(weights_gb: float, a: Assumptions = Assumptions()) -> Timeline:
    """The weights-mirror Job, once per revision: pull the image, copy from the Hub, read every
    object back from S3 and check it against the Hub's listing."""
    return Timeline(
        "mirror fill (once per revision)",
        (
            _pull(a),
            Phase(FILL_HUB, math.ceil(weights_gb * 1000 / a.hub_mb_s), f"{weights_gb:g} GB at {a.hub_mb_s:g} MB/s"),
            Phase(FILL_VERIFY, math.ceil(weights_gb / a.s3_gb_s), f"{weights_gb:g} GB at {a.s3_gb_s:g} GB/s"),
        ),
    )


def job_timeout(weights_gb: float, a: Assumptions = Assumptions()) -> int:
    """Pulumi's wait for the mirror Job (its default is 10 minutes)."""
    return _margin(mirror_fill(weights_gb, a).total)


def transfer_cost(weights_gb: float, a: Assumptions = Assumptions(), source: str = "hub") -> float:
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
