"""The AWS side: VPC and subnets, the EKS cluster and its IAM trust, the GPU node group and the
launch template every node group uses, VPC flow logs, Pod Identity roles, capacity reservations.

May import `components.facts` and `components.settings`; never a Kubernetes workload, a Helm
release or a higher room.
"""
