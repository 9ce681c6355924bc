"""Stops a real `pulumi up` / `preview` before any resource while the stack is not ready for AWS.

The shipped stacks carry placeholders (documentation ranges, no certificate) so that they
render offline; `make plan` lists what to set. A prod stack serving a model whose licence
forbids commercial use stops here too, until the operator acknowledges the licence, and so does
a non-production stack that runs a moving branch's remote code without saying so: that is a
precondition of deploying, not a defect of the configuration, so the plan still renders
(printing the licence) and non-prod stacks may evaluate the model. Only the offline engine (ops/offline/engine.py)
may render such a stack: it runs the program in its own process under Pulumi's mocks and
marks the run with `offline_engine()`. A real run has no such mark, and there is no config
key or environment variable that could set it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from components.facts.catalog import MODEL_CATALOG
from components.serving import exposure as exposure_rules
from components.serving import profiles, supply_chain
from components.settings.schema import set_command
from components.settings.stack import PROJECT, Settings, SettingsError

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


def _commercial_model() -> str:
    return next(m.hub_id for m in MODEL_CATALOG.values() if m.license.commercial_use)


def license_problems(settings: Settings) -> list[exposure_rules.Problem]:
    """A prod stack may not serve a non-commercial model until the licence is acknowledged."""
    sv = settings.serving
    lic = sv.model_facts.license
    if lic.commercial_use or not settings.is_production or sv.accept_non_commercial_license:
        return []
    return [
        exposure_rules.Problem(
            "serving.model",
            sv.model,
            f"is licensed {lic.id}: commercial use needs the licensor's prior written authorisation ({lic.url}),"
            f" and stack {settings.stack} (environment {settings.environment}) is a production stack",
            f"read the licence, obtain the authorisation if this use is commercial, then acknowledge it: "
            f"{set_command('serving.acceptNonCommercialLicense', True)} (or choose a commercially licensed model, "
            f"e.g. {set_command('serving.model', _commercial_model())})",
        )
    ]


def zone_problems(settings: Settings) -> list[exposure_rules.Problem]:
    """Zones and subnet layout are decided once: looked up at every run, a changed answer (an
    instance type, a zone AWS adds or drops) would replace subnets and the GPU node group."""
    net, gpu = settings.network, settings.gpu_nodes
    if net.existing_vpc_id or (net.availability_zones and net.subnet_layout and gpu.availability_zones):
        return []
    return [
        exposure_rules.Problem(
            "network.availabilityZones",
            list(net.availability_zones),
            "with network.subnetLayout and gpuNodes.availabilityZones, is not recorded: each run would look the"
            " zones up, and a changed answer would move subnets (replacement) and the GPU node group",
            f"`python -m ops preflight --stack {settings.stack}` prints the `pulumi config set` commands that record"
            " them (for a deployed stack: the zones and layout its subnets already have)",
        )
    ]


def remote_code_problems(settings: Settings) -> list[exposure_rules.Problem]:
    """A non-production stack that runs the model repository's code (--trust-remote-code) from a
    branch or tag deploys only once it says so: whoever can push there runs code on its next node.
    (A production stack may not at all: the settings refuse it.)"""
    sv = settings.serving
    argv = profiles.vllm_argv(sv)
    if (
        settings.is_production
        or sv.allow_unpinned_remote_code
        or supply_chain.REMOTE_CODE_FLAG not in argv
        or (sv.revision and supply_chain.COMMIT_SHA.fullmatch(sv.revision))
    ):
        return []
    return [
        exposure_rules.Problem(
            "serving.revision",
            sv.revision,
            f"is not a 40-hex Hugging Face commit, and {supply_chain.REMOTE_CODE_FLAG} runs {sv.model}'s own code"
            " in the pod: whoever can push to that branch runs code next to the stack's credentials on its next node",
            f"pin a commit: pulumi config set --path 'serving.revision' <commit sha from"
            f" https://huggingface.co/{sv.model}/commits/main> (or, to follow the branch on purpose: "
            f"{set_command('serving.allowUnpinnedRemoteCode', True)})",
        )
    ]


def problems_before_deploy(settings: Settings) -> list[exposure_rules.Problem]:
    ep = settings.endpoint
    return (
        license_problems(settings)
        + zone_problems(settings)
        + remote_code_problems(settings)
        + exposure_rules.deploy_problems(
            ep.scheme,
            ep.source_ranges,
            ep.certificate_arn,
            ep.plain_http_accepted,
            settings.cluster.public_access_cidrs,
        )
    )


def stop_unless_ready(settings: Settings) -> None:
    """Raise with every fix when a real deploy would build an unreachable or plain-text endpoint."""
    if _offline_run:
        return
    found = problems_before_deploy(settings)
    if found:
        raise SettingsError(
            [f"{PROJECT}:{p.key} = {p.value!r} {p.rule}. Fix: {p.fix}" for p in found]
            + [
                "nothing was created: the stack is not ready for a real deploy; run the fixes above, then `pulumi up` again"
            ]
        )
