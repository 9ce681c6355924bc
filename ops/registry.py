"""The manifest digest a registry serves for an image tag (OCI distribution API over HTTPS).

Anonymous pull tokens by the registry's own Bearer challenge (Docker Hub and any OCI registry),
so no credentials are needed for a public image.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

DOCKER_HUB = "https://registry-1.docker.io"
# Ask for the multi-architecture index first: its digest is what `docker pull repo@digest` pins.
ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
TIMEOUT_SECONDS = 20


class RegistryError(Exception):
    """The registry could not say which digest the tag has."""


@dataclass(frozen=True)
class ImageRef:
    registry: str  # base URL
    repository: str
    tag: str


def parse(image: str, registry: str = DOCKER_HUB) -> ImageRef:
    """`repo:tag` on Docker Hub (library/ for one-part names); a host in the name is not supported."""
    name, _, tag = image.split("@", 1)[0].partition(":")
    if not tag or "." in name.split("/")[0]:
        raise RegistryError(f"{image!r}: expected a Docker Hub `repository:tag`")
    return ImageRef(registry, name if "/" in name else f"library/{name}", tag)


def _require_https(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https" and parts.hostname not in LOOPBACK:
        raise RegistryError(f"refusing to ask {url} over {parts.scheme}: registry lookups use HTTPS")


def _challenge(header: str) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="([^"]*)"', header or ""))


def _token(challenge: dict[str, str]) -> str:
    realm = challenge.get("realm")
    if not realm:
        raise RegistryError("the registry asked for a token but named no realm")
    _require_https(realm)
    query = urllib.parse.urlencode({k: v for k, v in challenge.items() if k in ("service", "scope")})
    with urllib.request.urlopen(f"{realm}?{query}", timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 (https only)
        body = json.load(response)
    token = body.get("token") or body.get("access_token")
    if not token:
        raise RegistryError("the registry's token endpoint returned no token")
    return token


def resolve_digest(ref: ImageRef) -> str:
    """The `Docker-Content-Digest` the registry returns for the tag's manifest."""
    url = f"{ref.registry}/v2/{ref.repository}/manifests/{ref.tag}"
    _require_https(url)
    headers = {"Accept": ACCEPT}
    for attempt in range(2):
        request = urllib.request.Request(url, method="HEAD", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 (https only)
                digest = response.headers.get("Docker-Content-Digest")
                if not digest:
                    raise RegistryError(f"{url} returned no Docker-Content-Digest header")
                return digest
        except urllib.error.HTTPError as err:
            if err.code == 401 and attempt == 0:
                headers["Authorization"] = f"Bearer {_token(_challenge(err.headers.get('WWW-Authenticate', '')))}"
                continue
            if err.code == 404:
                raise RegistryError(f"{ref.repository}:{ref.tag} does not exist in {ref.registry}") from err
            raise RegistryError(f"{url}: HTTP {err.code}") from err
        except urllib.error.URLError as err:
            raise RegistryError(f"could not reach {ref.registry}: {err.reason}") from err
    raise RegistryError(f"{url}: still unauthorised with a pull token")
