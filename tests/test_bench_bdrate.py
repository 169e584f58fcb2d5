import numpy as np
import pytest

from aecompress.bench.bdrate import bd_rate, pchip

RATE = [0.1, 0.25, 0.5, 1.0, 1.5]
PSNR = [26.0, 29.0, 31.5, 35.0, 37.0]


def test_same_curve_is_zero():
    assert bd_rate(RATE, PSNR, RATE, PSNR) == pytest.approx(0, abs=1e-9)


def test_rates_times_point_eight_is_minus_twenty():
    assert bd_rate(RATE, PSNR, [r * 0.8 for r in RATE], PSNR) == pytest.approx(-20, abs=1e-6)


def test_order_of_points_does_not_matter():
    shuffled = [3, 0, 4, 1, 2]
    r2 = [RATE[i] * 1.1 for i in shuffled]
    p2 = [PSNR[i] for i in shuffled]
    assert bd_rate(RATE, PSNR, r2, p2) == pytest.approx(10, abs=1e-6)


def test_pchip_passes_through_points_and_is_monotone():
    xq = np.linspace(PSNR[0], PSNR[-1], 500)
    yq = pchip(PSNR, np.log(RATE), xq)
    assert np.all(np.diff(yq) >= 0)
    assert np.allclose(pchip(PSNR, np.log(RATE), np.array(PSNR)), np.log(RATE))


def test_disjoint_curves_are_refused():
    with pytest.raises(ValueError, match="overlap"):
        bd_rate(RATE, PSNR, RATE, [p + 20 for p in PSNR])
