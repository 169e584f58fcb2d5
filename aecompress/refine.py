"""Latent refinement: spend encoding time on a smaller file, with the decoder unchanged.

g_a is an amortised guess: the latents it produces are not the ones that minimise this image's
rate–distortion cost λ·255²·MSE + bpp under this decoder. Refinement optimises the gained latent
y (and, in its second phase, the side latent z) of one image directly (Campos et al. 2019; Yang,
Bamler & Mandt 2020), through g_s and the float hyperprior. The bitstream and every decoder stay
as they are: the result is rounded and coded by the codec's exact integer path like any other
latents. y is rounded as the codec rounds it: the residual y - mu(z), so ŷ = mu + round(y - mu).

Every step costs one forward and one backward pass of g_s at full resolution, so what matters
is how much each step buys and what a pass costs. The forward pass is the decoder's own, float32,
so every cost compared and every reconstruction kept is what decode gives; the backward pass is
`SynthesisGradient`'s hand-written Jᵀ product, in bfloat16 where the CPU has it in hardware
(6–8× faster convolutions; on `valid/` crops the same BD-rate as float32 within 0.03%), and the
last step's pass is forward only (no step follows to use a gradient). Two phases:

1. **Preconditioned descent** (z fixed, so mu and the scales are too). The cost is evaluated at
   the hard-rounded latents, exactly what gets coded (up to the float scales), with the gradient
   passed straight through the rounding. Each step divides the gradient by a diagonal estimate
   of the cost's curvature: for the rate, 1/(σ² ln 2) per element (a Gaussian's bits); for the
   distortion, 2·λ'·diag(JᵀJ) of g_s's Jacobian, estimated once with one random ±1 probe
   (Hutchinson: E[(Jᵀv)²] = diag(JᵀJ)) and averaged per channel over the positions near each
   latent (`Schedule.curvature_window`), or over all of them. A latent then moves
   as far as its own trade-off asks, in a few steps, where Adam moves every latent by about its
   learning rate per step whatever its gradient. The step length adapts: it grows while the
   cost falls, and a step that raises it is taken back and halved, so the phase never ends above
   where it started. On `valid/` crops this reaches in 4 steps what 30 Adam steps do.
2. **Stochastic Gumbel annealing** (SGA, Yang et al. 2020) of y and z together, with Adam, for
   the higher effort levels: each value is rounded down or up at random, with probabilities that
   favour the nearer integer, relaxed by a Gumbel-softmax of temperature τ; annealing τ towards
   0 turns the relaxation into hard rounding by the last step.

For large images the distortion and its gradients are computed tile by tile (`tiling.spans`,
each tile with the halo that covers g_s's receptive field): the sum over disjoint tile cores is
the whole image's, so every gradient is exact and memory stays bounded.

Shapes: x is 1×3×H×W (H, W multiples of 64), y 1×M×H/16×W/16, z 1×Nh×H/64×W/64.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .density import bits, gaussian_likelihood
from .effort_levels import Schedule
from .model import quality_to_position, ste_round
from .synthesis_gradient import SynthesisGradient, fast_gradient_dtype
from .tiling import spans

# Keeps atanh finite: a value exactly on an integer has distance 0 to it.
_EDGE = 1e-5


@dataclass
class RefinedLatents:
    """The result of `refine`: float latents for the codec to round and code."""

    y: torch.Tensor  # 1×M×h×w gained latent (float)
    z: torch.Tensor  # 1×Nh×h/4×w/4 side latent (float)
    steps: int  # steps taken, both phases
    loss: float  # the relaxed cost at the last step (λ·255²·MSE + bpp)
    # H×W×3 uint8 reconstructions from the descent's passes through g_s, of the start (the plain
    # encode's latents) and of the result; None after an annealing phase
    start_rgb: np.ndarray | None = None
    rgb: np.ndarray | None = None


def sga_round(v: torch.Tensor, tau: float, generator: torch.Generator) -> torch.Tensor:
    """Annealed stochastic rounding of v (Yang et al. 2020), differentiable in v.

    Each value goes to floor(v) or floor(v) + 1 with logits -atanh(distance)/τ, sampled by a
    Gumbel-softmax of temperature τ: near 0.5 both are likely, near an integer it wins, and as
    τ → 0 the sample becomes plain rounding."""
    lower = torch.floor(v.detach())
    frac = (v - lower).clamp(_EDGE, 1 - _EDGE)  # distance to floor; 1 - frac to the ceiling
    logits = torch.stack((-torch.atanh(frac), -torch.atanh(1 - frac)), dim=-1) / tau
    uniform = torch.rand(logits.shape, generator=generator, dtype=v.dtype, device=v.device)
    gumbel = -torch.log(-torch.log(uniform.clamp(1e-10, 1 - 1e-7)))
    weights = torch.softmax((logits + gumbel) / tau, dim=-1)
    return lower + weights[..., 1]


class Refiner:
    """Refines the latents of one image at one quality under a codec's model."""

    def __init__(
        self,
        codec,
        tile_core: int | None = None,
        gradient_dtype: torch.dtype | None = None,
    ):
        """tile_core: latent samples per tile side for the distortion term (None: the codec's
        tiling decision, by image size). gradient_dtype: the precision of g_s's Jᵀ products
        (None: bfloat16 where the CPU computes it in hardware, else float32)."""
        self.codec = codec
        self.model = codec.model
        self.tile_core = tile_core
        dtype = gradient_dtype or fast_gradient_dtype(codec.device)
        self.synthesis = SynthesisGradient(codec.transforms.g_s, dtype)

    def _tiles(self, h: int, w: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        stride = self.model.Y_STRIDE
        if self.tile_core is None and not self.codec.uses_tiles(stride * h, stride * w):
            return [(0, h)], [(0, w)]
        core = self.tile_core or self.codec.tile_core
        core_h, core_w = (core, core) if isinstance(core, int) else core
        return spans(h, core_h), spans(w, core_w)

    def _through_g_s(
        self,
        y_s: torch.Tensor,
        x: torch.Tensor,
        height: int,
        width: int,
        probe: torch.Generator | None = None,
        image: torch.Tensor | None = None,
        gradient: bool = True,
    ) -> tuple[torch.Tensor | None, float, torch.Tensor | None]:
        """One pass of g_s over y_s (1×M×h×w, already times the inverse gain), tile by tile,
        over the image's height × width pixels (the padding does not count): the sum of squared
        errors against x, its gradient 2·Jᵀ(g_s(y_s) - x) with respect to y_s (None without
        `gradient`: a forward pass only), and, with a `probe` generator, Jᵀv for a random ±1
        image v drawn from it, at the same forward pass (else None). The forward pass is the
        decoder's, exactly; the Jᵀ products are `SynthesisGradient`'s, in its dtype. `image`
        (1×3×height×width uint8), when given, receives the reconstruction as decode rounds
        it."""
        stride = self.model.Y_STRIDE
        fmt = self.codec.memory_format
        reach = self.codec.transforms.reach_s
        halo_h, halo_w = reach[0].halo(), reach[1].halo()
        h, w = y_s.shape[-2:]
        rows, cols = self._tiles(h, w)
        grad = torch.zeros_like(y_s) if gradient else None
        jv = torch.zeros_like(y_s) if probe is not None else None
        total = 0.0
        for r0, r1 in rows:
            t0, t1 = max(0, r0 - halo_h), min(h, r1 + halo_h)
            for c0, c1 in cols:
                u0, u1 = max(0, c0 - halo_w), min(w, c1 + halo_w)
                # pixels of the core, clipped to the image (padding excluded)
                p0, p1 = r0 * stride, min(r1 * stride, height)
                q0, q1 = c0 * stride, min(c1 * stride, width)
                if p1 <= p0 or q1 <= q0:
                    continue
                tile = y_s[..., t0:t1, u0:u1].detach().contiguous(memory_format=fmt)
                out, saved = self.synthesis.forward(tile)
                a, b = p0 - t0 * stride, p1 - t0 * stride
                c, d = q0 - u0 * stride, q1 - u0 * stride
                core = out[..., a:b, c:d]
                if image is not None:
                    pixels = core.clamp(0, 1).mul(255).round()
                    image[..., p0:p1, q0:q1] = pixels.to(torch.uint8)
                diff = core - x[..., p0:p1, q0:q1]
                total += float(diff.square().sum())
                if not gradient:
                    continue
                # d(sum of squares)/d(out) is 2·diff on the core, 0 on the halo
                upstream = torch.zeros_like(out)
                upstream[..., a:b, c:d] = diff.mul_(2)
                grad[..., t0:t1, u0:u1] += self.synthesis.backward(saved, upstream)
                if jv is not None:
                    v = torch.randint(0, 2, core.shape, generator=probe, device=core.device)
                    upstream.zero_()
                    upstream[..., a:b, c:d] = v.to(out.dtype) * 2 - 1
                    jv[..., t0:t1, u0:u1] += self.synthesis.backward(saved, upstream)
        return grad, total, jv

    def distortion_grad(
        self, y_s: torch.Tensor, x: torch.Tensor, height: int, width: int
    ) -> tuple[torch.Tensor, float]:
        """Sum of squared errors of g_s(y_s) against x over the image's height × width pixels
        and its gradient with respect to y_s (1×M×h×w, already times the inverse gain)."""
        grad, total, _ = self._through_g_s(y_s, x, height, width)
        return grad, total

    def refine(
        self,
        x: torch.Tensor,
        size: tuple[int, int],
        y: torch.Tensor,
        quality: float,
        schedule: Schedule,
        seed: int = 0,
        on_step: Callable[[int, int], None] | None = None,
    ) -> RefinedLatents:
        """Optimise gained y (1×M×h×w, from g_a) and z (starting at h_a(y)) for the image x
        (1×3×H×W padded, in [0, 1]) of size (height, width) at a quality: the descent phase,
        then the SGA phase (either may have no steps). on_step(done, total) after each step.
        Deterministic for a seed on one device."""
        model = self.model
        height, width = size
        position = quality_to_position(quality, model.config.levels).reshape(1).to(y.device)
        _, inv_gain = model.gains(position)
        problem = _Problem(
            x=x,
            height=height,
            width=width,
            pixels=height * width,
            inv_gain=inv_gain.detach()[:, :, None, None],
            # λ·255²·MSE over the 3·pixels values of the image
            weight=float(model.lambdas(position)) * 255**2 / (3 * height * width),
        )
        generator = torch.Generator(device=y.device).manual_seed(seed)
        total = schedule.total_steps
        done = 0

        def tick() -> None:
            nonlocal done
            done += 1
            if on_step is not None:
                on_step(done, total)

        with torch.no_grad():
            z = torch.round(model.h_a(y))
        y = y.detach()
        loss = math.nan
        # The same image gives the same file on a device: no nondeterministic cuDNN kernels
        # (their backward passes may sum in a varying order).
        with torch.backends.cudnn.flags(
            enabled=torch.backends.cudnn.enabled, benchmark=False, deterministic=True
        ):
            images = None
            if schedule.descent_steps:
                y, loss, images = self._descend(problem, y, z, schedule, generator, tick)
            if schedule.steps:
                y, z, loss = self._anneal(problem, y, z, schedule, generator, tick)
                images = None  # the annealing's last y was never reconstructed
        start_rgb = rgb = None
        if images is not None:
            start_rgb, rgb = (im[0].permute(1, 2, 0).cpu().numpy() for im in images)
        return RefinedLatents(y=y, z=z, steps=total, loss=loss, start_rgb=start_rgb, rgb=rgb)

    def _descend(
        self,
        pb: _Problem,
        y: torch.Tensor,
        z_hat: torch.Tensor,
        schedule: Schedule,
        generator: torch.Generator,
        tick: Callable[[], None],
    ) -> tuple[torch.Tensor, float, tuple[torch.Tensor, torch.Tensor]]:
        """Phase 1: preconditioned descent on y at hard rounding, z fixed (module docstring).
        Returns the best y evaluated, its cost, and the uint8 reconstructions (1×3×H×W) of the
        start and of the best y, as the passes through g_s made them."""
        model = self.model
        with torch.no_grad():
            mu = model.h_s_mean(z_hat)
            sigma = model.scale_from_log(model.h_s_scale(z_hat))
        # bits of z do not change in this phase: they are left out of the cost
        rate_curvature = 1 / (pb.pixels * math.log(2) * sigma.square())
        step = schedule.descent_step
        best_loss, best_y, best_grad = math.inf, y, None
        current = y
        image = torch.empty((1, 3, pb.height, pb.width), dtype=torch.uint8, device=y.device)
        start_image = best_image = None
        for i in range(schedule.descent_steps):
            # The last pass only measures the cost of the last update: no gradient, which no
            # step would use. The first also probes the Jacobian at the starting point (the
            # plain encode's latents): diag(JᵀJ), averaged per channel over a window
            # (1×M×h×w) or the whole image (1×M×1×1), sets the curvature.
            last = i == schedule.descent_steps - 1
            probe = generator if i == 0 and not last else None
            loss, grad, jv = self._hard_cost(pb, current, mu, sigma, probe, image, not last)
            if jv is not None:
                jtj = _local_mean(jv.square(), schedule.curvature_window)
                curvature = 2 * pb.weight * jtj * pb.inv_gain.square() + rate_curvature
            if loss < best_loss:
                best_loss, best_y, best_grad = loss, current, grad
                best_image = image.clone()
                start_image = best_image if i == 0 else start_image
                step *= schedule.descent_grow
            else:
                step *= 0.5  # too far: back to the best point, half the step
            if not last:
                current = best_y - step * best_grad / curvature
            tick()
        return best_y, best_loss, (start_image, best_image)

    def _hard_cost(
        self,
        pb: _Problem,
        y: torch.Tensor,
        mu: torch.Tensor,
        sigma: torch.Tensor,
        probe: torch.Generator | None = None,
        image: torch.Tensor | None = None,
        gradient: bool = True,
    ) -> tuple[float, torch.Tensor | None, torch.Tensor | None]:
        """Cost (bpp of y + λ·255²·MSE) at ŷ = mu + round(y - mu), its gradient with respect
        to y through the rounding (straight through; None without `gradient`), and Jᵀv at ŷ
        with a `probe`; `image` receives the uint8 reconstruction."""
        y_var = y.detach().clone().requires_grad_(gradient)
        with torch.set_grad_enabled(gradient):
            r = ste_round(y_var - mu)
            rate = bits(gaussian_likelihood(r, 0.0, sigma)).sum() / pb.pixels
            y_s = (r + mu) * pb.inv_gain
        grad_s, sse, jv = self._through_g_s(y_s, pb.x, pb.height, pb.width, probe, image, gradient)
        loss = float(rate.detach()) + pb.weight * sse
        if not gradient:
            return loss, None, jv
        with torch.enable_grad():
            _backward(rate, y_s, grad_s * pb.weight)
        return loss, y_var.grad, jv

    def _anneal(
        self,
        pb: _Problem,
        y: torch.Tensor,
        z: torch.Tensor,
        schedule: Schedule,
        generator: torch.Generator,
        tick: Callable[[], None],
    ) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Phase 2: SGA of y and z with Adam (module docstring). Returns y, z and the relaxed
        cost at the last step."""
        model = self.model
        y_var = y.detach().clone().requires_grad_(True)
        z_var = z.detach().clone().requires_grad_(True)
        opt = torch.optim.Adam([y_var, z_var], lr=schedule.lr)
        loss = math.nan
        for i in range(schedule.steps):
            tau = schedule.tau(i)
            for group in opt.param_groups:
                group["lr"] = schedule.learning_rate(i)
            with torch.enable_grad():
                z_t = sga_round(z_var, tau, generator)
                mu = model.h_s_mean(z_t)
                scale = model.scale_from_log(model.h_s_scale(z_t))
                r_t = sga_round(y_var - mu, tau, generator)
                rate = bits(gaussian_likelihood(r_t, 0.0, scale)).sum()
                rate = (rate + bits(model.density_z.likelihood(z_t)).sum()) / pb.pixels
                y_s = (r_t + mu) * pb.inv_gain  # what g_s reads
            # The distortion's gradient through g_s, tile by tile, then through the rest.
            grad, sse, _ = self._through_g_s(y_s, pb.x, pb.height, pb.width)
            opt.zero_grad(set_to_none=True)
            with torch.enable_grad():
                _backward(rate, y_s, grad * pb.weight)
            opt.step()
            loss = float(rate.detach()) + pb.weight * sse
            tick()
        return y_var.detach(), z_var.detach(), loss


def _local_mean(v: torch.Tensor, window: int) -> torch.Tensor:
    """Per-channel mean of v (1×M×h×w) over all positions (1×M×1×1) for window 0, else over
    the window × window neighbourhood of each position (1×M×h×w; fewer at the edges)."""
    if window <= 0:
        return v.mean((2, 3), keepdim=True)
    pad = window // 2
    return torch.nn.functional.avg_pool2d(
        v, 2 * pad + 1, stride=1, padding=pad, count_include_pad=False
    )


@dataclass
class _Problem:
    """One image at one quality, as both phases see it."""

    x: torch.Tensor  # 1×3×H×W padded image in [0, 1]
    height: int
    width: int
    pixels: int
    inv_gain: torch.Tensor  # 1×M×1×1
    weight: float  # λ·255² / (3·pixels): the cost of one unit of squared error


def _backward(rate: torch.Tensor, y_s: torch.Tensor, grad_y_s: torch.Tensor) -> None:
    """Gradients of rate + <y_s, grad_y_s> (the distortion's, whose gradient through g_s is
    grad_y_s) into the latents, through one scalar: `torch.autograd.backward([rate, y_s],
    [None, grad_y_s])` computes the same, but the first call with a given gradient imports
    sympy (0.36 s of every one-image encode at effort 1 and above, benchmarks/startup.md)."""
    (rate + (y_s * grad_y_s).sum()).backward()
