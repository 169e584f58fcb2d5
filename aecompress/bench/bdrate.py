"""Bjøntegaard delta rate: the average bitrate difference between two RD curves at equal
quality, with monotone piecewise-cubic (PCHIP) interpolation of log-rate over the shared
quality range (as in the VCEG-AL22 update and common practice since)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fritsch–Carlson derivatives: monotone where the data are, no overshoot."""
    h = np.diff(x)
    delta = np.diff(y) / h
    d = np.zeros_like(y)
    if len(x) == 2:
        return np.full_like(y, delta[0])
    for k in range(1, len(x) - 1):
        if delta[k - 1] * delta[k] > 0:
            w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
            d[k] = (w1 + w2) / (w1 / delta[k - 1] + w2 / delta[k])
    d[0] = _end_slope(h[0], h[1], delta[0], delta[1])
    d[-1] = _end_slope(h[-1], h[-2], delta[-1], delta[-2])
    return d


def _end_slope(h0: float, h1: float, d0: float, d1: float) -> float:
    s = ((2 * h0 + h1) * d0 - h0 * d1) / (h0 + h1)
    if np.sign(s) != np.sign(d0):
        return 0.0
    if np.sign(d0) != np.sign(d1) and abs(s) > abs(3 * d0):
        return 3 * d0
    return s


def pchip(x: Sequence[float], y: Sequence[float], xq: np.ndarray) -> np.ndarray:
    """Evaluate the PCHIP interpolant of (x, y), x strictly increasing, at xq inside [x0, xn]."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    d = _pchip_slopes(x, y)
    k = np.clip(np.searchsorted(x, xq, side="right") - 1, 0, len(x) - 2)
    h = x[k + 1] - x[k]
    t = (xq - x[k]) / h
    h00, h10 = 2 * t**3 - 3 * t**2 + 1, t**3 - 2 * t**2 + t
    h01, h11 = -2 * t**3 + 3 * t**2, t**3 - t**2
    return h00 * y[k] + h10 * h * d[k] + h01 * y[k + 1] + h11 * h * d[k + 1]


def bd_rate(
    rate_ref: Sequence[float],
    quality_ref: Sequence[float],
    rate_test: Sequence[float],
    quality_test: Sequence[float],
    samples: int = 2001,
) -> float:
    """Percent rate change of `test` against `ref` at equal quality (negative = test smaller).

    Each curve needs at least two points; points are sorted by quality and must be strictly
    increasing in quality after sorting. Raises ValueError when the quality ranges do not overlap.
    """
    curves = []
    for r, q in ((rate_ref, quality_ref), (rate_test, quality_test)):
        r, q = np.asarray(r, float), np.asarray(q, float)
        order = np.argsort(q)
        r, q = r[order], q[order]
        if len(q) < 2 or np.any(np.diff(q) <= 0):
            raise ValueError("each curve needs two or more points with distinct qualities")
        curves.append((q, np.log(r)))
    lo = max(curves[0][0][0], curves[1][0][0])
    hi = min(curves[0][0][-1], curves[1][0][-1])
    if hi <= lo:
        raise ValueError("the curves' quality ranges do not overlap")
    grid = np.linspace(lo, hi, samples)
    diff = pchip(*curves[1], grid) - pchip(*curves[0], grid)
    avg = np.trapezoid(diff, grid) / (hi - lo)
    return float((np.exp(avg) - 1) * 100)
