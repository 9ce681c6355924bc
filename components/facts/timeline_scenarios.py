"""The starts of one vLLM replica as graphs of steps: a new node (weights from the Hub or the S3
mirror, the shared compile cache cold or warm, the image from ECR or Docker Hub) and a warm restart.

Ground floor. What each step assumes the staging pod, the image repository, the compile cache and
the router do is stated in its basis; the figures are components/facts/timeline_assumptions.py.
"""

from __future__ import annotations

from components.facts.timeline_assumptions import HEALTH_CHECK, Assumptions, HealthCheck
from components.facts.timeline_graph import Step, Timeline, schedule

DEFAULTS = Assumptions()

SOURCES = ("hub", "s3")
IMAGE_SOURCES = ("ecr", "docker-hub")
ROUTING = ("direct", "router")

# Lanes: the rows of the Gantt chart.
VLLM_POD, STAGER_POD, LOAD_BALANCER, ROUTER = "vLLM pod", "staging pod", "load balancer", "router (system node)"

IMAGE_PULL = "image pull"
UNPACK = "image unpack"
STAGER = "staging pod start"
DOWNLOAD = "weight download"
CACHE_DOWNLOAD = "compile cache download"
ENGINE_START = "vLLM engine start"
LOAD = "load from NVMe"
LOAD_CACHED = "load from page cache"
COMPILE = "compile + CUDA graphs"
COMPILE_SHARED = "compile from shared cache"
COMPILE_NODE = "compile from node cache"
API = "API server start"
REGISTER = "target registration"
LB_READY = "ready in the load balancer"
ROUTER_START = "router pull + start"
ROUTER_READY = "router ready in the load balancer"
ROUTER_SEES = "router adds the replica"

# The order the plan's table and the Gantt chart list the phases in.
PHASE_ORDER = (
    IMAGE_PULL,
    UNPACK,
    STAGER,
    DOWNLOAD,
    CACHE_DOWNLOAD,
    ENGINE_START,
    LOAD,
    LOAD_CACHED,
    COMPILE,
    COMPILE_SHARED,
    COMPILE_NODE,
    API,
    ROUTER_START,
    REGISTER,
    ROUTER_READY,
    LB_READY,
    ROUTER_SEES,
)


def _image_steps(a: Assumptions, image_source: str) -> list[Step]:
    if image_source not in IMAGE_SOURCES:
        raise ValueError(f"image_source {image_source!r}: one of {IMAGE_SOURCES}")
    if image_source == "ecr":
        rate, where = (
            a.ecr_mb_s,
            f"from the stack's ECR repository, {a.parallel_layers:g} layers x {a.ecr_connection_mb_s:g} MB/s",
        )
    else:
        rate, where = a.registry_mb_s, "from Docker Hub through the NAT"
    unpacked = a.image_unpacked_gb * 1000
    return [
        Step(
            IMAGE_PULL,
            VLLM_POD,
            f"{a.image_compressed_gb:g} GB at {rate:g} MB/s {where}",
            mb=a.image_compressed_gb * 1000,
            mb_s=rate,
        ),
        Step(
            UNPACK,
            VLLM_POD,
            f"{a.image_unpacked_gb:g} GB at {a.unpack_mb_s:g} MB/s onto the RAID0",
            (IMAGE_PULL,),
            mb=unpacked,
            mb_s=a.unpack_mb_s,
        ),
    ]


def _download(a: Assumptions, weights_gb: float, source: str) -> Step:
    """The node stager's copy of the weights onto the NVMe, from the S3 mirror or the Hub."""
    if source not in SOURCES:
        raise ValueError(f"source {source!r}: one of {SOURCES}")
    if source == "s3":
        rate = a.s3_crt_mb_s
        basis = f"{weights_gb:g} GB at {a.s3_crt_gbit_s:g} Gbit/s from the S3 mirror (CRT, sha256 in the stream)"
    else:
        rate, basis = a.hub_mb_s, f"{weights_gb:g} GB at {a.hub_mb_s:g} MB/s from the Hub"
    return Step(DOWNLOAD, STAGER_POD, basis, (STAGER,), mb=weights_gb * 1000, mb_s=rate)


