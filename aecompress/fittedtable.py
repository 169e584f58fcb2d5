"""Console tables fitted to their width: a number is never cut or folded.

Rich shrinks a table wider than the console by folding or truncating cells, which turns 75 into
7. A FittedTable instead sets the headers on two lines, then leaves out the least important
columns, until it fits; only a column marked `wrap` (a file name) may fold. The columns are
chosen when the table is rendered, from the width rich gives it, so the same object prints whole
on a 160-column pipe and trimmed on an 80-column terminal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

WRAP_WIDTH = 12  # a wrapping column is not folded narrower than this


@dataclass(frozen=True)
class Column:
    header: str
    short: str  # the header on two lines, for narrow consoles
    drop: int = 0  # 0: always shown; else columns of a higher number are left out first
    left: bool = False
    wrap: bool = False  # a file name: may fold onto several lines (never a number)


class FittedTable:
    """Rows of text under `columns`, rendered with the columns that fit the width.

    `sections` are groups of rows (one per codec) separated by a rule."""

    def __init__(self, columns: Sequence[Column], sections: Sequence[Sequence[Sequence[str]]]):
        self.columns = list(columns)
        self.sections = [[list(row) for row in rows] for rows in sections]

    def table(self, keep: Sequence[int], short: bool, measuring: int | None = None) -> Table:
        """The table of the columns in `keep`; `measuring`: wrapping columns cut to that many
        characters, the narrowest they may fold to (for measuring only)."""
        t = Table(show_edge=False)
        for i in keep:
            c = self.columns[i]
            folds = {"overflow": "fold", "min_width": min(WRAP_WIDTH, self._widest(i))}
            t.add_column(c.short if short else c.header, justify="left" if c.left else "right",
                         no_wrap=not c.wrap, **(folds if c.wrap else {}))  # fmt: skip
        for n, rows in enumerate(self.sections):
            if n:
                t.add_section()
            for row in rows:
                t.add_row(*(Text(row[i]) if measuring is None or not self.columns[i].wrap
                            else Text(row[i][:measuring]) for i in keep))  # fmt: skip
        return t

    def _widest(self, i: int) -> int:
        return max((len(row[i]) for rows in self.sections for row in rows), default=0)

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
        keep = short = None
        for keep, short in self.layouts():
            narrowest = self.table(keep, short, measuring=WRAP_WIDTH)
            if Measurement.get(console, unbounded, narrowest).maximum <= options.max_width:
                return self.table(keep, short)
        assert keep is not None and short is not None
        return self.table(keep, short)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.fit(console, options)
