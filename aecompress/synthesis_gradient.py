"""g_s's vector–Jacobian product, written out layer by layer, in bfloat16 where the CPU is fast
at it: what latent refinement (refine.py) spends most of its time on.

A refinement step needs the exact cost of the latents it tries (the decoder's own float32
reconstruction, so the encoder's choices are made on what decode will show) and the gradient of
that cost with respect to the latents, Jᵀr for the residual r. The gradient only steers: a small
relative error in it changes which way a latent moves by a hair, never what is measured. So:

* the forward pass is the codec's inference path, float32, without autograd (the same modules
  and operations as decode, bit for bit), keeping each layer's input where the backward needs
  it (the GDN layers'; convolutions are linear and need none);
* the backward pass applies each layer's transposed Jacobian by hand: a transposed convolution's
  is the strided convolution with the same weight, a convolution's the transposed convolution,
  a pixel shuffle's the unshuffle, and a GDN's the closed form below. It runs in `dtype`:
  bfloat16 on CPUs with AMX or AVX-512 BF16, where oneDNN's bfloat16 convolutions and matrix
  products are 6–8× faster than float32 (a 128 → 128 5×5 transposed convolution at Kodak's
  half resolution: 12 ms against 81 ms on the 2-core CPU), and float32 elsewhere.

GDN with s = sqrt(beta + x² γᵀ) per pixel (rows of the (B·H·W)×C activation) and g the output's
gradient:
  IGDN, out = x·s:  dx = g·s + x · ((g·x / s) γ)
  GDN,  out = x/s:  dx = g/s - x · ((g·x / s³) γ)
where (a γ)_j = sum_i a_i γ[i, j], i.e. a @ gamma_t.t() for FrozenGDN's gamma_t.

Shapes: y is B×M×h×w (channels_last on the CPU), the output B×3×(16h)×(16w).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .inference import FrozenGDN, SubpixelConv


def fast_gradient_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 on a CPU with hardware bfloat16 arithmetic (AMX tiles or AVX-512 BF16), else
    float32: emulated bfloat16 would be slower than float32. CUDA keeps float32 (not measured
    here)."""
    if device.type == "cpu" and (_cpu_has("amx_tile") or _cpu_has("avx512_bf16")):
        return torch.bfloat16
    return torch.float32


def _cpu_has(feature: str) -> bool:
    """torch's own CPU feature probe (private API: a torch without it answers no)."""
    probe = getattr(torch.cpu, f"_is_{feature}_supported", None)
    return bool(probe()) if probe is not None else False


@dataclass
class _Step:
    """One layer of g_s as the backward pass sees it."""

    kind: str  # "deconv", "gdn" or "subpixel"
    weight: torch.Tensor | None = None  # in the backward's dtype
    stride: int = 1
    padding: int = 0
    gamma_t: torch.Tensor | None = None  # GDN: C×C, in the backward's dtype
    beta: torch.Tensor | None = None
    inverse: bool = False


class SynthesisGradient:
    """The forward pass of g_s (exact, float32) and its vector–Jacobian product (in dtype)."""

    def __init__(self, g_s: nn.Sequential, dtype: torch.dtype = torch.float32):
        self.g_s = g_s
        self.dtype = dtype
        self.steps = [self._step(layer) for layer in g_s]

    @staticmethod
    def supports(g_s: nn.Module) -> bool:
        """Whether every layer of g_s is one this class differentiates by hand."""
        return isinstance(g_s, nn.Sequential) and all(_kind(layer) is not None for layer in g_s)

    def _step(self, layer: nn.Module) -> _Step:
        kind = _kind(layer)
        low = self.dtype
        if kind == "deconv":
            return _Step(
                kind,
                weight=layer.weight.detach().to(low),  # Cin×Cout×k×k
                stride=layer.stride[0],
                padding=layer.padding[0],
            )
        if kind == "subpixel":
            conv = layer.conv
            return _Step(
                kind,
                weight=conv.weight.detach().to(low),  # (s²·Cout)×Cin×k×k
                stride=layer.stride,
                padding=conv.padding[0],
            )
        if kind == "gdn":
            return _Step(
                kind,
                gamma_t=layer.gamma_t.to(low),
                beta=layer.beta.to(low),
                inverse=layer.inverse,
            )
        raise ValueError(f"no hand-written gradient for {type(layer).__name__}")

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """g_s(y) exactly as the codec computes it, and what the backward needs: each GDN
        layer's input in the backward's dtype (None for the other layers)."""
        saved: list[torch.Tensor | None] = []
        h = y
        with torch.no_grad():
            for layer, step in zip(self.g_s, self.steps, strict=True):
                saved.append(h.to(self.dtype) if step.kind == "gdn" else None)
                h = layer(h)
        return h, saved

    def backward(self, saved: list[torch.Tensor | None], grad: torch.Tensor) -> torch.Tensor:
        """Jᵀ grad (float32, the shape of y) for the output gradient `grad`, at the forward
        pass that returned `saved`."""
        fmt = torch.channels_last if grad.is_contiguous(memory_format=torch.channels_last) else None
        g = grad.to(self.dtype)
        with torch.no_grad():
            for step, x in zip(reversed(self.steps), reversed(saved), strict=True):
                if step.kind == "deconv":
                    g = F.conv2d(g, step.weight, stride=step.stride, padding=step.padding)
                elif step.kind == "subpixel":
                    g = F.pixel_unshuffle(g, step.stride)
                    g = F.conv_transpose2d(g, step.weight, padding=step.padding)
                else:
                    g = _gdn_backward(step, x, g)
        out = g.float()
        return out.contiguous(memory_format=fmt) if fmt is not None else out


def _kind(layer: nn.Module) -> str | None:
    if isinstance(layer, FrozenGDN):
        return "gdn"
    if isinstance(layer, SubpixelConv):
        conv = layer.conv
        plain = conv.stride == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
        square = conv.padding[0] == conv.padding[1]
        return "subpixel" if plain and square else None
    if isinstance(layer, nn.ConvTranspose2d):
        (s, s2), (p, p2) = layer.stride, layer.padding
        plain = layer.groups == 1 and layer.dilation == (1, 1) and s == s2 and p == p2
        # the strided convolution gives back exactly the input size when output_padding < s
        return "deconv" if plain and max(layer.output_padding) < s else None
    return None


def _gdn_backward(step: _Step, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """dx for a GDN layer's input x (B×C×H×W) and output gradient g (module docstring)."""
    b, c, h, w = x.shape
    flat = x.permute(0, 2, 3, 1).reshape(-1, c)  # (B·H·W)×C, a view in channels_last
    gf = g.permute(0, 2, 3, 1).reshape(-1, c)
    s = torch.addmm(step.beta, flat * flat, step.gamma_t).sqrt_()
    a = gf * flat
    a.div_(s)
    if step.inverse:
        dx = torch.mm(a, step.gamma_t.t()).mul_(flat)
        dx.addcmul_(gf, s)
    else:
        a.div_(s).div_(s)
        dx = torch.mm(a, step.gamma_t.t()).mul_(flat).neg_()
        dx.add_(gf / s)
    return dx.view(b, h, w, c).permute(0, 3, 1, 2)