def _load(a: Assumptions, weights_gb: float, *, cached: bool) -> Step:
    """vLLM reads the weights: from the NVMe the first time after staging, from the page cache when
    the vLLM process that served on this node read them."""
    if cached:
        return Step(
            LOAD_CACHED,
            VLLM_POD,
            f"{weights_gb:g} GB at {a.page_cache_load_gb_s:g} GB/s, read by the vLLM process that served here",
            (ENGINE_START,),
            seconds=weights_gb / a.page_cache_load_gb_s,
        )
    return Step(
        LOAD,
        VLLM_POD,
        f"{weights_gb:g} GB at {a.nvme_load_gb_s:g} GB/s, first read since staging",
        (ENGINE_START,),
        seconds=weights_gb / a.nvme_load_gb_s,
    )


def _engine_start(a: Assumptions, after: tuple[str, ...] = ()) -> Step:
    """The vLLM container's process start, up to its workers loading weights."""
    return Step(
        ENGINE_START, VLLM_POD, f"{a.engine_start_s:g} s: processes, imports, NCCL", after, seconds=a.engine_start_s
    )


def _lb_steps(a: Assumptions, routing: str, ready: str, hc: HealthCheck) -> list[Step]:
    """The first answer through the load balancer once vLLM answers /health (step `ready`)."""
    checks = f"{hc.healthy} healthy checks every {hc.interval_s} s, the first up to one interval late"
    register = Step(
        REGISTER, LOAD_BALANCER, f"from the pod's IP; {a.target_registration_s:g} s", seconds=a.target_registration_s
    )
    if routing == "direct":
        return [
            register,
            Step(LB_READY, LOAD_BALANCER, checks + "; then the readiness gate", (REGISTER, ready), seconds=hc.ready_s),
        ]
    if routing != "router":
        raise ValueError(f"routing {routing!r}: one of {ROUTING}")
    pull = a.router_image_gb * 1000 / a.ecr_mb_s + a.router_start_s
    return [
        Step(
            ROUTER_START,
            ROUTER,
            f"{a.router_image_gb:g} GB at {a.ecr_mb_s:g} MB/s + {a.router_start_s:g} s start",
            seconds=pull,
        ),
        Step(
            REGISTER,
            LOAD_BALANCER,
            f"the router pod's IP; {a.target_registration_s:g} s",
            seconds=a.target_registration_s,
        ),
        Step(ROUTER_READY, LOAD_BALANCER, checks, (REGISTER, ROUTER_START), seconds=hc.ready_s),
        Step(
            ROUTER_SEES,
            ROUTER,
            "service discovery of the Ready vLLM pod",
            (ready, ROUTER_READY),
            seconds=a.router_discovery_s,
        ),
    ]


def new_node(
    weights_gb: float,
    a: Assumptions = DEFAULTS,
    source: str = "hub",
    *,
    compile_cache: bool = False,
    image_source: str = "ecr",
    routing: str = "direct",
    hc: HealthCheck = HEALTH_CHECK,
) -> Timeline:
    """A replica on a node that just joined: nothing on its disks.

    source: where the weights come from (`weights.source`): the Hub, or the stack's S3 mirror.
    compile_cache: a warm compile cache waits in the stack's bucket (a replica uploaded it).
    image_source: the vLLM image from the stack's ECR repository or from Docker Hub.
    The staging pod starts when the node joins, so its copy overlaps the vLLM image pull.
    """
    copy = _download(a, weights_gb, source)
    steps = [
        *_image_steps(a, image_source),
        Step(STAGER, STAGER_POD, f"{a.stager_start_s:g} s", seconds=a.stager_start_s),
        copy,
    ]
    staged = [UNPACK, DOWNLOAD]
    if compile_cache:
        steps.append(
            Step(
                CACHE_DOWNLOAD,
                STAGER_POD,
                f"{a.compile_cache_gb:g} GB at {a.s3_crt_gbit_s:g} Gbit/s, sha256 checked",
                (STAGER,),
                mb=a.compile_cache_gb * 1000,
                mb_s=a.s3_crt_mb_s,
            )
        )
        staged.append(CACHE_DOWNLOAD)
        compile_step = Step(
            COMPILE_SHARED,
            VLLM_POD,
            "graphs from the shared cache, CUDA graphs captured",
            (LOAD,),
            seconds=a.compile_warm_s,
        )
    else:
        compile_step = Step(COMPILE, VLLM_POD, "empty compile cache", (LOAD,), seconds=a.compile_cold_s)
    steps += [
        _engine_start(a, tuple(staged)),
        _load(a, weights_gb, cached=False),
        compile_step,
        Step(API, VLLM_POD, "after the engine is ready", (compile_step.name,), seconds=a.api_server_s),
        *_lb_steps(a, routing, API, hc),
    ]
    cache = "warm compile cache" if compile_cache else "cold compile cache"
    name = f"new node, {'Hub' if source == 'hub' else 'S3'}, {cache}"
    return schedule(name, steps, a.contention)


