"""Shipping a new default model: measure a candidate against the shipped default, decide, edit.

`benchmarks/ship_model.py` is the command; this module does the work, on a repository given as
a folder (`repo`) so that tests can ship into a temporary copy:

1. `prepare`: the candidate as it would ship (re-saved under the new model id, which is part of
   the weights fingerprint, when its training run gave it another one), and every refusal
   that needs no measuring: an id already listed, a file over the size limits, missing folders.
2. `compare`: the candidate and the reference (the default, or another shipped model) on Kodak
   and on `valid/`, every image through real `.aec` files at qualities 1..100
   (`validate.validate_checkpoint`), JPEG 4:2:0 on the same images in the same run; BD-rates
   against JPEG and of the candidate against the reference.
3. `decide`: better when the BD-rate against the reference is negative on both sets.
4. `ship`: the model file, `models.json`, the golden files, the shipped-models table and a
   section in `pretrained/README.md`, and the default-model paragraph of `README.md`. Every
   text is built (and every marker found) before the first file changes, and a failure part
   way restores what was written.

Nothing written into the repository holds an absolute path: paths are recorded relative to the
repository root, as they are typed from there.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import platform
import re
import shlex
import shutil
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .bench.bdrate import bd_rate
from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .container import MAX_MODEL_ID_LEN
from .errors import AecError
from .fileio import write_atomic
from .imagesets import NamedImage
from .metrics import mse, psnr_of_mse
from .modelfile import read_identity
from .registry import INDEX_FILE, ModelFile, PackageIndex, read_index
from .validate import load_valid_images, validate_checkpoint

QUALITIES = (1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 100.0)
# The JPEG sweep of benchmarks/convergence.py: from below the models' lowest rate to above
# their highest, so that the BD-rate against JPEG has the whole curve to work with.
JPEG_QUALITIES = (3, 5, 8, 12, 18, 25, 35, 50, 65, 75, 85, 90, 95)

# One model file: what a device call can bring back, and the package's per-file budget.
MAX_MODEL_BYTES = 16 * 2**20
# All shipped model files together: every one of them is installed with the package.
MAX_PRETRAINED_BYTES = 40 * 2**20

README_BLOCK = "default-model"  # README.md: the paragraph on the default model
TABLE_BLOCK = "shipped-models"  # pretrained/README.md: the table of shipped models
CURRENT_DEFAULT = "the current default"  # how a model's section in pretrained/README.md says so
GOLDEN_SUFFIXES = (".aec", ".png", ".json")  # tests/golden/make_golden.py writes these
_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

# write_golden(model_id, golden folder, pretrained folder): tests/golden/make_golden.py's
# function, passed in because it lives with the tests, not in the package.
GoldenWriter = Callable[[str, Path, Path], object]
Say = Callable[[str], None]


# ----- the repository -------------------------------------------------------------------------


@dataclass(frozen=True)
class RepoLayout:
    """Where the files that shipping edits are in a checkout."""

    root: Path

    @property
    def pretrained(self) -> Path:
        return self.root / "pretrained"

    @property
    def index(self) -> Path:
        return self.pretrained / INDEX_FILE

    @property
    def golden(self) -> Path:
        return self.root / "tests" / "golden"

    @property
    def readme(self) -> Path:
        return self.root / "README.md"

    @property
    def models_readme(self) -> Path:
        return self.pretrained / "README.md"

    def model_path(self, model_id: str) -> Path:
        return self.pretrained / f"{model_id}.pt"

    def golden_paths(self, model_id: str) -> list[Path]:
        return [self.golden / f"{model_id}{s}" for s in GOLDEN_SUFFIXES]

    def recorded(self, path: Path | str) -> str:
        """`path` as typed from the repository root: never a machine's absolute folders.
        Beside the checkout (`../shared/...`): relative; in the user's home, such as the
        lineage's folder in the cache: `~/...`."""
        full = os.path.abspath(os.path.expanduser(path))
        relative = os.path.relpath(full, os.path.abspath(self.root))
        if relative.startswith(os.path.join(os.pardir, os.pardir)):
            home = os.path.expanduser("~")
            if full.startswith(home + os.sep):
                return "~/" + os.path.relpath(full, home)
        return relative


