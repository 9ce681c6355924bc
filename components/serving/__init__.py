"""Serving the model: vLLM's flags per profile, the KV-cache capacity check, the workload as
plain objects, the vLLM Service component, the ALB endpoint, what may reach it (exposure) and
which code and image may run (supply chain).

May import the rooms below it (facts, settings, aws, kubernetes) and `components.weights`.
"""
