"""The hardened launch template every node group uses: IMDSv2 only, encrypted gp3 root, tags
on what it launches. The GPU node group adds its capacity and NVMe settings on top."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_aws as aws

ROOT_DEVICE = "/dev/xvda"  # the AL2023 EKS AMIs' root device name
# EC2 launch template names: <= 128 characters; a name_prefix gets a 26-character suffix.
LAUNCH_TEMPLATE_PREFIX_MAX = 128 - 26
# Hop limit 1: pods off the host network cannot reach the node role's credentials; workloads
# that need AWS use Pod Identity.
IMDS_HOP_LIMIT = 1


def short_name(base: str, suffix: str, limit: int) -> str:
    """`base-suffix` within an AWS length limit; a long base is cut and keeps a short hash, so
    two long stack names that share a prefix still get different names."""
    full = f"{base}-{suffix}"
    if len(full) <= limit:
        return full
    digest = hashlib.sha256(base.encode()).hexdigest()[:6]
    keep = limit - len(suffix) - len(digest) - 2
    return f"{base[:keep].rstrip('-')}-{digest}-{suffix}"


def node_launch_template(
    resource_name: str,
    *,
    node_group_name: str,
    description: str,
    root_volume_gib: int,
    tags: Mapping[str, str],
    parent: pulumi.Resource,
    **extra: Any,
) -> aws.ec2.LaunchTemplate:
    """A launch template for a managed node group; `extra` adds LaunchTemplate arguments."""
    instance_tags = {**tags, "Name": node_group_name}
    return aws.ec2.LaunchTemplate(
        resource_name,
        name_prefix=short_name(node_group_name, "", LAUNCH_TEMPLATE_PREFIX_MAX),
        description=description,
        metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
            http_endpoint="enabled",
            http_tokens="required",
            http_put_response_hop_limit=IMDS_HOP_LIMIT,
        ),
        block_device_mappings=[
            aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                device_name=ROOT_DEVICE,
                ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                    volume_size=root_volume_gib,
                    volume_type="gp3",
                    encrypted="true",
                    delete_on_termination="true",
                ),
            )
        ],
        tag_specifications=[
            aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type=kind, tags=instance_tags)
            for kind in ("instance", "volume", "network-interface")
        ],
        tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent),
        **extra,
    )
