"""The tables `aecompress bench` prints, fitted to the console's width (`fittedtable`): the
less important columns give way on a narrow terminal; the JSON, CSV and Markdown reports always
carry all of them."""

from __future__ import annotations

import math

from ..fittedtable import Column, FittedTable
from .results import BenchResult, CodecInfo, CurvePoint


def num(value: float | None, spec: str, none: str = "—") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return none
    return format(value, spec)


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value:+.1f}%"


def setting(info: CodecInfo | None, value: float) -> str:
    """The swept value as shown: '75' for qualities, '24:1' for ratios."""
    if info is not None and info.sweep_unit == "ratio":
        return f"{value:g}:1"
    return f"{value:g}"


def infos(result: BenchResult) -> dict[str, CodecInfo]:
    return {c.name: c for c in result.codecs}


def targets(result: BenchResult) -> list[float]:
    """The bpps the summary gives PSNR at."""
    return sorted({t for s in result.summary for t in s.psnr_at_bpp})


CURVE_COLUMNS = (
    Column("codec", "codec", left=True),
    Column("q", "q"),
    Column("bpp", "bpp"),
    Column("ratio", "ratio", drop=3),
    Column("PSNR dB", "PSNR\ndB"),
    Column("MS-SSIM", "MS-SSIM", drop=1),
    Column("MS-SSIM dB", "MS-SSIM\ndB", drop=4),
    Column("enc ms", "enc\nms", drop=2),
    Column("dec ms", "dec\nms", drop=2),
    Column("enc MP/s", "enc\nMP/s", drop=5),
    Column("dec MP/s", "dec\nMP/s", drop=5),
)
"""Left out first: the speeds in MP/s (the times say the same), MS-SSIM in dB, the ratio
(24 / bpp), the times, MS-SSIM; codec, setting, bpp and PSNR are always shown."""


def curve_cells(c: CurvePoint, info: CodecInfo | None) -> list[str]:
    """The values of `CURVE_COLUMNS` for one curve point, as text."""
    return [
        c.codec, setting(info, c.quality), f"{c.bpp:.3f}", f"{c.ratio:.1f}", f"{c.psnr:.2f}",
        f"{c.ms_ssim:.4f}", f"{c.ms_ssim_db:.2f}", f"{c.encode_ms:.1f}", f"{c.decode_ms:.1f}",
        num(c.encode_mpix_s, ".2f"), num(c.decode_mpix_s, ".2f"),
    ]  # fmt: skip


def curve_table(result: BenchResult) -> FittedTable:
    """One row per codec and swept value: rate, quality and speed, means over the images."""
    info = infos(result)
    sections: list[list[list[str]]] = []
    previous = None
    for c in result.curves:
        if c.codec != previous:
            sections.append([])
            previous = c.codec
        sections[-1].append(curve_cells(c, info.get(c.codec)))
    return FittedTable(CURVE_COLUMNS, sections)


def summary_table(result: BenchResult) -> FittedTable:
    """One row per codec: BD-rates against the reference, PSNR at set bpps, the bpp range."""
    at = targets(result)
    ref = result.reference
    columns = [
        Column("codec", "codec", left=True),
        Column(f"BD-rate PSNR vs {ref}", f"BD-rate PSNR\nvs {ref}"),
        Column("BD-rate MS-SSIM", "BD-rate\nMS-SSIM", drop=1),
        # Left out before it: the bpp range, then PSNR at the highest bpp, the next, ...
        *(Column(f"PSNR@{x:g}", f"PSNR\n@{x:g}", drop=2 + n) for n, x in enumerate(at)),
        Column("bpp range", "bpp\nrange", drop=2 + len(at)),
    ]
    rows = [
        [
            s.codec,
            pct(s.bd_rate_psnr),
            pct(s.bd_rate_ms_ssim),
            *(num(s.psnr_at_bpp.get(x), ".2f") for x in at),
            f"{s.bpp_min:.3f}–{s.bpp_max:.3f}",
        ]
        for s in result.summary
    ]
    return FittedTable(columns, [rows])
