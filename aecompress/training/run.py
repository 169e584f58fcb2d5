"""The `aecompress train` command as a plain function (`run_training`): the options resolved
(options.py), the data loaded, the time budget planned, the training loop called, and the model
exported, validated and written with its card.

With a time budget the command exports once before training (the starting weights) to measure
what an export costs, reserves that for each candidate it will export, and trains until the
budget less the reserve; a candidate that would still overrun is skipped. Of the candidates
(the weight average, the last weights, those of the best periodic validation) the one with the
best validation score is shipped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from .. import __version__
from ..checkpoint import Checkpoint, save_checkpoint
from ..device import describe, resolve_device
from ..durations import format_duration
from ..errors import AecError
from ..export import export_trained
from ..imagesets import NamedImage, find_images
from ..model import HyperpriorModel
from ..modelcard import write_model_card
from ..validate import ValidationResult, frozen_copy, load_valid_images, validate_checkpoint
from ..validate import validate_model as _validate_model
from .data import DataSource, ImageSet, load_dataset, read_training_image
from .distributed import Coordinator, Repeated, launched, start
from .loop import TrainResult, append_log, build_model, timestamp, train
from .options import RunPlan, TrainOptions, TrainUsageError, plan_run
from .progress import Reporter, Silent
from .state import BEST_FILE, CARD_FILE, MODEL_FILE, TrainingState, model_from_weights, read_init

CALIBRATION_IMAGES = 64  # training images that size the integer network at the final export
VALID_CALIBRATION_IMAGES = 8  # ... and at each periodic validation's temporary export
# Headroom on the measured export time when the run reserves it inside a time budget.
EXPORT_SAFETY = 1.25


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


@dataclass
class _Inputs:
    """The images a run uses, loaded."""

    images: list[torch.Tensor]  # training images, 3×H×W uint8 (none when only exporting)
    sources: list[DataSource]  # how many each training root gave (none when only exporting)
    calibration: list[torch.Tensor]  # 3×H×W uint8: the training images exports calibrate on
    valid_images: list[NamedImage]
    valid_sources: list[dict]  # {"path", "images"} of each --valid root, for the provenance


class _Stages:
    """The stages of one export, counted for the reporter: each call starts the next."""

    def __init__(self, reporter: Reporter, name: str, total: int):
        self.reporter, self.name, self.total, self.done = reporter, name, total, 0

    def __call__(self, text: str) -> None:
        self.reporter.export_stage(f"{self.name}: {text}", self.done, self.total)
        self.done += 1


@dataclass
class _Exporter:
    """Exports a model as it would be shipped and validates it through the real codec."""

    calibration: list[torch.Tensor]
    model_id: str
    provenance: dict[str, str]  # run_training's: it adds the steps and times after training
    device: torch.device
    valid_images: list[NamedImage]
    qualities: Sequence[float]

    @property
    def stages(self) -> int:
        """Stages of one candidate: calibrating, and validating when there are images."""
        return 2 if self.valid_images else 1

    def __call__(
        self, model: HyperpriorModel, step: int, seconds: float, stage: _Stages, kind: str
    ) -> tuple[Checkpoint, ValidationResult | None]:
        """Export `model` (the `kind` weights, such as "average"); each stage is announced."""
        stage(
            f"calibrating the integer scale network on {len(self.calibration)} images "
            f"({kind} weights)"
        )
        ckpt = export_trained(
            frozen_copy(model), self.calibration, self.model_id, dict(self.provenance),
            self.device,
        )  # fmt: skip
        if not self.valid_images:
            return ckpt, None
        stage(
            f"validating the {kind} weights on {len(self.valid_images)} images at "
            f"{len(self.qualities)} qualities"
        )
        val = validate_checkpoint(
            ckpt, self.valid_images, self.qualities, device=self.device, step=step
        )
        return ckpt, replace(val, train_seconds=seconds)


@dataclass(frozen=True)
class _Budget:
    """The command's time budget, as planned before training."""

    started: float  # time.monotonic() the budget counts from
    seconds: float  # 0: no budget
    deadline: float | None = None  # when training ends (time.monotonic()); None: no budget
    per_export: float = 0.0  # measured seconds of one exported candidate

    def affords_export(self) -> bool:
        """Whether one more candidate fits in the budget (always, without one)."""
        if self.deadline is None:
            return True
        return time.monotonic() + self.per_export * EXPORT_SAFETY <= self.started + self.seconds


