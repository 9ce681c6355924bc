"""The AWS layer as rendered by the offline engine: network, EKS cluster, GPU node group."""

from __future__ import annotations

import base64
import email
import functools
import importlib
import inspect
import json
import re

import pytest
import yaml

from components.aws.cluster import LOG_TYPES, NODE_GROUP_NAME_MAX, ROLE_NAME_PREFIX_MAX
from components.aws.gpu_nodes import AMI_TYPE
from components.aws.launch_template import LAUNCH_TEMPLATE_PREFIX_MAX, short_name
from components.aws.network import ZoneError, plan_zones, subnet_cidrs
from components.facts import gpu_pool, versions
from components.platform.config import from_stack_file
from ops.offline import mocks
from ops.offline.engine import Rendering, Resource, render

STACKS = ("dev", "staging", "prod-4gpu", "prod-8gpu")
REGION = "us-east-2"
OFFERING_ZONES = tuple(f"{REGION}{z}" for z in mocks.GPU_OFFERING_ZONE_SUFFIXES)
DEPLOYER_ROLE = f"arn:aws:iam::{mocks.ACCOUNT_ID}:role/deployer"
ADMIN_ROLE = f"arn:aws:iam::{mocks.ACCOUNT_ID}:role/PlatformAdmin"
RESERVATION = "cr-0123456789abcdef0"

VPC = "aws:ec2/vpc:Vpc"
SUBNET = "aws:ec2/subnet:Subnet"
NAT = "aws:ec2/natGateway:NatGateway"
ROUTE = "aws:ec2/route:Route"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
EKS = "aws:eks/cluster:Cluster"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
ADDON = "aws:eks/addon:Addon"
ACCESS_ENTRY = "aws:eks/accessEntry:AccessEntry"
ACCESS_POLICY = "aws:eks/accessPolicyAssociation:AccessPolicyAssociation"
KMS_KEY = "aws:kms/key:Key"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ROLE = "aws:iam/role:Role"
K8S_PROVIDER = "pulumi:providers:kubernetes"
NETWORK, CLUSTER, GPU = "minimax-vllm:aws:Network", "minimax-vllm:aws:Cluster", "minimax-vllm:aws:GpuNodeGroup"


def control_plane_log_group(r: Rendering):
    """The cluster's own log group (prod stacks also have a flow log group)."""
    (group,) = [g for g in r.of_type(LOG_GROUP) if g.parent == r.one(CLUSTER).urn]
    return group


@functools.cache
def _render(stack: str, overrides: str) -> Rendering:
    return render(stack, overrides=json.loads(overrides) or None)


def rendered(stack: str, overrides: dict | None = None) -> Rendering:
    """One render per (stack, overrides): a render takes seconds."""
    return _render(stack, json.dumps(overrides or {}, sort_keys=True))


def gpu_group(r: Rendering) -> Resource:
    (group,) = [g for g in r.of_type(NODE_GROUP) if g.parent == r.one(GPU).urn]
    return group


def system_group(r: Rendering) -> Resource:
    (group,) = [g for g in r.of_type(NODE_GROUP) if g.parent == r.one(CLUSTER).urn]
    return group


def launch_template(r: Rendering) -> Resource:
    """The GPU node group's launch template."""
    (template,) = [t for t in r.of_type(LAUNCH_TEMPLATE) if t.parent == r.one(GPU).urn]
    return template


@pytest.mark.parametrize("stack", STACKS)
def test_system_nodes_also_require_imdsv2_and_an_encrypted_root_volume(stack):
    r = rendered(stack)
    (template,) = [t for t in r.of_type(LAUNCH_TEMPLATE) if t.parent == r.one(CLUSTER).urn]
    assert template.inputs["metadataOptions"]["httpTokens"] == "required"
    (root,) = template.inputs["blockDeviceMappings"]
    assert root["ebs"]["encrypted"] == "true" and root["ebs"]["volumeType"] == "gp3"
    assert system_group(r).inputs["launchTemplate"]["id"] == template.id


def gpu_subnet_zones(r: Rendering) -> list[str]:
    """Zones of the subnets the GPU node group uses (its subnet dependencies)."""
    group = gpu_group(r)
    subnets = [r.by_urn(u) for u in group.dependencies if r.by_urn(u).type == SUBNET]
    assert len(subnets) == len(group.inputs["subnetIds"])
    return sorted(s.inputs["availabilityZone"] for s in subnets)


