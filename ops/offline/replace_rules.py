"""Which input changes force a replacement, per resource type the stack uses (generated data).

Facts recorded for pulumi-aws 7.51.1 and pulumi-kubernetes 4.34.2 (components/facts/versions.py pins
the SDKs); the Python SDKs carry no schema, so the facts come from the providers' sources:
- AWS: terraform-provider-aws resource schemas, the `ForceNew: true` arguments (pulumi-aws is
  bridged from them; names in Pulumi's camelCase). Read in internal/service/eks/node_group.go
  (commit 012e0a3), internal/service/ec2/vpc_subnet.go (00cda12), internal/service/eks/cluster.go
  (00555dc): `vpc_config.subnet_ids` is updatable there, `name`, `role_arn` and the network
  config are not. The other types list their identifying arguments (names, parents, ids).
- Kubernetes: pulumi-kubernetes provider/pkg/provider/diff.go `forceNew` (commit 00302be):
  metadata.name and .namespace for every kind, plus the kind's immutable fields. An object with
  a fixed metadata.name is replaced delete-first (the new one cannot exist beside the old).
- Helm releases: a release's name and namespace (Helm cannot rename or move a release).
A path matches a changed input at or below it; list indices are ignored.
"""

from __future__ import annotations

SOURCES = {
    "aws": "terraform-provider-aws ForceNew, via pulumi-aws 7.51.1",
    "kubernetes": "pulumi-kubernetes 4.34.2 provider/pkg/provider/diff.go forceNew",
}

AWS: dict[str, tuple[str, ...]] = {
    "aws:autoscaling/tag:Tag": ("autoscalingGroupName", "tag"),
    "aws:cloudwatch/logGroup:LogGroup": ("name", "namePrefix", "logGroupClass"),
    "aws:ec2/eip:Eip": ("domain", "networkBorderGroup", "publicIpv4Pool", "customerOwnedIpv4Pool"),
    "aws:ec2/flowLog:FlowLog": (
        "vpcId",
        "subnetId",
        "eniId",
        "logDestination",
        "logDestinationType",
        "logFormat",
        "iamRoleArn",
        "trafficType",
        "maxAggregationInterval",
        "destinationOptions",
        "logGroupName",
    ),
    "aws:ec2/internetGateway:InternetGateway": (),
    "aws:ec2/launchTemplate:LaunchTemplate": ("name", "namePrefix"),  # other changes: a new version
    "aws:ec2/natGateway:NatGateway": ("allocationId", "subnetId", "connectivityType", "privateIp"),
    "aws:ec2/route:Route": (
        "routeTableId",
        "destinationCidrBlock",
        "destinationIpv6CidrBlock",
        "destinationPrefixListId",
    ),
    "aws:ec2/routeTable:RouteTable": ("vpcId",),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": ("subnetId", "gatewayId"),
    "aws:ec2/subnet:Subnet": (
        "availabilityZone",
        "availabilityZoneId",
        "cidrBlock",
        "ipv4IpamPoolId",
        "ipv4NetmaskLength",
        "ipv6IpamPoolId",
        "ipv6Native",
        "ipv6NetmaskLength",
        "outpostArn",
        "vpcId",
    ),
    "aws:ec2/vpc:Vpc": ("cidrBlock", "ipv4IpamPoolId", "ipv4NetmaskLength"),
    "aws:ec2/vpcEndpoint:VpcEndpoint": ("vpcId", "serviceName", "vpcEndpointType", "serviceRegion"),
    "aws:eks/accessEntry:AccessEntry": ("clusterName", "principalArn", "type"),
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation": (
        "clusterName",
        "policyArn",
        "principalArn",
        "accessScope",
    ),
    "aws:eks/addon:Addon": ("clusterName", "addonName"),
    "aws:eks/cluster:Cluster": (
        "name",
        "roleArn",
        "bootstrapSelfManagedAddons",
        "accessConfig.bootstrapClusterCreatorAdminPermissions",
        "kubernetesNetworkConfig.ipFamily",
        "kubernetesNetworkConfig.serviceIpv4Cidr",
        "remoteNetworkConfig",
        "outpostConfig",
    ),
    "aws:eks/nodeGroup:NodeGroup": (
        "amiType",
        "capacityType",
        "clusterName",
        "diskSize",
        "instanceTypes",
        "launchTemplate.id",
        "launchTemplate.name",
        "nodeGroupName",
        "nodeGroupNamePrefix",
        "nodeRoleArn",
        "remoteAccess",
        "subnetIds",
    ),
    "aws:eks/podIdentityAssociation:PodIdentityAssociation": ("clusterName", "namespace", "serviceAccount"),
    "aws:iam/policy:Policy": ("name", "namePrefix", "path", "description"),
    "aws:iam/role:Role": ("name", "namePrefix", "path"),
    "aws:iam/rolePolicy:RolePolicy": ("name", "namePrefix", "role"),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": ("role", "policyArn"),
    "aws:kms/key:Key": ("customerMasterKeySpec", "keyUsage", "multiRegion", "customKeyStoreId", "xksKeyId"),
    "aws:s3/bucket:Bucket": ("bucket", "bucketPrefix", "objectLockEnabled"),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": ("bucket", "expectedBucketOwner"),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": ("bucket",),
    "aws:s3/bucketPolicy:BucketPolicy": ("bucket",),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": ("bucket",),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (
        "bucket",
        "expectedBucketOwner",
    ),
    "aws:s3/bucketVersioning:BucketVersioning": ("bucket", "expectedBucketOwner"),
}

_SELECTOR = ("spec.selector",)
KUBERNETES_METADATA = ("metadata.name", "metadata.namespace")
KUBERNETES: dict[str, tuple[str, ...]] = {
    "kubernetes:apps/v1:Deployment": _SELECTOR,
    "kubernetes:apps/v1:DaemonSet": _SELECTOR,
    "kubernetes:apps/v1:StatefulSet": (
        *_SELECTOR,
        "spec.podManagementPolicy",
        "spec.revisionHistoryLimit",
        "spec.serviceName",
        "spec.volumeClaimTemplates",
    ),
    "kubernetes:batch/v1:Job": ("spec.completions", "spec.parallelism", "spec.selector", "spec.template"),
    "kubernetes:core/v1:ConfigMap": ("binaryData", "data"),
    "kubernetes:core/v1:Secret": ("type", "stringData", "data"),
    "kubernetes:core/v1:Service": ("spec.clusterIP",),
    "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding": ("roleRef",),
    "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding": ("roleRef",),
    "kubernetes:storage.k8s.io/v1:StorageClass": ("parameters", "provisioner"),
}
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
HELM: tuple[str, ...] = ("name", "namespace")


def rules(type_token: str) -> tuple[str, ...] | None:
    """The replace-forcing input paths of a type; None when this file has no record of it."""
    if type_token in AWS:
        return AWS[type_token]
    if type_token == HELM_RELEASE:
        return HELM
    if type_token.startswith("kubernetes:") and not type_token.startswith("kubernetes:helm.sh"):
        return KUBERNETES_METADATA + KUBERNETES.get(type_token, ())
    return None