def run_training(
    opts: TrainOptions,
    given: set[str] = frozenset(),
    reporter: Reporter | None = None,
    warn: Callable[[str], None] = print,
    note: Callable[[str], None] = print,
    detail: Callable[[str], None] = lambda text: None,
) -> RunReport | None:
    """The `aecompress train` command as a plain function.

    Under torchrun each process calls it (training/distributed.py): every one trains on its
    part of each batch, process 0 alone reports, validates and exports, and the others return
    None once training ends. A failure names the process it happened on.

    Progress (training, and the stages of each export) goes to `reporter`; warnings to `warn`;
    what the run does to `note`; finer points (where the data were found, each exported
    candidate's validation) to `detail`.

    given: names of the TrainConfig / ModelConfig fields the user set explicitly; with --resume
    or --init they must agree with the run / model they continue (TrainUsageError otherwise),
    except RESUME_FREE_FIELDS, which a resumed run may change.
    """
    started = opts.started if opts.started is not None else time.monotonic()
    reporter = reporter if reporter is not None else Silent()
    training = opts.export_from is None
    if not training and launched() is not None:
        raise TrainUsageError("--export-from runs in one process: start it without torchrun")
    coord, device = start(resolve_device(opts.device)) if training else (Coordinator(), None)
    try:
        if not coord.is_main:  # process 0 speaks for the run
            reporter, warn, note, detail = Silent(), _quiet, _quiet, _quiet
        return _run(opts, given, started, coord, device, reporter, warn, note, detail)
    except Repeated:
        raise
    except AecError as e:
        if coord.world > 1:
            raise type(e)(f"{coord.label()}: {e}") from e
        raise
    finally:
        coord.close()


def _quiet(text: str) -> None:
    """What the processes other than process 0 do with their notes and warnings."""


def _run(
    opts: TrainOptions,
    given: set[str],
    started: float,
    coord: Coordinator,
    device: torch.device | None,
    reporter: Reporter,
    warn: Callable[[str], None],
    note: Callable[[str], None],
    detail: Callable[[str], None],
) -> RunReport | None:
    """run_training once this process has joined the others (if any)."""
    training = opts.export_from is None
    with coord.together("checking the options"):
        plan = plan_run(opts, given, note)
        if plan.cfg.batch_size % coord.world:
            raise TrainUsageError(
                f"--batch-size {plan.cfg.batch_size} is the batch of all {coord.world} "
                f"processes together: give a multiple of {coord.world}"
            )
        device = device if device is not None else resolve_device(opts.device)
    with coord.together("loading the data"):
        inputs = _load_inputs(opts, plan, device, warn, note, detail, coord.is_main)
    if coord.is_main:
        plan.out.mkdir(parents=True, exist_ok=True)
    run_info = _run_info(opts, plan, device, coord.world)
    provenance = _provenance(opts, plan, device, run_info, inputs)
    export = _Exporter(
        inputs.calibration, opts.model_id, provenance, device, inputs.valid_images,
        plan.cfg.valid_qualities,
    )  # fmt: skip
    budget = _Budget(started, opts.time_budget)
    if training:
        result, budget = _train_session(opts, plan, device, inputs, run_info, export, budget,
                                        reporter, note, coord)  # fmt: skip
        coord.close()  # the export is process 0's alone
        if not coord.is_main:
            return None
    else:
        result = _result_from_state(plan.state)
    provenance["steps"] = str(result.step)
    provenance["wall_seconds"] = f"{result.elapsed:.0f}"
    if result.steps_per_s > 0:
        mp = result.steps_per_s * plan.cfg.batch_size * plan.cfg.patch_size**2 / 1e6
        provenance["speed"] = f"{result.steps_per_s:.2f} it/s, {mp:.2f} MP/s"
    return _export_run(plan.out, result, export, budget, reporter, note, detail)


def _precision(device: torch.device, bf16: bool) -> str:
    if device.type != "cuda":
        return "bf16 autocast inside g_a, g_s; float32 elsewhere" if bf16 else "float32"
    return (
        "bf16 autocast inside g_a, g_s; TF32 convolutions; float32 rates"
        if bf16
        else "float32 with TF32 convolutions"
    )