def subnets(r: Rendering, role_tag: str) -> list[Resource]:
    return [s for s in r.of_type(SUBNET) if s.inputs["tags"].get(role_tag) == "1"]


def gpu_nodes_override(**fields) -> dict:
    base = {"instanceType": "p5.48xlarge", "minSize": 1, "desiredSize": 1, "maxSize": 1}
    return {"gpuNodes": {**base, **fields}}


CAPACITY_BLOCK = gpu_nodes_override(
    capacityType="CAPACITY_BLOCK", capacityReservationId=RESERVATION, availabilityZones=[f"{REGION}a"]
)
ODCR = gpu_nodes_override(capacityType="ON_DEMAND", capacityReservationId=RESERVATION, availabilityZones=[f"{REGION}b"])


# --- GPU node group -------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_gpu_node_group_runs_the_configured_p5_type_on_the_al2023_nvidia_ami(stack):
    r = rendered(stack)
    group, lt = gpu_group(r), launch_template(r)
    assert group.inputs["amiType"] == AMI_TYPE == "AL2023_x86_64_NVIDIA"
    assert group.inputs["instanceTypes"] == [from_stack_file(stack).gpu_nodes.instance_type]
    assert "instanceType" not in lt.inputs  # EKS rejects the type in both places
    assert group.inputs["capacityType"] == "ON_DEMAND"
    assert "capacityReservationSpecification" not in lt.inputs
    assert group.inputs["launchTemplate"]["version"] == "1"