@dataclass(frozen=True)
class ShipRequest:
    """What the command was asked: the paths as the user typed them."""

    candidate: Path
    model_id: str
    kodak: Path
    valid: Path
    against: str | None = None  # id or fingerprint of a shipped model; None: the default
    threads: int = 0  # recorded in the command only; the caller sets torch's threads
    lineage: bool = False
    report: Path | None = None
    dry_run: bool = False

    def command(self, layout: RepoLayout) -> str:
        """The command line, run from the repository root, that measures what it records."""
        parts = ["python3", "benchmarks/ship_model.py", layout.recorded(self.candidate)]
        parts += ["--model-id", self.model_id]
        parts += ["--kodak", layout.recorded(self.kodak), "--valid", layout.recorded(self.valid)]
        if self.against:
            parts += ["--against", self.against]
        if self.threads:
            parts += ["--threads", str(self.threads)]
        if self.lineage:
            parts.append("--lineage")
        if self.report is not None:
            parts += ["--report", layout.recorded(self.report)]
        return shlex.join(parts)


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


# ----- preparing: the candidate as it ships, and the refusals that need no measuring ------------


@dataclass(frozen=True)
class Prepared:
    candidate: Checkpoint  # carrying the shipped id and its fingerprint
    candidate_file: Path  # the file that is measured and shipped: it carries the shipped id
    trained_as: str
    reference: Checkpoint
    reference_is_default: bool


def check_model_id(model_id: str) -> None:
    # The id becomes a file name and goes into every .aec header (printable ASCII, bounded).
    if not _MODEL_ID.fullmatch(model_id) or len(model_id) > MAX_MODEL_ID_LEN:
        raise AecError(
            f"model id {model_id!r} must be 1..{MAX_MODEL_ID_LEN} letters, digits, '.', '_' "
            "or '-', starting with a letter or digit"
        )


def check_shippable(layout: RepoLayout, index: PackageIndex, model_id: str, size: int) -> None:
    """Refuse an id already used and a file over the size limits, before anything changes."""
    check_new_id(layout, index, model_id)
    check_sizes(layout.pretrained, size)


def check_new_id(layout: RepoLayout, index: PackageIndex, model_id: str) -> None:
    check_model_id(model_id)
    if any(m.model_id == model_id for m in index.models):
        raise AecError(f"model id {model_id} is already listed in pretrained/{INDEX_FILE}")
    for path in [layout.model_path(model_id), *layout.golden_paths(model_id)]:
        if path.exists():  # left over from elsewhere: shipping must not replace it
            raise AecError(f"{layout.recorded(path)} exists, but {model_id} is not listed")


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def check_sizes(pretrained: Path, size: int) -> None:
    # The limits are read here, at call time, so that tests can lower them.
    if size > MAX_MODEL_BYTES:
        raise AecError(
            f"the model file is {_mib(size)} ({size:,} bytes), over the "
            f"{_mib(MAX_MODEL_BYTES)} limit for one shipped model"
        )
    total = size + sum(p.stat().st_size for p in pretrained.glob("*.pt"))
    if total > MAX_PRETRAINED_BYTES:
        raise AecError(
            f"pretrained/ would hold {_mib(total)} of models, over the "
            f"{_mib(MAX_PRETRAINED_BYTES)} limit; removing an older model is a deliberate step "
            "(pretrained/README.md)"
        )


def find_shipped(index: PackageIndex, choice: str | None) -> ModelFile:
    """The default, or the shipped model with that id or fingerprint."""
    if choice is None:
        return index.default_model()
    for m in index.models:
        if choice in (m.model_id, m.fingerprint):
            return m
    listed = ", ".join(m.model_id for m in index.models)
    raise AecError(f"--against {choice}: not a shipped model (pretrained/{INDEX_FILE}: {listed})")


def with_model_id(path: Path, model_id: str, workdir: Path) -> tuple[Checkpoint, Path, str]:
    """The checkpoint in `path` under `model_id`, and a file that carries that id.

    The id is part of the fingerprint, so a file trained under another id is re-saved, and
    read back: `Checkpoint.fingerprint` is only computed when a file is loaded, and this way it
    is the one of the bytes that ship. The provenance (not fingerprinted) keeps the training
    run's id, so that the run can still be found from the shipped file.
    """
    ckpt = load_checkpoint(path)
    trained_as = ckpt.model_id
    if trained_as == model_id:
        return ckpt, Path(path), trained_as
    ckpt.model_id = model_id
    ckpt.provenance = {**ckpt.provenance, "trained_as": trained_as}
    renamed = Path(workdir) / f"{model_id}.pt"
    save_checkpoint(ckpt, renamed)
    return load_checkpoint(renamed), renamed, trained_as


