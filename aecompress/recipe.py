"""The parts of the training recipe that act between the loss and the optimizer step.

One network serves every quality level, and the raw rate–distortion loss of the top level is
many times that of the bottom one (λ spans 188×; at equal crops its gradient norm was 77× as
large). Left alone, the top levels train the shared transforms and the low-rate end starves.

- `LevelNormaliser` divides each crop's loss by a running mean of the distortion term
  λ·255²·MSE at its trade-off position, so each level contributes a gradient of comparable
  size. Dividing one level's loss by a positive constant leaves that level's optimum (its
  rate–distortion trade-off) unchanged.
- `SpikeClip` clips the gradient norm at a multiple of its running mean: it catches spikes
  instead of rescaling every step, as a fixed clip of 1 did (norms were 14–60).
- `WeightAverage` keeps an exponential moving average of the weights, which is usually the
  better model to ship after a short run.
- `learning_rate` is the schedule as a function of progress, in steps or in wall-clock time.

Every piece keeps its state in tensors on the training device and updates it without a host
synchronisation; `state_dict` / `load_state_dict` let a resumed run continue exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from .model import interpolate_levels


def stratified_positions(
    batch: int, levels: int, gen: torch.Generator, device: torch.device | str, power: float = 1.0
) -> torch.Tensor:
    """B trade-off positions in [0, levels-1], one in each of B equal slices of the range, so
    every batch spans all quality levels (a uniform draw of 8 often leaves an end empty).
    power < 1 maps the slices through u^power, crowding them towards the top levels."""
    u = torch.rand(batch, generator=gen, device=device)
    return skew_positions((torch.arange(batch, device=device) + u) / batch, power) * (levels - 1)


def skew_positions(u: torch.Tensor, power: float) -> torch.Tensor:
    """u in [0, 1) → u^power (the identity at power 1, bit for bit)."""
    return u if power == 1.0 else u.pow(power)


class LevelNormaliser:
    """Running mean of a per-crop term (in training, the distortion) at each of the K levels;
    a crop at position t is divided by the geometric interpolation of the means at t.

    means: K float32 on the device, 0 where a level has not been seen yet. A crop at t between
    levels k and k+1 updates both, weighted by its distance, with a decay per unit of weight.
    """

    def __init__(self, levels: int, device: torch.device | str, decay: float = 0.99):
        self.decay = decay
        self.means = torch.zeros(levels, device=device)

    @torch.no_grad()
    def update(
        self,
        position: torch.Tensor,
        loss: torch.Tensor,
        reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        """position, loss: B. Fold this batch's losses into the running means.

        reduce: sums a 2×K tensor over the processes of a run in place (`Coordinator.sum_`),
        so each folds in the whole batch and all keep the same means."""
        k = self.means.numel()
        pos = position.clamp(0, k - 1)
        lo = pos.floor().long().clamp(max=k - 2)
        frac = pos - lo.to(pos.dtype)
        weights = torch.zeros(pos.numel(), k, device=pos.device)  # B×K
        weights.scatter_(1, lo[:, None], (1 - frac)[:, None])
        weights.scatter_add_(1, (lo + 1)[:, None], frac[:, None])
        total = weights.sum(0)  # K
        weighted = (weights * loss.detach().float()[:, None]).sum(0)  # K
        if reduce is not None:
            total, weighted = reduce(torch.stack((total, weighted)))
        observed = weighted / total.clamp(min=1e-12)
        rate = 1 - self.decay**total  # 0 where the batch has no weight
        rate = torch.where(self.means > 0, rate, (total > 0).float())  # first sight: take it
        self.means += rate * (observed - self.means)

    def scale(self, position: torch.Tensor, power: float = 1.0) -> torch.Tensor:
        """B divisors (no gradient): the running mean at each position, to `power` (1: each
        level pulls alike; 0.5: a level with 45× the distortion term pulls 6.7× as hard)."""
        seen = self.means > 0
        fallback = torch.where(seen, self.means, torch.ones_like(self.means)).max()
        means = torch.where(seen, self.means, fallback)
        log_means = torch.log(means).unsqueeze(1)  # K×1
        if power != 1.0:
            log_means = log_means * power
        return torch.exp(interpolate_levels(log_means, position)).squeeze(1).detach()

    def state_dict(self) -> dict:
        return {"means": self.means.detach().cpu()}

    def load_state_dict(self, state: dict) -> None:
        self.means.copy_(state["means"])


class SpikeClip:
    """Gradient-norm clipping relative to the recent norms: the limit is `factor` × a running
    mean of the (clipped) norms, capped by `absolute` when that is > 0. factor 0 leaves the
    absolute clip alone; the first step sets the mean and is not clipped by it."""

    def __init__(
        self, factor: float, absolute: float, device: torch.device | str, decay: float = 0.98
    ):
        self.factor = factor
        self.absolute = absolute
        self.decay = decay
        self.mean = torch.zeros((), device=device)  # 0 until the first step
        self.clipped = torch.zeros((), device=device)  # steps clipped since the last `take`

    @torch.no_grad()
    def __call__(self, parameters) -> torch.Tensor:
        grads = [p.grad for p in parameters if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        limit = torch.full_like(norm, math.inf)
        if self.factor > 0:
            limit = torch.where(self.mean > 0, self.factor * self.mean, limit)
        if self.absolute > 0:
            limit = limit.clamp(max=self.absolute)
        coef = (limit / (norm + 1e-6)).clamp(max=1.0)
        torch._foreach_mul_(grads, coef)
        self.clipped += (norm > limit).float()
        kept = torch.minimum(norm, limit)
        first = self.mean == 0
        self.mean.copy_(torch.where(first, kept, self.decay * self.mean + (1 - self.decay) * kept))
        return norm

    def take_clipped(self) -> torch.Tensor:
        """Steps clipped since the last call (a tensor: read it at log steps only)."""
        n = self.clipped.clone()
        self.clipped.zero_()
        return n

    def state_dict(self) -> dict:
        return {"mean": self.mean.detach().cpu()}

    def load_state_dict(self, state: dict) -> None:
        self.mean.copy_(state["mean"])


class WeightAverage:
    """Exponential moving average of a model's parameters and buffers. The decay ramps up as
    (1 + n) / (10 + n) over the first updates, so short runs average over a fitting window."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.tensors = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        current = model.state_dict()
        keys = [k for k, v in self.tensors.items() if v.is_floating_point()]
        torch._foreach_lerp_([self.tensors[k] for k in keys], [current[k] for k in keys], 1 - d)
        self.updates += 1

    def weights(self) -> dict[str, torch.Tensor]:
        return self.tensors

    def state_dict(self) -> dict:
        return {
            "updates": self.updates,
            "tensors": {k: v.detach().cpu().contiguous() for k, v in self.tensors.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        self.updates = int(state["updates"])
        for k, v in state["tensors"].items():
            self.tensors[k].copy_(v)


def learning_rate(
    step: int, progress: float, peak: float, final: float, warmup: int, anneal: float = 1.0
) -> float:
    """`peak` until progress 1 - anneal, then a cosine from `peak` to `final` over the last
    `anneal` of the run, capped by a linear warm-up over the first `warmup` steps. progress
    0..1 is the fraction of the run done, in steps, training seconds or wall-clock time.
    anneal 1 is a cosine over the whole run; a smaller one holds the peak longer, which suits a
    run whose length is set by a clock. The cap (not a switch) lets a run that is shorter than
    its warm-up still end at `final`."""
    progress = min(1.0, max(0.0, progress))
    anneal = min(1.0, max(1e-9, anneal))
    into = max(0.0, progress - (1.0 - anneal)) / anneal  # 0..1 through the anneal
    scheduled = final + 0.5 * (peak - final) * (1 + math.cos(math.pi * into))
    if step < warmup:
        return min(peak * (step + 1) / warmup, scheduled)
    return scheduled
