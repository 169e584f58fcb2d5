"""What a run measured and what it concludes from it, said plainly at the end and on the card.

Every exported model is measured through the real codec (`validate.validate_checkpoint`):
on the --valid images when there are some (a validation), else on a few of the training
images (a check: `check_images`; the model was trained on them, so it shows whether the model
works at all, not how it does on new images). A run started with --init measures its starting
model on the same images first.

The verdict (`judge`), with its documented thresholds:

- with --init and --valid, the trained weights are exported only if their score (the mean
  over the measured qualities of λ(q)·MSE + bpp, lower is better, as `ValidationResult.score`)
  is below the start's; else model.pt is the start, unchanged (`--export-always` exports them
  anyway, and the lineage does). Scoring at least FAR_WORSE times the start's is far worse;
- with --init and no --valid, the check on a few training images is too small and too
  favourable to the trained weights (they were trained on them) to rank two close models: the
  trained weights are exported unless they score FAR_WORSE times the start's or more even
  there (then the start is kept); when they merely do not beat it, the run warns;
- a trained model whose PSNR at the middle measured quality (50) is below USABLE_PSNR_DB is
  far from usable (a working model gives 30 dB or more there on photos).

What is far worse or unusable is said loudly: last on stderr, and at the top of the card.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..checkpoint import CHECKPOINT_FORMAT, Checkpoint, load_checkpoint, read_torch_file
from ..errors import AecError
from ..imagesets import NamedImage
from ..model import ModelConfig
from ..validate import QualityFigures, ValidationResult

CHECK_IMAGES = 4  # training images a run without --valid measures its model on
CHECK_SIDE = 128  # ... each cut to its centre, at most this many pixels square (cost: ~1 s)
USABLE_PSNR_DB = 25.0  # below this at the middle quality: far from usable
MIDDLE_QUALITY = 50.0
FAR_WORSE = 1.10  # a score this many times the start's: far worse (~0.8 dB at equal rate)


@dataclass(frozen=True)
class MeasureSet:
    """The images an exported model is measured on."""

    images: list[NamedImage]
    validation: bool  # True: the user's --valid images; False: training images (a check)

    def describe(self) -> str:
        n = len(self.images)
        if self.validation:
            return f"{n} validation image{'s' * (n != 1)}"
        return f"{n} training image{'s' * (n != 1)} (centre crops of at most {CHECK_SIDE} px)"


def check_images(training: Sequence[torch.Tensor]) -> list[NamedImage]:
    """The first CHECK_IMAGES training images (3×H×W uint8), each cut to its centre
    CHECK_SIDE² (or less): what a run without --valid measures its model on."""
    images = []
    for i, im in enumerate(training[:CHECK_IMAGES]):
        _, h, w = im.shape
        ch, cw = min(h, CHECK_SIDE), min(w, CHECK_SIDE)
        top, left = (h - ch) // 2, (w - cw) // 2
        crop = im[:, top : top + ch, left : left + cw].permute(1, 2, 0)  # H×W×3
        images.append(NamedImage(f"training image {i + 1}", crop.contiguous().numpy()))
    return images


def start_file(path: Path, config: ModelConfig) -> Checkpoint | None:
    """The --init model file itself when it is a shipped-format model with the run's config (the
    start then is that file, measured and kept as it is); None for a training state, or a model
    whose quality range or latent the run changed (the start is then its exported weights)."""
    raw = read_torch_file(path, "model or training state", error=AecError)
    if raw.get("format") != CHECKPOINT_FORMAT:
        return None
    ckpt = load_checkpoint(path)
    return ckpt if ckpt.config == config else None


def middle(result: ValidationResult) -> QualityFigures:
    """The figures at the measured quality nearest MIDDLE_QUALITY."""
    return min(result.figures, key=lambda f: abs(f.quality - MIDDLE_QUALITY))


def _point(f: QualityFigures) -> str:
    return f"{f.bpp:.3f} bpp {f.psnr:.2f} dB"


@dataclass(frozen=True)
class Verdict:
    """What the run concludes about the model it trained."""

    keep_start: bool  # model.pt is the start: the trained weights did not beat it
    summary: str  # one sentence: what was measured and how it came out
    warnings: tuple[str, ...] = ()  # said loudly: last on stderr, at the top of the card


def judge(
    trained: ValidationResult,
    measured_on: MeasureSet,
    steps: int,
    start: ValidationResult | None = None,
    export_always: bool = False,
) -> Verdict:
    """The verdict on the trained weights (`trained`, measured on `measured_on`) after `steps`
    steps of the run, against the start's figures on the same images when it has some."""
    where = measured_on.describe()
    mid = middle(trained)
    warnings: list[str] = []
    if measured_on.validation:
        summary = f"validated on {where}"
    else:
        summary = f"not validated (no --valid); checked on {where}, which it was trained on"
    summary += f": {_point(mid)} at quality {mid.quality:g}, score {trained.score:.4f}"
    keep = False
    if start is not None:
        s_mid = middle(start)
        against = (
            f"score {trained.score:.4f} against the start's {start.score:.4f} (lower is better; "
            f"at quality {mid.quality:g}: {_point(mid)} against {_point(s_mid)})"
        )
        far_worse = trained.score >= FAR_WORSE * start.score
        if trained.score < start.score:
            summary = f"{summary}; beats the start: {against}"
        elif export_always or not (measured_on.validation or far_worse):
            why = "--export-always" if export_always else "not validated, and not far worse"
            summary = f"{summary}; exported although not better than the start ({why}): {against}"
            if far_worse:
                warnings.append(
                    f"THE EXPORTED MODEL IS FAR WORSE THAN ITS START on {where}: {against}"
                )
            else:
                warnings.append(
                    f"the exported model does not beat its start on {where}: {against}"
                    + ("" if measured_on.validation else "; give --valid to compare them")
                )
        else:
            keep = True
            summary = f"{summary}; did not beat the start, which is kept: {against}"
    if not keep and mid.psnr < USABLE_PSNR_DB:
        warnings.append(
            f"THE EXPORTED MODEL IS FAR FROM USABLE: {mid.psnr:.2f} dB at quality "
            f"{mid.quality:g} on {where} (a usable one gives {USABLE_PSNR_DB:g} dB or more) "
            f"after {steps} training steps; train longer, or fine-tune a shipped model with "
            "--init"
        )
    return Verdict(keep, summary, tuple(warnings))
