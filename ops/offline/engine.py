"""The offline engine: the real Pulumi program, run under Pulumi's mocks with a stack's config.

No AWS credentials and no Pulumi CLI are needed. `make plan` and the tests both use
`render`; there is no second way to run the program offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import runpy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from components.facts.catalog import BY_ZONE
from components.platform import config, deploy_gate
from components.settings.stack import REQUIRED_SECRETS
from ops.offline import mocks as offline_mocks
from ops.offline.mocks import OfflineMocks

PROGRAM = Path(__file__).resolve().parents[2] / "__main__.py"
# Stand-ins for `pulumi config set --secret` values, so the offline run never needs the real ones.
# Used for the required secrets and for those the stack file holds (as `secure:` values).
PLACEHOLDER_SECRETS = {
    "apiKey": "offline-placeholder-api-key-never-deployed",  # long enough for the API key rule
    "hfToken": "offline-placeholder-hf-token",
}


@dataclass(frozen=True)
class Resource:
    """One registered resource: what the program asked the engine to create."""

    urn: str
    id: str
    type: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    parent: str
    provider: str
    dependencies: tuple[str, ...]
    options: dict[str, Any]
    secret_paths: frozenset[str]  # input paths the engine received as Pulumi secrets


@dataclass
class Rendering:
    stack: str
    resources: list[Resource]
    outputs: dict[str, Any]
    secret_outputs: frozenset[str]
    secrets: dict[str, str] = field(default_factory=dict)
    invented: dict[str, str] = field(default_factory=dict)  # mock token -> who assigns the real value

    def of_type(self, type_token: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str) -> Resource:
        found = self.of_type(type_token)
        if len(found) != 1:
            raise AssertionError(f"expected one {type_token}, found {len(found)}: {[r.name for r in found]}")
        return found[0]

    def named(self, type_token: str, name: str) -> Resource:
        """The one object of this type with this metadata.name (the vLLM and router Deployments
        are both Deployments of the namespace)."""
        found = [r for r in self.of_type(type_token) if (r.inputs.get("metadata") or {}).get("name") == name]
        if len(found) != 1:
            raise AssertionError(f"expected one {type_token} named {name}, found {len(found)}")
        return found[0]

    def vllm_deployment(self) -> Resource:
        from components.serving import workload

        return self.named("kubernetes:apps/v1:Deployment", workload.APP)

    def by_urn(self, urn: str) -> Resource:
        return next(r for r in self.resources if r.urn == urn)

    def kubernetes_objects(self) -> list[Resource]:
        """Plain Kubernetes objects (not Helm releases, not providers)."""
        return [r for r in self.resources if r.type.startswith("kubernetes:") and "apiVersion" in r.inputs]


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    """MockMonitor that also keeps parent, provider, dependencies and options of each resource."""

    def __init__(self, mocks: pulumi.runtime.Mocks):
        super().__init__(mocks)
        self.requests: dict[str, Any] = {}

    def RegisterResource(self, request):  # noqa: N802 (gRPC method name)
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.requests[response.urn] = request
        return response


def stack_config(
    stack: str,
    overrides: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str | None] | None = None,
    stacks_dir: Path | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """A stack file's config with overrides applied, and the secret values to use."""
    values = config.read_stack_file(stack, stacks_dir)
    for key, value in (overrides or {}).items():
        full = key if ":" in key else f"{config.PROJECT}:{key}"
        if value is None:
            values.pop(full, None)
        else:
            values[full] = value
    present = config.secrets_set_in(values) | set(REQUIRED_SECRETS)
    chosen: dict[str, str | None] = {k: v for k, v in PLACEHOLDER_SECRETS.items() if k in present}
    chosen.update(secrets or {})
    return values, {k: v for k, v in chosen.items() if v is not None}


def zones_recorded(stack: str, layout: str = BY_ZONE, stacks_dir: Path | None = None) -> dict[str, Any]:
    """Overrides that record a stack's zones as preflight would for a new stack in the offline
    account (the zones the mocks offer the GPU type in): the stack as it is once deployable."""
    values = config.read_stack_file(stack, stacks_dir)
    region = str(values.get("aws:region") or OfflineMocks.region)
    zones = [f"{region}{z}" for z in offline_mocks.GPU_OFFERING_ZONE_SUFFIXES]
    network = dict(values.get(f"{config.PROJECT}:network") or {})
    gpu = dict(values.get(f"{config.PROJECT}:gpuNodes") or {})
    return {
        "network": {**network, "availabilityZones": zones, "subnetLayout": layout},
        "gpuNodes": {**gpu, "availabilityZones": gpu.get("availabilityZones") or zones},
    }


