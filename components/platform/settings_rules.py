"""Rules between settings, checked once every setting passed the schema.

Each problem names the key, the value, the rule and the fix, like the schema's own messages.
"""

from __future__ import annotations

import re
from typing import Any

from components.aws import reservations
from components.facts import timeline
from components.facts.catalog import OWNED_FLAGS, SECRET_FLAGS, flag_name
from components.platform import arn_rules
from components.scaling import rules as scaling_rules
from components.serving import exposure as exposure_rules
from components.serving import profiles, supply_chain
from components.settings.schema import set_command
from components.settings.stack import PROJECT, Settings


def _fail(key: str, value: Any, rule_text: str, fix: str) -> str:
    return f"{PROJECT}:{key} = {value!r} {rule_text}. Fix: {fix}"


def check(st: Settings) -> list[str]:
    """Rules that involve more than one setting, or each item of a list."""
    g, sv, net = st.gpu_nodes, st.serving, st.network
    out = _extra_args_problems(sv.extra_args)
    out += reservations.check(g)
    out += reservations.autoscaled_update_problems(g, st.scaling.enabled)
    out += scaling_rules.check(st.scaling, st)
    out += supply_chain.remote_code_revision_problems(
        st.is_production, profiles.vllm_argv(sv), sv.model, sv.revision, st.environment
    )
    exposure = exposure_rules.extra_args_problems(sv.extra_args)
    exposure += exposure_rules.world_range_problems("endpoint.sourceRanges", st.endpoint.source_ranges)
    exposure += exposure_rules.world_range_problems("cluster.publicAccessCidrs", st.cluster.public_access_cidrs)
    out += [_fail(p.key, p.value, p.rule, p.fix) for p in exposure]
    window = sv.model_facts.context_window
    if sv.max_model_len > window:
        out.append(
            _fail(
                "serving.maxModelLen",
                sv.max_model_len,
                f"is above {sv.model}'s context window of {window} tokens",
                set_command("serving.maxModelLen", window),
            )
        )
    if g.min_size > g.max_size:
        out.append(
            _fail(
                "gpuNodes.minSize",
                g.min_size,
                f"is above gpuNodes.maxSize ({g.max_size})",
                set_command("gpuNodes.maxSize", g.min_size),
            )
        )
    if not g.min_size <= g.desired_size <= g.max_size:
        fix = set_command("gpuNodes.desiredSize", max(g.min_size, min(g.desired_size, g.max_size)))
        out.append(
            _fail(
                "gpuNodes.desiredSize",
                g.desired_size,
                f"must lie between gpuNodes.minSize ({g.min_size}) and gpuNodes.maxSize ({g.max_size})",
                fix,
            )
        )
    needed = sv.replicas * sv.gpus_per_replica
    replicas_per_node = st.replicas_per_node
    nodes_needed = -(-sv.replicas // replicas_per_node)
    if nodes_needed > g.desired_size:
        spread = ", spread across nodes" if sv.spread_across_nodes else ""
        out.append(
            _fail(
                "serving.replicas",
                sv.replicas,
                f"needs {needed} GPUs on {nodes_needed} {g.instance_type} node(s) ({replicas_per_node} replica(s) of the {sv.profile} profile per node{spread}), but gpuNodes.desiredSize is {g.desired_size}",
                f"{set_command('gpuNodes.desiredSize', nodes_needed)} (and maxSize at least that), or lower serving.replicas",
            )
        )
    if g.capacity_type == "CAPACITY_BLOCK" and not g.capacity_reservation_id:
        out.append(
            _fail(
                "gpuNodes.capacityReservationId",
                None,
                "is required when gpuNodes.capacityType is CAPACITY_BLOCK",
                set_command("gpuNodes.capacityReservationId", "cr-0123456789abcdef0"),
            )
        )
    if net.existing_vpc_id and not (net.public_subnet_ids and net.private_subnet_ids):
        out.append(
            _fail(
                "network.privateSubnetIds",
                list(net.private_subnet_ids),
                "and network.publicSubnetIds are both required with network.existingVpcId",
                set_command("network.privateSubnetIds[0]", "subnet-..."),
            )
        )
    if shared := sorted(set(net.public_subnet_ids) & set(net.private_subnet_ids)):
        # The ALB is placed in the public subnets and the pods admit their whole ranges: a subnet
        # that also holds nodes (and so pods) would let every pod there reach vLLM without a key.
        out.append(
            _fail(
                "network.publicSubnetIds",
                list(net.public_subnet_ids),
                f"shares {', '.join(shared)} with network.privateSubnetIds; the load balancer's subnets must hold no"
                " nodes or pods (docs/operations.md, Network exposure)",
                set_command("network.publicSubnetIds[0]", "subnet-<one that holds no nodes>"),
            )
        )
    if (net.public_subnet_ids or net.private_subnet_ids) and not net.existing_vpc_id:
        out.append(
            _fail(
                "network.existingVpcId",
                None,
                "is required when subnet ids are given",
                set_command("network.existingVpcId", "vpc-..."),
            )
        )
    if net.availability_zones and g.availability_zones:
        if stray := sorted(set(g.availability_zones) - set(net.availability_zones)):
            out.append(
                _fail(
                    "gpuNodes.availabilityZones",
                    list(g.availability_zones),
                    f"names zones outside network.availabilityZones: {', '.join(stray)}",
                    set_command("gpuNodes.availabilityZones[0]", net.availability_zones[0]),
                )
            )
    if st.region and (
        foreign := [z for z in (*net.availability_zones, *g.availability_zones) if not z.startswith(st.region)]
    ):
        out.append(
            _fail(
                "network.availabilityZones",
                foreign[0],
                f"is not a zone of aws:region {st.region}",
                f"use zones of {st.region}, e.g. {st.region}a",
            )
        )
    if st.endpoint.scheme == "internet-facing" and not st.endpoint.source_ranges:
        out.append(
            _fail(
                "endpoint.sourceRanges",
                [],
                "must list the client networks allowed to reach an internet-facing endpoint",
                set_command("endpoint.sourceRanges[0]", "198.51.100.0/24"),
            )
        )
    out += _weights_problems(st)
    out += _idle_timeout_problems(st)
    out += arn_rules.check(st)
    return out


def _idle_timeout_problems(st: Settings) -> list[str]:
    """The load balancer closes a connection that carries no byte for its idle timeout; the longest
    silence of a streamed request is its wait and prefill (components/facts/timeline.py)."""
    window, timeout = st.serving.max_model_len, st.endpoint.idle_timeout_seconds
    floor = timeline.idle_timeout_floor(window)
    if timeout >= floor:
        return []
    silent = timeline.silent_request(window)
    return [
        _fail(
            "endpoint.idleTimeoutSeconds",
            timeout,
            f"is below {floor} s: a {window}-token prompt (serving.maxModelLen) can wait {silent.seconds} s before"
            f" its first token ({silent.basis}: a full-window prefill queued behind another; vLLM sends no token"
            f" until the prefill ends), and the load balancer cuts a connection silent for longer than its idle"
            f" timeout ({floor} s = x{timeline.SAFETY:g} margin, whole minutes; components/facts/timeline.py)",
            f"{set_command('endpoint.idleTimeoutSeconds', floor)} or more (the default 3600 also covers non-streaming answers)",
        )
    ]


COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")


def _weights_problems(st: Settings) -> list[str]:
    """A mirror holds one fixed revision: a branch name would be a stale copy under a moving name."""
    w, out = st.weights, []
    if w.source == "s3" and not COMMIT_SHA.fullmatch(st.serving.revision or ""):
        out.append(
            _fail(
                "serving.revision",
                st.serving.revision,
                "must be a 40-hex Hub commit sha when weights.source is s3 (the mirror holds one fixed"
                " revision, keyed by its commit)",
                set_command("serving.revision", "<40-hex commit sha>"),
            )
        )
    if w.source != "s3" and w.existing_bucket:
        out.append(
            _fail(
                "weights.existingBucket",
                w.existing_bucket,
                f"is used only when weights.source is s3 (it is {w.source})",
                f"{set_command('weights.source', 's3')}, or pulumi config rm --path 'weights.existingBucket'",
            )
        )
    return out


# Owned flags whose setting the fix can name: (setting, an example value).
_OWNING_SETTING = {
    "kv-cache-dtype": ("serving.kvCacheDtype", "fp8"),
    "max-num-queued-reqs": ("serving.maxQueuedRequests", 256),
}


def _extra_args_problems(args: tuple[str, ...]) -> list[str]:
    out = []
    for token in args:
        name = flag_name(token)
        if name in SECRET_FLAGS:
            secret = "apiKey" if name == "api-key" else "hfToken"
            out.append(
                _fail(
                    "serving.extraArgs",
                    token,
                    "would put a secret into the container's argv; the API key and Hugging Face token come from Kubernetes Secrets",
                    f"pulumi config set --secret {PROJECT}:{secret} <value>",
                )
            )
        elif name in OWNED_FLAGS:
            out.append(
                _fail(
                    "serving.extraArgs",
                    token,
                    f"sets --{name}, which the profile and settings own and extra arguments may not override",
                    (
                        f"remove it from serving.extraArgs and {set_command(*_OWNING_SETTING[name])}"
                        if name in _OWNING_SETTING
                        else "set the matching serving.* setting instead and remove it from serving.extraArgs"
                    ),
                )
            )
    return out
