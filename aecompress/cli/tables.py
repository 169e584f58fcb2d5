"""encode's report table, fitted to the terminal (`fittedtable`): numbers are never cut; on a
narrow terminal the least important columns give way (--json always has every field)."""

from __future__ import annotations

import math

from ..fittedtable import Column, FittedTable

ENCODE_COLUMNS = (
    Column("output", "output", left=True, wrap=True),
    Column("image", "image", drop=6),
    Column("q", "q"),
    Column("input B", "input\nB", drop=7),
    Column("output B", "output\nB"),
    Column("ratio raw", "ratio\nraw", drop=4),
    Column("ratio input", "ratio\ninput", drop=8),
    Column("bpp", "bpp"),
    Column("PSNR dB", "PSNR\ndB"),
    Column("MS-SSIM", "MS-SSIM", drop=3),
    Column("s", "s", drop=5),
)
"""Left out first: the ratio to the input file, the input's size, the image's size and mode, the
seconds, the ratio to raw RGB, MS-SSIM; the output, quality, size, bpp and PSNR always stay."""


def ratio(value: float, decimals: int) -> str:
    """A ratio with `decimals` decimals, or as many more as two significant digits need below
    1 (a tiny image's file outweighs its pixels: 1x1 RGB is 3 bytes in a file of ~170)."""
    if 0 < value < 1:
        decimals = max(decimals, 1 - math.floor(math.log10(value)))  # 0.41 -> 2, 0.018 -> 3
    return f"{value:.{decimals}f}"


def encode_table(reports) -> FittedTable:
    """One row per file written. PSNR and MS-SSIM show "-" when not measured (--no-metrics)
    and MS-SSIM "n/a" when the image is too small to have one (under 11 pixels a side)."""
    rows = [
        [
            r.output,
            f"{r.width}x{r.height} {r.mode}",
            f"{r.quality:g}",
            f"{r.input_bytes:,}",
            f"{r.output_bytes:,}",
            ratio(r.ratio_raw, 1),
            ratio(r.ratio_input, 2),
            f"{r.bpp:.3f}",
            "-" if r.psnr is None else f"{r.psnr:.2f}",  # --no-metrics
            "-" if r.psnr is None else "n/a" if r.ms_ssim is None else f"{r.ms_ssim:.4f}",
            f"{r.seconds:.2f}",
        ]  # fmt: skip
        for r in reports
    ]
    return FittedTable(ENCODE_COLUMNS, [rows])
