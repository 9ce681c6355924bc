"""Destroy waits for finalizers: every object a controller of this stack finalizes is deleted,
with waiting (no pulumi.com/skipAwait), before the release of that controller."""

from __future__ import annotations

import dataclasses
import functools

import pytest

from ops.offline import graph_order
from ops.offline.engine import Rendering, render

STACKS = ("dev", "staging", "prod-4gpu", "prod-8gpu")


@functools.cache
def rendered(stack: str) -> Rendering:
    return render(stack)


@pytest.mark.parametrize("stack", STACKS)
def test_finalized_objects_are_awaited_and_deleted_before_their_controller(stack: str) -> None:
    r = rendered(stack)
    holders = graph_order.finalizer_holders(r.resources)
    kinds = {obj.inputs["kind"] for obj, _, _ in holders}
    assert "Ingress" in kinds  # every stack has the ALB's Ingress
    if stack in ("dev", "staging"):  # the autoscaled stacks: KEDA's objects
        assert {"ScaledObject", "TriggerAuthentication"} <= kinds
    assert graph_order.finalizer_problems(r.resources) == []


def test_the_check_catches_skip_await_and_a_release_deleted_first() -> None:
    r = rendered("dev")
    scaled = next(o for o, _, _ in graph_order.finalizer_holders(r.resources) if o.inputs["kind"] == "ScaledObject")
    meta = scaled.inputs["metadata"]
    skipped = dataclasses.replace(
        scaled, inputs={**scaled.inputs, "metadata": {**meta, "annotations": {graph_order.SKIP_AWAIT: "true"}}}
    )
    resources = [skipped if x.urn == scaled.urn else x for x in r.resources]
    assert any("skipAwait" in p for p in graph_order.finalizer_problems(resources))
    keda = next(rel for o, _, rel in graph_order.finalizer_holders(r.resources) if o.urn == scaled.urn)
    assert keda.urn in graph_order.created_after(r.resources, scaled.urn)  # the edge that orders destroy
    untied = graph_order.without_dependents(r.resources, {keda.urn})
    assert any(scaled.name in p and "not before the release" in p for p in graph_order.finalizer_problems(untied))
