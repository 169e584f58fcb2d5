"""Encoding effort: how much time `encode` spends refining an image's latents (refine.py).

Effort 0 is the plain encoder, bit for bit. Each higher level runs a longer refinement; the
encoder then codes both the plain and the refined latents and keeps whichever has the lower true
cost, λ·255²·MSE of the real reconstruction + the real file's bpp, so a higher effort is never
worse at its quality. The decoder cannot tell the difference: the refined latents are rounded
and coded by the same exact integer path.

The schedules were chosen on `valid/` images (benchmarks/effort.md has the measurements).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .codec import Codec, EncodedLatents, pad_to_multiple
from .effort_levels import schedule_for
from .metrics import mse
from .model import quality_to_position
from .quality import quality_to_centi
from .refine import Refiner

# The refinement's random rounding is seeded, so a file depends only on the image, quality,
# effort, model and device.
SEED = 20261203


@dataclass
class EffortEncode:
    """What `encode_with_effort` coded, and how it chose."""

    latents: EncodedLatents  # the better of the plain and the refined encodes (rgb filled in)
    refined: bool  # whether the refined latents were kept
    cost_plain: float  # λ·255²·MSE + bpp of the plain encode (file streams, header excluded)
    cost_refined: float | None  # the same for the refined one (None at effort 0)
    steps: int  # refinement steps taken (both phases)


def true_cost(
    codec: Codec, rgb: np.ndarray, latents: EncodedLatents, decoded: np.ndarray | None = None
) -> float:
    """λ(q)·255²·MSE of the uint8 reconstruction (`decoded`, else latents.rgb) + the coded
    streams' bits per pixel. The header is the same for both candidates, so it does not change
    which one wins."""
    model = codec.model
    position = quality_to_position(latents.quality_centi / 100, model.config.levels)
    lam = float(model.lambdas(position.reshape(1).to(codec.device)))
    pixels = rgb.shape[0] * rgb.shape[1]
    decoded = latents.rgb if decoded is None else decoded
    # mse() is on the 0..255 scale, i.e. already 255² times the MSE of [0, 1] values.
    return lam * mse(rgb, decoded) + (len(latents.z) + len(latents.y)) * 8 / pixels


def encode_with_effort(
    codec: Codec,
    rgb: np.ndarray,
    quality: float,
    effort: int,
    analysed: torch.Tensor | None = None,
    reconstruct: bool = True,
) -> EffortEncode:
    """Code an H×W×3 uint8 image at a quality with an effort from 0 to MAX_EFFORT.

    `analysed`: codec.analyse(rgb) when the caller has it. The codec reports the stage "refine"
    (step, steps) as the refinement goes.

    Both candidates are coded into real streams, and their reconstructions are the ones the
    descent's own passes through g_s made (the same transform on the same latents as decode;
    they may differ from decode's by float rounding, never in the file), so choosing costs no
    extra synthesis. With `reconstruct`, the winner's rgb is then made by the decoder's path,
    exactly what `decode` returns."""
    schedule = schedule_for(effort)
    size = rgb.shape[:2]
    if analysed is None:
        analysed = codec.analyse(rgb)
    if schedule is None:
        latents = codec.encode_analysed(analysed, quality, size, reconstruct)
        return EffortEncode(latents, False, float("nan"), None, 0)
    q = quality_to_centi(quality) / 100
    report, codec.progress = codec.progress, None  # the refinement reports as a whole
    try:
        x = torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1).unsqueeze(0)
        x = pad_to_multiple(x.to(codec.device, torch.float32).div(255))
        x = x.contiguous(memory_format=codec.memory_format)
        with torch.no_grad():
            y = codec.model.apply_gain(analysed.clone(), q)

        def on_step(done: int, total: int) -> None:
            if report is not None:
                report("refine", done, total + 1)

        refined = Refiner(codec).refine(x, size, y, q, schedule, SEED, on_step)
        # Without the descent's reconstructions (an annealing phase), the codec makes them.
        exact = refined.rgb is None
        plain = codec.encode_analysed(analysed, q, size, reconstruct=exact)
        candidate = codec.encode_latents(refined.y, refined.z, q, size, reconstruct=exact)
        cost_plain = true_cost(codec, rgb, plain, refined.start_rgb)
        cost_refined = true_cost(codec, rgb, candidate, refined.rgb)
        keep = cost_refined < cost_plain
        winner = candidate if keep else plain
        if reconstruct and winner.rgb is None:
            if keep:
                winner = codec.encode_latents(refined.y, refined.z, q, size, reconstruct=True)
            else:
                winner = codec.encode_analysed(analysed, q, size, reconstruct=True)
        if report is not None:
            report("refine", 1, 1)
    finally:
        codec.progress = report
    return EffortEncode(
        latents=winner,
        refined=keep,
        cost_plain=cost_plain,
        cost_refined=cost_refined,
        steps=refined.steps,
    )
