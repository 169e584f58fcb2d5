"""The mean-scale hyperprior autoencoder (Minnen, Ballé & Toderici 2018, without the serial
context model), with continuous variable rate through per-channel gain vectors (Cui et al. 2021).

Shapes for an input x of B×3×H×W (H, W multiples of 64):
    y = g_a(x)                B×M×H/16×W/16     latent
    y_g = y * gain(q)         same              gained latent, what is quantized and coded
    z = h_a(y_g)              B×Nh×H/64×W/64    side latent
    mu = h_s_mean(z_hat)      B×M×H/16×W/16     mean of y_g (float path)
    log_scale = h_s_scale(z_hat)                log of the std of y_g; at run time this path is
                                                replaced by the exact integer network (intnet.py)
    x_hat = g_s(y_hat_g * inv_gain(q))
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .config import GAIN_SPREAD, ModelConfig
from .density import FactorizedDensity, bits, gaussian_likelihood
from .layers import GDN, conv, deconv
from .quality import QUALITY_MAX, QUALITY_MIN


def quality_to_position(quality: torch.Tensor | float, levels: int) -> torch.Tensor:
    """Quality 1..100 → continuous position 0..levels-1 along the trade-off levels."""
    q = torch.as_tensor(quality, dtype=torch.float32)
    return (q - QUALITY_MIN) / (QUALITY_MAX - QUALITY_MIN) * (levels - 1)


def interpolate_levels(table: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of K×M rows at B positions in [0, K-1] → B×M."""
    k = table.shape[0]
    position = position.clamp(0, k - 1)
    lo = position.floor().long().clamp(max=k - 2)
    frac = (position - lo.to(position.dtype)).unsqueeze(1)
    return table[lo] * (1 - frac) + table[lo + 1] * frac


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity gradient in the backward pass."""
    return x + (torch.round(x) - x).detach()


def _uniform_noise(like: torch.Tensor) -> torch.Tensor:
    """Uniform noise in [-0.5, 0.5) shaped like `like`, from torch's generator."""
    return torch.empty_like(like).uniform_(-0.5, 0.5)


