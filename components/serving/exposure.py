"""Rules for what may reach the endpoint: pure functions over plain values, no Pulumi.

Each rule returns `Problem`s (key, value as shown, rule with the allowed values, fix); the
settings layer turns them into its error lines. Two groups:
- refused always: a short or blank API key, source ranges that cover the internet or are
  wider than /8, `serving.extraArgs` tokens that are not exact flags of the pinned vLLM;
- refused before a real deploy (`deploy_problems`), listed by `make plan`: documentation and
  other non-routable ranges where the internet must reach, and an endpoint (internet-facing or
  internal) without TLS unless the stack opts out loudly. The shipped stacks carry such placeholders.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from components.facts import DATA
from components.serving import profiles
from components.settings.endpoint import MIN_API_KEY_CHARS

MIN_PREFIX_LEN = 8  # wider ranges are a sizeable share of the whole internet
VLLM_FLAGS_FILE = DATA / "vllm-serve-flags.json"
INSECURE_OPT_OUT = "endpoint.insecureAllowPlainHttpOnInternet"
INTERNAL_OPT_OUT = "endpoint.plainHttpAcknowledged"
_NUMBER = re.compile(r"^-\d+(\.\d+)?([eE][-+]?\d+)?$")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Problem(NamedTuple):
    key: str  # without the project prefix, e.g. `endpoint.sourceRanges`
    value: Any  # what the message shows: never a secret
    rule: str  # what is wrong and what is allowed
    fix: str  # the command that fixes it


class SecretShown:
    """How a secret appears in a message: its length only."""

    def __init__(self, value: str | None):
        self.length = len(value or "")

    def __repr__(self) -> str:
        return f"<secret of {self.length} characters>"


# --- the API key ------------------------------------------------------------------------


def api_key_problems(value: str | None, key: str = "apiKey") -> list[Problem]:
    """vLLM adds no authentication at all for an empty key, and a short one can be guessed."""
    if value is None:
        return []  # a missing required secret is reported by the settings layer
    stripped = value.strip()
    if len(stripped) >= MIN_API_KEY_CHARS and stripped == value:
        return []
    why = "is blank" if not stripped else ("has leading or trailing spaces" if stripped != value else "is too short")
    return [
        Problem(
            key,
            SecretShown(value),
            f"{why}: the API key must be at least {MIN_API_KEY_CHARS} characters without surrounding spaces",
            f'pulumi config set --secret minimax-vllm:{key} "$(openssl rand -hex 32)"',
        )
    ]


# --- source ranges ------------------------------------------------------------------------


def parse_networks(cidrs: Iterable[str]) -> list[Network]:
    """The valid CIDRs of a list (the settings layer reports malformed ones itself)."""
    nets = []
    for cidr in cidrs:
        try:
            nets.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            continue
    return nets


# IANA allocates IPv6 internet addresses only from 2000::/3; the rest is reserved or special.
IPV6_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")


def routable(net: Network) -> bool:
    """Whether the internet can route to (part of) this network: not private, reserved,
    documentation (RFC 5737 / 3849), shared (RFC 6598), loopback, link-local or multicast."""
    if net.version == 6 and not net.overlaps(IPV6_GLOBAL_UNICAST):
        return False
    return net.is_global and not net.is_multicast


def _uncovered(space: Network, nets: Sequence[Network]) -> list[Network]:
    """The blocks of `space` that no network of `nets` covers (CIDR blocks nest or are disjoint)."""
    remaining = [space]
    for net in ipaddress.collapse_addresses(nets):
        pieces: list[Network] = []
        for block in remaining:
            if block.subnet_of(net):
                continue
            pieces.extend(block.address_exclude(net) if net.subnet_of(block) else [block])
        remaining = pieces
    return remaining


def covers_the_internet(cidrs: Iterable[str]) -> bool:
    """True when the union of the ranges leaves no routable address out, in IPv4 or in IPv6
    (so `0.0.0.0/1` + `128.0.0.0/1` counts as `0.0.0.0/0`)."""
    nets = parse_networks(cidrs)
    for space in (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")):
        family = [n for n in nets if n.version == space.version]
        if family and not any(routable(block) for block in _uncovered(space, family)):
            return True
    return False


def world_range_problems(key: str, cidrs: Sequence[str]) -> list[Problem]:
    """Ranges that open an endpoint to the internet, by address arithmetic rather than by string."""
    example = "198.51.100.7/32" if key.startswith("cluster.") else "198.51.100.0/24"
    fix = f"pulumi config set --path '{key}[0]' <your network, e.g. {example}> (and remove the wide ranges)"
    if covers_the_internet(cidrs):
        return [
            Problem(
                key,
                list(cidrs),
                "together cover every routable address (the whole internet); list only your own networks",
                fix,
            )
        ]
    wide = [str(n) for n in parse_networks(cidrs) if n.prefixlen < MIN_PREFIX_LEN]
    if wide:
        return [
            Problem(
                key,
                wide,
                f"has a prefix shorter than /{MIN_PREFIX_LEN}; allowed: CIDRs of /{MIN_PREFIX_LEN} or narrower",
                fix,
            )
        ]
    return []


def non_routable_problems(key: str, cidrs: Sequence[str], where: str) -> list[Problem]:
    """Documentation or private ranges where the internet must come in: nobody could connect."""
    bad = [str(n) for n in parse_networks(cidrs) if not routable(n)]
    if not bad:
        return []
    return [
        Problem(
            key,
            bad,
            f"is not routable on the internet (documentation, private or reserved range) but {where}; "
            "allowed: public networks of your clients",
            f"pulumi config set --path '{key}[0]' <your public network>/<bits>",
        )
    ]


# --- what must be set before a real deploy --------------------------------------------------


def tls_problems(scheme: str, certificate_arn: str | None, opted_out: bool) -> list[Problem]:
    """Every endpoint needs TLS: internet-facing, or internal (the key and prompts would cross the
    client networks in clear). opted_out: the scheme's own opt-out (INSECURE_OPT_OUT, INTERNAL_OPT_OUT)."""
    if certificate_arn or opted_out:
        return []
    if scheme == "internet-facing":
        where, opt_out = "the internet", INSECURE_OPT_OUT
        cert = "arn:aws:acm:<region>:<account>:certificate/<id>"
    else:
        where, opt_out = "the client networks (endpoint.sourceRanges)", INTERNAL_OPT_OUT
        cert = "<ACM certificate ARN: issued by your AWS Private CA, or imported>"
    return [
        Problem(
            "endpoint.certificateArn",
            None,
            f"is required on an {scheme} endpoint: without it the API key and every prompt cross "
            f"{where} in clear (to accept that anyway: pulumi config set --path '{opt_out}' true)",
            f"pulumi config set --path 'endpoint.certificateArn' {cert}",
        )
    ]


