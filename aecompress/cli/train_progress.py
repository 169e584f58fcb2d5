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
from ..training.progress import StepStats


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


class ConsoleReporter:
    """Progress on a rich console (stderr): a live bar with steps/s, loss, bpp and PSNR on a
    terminal; elsewhere (a pipe, nohup, CI) one plain line per log step."""

    def __init__(self, console: Console):
        self.console = console
        self._progress: Progress | None = None
        self._task = None
        self._clock: float | None = None  # monotonic start of a bar that counts seconds

    def start(self, step: int, total: int, seconds: float = 0.0) -> None:
        if not self.console.is_terminal:
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
        if self._progress is not None:
            metrics = f"loss {s.loss:.4g} {s.bpp:.3f} bpp {s.psnr:.2f} dB"
            metrics += f" {s.megapixels_per_s:.1f} MP/s"
            ends = None if s.seconds_left is None else time.monotonic() + s.seconds_left
            self._progress.update(self._task, metrics=metrics, speed=s.steps_per_s, ends=ends)
        else:
            self.console.print(s.line(), soft_wrap=True)

    def message(self, text: str) -> None:
        self.console.print(text, soft_wrap=True)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
