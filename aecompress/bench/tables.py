"""The tables `aecompress bench` prints, fitted to the console's width.

A number is never cut or folded: where the full table is wider than the console, the headers
are first set on two lines, then the less important columns are left out (the JSON, CSV and
Markdown reports always carry all of them). The columns are chosen when the table is
rendered, from the width rich gives it, so the same object prints whole on a 160-column pipe
and trimmed on an 80-column terminal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table

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


@dataclass(frozen=True)
class Column:
    header: str
    short: str  # the header on two lines, for narrow consoles
    drop: int = 0  # 0: always shown; else columns of a higher number are left out first
    left: bool = False


class FittedTable:
    """Rows of text under `columns`, rendered with the columns that fit the width.

    `sections` are groups of rows (one per codec) separated by a rule."""

    def __init__(self, columns: Sequence[Column], sections: Sequence[Sequence[Sequence[str]]]):
        self.columns = list(columns)
        self.sections = [[list(row) for row in rows] for rows in sections]

    def table(self, keep: Sequence[int], short: bool) -> Table:
        t = Table(show_edge=False)
        for i in keep:
            c = self.columns[i]
            t.add_column(c.short if short else c.header, justify="left" if c.left else "right",
                         no_wrap=True)  # fmt: skip
        for n, rows in enumerate(self.sections):
            if n:
                t.add_section()
            for row in rows:
                t.add_row(*(row[i] for i in keep))
        return t

    def layouts(self):
        """(columns kept, short headers) from the fullest to the barest."""
        keep = list(range(len(self.columns)))
        yield keep, False
        yield keep, True
        for level in sorted({c.drop for c in self.columns if c.drop}, reverse=True):
            keep = [k for k in keep if self.columns[k].drop != level]
            yield keep, True

    def fit(self, console: Console, options: ConsoleOptions) -> Table:
        """The fullest layout whose natural width fits, else the barest one."""
        # Measured unconstrained: rich clamps a measurement to the width it is given.
        unbounded = options.update_width(1 << 16)
        table = None
        for keep, short in self.layouts():
            table = self.table(keep, short)
            if Measurement.get(console, unbounded, table).maximum <= options.max_width:
                return table
        assert table is not None
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.fit(console, options)


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
