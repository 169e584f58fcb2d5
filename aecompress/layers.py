"""Building blocks of the transforms: generalized divisive normalization and conv helpers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _LowerBound(torch.autograd.Function):
    """max(x, bound), whose gradient still passes where x is at or below the bound if it
    would push x up: a parameter held at its floor can leave it (Ballé 2018)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, bound: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.bound = bound
        return x.clamp(min=bound)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        passes = (x >= ctx.bound) | (grad < 0)
        return grad * passes.to(grad.dtype), None


def lower_bound(x: torch.Tensor, bound: float) -> torch.Tensor:
    return _LowerBound.apply(x, bound)


class GDN(nn.Module):
    """Generalized divisive normalization (Ballé, Laparra & Simoncelli 2016).

    Forward:  y_i = x_i / sqrt(beta_i + sum_j gamma_ij * x_j^2)
    Inverse:  y_i = x_i * sqrt(beta_i + sum_j gamma_ij * x_j^2)   (IGDN, used in g_s)

    x is B×C×H×W, gamma C×C, beta C. Both stay non-negative through the reparametrisation of
    Ballé's GDN: a parameter p stands for p² − pedestal, with p held at or above
    sqrt(pedestal) by a lower bound whose gradient passes upwards. gamma starts as 0.1·I, so
    its off-diagonal parameters start at sqrt(pedestal) = 2^-18, not at 0: there the gradient
    of p² is 2p·dL/dgamma, small but non-zero, and Adam, which divides by the gradient's
    running scale, moves them at its full step. (Storing sqrt(gamma) with a zero start, as
    the first shipped model did, gives every off-diagonal entry a gradient of exactly 0
    forever: each GDN is then a per-channel nonlinearity.)

    Files of that model hold `gamma_sqrt` and `beta_sqrt` with gamma = gamma_sqrt²
    and beta = beta_sqrt² + beta_min. They load into this module with a pedestal of 0 and the
    absolute values of their parameters, which computes the same numbers bit for bit.
    """

    PEDESTAL = 2.0**-36

    def __init__(self, channels: int, inverse: bool = False, beta_min: float = 1e-6):
        super().__init__()
        self.inverse = inverse
        self.beta_min = beta_min
        self.pedestal = self.PEDESTAL
        p = self.pedestal
        self.beta_reparam = nn.Parameter(torch.full((channels,), (1.0 + p) ** 0.5))
        self.gamma_reparam = nn.Parameter((torch.eye(channels) * 0.1 + p) ** 0.5)

    def beta(self) -> torch.Tensor:
        p = self.pedestal
        return lower_bound(self.beta_reparam, p**0.5) ** 2 - p + self.beta_min

    def gamma(self) -> torch.Tensor:
        p = self.pedestal
        return lower_bound(self.gamma_reparam, p**0.5) ** 2 - p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        norm = torch.sqrt(F.conv2d(x * x, self.gamma().view(c, c, 1, 1), self.beta()))
        return x * norm if self.inverse else x / norm

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        legacy = prefix + "gamma_sqrt"
        if legacy in state_dict:
            # x − 0.0 and max(|v|, 0) are exact: the same beta and gamma as the old formula.
            self.pedestal = 0.0
            state_dict[prefix + "gamma_reparam"] = state_dict.pop(legacy).abs()
            state_dict[prefix + "beta_reparam"] = state_dict.pop(prefix + "beta_sqrt").abs()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def conv(in_ch: int, out_ch: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    """A 'same'-padded convolution that divides the resolution by `stride`."""
    return nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2)


def deconv(in_ch: int, out_ch: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    """A transposed convolution that multiplies the resolution by exactly `stride`."""
    return nn.ConvTranspose2d(
        in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, output_padding=stride - 1
    )
