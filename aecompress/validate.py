"""Validation through the real codec: export, encode to bytes, decode, measure.

A model under training is frozen exactly as it would be shipped (fp16 weights, integer tables,
integer scale network calibrated on a few training images), then every validation image is
encoded at a few qualities with `codec.Codec` and decoded again. bpp is the length of the whole
.aec file (header included) × 8 / pixels; PSNR is on the decoded RGB uint8 pixels. Both are
averaged per image, as the benchmark does.

The single number that ranks checkpoints (`ValidationResult.score`, lower is better) is the
training objective evaluated on real files: the mean over the validation qualities and images of
    lambda(q) · MSE + bpp        (MSE on the 0..255 scale, lambda(q) the model's trade-off)
i.e. exactly what training minimises, at a few points of the quality range, with the estimated
rate replaced by the bytes of the file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .checkpoint import Checkpoint
from .codec import Codec
from .config import VALID_QUALITIES
from .errors import AecError
from .export import export_trained
from .imagefile import decode_image, encode_image
from .imageio import SourceImage
from .imagesets import NamedImage, find_images, read_images
from .metrics import mse, psnr_of_mse
from .model import HyperpriorModel, quality_to_position
from .modes import ColourMode


@dataclass(frozen=True)
class QualityFigures:
    quality: float
    bpp: float  # mean over images of file bytes × 8 / pixels
    psnr: float  # mean over images of PSNR (dB) of the decoded uint8 RGB
    rd: float  # mean over images of lambda(q) · MSE(0..255) + bpp


@dataclass(frozen=True)
class ValidationResult:
    step: int
    images: int
    figures: tuple[QualityFigures, ...]
    seconds: float  # spent validating
    train_seconds: float = 0.0  # training time of the run when validated (0: not recorded)

    @property
    def score(self) -> float:
        """Mean of `rd` over the qualities: the real-file RD loss; lower is better."""
        return sum(f.rd for f in self.figures) / len(self.figures)

    def summary(self) -> str:
        parts = [f"q{f.quality:g} {f.bpp:.3f} bpp {f.psnr:.2f} dB" for f in self.figures]
        return f"step {self.step}: " + " | ".join(parts) + f" | score {self.score:.4f}"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["figures"] = [asdict(f) for f in self.figures]
        d["score"] = self.score
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> ValidationResult:
        return cls(
            step=int(d["step"]),
            images=int(d["images"]),
            figures=tuple(QualityFigures(**f) for f in d["figures"]),
            seconds=float(d["seconds"]),
            train_seconds=float(d.get("train_seconds", 0.0)),
        )


def load_valid_images(
    roots: Sequence[Path], warn: Callable[[str], None] = print
) -> list[NamedImage]:
    """Every readable image under the roots (recursively), read as `encode` reads it;
    unreadable ones are skipped with a warning. Any size works: the codec pads."""
    images = read_images(find_images(roots, patterns=False), skip=warn)
    if not images:
        raise AecError(f"no usable validation images in {', '.join(str(r) for r in roots)}")
    return images


def _lambda(model: HyperpriorModel, quality: float) -> float:
    return float(model.lambdas(quality_to_position(quality, model.config.levels).reshape(1)))


def validate_checkpoint(
    ckpt: Checkpoint,
    images: Sequence[NamedImage],
    qualities: Sequence[float] = VALID_QUALITIES,
    device: torch.device | str = "cpu",
    step: int = 0,
) -> ValidationResult:
    """Encode and decode every image at every quality with this checkpoint, through whole
    .aec files."""
    t0 = time.perf_counter()
    lambdas = [_lambda(ckpt.model, q) for q in qualities]
    bpp = np.zeros((len(images), len(qualities)))
    psnr = np.zeros_like(bpp)
    rd = np.zeros_like(bpp)
    codec = Codec(ckpt, device)
    for i, im in enumerate(images):
        source = SourceImage(rgb=im.rgb, mode=ColourMode.RGB)
        y = codec.analyse(im.rgb)  # one run of g_a serves every quality
        for j, q in enumerate(qualities):
            data = encode_image(codec, source, q, reconstruct=False, analysed=y).data
            err = mse(im.rgb, decode_image(codec, data).rgb)
            bpp[i, j] = len(data) * 8 / (im.height * im.width)
            psnr[i, j] = psnr_of_mse(err)
            rd[i, j] = lambdas[j] * err + bpp[i, j]
    figures = tuple(
        QualityFigures(
            quality=float(q),
            bpp=float(bpp[:, j].mean()),
            psnr=float(psnr[:, j].mean()),
            rd=float(rd[:, j].mean()),
        )
        for j, q in enumerate(qualities)
    )
    return ValidationResult(step, len(images), figures, time.perf_counter() - t0)


def frozen_copy(model: HyperpriorModel) -> HyperpriorModel:
    """A CPU float32 copy of a (possibly CUDA, channels_last, training) model."""
    with torch.random.fork_rng(devices=[]):  # building a model draws initial values
        copy = HyperpriorModel(model.config)
    copy.load_state_dict(
        {k: v.detach().to("cpu", torch.float32) for k, v in model.state_dict().items()}
    )
    return copy.eval()


def validate_model(
    model: HyperpriorModel,
    calibration_images: Sequence[torch.Tensor],
    images: Sequence[NamedImage],
    qualities: Sequence[float] = VALID_QUALITIES,
    device: torch.device | str = "cpu",
    step: int = 0,
) -> ValidationResult:
    """Export a temporary checkpoint of `model` (left untouched) and validate it."""
    ckpt = export_trained(frozen_copy(model), calibration_images, "validation", {}, device)
    return validate_checkpoint(ckpt, images, qualities, device, step)
