"""Stack section `weights`: where a new node gets the model's weights from.

`hub` (the default): every new node downloads the pinned revision from the Hugging Face Hub
through the NAT gateway. `s3`: the stack keeps an in-region mirror in S3, filled once per
revision by the `weights-mirror` Job, and every new node copies from it over the S3 gateway
endpoint (components/weights/mirror.py; why a copy to the NVMe and not streaming: docs/weights.md).
"""

from __future__ import annotations

from typing import Annotated

from pydantic.dataclasses import dataclass

from components.settings.schema import SECTION, Bool, Int, Str, closed, matches, one_of, rule

SOURCES = ("hub", "s3")
# S3 bucket names: 3-63 lowercase letters, digits, dots and hyphens (S3 naming rules);
# no dots here, so virtual-hosted-style HTTPS names keep matching the wildcard certificate.
BUCKET_NAME = r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$"


@dataclass(frozen=True, config=SECTION)
class WeightsSettings:
    source: Annotated[Str, one_of(SOURCES)] = rule("hub", closed("a weight source", SOURCES))
    # A mirror bucket made by another stack (or by hand): this stack then creates none and
    # only adds its revision to it. Empty: the stack creates its own bucket.
    existing_bucket: Annotated[Str, matches(BUCKET_NAME)] | None = rule(
        None,
        "must be an S3 bucket name: 3-63 lowercase letters, digits and hyphens",
        "minimax-vllm-weights-shared",
    )
    # Refilling a mirror takes the Hub's time again: `pulumi destroy` leaves the bucket
    # (Pulumi retain_on_delete) unless the stack sets this to false.
    retain_on_destroy: Bool = rule(True, "must be true or false")
    # A deleted or overwritten object stays restorable this long (versioning), then the
    # lifecycle rule removes it: retiring an old revision is deleting its prefix.
    noncurrent_days: Int = rule(30, "must be from 1 to 365 days", ge=1, le=365)
    # The compile cache shared through the same bucket (components/weights/compile_cache.py):
    # the first ready replica uploads vLLM's compile artefacts, later ones start from them.
    # Only with `source: s3` (a Hub-sourced stack has no bucket); false turns it off.
    compile_cache: Bool = rule(True, "must be true or false")
    # The writer (the fill Job, its role and its Pod Identity association) exists only while the
    # revision's manifest is unsigned. true: render it although the manifest is signed, so the
    # Job checks every file against the Hub again and signs anew (a refused signature, a hand edit).
    refill: Bool = rule(False, "must be true or false")

    @property
    def shares_compile_cache(self) -> bool:
        """The stack shares its compile cache: on by default wherever it has a bucket."""
        return self.compile_cache and self.source == "s3"
