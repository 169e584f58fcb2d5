"""`encode` and `decode` of several inputs: the torch work of one input overlaps the writing of
the one before.

Why: each input's work has a part that uses torch (the networks, on every core) and a part that
does not (encode: the metrics, mostly MS-SSIM in numpy; decode: encoding the image file, zlib
for PNG), which runs on one core and leaves the others idle. Here the main thread runs each
input's first part (`operations.encode_start` / `decode_start`, the only place torch is used) in
input order, and one worker thread runs the second parts (`encode_finish` / `decode_finish`,
which write the output) in the same order, at most MAX_PENDING of them waiting, so memory stays
bounded. Everything `common.run_batch` promises holds: a failure in either part fails only its
input, with the same one-line message, printed in input order; --fail-fast starts no input after
the first failure known and lists the rest as not processed, and no second part starts after a
failure (so exactly the outputs a one-at-a-time run would write are written); Ctrl-C waits for
the write in flight (outputs are written to a temporary file and renamed) and reaches `guard`.
An input that an earlier output of the batch would write waits for that output.

Torch threads: a worker thread busy beside torch's own threads slows torch's parallel regions
about as much as it gains: each region waits for its thread that shares a core with the worker
(on the 2-core CPU a decode's network took 211 ms beside a busy zlib thread, against 109 ms
alone and 180 ms on one thread). So `TorchThreads` runs torch on one thread fewer while the
worker has work, but only for a stage (analysis, coding, synthesis, a tile, a search trial) that
the worker outlasted enough of at the input before to pay for the slower torch (SHARE);
otherwise torch keeps every thread. On the 2-core CPU with the n64 model this runs encode's g_a
on one thread beside the previous image's MS-SSIM, and decode's entropy coding beside the
previous PNG; g_s keeps both threads. Kodak, ms per image (benchmarks/batch_pipeline.py, on a
CPU shared with other work): encode 243 one at a time, 224 pipelined; decode 120 and 107. Always
one thread fewer made decode slower (140), never one fewer gained little (235 and 117).

Nothing heavy is imported at the top: torch only when a pipeline runs (test_startup.py).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..inputs import STDIO
from .common import BatchResult, note_failures, record_failure, run_batch, stop_after

MAX_PENDING = 2  # second parts queued or running at once (each holds an image or two)
# A stage runs on one thread fewer when, the time before, the worker was busy for at least this
# share of it (half the share when torch had every thread: the worker then ran on about half a
# core). On one thread fewer a stage takes r = 1.7 times as long on the 2-core CPU, which pays
# when the worker has more than (r - 1) of the stage's full-thread time to do; that is a share
# of (r - 1) / r = 0.4 of the stage on one thread fewer, 0.8 of it on every thread.
SHARE = 0.4


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def worth_overlapping(count: int) -> bool:
    """Whether a batch of `count` inputs goes through the pipeline: with one input, or one CPU
    to run on, there is nothing to overlap, and the plain path (`run_batch`) is taken."""
    return count > 1 and usable_cpus() > 1


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


class _NotStarted(Exception):
    """A second part skipped because the batch stopped (--fail-fast, Ctrl-C) before it."""


@dataclass
class _Entry:
    index: int
    source: str
    target: str
    outcome: Future | BaseException  # the second part, or the first part's failure


def _path_key(path: str) -> str | None:
    return None if path == STDIO else os.path.normcase(os.path.realpath(path))


def run_pipeline(
    inputs: list[str],
    targets: list[str],
    start: Callable[[int, str, str], Callable[[], Any]],
    fail_fast: bool = False,
    threads: TorchThreads | None = None,
    on_report: Callable[[Any], None] | None = None,
) -> BatchResult:
    """Like `common.run_batch`, with start(index, source, target) running an input's first part
    in this thread and returning its second part: a callable that returns the report, run on
    the worker thread. on_report(report) is called here, in input order, as reports arrive."""
    result = BatchResult([], [], [])
    pending: deque[_Entry] = deque()
    stop = threading.Event()  # set: no second part starts any more
    threads = threads or TorchThreads()

    def second(finish: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            try:
                if stop.is_set():
                    raise _NotStarted
                return finish()
            except BaseException as e:
                if fail_fast or isinstance(e, KeyboardInterrupt | SystemExit):
                    stop.set()  # before the worker takes the next one
                raise
            finally:
                threads.finished()

        return run

    def collect(block: bool) -> bool:
        """Take finished inputs off the front of `pending`, in order (waiting for the first
        one if `block`); True once --fail-fast stopped the batch."""
        while pending:
            entry = pending[0]
            outcome = entry.outcome
            if isinstance(outcome, Future) and not (block or outcome.done()):
                return False
            pending.popleft()
            block = False
            try:
                if isinstance(outcome, BaseException):
                    raise outcome
                report = outcome.result()
            except (KeyboardInterrupt, SystemExit, GeneratorExit):
                raise
            except BaseException as e:  # noqa: B036 -- Rust panics (pyo3) derive from BaseException
                record_failure(result, entry.source, e)
                if fail_fast:
                    stop.set()
                    stop_after(result, inputs, entry.index)
                    return True
                continue
            result.reports.append(report)
            if on_report is not None:
                on_report(report)
        return False

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aecompress-finish")
    try:
        stopped = False
        for i, (source, target) in enumerate(zip(inputs, targets, strict=True)):
            stopped = collect(block=False)
            if stopped:
                break
            while (
                not stopped and sum(isinstance(e.outcome, Future) for e in pending) >= MAX_PENDING
            ):
                stopped = collect(block=True)
            key = _path_key(source)
            while (
                not stopped and key is not None and any(_path_key(e.target) == key for e in pending)
            ):  # an earlier input of the batch writes this one: as if one at a time
                stopped = collect(block=True)
            if stopped:
                break
            try:
                finish = start(i, source, target)
            except (KeyboardInterrupt, SystemExit, GeneratorExit):
                raise
            except BaseException as e:  # noqa: B036
                pending.append(_Entry(i, source, target, e))
                if fail_fast:
                    break  # the ones before it still finish, and may fail first
                continue
            threads.submitted()
            try:
                future = pool.submit(second(finish))
            except BaseException:
                threads.finished()
                raise
            pending.append(_Entry(i, source, target, future))
        while pending and not stopped:
            stopped = collect(block=True)
    except BaseException:
        stop.set()  # Ctrl-C: the write in flight finishes, nothing else starts
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)
        threads.end()
    if not stopped:
        note_failures(result, inputs)
    return result


def run_inputs(
    inputs: list[str],
    targets: list[str],
    first: Callable[[int, str, str], Callable[[], Any]],
    whole: Callable[[int, str, str], Any],
    fail_fast: bool = False,
    threads: TorchThreads | None = None,
    on_report: Callable[[Any], None] | None = None,
) -> BatchResult:
    """`run_pipeline` with `first` when overlapping is worth it (`worth_overlapping`), else the
    plain path: `common.run_batch` with whole(index, source, target) doing an input's work."""
    if worth_overlapping(len(inputs)):
        return run_pipeline(inputs, targets, first, fail_fast, threads, on_report)

    def job(index: int, source: str, target: str) -> Any:
        report = whole(index, source, target)
        if on_report is not None:
            on_report(report)
        return report

    return run_batch(inputs, targets, job, fail_fast)
