"""The end of a run: the candidates exported and measured, the one to ship chosen, the verdict
on it (`outcome.judge`), and model.pt and MODEL_CARD.md written, or the start kept.

Of the candidates (the weight average, the last weights, those of the best periodic
validation) the one with the best validation score is shipped; without --valid only the
average is exported (nothing to compare them on), and measured on a few training images.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..checkpoint import Checkpoint, save_checkpoint
from ..fileio import write_atomic
from ..model import HyperpriorModel
from ..modelcard import write_model_card
from ..validate import ValidationResult
from .loop import TrainResult, append_log, timestamp
from .outcome import MeasureSet, Verdict, judge
from .progress import Reporter
from .state import BEST_FILE, CARD_FILE, MODEL_FILE, STATE_FILE, model_from_weights, read_init


class Stages:
    """The stages of one export, counted for the reporter: each call starts the next."""

    def __init__(self, reporter: Reporter, name: str, total: int):
        self.reporter, self.name, self.total, self.done = reporter, name, total, 0

    def __call__(self, text: str) -> None:
        self.reporter.export_stage(f"{self.name}: {text}", self.done, self.total)
        self.done += 1


class Exporter(Protocol):
    """Exports a model as it would be shipped and measures it through the real codec."""

    measure_set: MeasureSet
    provenance: dict[str, str]

    @property
    def stages(self) -> int: ...

    def __call__(
        self, model: HyperpriorModel, step: int, seconds: float, stage: Stages, kind: str
    ) -> tuple[Checkpoint, ValidationResult]: ...


@dataclass
class Start:
    """The model a --init run started from, measured on the images the result is measured on."""

    description: str  # where it comes from, as the provenance's "init" says
    measured: ValidationResult
    checkpoint: Checkpoint  # what model.pt becomes when the start is kept
    file: Path | None = None  # the start's model file, copied unchanged when it is kept


@dataclass
class RunReport:
    model_path: Path
    card_path: Path
    model_id: str
    fingerprint: str
    steps: int
    selected_step: int
    elapsed: float
    validation: ValidationResult | None  # of the exported weights on --valid (None without)
    steps_per_s: float = 0.0  # of this session's training (0: none)
    measured: ValidationResult | None = None  # the trained weights, on `measured_on`
    measured_on: str = ""  # the images: --valid's, or a few training images
    validated: bool = False  # measured on --valid images (else a check on training images)
    start: ValidationResult | None = None  # the start on the same images (--init)
    kept_start: bool = False  # model.pt is the start: the trained weights did not beat it
    summary: str = ""  # what was measured and how it came out, in one sentence
    warnings: tuple[str, ...] = ()  # far worse than the start, far from usable: said loudly


def export_run(
    out: Path,
    result: TrainResult,
    export: Exporter,
    affords_export: Callable[[], bool],
    start: Start | None,
    export_always: bool,
    reporter: Reporter,
    note: Callable[[str], None],
    detail: Callable[[str], None],
) -> RunReport:
    """Export the candidates, keep the best validated one, judge it (against the start when
    there is one), and write model.pt and its card."""

    def affordable(what: str) -> bool:
        if affords_export():
            return True
        append_log(out, f"skipped exporting the {what}: it would overrun the time budget")
        note(f"skipped exporting the {what}: it would overrun the time budget")
        return False

    validating = export.measure_set.validation
    # The average is usually the better model after the anneal: it goes first, so that a
    # budget that allows one candidate only exports it.
    candidates = [(result.averaged, "average"), (result.model, "last")]
    candidates = [(m, kind) for m, kind in candidates if m is not None]
    if not validating:
        candidates = candidates[:1]  # nothing to compare them on
    # The stages as far as known: the candidates', and writing the files; the best periodic
    # validation's weights add theirs when they are tried, a skipped candidate takes its off.
    stages = Stages(reporter, "export", len(candidates) * export.stages + 1)

    def candidate(model: HyperpriorModel, step: int, label: str):
        ckpt_c, val_c = export(model, step, result.elapsed, stages, label)
        if validating:
            detail(f"export: {label} weights: validation {val_c.summary()}")
        return ckpt_c, val_c

    try:
        ckpt, measured, weights_kind, compared = None, None, "", []
        for i, (model, kind) in enumerate(candidates):
            if ckpt is not None and not affordable(f"{kind} weights"):
                stages.total -= (len(candidates) - i) * export.stages
                break
            ckpt_c, val_c = candidate(model, result.step, kind)
            compared.append(kind)
            if ckpt is None or val_c.score < measured.score:
                ckpt, measured, weights_kind = ckpt_c, val_c, kind
        selected = result.step
        best = result.best
        if validating and best is not None and best["step"] != result.step:
            comparable = best.get("images") == measured.images
            if (
                comparable
                and best["score"] < measured.score
                and (out / BEST_FILE).is_file()
                and affordable("best validation's weights")
            ):
                config, weights, _ = read_init(out / BEST_FILE)
                model = model_from_weights(config, weights)
                stages.total += export.stages
                ckpt_b, val_b = candidate(model, best["step"], f"step {best['step']}")
                compared.append("best validation")
                if val_b.score < measured.score:
                    ckpt, measured, selected = ckpt_b, val_b, best["step"]
                    weights_kind = "best validation"
        verdict = judge(
            measured, export.measure_set, result.step,
            start.measured if start is not None else None, export_always,
        )  # fmt: skip
        stages(f"writing {MODEL_FILE} and {CARD_FILE}")
        ckpt.provenance["selected_step"] = str(selected)
        ckpt.provenance["selected_weights"] = weights_kind
        ckpt.provenance["selection"] = json.dumps(compared)
        command = export.provenance.get("command", "")
        return _write(out, ckpt, selected, measured, export.measure_set, result, verdict, start,
                      command, note)  # fmt: skip
    finally:
        reporter.export_end()


def _record(
    provenance: dict[str, str],
    measured: ValidationResult,
    measure_set: MeasureSet,
    verdict: Verdict,
    start: Start | None,
) -> None:
    """What the run measured, into the exported model's provenance: its figures (a validation,
    or a check on training images), the comparison with the start, and the warnings."""
    if measure_set.validation:
        provenance["validation"] = measured.to_json()
    else:
        provenance["check"] = measured.to_json()
        provenance["check_data"] = measure_set.describe()
    provenance["outcome"] = verdict.summary
    if start is not None:
        provenance["start_comparison"] = _comparison(start, measured, measure_set)
    if verdict.warnings:
        provenance["warning"] = "\n".join(verdict.warnings)


def _comparison(start: Start, trained: ValidationResult, measure_set: MeasureSet) -> str:
    return json.dumps(
        {
            "start": start.description,
            "images": measure_set.describe(),
            "start_figures": start.measured.to_dict(),
            "trained_figures": trained.to_dict(),
        },
        sort_keys=True,
    )


def _write(
    out: Path,
    ckpt: Checkpoint,
    selected: int,
    measured: ValidationResult,
    measure_set: MeasureSet,
    result: TrainResult,
    verdict: Verdict,
    start: Start | None,
    command: str,
    note: Callable[[str], None],
) -> RunReport:
    """model.pt (the chosen candidate, or the start when it won) and its model card."""
    line = "final validation " if measure_set.validation else "final check "
    append_log(out, f"{line}{measured.summary()} (weights of step {measured.step})")
    note(f"{line}{measured.summary()}")
    append_log(out, verdict.summary)
    warnings = verdict.warnings
    if verdict.keep_start:
        kept = start.checkpoint
        warnings = (
            *warnings,
            f"the trained weights (step {result.step}) did not beat the start on "
            f"{measure_set.describe()} (score {measured.score:.4f} against "
            f"{start.measured.score:.4f}, lower is better): {out / MODEL_FILE} is the start, "
            f"{kept.model_id} ({kept.fingerprint.hex()}), unchanged; the trained weights stay "
            f"in {out / STATE_FILE} (export them anyway: aecompress train --export-from "
            f"{out / STATE_FILE} --force)",
        )
        _keep_start(out, start, measured, measure_set, result, command, warnings[-1])
        shipped, selected = kept, 0
    else:
        ckpt.provenance["created"] = timestamp()
        _record(ckpt.provenance, measured, measure_set, verdict, start)
        save_checkpoint(ckpt, out / MODEL_FILE)
        write_model_card(ckpt, out / CARD_FILE)
        shipped = ckpt
    for w in warnings:
        append_log(out, f"warning: {w}")
    ident = f"{shipped.model_id}, {shipped.fingerprint.hex()}"
    append_log(out, f"exported {out / MODEL_FILE} ({ident})")
    return RunReport(
        model_path=out / MODEL_FILE,
        card_path=out / CARD_FILE,
        model_id=shipped.model_id,
        fingerprint=shipped.fingerprint.hex(),
        steps=result.step,
        selected_step=selected,
        elapsed=result.elapsed,
        validation=measured if measure_set.validation else None,
        steps_per_s=result.steps_per_s,
        measured=measured,
        measured_on=measure_set.describe(),
        validated=measure_set.validation,
        start=start.measured if start is not None else None,
        kept_start=verdict.keep_start,
        summary=verdict.summary,
        warnings=warnings,
    )


def _keep_start(
    out: Path,
    start: Start,
    trained: ValidationResult,
    measure_set: MeasureSet,
    result: TrainResult,
    command: str,
    warning: str,
) -> None:
    """model.pt is the start: its model file copied byte for byte (same id and fingerprint),
    or, for a start that was a training state (or whose quality range or latent the run
    changed), the starting weights as exported. The card says what this run measured."""
    kept = start.checkpoint
    if start.file is not None:
        data = Path(start.file).read_bytes()
        write_atomic(out / MODEL_FILE, lambda f: f.write(data), force=True)
    else:
        kept.provenance["selected_step"] = "0"
        kept.provenance["selected_weights"] = "start"
        kept.provenance["created"] = timestamp()
        save_checkpoint(kept, out / MODEL_FILE)
    # A copied file keeps its own provenance; the card adds this run's measurement to it.
    card = Checkpoint(
        kept.model_id, kept.model, kept.z_tables, kept.y_tables, kept.scale_network,
        dict(kept.provenance), kept.fingerprint,
    )  # fmt: skip
    card.provenance["kept_by_run"] = json.dumps(
        {
            "command": command,
            "steps": result.step,
            "comparison": json.loads(_comparison(start, trained, measure_set)),
        },
        sort_keys=True,
    )
    card.provenance["warning"] = "\n".join(
        w for w in (kept.provenance.get("warning"), warning) if w
    )
    write_model_card(card, out / CARD_FILE)