def plain_http_warning(scheme: str, source_ranges: Sequence[str], accepted: bool) -> list[str]:
    """What `make plan` prints, loud and on its own line, for a stack that chose plain HTTP."""
    if not accepted:
        return []
    opt_out = INSECURE_OPT_OUT if scheme == "internet-facing" else INTERNAL_OPT_OUT
    where = "the internet" if scheme == "internet-facing" else "the client networks " + ", ".join(source_ranges)
    return [
        f"!!! PLAIN HTTP ({opt_out} true): the API key and every prompt and answer cross {where} in clear;"
        " set endpoint.certificateArn to serve HTTPS"
    ]


def deploy_problems(
    scheme: str,
    source_ranges: Sequence[str],
    certificate_arn: str | None,
    opted_out: bool,
    public_access_cidrs: Sequence[str],
) -> list[Problem]:
    """What stops a real `pulumi up`/`preview` (the offline plan lists these instead)."""
    found = non_routable_problems(
        "cluster.publicAccessCidrs", public_access_cidrs, "the public Kubernetes API endpoint is reached from it"
    )
    if scheme == "internet-facing":
        found += non_routable_problems("endpoint.sourceRanges", source_ranges, "the endpoint is internet-facing")
    found += tls_problems(scheme, certificate_arn, opted_out)
    return found


# --- vLLM flags ---------------------------------------------------------------------------


@functools.cache
def vllm_flags() -> dict[str, Any]:
    """The pinned vLLM's `vllm serve` flags (generated by tests/vllm/generate_serve_flags.py)."""
    return json.loads(VLLM_FLAGS_FILE.read_text())


def _canonical(token: str) -> str:
    name = token.split("=", 1)[0]
    return "--" + name[2:].replace("_", "-")  # vLLM's parser reads `--max_num_seqs` as `--max-num-seqs`


def extra_args_problems(tokens: Sequence[str]) -> list[Problem]:
    """Every flag in `serving.extraArgs` must be spelled out: argparse would take `--max-model-l`
    as `--max-model-len` (bypassing the capacity check) and `--api-ke=` as `--api-key`."""
    data = vllm_flags()
    known = set(data["flags"])
    found = []
    for i, token in enumerate(tokens):
        if not token.startswith("-") or token in {"-", "--"} or _NUMBER.fullmatch(token):
            continue  # a value
        if profiles.flag_name(token) in profiles.OWNED_FLAGS | profiles.SECRET_FLAGS:
            continue  # refused by the owned/secret flag rules with their own fix
        if not token.startswith("--"):
            found.append(
                Problem(
                    "serving.extraArgs",
                    token.split("=", 1)[0],
                    f"is a short flag; allowed: the exact long flags of vLLM {data['vllm']} `vllm serve`",
                    f"pulumi config set --path 'serving.extraArgs[{i}]' <the long --flag>",
                )
            )
            continue
        flag = _canonical(token)
        if flag in known or flag.split(".", 1)[0] in known:  # `--compilation-config.mode=3` sets one JSON key
            continue
        expands = sorted(f for f in known if f.startswith(flag))
        shown = token.split("=", 1)[0] + ("=<hidden>" if "=" in token else "")
        rule = f"is not an exact flag of vLLM {data['vllm']} `vllm serve`"
        if expands:
            rule += f" (its parser would take it as an abbreviation of {', '.join(expands[:3])})"
        secret = [f for f in expands if f[2:] in profiles.SECRET_FLAGS]
        if secret:
            fix = f"remove it and pulumi config set --secret minimax-vllm:{'apiKey' if secret[0] == '--api-key' else 'hfToken'} <value>"
        elif any(f[2:] in profiles.OWNED_FLAGS for f in expands):
            fix = "set the matching serving.* setting instead and remove it from serving.extraArgs"
        elif len(expands) == 1:
            fix = f"pulumi config set --path 'serving.extraArgs[{i}]' {expands[0]}"
        else:
            fix = f"spell the flag out as `vllm serve --help` lists it, or pulumi config rm --path 'serving.extraArgs[{i}]'"
        found.append(Problem("serving.extraArgs", shown, rule, fix))
    return found
