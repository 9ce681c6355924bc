"""The EKS control plane, its access, add-ons, a small system node group and the one
Kubernetes provider every Kubernetes resource uses.

Decisions:
- Authentication mode API with explicit access entries (deployer + configured admins):
  who is admin lives in Pulumi state, not in a ConfigMap. `bootstrap_cluster_creator_admin_permissions`
  is False because the deployer gets its own explicit entry; with True, EKS would create an
  entry for the same principal outside Pulumi and the explicit one would fail with
  ResourceInUseException.
- `bootstrap_self_managed_addons` is False: vpc-cni, kube-proxy and CoreDNS come only as
  pinned managed add-ons, never as unmanaged copies the add-ons must first take over.
- Separate node roles for system and GPU nodes, neither holding the CNI policy: vpc-cni gets
  AmazonEKS_CNI_Policy through Pod Identity (its own role, for its aws-node service account
  only), so no other pod on a node can use it through the node's credentials.
- vpc-cni runs with network policy enforcement (`enableNetworkPolicy`), so the NetworkPolicies
  of the vLLM namespace are enforced.
- The stack's KMS key encrypts etcd secrets and the control-plane log group (and the flow log
  group); its key policy lets CloudWatch Logs of this region use it for those groups only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.aws import iam_trust, image_registry
from components.aws.launch_template import node_launch_template, short_name

# Control-plane log types (botocore eks LogType enum): all of them.
LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
# Add-ons the nodes need before they can become Ready (CNI, service routing, Pod Identity).
NODE_ADDONS = ("vpc-cni", "kube-proxy", "eks-pod-identity-agent")
# CoreDNS is a Deployment: its add-on only turns ACTIVE once nodes can run its pods.
ADDONS = (*NODE_ADDONS, "coredns")
SYSTEM_NODES = 2
SYSTEM_ROOT_VOLUME_GIB = 50
SYSTEM_POOL_LABEL = ("minimax-vllm/pool", "system")
# Managed policies of both node roles: join the cluster. No SSM: the managed
# AmazonSSMManagedInstanceCore also grants ssm:GetParameter(s) on every parameter of the account,
# which a host-network pod could use with the node's credentials; nodes are reached with
# `kubectl debug node/<node>` instead. No key pair, no port 22. The CNI policy is not among them
# (Pod Identity, above). Image pulls: an inline policy scoped to the stack's repositories and the
# region's EKS add-on registry (image_registry.node_pull_policy), never
# AmazonEC2ContainerRegistryReadOnly, which reads every repository of the account.
NODE_POLICIES = ("AmazonEKSWorkerNodePolicy",)
# vpc-cni's own permissions, through Pod Identity for its service account.
CNI_POLICY = "AmazonEKS_CNI_Policy"
CNI_NAMESPACE, CNI_SERVICE_ACCOUNT = "kube-system", "aws-node"
# The vpc-cni add-on's configuration values (its schema types the flag as a string).
VPC_CNI_CONFIGURATION = {"enableNetworkPolicy": "true"}

# IAM role names are <= 64 characters; a name_prefix gets a 26-character unique suffix.
ROLE_NAME_PREFIX_MAX = 38
# EKS node group names are <= 63 characters; a name prefix also gets a 26-character suffix.
NODE_GROUP_NAME_MAX = 63
NODE_GROUP_PREFIX_MAX = NODE_GROUP_NAME_MAX - 26


def token_command(name: str, region: str, profile: str | None = None, role_arn: str | None = None) -> list[str]:
    """`aws eks get-token` as the stack's AWS provider: its profile and the role it assumes, so
    kubectl and the Kubernetes provider act as the principal that holds the access entry."""
    args = ["--region", region]
    if profile:
        args += ["--profile", profile]  # beats ambient AWS_* variables, unlike AWS_PROFILE
    args += ["eks", "get-token", "--cluster-name", name, "--output", "json"]
    if role_arn:
        args += ["--role-arn", role_arn]
    return args


def kubeconfig(
    name: str, endpoint: str, ca_data: str, region: str, profile: str | None = None, role_arn: str | None = None
) -> str:
    """A kubeconfig that authenticates with `aws eks get-token`: short-lived tokens, no secret stored."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": name, "cluster": {"server": endpoint, "certificate-authority-data": ca_data}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
            "users": [
                {
                    "name": name,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "aws",
                            "args": token_command(name, region, profile, role_arn),
                        }
                    },
                }
            ],
        },
        indent=2,
    )


