"""The planning figures of the cold-start timeline, each with its source or labelled an assumption.

Ground floor: imports nothing of the project. Measure yours and adjust (docs/operations.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

SAGEMAKER_CACHING = "aws.amazon.com/blogs/machine-learning/introducing-container-caching-in-amazon-sagemaker-ai-for-faster-model-scaling"
VLLM_STARTUP_UX = "github.com/vllm-project/vllm/issues/19824, the maintainers' startup measurements"
EKS_AMI_LOCAL_DISKS = "amazon-eks-ami templates/al2023/runtime/bin/setup-local-disks (commit 81fec2e8)"


def _a(value: float, unit: str, source: str) -> float:
    return field(default=value, metadata={"unit": unit, "source": source})


@dataclass(frozen=True)
class Assumptions:
    """Planning figures for one replica's start."""

    image_compressed_gb: float = _a(
        12, "GB", "upper end of the vllm/vllm-openai CUDA images; check: docker manifest inspect <image>"
    )
    image_unpacked_gb: float = _a(30, "GB", "about 2.5x the compressed layers (CUDA, torch, vLLM wheels)")
    registry_mb_s: float = _a(100, "MB/s", "assumption: one containerd pull from Docker Hub through the NAT gateway")
    ecr_connection_mb_s: float = _a(
        85,
        "MB/s",
        "one ECR layer download: ECR serves layers from S3, about 85-90 MB/s per connection "
        "(S3 user guide, performance guidelines: one request per 85-90 MB/s)",
    )
    parallel_layers: float = _a(
        3, "layers", "containerd's CRI plugin downloads 3 layers at once (max_concurrent_downloads default)"
    )
    unpack_mb_s: float = _a(
        200,
        "MB/s",
        "assumption: gzip inflate of one layer on one core; containerd's store is on the instance-store RAID0 "
        f"(nodeadm localStorage RAID0 bind-mounts /var/lib/containerd and /var/lib/kubelet: {EKS_AMI_LOCAL_DISKS}), "
        "so the gp3 root volume no longer limits it",
    )
    root_volume_mb_s: float = _a(
        125,
        "MB/s",
        "gp3 baseline throughput; the launch template sets no extra throughput (EBS gp3 docs); the mirror Job's unpack",
    )
    contention: float = _a(
        168 / 77,
        "x",
        f"transfers at once on one node: SageMaker measured a weight download at 168 s while the image pulled, 77 s alone ({SAGEMAKER_CACHING})",
    )
    hub_mb_s: float = _a(
        125,
        "MB/s",
        "assumption: 1 Gbit/s from the Hugging Face Hub; a NAT gateway scales to 100 Gbit/s (VPC docs), "
        "the Hub and the path to it are the limit",
    )
    stager_start_s: float = _a(
        30, "s", "assumption: the staging pod's small image (Python, boto3[crt]) pulled in-region and started"
    )
    s3_crt_gbit_s: float = _a(
        100,
        "Gbit/s",
        "the staging pod's CRT target throughput (s3transfer 0.19.3 crt.py: 10 Gbit/s unless set); GPU instances "
        "drive hundreds of Gbit/s from S3 with the CRT (All Things Distributed, 'In S3 simplicity is table stakes', "
        "2025-03-14); p5.48xlarge: 3200 Gbit/s over 32 network cards, 100 each (EC2 p5 specs); sha256 hashed in the stream",
    )
    compile_cache_gb: float = _a(
        2,
        "GB",
        "assumption: vLLM's torch_compile_cache (Inductor/Triton artefacts under VLLM_CACHE_ROOT) plus the "
        "FlashInfer/DeepGEMM JIT kernels; check: du -sh $VLLM_CACHE_ROOT after a first start",
    )
    engine_start_s: float = _a(
        30,
        "s",
        "from the vLLM container's start to its workers loading: 19 s from `vllm serve` to the device initialising "
        "(process creation, config, imports; github.com/vllm-project/vllm/issues/15225); assumption: 11 s more for the 8 worker processes, "
        "started at once (vllm/v1/executor/multiproc_executor.py), and their NCCL groups",
    )
    nvme_load_gb_s: float = _a(
        1.0,
        "GB/s",
        "assumption: safetensors to GPU per replica from the instance-store RAID0 on a new node's first start; the "
        "staging pod wrote the files under its 32 GiB memory limit, so the page cache holds little of them "
        "(log: 'Loading weights took')",
    )
    page_cache_load_gb_s: float = _a(
        7.0,
        "GB/s",
        "a restart on a node that served: ~10 s to load Llama-70B-FP8 (70 GB) at TP=8 from the hot page cache "
        f"({VLLM_STARTUP_UX}); vLLM 0.32.0 maps the safetensors (weight_utils.py safetensors_weights_iterator, lazy), "
        "the last vLLM process read the same files, and the vLLM pod's memory limit holds them (workload.pod_resources)",
    )
    compile_cold_s: float = _a(
        600,
        "s",
        "assumption: torch.compile + CUDA graph capture with an empty VLLM_CACHE_ROOT "
        "(logs: 'Compiling a graph ... takes', 'Graph capturing finished in')",
    )
    compile_warm_s: float = _a(
        15 + 60 + 82 + 12,
        "s",
        "compile cache warm, every start: the compiled artefacts loaded (AOT by default with torch >= 2.10, "
        "vllm/envs.py use_aot_compile), 15 s ('torch.compile took 14.85 s in total' on a warm start, "
        "github.com/vllm-project/vllm/pull/46389); CUDA graphs captured again, 60 s (Llama-70B-FP8 at TP=8, "
        f"{VLLM_STARTUP_UX}); DeepGEMM warm-up (VLLM_DEEP_GEMM_WARMUP relax, every start) 82 s and profiling/KV "
        "cache 12 s (Qwen3-30B-A3B-FP8 on an H100, the boot ledger in github.com/vllm-project/vllm/issues/47456)",
    )
    api_server_s: float = _a(
        15,
        "s",
        "API server start after the engine reports ready: published vLLM logs show 'Starting vLLM API server' 1 s "
        "after 'init engine ... took' (github.com/run-ai/runai-model-streamer/issues/67) and 13 s with multimodal warm-ups "
        "(github.com/noonghunna/club-3090/issues/93); the tokenizer loads before, in the front end (vllm/v1/engine/async_llm.py)",
    )
    target_registration_s: float = _a(
        150,
        "s",
        "ALB target registration takes minutes (ELB docs): the earlier 180 s ready-in-the-load-balancer figure less "
        "its 3 checks at 10 s; it runs while vLLM loads, as the controller registers a pod before it is Ready "
        "(load balancer controller docs, pod readiness gate)",
    )
    router_image_gb: float = _a(0.5, "GB", "assumption: the router image (Python + the vllm-router wheel), compressed")
    router_start_s: float = _a(20, "s", "assumption: router process start and its first /health")
    router_discovery_s: float = _a(
        10, "s", "assumption: the router sees the vLLM pod Ready through its Kubernetes service discovery"
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
        "S3 in-region to one node, parallel client: awslabs ai-on-eks copied 1.42 TB in 906 s (about 1.6 GB/s); "
        "the mirror Job's read-back",
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

    @property
    def ecr_mb_s(self) -> float:
        return self.ecr_connection_mb_s * self.parallel_layers

    @property
    def s3_crt_mb_s(self) -> float:
        return self.s3_crt_gbit_s * 1000 / 8


@dataclass(frozen=True)
class HealthCheck:
    """The ALB target group's health check, chosen from the timeline.

    The wait for `healthy` checks lies on every start's critical path (after the API server is up,
    before the first answer), so the interval and the healthy count are the ALB's minimums (5 s,
    2; ELB target group health check limits). vLLM's /health is a cheap engine ping, so checking
    every 5 s costs nothing. The timeout stays under the interval, as the ALB requires. Three
    failures (15 s) take a dead replica out well before the 60 s the drain chain gives the ALB to
    stop sending to a leaving pod (deregistration_propagation_s), while one slow answer does not.
    """

    interval_s: int = 5
    timeout_s: int = 4
    healthy: int = 2
    unhealthy: int = 3

    @property
    def ready_s(self) -> int:
        """From /health answering to the target healthy: the first check may come one interval late."""
        return (self.healthy + 1) * self.interval_s

    @property
    def out_s(self) -> int:
        return self.unhealthy * self.interval_s


HEALTH_CHECK = HealthCheck()
