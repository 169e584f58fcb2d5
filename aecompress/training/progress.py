"""What a run reports while it works: the figures of each log step (`StepStats`), the estimate
of the time left, and the `Reporter` protocol through which the library shows its progress.
No torch here: the command line's reporter imports this before anything heavy is needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from ..durations import format_duration


@dataclass
class StepStats:
    step: int
    loss: float  # means over the steps since the previous log line
    bpp: float
    psnr: float
    steps_per_s: float
    lr: float = 0.0
    total: int = 0
    clipped: int = 0  # steps whose gradient norm was clipped, since the previous log line
    megapixels_per_s: float = 0.0  # training pixels through the model per second
    # Estimated seconds until training ends (the export follows); None: not known yet.
    seconds_left: float | None = None

    def line(self) -> str:
        """The log line: `step 120/20000  loss ...  clipped 0  ETA 1h5m` (ETA: the time left
        of training, as format_duration writes it; left out when not known)."""
        total = f"/{self.total}" if self.total else ""
        eta = "" if self.seconds_left is None else f"  ETA {format_duration(self.seconds_left)}"
        return (
            f"step {self.step}{total}  loss {self.loss:.4f}  bpp {self.bpp:.4f}  "
            f"PSNR {self.psnr:.2f} dB  lr {self.lr:.2e}  {self.steps_per_s:.2f} it/s  "
            f"{self.megapixels_per_s:.2f} MP/s  clipped {self.clipped}{eta}"
        )


def estimate_seconds_left(
    step: int,
    steps: int,
    steps_per_s: float,
    deadline_left: float | None = None,
    train_left: float | None = None,
) -> float | None:
    """Seconds until the first of the run's limits ends it: the steps left toward `steps`
    (0: no step limit) at `steps_per_s`, the wall time left to its deadline, the training time
    left. None when no limit gives an estimate (a step limit without a rate yet)."""
    left = math.inf
    if deadline_left is not None:
        left = deadline_left
    if train_left is not None:
        left = min(left, train_left)
    if steps > 0 and steps_per_s > 0:
        left = min(left, (steps - step) / steps_per_s)
    return None if math.isinf(left) else max(0.0, left)


class Reporter(Protocol):
    """How a run shows its progress: the library's only view of it. The command line draws a
    bar (`aecompress.cli.train_progress`); a benchmark collects the figures. Every method does
    nothing unless overridden, so a class that subclasses this one implements what it needs."""

    def start(self, step: int, total: int, seconds: float = 0.0) -> None:
        """Before the first step. total: the run's last step (0: none); seconds > 0: the run
        ends on time, that many seconds from now, and the bar shows time instead of steps."""

    def advance(self, step: int) -> None:
        """After every step (no host synchronisation: `step` is a Python count)."""

    def stats(self, stats: StepStats) -> None:
        """At every log step: the means since the previous one."""

    def message(self, text: str) -> None:
        """A validation's result, or why the run stopped."""

    def stop(self) -> None:
        """After the last step, or when the loop fails."""

    def export_stage(self, text: str, done: int, total: int) -> None:
        """An export (the one after training, or the trial export that times a budgeted run)
        starts a stage: `text` names the export and the stage, such as "export: validating
        the average weights on 8 images at 5 qualities"; `done` of `total` stages are
        finished. `total` is as far as known: a candidate may be added or skipped."""

    def export_end(self) -> None:
        """After an export's last stage, or when it fails."""


class Silent(Reporter):
    """The reporter of a run given none."""