@pytest.mark.parametrize("stack", STACKS)
def test_gpu_nodes_carry_the_pool_labels_and_the_gpu_taint(stack):
    group = gpu_group(rendered(stack))
    # Autoscaled stacks add the Cluster Autoscaler's GPU label (tests/test_scaling.py).
    assert gpu_pool.NODE_LABELS.items() <= group.inputs["labels"].items()
    assert group.inputs["taints"] == [
        {"key": gpu_pool.TAINT_KEY, "value": gpu_pool.TAINT_VALUE, "effect": "NO_SCHEDULE"}
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_gpu_scaling_follows_settings_and_updates_never_need_a_second_gpu_node(stack):
    g = from_stack_file(stack).gpu_nodes
    group = gpu_group(rendered(stack))
    assert group.inputs["scalingConfig"] == {
        "minSize": g.min_size,
        "desiredSize": g.desired_size,
        "maxSize": g.max_size,
    }
    assert group.inputs["updateConfig"] == {"maxUnavailable": 1, "updateStrategy": "MINIMAL"}
    assert group.options["deleteBeforeReplace"] is True


@pytest.mark.parametrize("stack", STACKS)
def test_gpu_launch_template_requires_imdsv2_and_keeps_pods_off_node_credentials(stack):
    meta = launch_template(rendered(stack)).inputs["metadataOptions"]
    assert meta == {"httpEndpoint": "enabled", "httpTokens": "required", "httpPutResponseHopLimit": 1}


@pytest.mark.parametrize("stack", STACKS)
def test_gpu_root_volume_is_encrypted_gp3_of_the_configured_size(stack):
    (mapping,) = launch_template(rendered(stack)).inputs["blockDeviceMappings"]
    assert mapping["deviceName"] == "/dev/xvda"
    ebs = mapping["ebs"]
    assert ebs["encrypted"] == "true"
    assert ebs["volumeType"] == "gp3"
    assert ebs["volumeSize"] == from_stack_file(stack).gpu_nodes.root_volume_gib
    assert ebs["deleteOnTermination"] == "true"


def test_gpu_user_data_is_a_multipart_nodeadm_config_that_raids_the_nvme_disks():
    raw = base64.b64decode(launch_template(rendered("prod-8gpu")).inputs["userData"]).decode()
    message = email.message_from_string(raw)
    assert message.is_multipart()
    (part,) = message.get_payload()
    assert part.get_content_type() == "application/node.eks.aws"
    config = yaml.safe_load(part.get_payload())
    assert config["apiVersion"] == "node.eks.aws/v1alpha1"
    assert config["kind"] == "NodeConfig"
    assert config["spec"]["instance"]["localStorage"] == {"strategy": "RAID0"}
    # No `disabledMounts`: nodeadm then bind-mounts containerd's image store (and kubelet's
    # directory, pod logs) onto the array, so image pulls unpack onto the NVMe RAID.
    assert "disabledMounts" not in config["spec"]["instance"]["localStorage"]
    assert "/var/lib/containerd" in gpu_pool.NVME_BIND_MOUNTS
    # nodeadm mounts the RAID0 array at <mountPath>/0; the default mountPath is /mnt/k8s-disks.
    assert gpu_pool.NVME_MOUNT == "/mnt/k8s-disks/0"


def test_gpu_launch_template_tags_the_instances_volumes_and_interfaces_it_launches():
    r = rendered("prod-8gpu")
    specs = {s["resourceType"]: s["tags"] for s in launch_template(r).inputs["tagSpecifications"]}
    assert set(specs) == {"instance", "volume", "network-interface"}
    for tags in specs.values():
        assert tags.items() >= from_stack_file("prod-8gpu").tags.items()


def test_capacity_block_puts_the_type_and_reservation_in_the_launch_template_and_uses_only_its_zone():
    r = rendered("prod-8gpu", CAPACITY_BLOCK)
    group, lt = gpu_group(r), launch_template(r)
    assert group.inputs["capacityType"] == "CAPACITY_BLOCK"
    assert "instanceTypes" not in group.inputs
    assert lt.inputs["instanceType"] == "p5.48xlarge"
    assert lt.inputs["instanceMarketOptions"] == {"marketType": "capacity-block"}
    assert lt.inputs["capacityReservationSpecification"] == {
        "capacityReservationTarget": {"capacityReservationId": RESERVATION}
    }
    assert gpu_subnet_zones(r) == [f"{REGION}a"]
    # The block's zone is authoritative even where the offerings lookup would not list it,
    # and the network grows a subnet there.
    assert f"{REGION}a" in {s.inputs["availabilityZone"] for s in r.of_type(SUBNET)}


def test_on_demand_capacity_reservation_is_targeted_without_the_capacity_block_market():
    r = rendered("prod-8gpu", ODCR)
    group, lt = gpu_group(r), launch_template(r)
    assert group.inputs["capacityType"] == "ON_DEMAND"
    assert group.inputs["instanceTypes"] == ["p5.48xlarge"]
    assert "instanceMarketOptions" not in lt.inputs
    assert lt.inputs["capacityReservationSpecification"] == {
        "capacityReservationTarget": {"capacityReservationId": RESERVATION}
    }


# --- network --------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_new_vpc_spans_two_offering_zones_with_subnets_tagged_for_eks_and_the_lb_controller(stack):
    r = rendered(stack)
    s = from_stack_file(stack)
    assert r.one(VPC).inputs["cidrBlock"] == s.network.vpc_cidr
    public, private = subnets(r, "kubernetes.io/role/elb"), subnets(r, "kubernetes.io/role/internal-elb")
    assert len(public) + len(private) == len(r.of_type(SUBNET))
    zones = sorted(x.inputs["availabilityZone"] for x in private)
    assert zones == sorted(x.inputs["availabilityZone"] for x in public) == list(OFFERING_ZONES)
    for subnet in public + private:
        assert subnet.inputs["tags"][f"kubernetes.io/cluster/{s.cluster_name}"] == "shared"
    assert not any(x.inputs.get("mapPublicIpOnLaunch") for x in public)


@pytest.mark.parametrize("stack", STACKS)
def test_each_zone_has_its_own_nat_gateway_and_private_default_route(stack):
    r = rendered(stack)
    zones = {x.inputs["availabilityZone"] for x in r.of_type(SUBNET)}
    assert len(r.of_type(NAT)) == len(zones)
    nat_routes = [x for x in r.of_type(ROUTE) if x.inputs.get("natGatewayId")]
    assert len(nat_routes) == len(zones)
    assert all(x.inputs["destinationCidrBlock"] == "0.0.0.0/0" for x in r.of_type(ROUTE))
    assert len([x for x in r.of_type(ROUTE) if x.inputs.get("gatewayId")]) == 1


@pytest.mark.parametrize("stack", STACKS)
def test_gpu_subnets_are_private_subnets_in_zones_that_offer_the_instance_type(stack):
    r = rendered(stack)
    assert gpu_subnet_zones(r) == list(OFFERING_ZONES)
    private_ids = r.one(EKS).inputs["vpcConfig"]["subnetIds"]
    assert set(gpu_group(r).inputs["subnetIds"]) <= set(private_ids)


def test_configured_zones_are_used_and_gpu_subnets_filtered_to_the_offering_ones():
    r = rendered("dev", {"network": {"vpcCidr": "10.40.0.0/16", "availabilityZones": [f"{REGION}a", f"{REGION}b"]}})
    assert sorted({x.inputs["availabilityZone"] for x in r.of_type(SUBNET)}) == [f"{REGION}a", f"{REGION}b"]
    assert gpu_subnet_zones(r) == [f"{REGION}b"]


def test_existing_vpc_is_used_as_is_and_gpu_subnets_come_from_its_offering_zones():
    private = [f"subnet-0{i}{i}{i}aaaabbbbcccc" for i in range(1, 7)]
    public = ["subnet-0f0f0f0f0f0f0f0f0"]
    overrides = {
        "network": {"existingVpcId": "vpc-0123456789abcdef0", "publicSubnetIds": public, "privateSubnetIds": private}
    }
    r = rendered("staging", overrides)
    assert not r.of_type(VPC) and not r.of_type(SUBNET) and not r.of_type(NAT)
    assert r.outputs["vpcId"] == "vpc-0123456789abcdef0"
    assert r.one(EKS).inputs["vpcConfig"]["subnetIds"] == private
    expected = [s for s in private if mocks.subnet_zone(s) in OFFERING_ZONES]
    assert expected and len(expected) < len(private)  # the ids above span offering and other zones
    assert gpu_group(r).inputs["subnetIds"] == expected


def test_zone_planning_rules():
    region = [f"{REGION}{z}" for z in "abc"]
    assert plan_zones(region, [region[2]]).network == (region[2], region[0])
    assert plan_zones(region, [region[2]]).gpu == (region[2],)
    assert plan_zones(region, None, gpu_zones=[region[1]]).network == (region[1], region[0])
    with pytest.raises(ZoneError, match="offers the GPU instance type"):
        plan_zones(region, [region[2]], network_zones=region[:2])
    with pytest.raises(ZoneError, match="at least 2 zones"):
        plan_zones(region[:1], region[:1])
    with pytest.raises(ZoneError, match="have no subnet"):
        plan_zones(region, None, network_zones=region[:2], gpu_zones=[region[2]])


@pytest.mark.parametrize("zones", range(2, 7))
@pytest.mark.parametrize("cidr", ["10.40.0.0/16", "10.0.16.0/20"])
def test_subnet_cidrs_fit_the_vpc_and_never_overlap(cidr, zones):
    import ipaddress

    private, public = subnet_cidrs(cidr, zones)
    nets = [ipaddress.ip_network(c) for c in private + public]
    assert len(private) == len(public) == zones
    assert all(n.subnet_of(ipaddress.ip_network(cidr)) for n in nets)
    assert not any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1 :])
    # Pods take VPC addresses (VPC CNI): the private subnets get the big blocks.
    assert min(n.num_addresses for n in nets[:zones]) > max(n.num_addresses for n in nets[zones:])


