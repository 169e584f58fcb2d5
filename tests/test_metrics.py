"""Tests for aecompress.metrics: MSE, PSNR and MS-SSIM against independent references."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aecompress.metrics import MS_SSIM_WEIGHTS, ms_ssim, ms_ssim_scales, mse, psnr

C1 = (0.01 * 255) ** 2
C2 = (0.03 * 255) ** 2


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(99)


def _textured(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth gradient with some texture, in the middle of the sample range."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    base = np.stack(
        [
            64 + 120 * cols / max(width - 1, 1),
            64 + 120 * rows / max(height - 1, 1),
            128 + 50 * np.sin(rows / 5.0) * np.cos(cols / 7.0),
        ],
        axis=2,
    )
    base += rng.normal(0, 8, base.shape)
    return np.clip(np.rint(base), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# MSE and PSNR


def test_psnr_of_offset_by_one(rng: np.random.Generator) -> None:
    a = rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)
    b = a + np.uint8(1)
    assert mse(a, b) == 1.0
    assert psnr(a, b) == pytest.approx(48.1308036, abs=1e-6)
    assert psnr(b, a) == pytest.approx(20 * math.log10(255), abs=1e-9)


def test_psnr_identical_is_infinite(rng: np.random.Generator) -> None:
    a = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    assert mse(a, a) == 0.0
    assert psnr(a, a) == math.inf


def test_psnr_known_value() -> None:
    a = np.zeros((4, 4, 3), dtype=np.uint8)
    b = np.full((4, 4, 3), 255, dtype=np.uint8)
    assert psnr(a, b) == pytest.approx(0.0)
    b = np.zeros_like(a)
    b[0, 0, 0] = 10  # one sample off by 10: MSE = 100 / 48
    assert mse(a, b) == pytest.approx(100 / 48)
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 * 48 / 100))


def test_uint8_does_not_wrap() -> None:
    a = np.array([[[0, 0, 0]]], dtype=np.uint8)
    b = np.array([[[255, 255, 255]]], dtype=np.uint8)
    assert mse(a, b) == 255.0**2


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError):
        psnr(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))
    with pytest.raises(ValueError):
        ms_ssim(np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4, 3), np.uint8))


# ---------------------------------------------------------------------------------------------
# MS-SSIM: properties


@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 5, 3), (64, 64, 3), (512, 768, 3)])
def test_ms_ssim_of_identical_images_is_one(rng: np.random.Generator, shape) -> None:
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    assert ms_ssim(a, a) == 1.0


@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 5, 3), (64, 64, 3), (512, 768, 3)])
def test_ms_ssim_is_finite_and_bounded(rng: np.random.Generator, shape) -> None:
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    b = rng.integers(0, 256, shape, dtype=np.uint8)
    value = ms_ssim(a, b)
    assert math.isfinite(value)
    assert 0.0 <= value < 1.0


def test_ms_ssim_decreases_with_noise(rng: np.random.Generator) -> None:
    a = _textured(rng, 192, 256)
    noise = rng.normal(0, 1, a.shape)
    scores = []
    for sigma in (0, 1, 2, 4, 8, 16, 32, 64):
        b = np.clip(np.rint(a + sigma * noise), 0, 255).astype(np.uint8)
        scores.append(ms_ssim(a, b))
    assert scores[0] == 1.0
    assert all(scores[i + 1] < scores[i] for i in range(len(scores) - 1)), scores
    assert scores[-1] < 0.8


def test_ms_ssim_is_symmetric(rng: np.random.Generator) -> None:
    a = _textured(rng, 64, 80)
    b = np.clip(a + rng.normal(0, 10, a.shape), 0, 255).astype(np.uint8)
    assert ms_ssim(a, b) == pytest.approx(ms_ssim(b, a), abs=1e-12)


def test_ms_ssim_accepts_a_single_plane(rng: np.random.Generator) -> None:
    a = _textured(rng, 40, 40)
    b = np.clip(a + rng.normal(0, 10, a.shape), 0, 255).astype(np.uint8)
    per_channel = [ms_ssim(a[:, :, c], b[:, :, c]) for c in range(3)]
    assert ms_ssim(a, b) == pytest.approx(np.mean(per_channel), abs=1e-12)


def test_scale_counts() -> None:
    assert ms_ssim_scales(512, 768) == 5
    assert ms_ssim_scales(176, 176) == 5
    assert ms_ssim_scales(175, 400) == 4
    assert ms_ssim_scales(22, 22) == 2
    assert ms_ssim_scales(21, 21) == 1
    assert ms_ssim_scales(1, 1) == 1


def test_ms_ssim_on_a_full_size_image(rng: np.random.Generator) -> None:
    a = _textured(rng, 512, 768)
    b = np.clip(a + rng.normal(0, 5, a.shape), 0, 255).astype(np.uint8)
    assert ms_ssim(a, a) == 1.0
    score = ms_ssim(a, b)
    assert math.isfinite(score) and 0.0 < score < 1.0


# ---------------------------------------------------------------------------------------------
# MS-SSIM: against a direct reference


def _gauss(size: int) -> np.ndarray:
    offsets = np.arange(size) - (size - 1) / 2
    taps = np.exp(-(offsets**2) / (2 * 1.5**2))
    return taps / taps.sum()


def _reference_terms(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Mean cs and mean SSIM of two planes, window by window, straight from the definitions."""
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    win_h, win_w = min(11, x.shape[0]), min(11, x.shape[1])
    weights = np.outer(_gauss(win_h), _gauss(win_w))
    cs_values, ssim_values = [], []
    for i in range(x.shape[0] - win_h + 1):
        for j in range(x.shape[1] - win_w + 1):
            px = x[i : i + win_h, j : j + win_w]
            py = y[i : i + win_h, j : j + win_w]
            mx = np.sum(weights * px)
            my = np.sum(weights * py)
            vx = np.sum(weights * (px - mx) ** 2)
            vy = np.sum(weights * (py - my) ** 2)
            cov = np.sum(weights * (px - mx) * (py - my))
            cs = (2 * cov + C2) / (vx + vy + C2)
            lum = (2 * mx * my + C1) / (mx**2 + my**2 + C1)
            cs_values.append(cs)
            ssim_values.append(lum * cs)
    return float(np.mean(cs_values)), float(np.mean(ssim_values))


