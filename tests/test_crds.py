"""CRDs as resources: the charts' CRDs are applied by the program from the pinned releases, and
the releases install without them (skip_crds) after them."""

from __future__ import annotations

import pytest

from components.facts import versions
from components.kubernetes import crds
from ops.offline import graph_order
from ops.offline.engine import render

GROUP = "kubernetes:yaml/v2:ConfigGroup"
RELEASE = "kubernetes:helm.sh/v3:Release"


@pytest.mark.parametrize("stack", ["dev", "prod-8gpu"])
def test_each_crd_owning_chart_installs_after_its_crds_from_the_pinned_release(stack: str) -> None:
    r = render(stack)
    groups = {g.name: g for g in r.of_type(GROUP)}
    expected = {
        versions.KUBE_PROMETHEUS_STACK_CHART[1]: (
            crds.prometheus_operator_crd_urls(),
            versions.PROMETHEUS_OPERATOR_APP,
        ),
        versions.AWS_LOAD_BALANCER_CONTROLLER_CHART[1]: (
            crds.lb_controller_crd_urls(),
            versions.AWS_LOAD_BALANCER_CONTROLLER_APP,
        ),
    }
    for chart, (urls, app) in expected.items():
        (release,) = [x for x in r.of_type(RELEASE) if x.inputs["chart"] == chart]
        assert release.inputs["skipCrds"] is True
        (group,) = [
            groups[u.split("::")[-1]]
            for u in graph_order.created_after(r.resources, release.urn)
            if u.split("::")[-1] in groups
        ]
        assert group.inputs["files"] == urls and all(f"/{app}/" in u for u in urls)
    # Monitors and rules are created only once their CRDs exist.
    for monitor in r.of_type("kubernetes:monitoring.coreos.com/v1:PodMonitor"):  # vLLM's, and the router's
        assert any(g.urn in graph_order.created_after(r.resources, monitor.urn) for g in groups.values())
