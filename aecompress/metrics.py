"""Distortion measures between two uint8 images of the same shape (H x W x 3, or H x W).

`mse`, `psnr` and `ms_ssim` are the reference: float64 numpy, no torch, what `bench` reports.
`measure` gives the encode report's PSNR and MS-SSIM: the same definitions computed by torch in
float32 where the decoded image is (a 12-megapixel photo in 0.9 s on the 2-core CPU, where the
reference takes 9.6 s: benchmarks/startup.md), held to the reference by
tests/test_metrics_torch.py; and no MS-SSIM for an image under MS_SSIM_MIN_SIDE (11) pixels on a
side, which has no window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the reference needs no torch; `measure` imports it when called
    import torch

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_WINDOW = 11
_SIGMA = 1.5
_K1 = 0.01
_K2 = 0.03
_PEAK = 255.0


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3) or a.size == 0:
        raise ValueError(f"expected a non-empty H x W or H x W x C image, got shape {a.shape}")
    return a, b


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error over all samples, computed in float64."""
    a, b = _pair(a, b)
    diff = a.astype(np.float64) - b.astype(np.float64)
    return float(np.mean(diff * diff))


# What a report shows for identical images, whose PSNR is infinite, so that means stay finite
# (also the cap of MS-SSIM on its dB scale, −10·log10(1 − MS-SSIM), at MS-SSIM == 1).
PSNR_CAP_DB = 100.0


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for 8-bit samples: 10 log10(255^2 / MSE).

    Returns ``math.inf`` for identical images.
    """
    return psnr_of_mse(mse(a, b), cap=math.inf)


def psnr_of_mse(error: float, cap: float = PSNR_CAP_DB) -> float:
    """PSNR in dB of a mean squared error (0..255 scale), at most `cap` (identical images)."""
    if error == 0.0:
        return cap
    return min(10.0 * math.log10(_PEAK * _PEAK / error), cap)


def gaussian_window(size: int) -> np.ndarray:
    """A normalised 1-D Gaussian of `size` taps, sigma 1.5, centred between its end taps."""
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    taps = np.exp(-(offsets**2) / (2.0 * _SIGMA**2))
    return taps / taps.sum()


def _filter(x: np.ndarray, taps: np.ndarray, axis: int) -> np.ndarray:
    """Valid (unpadded) filtering of `x` along `axis` with a symmetric 1-D kernel.

    Written as sums of shifted slices, pairing the taps k and n-1-k that share a weight.
    """
    size = len(taps)
    length = x.shape[axis] - size + 1

    def shifted(offset: int) -> np.ndarray:
        index = [slice(None)] * x.ndim
        index[axis] = slice(offset, offset + length)
        return x[tuple(index)]

    middle = size // 2
    if size % 2:
        out = shifted(middle) * taps[middle]
    else:
        out = np.zeros_like(shifted(0))
    scratch = np.empty_like(out)
    for offset in range(size // 2):
        np.add(shifted(offset), shifted(size - 1 - offset), out=scratch)
        scratch *= taps[offset]
        out += scratch
    return out


# Output rows of the SSIM maps computed at once. The maps are filtered in bands of rows so that
# memory stays at a few (BAND_ROWS + 10) × W float64 planes whatever the image height: at 24 MP
# whole-image maps took about 3 GB per channel.
BAND_ROWS = 256


def _ssim_terms(
    x: np.ndarray, y: np.ndarray, rows: np.ndarray, cols: np.ndarray
) -> tuple[float, float]:
    """Means of the contrast-structure map and of the SSIM map of two float64 planes.

    Rather than filtering x, y, x^2, y^2 and xy, this filters the four maps s = x + y - 255,
    d = x - y, s^2 and d^2, which carry the same information:
    var_x + var_y = (var_s + var_d) / 2, 2 cov_xy = (var_s - var_d) / 2,
    mu_x^2 + mu_y^2 = (m^2 + mu_d^2) / 2 and 2 mu_x mu_y = (m^2 - mu_d^2) / 2, m = mu_s + 255.
    For identical planes d = 0, so both maps are exactly 1. The maps are summed band by band
    of BAND_ROWS output rows (each band reads its rows plus the window's len(rows) - 1).
    """
    out_rows = x.shape[0] - len(rows) + 1
    cs_sum = ssim_sum = 0.0
    for top in range(0, out_rows, BAND_ROWS):
        bottom = min(top + BAND_ROWS, out_rows) + len(rows) - 1
        cs, ssim = _ssim_band(x[top:bottom], y[top:bottom], rows, cols)
        cs_sum += cs
        ssim_sum += ssim
    count = out_rows * (x.shape[1] - len(cols) + 1)
    return cs_sum / count, ssim_sum / count


def _ssim_band(
    x: np.ndarray, y: np.ndarray, rows: np.ndarray, cols: np.ndarray
) -> tuple[float, float]:
    """Sums of the contrast-structure and SSIM maps over the valid rows of one band."""
    c1 = (_K1 * _PEAK) ** 2
    c2 = (_K2 * _PEAK) ** 2
    maps = np.empty((4, *x.shape), dtype=np.float64)
    np.add(x, y, out=maps[0])
    maps[0] -= _PEAK
    np.subtract(x, y, out=maps[1])
    np.multiply(maps[0], maps[0], out=maps[2])
    np.multiply(maps[1], maps[1], out=maps[3])
    mu_s, mu_d, mean_ss, mean_dd = _filter(_filter(maps, cols, axis=2), rows, axis=1)

    var_s = mean_ss - mu_s * mu_s
    var_d = mean_dd - mu_d * mu_d
    cs_map = (var_s - var_d + 2.0 * c2) / (var_s + var_d + 2.0 * c2)
    mean_sq = mu_s + _PEAK
    mean_sq *= mean_sq
    diff_sq = mu_d * mu_d
    luminance = (mean_sq - diff_sq + 2.0 * c1) / (mean_sq + diff_sq + 2.0 * c1)
    return float(cs_map.sum()), float((luminance * cs_map).sum())


def _downsample(x: np.ndarray) -> np.ndarray:
    """2 x 2 average pooling with stride 2; an odd last row or column is dropped."""
    height, width = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
    total = x[0:height:2, 0:width:2] + x[1:height:2, 0:width:2]
    total += x[0:height:2, 1:width:2]
    total += x[1:height:2, 1:width:2]
    total *= 0.25
    return total


def ms_ssim_scales(height: int, width: int) -> int:
    """How many of the 5 scales an image of this size gets (smallest side at the last >= 11)."""
    scales = 1
    while scales < len(MS_SSIM_WEIGHTS) and min(height, width) >> scales >= _WINDOW:
        scales += 1
    return scales


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Multi-scale SSIM (Wang, Simoncelli & Bovik, 2003) of two uint8 images, in [0, 1].

    Each channel of an H x W x 3 image (or the single plane of an H x W one) is scored on its
    own and the channel scores are averaged. Per channel, with sample range L = 255:

    * an 11 x 11 Gaussian window with sigma 1.5, applied separably and without padding
      ("valid" filtering), gives local means, variances and covariance, in float64;
    * with C1 = (0.01 L)^2 and C2 = (0.03 L)^2, the contrast-structure map is
      (2 cov + C2) / (var_x + var_y + C2) and the luminance map is
      (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1);
    * scales 1..M-1 contribute the mean contrast-structure value cs_j, the last scale M the
      mean of luminance x contrast-structure (its SSIM); between scales both images are
      downsampled by 2 x 2 average pooling (an odd last row or column is dropped);
    * the score is prod_j max(cs_j, 0)^w_j x max(ssim_M, 0)^w_M with the standard weights
      (0.0448, 0.2856, 0.3001, 0.2363, 0.1333). Negative values are clamped to 0 (ReLU) before
      the power, so the result is never NaN.

    M is 5 when the image is large enough (smallest side >= 176), else the largest number of
    scales whose smallest side is still at least 11 pixels (at least 1), with the first M
    weights renormalised to sum to 1. An image shorter or narrower than 11 pixels uses a window
    shrunk to the image size along that axis (still sigma 1.5), so even 1 x 1 has a score.
    Identical images score exactly 1.0.
    """
    a, b = _pair(a, b)
    if a.ndim == 2:
        a, b = a[:, :, None], b[:, :, None]
    height, width = a.shape[:2]
    rows = gaussian_window(min(_WINDOW, height))
    cols = gaussian_window(min(_WINDOW, width))
    scales = ms_ssim_scales(height, width)
    weights = np.asarray(MS_SSIM_WEIGHTS[:scales], dtype=np.float64)
    weights /= weights.sum()

    scores = []
    for channel in range(a.shape[2]):
        x = a[:, :, channel].astype(np.float64)
        y = b[:, :, channel].astype(np.float64)
        factors = np.empty(scales, dtype=np.float64)
        for scale in range(scales):
            cs, ssim = _ssim_terms(x, y, rows, cols)
            last = scale == scales - 1
            factors[scale] = max(ssim if last else cs, 0.0)
            if not last:
                x, y = _downsample(x), _downsample(y)
        scores.append(float(np.prod(factors**weights)))
    return float(np.mean(scores))


# ---------------------------------------------------------------------------------------------
# The encode report's measures: the same PSNR and MS-SSIM, in torch float32 on the device.
#
# `ms_ssim` above is the reference (float64 numpy, one core): on a 12-megapixel photo it took
# longer than the rest of the report. `measure` computes the same two numbers where the decoded
# image is, with torch's threads (or the GPU), and tests/test_metrics_torch.py holds it to the
# reference: PSNR exactly, MS-SSIM within MS_SSIM_TOLERANCE.

# The smallest side MS-SSIM is defined for: one whole 11 × 11 window. From 11 to 175 pixels
# the score has the scales that fit (ms_ssim_scales: 1 scale, plain SSIM, up to 21 pixels; all
# 5 from 176); below 11 there is no window to place, and `measure` reports None (the reference
# `ms_ssim` shrinks its window instead, a score no other tool would give).
MS_SSIM_MIN_SIDE = _WINDOW
# |measure(...).ms_ssim - ms_ssim(...)| on the images of tests/test_metrics_torch.py (random,
# smooth, flat, ramps, odd sizes, the minimum size) stays below 1e-7; this bound has margin.
MS_SSIM_TOLERANCE = 1e-6
# Output rows and columns of one block of the filtering: the separable Gaussian runs as matrix
# products with banded (BLOCK + 10) × BLOCK matrices, which do 42 multiply-adds per output
# where 11 would do, yet take a third of the time of 11 shifted element-wise passes on the CPU
# (the products run at full vector width on data in cache).
BLOCK = 32


def ms_ssim_defined(height: int, width: int) -> bool:
    """Whether an image of this size has an MS-SSIM (at least MS_SSIM_MIN_SIDE each way)."""
    return min(height, width) >= MS_SSIM_MIN_SIDE


@dataclass(frozen=True)
class Fidelity:
    """How close a decoded image is to its source, as the encode report gives it."""

    psnr: float  # dB; PSNR_CAP_DB for identical images (finite, so JSON can hold it)
    ms_ssim: float | None  # None: the image is smaller than MS_SSIM_MIN_SIDE on a side


def measure(
    reference: np.ndarray, decoded: np.ndarray, device: str | torch.device = "cpu"
) -> Fidelity:
    """PSNR and MS-SSIM of `decoded` against `reference` (uint8, H x W x C or H x W, the same
    shape), computed by torch on `device`, one channel at a time: `psnr` (capped at
    PSNR_CAP_DB) and `ms_ssim` (None when not `ms_ssim_defined`).

    The PSNR's squared errors are integers, summed exactly (`_sum_of_squares`), so it is bit
    for bit the reference's. MS-SSIM is the reference's definition (`ms_ssim`) in float32,
    within MS_SSIM_TOLERANCE: the planes are centred on their means before the squares are
    filtered, the filtering runs as float32 matrix products at full precision (never TF32 or
    bfloat16), and each band's sums are added up in float64. Memory: one channel's two float32
    planes, their difference, and the maps of a band of BLOCK rows: the peak grows by about 13
    bytes a pixel, 310 MB at 24 megapixels (the reference's, in bands of float64: 520 MB).
    """
    import torch

    a, b = _pair(reference, decoded)
    if a.ndim == 2:
        a, b = a[:, :, None], b[:, :, None]
    height, width, channels = a.shape
    device = torch.device(device)
    defined = ms_ssim_defined(height, width)
    scales = ms_ssim_scales(height, width)
    weights = np.asarray(MS_SSIM_WEIGHTS[:scales], dtype=np.float64)
    weights /= weights.sum()
    squared_error = 0.0
    scores = []
    precision = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")  # IEEE float32 products, whatever was set
    try:
        with torch.inference_mode():
            filters = _BandFilter(device)
            for channel in range(channels):
                x, y = (_plane(v[:, :, channel], device) for v in (a, b))
                squared_error += _sum_of_squares(torch.sub(x, y))
                if not defined:
                    continue
                factors = np.empty(scales, dtype=np.float64)
                for scale in range(scales):
                    cs, ssim = _torch_ssim_terms(x, y, filters)
                    last = scale == scales - 1
                    factors[scale] = max(ssim if last else cs, 0.0)
                    if not last:
                        x, y = _torch_downsample(x), _torch_downsample(y)
                scores.append(float(np.prod(factors**weights)))
    finally:
        torch.set_float32_matmul_precision(precision)
    return Fidelity(
        psnr=psnr_of_mse(squared_error / a.size),
        ms_ssim=float(np.mean(scores)) if defined else None,
    )


# Squared differences of uint8 samples summed in float32 are exact while the sum stays below
# 2^24: up to 256 of them (256 · 255² < 2^24), in any order.
_EXACT_TERMS = 256


def _sum_of_squares(diff: torch.Tensor) -> float:
    """The sum of squares of integer-valued float32 differences (-255..255), exactly: sums of
    _EXACT_TERMS in float32, then of those in float64."""
    import torch

    squares = diff.square_().view(-1)
    whole = squares.numel() // _EXACT_TERMS * _EXACT_TERMS
    parts = squares[:whole].view(-1, _EXACT_TERMS).sum(1)
    return float(parts.sum(dtype=torch.float64) + squares[whole:].sum(dtype=torch.float64))


def _plane(v: np.ndarray, device: torch.device) -> torch.Tensor:
    """One H x W uint8 channel as a contiguous float32 tensor on `device` (a copy: the source
    arrays are often read-only, which torch would warn about)."""
    import torch

    return torch.from_numpy(np.array(v, dtype=np.uint8, order="C")).to(device).to(torch.float32)


class _BandFilter:
    """The 11-tap Gaussian, valid filtering, of K maps of r + 10 rows (r <= BLOCK) as two
    matrix products: the rows by G_v (r × (r + 10)), then blocks of BLOCK + 10 columns by
    G_h ((BLOCK + 10) × BLOCK), where G_v[i, i + k] = taps[k] and G_h = G_vᵀ."""

    def __init__(self, device: torch.device):
        import torch

        taps = torch.tensor(gaussian_window(_WINDOW), dtype=torch.float32)
        band = torch.zeros(BLOCK, BLOCK + _WINDOW - 1, dtype=torch.float32)
        for i in range(BLOCK):
            band[i, i : i + _WINDOW] = taps
        self.rows = band.to(device)  # BLOCK × (BLOCK + 10); [:r, :r + 10] for r rows
        self.cols = band.t().contiguous().to(device)  # (BLOCK + 10) × BLOCK

    @staticmethod
    def padded_width(width: int) -> int:
        """Columns the maps need so that whole blocks cover the width - 10 outputs."""
        return -(-(width - _WINDOW + 1) // BLOCK) * BLOCK + _WINDOW - 1

    def __call__(self, maps: torch.Tensor) -> torch.Tensor:
        """(r + 10) × K × padded_width(W) → r × K × (whole blocks of outputs, W - 10 or more:
        those past W - 10 read the padding and are to be ignored). The maps' rows are
        outermost, so that the row pass is one product with the (r + 10) × (K·width) matrix
        they form."""
        import torch

        rows_in, k, width = maps.shape
        r, span = rows_in - _WINDOW + 1, BLOCK + _WINDOW - 1
        filtered = torch.mm(self.rows[:r, :rows_in], maps.view(rows_in, k * width))
        # each row's overlapping blocks of BLOCK + 10 columns, one per matrix row (a copy)
        blocks = filtered.view(r * k, width).unfold(1, span, BLOCK).reshape(-1, span)
        return torch.mm(blocks, self.cols).view(r, k, -1)


def _torch_ssim_terms(
    x: torch.Tensor, y: torch.Tensor, filters: _BandFilter
) -> tuple[float, float]:
    """Means of the contrast-structure and SSIM maps of two float32 planes (H x W), as
    `_ssim_terms` computes them in float64, band by band of BLOCK output rows.

    s = x + y - mean(x + y) and d = x - y - mean(x - y): shifting a plane leaves every local
    variance as it is, and keeps s^2 and d^2, whose filtered means the variances are taken from,
    near the size of the variances themselves, where float32 holds them to ~1e-7 of that. Each
    band's sums are float32 (torch sums in cascades, to ~1e-7 relative), added up in float64."""
    import torch

    c1 = (_K1 * _PEAK) ** 2
    c2 = (_K2 * _PEAK) ** 2
    height, width = x.shape
    out_rows, out_cols = height - _WINDOW + 1, width - _WINDOW + 1
    # any constants centre the planes: float32 sums of the planes are plenty
    sum_x, sum_y = float(x.sum()), float(y.sum())
    mean_s, mean_d = (sum_x + sum_y) / x.numel(), (sum_x - sum_y) / x.numel()
    padded = filters.padded_width(width)
    cs_sum = ssim_sum = 0.0
    for top in range(0, out_rows, BLOCK):
        bottom = min(top + BLOCK, out_rows) + _WINDOW - 1
        xb, yb = x[top:bottom], y[top:bottom]
        maps = torch.empty((bottom - top, 4, padded), dtype=torch.float32, device=x.device)
        maps[..., width:] = 0.0  # read by the outputs past the last, which are dropped
        s, d = maps[:, 0, :width], maps[:, 1, :width]
        torch.add(xb, yb, out=s).sub_(mean_s)
        torch.sub(xb, yb, out=d).sub_(mean_d)
        torch.mul(s, s, out=maps[:, 2, :width])
        torch.mul(d, d, out=maps[:, 3, :width])
        filtered = filters(maps)[..., :out_cols]  # rows × 4 × columns
        mu_s, mu_d, mean_ss, mean_dd = filtered.unbind(1)
        var_s = mean_ss.sub_(mu_s * mu_s)
        var_d = mean_dd.sub_(mu_d * mu_d)
        denominator = var_s + var_d + 2.0 * c2
        cs_map = var_s.sub_(var_d).add_(2.0 * c2).div_(denominator)  # (4 cov + 2 C2) / ...
        mean_sq = mu_s.add_(mean_s).square_()  # (mu_x + mu_y)^2
        diff_sq = mu_d.add_(mean_d).square_()  # (mu_x - mu_y)^2
        luminance = mean_sq - diff_sq + 2.0 * c1  # 4 mu_x mu_y + 2 C1 over ...
        luminance.div_(mean_sq.add_(diff_sq).add_(2.0 * c1))  # 2 (mu_x^2 + mu_y^2) + 2 C1
        cs_sum += float(cs_map.sum())
        ssim_sum += float(luminance.mul_(cs_map).sum())
    count = out_rows * out_cols
    return cs_sum / count, ssim_sum / count


def _torch_downsample(x: torch.Tensor) -> torch.Tensor:
    """`_downsample` of an H x W float32 plane: 2 x 2 means, an odd last row or column dropped.
    The samples are multiples of 4^-scale below 256, so float32 holds every mean exactly."""
    height, width = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
    total = x[0:height:2, 0:width:2] + x[1:height:2, 0:width:2]
    total += x[0:height:2, 1:width:2]
    total += x[1:height:2, 1:width:2]
    return total.mul_(0.25)
