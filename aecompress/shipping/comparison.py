"""The comparison of a candidate with a reference model on Kodak and valid/, through real files
with JPEG in the same run; the decision; the summary and the report."""

from __future__ import annotations

import datetime
import io
import json
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..bench.bdrate import bd_rate
from ..checkpoint import Checkpoint
from ..errors import AecError
from ..fileio import write_atomic
from ..imagesets import NamedImage
from ..metrics import mse, psnr_of_mse
from ..validate import load_valid_images, validate_checkpoint
from .candidate import Prepared, same_weights
from .common import JPEG_QUALITIES, QUALITIES, RepoLayout, Say, ShipRequest

# ----- the comparison's figures -----------------------------------------------------------------


@dataclass(frozen=True)
class RdPoint:
    quality: float  # the model's quality 1..100, or JPEG's quality for JPEG's points
    bpp: float  # mean over the images of file bytes × 8 / pixels
    psnr: float  # mean over the images of PSNR (dB) on the decoded uint8 RGB


@dataclass(frozen=True)
class ModelCurve:
    model_id: str
    fingerprint: str  # 16 hex digits
    points: tuple[RdPoint, ...]
    bd_vs_jpeg: float | None  # percent; None when the curves share no PSNR range

    def at(self, quality: float) -> RdPoint:
        for p in self.points:
            if p.quality == quality:
                return p
        raise AecError(f"{self.model_id}: quality {quality:g} was not measured")

    @property
    def low(self) -> RdPoint:
        return min(self.points, key=lambda p: p.quality)

    @property
    def high(self) -> RdPoint:
        return max(self.points, key=lambda p: p.quality)


@dataclass(frozen=True)
class SetComparison:
    """Both models and JPEG on one folder of images, measured in one run."""

    name: str  # "Kodak", "valid/"
    folder: str  # as recorded (relative to the repository root)
    images: int
    jpeg: tuple[RdPoint, ...]
    reference: ModelCurve
    candidate: ModelCurve
    bd_vs_reference: float | None  # candidate against reference, percent (negative: smaller)
    common_psnr: tuple[float, float] | None  # the PSNR range that BD-rate averages over


@dataclass(frozen=True)
class Comparison:
    kodak: SetComparison
    valid: SetComparison
    trained_as: str  # the model id the candidate file carried
    reference_is_default: bool
    same_weights: bool  # the candidate's weights are the reference's
    command: str
    machine: str
    date: str

    @property
    def sets(self) -> tuple[SetComparison, SetComparison]:
        return (self.kodak, self.valid)

    @property
    def candidate_id(self) -> str:
        return self.kodak.candidate.model_id

    @property
    def reference_id(self) -> str:
        return self.kodak.reference.model_id

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Decision:
    better: bool
    reason: str


# ----- measuring -----------------------------------------------------------------------------


def jpeg_point(images: Sequence[NamedImage], quality: int) -> RdPoint:
    """JPEG 4:2:0 (Pillow, optimize) at one quality, averaged per image as the models are."""
    bpps, psnrs = [], []
    for im in images:
        buf = io.BytesIO()
        Image.fromarray(im.rgb).save(
            buf, "JPEG", quality=quality, subsampling="4:2:0", optimize=True
        )
        decoded = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        bpps.append(len(buf.getvalue()) * 8 / (im.height * im.width))
        psnrs.append(psnr_of_mse(mse(im.rgb, decoded)))
    return RdPoint(float(quality), float(np.mean(bpps)), float(np.mean(psnrs)))


def jpeg_curve(images: Sequence[NamedImage]) -> tuple[RdPoint, ...]:
    return tuple(jpeg_point(images, q) for q in JPEG_QUALITIES)


def bd_between(ref: Sequence[RdPoint], test: Sequence[RdPoint]) -> float | None:
    """BD-rate of `test` against `ref` (percent), None when they share no PSNR range."""
    try:
        return bd_rate(
            [p.bpp for p in ref], [p.psnr for p in ref], [p.bpp for p in test],
            [p.psnr for p in test],
        )  # fmt: skip
    except ValueError:
        return None


def common_psnr(a: Sequence[RdPoint], b: Sequence[RdPoint]) -> tuple[float, float] | None:
    lo = max(min(p.psnr for p in a), min(p.psnr for p in b))
    hi = min(max(p.psnr for p in a), max(p.psnr for p in b))
    return (lo, hi) if hi > lo else None


