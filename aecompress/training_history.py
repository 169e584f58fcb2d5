"""The whole training history of a model: every `train` run that made its weights.

A model is often the last of a chain of runs, each started from the one before (`--init`):
`aec-hp-n128-gpu-2026.12b` is 8,745 steps on top of the 21,024 of `aec-hp-n128-gpu-2026.12`.
Its checkpoint's provenance describes the last run (steps, wall seconds, device, and the model it
started from); the earlier runs travel with it as the provenance's "history" field, a JSON list
of runs that `train --init` writes from the starting model's own history. Model files written
before that field existed (the shipped ones are never rewritten) have their earlier runs
recorded in the package index (pretrained/models.json, "history") instead.

Torch-free: `aecompress models` reads this without loading any network.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

HISTORY_KEY = "history"  # provenance key: JSON list of the runs before the last one


@dataclass(frozen=True)
class TrainingRun:
    """One `train` run (or an equivalent script) in a model's history."""

    model_id: str  # the model the run exported
    steps: int
    seconds: float  # wall-clock time of the run
    device: str  # e.g. "cuda (NVIDIA H200)", "cpu (2 threads)"

    @classmethod
    def from_dict(cls, d: Mapping) -> TrainingRun:
        return cls(
            model_id=str(d["model_id"]),
            steps=int(d["steps"]),
            seconds=float(d["seconds"]),
            device=str(d.get("device", "")),
        )


@dataclass(frozen=True)
class TrainingTotals:
    runs: int
    steps: int
    seconds: float
    devices: tuple[str, ...]  # distinct short device names in order of first use ("cuda", "cpu")


def last_run(model_id: str, provenance: Mapping[str, str]) -> TrainingRun | None:
    """The run a checkpoint's provenance describes, or None where it records no steps."""
    try:
        steps = int(provenance["steps"])
        seconds = float(provenance.get("wall_seconds", "nan"))
    except (KeyError, ValueError):
        return None
    return TrainingRun(model_id, steps, seconds, provenance.get("device", ""))


def parse_runs(text: str) -> tuple[TrainingRun, ...]:
    """Runs from their JSON form (the provenance's "history"); ValueError if malformed."""
    try:
        return tuple(TrainingRun.from_dict(d) for d in json.loads(text))
    except (TypeError, KeyError, AttributeError, json.JSONDecodeError) as e:
        raise ValueError(f"malformed training history ({e!r})") from e


def dump_runs(runs: Sequence[TrainingRun]) -> str:
    return json.dumps([asdict(r) for r in runs], sort_keys=True)


def history(
    model_id: str,
    provenance: Mapping[str, str],
    recorded: Sequence[TrainingRun] = (),
) -> tuple[TrainingRun, ...]:
    """Every run that made a model, oldest first.

    `recorded` is the package index's history for the model, used when the checkpoint carries
    none (files written before the provenance had the field). A malformed field counts as
    absent rather than failing a listing."""
    earlier: tuple[TrainingRun, ...] = ()
    if HISTORY_KEY in provenance:
        try:
            earlier = parse_runs(provenance[HISTORY_KEY])
        except ValueError:
            earlier = ()
    if not earlier and recorded:
        return tuple(recorded)  # the index records the whole chain, the last run included
    last = last_run(model_id, provenance)
    return earlier + ((last,) if last else ())


def totals(runs: Sequence[TrainingRun]) -> TrainingTotals:
    devices: list[str] = []
    for r in runs:
        short = r.device.split(" (")[0] if r.device else "?"
        if short not in devices:
            devices.append(short)
    return TrainingTotals(
        runs=len(runs),
        steps=sum(r.steps for r in runs),
        seconds=sum(r.seconds for r in runs if r.seconds == r.seconds),  # NaN: not recorded
        devices=tuple(devices),
    )


# The provenance's "init": "PATH (model ID, FINGERPRINT)", as `train --init` writes it.
_INIT = re.compile(r"^(?P<path>.*) \(model (?P<model_id>\S+), (?P<fingerprint>[0-9a-f]{16})\)$")
_MAX_CHAIN = 256  # more runs than any real chain: a guard against a cycle of files


def file_history(path: Path, recorded: RecordedHistory | None = None) -> tuple[TrainingRun, ...]:
    """Every run that made the model file at `path`, oldest first.

    Where the file carries no history (written before the field existed), the chain is followed
    through each provenance's "init" to the file it started from, while that file still exists
    and holds the weights named there, else to what the index records for those weights.
    `recorded(model_id, fingerprint)` gives the index's record (default: the shipped index)."""
    from .modelfile import read_identity

    lookup = recorded or _package_record
    runs: list[TrainingRun] = []
    for _ in range(_MAX_CHAIN):
        ident = read_identity(path)
        p = ident.provenance
        known = lookup(ident.model_id, ident.fingerprint.hex())
        if HISTORY_KEY in p or known:
            return history(ident.model_id, p, known) + tuple(runs)
        last = last_run(ident.model_id, p)
        runs[:0] = [last] if last else []
        start = _INIT.match(p.get("init", ""))
        if start is None:
            break
        earlier = Path(start["path"])
        if _holds(earlier, start["model_id"], start["fingerprint"]):
            path = earlier
            continue
        return lookup(start["model_id"], start["fingerprint"]) + tuple(runs)
    return tuple(runs)


RecordedHistory = Callable[[str, str], tuple[TrainingRun, ...]]


def _holds(path: Path, model_id: str, fingerprint: str) -> bool:
    from .errors import CheckpointError
    from .modelfile import read_identity

    try:
        ident = read_identity(path)
    except (CheckpointError, OSError):
        return False
    return ident.model_id == model_id and ident.fingerprint.hex() == fingerprint


def _package_record(model_id: str, fingerprint: str) -> tuple[TrainingRun, ...]:
    from .errors import CheckpointError
    from .registry import read_index

    try:
        index = read_index()
    except CheckpointError:
        return ()
    for m in index.models:
        if m.model_id == model_id and m.fingerprint == fingerprint:
            return m.history
    return ()
