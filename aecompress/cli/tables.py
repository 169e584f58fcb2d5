"""Result tables that fit the terminal: numbers are never cut; columns are dropped instead.

Rich shrinks a table that is wider than the console by folding or truncating cells, which turns
75 into 7. Here each column has a priority: at a narrow width the least important columns are
left out (their values stay in --json), and only the file name may wrap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.table import Table
from rich.text import Text

MIN_NAME_WIDTH = 12  # the file name column wraps, but not narrower than this


@dataclass
class Column:
    header: str
    cells: list[str]
    priority: int  # higher stays longer
    is_name: bool = False  # the one column allowed to wrap

    @property
    def width(self) -> int:
        return max([len(self.header), *(len(c) for c in self.cells)])


def _needed(columns: Sequence[Column]) -> int:
    """Width of a table without outer edges: each cell is padded by one space on each side and
    columns are separated by one rule character."""
    widths = [min(c.width, MIN_NAME_WIDTH) if c.is_name else c.width for c in columns]
    return sum(w + 2 for w in widths) + len(columns) - 1


def fit_columns(columns: list[Column], width: int) -> list[Column]:
    """The columns to show at `width`, in their order: the least important left out until the
    rest fit (the highest-priority column always stays)."""
    shown = list(columns)
    for dropped in sorted(columns, key=lambda c: c.priority):
        if _needed(shown) <= width or len(shown) == 1:
            break
        shown.remove(dropped)
    return shown


def render(columns: list[Column], width: int) -> Table:
    t = Table(title=None, show_edge=False)
    shown = fit_columns(columns, width)
    for c in shown:
        if c.is_name:
            t.add_column(c.header, justify="left", overflow="fold", min_width=MIN_NAME_WIDTH)
        else:
            t.add_column(c.header, justify="right", no_wrap=True, min_width=c.width)
    rows = len(columns[0].cells) if columns else 0
    for i in range(rows):
        t.add_row(*(Text(c.cells[i]) for c in shown))
    return t


def encode_table(reports, width: int) -> Table:
    """encode's report: one row per file; at 80 columns the ratios of input and raw size, the
    image size and MS-SSIM give way first."""
    r = reports
    return render(
        [
            Column("output", [x.output for x in r], 100, is_name=True),
            Column("image", [f"{x.width}x{x.height} {x.mode}" for x in r], 3),
            Column("q", [f"{x.quality:g}" for x in r], 9),
            Column("input B", [f"{x.input_bytes:,}" for x in r], 2),
            Column("output B", [f"{x.output_bytes:,}" for x in r], 10),
            Column("ratio raw", [f"{x.ratio_raw:.1f}" for x in r], 4),
            Column("ratio input", [f"{x.ratio_input:.2f}" for x in r], 1),
            Column("bpp", [f"{x.bpp:.3f}" for x in r], 8),
            Column("PSNR dB", [f"{x.psnr:.2f}" for x in r], 7),
            Column("MS-SSIM", [f"{x.ms_ssim:.4f}" for x in r], 5),
            Column("s", [f"{x.seconds:.2f}" for x in r], 6),
        ],
        width,
    )