# --- cluster --------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_cluster_is_named_and_pinned_from_settings(stack):
    s = from_stack_file(stack)
    eks = rendered(stack).one(EKS)
    assert eks.inputs["name"] == s.cluster_name
    assert eks.inputs["version"] == s.cluster.kubernetes_version == versions.KUBERNETES_VERSION
    assert eks.inputs["bootstrapSelfManagedAddons"] is False


@pytest.mark.parametrize("stack", STACKS)
def test_api_access_is_by_access_entries_for_the_deployers_iam_role(stack):
    r = rendered(stack)
    assert r.one(EKS).inputs["accessConfig"] == {
        "authenticationMode": "API",
        "bootstrapClusterCreatorAdminPermissions": False,
    }
    # The caller is an STS assumed-role session; the entry names the IAM role behind it.
    assert [e.inputs["principalArn"] for e in r.of_type(ACCESS_ENTRY)] == [DEPLOYER_ROLE]
    (assoc,) = r.of_type(ACCESS_POLICY)
    assert assoc.inputs["policyArn"] == "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
    assert assoc.inputs["accessScope"] == {"type": "cluster"}


def test_configured_admins_get_cluster_admin_and_the_deployer_is_not_duplicated():
    cluster = {"publicAccessCidrs": ["203.0.113.0/24"], "adminPrincipalArns": [ADMIN_ROLE, DEPLOYER_ROLE]}
    r = rendered("prod-8gpu", {"cluster": cluster})
    entries = {e.inputs["principalArn"]: e for e in r.of_type(ACCESS_ENTRY)}
    assert sorted(entries) == sorted([ADMIN_ROLE, DEPLOYER_ROLE])
    assert all(e.inputs["type"] == "STANDARD" for e in entries.values())
    assocs = {a.inputs["principalArn"]: a for a in r.of_type(ACCESS_POLICY)}
    assert sorted(assocs) == sorted(entries)
    for arn, assoc in assocs.items():
        assert assoc.inputs["policyArn"].endswith("cluster-access-policy/AmazonEKSClusterAdminPolicy")
        assert assoc.inputs["accessScope"] == {"type": "cluster"}
        assert entries[arn].urn in assoc.dependencies


