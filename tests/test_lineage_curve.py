"""benchmarks/lineage_curve.py: session points from comparison reports, the log-time fit and
its prediction, on made-up reports whose answer is known."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "lineage_curve.py"


@pytest.fixture(scope="module")
def curve():
    spec = importlib.util.spec_from_file_location("lineage_curve", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def report(trained_as: str, fingerprint: str, top_psnr: float, bd: float) -> dict:
    points = [{"quality": 1.0, "bpp": 0.15, "psnr": 26.0},
              {"quality": 100.0, "bpp": 2.0, "psnr": top_psnr}]  # fmt: skip
    part = {"candidate": {"fingerprint": fingerprint, "points": points, "bd_vs_jpeg": bd}}
    return {"trained_as": trained_as, "kodak": part, "valid": part}


def test_a_shipped_model_is_found_by_its_weights_and_a_session_by_its_id(curve):
    chains = {"a" * 16: (300, 7200.0), "lin-s2": (100, 3600.0)}
    shipped = curve.session_point(report("lin-s5", "a" * 16, 36.0, -30.0), chains)
    assert (shipped.steps, shipped.hours) == (300, 2.0)
    session = curve.session_point(report("lin-s2", "b" * 16, 35.0, -29.0), chains)
    assert (session.steps, session.hours, session.kodak_q100) == (100, 1.0, (2.0, 35.0))
    with pytest.raises(SystemExit, match="lin-s9"):
        curve.session_point(report("lin-s9", "c" * 16, 35.0, -29.0), chains)


def test_the_fit_is_per_doubling_and_predicts_where_the_line_meets_the_target(curve):
    # 34 dB at 1 h, +0.5 dB per doubling: 37 dB at 2**6 = 64 h.
    hours = [1.0, 2.0, 4.0, 8.0]
    a, b = curve.fit(hours, [34.0 + 0.5 * math.log2(h) for h in hours])
    assert (a, b) == pytest.approx((34.0, 0.5))
    assert curve.hours_to(37.0, a, b, now=8.0, rising=True) == pytest.approx(64.0)
    assert curve.hours_to(35.0, a, b, now=8.0, rising=True) == 8.0  # met already
    assert math.isinf(curve.hours_to(37.0, a, -0.5, now=8.0, rising=True))  # the wrong way
    assert math.isinf(curve.hours_to(37.0, a, 0.0, now=8.0, rising=True))
    assert math.isinf(curve.hours_to(37.0, a, 1e-9, now=8.0, rising=True))  # not in 60 doublings


def test_a_falling_measure_is_met_going_down(curve):
    # BD-rate -28% at 1 h, -1 point per doubling: -40% at 2**12 h.
    assert curve.hours_to(-40.0, -28.0, -1.0, now=1.0, rising=False) == pytest.approx(4096.0)
    assert math.isinf(curve.hours_to(-40.0, -28.0, 1.0, now=1.0, rising=False))
    assert curve.hours_to(-20.0, -28.0, -1.0, now=1.0, rising=False) == 1.0