def _load_inputs(
    opts: TrainOptions,
    plan: RunPlan,
    device: torch.device,
    warn: Callable[[str], None],
    note: Callable[[str], None],
    detail: Callable[[str], None],
    validating: bool = True,
) -> _Inputs:
    """The training images (or, when only exporting, the few that calibrate the export) and,
    when `validating` (process 0 of a run), the validation images."""
    if opts.export_from is None:
        note(f"training on {describe(device)}: {_precision(device, opts.bf16)}")
        if opts.bf16 and device.type != "cuda":
            warn("--bf16 on the CPU is usually slower than float32")
        images, sources = load_dataset(plan.data_roots, plan.cfg.patch_size, warn)
        for s in sources:
            detail(f"training data {s.path}: {s.images} usable of {s.files} image files")
        note(f"{len(images)} training images from {sum(s.files for s in sources)} files")
        state = plan.state
        if state is not None and state.data and state.data != [asdict(s) for s in sources]:
            warn("the training data differ from the resumed run's: the data order will too")
        calibration = images[:CALIBRATION_IMAGES]
    else:
        images, sources = [], []
        calibration = _calibration_images(plan.data_roots, plan.cfg.patch_size, warn)
        detail(
            f"calibrating on {len(calibration)} images of {', '.join(map(str, plan.data_roots))}"
        )
    valid_images, valid_sources = [], []
    for root in opts.valid if validating else []:
        found = load_valid_images([root], warn)
        detail(f"validation data {Path(root).resolve()}: {len(found)} images")
        valid_images += found
        valid_sources.append({"path": str(Path(root).resolve()), "images": len(found)})
    if valid_images:
        note(f"{len(valid_images)} validation images")
    return _Inputs(images, sources, calibration, valid_images, valid_sources)


def _calibration_images(
    roots: Sequence[Path], min_size: int, warn: Callable[[str], None]
) -> list[torch.Tensor]:
    """The first CALIBRATION_IMAGES usable training images (3×H×W uint8), as a full run picks
    them, decoded one by one: an export needs these few only."""
    images: list[torch.Tensor] = []
    for path in find_images(roots, patterns=False):
        image, why = read_training_image(path, min_size)
        if image is None:
            warn(why)
            continue
        images.append(image)
        if len(images) == CALIBRATION_IMAGES:
            break
    if not images:
        raise AecError(f"no usable training images found in {', '.join(map(str, roots))}")
    return images


def _run_info(opts: TrainOptions, plan: RunPlan, device: torch.device, processes: int) -> dict:
    """What state.pt keeps for the provenance of later sessions: the weights the run started
    from and every training session (its command, first step, device and processes)."""
    run_info = dict(plan.state.run_info) if plan.state is not None else {}
    if plan.init_desc:
        run_info["init"] = plan.init_desc
    if opts.export_from is None:
        session = {"command": opts.command or "aecompress train"}
        session["from_step"] = plan.state.step if plan.state is not None else 0
        session["device"] = describe(device)
        session["processes"] = processes
        run_info["sessions"] = [*run_info.get("sessions", []), session]
    return run_info


def _provenance(
    opts: TrainOptions, plan: RunPlan, device: torch.device, run_info: dict, inputs: _Inputs
) -> dict[str, str]:
    """The checkpoint's provenance as far as it is known before training."""
    state = plan.state
    sessions = run_info.get("sessions") or [{"command": opts.command or "aecompress train"}]
    recorded = [asdict(s) for s in inputs.sources] if inputs.sources else []
    if not inputs.sources and state is not None:
        recorded = state.data
    provenance = {
        "command": sessions[0]["command"],  # the one that started the run
        "train_config": json.dumps(asdict(plan.cfg), sort_keys=True),
        "data": json.dumps(recorded),
        "images": str(sum(d.get("images", 0) for d in recorded)),
        "device": sessions[-1].get("device", describe(device)),
        "processes": str(sessions[-1].get("processes", 1)),
        "precision": _precision(device, opts.bf16),
        "torch": str(torch.__version__),
        "aecompress": __version__,
    }
    if run_info.get("init"):
        provenance["init"] = run_info["init"]
    if len(sessions) > 1:
        provenance["sessions"] = json.dumps(sessions)
    if inputs.valid_sources:
        provenance["valid_data"] = json.dumps(inputs.valid_sources)
    if opts.time_budget > 0 and opts.export_from is None:
        provenance["time_budget"] = f"{opts.time_budget:g}"
    if opts.export_from is not None:
        provenance["exported_from"] = f"{opts.export_from} (step {state.step})"
    return provenance


