"""Names the AWS Load Balancer Controller's chart creates that the endpoint refers to.

Pure (no Pulumi), so the endpoint's plain objects and `ops verify` can import it.
"""

from __future__ import annotations

# The IngressClass the load balancer controller's chart creates (values `ingressClass`).
INGRESS_CLASS = "alb"