def measure_model(
    ckpt: Checkpoint,
    images: Sequence[NamedImage],
    jpeg: Sequence[RdPoint],
    qualities: Sequence[float],
) -> ModelCurve:
    result = validate_checkpoint(ckpt, images, qualities)
    points = tuple(RdPoint(f.quality, f.bpp, f.psnr) for f in result.figures)
    return ModelCurve(ckpt.model_id, ckpt.fingerprint.hex(), points, bd_between(jpeg, points))


def measure_set(
    name: str,
    folder: str,
    images: Sequence[NamedImage],
    reference: Checkpoint,
    candidate: Checkpoint,
    qualities: Sequence[float] = QUALITIES,
    say: Say = lambda _: None,
) -> SetComparison:
    say(f"{name}: JPEG on {len(images)} images")
    jpeg = jpeg_curve(images)
    curves = []
    for ckpt in (reference, candidate):
        start = time.perf_counter()
        curves.append(measure_model(ckpt, images, jpeg, qualities))
        say(f"{name}: {ckpt.model_id} measured in {time.perf_counter() - start:.0f} s")
    ref, cand = curves
    return SetComparison(
        name=name,
        folder=folder,
        images=len(images),
        jpeg=jpeg,
        reference=ref,
        candidate=cand,
        bd_vs_reference=bd_between(ref.points, cand.points),
        common_psnr=common_psnr(ref.points, cand.points),
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def describe_machine(today: datetime.date | None = None) -> str:
    """What the figures were measured on, as models.json records it."""
    try:
        cpus = len(os.sched_getaffinity(0))  # what this process may use, not the host's count
    except AttributeError:
        cpus = os.cpu_count() or 0
    today = today or datetime.date.today()
    return (
        f"{cpus}-core {platform.machine()} CPU, torch {torch.__version__}, "
        f"{_plural(torch.get_num_threads(), 'torch thread')}, {today.isoformat()}"
    )


def compare(
    repo: Path,
    request: ShipRequest,
    prepared: Prepared,
    qualities: Sequence[float] = QUALITIES,
    say: Say = lambda _: None,
) -> Comparison:
    """Both models and JPEG on Kodak and on valid/, in this one run."""
    layout = RepoLayout(Path(repo))
    measured = []
    for name, folder in (("Kodak", request.kodak), ("valid/", request.valid)):
        images = load_valid_images([Path(folder)], warn=say)
        ref, cand = prepared.reference, prepared.candidate
        measured.append(
            measure_set(name, layout.recorded(folder), images, ref, cand, qualities, say)
        )
    today = datetime.date.today()
    return Comparison(
        kodak=measured[0],
        valid=measured[1],
        trained_as=prepared.trained_as,
        reference_is_default=prepared.reference_is_default,
        same_weights=same_weights(prepared.candidate, prepared.reference),
        command=request.command(layout),
        machine=describe_machine(today),
        date=today.isoformat(),
    )


# ----- deciding ------------------------------------------------------------------------------


def percent(value: float | None, digits: int = 1) -> str:
    """A signed percentage with a true minus sign, as the READMEs write them; – for none."""
    if value is None:
        return "–"
    return f"{value:+.{digits}f}%".replace("-", "−")


def decide(comparison: Comparison) -> Decision:
    """Better: a negative BD-rate against the reference on Kodak and on valid/ alike."""
    ref = f"`{comparison.reference_id}`"
    if comparison.same_weights:
        # Only the header's id could differ: a shorter id would look "better" by a few bytes.
        return Decision(False, f"the candidate has the same weights as {ref}")
    unmeasured = [s.name for s in comparison.sets if s.bd_vs_reference is None]
    if unmeasured:
        return Decision(False, f"no PSNR range in common with {ref} on {' and '.join(unmeasured)}")
    figures = " and ".join(f"{percent(s.bd_vs_reference, 2)} on {s.name}" for s in comparison.sets)
    if all(s.bd_vs_reference < 0 for s in comparison.sets):
        return Decision(True, f"BD-rate against {ref}: {figures}")
    return Decision(False, f"BD-rate against {ref}: {figures}; it must be negative on both")


# ----- reports -------------------------------------------------------------------------------


def _point(p: RdPoint) -> str:
    return f"{p.bpp:.3f} bpp {p.psnr:.2f} dB"


def _role(comparison: Comparison) -> str:
    return "default" if comparison.reference_is_default else "reference"


def summary_text(comparison: Comparison, decision: Decision | None = None) -> str:
    """The comparison for a terminal: per set, both models' points, BD-rates and ends."""
    c = comparison
    renamed = f", trained as {c.trained_as}" if c.trained_as != c.candidate_id else ""
    lines = [
        f"candidate {c.candidate_id} ({c.kodak.candidate.fingerprint}{renamed}) against the "
        f"{_role(c)} {c.reference_id} ({c.kodak.reference.fingerprint})",
        f"measured on {c.machine}: every image through real .aec files, JPEG 4:2:0 in the same run",
    ]
    for s in c.sets:
        lines += ["", f"{s.name} ({s.images} images, {s.folder})"]
        for role, curve in (("candidate", s.candidate), (_role(c), s.reference)):
            lines.append(
                f"  {role} {curve.model_id}: BD-rate vs JPEG {percent(curve.bd_vs_jpeg)}; "
                f"q{curve.low.quality:g} {_point(curve.low)}, "
                f"q{curve.high.quality:g} {_point(curve.high)}"
            )
            lines.append(
                "    " + "; ".join(f"q{p.quality:g} {p.bpp:.3f} {p.psnr:.2f}" for p in curve.points)
            )
        span = "" if s.common_psnr is None else " over {:.2f}–{:.2f} dB".format(*s.common_psnr)
        lines.append(
            f"  BD-rate of {s.candidate.model_id} against {s.reference.model_id}: "
            f"{percent(s.bd_vs_reference, 2)}{span}"
        )
    if decision is not None:
        lines += ["", f"{'better' if decision.better else 'not better'}: {decision.reason}"]
    return "\n".join(lines)


def _md_set(s: SetComparison, role: str) -> list[str]:
    curves = ((f"`{s.candidate.model_id}` (candidate)", s.candidate),
              (f"`{s.reference.model_id}` ({role})", s.reference))  # fmt: skip
    header = " | ".join(f"q{p.quality:g}" for p in s.candidate.points)
    lines = [
        f"## {s.name}: {s.images} images of `{s.folder}`",
        "",
        "| model | fingerprint | BD-rate vs JPEG | q1 | q100 |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for label, curve in curves:
        lines.append(
            f"| {label} | `{curve.fingerprint}` | {percent(curve.bd_vs_jpeg)} "
            f"| {_point(curve.low)} | {_point(curve.high)} |"
        )
    span = "" if s.common_psnr is None else " over {:.2f}–{:.2f} dB".format(*s.common_psnr)
    lines += [
        "",
        f"BD-rate of `{s.candidate.model_id}` against `{s.reference.model_id}`: "
        f"**{percent(s.bd_vs_reference, 2)}**{span}.",
        "",
        f"| model | {header} |",
        "| --- |" + " ---: |" * len(s.candidate.points),
    ]
    for label, curve in curves:
        lines.append(f"| {label} | " + " | ".join(_point(p) for p in curve.points) + " |")
    jpeg = [
        "| JPEG 4:2:0 quality | " + " | ".join(f"{p.quality:g}" for p in s.jpeg) + " |",
        "| --- |" + " ---: |" * len(s.jpeg),
        "| bpp | " + " | ".join(f"{p.bpp:.3f}" for p in s.jpeg) + " |",
        "| PSNR dB | " + " | ".join(f"{p.psnr:.2f}" for p in s.jpeg) + " |",
    ]
    return [*lines, "", *jpeg, ""]


def report_markdown(comparison: Comparison, decision: Decision) -> str:
    c = comparison
    trained = (
        [f"The candidate was trained as `{c.trained_as}`.", ""]
        if c.trained_as != c.candidate_id
        else []
    )
    lines = [
        f"# `{c.candidate_id}` against `{c.reference_id}`",
        "",
        f"{c.machine}. Every image encoded to a real `.aec` file and decoded at each quality (bpp "
        "from the whole file, PSNR on the decoded uint8 RGB, both averaged per image); JPEG 4:2:0 "
        "(Pillow, `optimize=True`) on the same images in the same run:",
        "",
        f"`{c.command}`",
        "",
        *trained,
        f"**{'Better' if decision.better else 'Not better'}**: {decision.reason}.",
        "",
    ]
    for s in c.sets:
        lines += _md_set(s, _role(c))
    return "\n".join(lines)


def write_report(path: Path, comparison: Comparison, decision: Decision) -> list[Path]:
    """`path` (markdown) and the same name with .json beside it."""
    path = Path(path)
    data = {**comparison.to_dict(), "decision": asdict(decision)}
    outputs = [(path, report_markdown(comparison, decision)),
               (path.with_suffix(".json"), json.dumps(data, indent=1) + "\n")]  # fmt: skip
    for out, text in outputs:
        write_atomic(out, lambda f, text=text: f.write(text.encode()), force=True)
    return [out for out, _ in outputs]
