"""`encode` and `decode` of several inputs: the torch work of one input overlaps the writing of
the one before.

Why: each input's work has a part that uses torch (the networks, on every core) and a part that
does not (encode: writing the file; decode: encoding the image file, zlib for PNG), which runs
on one core and leaves the others idle. Here the main thread runs each input's first part
(`operations.encode_start` / `decode_start`, the only place torch is used) in input order, and
one worker thread runs the second parts (`encode_finish` / `decode_finish`, which write the
output) in the same order, at most MAX_PENDING of them waiting, so memory stays bounded.
Everything `common.run_batch` promises holds: a failure in either part fails only its input,
with the same one-line message, printed in input order; --fail-fast starts no input after the
first failure known and lists the rest as not processed, and no second part starts after a
failure (so exactly the outputs a one-at-a-time run would write are written); Ctrl-C waits for
the write in flight (outputs are written to a temporary file and renamed) and reaches `guard`.
An input that an earlier output of the batch would write waits for that output.

How many threads torch gets while the worker has work is `torch_threads.TorchThreads`' job.

Nothing heavy is imported at the top: torch only when a pipeline runs (test_startup.py).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..inputs import STDIO
from .common import BatchResult, note_failures, record_failure, run_batch, stop_after
from .torch_threads import TorchThreads

MAX_PENDING = 2  # second parts queued or running at once (each holds an image or two)


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def worth_overlapping(count: int) -> bool:
    """Whether a batch of `count` inputs goes through the pipeline: with one input, or one CPU
    to run on, there is nothing to overlap, and the plain path (`run_batch`) is taken."""
    return count > 1 and usable_cpus() > 1


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
