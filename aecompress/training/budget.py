"""The time budget of `aecompress train --time-budget`: the whole command's wall time, from the
start of the process to its exit.

Before training the run exports (and measures) its starting weights once, which gives the
cost of one exported candidate; training then ends early enough to leave room for the
candidates the end of the run exports, with EXPORT_SAFETY on the measured cost, and for the
files it writes. The loop starts no step that its measured step time says would end past the
deadline, so the last step cannot overrun it (a step of the default model takes about 5 s on
two CPU cores). What is left outside the budget is the last moments of the process (printing
the report, the interpreter's exit): a fraction of a second, the tolerance the tests allow.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace

# Headroom on the measured export time when the run reserves it inside a time budget.
EXPORT_SAFETY = 1.25
# Time kept for writing state.pt, model.pt and the card, and for the end of the process.
MIN_FILES_S = 1.0
FILES_FRACTION = 0.01
# Training may not be squeezed below this fraction of the budget: a usage error instead.
MIN_TRAIN_FRACTION = 0.1


@dataclass(frozen=True)
class Budget:
    """The command's time budget, as planned before training."""

    started: float  # time.monotonic() the budget counts from
    seconds: float  # 0: no budget
    deadline: float | None = None  # when training ends (time.monotonic()); None: no budget
    per_export: float = 0.0  # measured seconds of one exported candidate

    @property
    def end(self) -> float:
        return self.started + self.seconds

    def affords_export(self, now: float | None = None) -> bool:
        """Whether one more candidate fits in the budget (always, without one)."""
        if self.deadline is None:
            return True
        now = time.monotonic() if now is None else now
        return now + self.per_export * EXPORT_SAFETY <= self.end

    def planned(self, per_export: float, candidates: int) -> Budget:
        """The budget with its deadline: room for `candidates` exports of `per_export` seconds
        each (with EXPORT_SAFETY) and for the files, before the end."""
        files = max(MIN_FILES_S, FILES_FRACTION * self.seconds)
        deadline = self.end - candidates * per_export * EXPORT_SAFETY - files
        return replace(self, deadline=deadline, per_export=per_export)


class StepTimes:
    """How long a training step takes, as the loop measures it: the estimate is the larger of
    the last step and the mean of this session's steps (the first, slower one included), so a
    step that would end past the deadline is not started."""

    def __init__(self) -> None:
        self.count, self.total, self.last = 0, 0.0, 0.0

    def add(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        self.last = seconds

    def estimate(self) -> float:
        """Seconds of the next step (0 before the first: it always runs)."""
        return max(self.last, self.total / self.count) if self.count else 0.0


def process_age() -> float | None:
    """Seconds since this process started (Linux: from /proc), None where it is not known."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # the name, in (), may hold spaces
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        start = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start, clock ticks
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    age = uptime - start
    return age if 0 <= age < 3600 else None


def command_started(imported: float) -> float:
    """time.monotonic() at which the command started: the process's start where /proc tells
    it (the interpreter's start counts too), else `imported`, when the package was imported."""
    age = process_age()
    return imported if age is None else min(imported, time.monotonic() - age)