def _check_folder(path: Path, what: str) -> None:
    if not Path(path).is_dir():
        raise AecError(f"{what} {path}: not a folder")


def prepare(repo: Path, request: ShipRequest, workdir: Path) -> Prepared:
    """Load both models and refuse, before minutes of measuring, what could never ship."""
    layout = RepoLayout(Path(repo))
    index = read_index(layout.pretrained)
    check_new_id(layout, index, request.model_id)
    reference_entry = find_shipped(index, request.against)
    _check_folder(request.kodak, "--kodak")
    _check_folder(request.valid, "--valid")
    candidate, candidate_file, trained_as = with_model_id(
        request.candidate, request.model_id, workdir
    )
    check_sizes(layout.pretrained, candidate_file.stat().st_size)
    return Prepared(
        candidate=candidate,
        candidate_file=candidate_file,
        trained_as=trained_as,
        reference=load_checkpoint(reference_entry.path),
        reference_is_default=reference_entry.model_id == index.default,
    )


def same_weights(a: Checkpoint, b: Checkpoint) -> bool:
    sa, sb = a.model.state_dict(), b.model.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


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


def _pct(value: float | None, digits: int = 1) -> str:
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
    figures = " and ".join(f"{_pct(s.bd_vs_reference, 2)} on {s.name}" for s in comparison.sets)
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
                f"  {role} {curve.model_id}: BD-rate vs JPEG {_pct(curve.bd_vs_jpeg)}; "
                f"q{curve.low.quality:g} {_point(curve.low)}, "
                f"q{curve.high.quality:g} {_point(curve.high)}"
            )
            lines.append(
                "    " + "; ".join(f"q{p.quality:g} {p.bpp:.3f} {p.psnr:.2f}" for p in curve.points)
            )
        span = "" if s.common_psnr is None else " over {:.2f}–{:.2f} dB".format(*s.common_psnr)
        lines.append(
            f"  BD-rate of {s.candidate.model_id} against {s.reference.model_id}: "
            f"{_pct(s.bd_vs_reference, 2)}{span}"
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
            f"| {label} | `{curve.fingerprint}` | {_pct(curve.bd_vs_jpeg)} "
            f"| {_point(curve.low)} | {_point(curve.high)} |"
        )
    span = "" if s.common_psnr is None else " over {:.2f}–{:.2f} dB".format(*s.common_psnr)
    lines += [
        "",
        f"BD-rate of `{s.candidate.model_id}` against `{s.reference.model_id}`: "
        f"**{_pct(s.bd_vs_reference, 2)}**{span}.",
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


# ----- the files that shipping edits ------------------------------------------------------------


def _marker(name: str, end: str) -> str:
    return f"<!-- {name}:{end} -->"


def replace_block(text: str, name: str, body: str, where: str) -> str:
    """`text` with what lies between the markers of `name` replaced by `body`."""
    begin, end = _marker(name, "begin"), _marker(name, "end")
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise AecError(f"{where}: needs one {begin} … {end} block")
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    return f"{head}{begin}\n\n{body.strip()}\n\n{end}{tail}"


def _wrap(text: str) -> str:
    # Never at a hyphen: model ids are hyphenated, and a split one could not be searched for.
    return textwrap.fill(text, width=99, break_on_hyphens=False, break_long_words=False)


def _quality(q: float) -> int | float:
    return int(q) if float(q).is_integer() else q


def index_entry(comparison: Comparison) -> dict:
    """The models.json entry, rounded as the existing entries are."""
    kodak = comparison.kodak.candidate
    return {
        "model_id": kodak.model_id,
        "file": f"{kodak.model_id}.pt",
        "fingerprint": kodak.fingerprint,
        "kodak": {
            "command": comparison.command,
            "machine": comparison.machine,
            "points": [
                {"quality": _quality(p.quality), "bpp": round(p.bpp, 3), "psnr": round(p.psnr, 2)}
                for p in kodak.points
            ],
        },
    }


def index_text(raw: dict, comparison: Comparison, lineage: bool) -> str:
    """models.json with the candidate added and made the default (and the lineage's start)."""
    model_id = comparison.candidate_id
    head = {"default": model_id}
    if lineage or "lineage" in raw:  # kept beside "default", where a reader looks for it
        head["lineage"] = model_id if lineage else raw["lineage"]
    rest = {k: v for k, v in raw.items() if k not in head}
    rest["models"] = [*raw["models"], index_entry(comparison)]
    return json.dumps({**head, **rest}, indent=2, ensure_ascii=False) + "\n"


def shipped_models_table(raw: dict, sizes: dict[str, int]) -> str:
    """The table of pretrained/README.md: the default first, then the others newest first."""
    models = list(reversed(raw["models"]))
    models.sort(key=lambda m: m["model_id"] != raw["default"])  # stable: keeps newest first
    lines = ["| model id | file | fingerprint | default |", "| --- | --- | --- | --- |"]
    for m in models:
        default = "yes" if m["model_id"] == raw["default"] else "no (kept: its files decode)"
        size = f" ({_mib(sizes[m['file']])})" if m["file"] in sizes else ""
        lines.append(
            f"| `{m['model_id']}` | `{m['file']}`{size} | `{m['fingerprint']}` | {default} |"
        )
    return "\n".join(lines)


def _h1_lines(lines: list[str]) -> list[int]:
    """Indices of level-1 headings, outside fenced code (where `# ` starts a shell comment)."""
    found, fenced = [], False
    for i, line in enumerate(lines):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("# "):
            found.append(i)
    return found


def _section(lines: list[str], model_id: str) -> tuple[int, int] | None:
    """The lines of a model's `# \\`id\\`` section: its heading up to the next heading."""
    heads = _h1_lines(lines)
    for k, i in enumerate(heads):
        if lines[i] == f"# `{model_id}`" or lines[i].startswith(f"# `{model_id}` "):
            return i, heads[k + 1] if k + 1 < len(heads) else len(lines)
    return None


def _fmt_bd_pair(s: SetComparison) -> tuple[str, str]:
    return _pct(s.candidate.bd_vs_jpeg), _pct(s.reference.bd_vs_jpeg)


def _link(report: str | None, prefix: str) -> str:
    return "" if report is None else f" ([{Path(report).name}]({prefix}{report}))"


def model_section(comparison: Comparison, size: int, report: str | None) -> str:
    """A shipped model's section of pretrained/README.md, from this run's figures."""
    c = comparison
    cand, ref = c.kodak.candidate, c.reference_id
    renamed = (
        f" Trained as `{c.trained_as}` and shipped under this id, which is part of the fingerprint."
        if c.trained_as != c.candidate_id
        else ""
    )
    kodak_bd, kodak_ref_bd = _fmt_bd_pair(c.kodak)
    valid_bd, valid_ref_bd = _fmt_bd_pair(c.valid)
    status = (
        f"**Status: BD-rate {kodak_bd} against JPEG 4:2:0 on Kodak** ({kodak_ref_bd} for `{ref}` "
        f"in the same run; {valid_bd} against {valid_ref_bd} on `valid/`); against `{ref}` at "
        f"equal PSNR: {_pct(c.kodak.bd_vs_reference)} on Kodak, "
        f"{_pct(c.valid.bd_vs_reference)} on `valid/`."
    )
    measured = textwrap.fill(
        f"- Measured ({c.machine}): every image of Kodak ({c.kodak.images}) and `valid/` "
        f"({c.valid.images}) through real `.aec` files at qualities 1–100, JPEG 4:2:0 "
        f"(`optimize=True`) on the same images in the same run{_link(report, '../')}:",
        width=99, subsequent_indent="  ", break_on_hyphens=False, break_long_words=False,
    )  # fmt: skip
    # The command on a line of its own, unwrapped: it is copied and searched for whole.
    measured += f"\n  `{c.command}`"
    points = cand.points
    lines = [
        f"# `{cand.model_id}`",
        "",
        _wrap(
            f"`{cand.model_id}.pt` ({_mib(size)} = {size:,} bytes), {CURRENT_DEFAULT}; weights "
            f"fingerprint `{cand.fingerprint}`.{renamed}"
        ),
        "",
        _wrap(status),
        "",
        measured,
        "",
        "| model | Kodak BD-rate vs JPEG | `valid/` BD-rate vs JPEG |",
        "| --- | ---: | ---: |",
        f"| `{cand.model_id}` | {kodak_bd} | {valid_bd} |",
        f"| `{ref}` | {kodak_ref_bd} | {valid_ref_bd} |",
        "",
        "| quality | " + " | ".join(f"{p.quality:g}" for p in points) + " |",
        "| --- |" + " ---: |" * len(points),
        "| bpp | " + " | ".join(f"{p.bpp:.3f}" for p in points) + " |",
        "| PSNR dB | " + " | ".join(f"{p.psnr:.2f}" for p in points) + " |",
        "",
    ]
    return "\n".join(lines) + "\n"


def _mark_no_longer_default(lines: list[str], span: tuple[int, int], new_id: str) -> None:
    """Say in the previous default's section, in place, which model took over."""
    until = f"the default until `{new_id}`"
    start, end = span
    for i in range(start, end):
        if CURRENT_DEFAULT in lines[i]:
            lines[i] = lines[i].replace(CURRENT_DEFAULT, until, 1)
            return
    lines[start + 1 : start + 1] = ["", until[0].upper() + until[1:] + "."]


def models_readme_text(
    text: str,
    raw_after: dict,
    sizes: dict[str, int],
    comparison: Comparison,
    previous_default: str,
    report: str | None,
) -> str:
    """pretrained/README.md: the table regenerated, the new section before the previous
    default's, and that section no longer saying it is the default."""
    text = replace_block(
        text, TABLE_BLOCK, shipped_models_table(raw_after, sizes), "pretrained/README.md"
    )
    lines = text.split("\n")
    new_id = comparison.candidate_id
    section = model_section(comparison, sizes[f"{new_id}.pt"], report).split("\n")
    previous = _section(lines, previous_default)
    if previous is not None:
        _mark_no_longer_default(lines, previous, new_id)
        at = previous[0]
    else:  # no section for it: before the first model's section, else at the end
        heads = [i for i in _h1_lines(lines) if lines[i].startswith("# `")]
        at = heads[0] if heads else len(lines)
        if at == len(lines) and lines and lines[-1] != "":
            section = ["", *section]
    lines[at:at] = section[:-1]  # the section ends with a blank line already
    return "\n".join(lines)


def readme_block(comparison: Comparison, previous_default: str, report: str | None) -> str:
    """README.md's paragraph on the default model, from this run's figures on Kodak."""
    c = comparison
    kodak = c.kodak
    ref = c.reference_id
    if ref == previous_default:
        against = f"the previous default, `{ref}` (still shipped, so its files keep decoding)"
    else:
        against = (
            f"`{ref}` (the previous default, `{previous_default}`, is still shipped, so its "
            "files keep decoding)"
        )
    ends = " / ".join(
        f"q{q:g} {kodak.candidate.at(q).bpp:.3f} bpp {kodak.candidate.at(q).psnr:.2f} dB"
        for q in (1.0, 50.0, 100.0)
    )
    text = (
        f"The default model is `{c.candidate_id}` ([pretrained/README.md](pretrained/README.md)): "
        f"BD-rate **{_pct(kodak.candidate.bd_vs_jpeg)} against JPEG 4:2:0** on Kodak at equal "
        f"PSNR, from real `.aec` files with JPEG in the same run{_link(report, '')}, and "
        f"{_pct(kodak.bd_vs_reference)} against {against}."
    )
    return _wrap(text) + "\n\n" + _wrap(f"On Kodak: {ends}.")


# ----- writing, with a way back --------------------------------------------------------------


class _Edits:
    """Files written so far and what they held, so that a failure part way restores them."""

    def __init__(self) -> None:
        self._undo: list[tuple[Path, bytes | None]] = []
        self.changed: list[Path] = []

    def _remember(self, path: Path) -> None:
        self._undo.append((path, path.read_bytes() if path.exists() else None))
        self.changed.append(path)

    def write_text(self, path: Path, text: str) -> None:
        self._remember(path)
        write_atomic(path, lambda f: f.write(text.encode("utf-8")), force=True)

    def copy(self, source: Path, path: Path) -> None:
        self._remember(path)

        def write(f) -> None:
            with open(source, "rb") as src:
                shutil.copyfileobj(src, f)

        write_atomic(path, write, force=True)

    def expect_new(self, paths: Sequence[Path]) -> None:
        """Files another function is about to create (they do not exist: checked before)."""
        for path in paths:
            self._remember(path)

    def rollback(self) -> None:
        for path, original in reversed(self._undo):
            if original is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(original)


def _check_measured_file(model_file: Path, comparison: Comparison) -> None:
    # The file that ships must be the one whose figures go into the index.
    ident = read_identity(model_file)
    measured = (comparison.candidate_id, comparison.kodak.candidate.fingerprint)
    if (ident.model_id, ident.fingerprint.hex()) != measured:
        raise AecError(
            f"{model_file} is {ident.model_id} ({ident.fingerprint.hex()}), not the measured "
            f"{measured[0]} ({measured[1]})"
        )


def ship(
    repo: Path,
    comparison: Comparison,
    model_file: Path,
    write_golden: GoldenWriter,
    lineage: bool = False,
    report: Path | None = None,
) -> list[Path]:
    """Make the measured candidate the default; returns the files written or changed.

    Older models and their golden files stay: every .aec file they wrote must keep decoding.
    """
    layout = RepoLayout(Path(repo))
    index = read_index(layout.pretrained)
    model_id = comparison.candidate_id
    size = Path(model_file).stat().st_size
    check_shippable(layout, index, model_id, size)
    _check_measured_file(Path(model_file), comparison)
    # Every text first: a missing marker refuses before the first file changes.
    raw = json.loads(layout.index.read_text(encoding="utf-8"))
    new_index = index_text(raw, comparison, lineage)
    sizes = {p.name: p.stat().st_size for p in layout.pretrained.glob("*.pt")}
    sizes[f"{model_id}.pt"] = size
    recorded_report = None if report is None else layout.recorded(report)
    if recorded_report is not None and recorded_report.startswith(".."):
        recorded_report = None  # outside the repository: nothing to link to
    models_readme = models_readme_text(
        layout.models_readme.read_text(encoding="utf-8"), json.loads(new_index), sizes,
        comparison, index.default, recorded_report,
    )  # fmt: skip
    readme = replace_block(
        layout.readme.read_text(encoding="utf-8"),
        README_BLOCK,
        readme_block(comparison, index.default, recorded_report),
        "README.md",
    )
    edits = _Edits()
    try:
        edits.copy(Path(model_file), layout.model_path(model_id))
        edits.write_text(layout.index, new_index)
        _check_shipped(layout, model_id)
        edits.expect_new(layout.golden_paths(model_id))
        write_golden(model_id, layout.golden, layout.pretrained)
        edits.write_text(layout.models_readme, models_readme)
        edits.write_text(layout.readme, readme)
    except BaseException:  # Ctrl-C too: never leave half a ship behind
        edits.rollback()
        raise
    return edits.changed


def _check_shipped(layout: RepoLayout, model_id: str) -> None:
    """The index reads back, names the new model as the default, and its file matches."""
    index = read_index(layout.pretrained)
    entry = index.default_model()
    ident = read_identity(entry.path)
    if entry.model_id != model_id or (ident.model_id, ident.fingerprint.hex()) != (
        entry.model_id,
        entry.fingerprint,
    ):
        raise AecError(f"pretrained/{INDEX_FILE} does not match {entry.path.name} after writing")


# ----- the whole command ---------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    comparison: Comparison
    decision: Decision
    changed: tuple[Path, ...]  # empty unless shipped
    reports: tuple[Path, ...]


def run(
    repo: Path,
    request: ShipRequest,
    write_golden: GoldenWriter,
    workdir: Path,
    say: Say = lambda _: None,
) -> Outcome:
    """Prepare, compare, report, decide, and ship when better (and not a dry run)."""
    prepared = prepare(repo, request, workdir)
    comparison = compare(repo, request, prepared, say=say)
    decision = decide(comparison)
    reports = ()
    if request.report is not None:
        reports = tuple(write_report(request.report, comparison, decision))
    changed: tuple[Path, ...] = ()
    if decision.better and not request.dry_run:
        file = prepared.candidate_file
        written = ship(repo, comparison, file, write_golden, request.lineage, request.report)
        changed = tuple(written)
    return Outcome(comparison, decision, changed, reports)