@pytest.mark.parametrize("stack", STACKS)
def test_secrets_are_envelope_encrypted_with_a_rotating_kms_key(stack):
    r = rendered(stack)
    key = r.one(KMS_KEY)
    assert key.inputs["enableKeyRotation"] is True
    config = r.one(EKS).inputs["encryptionConfig"]
    assert config["resources"] == ["secrets"]
    assert config["provider"]["keyArn"] == key.outputs["arn"]


@pytest.mark.parametrize("stack", STACKS)
def test_all_control_plane_logs_go_to_a_log_group_created_first_with_retention(stack):
    r = rendered(stack)
    s = from_stack_file(stack)
    eks, group = r.one(EKS), control_plane_log_group(r)
    assert eks.inputs["enabledClusterLogTypes"] == list(LOG_TYPES)
    assert set(LOG_TYPES) == {"api", "audit", "authenticator", "controllerManager", "scheduler"}
    assert group.inputs["name"] == f"/aws/eks/{s.cluster_name}/cluster"
    assert group.inputs["retentionInDays"] == s.cluster.log_retention_days
    assert group.urn in eks.dependencies


@pytest.mark.parametrize("stack", STACKS)
def test_public_api_endpoint_is_limited_to_the_configured_cidrs(stack):
    vpc = rendered(stack).one(EKS).inputs["vpcConfig"]
    assert vpc["endpointPrivateAccess"] is True
    assert vpc["endpointPublicAccess"] is True
    assert vpc["publicAccessCidrs"] == list(from_stack_file(stack).cluster.public_access_cidrs)


def test_without_public_cidrs_the_api_endpoint_is_private_only():
    vpc = rendered("staging", {"cluster": {"publicAccessCidrs": []}}).one(EKS).inputs["vpcConfig"]
    assert vpc["endpointPrivateAccess"] is True
    assert vpc["endpointPublicAccess"] is False
    assert "publicAccessCidrs" not in vpc


@pytest.mark.parametrize("stack", STACKS)
def test_managed_addons_are_pinned_and_ordered_around_the_nodes(stack):
    r = rendered(stack)
    addons = {a.inputs["addonName"]: a for a in r.of_type(ADDON)}
    pins = versions.EKS_ADDON_VERSIONS[from_stack_file(stack).cluster.kubernetes_version]
    assert sorted(addons) == sorted(["vpc-cni", "coredns", "kube-proxy", "eks-pod-identity-agent"])
    assert {n: a.inputs["addonVersion"] for n, a in addons.items()} == pins
    assert all(re.fullmatch(r"v\d+\.\d+\.\d+-eksbuild\.\d+", v) for v in pins.values())
    system, gpu = system_group(r), gpu_group(r)
    assert system.urn in addons["coredns"].dependencies  # CoreDNS needs a node to run on
    for name in ("vpc-cni", "kube-proxy", "eks-pod-identity-agent"):
        assert addons[name].urn in system.dependencies
        assert addons[name].urn in gpu.dependencies  # nodes join with a working CNI


