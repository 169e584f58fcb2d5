"""Trainable densities for the latents (float, torch; used for training and table export).

- `FactorizedDensity`: the non-parametric per-channel density of Ballé et al. 2018 (appendix
  6.1) for the side latent z.
- `gaussian_likelihood`: the probability of a unit-width bin under a Gaussian, for y.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class FactorizedDensity(nn.Module):
    """Per-channel cumulative c(x) = sigmoid(f_K(...f_1(x))), each f_k monotone in x.

    f_k(x) = h + tanh(a_k) * tanh(h) with h = softplus(H_k) x + b_k, matrices of sizes
    1→3→3→3→1 per channel (`filters`). softplus keeps H_k positive and |tanh(a_k)| < 1 keeps
    each step monotone, so c is a valid CDF.
    """

    def __init__(
        self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0
    ):
        super().__init__()
        dims = (1, *filters, 1)
        # Initialise so that c is roughly a logistic of width init_scale (as in the paper).
        scale = init_scale ** (1 / (len(dims) - 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(dims) - 1):
            init = math.log(math.expm1(1 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[i + 1], 1) - 0.5))
            if i < len(dims) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))

    def logits_cdf(self, x: torch.Tensor) -> torch.Tensor:
        """x: C×1×L values per channel → C×1×L logits of the cumulative."""
        h = x
        for i, (m, b) in enumerate(zip(self.matrices, self.biases, strict=True)):
            h = torch.matmul(F.softplus(m.to(x.dtype)), h) + b.to(x.dtype)
            if i < len(self.factors):
                h = h + torch.tanh(self.factors[i].to(x.dtype)) * torch.tanh(h)
        return h

    def likelihood(self, z: torch.Tensor) -> torch.Tensor:
        """P(bin of width 1 centred on z) for z of shape B×C×H×W; same shape out."""
        b, c, h, w = z.shape
        v = z.permute(1, 0, 2, 3).reshape(c, 1, -1)
        lower = self.logits_cdf(v - 0.5)
        upper = self.logits_cdf(v + 0.5)
        # Subtract in the tail where the sigmoids are far from 1, for precision.
        sign = -torch.sign(lower + upper).detach()
        p = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        return p.reshape(c, b, h, w).permute(1, 0, 2, 3)

    @torch.no_grad()
    def cdf(self, x: torch.Tensor) -> torch.Tensor:
        """x: C×L (float64 grid per channel) → C×L cumulative probabilities (float64)."""
        return torch.sigmoid(self.logits_cdf(x.double().unsqueeze(1))).squeeze(1)


def gaussian_likelihood(y: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """P(bin of width 1 centred on y) under N(mean, scale²); evaluated in the lower tail."""
    v = torch.abs(y - mean)
    upper = (0.5 - v) / scale
    lower = (-0.5 - v) / scale
    # Phi(u) - Phi(l) with Phi(t) = 0.5 * erfc(-t / sqrt 2), accurate in the far tail.
    return 0.5 * (torch.erfc(-upper / math.sqrt(2)) - torch.erfc(-lower / math.sqrt(2)))


def bits(p: torch.Tensor, floor: float = 1e-9) -> torch.Tensor:
    """-log2 of likelihoods, clamped away from zero so the rate stays finite."""
    return -torch.log2(p.clamp(min=floor))
