"""Writes components/facts/data/vllm-serve-flags.json: every long flag of the pinned `vllm serve`.

The settings refuse any `serving.extraArgs` flag not in that list (argparse would otherwise
accept abbreviations). Run after a vLLM bump; tests/vllm/test_serve_flag_list.py fails until then:

    VLLM_TARGET_DEVICE=cpu python -m tests.vllm.generate_serve_flags
"""

from __future__ import annotations

import argparse
import json

from components.serving import exposure as exposure_rules
from tests.vllm.conftest import VllmCli


def serve_flags(cli: VllmCli) -> list[str]:
    """Sorted long option strings of the `serve` subcommand, as `vllm` builds it."""
    subparsers = next(a for a in cli.parser._actions if isinstance(a, argparse._SubParsersAction))
    serve = subparsers.choices["serve"]
    return sorted({o for a in serve._actions for o in a.option_strings if o.startswith("--")})


def document(cli: VllmCli) -> dict:
    return {"vllm": cli.version, "flags": serve_flags(cli)}


def main() -> None:
    exposure_rules.VLLM_FLAGS_FILE.write_text(json.dumps(document(VllmCli()), indent=1) + "\n")
    print(f"wrote {exposure_rules.VLLM_FLAGS_FILE}")


if __name__ == "__main__":
    main()
