"""Rate–distortion training of the hyperprior model over the whole quality range.

Each example gets its own trade-off position t ~ U[0, K-1]; its loss is
    lambda(t) * 255² * MSE(x, x_hat) + bits(y) / pixels + bits(z) / pixels
with lambda(t) interpolated geometrically between the configured levels, so the continuous
quality knob is trained directly, not only at the K levels. Rates use additive uniform noise;
the decoder sees straight-through rounded latents (`HyperpriorModel.forward`).

Data: every image is decoded once and packed, at its own size, into one flat uint8 tensor on the
training device (`ImageSet`); a step's random crops and flips are one gather there. The crops
and trade-off positions of step s come from a generator seeded by (seed, s), so the data order
is a function of the step alone and a resumed run sees the crops an uninterrupted one would.

On CUDA: TF32 convolutions, channels_last for the model and the batches, fused Adam, and no
host synchronisation between log steps. Matmuls stay IEEE float32: the only ones are the
factorized density's, which evaluate the rate of z. `bf16=True` runs g_a and g_s (nearly all of
the arithmetic) under bfloat16 autocast, except the two layers at the latent, which produce y and
consume y_hat; h_a, the hyperprior synthesis, the noise, the densities and every log2 of a rate
stay float32 (`HyperpriorModel.forward`'s `inner_dtype`).

state.pt holds the model, optimizer, step, schedule, RNG states (Python, torch CPU, CUDA), the
best validation so far and the wall time, written atomically. On the CPU a resumed run is
bit-identical to an uninterrupted one; CUDA kernels are not bitwise deterministic, so there it is
the same run up to float rounding.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from . import __version__
from .checkpoint import CHECKPOINT_FORMAT, load_checkpoint, read_torch_file, save_checkpoint
from .config import MODEL_FIELDS, RESUME_FREE_FIELDS, RUN_FIELDS, TrainConfig
from .device import describe, resolve_device
from .durations import format_duration
from .errors import AecError, UsageError
from .export import export_trained
from .fileio import write_atomic
from .imagesets import find_images
from .model import HyperpriorModel, ModelConfig, interpolate_levels
from .modelcard import write_model_card
from .recipe import (
    LevelNormaliser,
    SpikeClip,
    WeightAverage,
    learning_rate,
    stratified_positions,
)
from .validate import ValidationResult, frozen_copy, load_valid_images, validate_checkpoint
from .validate import validate_model as _validate_model

STATE_FORMAT = "aecompress-training-state"
STATE_VERSION = 2
STATE_FILE = "state.pt"
BEST_FILE = "best.pt"
MODEL_FILE = "model.pt"
CARD_FILE = "MODEL_CARD.md"
LOG_FILE = "train.log"
CALIBRATION_IMAGES = 64  # training images that size the integer network at the final export
VALID_CALIBRATION_IMAGES = 8  # ... and at each periodic validation's temporary export


class TrainUsageError(UsageError):
    """Options that contradict each other or the run being resumed (the CLI exits with 2)."""


@dataclass
class StepStats:
    step: int
    loss: float  # means over the steps since the previous log line
    bpp: float
    psnr: float
    steps_per_s: float
    lr: float = 0.0
    total: int = 0
    clipped: int = 0  # steps whose gradient norm was clipped, since the previous log line
    megapixels_per_s: float = 0.0  # training pixels through the model per second
    seconds_left: float | None = None  # of a run with a time limit

    def line(self) -> str:
        total = f"/{self.total}" if self.total else ""
        left = "" if self.seconds_left is None else f"  {format_duration(self.seconds_left)} left"
        return (
            f"step {self.step}{total}  loss {self.loss:.4f}  bpp {self.bpp:.4f}  "
            f"PSNR {self.psnr:.2f} dB  lr {self.lr:.2e}  {self.steps_per_s:.2f} it/s  "
            f"{self.megapixels_per_s:.2f} MP/s  clipped {self.clipped}{left}"
        )


# ----- data ----------------------------------------------------------------------------------


def _decode_one(path: Path, min_size: int) -> tuple[torch.Tensor | None, str]:
    """3×H×W uint8, or None and why the image is skipped."""
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        return None, f"skipping {path}: {e}"
    if min(arr.shape[:2]) < min_size:
        return None, f"skipping {path}: smaller than the {min_size}px patch size"
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))), ""


def _decode_images(
    paths: Sequence[Path], min_size: int, warn: Callable[[str], None]
) -> list[torch.Tensor]:
    """The usable images, in the order of `paths`. Decoded on several threads (the decoders
    release the GIL): on a GPU machine loading is part of the time a run is budgeted."""
    workers = min(8, os.cpu_count() or 1, max(1, len(paths)))
    with ThreadPoolExecutor(workers) as pool:
        decoded = list(pool.map(lambda p: _decode_one(p, min_size), paths))
    images = []
    for image, why in decoded:
        if image is None:
            warn(why)
        else:
            images.append(image)
    return images


@dataclass(frozen=True)
class DataSource:
    path: str  # absolute
    files: int  # image files found under it
    images: int  # of which usable


def load_dataset(
    roots: Sequence[Path], min_size: int, warn: Callable[[str], None] = print
) -> tuple[list[torch.Tensor], list[DataSource]]:
    """Images (3×H×W uint8) under each root, and how many each root gave."""
    images: list[torch.Tensor] = []
    sources = []
    for root in roots:
        paths = find_images([root], patterns=False)
        decoded = _decode_images(paths, min_size, warn)
        images.extend(decoded)
        sources.append(DataSource(str(Path(root).resolve()), len(paths), len(decoded)))
    if not images:
        where = ", ".join(str(r) for r in roots)
        raise AecError(f"no usable training images found in {where}")
    return images, sources


class ImageSet:
    """Training images (3×H×W uint8 each, any sizes) packed into one flat uint8 tensor on the
    training device; `crops` cuts a batch of random crops with random flips as one gather, with
    no per-sample Python work and no host round trip."""

    def __init__(self, images: Sequence[torch.Tensor], device: torch.device | str = "cpu"):
        if not images:
            raise AecError("no usable training images found")
        self.device = torch.device(device)
        sizes = [im.numel() for im in images]
        # One concatenation and one transfer: thousands of small copies to a GPU cost seconds
        # of a budgeted run.
        self.flat = torch.cat([im.reshape(-1) for im in images]).to(self.device)
        offsets = [0, *np.cumsum(sizes[:-1]).tolist()]
        ints = {"dtype": torch.int64, "device": self.device}
        self.offsets = torch.tensor(offsets, **ints)
        self.heights = torch.tensor([im.shape[1] for im in images], **ints)
        self.widths = torch.tensor([im.shape[2] for im in images], **ints)
        self.min_side = min(min(im.shape[1:]) for im in images)

    def __len__(self) -> int:
        return self.offsets.numel()

    def crops(
        self, batch: int, size: int, gen: torch.Generator, dihedral: bool = False
    ) -> torch.Tensor:
        """B×3×size×size uint8 on the device: a uniform image, a uniform crop position, and a
        horizontal and a vertical flip, each with probability 1/2; with `dihedral` also a
        transposition with probability 1/2, which makes all eight flips and rotations."""
        u = torch.rand(batch, 6 if dihedral else 5, generator=gen, device=self.device)
        n = len(self)
        i = (u[:, 0] * n).long().clamp_(max=n - 1)  # B
        h, w = self.heights[i], self.widths[i]
        top = torch.minimum((u[:, 1] * (h - size + 1)).long(), h - size)
        left = torch.minimum((u[:, 2] * (w - size + 1)).long(), w - size)
        ramp = torch.arange(size, device=self.device)
        rows = top[:, None] + torch.where(u[:, 3:4] < 0.5, size - 1 - ramp, ramp)  # B×size
        cols = left[:, None] + torch.where(u[:, 4:5] < 0.5, size - 1 - ramp, ramp)  # B×size
        src_row = rows[:, :, None].expand(batch, size, size)  # B×size×size: output (a, b)
        src_col = cols[:, None, :].expand(batch, size, size)  # reads (rows[a], cols[b])
        if dihedral:  # transposed crops read (rows[b], cols[a])
            t = (u[:, 5] < 0.5)[:, None, None]
            src_row, src_col = (
                torch.where(t, rows[:, None, :], src_row),
                torch.where(t, cols[:, :, None], src_col),
            )
        chan = torch.arange(3, device=self.device)
        index = (
            self.offsets[i, None, None, None]
            + chan[None, :, None, None] * (h * w)[:, None, None, None]
            + (src_row * w[:, None, None] + src_col)[:, None, :, :]
        )  # B×3×size×size
        return self.flat[index]


def _step_seed(seed: int, step: int) -> int:
    """splitmix64 of (seed, step): well-mixed seeds for consecutive steps (the CPU generator
    uses the low 32 bits, CUDA's Philox all 64)."""
    mask = (1 << 64) - 1
    x = (((seed & 0xFFFFFFFF) << 32 | (step & 0xFFFFFFFF)) + 0x9E3779B97F4A7C15) & mask
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & mask
    return (x ^ (x >> 31)) >> 1


def training_batch(
    data: ImageSet, cfg: TrainConfig, levels: int, step: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Step `step`'s batch: B×3×P×P floats in [0, 1] and B positions in [0, levels-1]."""
    gen.manual_seed(_step_seed(cfg.seed, step))
    x = data.crops(cfg.batch_size, cfg.patch_size, gen, cfg.dihedral).float().div_(255)
    if cfg.stratified:
        position = stratified_positions(cfg.batch_size, levels, gen, data.device)
    else:
        position = torch.rand(cfg.batch_size, generator=gen, device=data.device) * (levels - 1)
    return x, position


# ----- loss ----------------------------------------------------------------------------------


def step_progress(step: int, cfg: TrainConfig) -> float:
    """The fraction of a run planned in steps that is done after `step` (0 during warm-up)."""
    return (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)


def lr_at(step: int, cfg: TrainConfig, progress: float) -> float:
    """The learning rate of `step` at `progress` (0..1) through the run."""
    return learning_rate(step, progress, cfg.lr, cfg.lr_final, cfg.warmup, cfg.anneal)


def rd_loss(
    model: HyperpriorModel,
    x: torch.Tensor,
    position: torch.Tensor,
    mixed: torch.dtype | None = None,
    log_lambdas: torch.Tensor | None = None,
    normaliser: LevelNormaliser | None = None,
):
    """Mean RD loss of the batch; also returns mean bpp and mean PSNR for logging.

    normaliser: divides each crop's loss by its level's running mean of the distortion term
    (updated with this batch first), so every level moves the shared weights alike; the
    returned bpp and PSNR are raw.

    mixed: autocast dtype for the inner layers of g_a / g_s, None for plain float32.
    log_lambdas: K×1 log of the levels' lambdas, already on the device (model.lambdas builds
    it from a Python list every call, a host-to-device copy that waits for the GPU).
    """
    out = model(x, position, inner_dtype=mixed)
    pixels = x.shape[2] * x.shape[3]
    mse = ((out.x_hat - x) ** 2).mean((1, 2, 3))
    bpp = (out.bits_y + out.bits_z) / pixels
    if log_lambdas is None:
        lam = model.lambdas(position)
    else:
        lam = torch.exp(interpolate_levels(log_lambdas, position)).squeeze(1)
    distortion = lam * 255**2 * mse  # B
    per_crop = distortion + bpp
    if normaliser is not None:
        normaliser.update(position, distortion)
        per_crop = per_crop / normaliser.scale(position)
    psnr = (10 * torch.log10(1 / mse.detach().clamp(min=1e-10))).mean()
    return per_crop.mean(), bpp.mean().detach(), psnr


# ----- state files ---------------------------------------------------------------------------


@dataclass
class TrainingState:
    """What state.pt holds. Files from before version 2 lack the later fields."""

    model_config: ModelConfig
    train_config: TrainConfig
    model: dict[str, torch.Tensor]
    optimizer: dict | None
    step: int
    python_rng: Any = None
    torch_rng: torch.Tensor | None = None
    cuda_rng: list[torch.Tensor] | None = None
    elapsed: float = 0.0  # wall seconds of training, all sessions of the run
    best: dict | None = None  # {"step", "score", "images"} of the best validation (best.pt)
    history: list[dict] = field(default_factory=list)  # ValidationResult.to_dict() of each
    data: list[dict] = field(default_factory=list)  # DataSource of each training root
    run_info: dict = field(default_factory=dict)  # sessions (command, start step, device), init
    level_norm: dict | None = None  # LevelNormaliser.state_dict()
    clip: dict | None = None  # SpikeClip.state_dict()
    ema: dict | None = None  # WeightAverage.state_dict()
    progress: float | None = None  # of the schedule (0..1) when saved


def read_state(path: Path) -> TrainingState:
    raw = read_torch_file(path, "training state", error=AecError)
    if raw.get("format") == CHECKPOINT_FORMAT:
        raise AecError(
            f"{path}: a shipped model, not a training state; fine-tune from it with --init"
        )
    if not {"model_config", "train_config", "model", "optimizer", "step"} <= raw.keys():
        raise AecError(f"{path}: not a training state (a state.pt of aecompress train)")
    try:
        return TrainingState(
            model_config=ModelConfig.from_dict(raw["model_config"]),
            train_config=TrainConfig.from_dict(raw["train_config"]),
            model=raw["model"],
            optimizer=raw["optimizer"],
            step=int(raw["step"]),
            python_rng=raw.get("python_rng"),
            torch_rng=raw.get("torch_rng"),
            cuda_rng=raw.get("cuda_rng"),
            elapsed=float(raw.get("elapsed", 0.0)),
            best=raw.get("best"),
            history=list(raw.get("history", [])),
            data=list(raw.get("data", [])),
            run_info=dict(raw.get("run_info", {})),
            level_norm=raw.get("level_norm"),
            clip=raw.get("clip"),
            ema=raw.get("ema"),
            progress=raw.get("progress"),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise AecError(f"{path}: inconsistent training state ({e})") from e


def read_init(path: Path) -> tuple[ModelConfig, dict[str, torch.Tensor], str]:
    """Weights to start from: a training state (state.pt, best.pt) or a shipped checkpoint.
    Returns (config, state dict, a description for the provenance)."""
    raw = read_torch_file(path, "model or training state", error=AecError)
    if raw.get("format") == CHECKPOINT_FORMAT:
        ckpt = load_checkpoint(path)
        desc = f"{path} (model {ckpt.model_id}, {ckpt.fingerprint.hex()})"
        return ckpt.config, ckpt.model.state_dict(), desc
    if "model_config" in raw and "model" in raw:
        try:
            config = ModelConfig.from_dict(raw["model_config"])
        except (KeyError, TypeError, ValueError) as e:
            raise AecError(f"{path}: inconsistent training state ({e})") from e
        return config, raw["model"], f"{path} (training state at step {raw.get('step')})"
    raise AecError(f"{path}: neither an aecompress model nor a training state")


def _cpu(obj):
    """A copy of a (nested) state dict with every tensor on the CPU, contiguous."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu").contiguous()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_cpu(v) for v in obj)
    return obj


def _state_payload(model, optimizer, step: int, cfg: TrainConfig, **extra) -> dict:
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    return {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "model_config": model.config.to_dict(),
        "train_config": asdict(cfg),
        "model": _cpu(model.state_dict()),
        "optimizer": _cpu(optimizer.state_dict()),
        "step": step,
        "python_rng": random.getstate(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if cuda else None,
        **extra,
    }


def _write_best(path: Path, model, cfg: TrainConfig, step: int, result) -> None:
    """best.pt: the weights of the best validation (readable by --init and `read_init`),
    without optimizer or RNG state."""
    payload = {
        "format": STATE_FORMAT + "-weights",
        "model_config": model.config.to_dict(),
        "train_config": asdict(cfg),
        "model": _cpu(model.state_dict()),
        "step": step,
        "validation": result.to_dict(),
    }
    write_atomic(path, lambda f: torch.save(payload, f), force=True)


def save_training_state(path: Path, model, optimizer, step: int, cfg: TrainConfig, **extra):
    """Write state.pt atomically (temporary file, then rename)."""
    payload = _state_payload(model, optimizer, step, cfg, **extra)
    write_atomic(path, lambda f: torch.save(payload, f), force=True)


# ----- progress ------------------------------------------------------------------------------


class Reporter(Protocol):
    def start(self, step: int, total: int, seconds: float = 0.0) -> None:
        """total: the run's last step (0: none); seconds > 0: the run ends on time, that many
        seconds from now, and the bar shows time instead of steps."""

    def advance(self, step: int) -> None: ...
    def stats(self, stats: StepStats) -> None: ...
    def message(self, text: str) -> None: ...
    def stop(self) -> None: ...


class _SpeedColumn(ProgressColumn):
    def render(self, task) -> Text:
        speed = task.fields.get("speed")
        return Text(f"{speed:.1f} it/s" if speed else "- it/s")


class ConsoleReporter:
    """Progress on a rich console (stderr): a live bar with steps/s, loss, bpp and PSNR on a
    terminal; elsewhere (a pipe, nohup, CI) one plain line per log step."""

    def __init__(self, console: Console):
        self.console = console
        self._progress: Progress | None = None
        self._task = None
        self._clock: float | None = None  # monotonic start of a bar that counts seconds

    def start(self, step: int, total: int, seconds: float = 0.0) -> None:
        if not self.console.is_terminal:
            return
        counter = TextColumn("step {task.fields[step]}") if seconds > 0 else MofNCompleteColumn()
        self._progress = Progress(
            BarColumn(bar_width=16),
            counter,
            _SpeedColumn(),
            TextColumn("{task.fields[metrics]}", markup=False),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            console=self.console,
        )
        if seconds > 0:
            self._clock = time.monotonic()
            total, step_done = seconds, 0.0
        else:
            total, step_done = total or None, step
        self._task = self._progress.add_task(
            "train", total=total, completed=step_done, metrics="", step=step, speed=None
        )
        self._progress.start()

    def advance(self, step: int) -> None:
        if self._progress is not None:
            done = step if self._clock is None else time.monotonic() - self._clock
            self._progress.update(self._task, completed=done, step=step)

    def stats(self, s: StepStats) -> None:
        if self._progress is not None:
            metrics = f"loss {s.loss:.4g} {s.bpp:.3f} bpp {s.psnr:.2f} dB"
            metrics += f" {s.megapixels_per_s:.1f} MP/s"
            self._progress.update(self._task, metrics=metrics, speed=s.steps_per_s)
        else:
            self.console.print(s.line(), soft_wrap=True)

    def message(self, text: str) -> None:
        self.console.print(text, soft_wrap=True)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class _LogReporter:
    """The plain callback of older callers: `log(StepStats)` at every log step."""

    def __init__(self, log: Callable[[StepStats], None] | None):
        self.log = log

    def start(self, step: int, total: int, seconds: float = 0.0) -> None:
        pass

    def advance(self, step: int) -> None:
        pass

    def stats(self, stats: StepStats) -> None:
        if self.log is not None:
            self.log(stats)

    def message(self, text: str) -> None:
        pass

    def stop(self) -> None:
        pass


def _timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def append_log(out_dir: Path, text: str) -> None:
    with open(Path(out_dir) / LOG_FILE, "a", encoding="utf-8") as f:
        f.write(f"{_timestamp()} {text}\n")


def _match_layouts(optimizer: torch.optim.Optimizer) -> None:
    """Give loaded moment buffers their parameter's memory layout (state.pt holds contiguous
    tensors; CUDA parameters are channels_last, and fused Adam walks the raw memory)."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            st = optimizer.state.get(p, {})
            for k, v in st.items():
                if isinstance(v, torch.Tensor) and v.shape == p.shape and v.stride() != p.stride():
                    st[k] = torch.empty_like(p).copy_(v)


class _StopRequest:
    """SIGINT / SIGTERM ask the loop to stop after the current step and save the state; a
    second Ctrl-C stops at once, without saving."""

    def __init__(self):
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


# ----- the loop ------------------------------------------------------------------------------


@dataclass
class TrainResult:
    model: HyperpriorModel  # on the training device, eval mode
    step: int
    elapsed: float  # wall seconds of training, all sessions of the run
    best: dict | None  # {"step", "score", "images"} of the best validation (out_dir/best.pt)
    history: list[dict]  # every periodic validation, as ValidationResult.to_dict()
    averaged: HyperpriorModel | None = None  # the weight average (CPU), when kept
    session_steps: int = 0  # steps of this call (a resumed run counts from where it resumed)
    session_seconds: float = 0.0  # ... and its training seconds

    @property
    def steps_per_s(self) -> float:
        return self.session_steps / self.session_seconds if self.session_seconds > 0 else 0.0


def train(
    images: Sequence[torch.Tensor] | ImageSet,
    out_dir: Path,
    model_config: ModelConfig,
    cfg: TrainConfig,
    resume: Path | TrainingState | None = None,
    log: Callable[[StepStats], None] | None = print,
    *,
    device: torch.device | str = "cpu",
    bf16: bool = False,
    init_weights: Mapping[str, torch.Tensor] | None = None,
    validator: Callable[[HyperpriorModel, int], ValidationResult] | None = None,
    reporter: Reporter | None = None,
    data_sources: Sequence[DataSource] = (),
    run_info: Mapping[str, Any] | None = None,
    deadline: float | None = None,
) -> TrainResult:
    """Train from scratch, from `init_weights`, or on from `resume` (whose model config wins).

    The run ends at cfg.steps (0: no step limit), after cfg.train_seconds of training time, or
    at `deadline` (a time.monotonic() value), whichever comes first. With a deadline the
    schedule runs over wall-clock time: its progress goes from where a resumed run left it to
    1 at the deadline, so the anneal ends when the run does.

    Writes out_dir/state.pt every `checkpoint_every` steps and `checkpoint_seconds` seconds, at
    the end and when stopped by SIGINT / SIGTERM (then raises KeyboardInterrupt);
    out_dir/train.log gets a line per log step and per validation; out_dir/best.pt the weights
    of the best validation score. run_info (JSON-like) is stored in state.pt as it is, for the
    provenance of later sessions.
    """
    device = torch.device(device)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = images if isinstance(images, ImageSet) else ImageSet(images, device)
    if data.device.type != device.type:
        raise ValueError(f"images are on {data.device}, training on {device}")
    if cfg.patch_size > data.min_side:
        raise AecError(f"a training image is smaller than the {cfg.patch_size}px patch size")
    budgeted = deadline is not None
    timed = cfg.train_seconds > 0
    if cfg.steps <= 0 and not (budgeted or timed):
        raise ValueError("a run without a step limit needs train_seconds or a deadline")
    state = read_state(resume) if isinstance(resume, str | Path) else resume
    if state is not None:
        model_config = state.model_config
    cuda = device.type == "cuda"
    memory_format = torch.channels_last if cuda else torch.contiguous_format

    random.seed(cfg.seed)
    model = build_model(model_config, cfg, init_weights)
    model.to(device, memory_format=memory_format)
    optimizer = _optimizer(model, cfg, cuda)
    normaliser = LevelNormaliser(model_config.levels, device) if cfg.level_norm else None
    clip = SpikeClip(cfg.clip_factor, cfg.grad_clip, device)
    average = WeightAverage(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    step, elapsed, best, history = 0, 0.0, None, []
    if state is not None:
        model.load_state_dict(state.model)
        if state.optimizer is not None:
            try:
                optimizer.load_state_dict(state.optimizer)
            except ValueError as e:  # parameter groups of another version
                raise AecError(
                    f"the optimizer state of the resumed run does not fit this version ({e}); "
                    "start a new run from its weights with --init"
                ) from e
            _match_layouts(optimizer)
        for part, saved in (
            (normaliser, state.level_norm),
            (clip, state.clip),
            (average, state.ema),
        ):
            if part is not None and saved is not None:
                part.load_state_dict(saved)
        step, elapsed, best, history = state.step, state.elapsed, state.best, list(state.history)
        if isinstance(state.python_rng, tuple):
            random.setstate(state.python_rng)
        if state.torch_rng is not None:
            torch.set_rng_state(state.torch_rng)
        if cuda and state.cuda_rng:
            for index, rng in enumerate(state.cuda_rng[: torch.cuda.device_count()]):
                torch.cuda.set_rng_state(rng, index)

    reporter = reporter or _LogReporter(log)
    mixed = torch.bfloat16 if bf16 else None
    log_lambdas = torch.log(torch.tensor(model_config.lambdas)).unsqueeze(1).to(device)
    gen = torch.Generator(device=device)
    sums = torch.zeros(3, device=device)  # loss, bpp, PSNR summed since the last log line
    count = 0
    extra = {"data": [asdict(s) for s in data_sources]} if data_sources else {}
    if state is not None and not data_sources:
        extra = {"data": state.data}
    extra["run_info"] = dict(run_info or (state.run_info if state is not None else {}))
    flags = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    )
    t_start = time.perf_counter()
    t_window, s_window = t_start, step
    saved_at = step if state is not None else -1
    last_save = time.monotonic()
    first_step = step
    paused = 0.0  # seconds of this session spent validating, not training
    t_begin = time.monotonic()
    p_begin = 0.0  # schedule progress at the start of this session (for a deadline)
    if state is not None and budgeted:
        p_begin = state.progress
        if p_begin is None:  # a state from before progress was saved: its own step plan
            planned = state.train_config
            p_begin = step_progress(step, planned) if planned.steps > 0 else 0.0
        p_begin = min(1.0, max(0.0, p_begin))
    pixels_per_step = cfg.batch_size * cfg.patch_size**2
    next_valid = math.inf  # training seconds at which the next timed validation is due
    if cfg.valid_seconds > 0:
        next_valid = (math.floor(elapsed / cfg.valid_seconds) + 1) * cfg.valid_seconds

    def training_seconds() -> float:
        """Training time of the run so far, all sessions, validations excluded."""
        return elapsed + time.perf_counter() - t_start - paused

    def progress_now() -> float:
        """How far through the schedule the run is (0..1)."""
        if budgeted:
            span = deadline - t_begin
            done = (time.monotonic() - t_begin) / span if span > 0 else 1.0
            return p_begin + (1 - p_begin) * min(1.0, done)
        if timed:
            return training_seconds() / cfg.train_seconds
        return step_progress(step, cfg)

    def seconds_left(steps_per_s: float) -> float:
        left = math.inf
        if budgeted:
            left = deadline - time.monotonic()
        if timed:
            left = min(left, cfg.train_seconds - training_seconds())
        if cfg.steps > 0 and steps_per_s > 0:
            left = min(left, (cfg.steps - step) / steps_per_s)
        return max(0.0, left)

    def finished() -> bool:
        if cfg.steps > 0 and step >= cfg.steps:
            return True
        if timed and training_seconds() >= cfg.train_seconds:
            return True
        return budgeted and time.monotonic() >= deadline

    def parts() -> dict:
        return {
            "level_norm": normaliser.state_dict() if normaliser is not None else None,
            "clip": clip.state_dict(),
            "ema": average.state_dict() if average is not None else None,
        }

    def log_window(lr: float) -> None:
        """One log line with the means since the previous one (the one sync per window)."""
        nonlocal count, t_window, s_window
        check_finite()
        loss_m, bpp_m, psnr_m = (sums / count).tolist()
        now = time.perf_counter()
        rate = (step - s_window) / (now - t_window)
        stats = StepStats(
            step, loss_m, bpp_m, psnr_m, rate, lr, cfg.steps, int(clip.take_clipped()),
            rate * pixels_per_step / 1e6, seconds_left(rate),
        )  # fmt: skip
        logfile.write(f"{_timestamp()} {stats.line()}\n")
        reporter.stats(stats)
        sums.zero_()
        count, t_window, s_window = 0, now, step

    def check_finite() -> None:
        if count and not bool(torch.isfinite(sums).all()):
            raise AecError(
                f"the loss is not finite at step {step}; {out_dir / STATE_FILE} holds the last "
                "saved state: resume from it with a lower --lr"
            )

    def save(path: Path = out_dir / STATE_FILE) -> None:
        nonlocal saved_at, last_save
        check_finite()  # never save a diverged model over a good one
        save_training_state(
            path, model, optimizer, step, cfg, elapsed=training_seconds(), best=best,
            history=history, progress=progress_now(), **extra, **parts(),
        )  # fmt: skip
        saved_at, last_save = step, time.monotonic()

    logfile = open(out_dir / LOG_FILE, "a", encoding="utf-8", buffering=1)
    try:
        if cuda:
            torch.backends.cudnn.allow_tf32 = True  # the transforms' convolutions
            torch.backends.cuda.matmul.allow_tf32 = False  # only the density of z: keep IEEE
            torch.backends.cudnn.benchmark = True  # one crop size: tune the kernels once
        with _StopRequest() as stop:
            if budgeted:
                reporter.start(step, 0, max(0.0, deadline - time.monotonic()))
            else:
                reporter.start(step, cfg.steps, cfg.train_seconds - elapsed if timed else 0.0)
            model.train()
            while not finished():
                if stop.requested:
                    if saved_at != step:
                        save()
                    path = out_dir / STATE_FILE
                    logfile.write(f"{_timestamp()} stopped at step {step}; {path} saved\n")
                    reporter.message(
                        f"stopped at step {step}: {path} saved; continue with --resume {path}"
                    )
                    raise KeyboardInterrupt
                lr = lr_at(step, cfg, progress_now())
                for group in optimizer.param_groups:
                    group["lr"] = lr * group["lr_scale"]
                x, position = training_batch(data, cfg, model_config.levels, step, gen)
                x = x.contiguous(memory_format=memory_format)
                loss, bpp, psnr = rd_loss(model, x, position, mixed, log_lambdas, normaliser)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                clip(model.parameters())
                optimizer.step()
                if average is not None:
                    average.update(model)
                step += 1
                sums += torch.stack((loss.detach(), bpp, psnr))
                count += 1
                reporter.advance(step)
                end = finished()
                if step % cfg.log_every == 0 or end:
                    log_window(lr)
                due = not end and (  # the final model is validated at export
                    (cfg.valid_every > 0 and step % cfg.valid_every == 0)
                    or next_valid <= training_seconds()
                )
                if validator is not None and due:
                    devices = [device] if cuda else []
                    trained = training_seconds()
                    with torch.random.fork_rng(devices=devices, device_type=device.type):
                        candidate = _averaged(model, average)
                        result = replace(validator(candidate, step), train_seconds=trained)
                    model.train()
                    t_window += result.seconds  # steps/s counts training time only
                    paused += result.seconds
                    while next_valid <= trained:
                        next_valid += cfg.valid_seconds
                    history.append(result.to_dict())
                    better = (
                        best is None
                        or best.get("images") != result.images  # another validation set
                        or result.score < best["score"]
                    )
                    if better:
                        best = {"step": step, "score": result.score, "images": result.images}
                        _write_best(out_dir / BEST_FILE, candidate, cfg, step, result)
                    line = f"validation {result.summary()}" + (" (best)" if better else "")
                    logfile.write(f"{_timestamp()} {line} [{result.seconds:.1f} s]\n")
                    reporter.message(line)
                if (
                    end
                    or (cfg.checkpoint_every > 0 and step % cfg.checkpoint_every == 0)
                    or 0 < cfg.checkpoint_seconds <= time.monotonic() - last_save
                ):
                    save()
            if count:  # stopped by the time budget inside a log window
                log_window(lr)
            if saved_at != step:
                save()
    finally:
        reporter.stop()
        logfile.close()
        if cuda:
            (
                torch.backends.cuda.matmul.allow_tf32,
                torch.backends.cudnn.allow_tf32,
                torch.backends.cudnn.benchmark,
            ) = flags
    session_seconds = training_seconds() - elapsed
    elapsed = training_seconds()
    averaged = _averaged(model, average).eval() if average is not None else None
    return TrainResult(
        model.eval(), step, elapsed, best, history, averaged, step - first_step, session_seconds
    )


def build_model(
    model_config: ModelConfig,
    cfg: TrainConfig,
    init_weights: Mapping[str, torch.Tensor] | None = None,
) -> HyperpriorModel:
    """The model a run starts from (CPU, float32): initial weights drawn from cfg.seed, with the
    recipe's gain spread and GDN form, or `init_weights`. Reseeds torch's generator."""
    torch.manual_seed(cfg.seed)
    model = HyperpriorModel(model_config)
    model.spread_gains(cfg.gain_spread)
    if not cfg.gdn_cross_channel:
        model.freeze_gdn_cross_channel()
    if init_weights is not None:
        model.load_state_dict(init_weights)
    return model


def _optimizer(model: HyperpriorModel, cfg: TrainConfig, cuda: bool) -> torch.optim.Adam:
    """Adam with the gain vectors in their own group (lr × gain_lr_scale): they set the rate
    range of the quality knob and otherwise barely move from their initial guess."""
    gains = {id(p) for p in model.gain_parameters()}
    groups = [
        {"params": [p for p in model.parameters() if id(p) not in gains], "lr_scale": 1.0},
        {"params": model.gain_parameters(), "lr_scale": cfg.gain_lr_scale},
    ]
    return torch.optim.Adam(groups, lr=cfg.lr, **({"fused": True} if cuda else {}))


def _averaged(model: HyperpriorModel, average: WeightAverage | None) -> HyperpriorModel:
    """The model to validate: a copy holding the weight average when there is one."""
    if average is None:
        return model
    copy = frozen_copy(model)
    copy.load_state_dict({k: v.to("cpu", torch.float32) for k, v in average.weights().items()})
    return copy


# ----- the whole command ---------------------------------------------------------------------


@dataclass
class TrainOptions:
    """Everything `aecompress train` takes."""

    data: list[Path]  # empty with --resume / --export-from: the run's recorded data
    out_dir: Path | None  # None with --resume / --export-from: the state's folder
    config: TrainConfig
    model_config: ModelConfig
    valid: list[Path] = field(default_factory=list)
    resume: Path | None = None
    init: Path | None = None
    device: str = "auto"
    bf16: bool = False
    model_id: str = "aec-hp-custom"
    force: bool = False
    command: str = ""  # the command line, for the provenance
    # Wall-clock seconds for the whole command, export included (0: no limit); counted from
    # `started` (a time.monotonic() value; None: from the call of run_training).
    time_budget: float = 0.0
    started: float | None = None
    export_from: Path | None = None  # export this state.pt's model; no training


@dataclass
class RunReport:
    model_path: Path
    card_path: Path
    model_id: str
    fingerprint: str
    steps: int
    selected_step: int
    elapsed: float
    validation: ValidationResult | None
    steps_per_s: float = 0.0  # of this session's training (0: none)


def _check_options(opts: TrainOptions, out: Path) -> None:
    if opts.config.patch_size % 64:
        raise TrainUsageError(
            f"--patch-size must be a multiple of 64 (the model downsamples by 64), "
            f"got {opts.config.patch_size}"
        )
    if opts.export_from is not None:
        if (out / MODEL_FILE).exists() and not opts.force:
            raise TrainUsageError(f"{out / MODEL_FILE} exists (use --force to replace it)")
    else:
        existing = [p for p in (out / STATE_FILE, out / MODEL_FILE) if p.exists()]
        continuing = opts.resume is not None and opts.resume.resolve().parent == out.resolve()
        if existing and not (opts.force or continuing):
            raise TrainUsageError(
                f"{out} already holds a training run ({existing[0].name}); continue it with "
                f"--resume {out / STATE_FILE}, start over with --force, or pick another --out"
            )
    if out.exists() and not out.is_dir():
        raise TrainUsageError(f"--out {out}: not a directory")
    for path in [*opts.data, *opts.valid]:
        if not Path(path).exists():
            raise AecError(f"{path}: no such file or directory")


def _conflicts(given: set[str], names: Sequence[str], asked, stored, what: str) -> None:
    for name in names:
        if name in given and getattr(asked, name) != getattr(stored, name):
            option = "--" + name.replace("_", "-")
            raise TrainUsageError(
                f"{option} {getattr(asked, name)} conflicts with {what} "
                f"({name} = {getattr(stored, name)}); leave the option out"
            )


def _precision(device: torch.device, bf16: bool) -> str:
    if device.type != "cuda":
        return "bf16 autocast inside g_a, g_s; float32 elsewhere" if bf16 else "float32"
    return (
        "bf16 autocast inside g_a, g_s; TF32 convolutions; float32 rates"
        if bf16
        else "float32 with TF32 convolutions"
    )


def _recorded_data(state: TrainingState, what: str) -> list[Path]:
    """The training folders a state records, for a command that was given none."""
    roots = [Path(d["path"]) for d in state.data if "path" in d]
    if not roots:
        raise TrainUsageError(f"the {what} records no training data: give DATA")
    missing = [r for r in roots if not r.exists()]
    if missing:
        raise TrainUsageError(
            f"the {what}'s training data {missing[0]} is gone: give DATA (the images to "
            "calibrate the export on)"
        )
    return roots


def _model_with(config: ModelConfig, weights: Mapping[str, torch.Tensor]) -> HyperpriorModel:
    """A CPU model holding `weights`, in eval mode (building it leaves the RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        model = HyperpriorModel(config)
    model.load_state_dict(weights)
    return model.eval()


def _result_from_state(state: TrainingState) -> TrainResult:
    """The models a saved state holds: its weights and, when kept, their running average."""
    averaged = None
    if state.ema is not None:
        averaged = _model_with(state.model_config, state.ema["tensors"])
    return TrainResult(
        _model_with(state.model_config, state.model), state.step, state.elapsed, state.best,
        list(state.history), averaged,
    )  # fmt: skip


# Headroom on the measured export time when the run reserves it inside a time budget.
EXPORT_SAFETY = 1.25


def run_training(
    opts: TrainOptions,
    given: set[str] = frozenset(),
    reporter: Reporter | None = None,
    warn: Callable[[str], None] = print,
    note: Callable[[str], None] = print,
) -> RunReport:
    """The `aecompress train` command as a plain function.

    given: names of the TrainConfig / ModelConfig fields the user set explicitly; with --resume
    or --init they must agree with the run / model they continue (TrainUsageError otherwise),
    except RESUME_FREE_FIELDS, which a resumed run may change.

    With a time budget, the command exports once before training (the initial weights) to
    measure what the export costs, reserves that for each exported candidate, and trains until
    the budget less the reserve; a candidate that would still overrun is skipped.
    """
    started = opts.started if opts.started is not None else time.monotonic()
    budget = opts.time_budget
    chosen = [n for n, v in (("--resume", opts.resume), ("--init", opts.init),
                             ("--export-from", opts.export_from)) if v is not None]  # fmt: skip
    if len(chosen) > 1:
        raise TrainUsageError(f"{chosen[0]} and {chosen[1]} exclude each other")
    cfg, model_config = opts.config, opts.model_config
    if budget > 0 and "steps" not in given:  # the clock ends the run, as with --steps 0
        cfg, given = replace(cfg, steps=0), {*given, "steps"}
    state, init_weights, init_desc = None, None, None
    from_state = opts.resume or opts.export_from
    if from_state is not None:
        state = read_state(from_state)
    out = opts.out_dir
    if out is None:
        if from_state is None:
            raise TrainUsageError("give the run directory with --out")
        out = Path(from_state).parent
    _check_options(opts, out)
    data_roots = list(opts.data)
    if not data_roots:
        if state is None:
            raise TrainUsageError("give the training images (DATA)")
        data_roots = _recorded_data(state, "resumed run" if opts.resume else "training state")

    if opts.export_from is not None:
        cfg, model_config = state.train_config, state.model_config
        if state.step == 0:
            raise AecError(f"{opts.export_from}: the run has not trained a step yet")
        note(f"exporting the model of {opts.export_from} (step {state.step})")
    elif opts.resume is not None:
        _conflicts(given, MODEL_FIELDS, model_config, state.model_config, "the resumed run")
        _conflicts(given, RUN_FIELDS, cfg, state.train_config, "the resumed run")
        free = {k: getattr(cfg, k) for k in RESUME_FREE_FIELDS if k in given}
        cfg = replace(state.train_config, **free)
        model_config = state.model_config
        if 0 < cfg.steps < state.step:
            raise TrainUsageError(f"--steps {cfg.steps} is below the run's step {state.step}")
        if cfg.steps != state.train_config.steps and cfg.steps > 0:
            note(
                f"--steps {cfg.steps}: the schedule now ends at step {cfg.steps} "
                f"instead of {state.train_config.steps}"
            )
        for name in ("lr", "lr_final"):
            if getattr(cfg, name) != getattr(state.train_config, name):
                note(
                    f"--{name.replace('_', '-')} {getattr(cfg, name):g} replaces the run's "
                    f"{getattr(state.train_config, name):g} from step {state.step} on"
                )
        total = f" of {cfg.steps}" if cfg.steps > 0 else ""
        note(f"resuming {opts.resume} at step {state.step}{total}")
    elif opts.init is not None:
        init_config, init_weights, init_desc = read_init(opts.init)
        _conflicts(given, MODEL_FIELDS, model_config, init_config, "the --init model")
        model_config = init_config
        note(f"starting from the weights of {init_desc}")
    if opts.export_from is None and cfg.steps <= 0 and budget <= 0 and cfg.train_seconds <= 0:
        raise TrainUsageError("--steps 0 means no step limit: give a --time-budget")

    device = resolve_device(opts.device)
    training = opts.export_from is None
    if training:
        note(f"training on {describe(device)}: {_precision(device, opts.bf16)}")
        if opts.bf16 and device.type != "cuda":
            warn("--bf16 on the CPU is usually slower than float32")
        images, sources = load_dataset(data_roots, cfg.patch_size, warn)
        files = sum(s.files for s in sources)
        note(f"{len(images)} training images from {files} files")
        if state is not None and state.data and state.data != [asdict(s) for s in sources]:
            warn("the training data differ from the resumed run's: the data order will too")
        calibration = images[:CALIBRATION_IMAGES]
    else:
        calibration, sources = _calibration_images(data_roots, cfg.patch_size, warn), []
    valid_images, valid_sources = [], []
    for root in opts.valid:
        found = load_valid_images([root], warn)
        valid_images += found
        valid_sources.append({"path": str(Path(root).resolve()), "images": len(found)})
    if valid_images:
        note(f"{len(valid_images)} validation images")

    validator = None
    if valid_images:

        def validator(model: HyperpriorModel, step: int) -> ValidationResult:
            calib = calibration[:VALID_CALIBRATION_IMAGES]
            return _validate_model(
                model, calib, valid_images, cfg.valid_qualities, device=device, step=step
            )

    out.mkdir(parents=True, exist_ok=True)
    command = opts.command or "aecompress train"
    run_info = dict(state.run_info) if state is not None else {}
    if init_desc:
        run_info["init"] = init_desc
    if training:
        session = {"command": command, "from_step": state.step if state else 0}
        session["device"] = describe(device)
        run_info["sessions"] = [*run_info.get("sessions", []), session]
    sessions = run_info.get("sessions") or [{"command": command}]
    recorded = [asdict(s) for s in sources] if sources else (state.data if state else [])
    provenance = {
        "command": sessions[0]["command"],  # the one that started the run
        "train_config": json.dumps(asdict(cfg), sort_keys=True),
        "data": json.dumps(recorded),
        "images": str(sum(d.get("images", 0) for d in recorded)),
        "device": sessions[-1].get("device", describe(device)),
        "precision": _precision(device, opts.bf16),
        "torch": str(torch.__version__),
        "aecompress": __version__,
    }
    if run_info.get("init"):
        provenance["init"] = run_info["init"]
    if len(sessions) > 1:
        provenance["sessions"] = json.dumps(sessions)
    if valid_sources:
        provenance["valid_data"] = json.dumps(valid_sources)
    if budget > 0 and training:
        provenance["time_budget"] = f"{budget:g}"
    if opts.export_from is not None:
        provenance["exported_from"] = f"{opts.export_from} (step {state.step})"

    def export(model: HyperpriorModel, step: int, seconds: float):
        ckpt = export_trained(
            frozen_copy(model), calibration, opts.model_id, dict(provenance), device
        )
        val = None
        if valid_images:
            val = validate_checkpoint(
                ckpt, valid_images, cfg.valid_qualities, device=device, step=step
            )
            val = replace(val, train_seconds=seconds)
        return ckpt, val

    if training:
        start = f"resume at step {state.step}" if state is not None else "start"
        append_log(out, f"{start}: {command}")
        append_log(out, f"device {describe(device)}; {_precision(device, opts.bf16)}")
    deadline, per_export = None, 0.0
    if training and budget > 0:
        deadline, per_export = _plan_budget(
            opts, cfg, model_config, state, init_weights, export, started, bool(valid_images)
        )
        train_s = deadline - time.monotonic()
        note(
            f"time budget {format_duration(budget)}: {format_duration(train_s)} of training, "
            f"{format_duration(started + budget - deadline)} kept for the export "
            f"({per_export:.1f} s per exported candidate, measured)"
        )
        append_log(out, f"time budget {budget:.1f} s; training until {train_s:.1f} s from now")

    if training:
        data = ImageSet(images, device)
        del images
        result = train(
            data, out, model_config, cfg, resume=state, log=None, device=device,
            bf16=opts.bf16, init_weights=init_weights, validator=validator, reporter=reporter,
            data_sources=sources, run_info=run_info, deadline=deadline,
        )  # fmt: skip
        del data
    else:
        result = _result_from_state(state)
    provenance["steps"] = str(result.step)
    provenance["wall_seconds"] = f"{result.elapsed:.0f}"
    if result.steps_per_s > 0:
        mp = result.steps_per_s * cfg.batch_size * cfg.patch_size**2 / 1e6
        provenance["speed"] = f"{result.steps_per_s:.2f} it/s, {mp:.2f} MP/s"

    def affordable(what: str) -> bool:
        """Whether one more candidate fits in the budget (always, without one)."""
        if deadline is None or time.monotonic() + per_export * EXPORT_SAFETY <= started + budget:
            return True
        append_log(out, f"skipped exporting the {what}: it would overrun the time budget")
        note(f"skipped exporting the {what}: it would overrun the time budget")
        return False

    note("exporting" + (" and validating" if valid_images else ""))
    # The average is usually the better model after the anneal: it goes first, so that a
    # budget that allows one candidate only exports it.
    candidates = [(result.averaged, "average"), (result.model, "last")]
    candidates = [(m, kind) for m, kind in candidates if m is not None]
    if not valid_images:
        candidates = candidates[:1]  # nothing to compare on
    ckpt, validation, weights_kind = None, None, ""
    for model, kind in candidates:
        if ckpt is not None and not affordable(f"{kind} weights"):
            break
        ckpt_c, val_c = export(model, result.step, result.elapsed)
        if ckpt is None or val_c.score < validation.score:
            ckpt, validation, weights_kind = ckpt_c, val_c, kind
    selected = result.step
    best = result.best
    if validation is not None and best is not None and best["step"] != result.step:
        comparable = best.get("images") == validation.images
        if (
            comparable
            and best["score"] < validation.score
            and (out / BEST_FILE).is_file()
            and affordable("best validation's weights")
        ):
            config, weights, _ = read_init(out / BEST_FILE)
            ckpt_b, val_b = export(_model_with(config, weights), best["step"], result.elapsed)
            if val_b.score < validation.score:
                ckpt, validation, selected = ckpt_b, val_b, best["step"]
                weights_kind = "best validation"
    ckpt.provenance["selected_step"] = str(selected)
    ckpt.provenance["selected_weights"] = weights_kind
    ckpt.provenance["created"] = _timestamp()
    if validation is not None:
        ckpt.provenance["validation"] = validation.to_json()
        line = f"final validation {validation.summary()}"
        append_log(out, line + f" (weights of step {selected})")
        note(line)
    save_checkpoint(ckpt, out / MODEL_FILE)
    write_model_card(ckpt, out / CARD_FILE)
    append_log(out, f"exported {out / MODEL_FILE} ({ckpt.model_id}, {ckpt.fingerprint.hex()})")
    return RunReport(
        model_path=out / MODEL_FILE,
        card_path=out / CARD_FILE,
        model_id=ckpt.model_id,
        fingerprint=ckpt.fingerprint.hex(),
        steps=result.step,
        selected_step=selected,
        elapsed=result.elapsed,
        validation=validation,
        steps_per_s=result.steps_per_s,
    )


def _plan_budget(
    opts: TrainOptions,
    cfg: TrainConfig,
    model_config: ModelConfig,
    state: TrainingState | None,
    init_weights: Mapping[str, torch.Tensor] | None,
    export: Callable[[HyperpriorModel, int, float], Any],
    started: float,
    validating: bool,
) -> tuple[float, float]:
    """(deadline, seconds per exported candidate): exports the starting weights once to time
    the export (which also proves it works before the budget is spent), and keeps room for
    the candidates the end of the run will export and the files it writes."""
    if state is not None:
        model = _model_with(state.model_config, state.model)
    else:
        with torch.random.fork_rng(devices=[]):
            model = build_model(model_config, cfg, init_weights)
    t0 = time.monotonic()
    export(model, state.step if state is not None else 0, 0.0)
    per_export = time.monotonic() - t0
    periodic = validating and (cfg.valid_every > 0 or cfg.valid_seconds > 0)
    candidates = 1 + (validating and cfg.ema_decay > 0) + periodic
    files = max(1.0, 0.01 * opts.time_budget)  # state.pt, model.pt, card
    deadline = started + opts.time_budget - candidates * per_export * EXPORT_SAFETY - files
    left = deadline - time.monotonic()
    if left < 0.1 * opts.time_budget:
        spent = time.monotonic() - started
        raise TrainUsageError(
            f"--time-budget {format_duration(opts.time_budget)} leaves "
            f"{format_duration(max(0.0, left))} of training: loading and a trial export took "
            f"{spent:.1f} s and the export needs about {per_export:.1f} s per candidate "
            f"({candidates}); give more time"
        )
    return deadline, per_export


def _calibration_images(
    roots: Sequence[Path], min_size: int, warn: Callable[[str], None]
) -> list[torch.Tensor]:
    """The first CALIBRATION_IMAGES usable training images, as a full run picks them."""
    images: list[torch.Tensor] = []
    for path in find_images(roots, patterns=False):
        image, why = _decode_one(path, min_size)
        if image is None:
            warn(why)
            continue
        images.append(image)
        if len(images) == CALIBRATION_IMAGES:
            break
    if not images:
        raise AecError(f"no usable training images found in {', '.join(map(str, roots))}")
    return images
