"""Replica and node scaling: the policy derived from the cold start, the KEDA objects that
carry it, the rules on the scaling settings, KEDA's release and the Cluster Autoscaler.

May import the rooms below it (facts, settings, aws, kubernetes, serving, weights).
"""
