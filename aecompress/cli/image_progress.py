"""Progress bars for `encode` and `decode`: one bar per image, drawn only for work that lasts.

The codec reports (stage, done, total) through `Codec.progress`; each stage fills its share of
the image's bar (the shares follow where the time goes on a CPU: the transforms dominate). A
bar appears only once a batch has run for DELAY seconds, on a terminal, and not with --quiet,
so quick commands print exactly what they printed before.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from ..codec import Codec
    from ..operations import CodecPool

# stage -> (start, end) of its share of one image's bar
ENCODE_STAGES = {
    "analysis": (0.0, 0.4),
    "coding": (0.4, 0.5),
    "search": (0.4, 0.9),  # --target-*: the trials replace coding and synthesis
    "refine": (0.4, 0.9),  # --effort: the refinement's steps, then both encodes
    "synthesis": (0.5, 0.9),
    "metrics": (0.9, 1.0),
}
DECODE_STAGES = {"coding": (0.0, 0.15), "synthesis": (0.15, 0.9), "writing": (0.9, 1.0)}
DELAY = 1.0  # seconds of silence before a bar is worth drawing


class ImageProgress:
    """Draws the bars of one batch on `console` (None: draws nothing)."""

    def __init__(
        self,
        console: Console | None,
        stages: dict[str, tuple[float, float]],
        count: int,
        delay: float = DELAY,
    ):
        self.console = console
        self.stages = stages
        self.count = count
        self.delay = delay
        self.started = time.monotonic()
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._label = ""
        self._fraction = 0.0

    @contextmanager
    def image(self, codec: Codec | CodecPool, index: int, name: str) -> Iterator[None]:
        """Around the work on input number `index` (0-based): routes the reports of the codec
        (or of each codec the pool hands out) to this image's bar."""
        prefix = f"[{index + 1}/{self.count}] " if self.count > 1 else ""
        self._label = f"{prefix}{name}"
        self._fraction = 0.0
        self._task = None
        if self.console is not None:
            codec.progress = self.report
        try:
            yield
        finally:
            codec.progress = None
            if self._progress is not None and self._task is not None:
                self._progress.remove_task(self._task)
            self._task = None

    def report(self, stage: str, done: int, total: int) -> None:
        start, end = self.stages.get(stage, (self._fraction, self._fraction))
        self._fraction = start + (end - start) * (done / total if total else 1.0)
        if self.console is None or time.monotonic() - self.started < self.delay:
            return
        if self._progress is None:
            self._start()
        assert self._progress is not None
        if self._task is None:
            self._task = self._progress.add_task(self._label, total=100)
        self._progress.update(
            self._task, completed=100 * self._fraction, description=f"{self._label}: {stage}"
        )
        self._progress.refresh()  # reports are few (stages, tiles): show each at once

    def _start(self) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self._progress.start()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
