"""Running the full-resolution transforms (g_a, g_s) over overlapping tiles.

A 24-megapixel photo through g_a or g_s untiled needs tens of GB for the activations at 1/2
resolution (N channels of float32 at 3000×2000, several of them alive at once inside GDN).
Tiled, only one tile's activations are alive at a time, plus the whole input and output.

Tiles are laid out in *coarse units*: latent samples, i.e. 16 pixels for a transform with a
total stride of 16. Each tile has a core (what it contributes to the output) and a halo of
`halo` coarse units on each side (what it needs to compute its core exactly); the halo is
clipped at the image borders, so a border tile sees exactly the padding the untiled run sees
there, and an interior tile edge sees real neighbouring samples. Tile corners are multiples of
the total stride, so every tile's sampling grid is aligned with the untiled run's, and each
core is computed from the very same inputs as untiled: results differ only by float rounding
(convolution algorithms may sum in another order for another tile size).

The halo comes from the receptive field, worked out from the layers' kernels, strides,
paddings and dilations (`receptive_field`): for the hyperprior model's g_a (four 5×5 stride-2
convolutions) a latent sample sees pixels 16i-30 .. 16i+30, for g_s (four 5×5 stride-2
transposed convolutions) a pixel sees latent samples within ±1.875 of its own position: a halo
of 2 latent samples (32 pixels) covers both.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import torch
from torch import nn

from .layers import GDN

# Layers that do not mix spatial positions (GDN is a 1×1 convolution across channels).
POINTWISE: tuple[type[nn.Module], ...] = (
    GDN,
    nn.Identity,
    nn.ReLU,
    nn.LeakyReLU,
    nn.PReLU,
    nn.GELU,
    nn.SiLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Softplus,
)


@dataclass(frozen=True)
class Reach:
    """How a module's output positions depend on its input along one axis.

    Output sample o depends only on input samples i with o/scale - lo <= i <= o/scale + hi.
    scale: output length / input length (1/16 for g_a, 16 for g_s).
    """

    scale: Fraction
    lo: Fraction
    hi: Fraction

    def then(self, other: Reach) -> Reach:
        """The reach of `other` applied to this module's output."""
        return Reach(
            scale=self.scale * other.scale,
            lo=self.lo + other.lo / self.scale,
            hi=self.hi + other.hi / self.scale,
        )

    @property
    def coarse_in(self) -> int:
        """Input samples per coarse unit (16 for g_a, 1 for g_s)."""
        return max(1, int(1 / self.scale))

    @property
    def coarse_out(self) -> int:
        """Output samples per coarse unit (1 for g_a, 16 for g_s)."""
        return max(1, int(self.scale))

    def halo(self) -> int:
        """Coarse units each side of a tile's core that cover the receptive field of the core.

        For a core [a, b) (coarse units), the outputs kept are [a·co, b·co) and they read the
        inputs from a·ci - lo to (b·co - 1)/scale + hi = b·ci - 1/scale + hi.
        """
        ci = self.coarse_in
        left = math.ceil(math.floor(self.lo) / ci)
        right = math.ceil((math.floor(self.hi - 1 / self.scale) + 1) / ci)
        return max(0, left, right)


IDENTITY = Reach(Fraction(1), Fraction(0), Fraction(0))


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _layer_reach(layer: nn.Module, axis: int) -> Reach:
    if isinstance(layer, nn.Sequential):
        reach = IDENTITY
        for child in layer:
            reach = reach.then(_layer_reach(child, axis))
        return reach
    if isinstance(layer, POINTWISE):
        return IDENTITY
    if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d) and not isinstance(layer.padding, str):
        k = _pair(layer.kernel_size)[axis]
        s = _pair(layer.stride)[axis]
        p = _pair(layer.padding)[axis]
        d = _pair(layer.dilation)[axis]
        span = d * (k - 1)
        if isinstance(layer, nn.ConvTranspose2d):
            # o = s·i - p + d·t (t < k): i from (o + p - span)/s to (o + p)/s.
            return Reach(Fraction(s), Fraction(span - p, s), Fraction(p, s))
        # i = s·o - p + d·t: from s·o - p to s·o - p + span.
        return Reach(Fraction(1, s), Fraction(p), Fraction(span - p))
    raise ValueError(
        f"cannot work out the receptive field through {type(layer).__name__}; "
        "pass the halo (and geometry) explicitly"
    )


