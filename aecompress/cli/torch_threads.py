"""How many threads torch runs with while a batch's worker thread writes the input before.

A worker thread busy beside torch's own threads slows torch's parallel regions about as much as
it gains: each region waits for its thread that shares a core with the worker (on the 2-core CPU
a decode's network took 211 ms beside a busy zlib thread, against 109 ms alone and 180 ms on one
thread). So `TorchThreads` runs torch on one thread fewer while the worker has work, but only
for a stage (analysis, coding, synthesis, a tile, a search trial) that the worker outlasted
enough of at the input before to pay for the slower torch (SHARE); otherwise torch keeps every
thread. On the 2-core CPU with the N = 64 model this runs encode's g_a on one thread beside the
previous image's MS-SSIM (then computed in numpy on the worker; since in torch on the main
thread, so encode's figures below are of that earlier code), and decode's entropy coding beside
the previous PNG; g_s keeps both threads. 8 Kodak images, ms per image, idle 2-core CPU
(benchmarks/batch_pipeline.py): encode 242 one at a time, 220 pipelined; decode 117 and 106.
Always one thread fewer made decode slower (140); never one fewer gained little (235, 114)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

# A stage runs on one thread fewer when, the time before, the worker was busy for at least this
# share of it (half the share when torch had every thread: the worker then ran on about half a
# core). On one thread fewer a stage takes r = 1.7 times as long on the 2-core CPU, which pays
# when the worker has more than (r - 1) of the stage's full-thread time to do; that is a share
# of (r - 1) / r = 0.4 of the stage on one thread fewer, 0.8 of it on every thread.
SHARE = 0.4


class TorchThreads:
    """How many threads torch runs with in the main thread while the worker has work.

    The codec reports each stage's start and end (`Codec.progress`); `watch` adds this class to
    those reports. At a stage's start torch gets one thread fewer if the worker has work and,
    the last time that stage ran with the worker busy, the worker stayed busy for at least
    SHARE of it (2 × SHARE if torch had every thread); otherwise all of its threads. `end`
    gives torch back the threads it had at the first report (torch is imported by then: a batch
    whose inputs all fail their checks never waits for it)."""

    def __init__(
        self,
        get_threads: Callable[[], int] | None = None,
        set_threads: Callable[[int], None] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        self._get, self._set_fn, self._clock = get_threads, set_threads, clock
        self.full = 0  # torch's threads when the batch began
        self.current = 0
        self._lock = threading.Lock()
        self._waiting = 0  # second parts submitted and not finished
        self._busy_since: float | None = None
        self._busy_total = 0.0  # seconds the worker had work, up to _busy_since
        self._outlasted: dict[str, bool] = {}  # stage -> the worker outlasted SHARE of it
        self._chunk: tuple[str, float, float, int] | None = None  # stage, start, busy, threads

    def _begin(self) -> None:
        if self._get is None or self._set_fn is None:
            import torch

            self._get, self._set_fn = torch.get_num_threads, torch.set_num_threads
        self.full = self.current = self._get()

    def end(self) -> None:
        if self.full:
            self._use(self.full)

    def _use(self, threads: int) -> None:
        threads = max(1, threads)
        if self.current and threads != self.current:
            assert self._set_fn is not None
            self._set_fn(threads)
            self.current = threads

    # The worker's side: called from the main thread at submit, from the worker at the end.
    def submitted(self) -> None:
        with self._lock:
            if self._waiting == 0:
                self._busy_since = self._clock()
            self._waiting += 1

    def finished(self) -> None:
        with self._lock:
            self._waiting -= 1
            if self._waiting == 0 and self._busy_since is not None:
                self._busy_total += self._clock() - self._busy_since
                self._busy_since = None

    def _busy(self, now: float) -> tuple[bool, float]:
        """Whether the worker has work now, and for how many seconds it has had work in all."""
        with self._lock:
            since = self._busy_since
            return since is not None, self._busy_total + (now - since if since is not None else 0)

    # The main thread's side.
    def at_stage(self, stage: str, done: int, total: int) -> None:
        """A codec's progress report: `done` of `total` steps of `stage` are finished."""
        if not self.full:
            self._begin()
        now = self._clock()
        has_work, busy = self._busy(now)
        if self._chunk is not None and done > 0:
            name, start, busy_then, threads = self._chunk
            if name == stage and now > start:
                share = (busy - busy_then) / (now - start)
                if threads == self.full:
                    share /= 2
                self._outlasted[stage] = share >= SHARE
        self._chunk = None
        if done < total:
            fewer = has_work and self._outlasted.get(stage, False)
            self._use(self.full - 1 if fewer else self.full)
            if has_work:  # learn only from steps that began with work for the worker
                self._chunk = (stage, now, busy, self.current)

    @contextlib.contextmanager
    def watch(self, codec: Any) -> Iterator[None]:
        """Around an input's first part: `codec` (a Codec or a CodecPool) also reports its
        stages here, before whatever its progress callback was (a progress bar, or none)."""
        previous = codec.progress

        def report(stage: str, done: int, total: int) -> None:
            self.at_stage(stage, done, total)
            if previous is not None:
                previous(stage, done, total)

        codec.progress = report
        try:
            yield
        finally:
            codec.progress = previous
