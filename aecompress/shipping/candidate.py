"""The candidate as it would ship, and every refusal that needs no measuring."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from ..container import MAX_MODEL_ID_LEN
from ..errors import AecError
from ..registry import INDEX_FILE, ModelFile, PackageIndex, read_index
from .common import RepoLayout, ShipRequest

# One model file: what a device call can bring back, and the package's per-file budget.
MAX_MODEL_BYTES = 16 * 2**20
# All shipped model files together: every one of them is installed with the package.
MAX_PRETRAINED_BYTES = 40 * 2**20

_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

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


def mebibytes(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def check_sizes(pretrained: Path, size: int) -> None:
    # The limits are read here, at call time, so that tests can lower them.
    if size > MAX_MODEL_BYTES:
        raise AecError(
            f"the model file is {mebibytes(size)} ({size:,} bytes), over the "
            f"{mebibytes(MAX_MODEL_BYTES)} limit for one shipped model"
        )
    total = size + sum(p.stat().st_size for p in pretrained.glob("*.pt"))
    if total > MAX_PRETRAINED_BYTES:
        raise AecError(
            f"pretrained/ would hold {mebibytes(total)} of models, over the "
            f"{mebibytes(MAX_PRETRAINED_BYTES)} limit; removing an older model is a deliberate "
            "step (pretrained/README.md)"
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