def receptive_field(module: nn.Module) -> tuple[Reach, Reach]:
    """The (rows, columns) reach of a chain of convolutions, transposed convolutions and
    pointwise layers (nested nn.Sequential allowed). Raises ValueError for anything else."""
    reaches = (_layer_reach(module, 0), _layer_reach(module, 1))
    for r in reaches:
        if r.scale.numerator != 1 and r.scale.denominator != 1:
            raise ValueError(f"total scale {r.scale} is neither an integer nor its inverse")
    return reaches


def spans(length: int, core: int) -> list[tuple[int, int]]:
    """[0, length) cut into the fewest near-equal pieces of at most `core` each."""
    if core < 1:
        raise ValueError(f"tile core must be at least 1, got {core}")
    n = max(1, -(-length // core))
    bounds = [length * i // n for i in range(n + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def tiled(
    module: nn.Module,
    x: torch.Tensor,
    core: int | tuple[int, int],
    halo: int | tuple[int, int] | None = None,
    reach: tuple[Reach, Reach] | None = None,
    on_tile: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """module(x) computed tile by tile. x: B×C×H×W.

    core: the tile core in coarse units (latent samples), (rows, columns) or both alike.
    halo: coarse units of overlap each side; by default the receptive field's (`Reach.halo`).
    reach: the module's geometry; by default `receptive_field(module)`.
    H and W must be multiples of the coarse unit on the input side (16 for g_a).
    on_tile(done, total) is called after each tile (for progress bars).
    """
    reach = reach or receptive_field(module)
    cores = _pair(core)
    halos = _pair(halo) if halo is not None else (reach[0].halo(), reach[1].halo())
    size = x.shape[-2:]
    for n, r in zip(size, reach, strict=True):
        if n % r.coarse_in:
            raise ValueError(f"input size {tuple(size)} is not a multiple of {r.coarse_in}")
    lengths = [n // r.coarse_in for n, r in zip(size, reach, strict=True)]  # coarse units
    rows, cols = (spans(n, c) for n, c in zip(lengths, cores, strict=True))
    if len(rows) == 1 and len(cols) == 1:
        return module(x)
    ci = [r.coarse_in for r in reach]
    co = [r.coarse_out for r in reach]
    channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
    fmt = torch.channels_last if channels_last and not x.is_contiguous() else None
    out = None
    done = 0
    for r0, r1 in rows:
        t0, t1 = max(0, r0 - halos[0]), min(lengths[0], r1 + halos[0])
        for c0, c1 in cols:
            u0, u1 = max(0, c0 - halos[1]), min(lengths[1], c1 + halos[1])
            tile = x[..., t0 * ci[0] : t1 * ci[0], u0 * ci[1] : u1 * ci[1]]
            tile = tile.contiguous(memory_format=fmt or torch.contiguous_format)
            y = module(tile)
            if y.shape[-2:] != ((t1 - t0) * co[0], (u1 - u0) * co[1]):
                raise ValueError(
                    f"a tile of {tuple(tile.shape[-2:])} gave {tuple(y.shape[-2:])}: "
                    "the module does not scale sizes exactly"
                )
            if out is None:
                shape = (*y.shape[:-2], lengths[0] * co[0], lengths[1] * co[1])
                out = torch.empty(
                    shape,
                    dtype=y.dtype,
                    device=y.device,
                    memory_format=fmt or torch.contiguous_format,
                )
            out[..., r0 * co[0] : r1 * co[0], c0 * co[1] : c1 * co[1]] = y[
                ..., (r0 - t0) * co[0] : (r1 - t0) * co[0], (c0 - u0) * co[1] : (c1 - u0) * co[1]
            ]
            del y, tile
            done += 1
            if on_tile is not None:
                on_tile(done, len(rows) * len(cols))
    return out
