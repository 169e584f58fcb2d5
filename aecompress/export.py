"""Turning a training state into the shippable checkpoint, and the id a new model gets."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence

import torch

from .checkpoint import Checkpoint, export_checkpoint, round_to_fp16
from .codec import pad_to_multiple
from .model import HyperpriorModel

CALIBRATION_QUALITIES = (1.0, 25.0, 50.0, 75.0, 100.0)
# A trained model's id unless the user names it: PREFIX-YYYYMMDD-HHHHHHHH (31 characters, within
# the 32 an .aec header allows), the UTC date of the export and a hash of the shipped weights.
DEFAULT_ID_PREFIX = "aec-hp-custom"


def weights_digest(model: HyperpriorModel, digits: int = 8) -> str:
    """Hex digits of a SHA-256 over the config and the fp16 weights that are shipped: two
    models share it only when they hold the same weights (or, at 8 digits, by a 1-in-4-billion
    chance), whoever trained them."""
    h = hashlib.sha256(repr(sorted(model.config.to_dict().items())).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().to("cpu", torch.float16).contiguous().numpy().tobytes())
    return h.hexdigest()[:digits]


def default_model_id(model: HyperpriorModel, date: str | None = None) -> str:
    """The id of a model trained without --model-id: `aec-hp-custom-20261203-1a2b3c4d`."""
    date = date or time.strftime("%Y%m%d", time.gmtime())
    return f"{DEFAULT_ID_PREFIX}-{date}-{weights_digest(model)}"


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
    model_id: str | None,
    provenance: dict[str, str],
    device: torch.device | str = "cpu",
) -> Checkpoint:
    """The shippable checkpoint of `model` (which is moved to the CPU). The calibration
    latents, which only size the integer network's ranges, are computed on `device`.
    model_id None: `default_model_id` of the weights."""
    # Calibrate on the fp16-rounded weights that will be shipped.
    model = round_to_fp16(model.cpu().eval())
    if model_id is None:
        model_id = default_model_id(model)
    calib = calibration_latents(model.to(device), calibration_images)
    return export_checkpoint(model.cpu(), calib, model_id, provenance)