@dataclass(frozen=True)
class ClusterArgs:
    cluster_name: str
    kubernetes_version: str
    region: str
    partition: str
    account_id: str
    subnet_ids: pulumi.Input[Sequence[str]]  # private subnets: control-plane ENIs and system nodes
    deployer_arn: str  # IAM role or user ARN (never an STS assumed-role ARN)
    admin_principal_arns: tuple[str, ...]
    public_access_cidrs: tuple[str, ...]  # empty: private API endpoint only
    system_instance_type: str
    log_retention_days: int
    addon_versions: Mapping[str, str]
    tags: Mapping[str, str]
    # The network's egress (NAT routes and associations): nodes wait for it to bootstrap.
    egress: Sequence[pulumi.Resource] = ()
    # Other log groups the stack's KMS key encrypts (e.g. VPC flow logs), by name.
    extra_log_groups: tuple[str, ...] = ()
    # Who the stack's AWS provider acts as (aws:profile, the last role of aws:assumeRoles).
    aws_profile: str | None = None
    aws_role_arn: str | None = None


def log_group_name(cluster_name: str) -> str:
    """The name EKS writes control-plane logs to (fixed by EKS)."""
    return f"/aws/eks/{cluster_name}/cluster"


class Cluster(pulumi.ComponentResource):
    """EKS cluster with secrets encryption, full control-plane logging and access entries."""

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("minimax-vllm:aws:Cluster", name, None, opts)
        missing = [a for a in ADDONS if a not in args.addon_versions]
        if missing:
            raise ValueError(
                f"no pinned add-on versions for {missing}; add them to components/facts/versions.py EKS_ADDON_VERSIONS"
            )
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)
        policy = lambda n: f"arn:{args.partition}:iam::aws:policy/{n}"  # noqa: E731

        log_groups = [log_group_name(args.cluster_name), *args.extra_log_groups]
        key = aws.kms.Key(
            f"{name}-secrets-key",
            description=f"EKS secrets envelope encryption and log groups of {args.cluster_name}",
            enable_key_rotation=True,
            # The key only protects this cluster's secrets and logs; after destroy nothing needs it.
            deletion_window_in_days=7,
            policy=iam_trust.logs_key_policy(args.partition, args.region, args.account_id, log_groups),
            tags=tags,
            opts=child,
        )
        self.key_arn = key.arn
        # Created before the cluster: otherwise EKS creates it on first log write, with
        # infinite retention and outside Pulumi (so `destroy` would leave it behind).
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=log_group_name(args.cluster_name),
            retention_in_days=args.log_retention_days,
            kms_key_id=key.arn,
            tags=tags,
            opts=child,
        )

        cluster_role = aws.iam.Role(
            f"{name}-cluster-role",
            name_prefix=_role_prefix(args.cluster_name, "cluster"),
            assume_role_policy=iam_trust.eks_cluster_role(
                args.partition, args.region, args.account_id, args.cluster_name
            ),
            tags=tags,
            opts=child,
        )
        cluster_policy = aws.iam.RolePolicyAttachment(
            f"{name}-cluster-policy", role=cluster_role.name, policy_arn=policy("AmazonEKSClusterPolicy"), opts=child
        )
        # The cluster role must be able to use the customer-managed key for envelope encryption.
        key_access = aws.iam.RolePolicy(
            f"{name}-cluster-kms",
            role=cluster_role.id,
            policy=key.arn.apply(
                lambda arn: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ListGrants", "kms:DescribeKey"],
                                "Resource": arn,
                            }
                        ],
                    }
                )
            ),
            opts=child,
        )

        pull_policy = image_registry.node_pull_policy(args.partition, args.region, args.account_id, args.cluster_name)

        def node_role(kind: str) -> tuple[aws.iam.Role, list[pulumi.Resource]]:
            role = aws.iam.Role(
                f"{name}-{kind}-node-role",
                name_prefix=_role_prefix(args.cluster_name, f"{kind}-node"),
                assume_role_policy=iam_trust.ec2_node_role(),
                tags=tags,
                opts=child,
            )
            attached: list[pulumi.Resource] = [
                aws.iam.RolePolicyAttachment(
                    f"{name}-{kind}-node-{p}", role=role.name, policy_arn=policy(p), opts=child
                )
                for p in NODE_POLICIES
            ]
            attached.append(
                aws.iam.RolePolicy(f"{name}-{kind}-node-ecr-pull", role=role.id, policy=pull_policy, opts=child)
            )
            return role, attached

        self.system_node_role, system_policies = node_role("system")
        self.gpu_node_role, gpu_policies = node_role("gpu")
        node_policies = [*system_policies, *gpu_policies]

        # vpc-cni's role: assumable only by kube-system/aws-node of this cluster.
        cni_role = aws.iam.Role(
            f"{name}-vpc-cni-role",
            name_prefix=_role_prefix(args.cluster_name, "vpc-cni"),
            assume_role_policy=iam_trust.pod_identity_role(
                iam_trust.cluster_arn(args.partition, args.region, args.account_id, args.cluster_name),
                CNI_NAMESPACE,
                CNI_SERVICE_ACCOUNT,
            ),
            tags=tags,
            opts=child,
        )
        cni_policy = aws.iam.RolePolicyAttachment(
            f"{name}-vpc-cni-policy", role=cni_role.name, policy_arn=policy(CNI_POLICY), opts=child
        )

        public = bool(args.public_access_cidrs)
        self.eks = aws.eks.Cluster(
            f"{name}-eks",
            name=args.cluster_name,
            version=args.kubernetes_version,
            role_arn=cluster_role.arn,
            vpc_config=aws.eks.ClusterVpcConfigArgs(
                subnet_ids=args.subnet_ids,
                endpoint_private_access=True,
                endpoint_public_access=public,
                public_access_cidrs=list(args.public_access_cidrs) if public else None,
            ),
            access_config=aws.eks.ClusterAccessConfigArgs(
                authentication_mode="API",
                bootstrap_cluster_creator_admin_permissions=False,
            ),
            bootstrap_self_managed_addons=False,
            encryption_config=aws.eks.ClusterEncryptionConfigArgs(
                provider=aws.eks.ClusterEncryptionConfigProviderArgs(key_arn=key.arn),
                resources=["secrets"],
            ),
            enabled_cluster_log_types=list(LOG_TYPES),
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_group, cluster_policy, key_access]),
        )
        self.name = self.eks.name

        admin_policy = f"arn:{args.partition}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
        principals = dict.fromkeys([args.deployer_arn, *args.admin_principal_arns])
        self.admin_access: list[aws.eks.AccessPolicyAssociation] = []
        for arn in principals:
            label = "deployer" if arn == args.deployer_arn else f"admin-{hashlib.sha256(arn.encode()).hexdigest()[:8]}"
            entry = aws.eks.AccessEntry(
                f"{name}-{label}",
                cluster_name=self.eks.name,
                principal_arn=arn,
                type="STANDARD",
                tags=tags,
                opts=child,
            )
            self.admin_access.append(
                aws.eks.AccessPolicyAssociation(
                    f"{name}-{label}-admin",
                    cluster_name=self.eks.name,
                    principal_arn=arn,
                    policy_arn=admin_policy,
                    access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[entry]),
                )
            )

        def addon(addon_name: str, depends_on: list[pulumi.Resource], **extra: Any) -> aws.eks.Addon:
            return aws.eks.Addon(
                f"{name}-{addon_name}",
                cluster_name=self.eks.name,
                addon_name=addon_name,
                addon_version=args.addon_versions[addon_name],
                resolve_conflicts_on_create="OVERWRITE",
                resolve_conflicts_on_update="OVERWRITE",
                tags=tags,
                opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on),
                **extra,
            )

        # DaemonSet add-ons go in before any node, so nodes join with a working CNI. aws-node
        # gets its credentials from the pod identity agent (a host-network DaemonSet) on the
        # same node, and retries until the agent answers.
        cni_extra = {
            "configuration_values": json.dumps(VPC_CNI_CONFIGURATION, sort_keys=True),
            "pod_identity_associations": [
                aws.eks.AddonPodIdentityAssociationArgs(role_arn=cni_role.arn, service_account=CNI_SERVICE_ACCOUNT)
            ],
        }
        node_addons = {a: addon(a, [cni_policy], **cni_extra) if a == "vpc-cni" else addon(a, []) for a in NODE_ADDONS}
        self.pod_identity_agent = node_addons["eks-pod-identity-agent"]
        self.addons: dict[str, aws.eks.Addon] = dict(node_addons)
        # What a node group must wait for: the node role's policies, the DaemonSet add-ons and a
        # route to the internet (a node pulls images and reaches ECR through its zone's NAT).
        self.node_prerequisites: list[pulumi.Resource] = [*node_policies, *node_addons.values(), *args.egress]

        system_template = node_launch_template(
            f"{name}-system-lt",
            node_group_name=f"{args.cluster_name}-system",
            description=f"system nodes of {args.cluster_name}",
            root_volume_gib=SYSTEM_ROOT_VOLUME_GIB,
            tags=tags,
            parent=self,
        )
        self.system_nodes = aws.eks.NodeGroup(
            f"{name}-system",
            cluster_name=self.eks.name,
            node_group_name_prefix=short_name(args.cluster_name, "system-", NODE_GROUP_PREFIX_MAX),
            node_role_arn=self.system_node_role.arn,
            subnet_ids=args.subnet_ids,
            version=self.eks.version,
            ami_type="AL2023_x86_64_STANDARD",
            capacity_type="ON_DEMAND",
            instance_types=[args.system_instance_type],
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                id=system_template.id, version=system_template.latest_version.apply(str)
            ),
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=SYSTEM_NODES, desired_size=SYSTEM_NODES, max_size=SYSTEM_NODES
            ),
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
            labels=dict([SYSTEM_POOL_LABEL]),
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=self.node_prerequisites),
        )
        self.coredns = addon("coredns", [self.system_nodes])
        self.addons["coredns"] = self.coredns

        # The kubeconfig also waits for the admin access policies, so nothing talks to the API
        # before the deployer is authorised (the EKS API rejects it until then).
        self.kubeconfig: pulumi.Output[str] = pulumi.Output.secret(
            pulumi.Output.all(
                self.eks.name,
                self.eks.endpoint,
                self.eks.certificate_authority.apply(lambda ca: ca.data),
                *[a.id for a in self.admin_access],
            ).apply(lambda v: kubeconfig(v[0], v[1], v[2], args.region, args.aws_profile, args.aws_role_arn))
        )
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            opts=pulumi.ResourceOptions(parent=self, depends_on=self.admin_access),
        )
        self.register_outputs(
            {
                "clusterName": self.name,
                "kubeconfig": self.kubeconfig,
                "systemNodeRoleArn": self.system_node_role.arn,
                "gpuNodeRoleArn": self.gpu_node_role.arn,
                "systemNodeGroup": self.system_nodes.node_group_name,
            }
        )


def _role_prefix(cluster_name: str, role: str) -> str:
    return short_name(cluster_name, f"{role}-", ROLE_NAME_PREFIX_MAX)
