"""The stack's ECR repositories (components/aws/image_registry.py says which, and why a mirror)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.aws.image_registry import ENCRYPTION, IMAGES, TAG_MUTABILITY, Registry


@dataclass(frozen=True)
class ImageRepositoriesArgs:
    registry: Registry
    tags: Mapping[str, str]


class ImageRepositories(pulumi.ComponentResource):
    """The stack's ECR repositories: the vLLM mirror, the stager and the router."""

    def __init__(self, name: str, args: ImageRepositoriesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("minimax-vllm:aws:ImageRepositories", name, None, opts)
        self.repositories: dict[str, aws.ecr.Repository] = {}
        for image in IMAGES:
            self.repositories[image] = aws.ecr.Repository(
                f"{name}-{image}",
                name=args.registry.repository(image),
                image_tag_mutability=TAG_MUTABILITY,
                image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
                encryption_configurations=[aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type=ENCRYPTION)],
                force_delete=True,
                tags=dict(args.tags),
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs({image: repo.repository_url for image, repo in sorted(self.repositories.items())})
