"""Turning a training state into the shippable checkpoint."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .checkpoint import Checkpoint, export_checkpoint, round_to_fp16
from .codec import pad_to_multiple
from .model import HyperpriorModel

CALIBRATION_QUALITIES = (1.0, 25.0, 50.0, 75.0, 100.0)


@torch.no_grad()
def calibration_latents(
    model: HyperpriorModel,
    images: Sequence[torch.Tensor],
    qualities: Sequence[float] = CALIBRATION_QUALITIES,
) -> list[torch.Tensor]:
    """z_hat of each image (3×H×W uint8) at each quality, on the CPU: the inputs the integer
    network sees. Runs on the model's device."""
    device = next(model.parameters()).device
    out = []
    for im in images:
        x = pad_to_multiple(im.to(device).unsqueeze(0).float() / 255)
        y = model.g_a(x)  # one g_a per image serves every quality
        for q in qualities:
            out.append(torch.round(model.h_a(model.apply_gain(y, q))).cpu())
    return out


def export_trained(
    model: HyperpriorModel,
    calibration_images: Sequence[torch.Tensor],
    model_id: str,
    provenance: dict[str, str],
    device: torch.device | str = "cpu",
) -> Checkpoint:
    """The shippable checkpoint of `model` (which is moved to the CPU). The calibration
    latents, which only size the integer network's ranges, are computed on `device`."""
    # Calibrate on the fp16-rounded weights that will be shipped.
    model = round_to_fp16(model.cpu().eval())
    calib = calibration_latents(model.to(device), calibration_images)
    return export_checkpoint(model.cpu(), calib, model_id, provenance)
