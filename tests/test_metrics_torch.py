"""The encode report's PSNR and MS-SSIM (`metrics.measure`, torch float32) against the float64
reference (`metrics.psnr`, `metrics.ms_ssim`): PSNR exactly, MS-SSIM within
MS_SSIM_TOLERANCE, on images chosen to be hard for float32, at odd sizes and the minimum size;
and what is reported where MS-SSIM is not defined."""

from __future__ import annotations

import numpy as np
import pytest

from aecompress import metrics
from aecompress.metrics import (
    MS_SSIM_MIN_SIDE,
    MS_SSIM_TOLERANCE,
    PSNR_CAP_DB,
    measure,
    ms_ssim,
    ms_ssim_defined,
    psnr,
)


def _ramp(height: int, width: int) -> np.ndarray:
    """Smooth ramps across the whole sample range: large means, small local variances."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    planes = (
        cols * 255 / max(width - 1, 1),
        rows * 255 / max(height - 1, 1),
        (rows + cols) * 255 / max(height + width - 2, 1),
    )
    return np.rint(np.stack(planes, axis=2)).astype(np.uint8)


def _pair(kind: str, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(height * 1000 + width)
    shape = (height, width, 3)
    if kind == "random":  # two unrelated noise images: low scores, large variances
        return rng.integers(0, 256, shape, np.uint8), rng.integers(0, 256, shape, np.uint8)
    if kind == "bright flat ±1":  # means near 255, variances near 0: float32's worst case
        a = np.full(shape, 250, np.uint8)
        return a, (a + rng.integers(-1, 2, shape)).astype(np.uint8)
    if kind == "ramp ±1":
        a = _ramp(height, width)
        return a, np.clip(a.astype(int) + rng.integers(-1, 2, shape), 0, 255).astype(np.uint8)
    if kind == "ramp ±30":
        a = _ramp(height, width)
        return a, np.clip(a.astype(int) + rng.integers(-30, 31, shape), 0, 255).astype(np.uint8)
    if kind == "dark 0/1":
        return np.zeros(shape, np.uint8), rng.integers(0, 2, shape).astype(np.uint8)
    raise ValueError(kind)


KINDS = ["random", "bright flat ±1", "ramp ±1", "ramp ±30", "dark 0/1"]
# the minimum size, odd sizes either side of a scale boundary, one more than a BLOCK of rows
# and columns, and a size with all five scales
SIZES = [(11, 11), (11, 40), (13, 29), (21, 22), (45, 77), (175, 176), (200, 301)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", SIZES)
def test_measure_agrees_with_the_float64_reference(kind, size):
    a, b = _pair(kind, *size)
    got = measure(a, b)
    assert got.psnr == psnr(a, b)  # bit for bit
    assert got.ms_ssim == pytest.approx(ms_ssim(a, b), abs=MS_SSIM_TOLERANCE)


def test_measure_agrees_on_a_photo_sized_image():
    rng = np.random.default_rng(7)
    a = _ramp(512, 768)
    a[::3] = rng.integers(0, 256, a[::3].shape, np.uint8)  # texture among the smooth rows
    b = np.clip(a.astype(int) + rng.normal(0, 4, a.shape), 0, 255).astype(np.uint8)
    got = measure(a, b)
    assert got.psnr == psnr(a, b)
    assert got.ms_ssim == pytest.approx(ms_ssim(a, b), abs=MS_SSIM_TOLERANCE)


def test_a_single_plane_is_one_channel():
    a, b = _pair("ramp ±30", 40, 50)
    got = measure(a[:, :, 1], b[:, :, 1])
    assert got.psnr == psnr(a[:, :, 1], b[:, :, 1])
    assert got.ms_ssim == pytest.approx(ms_ssim(a[:, :, 1], b[:, :, 1]), abs=MS_SSIM_TOLERANCE)


@pytest.mark.parametrize("size", [(11, 11), (64, 80), (300, 200)])
def test_identical_images_score_exactly_one_and_the_psnr_cap(size):
    a, _ = _pair("ramp ±30", *size)
    got = measure(a, a.copy())
    assert got.ms_ssim == 1.0
    assert got.psnr == PSNR_CAP_DB  # finite, where the reference says inf


def test_anti_correlated_structure_is_clamped_to_zero():
    rows, cols = np.mgrid[0:40, 0:40]
    a = ((rows + cols) % 2 * 255).astype(np.uint8)[:, :, None].repeat(3, axis=2)
    assert measure(a, 255 - a).ms_ssim == 0.0


@pytest.mark.parametrize("size", [(1, 1), (10, 10), (10, 500), (500, 10), (3, 2)])
def test_no_ms_ssim_below_one_window_but_a_psnr(size):
    assert MS_SSIM_MIN_SIDE == 11
    a, b = _pair("random", *size)
    assert not ms_ssim_defined(*size)
    got = measure(a, b)
    assert got.ms_ssim is None
    assert got.psnr == psnr(a, b)


def test_the_minimum_size_is_one_window():
    assert ms_ssim_defined(11, 11) and ms_ssim_defined(11, 4000)
    assert not ms_ssim_defined(10, 4000) and not ms_ssim_defined(4000, 10)


def test_block_boundaries_do_not_matter(monkeypatch):
    """Bands of rows and blocks of columns are a way of computing, not part of the result."""
    a, b = _pair("ramp ±30", 150, 170)
    wide = measure(a, b).ms_ssim
    monkeypatch.setattr(metrics, "BLOCK", 7)
    assert measure(a, b).ms_ssim == pytest.approx(wide, abs=1e-7)


def test_matmul_precision_is_full_and_restored():
    """A process that allows TF32 or bfloat16 matrix products elsewhere still gets float32
    filtering here, and keeps its setting."""
    import torch

    a, b = _pair("bright flat ±1", 60, 70)
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("medium")
        got = measure(a, b)
        assert torch.get_float32_matmul_precision() == "medium"
    finally:
        torch.set_float32_matmul_precision(before)
    assert got.ms_ssim == pytest.approx(ms_ssim(a, b), abs=MS_SSIM_TOLERANCE)


def test_maps_are_made_a_band_at_a_time(monkeypatch):
    """A tall image's maps are allocated BLOCK rows (plus the window's 10) at a time."""
    import torch

    sizes: list[tuple[int, ...]] = []
    real_empty = torch.empty

    def empty(*args, **kwargs):
        t = real_empty(*args, **kwargs)
        sizes.append(tuple(t.shape))
        return t

    monkeypatch.setattr(torch, "empty", empty)
    a, b = _pair("random", 2000, 300)
    measure(a, b)
    maps = [s for s in sizes if len(s) == 3 and s[1] == 4]  # rows × 4 maps × columns
    assert maps and max(s[0] for s in maps) == metrics.BLOCK + 10
    assert max(s[2] for s in maps) < 300 + metrics.BLOCK


_PEAK_PROBE = """
import resource, sys
import numpy as np
from aecompress.metrics import measure
rng = np.random.default_rng(0)
a = rng.integers(0, 256, (8000, 1000, 3), np.uint8)
b = rng.integers(0, 256, (8000, 1000, 3), np.uint8)
measure(a[:64, :64], b[:64, :64])  # torch loaded and warm
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
measure(a, b)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


@pytest.mark.slow
def test_peak_memory_is_a_few_planes_of_one_channel():
    """8 megapixels: one channel's two float32 planes and their difference (for the PSNR) are
    96 MB, and the peak grows by about 100 MB; full-size float32 maps would add 128 MB per
    channel (the float64 reference, in bands, grows by about 160 MB)."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _PEAK_PROBE], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    grown_mb = int(done.stdout.split()[-1])
    assert grown_mb < 140, f"peak grew by {grown_mb} MB"


def test_the_reference_needs_no_torch():
    """`bench` and anything else that only needs the float64 reference do not pay for torch."""
    import subprocess
    import sys

    code = "import sys, aecompress.metrics; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
