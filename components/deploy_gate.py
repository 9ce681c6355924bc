"""Stops a real `pulumi up` / `preview` before any resource while the stack is not ready for AWS.

The shipped stacks carry placeholders (documentation ranges, no certificate) so that they
render offline; `make plan` lists what to set. Only the offline engine (ops/offline.py)
may render such a stack: it runs the program in its own process under Pulumi's mocks and
marks the run with `offline_engine()`. A real run has no such mark, and there is no config
key or environment variable that could set it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from components import exposure_rules
from components.settings import PROJECT, Settings, SettingsError

_offline_run = False


@contextmanager
def offline_engine() -> Iterator[None]:
    """Marks the program run inside this block as the offline rendering."""
    global _offline_run
    _offline_run = True
    try:
        yield
    finally:
        _offline_run = False


def is_offline_run() -> bool:
    return _offline_run


def problems_before_deploy(settings: Settings) -> list[exposure_rules.Problem]:
    ep = settings.endpoint
    return exposure_rules.deploy_problems(
        ep.scheme,
        ep.source_ranges,
        ep.certificate_arn,
        ep.insecure_allow_plain_http_on_internet,
        settings.cluster.public_access_cidrs,
    )


def stop_unless_ready(settings: Settings) -> None:
    """Raise with every fix when a real deploy would build an unreachable or plain-text endpoint."""
    if _offline_run:
        return
    found = problems_before_deploy(settings)
    if found:
        raise SettingsError(
            [f"{PROJECT}:{p.key} = {p.value!r} {p.rule}. Fix: {p.fix}" for p in found]
            + ["nothing was created: the stack still carries placeholders; run the fixes above, then `pulumi up` again"]
        )
