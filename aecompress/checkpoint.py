"""The shippable checkpoint: config, fp16 weights, integer tables, provenance — one file.

Loading never infers shapes (the config is stored) and never recomputes a table (the integer
PMFs and the integer scale network are stored as exported). The fingerprint is a hash of
everything that influences decoding, so a file names the exact weights that decode it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .errors import CheckpointError
from .fileio import write_atomic
from .intnet import IntegerScaleNetwork
from .intnet import export as export_scale_network
from .model import HyperpriorModel, ModelConfig
from .modelfile import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    FINGERPRINT_GROUPS,
    CheckpointIdentity,
    TensorBytes,
    fingerprint,
)
from .tables import PmfTables, factorized_tables, gaussian_tables, scale_table


@dataclass
class Checkpoint:
    model_id: str
    model: HyperpriorModel  # float32, eval mode, on the CPU
    z_tables: PmfTables  # one table per channel of z
    y_tables: PmfTables  # one table per scale index
    scale_network: IntegerScaleNetwork
    provenance: dict[str, str] = field(default_factory=dict)
    fingerprint: bytes = b""  # 8 bytes, filled by `to_payload` / `load_checkpoint`

    @property
    def config(self) -> ModelConfig:
        return self.model.config


def export_checkpoint(
    model: HyperpriorModel,
    calibration_z: list[torch.Tensor],
    model_id: str,
    provenance: dict[str, str] | None = None,
) -> Checkpoint:
    """Freeze a trained model: integer tables for z and y, integer scale network, fp16 weights.

    calibration_z: z_hat tensors (1×Nh×h×w, integer-valued) from representative images, used
    to size the integer network's activations.
    """
    c = model.config
    model = round_to_fp16(model.cpu().eval())
    ckpt = Checkpoint(
        model_id=model_id,
        model=model,
        z_tables=factorized_tables(model.density_z),
        y_tables=gaussian_tables(scale_table(c.scale_min, c.scale_max, c.num_scales)),
        scale_network=export_scale_network(
            model.h_s_scale, calibration_z, c.scale_min, c.scale_max, c.num_scales
        ),
        provenance=dict(provenance or {}),
    )
    ckpt.fingerprint = _fingerprint(_payload(ckpt))
    return ckpt


def round_to_fp16(model: HyperpriorModel) -> HyperpriorModel:
    """Round every weight to fp16 and back, in place: exports calibrate and validate the
    weights that will be shipped, not the float32 ones."""
    model.load_state_dict({k: v.half().float() for k, v in model.state_dict().items()})
    return model


def _payload(ckpt: Checkpoint) -> dict:
    return {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model_id": ckpt.model_id,
        "config": ckpt.config.to_dict(),
        "weights": {k: v.detach().half() for k, v in ckpt.model.state_dict().items()},
        "z_tables": ckpt.z_tables.to_tensors(),
        "y_tables": ckpt.y_tables.to_tensors(),
        "scale_network": ckpt.scale_network.to_tensors(),
        "provenance": dict(ckpt.provenance),
    }


def _fingerprint(payload: dict) -> bytes:
    """`modelfile.fingerprint` of the payload's tensors (which reads files without torch). The
    tensors' memory is hashed where it lies, not copied to bytes first."""
    groups = {
        group: {
            name: TensorBytes(str(t.dtype), tuple(t.shape), _buffer(t))
            for name, t in payload[group].items()
        }
        for group in FINGERPRINT_GROUPS
    }
    return fingerprint(payload["model_id"], payload["config"], groups)


def _buffer(t: torch.Tensor) -> memoryview:
    """The elements' bytes in C order, as a view (of a contiguous copy if need be)."""
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: the same 2 bytes as int16
        t = t.view(torch.int16)
    return memoryview(t.contiguous().numpy().reshape(-1).view(np.uint8))


