"""The rate–distortion plot of `aecompress bench --plot`: PSNR vs bpp with the compression
ratio on a top axis, and MS-SSIM (dB) vs bpp, every codec on both. Needs matplotlib (the
"plot" extra), imported only here and only when a plot is drawn."""

from __future__ import annotations

import io
from collections.abc import Sequence

from ..errors import AecError
from .options import is_aec
from .results import BenchResult, CurvePoint

PLOT_NEEDS = (
    '--plot needs matplotlib: pip install "aecompress[plot]" '
    '(in a checkout: pip install -e ".[plot]")'
)

# Compression ratios (24 / bpp) offered as top-axis ticks, roundest first: those of round bpps
# (24:1 = 1 bpp, 48:1 = 0.5, 96:1 = 0.25, 12:1 = 2, 240:1 = 0.1), then the others.
RATIO_CANDIDATES: tuple[int, ...] = (
    24, 12, 48, 96, 240, 6, 8, 16, 32, 64, 120, 160, 480, 3, 4, 20, 40, 200, 960, 2,
)  # fmt: skip
MIN_TICK_GAP = 0.12
"""Least distance between two ratio ticks, as a fraction of the axis width: at the plot's size
(each axis about 5.5 inches wide) that leaves room for labels like "240:1"."""


def ratio_label(ratio: float) -> str:
    return f"{ratio:g}:1"


def ratio_ticks(bpp_lo: float, bpp_hi: float, min_gap: float = MIN_TICK_GAP) -> list[int]:
    """Round compression ratios to mark on a linear bpp axis from bpp_lo to bpp_hi.

    Ratio r sits at bpp 24 / r; the ticks lie inside the axis, are at least `min_gap` of its
    width apart (so that their labels never touch) and are taken roundest first (see
    `RATIO_CANDIDATES`). Returned in increasing bpp (decreasing ratio)."""
    span = bpp_hi - bpp_lo
    if not span > 0:
        return []
    chosen: list[tuple[float, int]] = []
    for ratio in RATIO_CANDIDATES:
        x = (24 / ratio - bpp_lo) / span
        if 0 <= x <= 1 and all(abs(x - other) >= min_gap for other, _ in chosen):
            chosen.append((x, ratio))
    return [ratio for _, ratio in sorted(chosen)]


def require_matplotlib() -> None:
    """Raise AecError with the install hint when matplotlib cannot be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise AecError(PLOT_NEEDS) from None


def _by_codec(curves: Sequence[CurvePoint]) -> dict[str, list[CurvePoint]]:
    groups: dict[str, list[CurvePoint]] = {}
    for c in curves:
        groups.setdefault(c.codec, []).append(c)
    return {k: sorted(v, key=lambda c: c.bpp) for k, v in groups.items()}


def plot_png(result: BenchResult) -> bytes:
    """PSNR vs bpp (ratio on top) and MS-SSIM dB vs bpp, as PNG bytes (Agg, no GUI)."""
    buffer = io.BytesIO()
    rd_figure(result).savefig(buffer, format="png")
    return buffer.getvalue()


def rd_figure(result: BenchResult):
    """The matplotlib Figure `plot_png` writes (Agg canvas). AecError without matplotlib."""
    require_matplotlib()
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullLocator

    figure = Figure(figsize=(13, 5.2), dpi=120, layout="constrained")
    FigureCanvasAgg(figure)
    ax_psnr, ax_ssim = figure.subplots(1, 2)
    infos = {c.name: c for c in result.codecs}
    bpp_max = 0.0
    for codec, curve in _by_codec(result.curves).items():
        bpp = [c.bpp for c in curve]
        bpp_max = max(bpp_max, *bpp)
        label = codec if codec not in infos else f"{codec}: {infos[codec].description}"
        style = {"linewidth": 2.4, "zorder": 3} if is_aec(codec) else {"linewidth": 1.3}
        ax_psnr.plot(bpp, [c.psnr for c in curve], marker="o", markersize=3.5, label=label,
                     **style)  # fmt: skip
        ax_ssim.plot(bpp, [c.ms_ssim_db for c in curve], marker="o", markersize=3.5,
                     label=label, **style)  # fmt: skip
    images = len(result.images)
    x_hi = bpp_max * 1.03 if bpp_max > 0 else 1
    for ax, ylabel in ((ax_psnr, "PSNR (dB, RGB)"), (ax_ssim, "MS-SSIM (dB) = −10·log10(1 − x)")):
        ax.set_xlabel("bits per pixel (file bytes × 8 / pixels)")
        ax.set_ylabel(ylabel)
        ax.set_xlim(0, x_hi)
        ax.grid(True, alpha=0.3)
    ax_psnr.set_title(f"PSNR vs rate, mean of {images} image(s)")
    ax_ssim.set_title(f"MS-SSIM vs rate, mean of {images} image(s)")

    def to_ratio(bpp):
        bpp = np.asarray(bpp, dtype=float)
        return 24.0 / np.maximum(bpp, 1e-9)

    top = ax_psnr.secondary_xaxis("top", functions=(to_ratio, to_ratio))
    top.set_xlabel("compression ratio (24 / bpp)")
    ratios = ratio_ticks(0, x_hi)
    top.set_xticks(ratios, [ratio_label(r) for r in ratios])
    top.xaxis.set_minor_locator(NullLocator())  # the inverse scale's minor ticks crowd near 0
    ax_psnr.legend(loc="lower right", fontsize=8)
    ax_ssim.legend(loc="lower right", fontsize=8)
    return figure