def _run(layers: list[nn.Module], v: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """Apply layers in order; under autocast to `dtype` (result back in float32) if given."""
    if dtype is None:
        for layer in layers:
            v = layer(v)
        return v
    with torch.autocast(v.device.type, dtype=dtype):
        for layer in layers:
            v = layer(v)
    return v.float()


@dataclass
class ForwardOutput:
    x_hat: torch.Tensor  # B×3×H×W reconstruction (float, not clamped)
    bits_y: torch.Tensor  # B estimated bits of y under the noisy relaxation
    bits_z: torch.Tensor  # B estimated bits of z


class HyperpriorModel(nn.Module):
    # Four stride-2 layers in g_a (and g_s), two more in h_a (and h_s): a y sample covers
    # 16 × 16 image pixels and a z sample 64 × 64, so images are padded to multiples of 64.
    Y_STRIDE = 16
    Z_STRIDE = 64

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        n, m, nh, k = config.N, config.M, config.Nh, config.levels
        self.g_a = nn.Sequential(
            conv(3, n), GDN(n), conv(n, n), GDN(n), conv(n, n), GDN(n), conv(n, m)
        )
        self.g_s = nn.Sequential(
            deconv(m, n), GDN(n, inverse=True),
            deconv(n, n), GDN(n, inverse=True),
            deconv(n, n), GDN(n, inverse=True),
            deconv(n, 3),
        )  # fmt: skip
        self.h_a = nn.Sequential(
            conv(m, nh, 3, 1), nn.LeakyReLU(inplace=True),
            conv(nh, nh), nn.LeakyReLU(inplace=True),
            conv(nh, nh),
        )  # fmt: skip
        self.h_s_mean = nn.Sequential(
            deconv(nh, nh), nn.LeakyReLU(inplace=True),
            deconv(nh, nh), nn.LeakyReLU(inplace=True),
            conv(nh, m, 3, 1),
        )  # fmt: skip
        # ReLU (not leaky) so that the integer version can clip activations to [0, max].
        self.h_s_scale = nn.Sequential(
            deconv(nh, nh), nn.ReLU(inplace=True),
            deconv(nh, nh), nn.ReLU(inplace=True),
            conv(nh, m, 3, 1),
        )  # fmt: skip
        self.density_z = FactorizedDensity(nh)
        # Log gains per trade-off level (K×M): higher levels scale y up, i.e. finer quantization.
        # They train (at a higher learning rate than the transforms, `gain_parameters`); the
        # start is only a guess at the spread between the ends of the range.
        self.log_gain = nn.Parameter(torch.empty(k, m))
        self.log_inv_gain = nn.Parameter(torch.empty(k, m))
        self.spread_gains(GAIN_SPREAD)

    # ----- gains ---------------------------------------------------------------------------
    @torch.no_grad()
    def spread_gains(self, top: float) -> None:
        """Log gains from -top (level 0) to +top (level K-1), evenly; inverse gains opposite."""
        k, m = self.log_gain.shape
        spread = torch.linspace(-1.0, 1.0, k).unsqueeze(1) * top
        self.log_gain.copy_(spread.repeat(1, m))
        self.log_inv_gain.copy_(-spread.repeat(1, m))

    def gain_parameters(self) -> list[nn.Parameter]:
        return [self.log_gain, self.log_inv_gain]

    def freeze_gdn_cross_channel(self) -> None:
        """The GDN of the first shipped model (aec-hp-n64-cpu-2026.11), for comparisons:
        off-diagonal gamma held at 0 with no gradient, a per-channel nonlinearity (`layers.GDN`)."""
        with torch.no_grad():
            for layer in self.modules():
                if isinstance(layer, GDN):
                    layer.pedestal = 0.0
                    c = layer.gamma_reparam.shape[0]
                    layer.gamma_reparam.copy_(torch.eye(c) * 0.1**0.5)
                    layer.beta_reparam.fill_(1.0)

    def gains(self, position: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions B → (gain, inverse gain), each B×M, interpolated geometrically."""
        return (
            torch.exp(interpolate_levels(self.log_gain, position)),
            torch.exp(interpolate_levels(self.log_inv_gain, position)),
        )

    def lambdas(self, position: torch.Tensor) -> torch.Tensor:
        log_l = torch.log(torch.tensor(self.config.lambdas, device=position.device))
        return torch.exp(interpolate_levels(log_l.unsqueeze(1), position)).squeeze(1)

    def scale_from_log(self, log_scale: torch.Tensor) -> torch.Tensor:
        c = self.config
        return torch.exp(log_scale.clamp(math.log(c.scale_min), math.log(c.scale_max)))

    # ----- training ------------------------------------------------------------------------
    def forward(
        self,
        x: torch.Tensor,
        position: torch.Tensor,
        inner_dtype: torch.dtype | None = None,
        noise: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> ForwardOutput:
        """x: B×3×H×W in [0, 1]; position: B trade-off positions in [0, K-1].

        noise: the rate terms' additive noise, uniform in [-0.5, 0.5) and shaped like its
        argument (z's, then y's); None draws it from torch's generator. Training passes
        `CropNoise`, which draws each crop's own.

        inner_dtype (e.g. torch.bfloat16) runs the inner layers of g_a and g_s under autocast,
        nearly all of the arithmetic. bf16 keeps 8 significant bits while y, z and mu reach the
        hundreds with bins 1 wide, so the last layer of g_a (which makes y), the first of g_s
        (which reads y_hat), the hyperprior, the noise and every rate term stay float32.
        """
        g_a, g_s = list(self.g_a), list(self.g_s)
        gain, inv_gain = self.gains(position)
        y = g_a[-1](_run(g_a[:-1], x, inner_dtype)) * gain[:, :, None, None]
        z = self.h_a(y)
        # Rate terms use additive uniform noise; what feeds the decoder is rounded (straight-
        # through), so the transforms train on the values they will see at run time.
        noise = noise if noise is not None else _uniform_noise
        z_noisy = z + noise(z)
        bits_z = bits(self.density_z.likelihood(z_noisy)).sum((1, 2, 3))
        z_hat = ste_round(z)
        mu = self.h_s_mean(z_hat)
        scale = self.scale_from_log(self.h_s_scale(z_hat))
        y_noisy = y + noise(y)
        bits_y = bits(gaussian_likelihood(y_noisy, mu, scale)).sum((1, 2, 3))
        y_hat = ste_round(y - mu) + mu
        x_hat = _run(g_s[1:], g_s[0](y_hat * inv_gain[:, :, None, None]), inner_dtype)
        return ForwardOutput(x_hat=x_hat, bits_y=bits_y, bits_z=bits_z)

    # ----- run-time pieces (the codec drives these) ----------------------------------------
    def analysis(self, x: torch.Tensor, quality: float) -> torch.Tensor:
        """x: 1×3×H×W in [0, 1] → gained latent y_g, 1×M×H/16×W/16."""
        return self.apply_gain(self.g_a(x), quality)

    def apply_gain(self, y: torch.Tensor, quality: float) -> torch.Tensor:
        """Ungained y (1×M×h×w, g_a's output) → y_g for this quality. Lets a quality search
        reuse one run of g_a."""
        pos = quality_to_position(quality, self.config.levels).reshape(1).to(y.device)
        gain, _ = self.gains(pos)
        return y * gain[:, :, None, None]

    def remove_gain(self, y_hat: torch.Tensor, quality: float) -> torch.Tensor:
        """Gained y_hat (1×M×h×w) → what g_s reads: y_hat times this quality's inverse gain.
        Applied to the whole latent before a tiled g_s, exactly as before an untiled one."""
        pos = quality_to_position(quality, self.config.levels).reshape(1).to(y_hat.device)
        _, inv_gain = self.gains(pos)
        return y_hat * inv_gain[:, :, None, None]

    def synthesis(self, y_hat: torch.Tensor, quality: float) -> torch.Tensor:
        """Gained y_hat 1×M×h×w → reconstruction 1×3×16h×16w (float, unclamped)."""
        return self.g_s(self.remove_gain(y_hat, quality))