def warm_restart(
    weights_gb: float, a: Assumptions = DEFAULTS, *, routing: str = "direct", hc: HealthCheck = HEALTH_CHECK
) -> Timeline:
    """A replica restarting on a node that already holds the image, the weights and the compile cache.

    The vLLM process that served here read the weights, so they are in the node's page cache
    (the vLLM pod's memory limit holds them: tests/test_timeline_restart.py checks every model
    and profile)."""
    steps = [
        _engine_start(a),
        _load(a, weights_gb, cached=True),
        Step(
            COMPILE_NODE,
            VLLM_POD,
            "compile cache on the NVMe, CUDA graphs captured",
            (LOAD_CACHED,),
            seconds=a.compile_warm_s,
        ),
        Step(API, VLLM_POD, "after the engine is ready", (COMPILE_NODE,), seconds=a.api_server_s),
        *_lb_steps(a, routing, API, hc),
    ]
    return schedule("warm restart", steps, a.contention)


def rollout(
    weights_gb: float,
    a: Assumptions = DEFAULTS,
    source: str = "hub",
    *,
    new_image: bool,
    new_weights: bool,
    routing: str = "direct",
    hc: HealthCheck = HEALTH_CHECK,
) -> Timeline:
    """A replica replaced on its own node by a rolling update of the vLLM Deployment.

    What the update moved is fetched again: a new image is pulled, a new revision is staged by
    the node's stager (its DaemonSet changes with it). What it did not move is on the node: the
    image, and the weights in the page cache. Either move changes the compile-cache key, so the
    first replica of the update compiles from empty (the timers guard that case)."""
    if not (new_image or new_weights):
        return warm_restart(weights_gb, a, routing=routing, hc=hc)
    steps: list[Step] = [*_image_steps(a, "ecr")] if new_image else []
    staged: list[str] = [UNPACK] if new_image else []
    if new_weights:
        steps += [
            Step(STAGER, STAGER_POD, f"{a.stager_start_s:g} s", seconds=a.stager_start_s),
            _download(a, weights_gb, source),
        ]
        staged.append(DOWNLOAD)
    load = _load(a, weights_gb, cached=not new_weights)
    steps += [
        _engine_start(a, tuple(staged)),
        load,
        Step(COMPILE, VLLM_POD, "a new compile-cache key: empty", (load.name,), seconds=a.compile_cold_s),
        Step(API, VLLM_POD, "after the engine is ready", (COMPILE,), seconds=a.api_server_s),
        *_lb_steps(a, routing, API, hc),
    ]
    moved = " and ".join(w for w, m in (("new image", new_image), ("new weights", new_weights)) if m)
    return schedule(f"rolling update, {moved}", steps, a.contention)


def scenarios(weights_gb: float, a: Assumptions = DEFAULTS, *, routing: str = "direct") -> list[Timeline]:
    """The four starts the plan and its pictures show."""
    return [
        new_node(weights_gb, a, "hub", routing=routing),
        new_node(weights_gb, a, "s3", routing=routing),
        new_node(weights_gb, a, "s3", compile_cache=True, routing=routing),
        warm_restart(weights_gb, a, routing=routing),
    ]


def worst(weights_gb: float, a: Assumptions = DEFAULTS, source: str = "hub") -> Timeline:
    """The longest start a stack of this weight source sees: a new node, the compile cache cold
    (the first deploy, or a key that changed); the timers guard this one."""
    return new_node(weights_gb, a, source)
