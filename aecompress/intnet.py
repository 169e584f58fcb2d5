"""The exact integer network that turns z_hat into the scale indexes of y.

The entropy decoder needs, for every element of y, the same table index the encoder used; a
single index that differs makes the rest of the stream garbage. Float convolutions differ in
their last bits between CPUs, GPUs, thread counts and memory layouts, so this path runs in
integer arithmetic (Ballé, Johnston & Minnen 2019, "Integer networks for data compression with
latent-variable models"):

    a_0 = clip(z_hat, -Z_CLIP, Z_CLIP)                        integers
    a_l = clip(floor((W_l * a_{l-1} + b_l + 2^(S-1)) / 2^S), 0, ACT_MAX)   hidden layers
    index = clip(floor((W_L * a_{L-1} + b_L + 2^(S-1)) / 2^S), 0, num_scales - 1)

with integer weights W_l and biases b_l. The convolutions are evaluated in float64 on
integer-valued tensors: `export` proves every partial sum stays below 2^52, so every sum is
exact whatever the order of additions, hence bit-identical on any machine. The float network
`h_s_scale` is used for training only; `export` quantizes it using calibration data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

SHIFT = 16  # fractional bits of the integer weights
ACT_MAX = 4095  # hidden activations are 12-bit unsigned integers
Z_CLIP = 1023  # z_hat values fed to the network are clipped to ±Z_CLIP
EXACT_LIMIT = 2**52  # bound on |partial sums| that keeps float64 sums exact


@dataclass
class IntegerLayer:
    weight: torch.Tensor  # int64; Cout×Cin×k×k (conv) or Cin×Cout×k×k (transposed conv)
    bias: torch.Tensor  # int64, Cout
    transposed: bool
    stride: int
    clip_max: int  # outputs are clipped to [0, clip_max]

    def bound(self, input_max: int) -> int:
        """Largest possible |accumulator| for inputs bounded by input_max."""
        dims = (0, 2, 3) if self.transposed else (1, 2, 3)
        return int(self.weight.abs().sum(dims).max()) * input_max + int(self.bias.abs().max())

    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(torch.float64)
        k = w.shape[-1]
        if self.transposed:
            acc = F.conv_transpose2d(
                a, w, stride=self.stride, padding=k // 2, output_padding=self.stride - 1
            )
        else:
            acc = F.conv2d(a, w, stride=self.stride, padding=k // 2)
        acc = acc + self.bias.to(torch.float64).view(1, -1, 1, 1) + 2 ** (SHIFT - 1)
        return torch.floor(acc / 2**SHIFT).clamp_(0, self.clip_max)


class IntegerScaleNetwork:
    """z_hat (1×Nh×h×w integers) → scale indexes (1×M×4h×4w, int64)."""

    def __init__(self, layers: list[IntegerLayer]):
        self.layers = layers
        bound_in = Z_CLIP
        for layer in layers:
            if layer.bound(bound_in) >= EXACT_LIMIT:
                raise ValueError("integer network could overflow exact float64 arithmetic")
            bound_in = layer.clip_max

    def __call__(self, z_hat: torch.Tensor) -> torch.Tensor:
        # Always on the CPU in float64: z is 1/64 of the image, so this is cheap, and it keeps
        # the computation in one well-defined place.
        a = z_hat.detach().to("cpu", torch.float64).clamp(-Z_CLIP, Z_CLIP).contiguous()
        for layer in self.layers:
            a = layer(a)
        return a.to(torch.int64)

    def to_tensors(self) -> dict[str, torch.Tensor]:
        out = {}
        for i, layer in enumerate(self.layers):
            out[f"{i}.weight"] = _compact(layer.weight)
            out[f"{i}.bias"] = _compact(layer.bias)
            out[f"{i}.meta"] = torch.tensor([int(layer.transposed), layer.stride, layer.clip_max])
        return out

    @classmethod
    def from_tensors(cls, d: dict[str, torch.Tensor]) -> IntegerScaleNetwork:
        layers = []
        for i in range(len(d) // 3):
            transposed, stride, clip_max = (int(v) for v in d[f"{i}.meta"])
            layers.append(
                IntegerLayer(
                    d[f"{i}.weight"].to(torch.int64),
                    d[f"{i}.bias"].to(torch.int64),
                    bool(transposed),
                    stride,
                    clip_max,
                )
            )
        return cls(layers)


@torch.no_grad()
def export(
    h_s_scale: nn.Sequential,
    calibration_z: list[torch.Tensor],
    scale_min: float,
    scale_max: float,
    num_scales: int,
) -> IntegerScaleNetwork:
    """Quantize the float scale path (deconv, ReLU, deconv, ReLU, conv → log scale).

    Hidden activations get a per-channel scale mapping their largest value seen on the
    calibration z_hat's to ACT_MAX; the last layer maps log(scale) to the index of the
    nearest log-spaced table entry.
    """
    convs = [m for m in h_s_scale if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    peaks = [torch.zeros(c.out_channels, dtype=torch.float64) for c in convs[:-1]]
    hidden = [_FloatLayer(c) for c in convs[:-1]]
    # Latents of one shape go through as one batch (the peaks are maxima: batching changes
    # nothing but the time, which is most of an export).
    by_shape: dict[tuple[int, ...], list[torch.Tensor]] = {}
    for z in calibration_z:
        by_shape.setdefault(tuple(z.shape[1:]), []).append(z)
    for group in by_shape.values():
        for chunk in range(0, len(group), 32):
            a = torch.cat(group[chunk : chunk + 32]).double()
            for i, layer in enumerate(hidden):
                a = torch.relu(layer(a))
                peaks[i] = torch.maximum(peaks[i], a.amax((0, 2, 3)))
    step = (math.log(scale_max) - math.log(scale_min)) / (num_scales - 1)
    layers = []
    in_scale = torch.ones(convs[0].in_channels, dtype=torch.float64)  # integer units per value
    for i, c in enumerate(convs):
        last = i == len(convs) - 1
        if last:
            out_scale = torch.full((c.out_channels,), 1 / step, dtype=torch.float64)
            bias = (c.bias.double() - math.log(scale_min)) * out_scale
            clip_max = num_scales - 1
        else:
            # Nearly dead channels would get huge scales (and weights that overflow); giving
            # them at least 1% of the layer's range costs nothing, their outputs stay ~0.
            floor = max(1e-2 * float(peaks[i].max()), 1e-4)
            out_scale = ACT_MAX / peaks[i].clamp(min=floor)
            bias = c.bias.double() * out_scale
            clip_max = ACT_MAX
        transposed = isinstance(c, nn.ConvTranspose2d)
        # Weights in integer units per output unit: Cin×Cout×k×k (transposed) or Cout×Cin×k×k.
        w = c.weight.double()
        w = w / in_scale.view(-1, 1, 1, 1) if transposed else w / in_scale.view(1, -1, 1, 1)
        # Cap each output channel's scale so its accumulator provably stays below 2^51.
        in_max = Z_CLIP if i == 0 else ACT_MAX
        per_out = w.abs().sum((0, 2, 3) if transposed else (1, 2, 3)) * in_max
        per_out = (per_out + c.bias.double().abs() + 1) * 2**SHIFT
        cap = 2.0**51 / per_out
        if not last:
            out_scale = torch.minimum(out_scale, cap)
            bias = c.bias.double() * out_scale
        w = w * (out_scale.view(1, -1, 1, 1) if transposed else out_scale.view(-1, 1, 1, 1))
        layers.append(
            IntegerLayer(
                weight=torch.round(w * 2**SHIFT).to(torch.int64),
                bias=torch.round(bias * 2**SHIFT).to(torch.int64),
                transposed=transposed,
                stride=c.stride[0],
                clip_max=clip_max,
            )
        )
        in_scale = out_scale
    return IntegerScaleNetwork(layers)


def _compact(t: torch.Tensor) -> torch.Tensor:
    """Store as int32 when every value fits (halves the checkpoint's share of this network)."""
    fits = int(t.abs().max()) < 2**31 if t.numel() else True
    return t.to(torch.int32) if fits else t


class _FloatLayer:
    """A convolution of the float network evaluated in float64 (weights converted once)."""

    def __init__(self, c: nn.Module):
        self.c, self.w, self.b = c, c.weight.double(), c.bias.double()

    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        c = self.c
        if isinstance(c, nn.ConvTranspose2d):
            return F.conv_transpose2d(
                a, self.w, self.b, stride=c.stride, padding=c.padding,
                output_padding=c.output_padding,
            )  # fmt: skip
        return F.conv2d(a, self.w, self.b, stride=c.stride, padding=c.padding)
