"""The run's state files: state.pt, everything a run needs to continue, and best.pt, the
weights of the best validation; written atomically, and read back for --resume, --init and
--export-from.

state.pt holds the model, optimizer, step, schedule progress, RNG states (Python, torch CPU,
CUDA), the recipe's running parts, the validations so far and the wall time. On the CPU a
resumed run is bit-identical to an uninterrupted one; CUDA kernels are not bitwise
deterministic, so there it is the same run up to float rounding.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..checkpoint import CHECKPOINT_FORMAT, load_checkpoint, read_torch_file
from ..config import TrainConfig
from ..errors import AecError
from ..fileio import write_atomic
from ..model import HyperpriorModel, ModelConfig

if TYPE_CHECKING:
    from ..validate import ValidationResult

STATE_FORMAT = "aecompress-training-state"
STATE_VERSION = 2
# The run directory: the files written here, and those of the export (run.py), named in one place.
STATE_FILE = "state.pt"
BEST_FILE = "best.pt"
MODEL_FILE = "model.pt"
CARD_FILE = "MODEL_CARD.md"


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


def model_from_weights(config: ModelConfig, weights: Mapping[str, torch.Tensor]) -> HyperpriorModel:
    """A CPU model holding saved `weights`, in eval mode (building it leaves the RNG untouched,
    so a resumed run draws what an uninterrupted one would)."""
    with torch.random.fork_rng(devices=[]):
        model = HyperpriorModel(config)
    model.load_state_dict(weights)
    return model.eval()


def _cpu(obj):
    """A copy of a (nested) state dict with every tensor on the CPU, contiguous."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu").contiguous()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_cpu(v) for v in obj)
    return obj


def save_state(path: Path, state: TrainingState) -> None:
    """Write state.pt atomically: a reader (or a run killed while saving) sees the previous
    file or the whole new one. Model and optimizer tensors are stored contiguous on the CPU."""
    payload: dict[str, Any] = {"format": STATE_FORMAT, "version": STATE_VERSION}
    payload.update({f.name: getattr(state, f.name) for f in fields(state)})
    payload["model_config"] = state.model_config.to_dict()
    payload["train_config"] = asdict(state.train_config)
    payload["model"] = _cpu(state.model)
    payload["optimizer"] = _cpu(state.optimizer)
    write_atomic(Path(path), lambda f: torch.save(payload, f), force=True)


def save_best(
    path: Path, model: HyperpriorModel, cfg: TrainConfig, step: int, result: ValidationResult
) -> None:
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
    write_atomic(Path(path), lambda f: torch.save(payload, f), force=True)
