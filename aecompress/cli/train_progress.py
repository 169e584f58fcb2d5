"""The progress of `aecompress train` on the console: a live bar on a terminal, one plain line
per log step elsewhere. The library reports through `training.progress.Reporter`; this is the
command line's reporter."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from ..durations import format_duration
from ..training.progress import Reporter, StepStats


class _SpeedColumn(ProgressColumn):
    def render(self, task) -> Text:
        speed = task.fields.get("speed")
        return Text(f"{speed:.1f} it/s" if speed else "- it/s")


class _EtaColumn(ProgressColumn):
    """The time left of training, as on the plain lines: the library's estimate at the last
    log step counted down since (rich's own estimate before the first one)."""

    def render(self, task) -> Text:
        ends = task.fields.get("ends")  # time.monotonic() at which training should end
        left = task.time_remaining if ends is None else max(0.0, ends - time.monotonic())
        return Text("ETA " + ("-" if left is None else format_duration(left)))


class ConsoleReporter(Reporter):
    """Progress on a rich console (stderr): on a terminal, a live bar with steps/s, loss, bpp,
    PSNR and the ETA, then a bar for the export's stages; elsewhere (a pipe, nohup, CI) one
    plain line per log step and per export stage.

    quiet: nothing at all (--quiet). verbose: on a terminal, each log step's line too, above
    the bar (as train.log has it), so that the figures stay on the screen."""

    def __init__(self, console: Console, quiet: bool = False, verbose: bool = False):
        self.console = console
        self.quiet, self.verbose = quiet, verbose
        self._bars = console.is_terminal and not quiet
        self._progress: Progress | None = None
        self._task = None
        self._clock: float | None = None  # monotonic start of a bar that counts seconds
        self._export: Progress | None = None
        self._export_task = None

    def start(self, step: int, total: int, seconds: float = 0.0) -> None:
        if not self._bars:
            return
        counter = TextColumn("step {task.fields[step]}") if seconds > 0 else MofNCompleteColumn()
        self._progress = Progress(
            BarColumn(bar_width=16),
            counter,
            _SpeedColumn(),
            TextColumn("{task.fields[metrics]}", markup=False),
            TimeElapsedColumn(),
            _EtaColumn(),
            console=self.console,
        )
        if seconds > 0:
            self._clock = time.monotonic()
            total, step_done = seconds, 0.0
        else:
            total, step_done = total or None, step
        self._task = self._progress.add_task(
            "train", total=total, completed=step_done, metrics="", step=step, speed=None,
            ends=None,
        )  # fmt: skip
        self._progress.start()

    def advance(self, step: int) -> None:
        if self._progress is not None:
            done = step if self._clock is None else time.monotonic() - self._clock
            self._progress.update(self._task, completed=done, step=step)

    def stats(self, s: StepStats) -> None:
        if self.quiet:
            return
        if self._progress is not None:
            metrics = f"loss {s.loss:.4g} {s.bpp:.3f} bpp {s.psnr:.2f} dB"
            metrics += f" {s.megapixels_per_s:.1f} MP/s"
            ends = None if s.seconds_left is None else time.monotonic() + s.seconds_left
            self._progress.update(self._task, metrics=metrics, speed=s.steps_per_s, ends=ends)
            if not self.verbose:
                return
        self.console.print(s.line(), soft_wrap=True)

    def message(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text, soft_wrap=True)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def export_stage(self, text: str, done: int, total: int) -> None:
        if self.quiet:
            return
        if not self._bars:
            self.console.print(text, soft_wrap=True)
            return
        if self._export is None:
            # Transient: once the export is done, its result replaces the bar.
            self._export = Progress(
                TextColumn("{task.description}", markup=False),
                BarColumn(bar_width=16),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._export_task = self._export.add_task(text, total=total, completed=done)
            self._export.start()
        else:
            self._export.update(self._export_task, description=text, total=total, completed=done)

    def export_end(self) -> None:
        if self._export is not None:
            self._export.stop()
            self._export = None
