"""Cluster plumbing on the Kubernetes side: pinned Helm releases, custom resources from plain
objects, the NVIDIA device plugin, the AWS Load Balancer Controller, pod security and
NetworkPolicy objects.

May import `components.facts`, `components.settings` and `components.aws` (Pod Identity);
nothing that serves, scales or observes the model.
"""