def _train_session(
    opts: TrainOptions,
    plan: RunPlan,
    device: torch.device,
    inputs: _Inputs,
    run_info: dict,
    export: _Exporter,
    budget: _Budget,
    reporter: Reporter,
    note: Callable[[str], None],
    coord: Coordinator,
) -> tuple[TrainResult, _Budget]:
    """Train (on from the resumed state, if any) until the steps, the training time or the
    budget's deadline; returns what the loop trained and the budget as planned. Process 0
    alone writes the log and plans the budget (the others wait) and validates."""
    out, cfg, state = plan.out, plan.cfg, plan.state
    if coord.is_main:
        _log_start(opts, plan, device, coord, note)
    if budget.seconds > 0:
        with coord.together("planning the time budget"):  # process 0 exports once, the others wait
            if coord.is_main:
                budget = _start_budget(opts, plan, export, budget, inputs, reporter, note)
    validator = None
    if inputs.valid_images:
        calibration = inputs.calibration[:VALID_CALIBRATION_IMAGES]

        def validator(model: HyperpriorModel, step: int) -> ValidationResult:
            return _validate_model(
                model, calibration, inputs.valid_images, cfg.valid_qualities, device=device,
                step=step,
            )  # fmt: skip

    data = ImageSet(inputs.images, device)
    inputs.images.clear()  # the packed copy is all the loop needs: free the decoded ones
    result = train(
        data, out, plan.model_config, cfg, resume=state, device=device, bf16=opts.bf16,
        init_weights=plan.init_weights, validator=validator, reporter=reporter,
        data_sources=inputs.sources, run_info=run_info, deadline=budget.deadline,
        coordinator=coord,
    )  # fmt: skip
    return result, budget


def _start_budget(
    opts: TrainOptions,
    plan: RunPlan,
    export: _Exporter,
    budget: _Budget,
    inputs: _Inputs,
    reporter: Reporter,
    note: Callable[[str], None],
) -> _Budget:
    """Plan the budget (a trial export) and say what it leaves for training."""
    out = plan.out
    budget = _plan_budget(opts, plan, export, budget, bool(inputs.valid_images), reporter)
    train_s = budget.deadline - time.monotonic()
    note(
        f"time budget {format_duration(budget.seconds)}: {format_duration(train_s)} of "
        f"training, {format_duration(budget.started + budget.seconds - budget.deadline)} "
        f"kept for the export ({budget.per_export:.1f} s per exported candidate, measured)"
    )
    append_log(out, f"time budget {budget.seconds:.1f} s; training until {train_s:.1f} s from now")
    return budget


def _log_start(
    opts: TrainOptions,
    plan: RunPlan,
    device: torch.device,
    coord: Coordinator,
    note: Callable[[str], None],
) -> None:
    """The first lines of a session in train.log (and, for several processes, on screen)."""
    state, cfg = plan.state, plan.cfg
    start = f"resume at step {state.step}" if state is not None else "start"
    append_log(plan.out, f"{start}: {opts.command or 'aecompress train'}")
    append_log(plan.out, f"device {describe(device)}; {_precision(device, opts.bf16)}")
    if coord.world > 1:
        line = (
            f"{coord.world} processes (torchrun), one device each: {cfg.batch_size} crops per "
            f"step in all, {cfg.batch_size // coord.world} per process"
        )
        append_log(plan.out, line)
        note(line)