def _pool(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    h, w = x.shape[0] // 2, x.shape[1] // 2
    out = np.zeros((h, w))
    for i in range(h):
        for j in range(w):
            out[i, j] = x[2 * i : 2 * i + 2, 2 * j : 2 * j + 2].mean()
    return out


def _noisy_pair(rng: np.random.Generator, height: int, width: int, sigma: float):
    a = _textured(rng, height, width)
    b = np.clip(np.rint(a + rng.normal(0, sigma, a.shape)), 0, 255).astype(np.uint8)
    return a, b


def test_single_scale_matches_direct_ssim(rng: np.random.Generator) -> None:
    a, b = _noisy_pair(rng, 16, 19, 12.0)
    assert ms_ssim_scales(16, 19) == 1
    expected = np.mean([max(_reference_terms(a[:, :, c], b[:, :, c])[1], 0.0) for c in range(3)])
    assert ms_ssim(a, b) == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_two_scales_match_direct_computation(rng: np.random.Generator) -> None:
    a, b = _noisy_pair(rng, 25, 23, 20.0)
    assert ms_ssim_scales(25, 23) == 2
    w1, w2 = MS_SSIM_WEIGHTS[0], MS_SSIM_WEIGHTS[1]
    w1, w2 = w1 / (w1 + w2), w2 / (w1 + w2)
    per_channel = []
    for c in range(3):
        cs1, _ = _reference_terms(a[:, :, c], b[:, :, c])
        _, ssim2 = _reference_terms(_pool(a[:, :, c]), _pool(b[:, :, c]))
        per_channel.append(max(cs1, 0.0) ** w1 * max(ssim2, 0.0) ** w2)
    assert ms_ssim(a, b) == pytest.approx(np.mean(per_channel), rel=1e-10, abs=1e-12)


def test_shrunken_window_on_tiny_image(rng: np.random.Generator) -> None:
    a, b = _noisy_pair(rng, 7, 5, 15.0)
    expected = np.mean([max(_reference_terms(a[:, :, c], b[:, :, c])[1], 0.0) for c in range(3)])
    assert ms_ssim(a, b) == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_negative_structure_is_clamped_not_nan() -> None:
    rows, cols = np.mgrid[0:40, 0:40]
    a = ((rows + cols) % 2 * 255).astype(np.uint8)[:, :, None].repeat(3, axis=2)
    b = (255 - a).astype(np.uint8)  # perfectly anti-correlated
    value = ms_ssim(a, b)
    assert value == 0.0


def test_ms_ssim_memory_does_not_grow_with_the_image_height(rng: np.random.Generator) -> None:
    """MS-SSIM filters its maps in bands of rows: a tall image costs about its float64 copies,
    not a dozen full-size maps (which took ~3 GB per channel at 24 MP)."""
    import tracemalloc

    a = rng.integers(0, 256, size=(4096, 512), dtype=np.uint8)
    b = np.clip(a.astype(np.int16) + rng.integers(-9, 10, size=a.shape), 0, 255).astype(np.uint8)
    tracemalloc.start()
    try:
        score = ms_ssim(a, b)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert 0.0 < score < 1.0
    assert peak < 40 * a.size, f"peak {peak / a.size:.0f} bytes per pixel"


def test_banded_ms_ssim_equals_whole_image_maps(rng: np.random.Generator, monkeypatch) -> None:
    import aecompress.metrics as metrics

    a = rng.integers(0, 256, size=(300, 90, 3), dtype=np.uint8)
    b = np.clip(a.astype(np.int16) + rng.integers(-30, 31, size=a.shape), 0, 255).astype(np.uint8)
    banded = ms_ssim(a, b)
    monkeypatch.setattr(metrics, "BAND_ROWS", 10**6)
    assert banded == pytest.approx(ms_ssim(a, b), rel=1e-12)