def save_checkpoint(ckpt: Checkpoint, path: Path) -> None:
    """Write the model file atomically, replacing `path` if it exists."""
    payload = _payload(ckpt)
    write_atomic(Path(path), lambda f: torch.save(payload, f), force=True)


def read_torch_file(
    path: Path, what: str, error: type[Exception] = CheckpointError, mmap: bool = False
) -> dict:
    """The dict in a torch file, loaded safely (weights_only: no code runs) on the CPU.

    mmap: map the file's tensors instead of reading them (the default model's file in 7 ms
    instead of 24 on the 2-core CPU: benchmarks/startup.md); the caller then copies what it
    keeps, so that nothing refers to a file that may be replaced later. A file torch cannot
    map is read as usual.

    Raises `error` with one line for a missing file, a file torch cannot read, or one that
    does not hold a dict; `what` names the expected kind of file in those messages.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} not found: {path}")
    payload = None
    if mmap:
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception:  # not a zip-format file, or not mappable: the plain read decides
            payload = None
    try:
        if payload is None:
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a bad file
        raise error(f"{path}: not a readable {what} ({type(e).__name__})") from e
    if not isinstance(payload, dict):
        raise error(f"{path}: not a {what}")
    return payload


def _read_payload(path: Path) -> dict:
    """A model file's payload, its tensors mapped from the file (copy what is kept)."""
    payload = read_torch_file(path, "aecompress model file", mmap=True)
    if payload.get("format") != CHECKPOINT_FORMAT:
        if "model_config" in payload and "model" in payload:  # training.state's state/best.pt
            raise CheckpointError(
                f"{path}: a training state, not a model file; use the run's model.pt, or "
                f"export one with `aecompress train --export-from {path.parent / 'state.pt'}`"
            )
        raise CheckpointError(f"{path}: not an aecompress model file")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: model file version {payload.get('version')} is not supported "
            f"(this build reads version {CHECKPOINT_VERSION})"
        )
    return payload


def read_identity_with_torch(path: Path) -> CheckpointIdentity:
    """Model id, fingerprint and provenance of a checkpoint file (no network is built); the
    slow path of `modelfile.read_identity`, which also words its errors."""
    payload = _read_payload(path)
    try:
        return CheckpointIdentity(
            model_id=str(payload["model_id"]),
            fingerprint=_fingerprint(payload),
            provenance={str(k): str(v) for k, v in payload.get("provenance", {}).items()},
        )
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as e:
        raise CheckpointError(f"{path}: inconsistent model file ({e})") from e


def load_checkpoint(path: Path) -> Checkpoint:
    """The model in a model file, float32 on the CPU in eval mode, with its tables.

    The file's weights (fp16) become the parameters as float32 copies (assign: not copied a
    second time into the initial ones). Building the network on the meta device instead, to
    skip its random initialisation (30 ms), would cost more: torch's meta path imports
    torch._dynamo on first use (1.3 s)."""
    payload = _read_payload(path)
    try:
        config = ModelConfig.from_dict(payload["config"])
        model = HyperpriorModel(config)
        weights = {k: v.to(torch.float32, copy=True) for k, v in payload["weights"].items()}
        model.load_state_dict(weights, assign=True)
        ckpt = Checkpoint(
            model_id=payload["model_id"],
            model=model.eval(),
            z_tables=PmfTables.from_tensors(_copied(payload["z_tables"])),
            y_tables=PmfTables.from_tensors(_copied(payload["y_tables"])),
            scale_network=IntegerScaleNetwork.from_tensors(_copied(payload["scale_network"])),
            provenance=dict(payload.get("provenance", {})),
        )
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: inconsistent model file ({e})") from e
    for p in ckpt.model.parameters():
        p.requires_grad_(False)
    ckpt.fingerprint = _fingerprint(payload)
    return ckpt


def _copied(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Copies of mapped tensors (`_read_payload`), for what the checkpoint keeps."""
    return {k: v.clone() for k, v in tensors.items()}
