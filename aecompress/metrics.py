"""Distortion measures between two uint8 images of the same shape (H x W x 3, or H x W)."""

from __future__ import annotations

import math

import numpy as np

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
