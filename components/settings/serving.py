"""`serving.*`: what vLLM serves and how: the profile, the model and its revision, the flags the
settings own, and the image tag. The flags themselves are built by components/serving/profiles.py."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import field_validator
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticCustomError

from components.facts import versions
from components.facts.catalog import (
    KV_CACHE_DTYPES,
    MAX_CONTEXT_TOKENS,
    MODEL_CATALOG,
    MODELS,
    PROFILES,
    REASONING_PARSERS,
    Model,
)
from components.settings.schema import SECTION, Bool, Float, Int, Str, StrList, closed, matches, one_of, rule


@dataclass(frozen=True, config=SECTION)
class ServingSettings:
    profile: Annotated[Str, one_of(PROFILES)] = rule("tp8-ep", closed("a profile", PROFILES))
    model: Annotated[Str, one_of(MODELS)] = rule(MODELS[0], closed("a supported model", MODELS))
    revision: Annotated[Str, matches(r"^[0-9a-f]{40}$|^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")] | None = rule(
        None, "must be a Hugging Face commit sha, branch or tag", "<40-hex commit sha>"
    )
    served_model_name: Annotated[Str, matches(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")] | None = rule(
        None, "must be 1-64 characters of letters, digits, '.', '_' or '-'", validate_default=True
    )
    # unset: the model's default (components/facts/catalog.py)
    reasoning_parser: Annotated[Str, one_of(REASONING_PARSERS)] | None = rule(
        None, closed("a MiniMax reasoning parser", REASONING_PARSERS), REASONING_PARSERS[0], validate_default=True
    )
    tensor_parallel_size: Int | None = rule(None, "must be an integer", validate_default=True)
    replicas: Int = rule(1, "must be an integer from 1 to 64", ge=1, le=64)
    spread_across_nodes: Bool = rule(False, "must be true or false")
    max_model_len: Int = rule(
        MAX_CONTEXT_TOKENS,
        f"must be from 1024 to {MAX_CONTEXT_TOKENS} tokens (the model's context window)",
        ge=1024,
        le=MAX_CONTEXT_TOKENS,
    )
    gpu_memory_utilization: Float = rule(0.90, "must be a fraction in (0, 1]", gt=0, le=1)
    piecewise_cudagraph: Bool = rule(False, "must be true or false")
    # --kv-cache-dtype for every profile: fp8 halves the KV bytes per token (opt-in, see docs/operations.md).
    kv_cache_dtype: Annotated[Str, one_of(KV_CACHE_DTYPES)] = rule("auto", closed("a KV-cache dtype", KV_CACHE_DTYPES))
    # --max-num-queued-reqs: the requests one replica holds, waiting and running; vLLM answers any
    # request beyond them with 503 at once instead of queueing it without end. 0: no cap (vLLM's own
    # default; its 0 would refuse every request). Why 512: docs/scaling.md, "Admission cap".
    max_queued_requests: Int = rule(
        512, "must be 0 (no cap) or the requests one replica may hold, from 1 to 100000", ge=0, le=100_000
    )
    # A prod stack serving a model whose licence forbids commercial use stops at `pulumi up` until this is true.
    accept_non_commercial_license: Bool = rule(False, "must be true or false")
    # A non-production stack that follows a branch or tag of the model repository while running its
    # code (--trust-remote-code) must say so: whoever can push there runs code in the pod.
    allow_unpinned_remote_code: Bool = rule(False, "must be true or false")
    extra_args: StrList = rule((), "must be a list of strings", ["--max-num-seqs=64"])
    image_tag: Annotated[Str, matches(r"^v\d+\.\d+\.\d+(\.post\d+)?$")] = rule(
        versions.VLLM_IMAGE.split(":", 1)[1],
        "must be a pinned vLLM release tag such as v0.32.0 (never 'latest', 'nightly' or a moving tag)",
    )

    @field_validator("served_model_name")
    @classmethod
    def _name_follows_model(cls, value: str | None, info: Any) -> str:
        return value or info.data.get("model", MODELS[0]).split("/")[-1].lower()

    @field_validator("reasoning_parser")
    @classmethod
    def _parser_follows_model(cls, value: str | None, info: Any) -> str:
        return value or MODEL_CATALOG[info.data.get("model", MODELS[0])].reasoning_parser

    @field_validator("tensor_parallel_size")
    @classmethod
    def _tp_divides_the_profile(cls, value: int | None, info: Any) -> int:
        name = info.data.get("profile", "tp8-ep")
        profile = PROFILES[name]
        if value is None:
            return profile.tensor_parallel_size
        gpus = profile.gpus_per_replica
        if value not in (1, 2, 4, 8) or value > gpus or gpus % value:
            raise PydanticCustomError(
                "rule",
                f"must divide the {name} profile's {gpus} GPUs per replica (the rest run as data-parallel ranks)",
                {"example": profile.tensor_parallel_size},
            )
        return value

    @property
    def gpus_per_replica(self) -> int:
        return PROFILES[self.profile].gpus_per_replica

    @property
    def admission_cap(self) -> int | None:
        """Requests one replica holds before vLLM refuses more (waiting + running), or None: no cap."""
        return self.max_queued_requests or None

    @property
    def model_facts(self) -> Model:
        return MODEL_CATALOG[self.model]

    @property
    def image(self) -> str:
        return f"{versions.VLLM_IMAGE.split(':', 1)[0]}:{self.image_tag}"