def render(
    stack: str,
    overrides: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str | None] | None = None,
    stacks_dir: Path | None = None,
    *,
    as_deploy: bool = False,
) -> Rendering:
    """Run the program for `stack` under mocks and return everything it registered.

    overrides: config keys (`serving` or `aws:region`) to replace, None to remove.
    secrets: secret values by key (None removes one); otherwise placeholders for the required
    secrets and those the stack file holds, so optional ones appear only when set.
    stacks_dir: read Pulumi.<stack>.yaml from this folder instead of stacks/.
    as_deploy: run without the offline mark, as `pulumi up` would (tests of the deploy gate).
    """
    values, secret_values = stack_config(stack, overrides, secrets, stacks_dir)
    flat = {
        k: v if isinstance(v, str) else json.dumps(v)
        for k, v in values.items()
        if not isinstance(v, Mapping) or "secure" not in v
    }
    for key, value in secret_values.items():
        flat[f"{config.PROJECT}:{key}"] = value
    pulumi.runtime.set_all_config(flat, secret_keys=[f"{config.PROJECT}:{k}" for k in secret_values])

    mocks = OfflineMocks(str(values.get("aws:region") or ""))
    monitor = _RecordingMonitor(mocks)
    _ensure_event_loop()
    pulumi_settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project=config.PROJECT, stack=stack, preview=False, monitor=monitor)
    root = pulumi_settings.get_root_resource()
    pulumi_settings.SETTINGS.rpc_manager.clear()
    mark = contextlib.nullcontext() if as_deploy else deploy_gate.offline_engine()
    with mark:
        _sync_await(run_pulumi_func(lambda: runpy.run_path(str(PROGRAM), run_name="__main__")))

    outputs, secret_outputs = _resolve_outputs(root.outputs)
    resources = []
    # Sorted: the SDK registers resources from a thread pool as their inputs resolve, so the
    # monitor's order changes from run to run.
    for urn, registration in sorted(monitor.get_registered_resources().items()):
        request = monitor.requests.get(urn)
        if request is None:
            continue
        secret_paths: set[str] = set()
        inputs = _unwrap_secrets(pulumi.runtime.rpc.deserialize_properties(request.object), "", secret_paths)
        resources.append(
            Resource(
                urn=urn,
                id=registration.id,
                type=request.type,
                name=request.name,
                inputs=inputs,
                secret_paths=frozenset(secret_paths),
                outputs=dict(registration.state),
                parent=request.parent,
                provider=request.provider,
                dependencies=tuple(request.dependencies),
                options={
                    "protect": request.protect,
                    "retainOnDelete": request.retainOnDelete,
                    "deleteBeforeReplace": request.deleteBeforeReplace,
                    "deletedWith": request.deletedWith,
                    "ignoreChanges": list(request.ignoreChanges),
                    "customTimeouts": _timeouts(request),
                    "import": request.importId,
                },
            )
        )
    return Rendering(stack, resources, outputs, frozenset(secret_outputs), secret_values, dict(offline_mocks.INVENTED))


def _timeouts(request: Any) -> dict[str, str]:
    """The resource's custom timeouts as Pulumi received them (`90m`), only those that are set."""
    if not request.HasField("customTimeouts"):
        return {}
    t = request.customTimeouts
    return {k: v for k, v in (("create", t.create), ("update", t.update), ("delete", t.delete)) if v}


def _ensure_event_loop() -> None:
    """Pulumi's SDK runs the program on the thread's current event loop; code that ran
    `asyncio.run()` before (a test, a tool) leaves none set, and the SDK would fail to start."""
    try:
        loop = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        loop = None
    if loop is None or loop.is_closed():
        asyncio.set_event_loop(asyncio.new_event_loop())


# How the Pulumi wire format marks a secret value.
_SECRET_SIG = ("4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270")


def _unwrap_secrets(value: Any, path: str, found: set[str]) -> Any:
    """Plain inputs, with the dotted path of every secret recorded in `found`."""
    if isinstance(value, dict):
        if value.get(_SECRET_SIG[0]) == _SECRET_SIG[1]:
            found.add(path)
            return _unwrap_secrets(value.get("value"), path, found)
        return {k: _unwrap_secrets(v, f"{path}.{k}" if path else k, found) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap_secrets(v, f"{path}[{i}]", found) for i, v in enumerate(value)]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the wire format carries every number as a double
    return value


def _resolve_outputs(raw: Mapping[str, Any]) -> tuple[dict[str, Any], set[str]]:
    async def resolve() -> tuple[dict[str, Any], set[str]]:
        values, secret = {}, set()
        for key, value in raw.items():
            out = pulumi.Output.from_input(value)
            values[key] = await out.future()
            if await out.is_secret():
                secret.add(key)
        return values, secret

    return _sync_await(resolve())