@pytest.mark.parametrize("stack", STACKS)
def test_system_node_group_runs_two_standard_al2023_nodes_in_private_subnets(stack):
    r = rendered(stack)
    s = from_stack_file(stack)
    system = system_group(r)
    assert system.inputs["amiType"] == "AL2023_x86_64_STANDARD"
    assert system.inputs["instanceTypes"] == [s.cluster.system_instance_type]
    assert system.inputs["scalingConfig"] == {"minSize": 2, "desiredSize": 2, "maxSize": 2}
    assert system.inputs["subnetIds"] == r.one(EKS).inputs["vpcConfig"]["subnetIds"]
    assert gpu_pool.TAINT_KEY not in json.dumps(system.inputs.get("taints", []))


@pytest.mark.parametrize("stack", STACKS)
def test_node_and_cluster_roles_have_the_eks_managed_policies(stack):
    r = rendered(stack)
    attached = {
        a.inputs["policyArn"].rsplit("/", 1)[1]
        for a in r.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if a.parent == r.one(CLUSTER).urn
    }
    assert attached >= {
        "AmazonEKSClusterPolicy",
        "AmazonEKSWorkerNodePolicy",
        "AmazonEKS_CNI_Policy",  # on vpc-cni's own role (tests/test_hardening.py)
    }
    # ECR reads only where the images live (tests/test_image_registry.py), never on `*`.
    assert "AmazonEC2ContainerRegistryReadOnly" not in attached


@pytest.mark.parametrize("stack", STACKS)
def test_kubeconfig_is_a_secret_output_using_aws_eks_get_token(stack):
    r = rendered(stack)
    s = from_stack_file(stack)
    assert "kubeconfig" in r.secret_outputs
    config = json.loads(r.outputs["kubeconfig"])
    (user,) = config["users"]
    exec_ = user["user"]["exec"]
    assert exec_["command"] == "aws"
    assert exec_["args"] == [
        "--region",
        s.region,
        "eks",
        "get-token",
        "--cluster-name",
        s.cluster_name,
        "--output",
        "json",
    ]
    assert config["clusters"][0]["cluster"]["server"].startswith("https://")


@pytest.mark.parametrize("stack", STACKS)
def test_one_kubernetes_provider_waits_for_admin_access_and_serves_every_kubernetes_resource(stack):
    r = rendered(stack)
    provider = r.one(K8S_PROVIDER)
    assert provider.parent == r.one(CLUSTER).urn
    assert {a.urn for a in r.of_type(ACCESS_POLICY)} <= set(provider.dependencies)
    for res in r.resources:
        if res.type.startswith("kubernetes:"):
            assert res.provider.startswith(provider.urn), res.name


@pytest.mark.parametrize("stack", STACKS)
def test_stack_outputs_of_the_aws_layer(stack):
    r = rendered(stack)
    s = from_stack_file(stack)
    assert r.outputs["clusterName"] == s.cluster_name
    assert r.outputs["region"] == s.region
    assert r.outputs["vpcId"].startswith("vpc-")
    assert r.outputs["gpuNodeGroupName"] == gpu_group(r).inputs["nodeGroupName"]


# --- cross-cutting --------------------------------------------------------------------


def _takes_tags(type_token: str) -> bool:
    _, module, name = type_token.split(":")
    mod = importlib.import_module(
        f"pulumi_aws.{module.split('/')[0]}" if module.split("/")[0] != "index" else "pulumi_aws"
    )
    return "tags" in inspect.signature(getattr(mod, name)._internal_init).parameters


@pytest.mark.parametrize("stack", STACKS)
def test_every_taggable_aws_resource_carries_the_stack_tags(stack):
    r = rendered(stack)
    tags = from_stack_file(stack).tags
    assert set(tags) == {"project", "stack", "environment", "owner"}
    aws = [x for x in r.resources if x.type.startswith("aws:")]
    taggable = [x for x in aws if _takes_tags(x.type)]
    assert len(taggable) > 20
    missing = [x.name for x in taggable if not (x.inputs.get("tags") or {}).items() >= tags.items()]
    assert not missing, f"AWS resources without the stack tags: {missing}"


