"""The --plot figure: compression-ratio ticks that never collide, and the install hint."""

from __future__ import annotations

import itertools
import sys

import pytest
from test_bench_tables import make_result

from aecompress.bench.plot import (
    MIN_TICK_GAP,
    PLOT_NEEDS,
    ratio_label,
    ratio_ticks,
    rd_figure,
    require_matplotlib,
)
from aecompress.errors import AecError

RANGES = [(0, 2.06), (0, 0.5), (0, 1.03), (0, 3.2), (0, 6), (0, 0.12), (0.1, 1.0), (0, 12)]


@pytest.mark.parametrize(("lo", "hi"), RANGES)
def test_ratio_ticks_are_inside_round_and_apart(lo, hi):
    ticks = ratio_ticks(lo, hi)
    assert ticks, (lo, hi)
    positions = [(24 / r - lo) / (hi - lo) for r in ticks]
    assert all(0 <= x <= 1 for x in positions)
    assert positions == sorted(positions)  # increasing bpp
    for a, b in itertools.pairwise(positions):
        assert b - a >= MIN_TICK_GAP
    assert all(r == int(r) for r in ticks) and len(set(ticks)) == len(ticks)


def test_ratio_ticks_of_a_kodak_run():
    # The axis of a default Kodak run (0 to about 2 bpp) once labelled 240:1 over 96:1.
    ticks = ratio_ticks(0, 2.06)
    assert not {240, 96} <= set(ticks)
    assert {12, 24, 48} <= set(ticks)  # 2, 1 and 0.5 bpp
    assert [ratio_label(r) for r in ticks][-1] == "12:1"
    assert ratio_ticks(1, 1) == [] and ratio_ticks(2, 1) == []


def test_the_drawn_ratio_labels_do_not_overlap():
    pytest.importorskip("matplotlib")
    figure = rd_figure(make_result())
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    top = next(ax for ax in figure.axes[0].child_axes)
    labels = [t for t in top.xaxis.get_ticklabels() if t.get_visible() and t.get_text()]
    assert len(labels) >= 3
    boxes = sorted((t.get_window_extent(renderer) for t in labels), key=lambda b: b.x0)
    for a, b in itertools.pairwise(boxes):
        assert b.x0 > a.x1, [t.get_text() for t in labels]


def test_the_missing_matplotlib_hint_fits_an_install_and_a_checkout(monkeypatch):
    assert "\n" not in PLOT_NEEDS
    assert 'pip install "aecompress[plot]"' in PLOT_NEEDS
    assert 'pip install -e ".[plot]"' in PLOT_NEEDS
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(AecError) as caught:
        require_matplotlib()
    assert str(caught.value) == PLOT_NEEDS
