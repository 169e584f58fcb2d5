"""Moving a model's quality range: the gain vectors of one set of trade-off levels re-drawn for
another, so that `--init` can start a model with a wider (or denser) λ range from trained
weights instead of from scratch.

A level's log gain is a per-channel function of log λ; between trained levels it is interpolated
linearly in log λ, and beyond the trained range it is extrapolated along the nearest end's
slope (a level 4× past the top gets the top level's gains moved on by the same per-doubling
step). Everything else in the weights is shared by all levels and is kept as it is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

GAIN_KEYS = ("log_gain", "log_inv_gain")  # K×M each


def relevel_rows(table: torch.Tensor, old: Sequence[float], new: Sequence[float]) -> torch.Tensor:
    """K_old×M rows at log λ `old` → K_new×M rows at log λ `new` (piecewise linear in log λ,
    linear extrapolation beyond both ends)."""
    if table.shape[0] != len(old) or len(old) < 2:
        raise ValueError(f"{table.shape[0]} rows for {len(old)} levels")
    x = torch.tensor([math.log(v) for v in old], dtype=torch.float64)
    rows = table.to(torch.float64)
    out = []
    for v in new:
        t = math.log(v)
        # The segment that holds t, or the end segment nearest to it.
        i = int(torch.searchsorted(x, torch.tensor(t, dtype=torch.float64)).item()) - 1
        i = min(max(i, 0), len(old) - 2)
        w = (t - x[i].item()) / (x[i + 1] - x[i]).item()
        out.append(rows[i] + w * (rows[i + 1] - rows[i]))
    return torch.stack(out).to(table.dtype)


def relevel_weights(
    weights: Mapping[str, torch.Tensor], old: Sequence[float], new: Sequence[float]
) -> dict[str, torch.Tensor]:
    """A copy of a model's state dict with its gain vectors re-drawn for the levels `new`."""
    out = dict(weights)
    for key in GAIN_KEYS:
        out[key] = relevel_rows(weights[key], old, new)
    return out


# Parameters that read y (an M-sized input dimension): new channels start with zero weights
# there, so the widened model computes exactly what the narrow one did until they train.
_READS_Y = {"g_s.0.weight": 0, "h_a.0.weight": 1}  # key -> the dimension that is M


def widen_latent(
    weights: Mapping[str, torch.Tensor], fresh: Mapping[str, torch.Tensor], old_m: int
) -> dict[str, torch.Tensor]:
    """A model with more latent channels (M) from a trained narrower one.

    weights: the trained state dict (M = old_m); fresh: a newly initialised state dict of the
    wider model (same N, Nh, levels). Every tensor keeps its trained values in its leading
    slice; what produces the new channels (g_a's last layer, h_s's last layers) starts as the
    fresh initialisation, what reads them (g_s's first layer, h_a's first) starts at zero, and
    their gains start at the mean of the trained channels' gains at each level."""
    out = {}
    for key, new in fresh.items():
        old = weights[key]
        if old.shape == new.shape:
            out[key] = old.clone()
            continue
        if old.dim() != new.dim() or any(o > n for o, n in zip(old.shape, new.shape, strict=True)):
            raise ValueError(f"{key}: cannot widen {tuple(old.shape)} to {tuple(new.shape)}")
        t = new.clone()
        if key in _READS_Y:
            t.zero_()
        if key in GAIN_KEYS:  # K×M: the new channels quantized like the average old one
            t[:, old_m:] = old.mean(1, keepdim=True)
        t[tuple(slice(0, s) for s in old.shape)] = old
        out[key] = t
    return out
