"""The encoding effort levels: what each one spends on refining an image's latents.

Effort 0 is the plain encoder; levels 1 to MAX_EFFORT run a latent refinement (refine.py) of
more steps each. The encoder keeps whichever of the plain and the refined encodes has the lower
true cost (effort.py), so no level is worse than 0 at its quality. This module needs no torch:
the CLI checks `--effort` before loading it.

The schedules were chosen by measurement on `valid/` images; benchmarks/effort.md has the
figures on Kodak for both shipped models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import AecError


@dataclass(frozen=True)
class Schedule:
    """How hard one effort level works: steps of each phase of the refinement (refine.py)."""

    descent_steps: int = 0  # phase 1: preconditioned descent on y at hard rounding
    steps: int = 0  # phase 2: Adam steps of stochastic Gumbel annealing on y and z
    descent_step: float = 0.05  # phase 1's first step length (times gradient / curvature)
    descent_grow: float = 1.25  # its growth after a step that lowered the cost
    # g_s's curvature diag(JᵀJ) averaged per channel over the whole image (0) or over a
    # window of this many latent samples a side around each latent: a textured region's
    # latents see more of it than a flat one's (on `valid/` crops 7 gains 0.1% BD-rate at
    # 3 and 5 steps, nothing lost at 8)
    curvature_window: int = 7
    lr: float = 0.01  # phase 2: Adam's learning rate at the first step, in quantization bins
    lr_end: float = 0.1  # the last step's learning rate as a fraction of lr (cosine decay)
    tau_start: float = 0.5  # SGA temperature at the first step
    tau_end: float = 0.02  # and at the last (geometric in between)

    @property
    def total_steps(self) -> int:
        return self.descent_steps + self.steps

    def tau(self, step: int) -> float:
        """Temperature at step 0 .. steps-1."""
        if self.steps <= 1:
            return self.tau_end
        f = step / (self.steps - 1)
        return self.tau_start * (self.tau_end / self.tau_start) ** f

    def learning_rate(self, step: int) -> float:
        if self.steps <= 1:
            return self.lr
        f = step / (self.steps - 1)
        return self.lr * (self.lr_end + (1 - self.lr_end) * 0.5 * (1 + math.cos(math.pi * f)))


MAX_EFFORT = 9
DEFAULT_EFFORT = 2
# Effort level → its refinement (None: the plain encoder).
# Phase 1 alone: on `valid/` crops the SGA phase after it lost ground at every length tried
# (benchmarks/effort.md), and the descent stops gaining after about 64 steps.
SCHEDULES: tuple[Schedule | None, ...] = (
    None,
    Schedule(descent_steps=3),
    Schedule(descent_steps=5),
    Schedule(descent_steps=8),
    Schedule(descent_steps=12),
    Schedule(descent_steps=20),
    Schedule(descent_steps=32),
    Schedule(descent_steps=48),
    Schedule(descent_steps=64),
    Schedule(descent_steps=96),
)


def check_effort(effort: int) -> int:
    if isinstance(effort, bool) or not isinstance(effort, int) or not 0 <= effort <= MAX_EFFORT:
        raise AecError(f"effort must be a whole number from 0 to {MAX_EFFORT}, got {effort!r}")
    return effort


def schedule_for(effort: int) -> Schedule | None:
    """The refinement of an effort level (None for 0, the plain encoder)."""
    return SCHEDULES[check_effort(effort)]
