"""Runs the pinned vLLM release's own `vllm serve` parser and config classes on our argv.

Nothing here needs a GPU, a model download or the network: the argv is parsed exactly as
`vllm serve` parses it, turned into engine arguments, and the configs that can be built
without the model's config.json (parallel, cache, compilation) are constructed. vLLM
missing is a failure, never a skip: a flag the release rejects would crash-loop the pod.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
from dataclasses import dataclass
from typing import Any
from unittest import mock

import pytest

from components.facts import versions


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "vllm: checks against the pinned vLLM release's own parser and configs (needs vllm installed; CPU only)",
    )


class VllmRejected(Exception):
    """vLLM refused the argv; the message is vLLM's own."""


@dataclass(frozen=True)
class Checked:
    """What the pinned release made of one argv."""

    namespace: argparse.Namespace
    engine_args: Any  # vllm.engine.arg_utils.AsyncEngineArgs
    parallel_config: Any  # vllm.config.ParallelConfig
    cache_config: Any  # vllm.config.CacheConfig
    tool_parser: type | None
    reasoning_parser: type | None


class VllmCli:
    """The `vllm serve` parser of the installed release, built once per session."""

    def __init__(self) -> None:
        import vllm
        import vllm.entrypoints.cli.serve as serve
        from vllm.config import CacheConfig, ParallelConfig
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.reasoning import ReasoningParserManager
        from vllm.tool_parsers import ToolParserManager
        from vllm.utils.argparse_utils import FlexibleArgumentParser

        self.version = vllm.__version__
        # Without a GPU the platform is "unspecified" and DeviceConfig refuses to build;
        # `vllm bench` falls back to the CPU platform the same way. Flag parsing and the
        # configs checked here do not depend on the device.
        from vllm import platforms

        if platforms.current_platform.is_unspecified():
            from vllm.platforms.cpu import CpuPlatform

            platforms.current_platform = CpuPlatform()
        # Built the way `vllm` (vllm/entrypoints/cli/main.py) builds it.
        root = FlexibleArgumentParser(prog="vllm")
        subparsers = root.add_subparsers(required=False, dest="subparser")
        self.serve = serve.cmd_init()[0]
        self.serve.subparser_init(subparsers)
        self.parser = root
        self.engine_args_cls = AsyncEngineArgs
        self.parallel_config_cls = ParallelConfig
        self.cache_config_cls = CacheConfig
        self.tool_parsers = ToolParserManager
        self.reasoning_parsers = ReasoningParserManager
        self.check = functools.lru_cache(maxsize=None)(self._check)

    def parse(self, argv: tuple[str, ...]) -> argparse.Namespace:
        """`vllm serve ...` -> the parsed namespace, or VllmRejected with argparse's message."""
        if tuple(argv[:2]) != ("vllm", "serve"):
            raise ValueError(f"not a `vllm serve` command line: {argv[:2]}")
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                ns = self.parser.parse_args(list(argv[1:]))
        except SystemExit:
            raise VllmRejected(err.getvalue().strip()) from None
        try:
            self.serve.validate(ns)
        except (TypeError, ValueError) as exc:
            raise VllmRejected(str(exc)) from None
        if ns.model_tag is not None:  # ServeSubcommand.cmd does the same
            ns.model = ns.model_tag
        return ns

    def _check(self, argv: tuple[str, ...]) -> Checked:
        import huggingface_hub.constants

        ns = self.parse(argv)
        try:
            # In HF offline mode EngineArgs.__post_init__ resolves the model id to a local
            # snapshot (get_model_path); online it leaves the id alone and touches nothing.
            with mock.patch.object(huggingface_hub.constants, "HF_HUB_OFFLINE", False):
                ea = self.engine_args_cls.from_cli_args(ns)
            parallel = self.parallel_config_cls(
                tensor_parallel_size=ea.tensor_parallel_size,
                data_parallel_size=ea.data_parallel_size,
                enable_expert_parallel=ea.enable_expert_parallel,
                is_moe_model=True,
            )
            cache = self.cache_config_cls(
                gpu_memory_utilization=ea.gpu_memory_utilization, cache_dtype=ea.kv_cache_dtype
            )
            tool = self.tool_parsers.get_tool_parser(ns.tool_call_parser) if ns.tool_call_parser else None
            reasoning = (
                self.reasoning_parsers.get_reasoning_parser(ns.reasoning_parser) if ns.reasoning_parser else None
            )
        except Exception as exc:  # pydantic ValidationError, ValueError, KeyError: all are rejections
            raise VllmRejected(f"{type(exc).__name__}: {exc}") from None
        return Checked(ns, ea, parallel, cache, tool, reasoning)

    def accepted(self, argv: list[str] | tuple[str, ...]) -> Checked:
        """Checked argv, or the test fails with vLLM's own message."""
        try:
            return self.check(tuple(argv))
        except VllmRejected as exc:
            pytest.fail(f"vLLM {self.version} rejects `{' '.join(argv)}`:\n{exc}", pytrace=False)

    def rejection(self, argv: list[str] | tuple[str, ...]) -> str:
        """vLLM's message for an argv it must reject; fails the test if it is accepted."""
        try:
            self.check(tuple(argv))
        except VllmRejected as exc:
            return str(exc)
        pytest.fail(f"vLLM {self.version} accepted `{' '.join(argv)}`, expected a rejection", pytrace=False)


@pytest.fixture(scope="session")
def vllm_cli() -> VllmCli:
    try:
        return VllmCli()
    except ImportError as exc:
        pytest.fail(
            f"vLLM is not importable ({exc}); these checks must run, never skip. "
            f"Install the pinned release: pip install vllm=={versions.VLLM_RELEASE}",
            pytrace=False,
        )
