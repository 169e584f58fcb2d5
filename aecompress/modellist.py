"""`aecompress models`: every available model, described from its file and the index.

Model files are read with `modelfile.read_identity`, without torch where it can.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from .errors import CheckpointError
from .modelcard import describe_data
from .modelfile import read_identity
from .registry import ModelLibrary
from .training_history import file_history, totals


@dataclass
class ModelReport:
    model_id: str
    fingerprint: str
    file: str
    source: str  # where it was found: package, $AECOMPRESS_MODELS, $AECOMPRESS_MODEL, --model
    bytes: int
    default: bool  # what `encode` uses without --model
    trained_on: str | None  # from the checkpoint's provenance
    images: int | None
    steps: str | None  # of the last run
    training_seconds: float | None  # of the last run
    device: str | None  # of the last run
    runs: list[dict]  # every run that made the weights, oldest first: {model_id, steps, ...}
    total_steps: int | None  # over all runs
    total_seconds: float | None  # over all runs
    total_devices: list[str]  # short names, in order of first use
    kodak: list[dict]  # [{quality, bpp, psnr}] measured on Kodak, where the index records it
    kodak_command: str | None

    def to_dict(self) -> dict:
        return asdict(self)


def list_models(library: ModelLibrary) -> list[ModelReport]:
    """Every available model, in search order, described from its checkpoint and the index.

    A file whose weights do not match its index entry is left out and noted in
    library.problems."""
    try:
        default = os.path.realpath(library.encoder_model())
    except CheckpointError as e:
        library.problems.append(str(e))
        default = None
    reports = []
    for m in library.available():
        ident = read_identity(m.path)
        if ident.fingerprint.hex() != m.fingerprint or ident.model_id != m.model_id:
            library.problems.append(
                f"{m.path}: holds model {ident.model_id} ({ident.fingerprint.hex()}), but "
                f"the index lists {m.model_id} ({m.fingerprint})"
            )
            continue
        p = ident.provenance
        seconds = p.get("wall_seconds")
        images = p.get("images")
        runs = file_history(m.path)
        whole = totals(runs)
        reports.append(
            ModelReport(
                model_id=m.model_id,
                fingerprint=m.fingerprint,
                file=os.path.abspath(m.path),
                source=m.source,
                bytes=m.path.stat().st_size,
                default=os.path.realpath(m.path) == default,
                trained_on=describe_data(p),
                images=int(images) if images and images.isdigit() else None,
                steps=p.get("steps"),
                training_seconds=float(seconds) if _is_number(seconds) else None,
                device=p.get("device"),
                runs=[asdict(r) for r in runs],
                total_steps=whole.steps if runs else None,
                total_seconds=whole.seconds if runs else None,
                total_devices=list(whole.devices),
                kodak=[asdict(k) for k in m.kodak],
                kodak_command=m.kodak_command or None,
            )
        )
    return reports


def _is_number(text: str | None) -> bool:
    try:
        float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True
