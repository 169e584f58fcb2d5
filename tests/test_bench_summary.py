"""The summary maths: BD-rates between curves, PSNR at a bpp, and the points kept."""

from __future__ import annotations

import pytest

from aecompress.bench.results import CurvePoint
from aecompress.bench.summary import ms_ssim_db, quality_at_rate, rising, summarize


def curve(codec, bpps, psnrs, ms_ssims):
    return [
        CurvePoint(codec, q, 1, b * 100, b, 24 / b, p, m, ms_ssim_db(m), 1, 1, 1, 1)
        for q, b, p, m in zip(range(len(bpps)), bpps, psnrs, ms_ssims, strict=True)
    ]


def test_bd_rate_of_a_curve_against_itself_and_a_cheaper_copy():
    bpps = [0.15, 0.3, 0.6, 1.2, 2.0]
    psnrs = [25.0, 28.1, 31.0, 34.2, 36.5]
    ms = [0.90, 0.95, 0.975, 0.988, 0.993]
    curves = (
        curve("jpeg", bpps, psnrs, ms)
        + curve("same", bpps, psnrs, ms)
        + curve("cheaper", [b * 0.8 for b in bpps], psnrs, ms)
    )
    summary = {s.codec: s for s in summarize(curves, reference="jpeg")}
    assert summary["jpeg"].bd_rate_psnr == pytest.approx(0, abs=1e-9)
    assert summary["same"].bd_rate_psnr == pytest.approx(0, abs=1e-9)
    assert summary["same"].bd_rate_ms_ssim == pytest.approx(0, abs=1e-9)
    assert summary["cheaper"].bd_rate_psnr == pytest.approx(-20, abs=1e-6)
    assert summary["cheaper"].bd_rate_ms_ssim == pytest.approx(-20, abs=1e-6)
    # PSNR at a measured bpp is the measured PSNR; outside the curve there is no value.
    assert quality_at_rate(bpps, psnrs, 0.6) == pytest.approx(31.0)
    assert quality_at_rate(bpps, psnrs, 0.1) is None
    assert quality_at_rate(bpps, psnrs, 2.5) is None
    # Without the reference there are no BD-rates, but PSNR@bpp still is.
    alone = summarize(curve("x", bpps, psnrs, ms), reference="jpeg")[0]
    assert alone.bd_rate_psnr is None and alone.psnr_at_bpp[1.0] is not None


def test_points_that_do_not_improve_quality_are_dropped():
    r, q = rising([0.1, 0.2, 0.3, 0.4], [20.0, 19.0, 25.0, 25.0])
    assert r == [0.1, 0.3] and q == [20.0, 25.0]
