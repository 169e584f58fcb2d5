"""Building blocks of the transforms: generalized divisive normalization and conv helpers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GDN(nn.Module):
    """Generalized divisive normalization (Ballé, Laparra & Simoncelli 2016).

    Forward:  y_i = x_i / sqrt(beta_i + sum_j gamma_ij * x_j^2)
    Inverse:  y_i = x_i * sqrt(beta_i + sum_j gamma_ij * x_j^2)   (IGDN, used in g_s)

    beta and gamma are kept non-negative by storing their square roots; a small floor on beta
    keeps the division finite. Shapes: x is B×C×H×W, gamma is C×C.
    """

    def __init__(self, channels: int, inverse: bool = False, beta_min: float = 1e-6):
        super().__init__()
        self.inverse = inverse
        self.beta_min = beta_min
        self.beta_sqrt = nn.Parameter(torch.ones(channels))
        # gamma starts as 0.1 * identity: close to a scaled identity transform, which trains stably.
        self.gamma_sqrt = nn.Parameter(torch.eye(channels) * 0.1**0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        beta = self.beta_sqrt**2 + self.beta_min
        gamma = (self.gamma_sqrt**2).view(c, c, 1, 1)
        norm = torch.sqrt(F.conv2d(x * x, gamma, beta))
        return x * norm if self.inverse else x / norm


def conv(in_ch: int, out_ch: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    """A 'same'-padded convolution that divides the resolution by `stride`."""
    return nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2)


def deconv(in_ch: int, out_ch: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    """A transposed convolution that multiplies the resolution by exactly `stride`."""
    return nn.ConvTranspose2d(
        in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, output_padding=stride - 1
    )
