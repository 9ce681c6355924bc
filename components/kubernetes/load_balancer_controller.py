"""AWS Load Balancer Controller: turns the vLLM Ingress into an ALB, with IAM via Pod Identity."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.aws.pod_identity import workload_identity
from components.facts import DATA, image_pins, versions
from components.kubernetes import crds
from components.kubernetes.helm import pinned_release
from components.kubernetes.ingress import INGRESS_CLASS

NAMESPACE = "kube-system"
SERVICE_ACCOUNT = "aws-load-balancer-controller"


def iam_policy_file(chart_version: str) -> Path:
    """The controller's published IAM policy (docs/install/iam_policy.json) for a chart release:
    named for the version, so bumping the chart pin without the policy fails (file missing)."""
    return DATA / f"aws-load-balancer-controller-v{chart_version}-iam-policy.json"


IAM_POLICY_FILE = iam_policy_file(versions.AWS_LOAD_BALANCER_CONTROLLER_CHART[2])


# The published policy lets the controller edit the rules of any security group in the account
# (it adds the ALB's rules to the nodes' group, which carries no controller tag). Every statement
# that changes a security group is scoped here to the stack's VPC with `ec2:Vpc`, the condition
# key of EC2's `security-group` resource type (Service Authorization Reference, Amazon EC2,
# "Resource types defined by Amazon EC2"; the EC2 User Guide's example "Work with security
# groups" scopes rule changes the same way). CreateSecurityGroup also authorizes the `vpc`
# resource, which has no `ec2:Vpc` key (only `ec2:VpcID`), so its statement is split in two.
SECURITY_GROUP_ACTIONS = frozenset(
    {
        "ec2:AuthorizeSecurityGroupIngress",
        "ec2:RevokeSecurityGroupIngress",
        "ec2:DeleteSecurityGroup",
        "ec2:CreateSecurityGroup",
    }
)
VPC_CONDITION_KEY = "ec2:Vpc"


def published_policy() -> dict:
    return json.loads(IAM_POLICY_FILE.read_text())


def vpc_scoped(policy: dict, partition: str, region: str, account_id: str, vpc_id: str) -> dict:
    """The published policy with every security-group-changing statement held to one VPC."""
    vpc_arn = f"arn:{partition}:ec2:{region}:{account_id}:vpc/{vpc_id}"
    groups = f"arn:{partition}:ec2:{region}:{account_id}:security-group/*"
    out = []
    for st in policy["Statement"]:
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        if not SECURITY_GROUP_ACTIONS & set(actions):
            out.append(st)
            continue
        condition = {**st.get("Condition", {})}
        condition["ArnEquals"] = {**condition.get("ArnEquals", {}), VPC_CONDITION_KEY: vpc_arn}
        if "ec2:CreateSecurityGroup" in actions:
            out.append({"Effect": "Allow", "Action": ["ec2:CreateSecurityGroup"], "Resource": vpc_arn})
        out.append({**st, "Resource": groups, "Condition": condition})
    return {**policy, "Statement": out}


def iam_policy_document(partition: str, region: str, account_id: str, vpc_id: str) -> str:
    # Minified: the readable file is over IAM's 6,144-character managed policy limit.
    scoped = vpc_scoped(published_policy(), partition, region, account_id, vpc_id)
    return json.dumps(scoped, separators=(",", ":"))


def _arn_parts(cluster_arn: str) -> tuple[str, str, str]:
    """(partition, region, account) of an ARN."""
    _, partition, _, region, account, _ = cluster_arn.split(":", 5)
    return partition, region, account


@dataclass(frozen=True)
class LoadBalancerControllerArgs:
    cluster_name: pulumi.Input[str]
    cluster_arn: pulumi.Output[str]  # the role trusts only this cluster's service account
    vpc_id: pulumi.Input[str]
    region: str
    # The one namespace whose Ingresses may use the class, and the one scheme they get.
    ingress_namespace: str
    scheme: str
    provider: k8s.Provider
    tags: dict[str, str]
    depends_on: tuple[pulumi.Resource, ...] = ()


def ingress_class_params(namespace: str, scheme: str) -> dict:
    """IngressClassParams spec (elbv2.k8s.aws/v1beta1): the namespaces and the scheme the class allows."""
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}, "scheme": scheme}


class LoadBalancerController(pulumi.ComponentResource):
    def __init__(self, name: str, args: LoadBalancerControllerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("minimax-vllm:k8s:LoadBalancerController", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        document = pulumi.Output.all(args.cluster_arn, args.vpc_id).apply(
            lambda v: iam_policy_document(*_arn_parts(v[0]), v[1])
        )
        policy = aws.iam.Policy(f"{name}-policy", policy=document, tags=args.tags, opts=child)
        identity = workload_identity(
            name,
            self,
            cluster_name=args.cluster_name,
            cluster_arn=args.cluster_arn,
            namespace=NAMESPACE,
            service_account=SERVICE_ACCOUNT,
            tags=args.tags,
            policy_arn=policy.arn,
            depends_on=args.depends_on,
        )
        # The controller's CRDs are the program's (components/kubernetes/crds.py): upgraded with the chart pin.
        self.crds = crds.crd_group(
            f"{name}-crds",
            crds.lb_controller_crd_urls(),
            pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=list(args.depends_on)),
        )
        self.release = pinned_release(
            f"{name}-release",
            versions.AWS_LOAD_BALANCER_CONTROLLER_CHART,
            skip_crds=True,
            namespace=NAMESPACE,
            values={
                "clusterName": args.cluster_name,
                "region": args.region,
                "vpcId": args.vpc_id,
                "replicaCount": 2,
                # The chart's default image, at its digest (the chart joins repository:tag).
                "image": {
                    "tag": image_pins.tag_at_digest(
                        image_pins.image(versions.AWS_LOAD_BALANCER_CONTROLLER_CHART, "image.tag")
                    )
                },
                "serviceAccount": {"create": True, "name": SERVICE_ACCOUNT},
                # Only Services that ask for it (loadBalancerClass) become NLBs; others are left alone.
                "enableServiceMutatorWebhook": False,
                # The IngressClass the vLLM Ingress names; not the cluster default, so no other
                # Ingress becomes an ALB by accident.
                "createIngressClassResource": True,
                "ingressClass": INGRESS_CLASS,
                "ingressClassConfig": {"default": False},
                # The chart's IngressClassParams, referenced by the class: an Ingress outside the
                # serving namespace, or asking for another scheme, is refused by the controller, so
                # whoever may create an Ingress elsewhere cannot publish a pod through this class.
                "ingressClassParams": {
                    "create": True,
                    "spec": ingress_class_params(args.ingress_namespace, args.scheme),
                },
                "defaultTags": args.tags,
            },
            # Webhooks must be ready before the vLLM namespace's pods are admitted.
            skip_await=False,
            opts=pulumi.ResourceOptions(
                parent=self, provider=args.provider, depends_on=[identity.association, self.crds, *args.depends_on]
            ),
        )
        self.role_arn = identity.role.arn
        self.register_outputs({"roleArn": identity.role.arn, "status": self.release.status})