@pytest.mark.parametrize("stack", STACKS)
def test_aws_names_fit_their_length_and_character_limits(stack):
    r = rendered(stack)
    for role in r.of_type(ROLE):
        # Pulumi auto-names a role without name/namePrefix as <resource name>-<7 random characters>.
        name = role.inputs.get("namePrefix") or role.inputs.get("name") or f"{role.name}-abcdefg"
        # IAM role name: <= 64, [\w+=,.@-]; a prefix leaves 26 characters for the unique suffix.
        assert len(name) <= (ROLE_NAME_PREFIX_MAX if "namePrefix" in role.inputs else 64), name
        assert re.fullmatch(r"[\w+=,.@-]+", name), name
    for group in r.of_type(NODE_GROUP):
        name = group.inputs.get("nodeGroupName") or group.inputs["nodeGroupNamePrefix"]
        limit = NODE_GROUP_NAME_MAX if "nodeGroupName" in group.inputs else NODE_GROUP_NAME_MAX - 26
        assert len(name) <= limit and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name), name
    prefix = launch_template(r).inputs["namePrefix"]
    assert len(prefix) <= LAUNCH_TEMPLATE_PREFIX_MAX and re.fullmatch(r"[A-Za-z0-9()./_-]+", prefix), prefix
    log = control_plane_log_group(r).inputs["name"]
    assert len(log) <= 512 and re.fullmatch(r"[.\-_/#A-Za-z0-9]+", log), log
    cluster = r.one(EKS).inputs["name"]
    assert len(cluster) <= 100 and re.fullmatch(r"[0-9A-Za-z][A-Za-z0-9_-]*", cluster), cluster


def test_long_names_are_shortened_with_a_hash_that_keeps_them_distinct():
    a, b = "minimax-vllm-" + "a" * 87, "minimax-vllm-" + "a" * 86 + "b"
    for suffix, limit in (
        ("gpu", NODE_GROUP_NAME_MAX),
        ("node-", ROLE_NAME_PREFIX_MAX),
        ("system-", NODE_GROUP_NAME_MAX - 26),
    ):
        short_a, short_b = short_name(a, suffix, limit), short_name(b, suffix, limit)
        assert len(short_a) == limit and short_a.endswith(suffix) and short_a != short_b
    assert short_name("minimax-vllm-dev", "gpu", NODE_GROUP_NAME_MAX) == "minimax-vllm-dev-gpu"


@pytest.mark.parametrize("stack", STACKS)
def test_aws_children_are_parented_to_their_component(stack):
    r = rendered(stack)
    network, cluster, gpu = r.one(NETWORK), r.one(CLUSTER), r.one(GPU)
    expected = {
        network.urn: {
            VPC,
            SUBNET,
            NAT,
            ROUTE,
            ROUTE_TABLE,
            "aws:ec2/internetGateway:InternetGateway",
            "aws:ec2/eip:Eip",
            "aws:ec2/routeTableAssociation:RouteTableAssociation",
        },
        cluster.urn: {
            EKS,
            KMS_KEY,
            LOG_GROUP,
            ADDON,
            ACCESS_ENTRY,
            ACCESS_POLICY,
            K8S_PROVIDER,
            "aws:iam/rolePolicy:RolePolicy",
        },
    }
    flow_logs = [
        *r.of_type("minimax-vllm:aws:FlowLogs"),
        *r.of_type("minimax-vllm:aws:MirrorBucket"),
        *r.of_type("minimax-vllm:k8s:ReplicaAutoscaler"),
    ]
    # Prod stacks' flow logs have their own log group and delivery role policy; the weight
    # mirror has its own role policies, and so has KEDA's CloudWatch reader (wake on requests).
    shared = {LOG_GROUP, "aws:iam/rolePolicy:RolePolicy"}
    for parent, types in expected.items():
        for type_token in types:
            found = [
                x
                for x in r.of_type(type_token)
                if not (type_token in shared and any(x.parent == f.urn for f in flow_logs))
            ]
            assert found, type_token
            assert all(x.parent == parent for x in found), type_token
    assert {g.parent for g in r.of_type(NODE_GROUP)} == {cluster.urn, gpu.urn}
    assert {t.parent for t in r.of_type(LAUNCH_TEMPLATE)} == {cluster.urn, gpu.urn}
    assert all("pulumi:pulumi:Stack" in c.parent for c in (network, cluster, gpu))