def _plan_budget(
    opts: TrainOptions,
    plan: RunPlan,
    export: _Exporter,
    budget: _Budget,
    validating: bool,
    reporter: Reporter,
) -> _Budget:
    """The deadline and the seconds per exported candidate: exports the starting weights once
    to time the export (which also proves it works before the budget is spent), and keeps room
    for the candidates the end of the run will export and the files it writes."""
    cfg, state = plan.cfg, plan.state
    if state is not None:
        model = model_from_weights(state.model_config, state.model)
    else:
        with torch.random.fork_rng(devices=[]):
            model = build_model(plan.model_config, cfg, plan.init_weights)
    t0 = time.monotonic()
    try:
        stages = _Stages(reporter, "trial export", export.stages)
        export(model, state.step if state is not None else 0, 0.0, stages, "starting")
    finally:
        reporter.export_end()
    per_export = time.monotonic() - t0
    periodic = validating and (cfg.valid_every > 0 or cfg.valid_seconds > 0)
    candidates = 1 + (validating and cfg.ema_decay > 0) + periodic
    files = max(1.0, 0.01 * budget.seconds)  # state.pt, model.pt, card
    end = budget.started + budget.seconds
    deadline = end - candidates * per_export * EXPORT_SAFETY - files
    left = deadline - time.monotonic()
    if left < 0.1 * budget.seconds:
        spent = time.monotonic() - budget.started
        raise TrainUsageError(
            f"--time-budget {format_duration(budget.seconds)} leaves "
            f"{format_duration(max(0.0, left))} of training: loading and a trial export took "
            f"{spent:.1f} s and the export needs about {per_export:.1f} s per candidate "
            f"({candidates}); give more time"
        )
    return replace(budget, deadline=deadline, per_export=per_export)


def _result_from_state(state: TrainingState) -> TrainResult:
    """The models a saved state holds: its weights and, when kept, their running average."""
    averaged = None
    if state.ema is not None:
        averaged = model_from_weights(state.model_config, state.ema["tensors"])
    return TrainResult(
        model_from_weights(state.model_config, state.model), state.step, state.elapsed,
        state.best, list(state.history), averaged,
    )  # fmt: skip


def _export_run(
    out: Path,
    result: TrainResult,
    export: _Exporter,
    budget: _Budget,
    reporter: Reporter,
    note: Callable[[str], None],
    detail: Callable[[str], None],
) -> RunReport:
    """Export the candidates, keep the best validated one, and write model.pt and its card."""

    def affordable(what: str) -> bool:
        if budget.affords_export():
            return True
        append_log(out, f"skipped exporting the {what}: it would overrun the time budget")
        note(f"skipped exporting the {what}: it would overrun the time budget")
        return False

    # The average is usually the better model after the anneal: it goes first, so that a
    # budget that allows one candidate only exports it.
    candidates = [(result.averaged, "average"), (result.model, "last")]
    candidates = [(m, kind) for m, kind in candidates if m is not None]
    if not export.valid_images:
        candidates = candidates[:1]  # nothing to compare on
    # The stages as far as known: the candidates', and writing the files; the best periodic
    # validation's weights add theirs when they are tried, a skipped candidate takes its off.
    stages = _Stages(reporter, "export", len(candidates) * export.stages + 1)

    def candidate(model: HyperpriorModel, step: int, kind: str):
        ckpt_c, val_c = export(model, step, result.elapsed, stages, kind)
        if val_c is not None:
            detail(f"export: {kind} weights: validation {val_c.summary()}")
        return ckpt_c, val_c

    try:
        ckpt, validation, weights_kind = None, None, ""
        for i, (model, kind) in enumerate(candidates):
            if ckpt is not None and not affordable(f"{kind} weights"):
                stages.total -= (len(candidates) - i) * export.stages
                break
            ckpt_c, val_c = candidate(model, result.step, kind)
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
                model = model_from_weights(config, weights)
                stages.total += export.stages
                ckpt_b, val_b = candidate(model, best["step"], f"step {best['step']}")
                if val_b.score < validation.score:
                    ckpt, validation, selected = ckpt_b, val_b, best["step"]
                    weights_kind = "best validation"
        stages(f"writing {MODEL_FILE} and {CARD_FILE}")
        return _write_export(out, ckpt, validation, selected, weights_kind, result, note)
    finally:
        reporter.export_end()


def _write_export(
    out: Path,
    ckpt: Checkpoint,
    validation: ValidationResult | None,
    selected: int,
    weights_kind: str,
    result: TrainResult,
    note: Callable[[str], None],
) -> RunReport:
    """model.pt (the chosen candidate, with how it was chosen) and its model card."""
    ckpt.provenance["selected_step"] = str(selected)
    ckpt.provenance["selected_weights"] = weights_kind
    ckpt.provenance["created"] = timestamp()
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
