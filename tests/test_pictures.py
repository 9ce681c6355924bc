"""The plan's cold-start Gantt chart and the scaling pictures: drawn, and the same bytes every run."""

from __future__ import annotations

import pytest

from components.facts import catalog, timeline

pytest.importorskip("matplotlib")

from ops import pictures  # noqa: E402  (after the skip: matplotlib is a runtime pin of make plan)

WEIGHTS_GB = catalog.MODEL_CATALOG[catalog.MODELS[0]].weights_gb


def test_the_cold_start_chart_shows_every_start_and_is_the_same_bytes_twice(tmp_path):
    starts = timeline.scenarios(WEIGHTS_GB)
    one = pictures.cold_start(starts, tmp_path / "a" / "cold-start.svg", 600).read_bytes()
    two = pictures.cold_start(starts, tmp_path / "b" / "cold-start.svg", 600).read_bytes()
    assert one == two
    assert one.startswith(b"<?xml") and b"<svg" in one
    assert b"Date" not in one  # no time stamp in the metadata


def test_the_scaling_picture_is_the_same_bytes_twice(tmp_path):
    series = [(10 + i / 60, 1 + (i > 60), 1 + (i > 70), float(max(0, 50 - abs(i - 90)))) for i in range(240)]
    one = pictures.scaling("sudden burst", series, 2, tmp_path / "a.svg").read_bytes()
    two = pictures.scaling("sudden burst", series, 2, tmp_path / "b.svg").read_bytes()
    assert one == two and b"<svg" in one


def test_make_plan_writes_the_chart_beside_the_manifests(tmp_path, capsys):
    from ops import plan
    from ops.plan_cold_start import COLD_START_SVG

    assert plan.main("dev", str(tmp_path)) == 0
    assert (tmp_path / COLD_START_SVG).stat().st_size > 10_000
    assert f"Cold-start picture: {tmp_path / COLD_START_SVG}" in capsys.readouterr().out
