"""The bench tables on a console: every number whole at 80 columns, every column at 160."""

from __future__ import annotations

import io
import math
import re

import pytest
from rich.console import Console

from aecompress.bench.results import (
    BenchResult,
    CodecInfo,
    CodecSummary,
    CurvePoint,
    MachineInfo,
)
from aecompress.bench.tables import CURVE_COLUMNS, curve_cells, curve_table, summary_table

# Values as a Kodak run prints them, with the widest of each kind: aec on a CPU takes seconds
# per image, jp2 settings are ratios ("240:1"), jpeg444 is the longest codec name.
CURVES = {
    "aec": [(q, 0.1 + q / 40, 27 + q / 8, 5234.1 + q, 8123.4 + q) for q in (1, 15, 57, 100)],
    "jpeg444": [(q, 0.2 + q / 35, 24 + q / 7, 12.3, 6.4) for q in (3, 30, 75, 85)],
    "jp2": [(r, 24 / r, 26 + 240 / r / 9, 88.7, 61.2) for r in (240, 96, 24, 12)],
    "webp": [(q, 0.15 + q / 45, 25 + q / 8, 141.9, 9.8) for q in (0, 45, 90)],
}


def make_result() -> BenchResult:
    curves = []
    for codec, rows in CURVES.items():
        for setting, bpp, psnr, enc, dec in rows:
            ms = 1 - 10 ** (-(psnr - 14) / 10)
            curves.append(
                CurvePoint(codec, float(setting), 24, bpp * 393216 / 8, bpp, 24 / bpp, psnr,
                           ms, -10 * math.log10(1 - ms), enc, dec,
                           0.393216 / enc * 1e3, 0.393216 / dec * 1e3)
            )  # fmt: skip
    summary = [
        CodecSummary("aec", "jpeg444", -31.4, -42.7, {0.25: 29.12, 0.5: 31.87, 1.0: 35.02},
                     0.125, 2.6),
        CodecSummary("jpeg444", "jpeg444", 0.0, 0.0, {0.25: None, 0.5: 28.4, 1.0: 31.9},
                     0.286, 2.629),
        CodecSummary("jp2", "jpeg444", -12.5, 104.9, {0.25: 27.41, 0.5: 29.99, 1.0: 33.3},
                     0.1, 2.0),
        CodecSummary("webp", "jpeg444", None, None, {0.25: 28.0, 0.5: 30.6, 1.0: 33.95},
                     0.15, 2.15),
    ]  # fmt: skip
    machine = MachineInfo("2026-01-01", "Linux", "x86_64", "cpu", 2, "3.11", "2.0", "11.0",
                          "2.5", 2, "cpu", "m", "f", 1)  # fmt: skip
    codecs = [
        CodecInfo(name, name, "ratio" if name == "jp2" else "quality", [], "lib") for name in CURVES
    ]
    return BenchResult(machine, "jpeg444", codecs, [], [], [], curves, summary, 812.0)


def render(renderable, width: int) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None, highlight=False)
    console.print(renderable)
    return console.file.getvalue()


def tokens(text: str) -> set[str]:
    return set(re.split(r"[\s│─┼━┃╇]+", text)) - {""}


def curve_rows(result: BenchResult) -> list[list[str]]:
    info = {c.name: c for c in result.codecs}
    return [curve_cells(c, info[c.codec]) for c in result.curves]


def summary_rows(result: BenchResult) -> list[list[str]]:
    out = []
    for s in result.summary:
        at = [f"{v:.2f}" if v is not None else "—" for v in s.psnr_at_bpp.values()]
        pct = [f"{v:+.1f}%" if v is not None else "—" for v in (s.bd_rate_psnr, s.bd_rate_ms_ssim)]
        out.append([s.codec, *pct, *at, f"{s.bpp_min:.3f}–{s.bpp_max:.3f}"])
    return out


def check_whole(text: str, rows: list[list[str]], shown, width: int) -> None:
    """No line is wider than the console, nothing is cut (…), every numeric-looking piece of
    the output is one whole value of the table, and the columns `shown` are all there."""
    assert max(len(line) for line in text.splitlines()) <= width, text
    assert "…" not in text
    values = {cell for row in rows for cell in row}
    found = tokens(text)
    for token in found:
        if re.fullmatch(r"[-+]?\d[\d.,:%–]*", token):
            assert token in values, f"{token!r} is not a whole value\n{text}"
    for row in rows:
        for i in shown:
            assert row[i] in found, f"{row[i]!r} missing\n{text}"


@pytest.mark.parametrize("width", [80, 100])
def test_curve_table_keeps_numbers_whole_on_a_narrow_terminal(width):
    result = make_result()
    text = render(curve_table(result), width)
    rows = curve_rows(result)
    # At 80 columns only the speeds in MP/s are left out.
    check_whole(text, rows, range(9), width)
    assert "240:1" in text and "5334.1" in text  # the widest setting and time


def test_curve_table_shows_every_column_when_wide():
    result = make_result()
    text = render(curve_table(result), 160)
    rows = curve_rows(result)
    check_whole(text, rows, range(len(CURVE_COLUMNS)), 160)
    for column in CURVE_COLUMNS:
        assert column.header in text  # the one-line headers


@pytest.mark.parametrize("width", [80, 100])
def test_summary_table_keeps_numbers_whole_on_a_narrow_terminal(width):
    result = make_result()
    text = render(summary_table(result), width)
    check_whole(text, summary_rows(result), range(7), width)  # every column fits at 80


def test_summary_table_shows_every_column_when_wide():
    result = make_result()
    text = render(summary_table(result), 160)
    check_whole(text, summary_rows(result), range(7), 160)
    for header in ("BD-rate PSNR vs jpeg444", "BD-rate MS-SSIM", "PSNR@0.25", "PSNR@0.5",
                   "PSNR@1", "bpp range"):  # fmt: skip
        assert header in text


def test_columns_go_least_important_first():
    result = make_result()
    at_80 = render(curve_table(result), 80)
    at_60 = render(curve_table(result), 60)
    assert "MP/s" not in at_80 and "dec" in tokens(at_80)
    assert "dec" not in tokens(at_60) and "MS-SSIM" in tokens(at_60)
    check_whole(at_60, curve_rows(result), [0, 1, 2, 4, 5], 60)
    at_40 = render(curve_table(result), 40)
    assert "MS-SSIM" not in tokens(at_40)
    check_whole(at_40, curve_rows(result), [0, 1, 2, 4], 40)
