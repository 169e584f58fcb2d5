"""The `aecompress train` command as a plain function (`run_training`): the options resolved
(options.py), the data loaded, the start measured and the time budget planned (budget.py), the
training loop called, and the model exported, judged and written with its card (finish.py,
outcome.py).

Before training, a run with a time budget exports its starting weights once to measure what
an export costs (budget.py), and a run started with --init measures its starting model on the
images the result will be measured on, so that the end of the run can say whether training
improved on it (and keep the start when it did not).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from .. import __version__
from ..checkpoint import Checkpoint
from ..device import describe, resolve_device
from ..durations import format_duration
from ..errors import AecError, CheckpointError
from ..export import export_trained
from ..imagesets import NamedImage, find_images
from ..model import HyperpriorModel
from ..training_history import HISTORY_KEY, TrainingRun, dump_runs, file_history
from ..validate import ValidationResult, frozen_copy, load_valid_images, validate_checkpoint
from ..validate import validate_model as _validate_model
from .budget import MIN_TRAIN_FRACTION, Budget
from .data import DataSource, ImageSet, load_dataset, read_training_image
from .distributed import Coordinator, Repeated, launched, start
from .finish import RunReport, Stages, Start, export_run
from .loop import TrainResult, append_log, build_model, train
from .options import RunPlan, TrainOptions, TrainUsageError, plan_run
from .outcome import MeasureSet, check_images, start_file
from .progress import Reporter, Silent
from .state import STATE_FILE, TrainingState, model_from_weights

__all__ = ["RunReport", "run_training"]

CALIBRATION_IMAGES = 64  # training images that size the integer network at the final export
VALID_CALIBRATION_IMAGES = 8  # ... and at each periodic validation's temporary export


@dataclass
class _Inputs:
    """The images a run uses, loaded."""

    images: list[torch.Tensor]  # training images, 3×H×W uint8 (none when only exporting)
    sources: list[DataSource]  # how many each training root gave (none when only exporting)
    calibration: list[torch.Tensor]  # 3×H×W uint8: the training images exports calibrate on
    valid_images: list[NamedImage]
    valid_sources: list[dict]  # {"path", "images"} of each --valid root, for the provenance

    def measure_set(self) -> MeasureSet:
        """What the exported model is measured on: --valid's images, else a few training ones."""
        if self.valid_images:
            return MeasureSet(self.valid_images, validation=True)
        return MeasureSet(check_images(self.calibration), validation=False)


@dataclass
class _Exporter:
    """Exports a model as it would be shipped and measures it through the real codec."""

    calibration: list[torch.Tensor]
    model_id: str | None  # None: derived from the exported weights (export.default_model_id)
    provenance: dict[str, str]  # run_training's: it adds the steps and times after training
    device: torch.device
    measure_set: MeasureSet
    qualities: Sequence[float]

    @property
    def stages(self) -> int:
        """Stages of one candidate: calibrating, and measuring."""
        return 2

    def calibrate(self, model: HyperpriorModel, stage: Stages, kind: str) -> Checkpoint:
        stage(
            f"calibrating the integer scale network on {len(self.calibration)} images "
            f"({kind} weights)"
        )
        return export_trained(
            frozen_copy(model), self.calibration, self.model_id, dict(self.provenance),
            self.device,
        )  # fmt: skip

    def measure(
        self, ckpt: Checkpoint, step: int, seconds: float, stage: Stages, kind: str
    ) -> ValidationResult:
        images = self.measure_set.images
        qualities = f"{len(self.qualities)} qualities"
        if self.measure_set.validation:
            stage(f"validating the {kind} weights on {len(images)} images at {qualities}")
        else:
            stage(f"checking the {kind} weights on {len(images)} training images at {qualities}")
        val = validate_checkpoint(ckpt, images, self.qualities, device=self.device, step=step)
        return replace(val, train_seconds=seconds)

    def __call__(
        self, model: HyperpriorModel, step: int, seconds: float, stage: Stages, kind: str
    ) -> tuple[Checkpoint, ValidationResult]:
        """Export `model` (the `kind` weights, such as "average"), then measure it; each stage
        is announced."""
        ckpt = self.calibrate(model, stage, kind)
        return ckpt, self.measure(ckpt, step, seconds, stage, kind)


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
        inputs.calibration, opts.model_id, provenance, device,
        inputs.measure_set() if coord.is_main else MeasureSet([], False), plan.cfg.valid_qualities,
    )  # fmt: skip
    budget = Budget(started, opts.time_budget)
    start_model = None
    if training:
        result, budget, start_model = _train_session(
            opts, plan, device, inputs, run_info, export, budget, reporter, note, coord
        )
        coord.close()  # the export is process 0's alone
        if not coord.is_main:
            return None
        if result.step == 0:
            why = (
                "no training step fitted in the time budget"
                if budget.seconds
                else "the run trained no step"
            )
            raise AecError(
                f"{why}: nothing was trained, so nothing is exported "
                f"({plan.out / STATE_FILE} holds the starting point); give a longer "
                "--time-budget or more --steps"
            )
        if result.session_steps == 0:  # a resumed run: its weights are as they were saved
            warn(
                f"this session trained no step: the export is of the resumed run's weights, "
                f"at step {result.step}"
            )
    else:
        result = _result_from_state(plan.state)
    provenance["steps"] = str(result.step)
    provenance["wall_seconds"] = f"{result.elapsed:.0f}"
    if result.steps_per_s > 0:
        mp = result.steps_per_s * plan.cfg.batch_size * plan.cfg.patch_size**2 / 1e6
        provenance["speed"] = f"{result.steps_per_s:.2f} it/s, {mp:.2f} MP/s"
    return export_run(
        plan.out, result, export, budget.affords_export, start_model, opts.export_always,
        reporter, note, detail,
    )  # fmt: skip


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
        earlier = _start_history(plan.init_path)
        if earlier:
            run_info[HISTORY_KEY] = dump_runs(earlier)
    if opts.export_from is None:
        session = {"command": opts.command or "aecompress train"}
        session["from_step"] = plan.state.step if plan.state is not None else 0
        session["device"] = describe(device)
        session["processes"] = processes
        run_info["sessions"] = [*run_info.get("sessions", []), session]
    return run_info


def _start_history(path: Path | None) -> tuple[TrainingRun, ...]:
    """Every run that made a --init model file; none for a training state (whose own run goes
    on in this one) or a file that is not a model."""
    if path is None:
        return ()
    try:
        return file_history(path)
    except CheckpointError:
        return ()


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
    if run_info.get(HISTORY_KEY):  # the runs that made the start: `aecompress models` adds them
        provenance[HISTORY_KEY] = run_info[HISTORY_KEY]
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
    budget: Budget,
    reporter: Reporter,
    note: Callable[[str], None],
    coord: Coordinator,
) -> tuple[TrainResult, Budget, Start | None]:
    """Train (on from the resumed state, if any) until the steps, the training time or the
    budget's deadline; returns what the loop trained, the budget as planned and the measured
    start of a --init run. Process 0 alone writes the log, measures the start and plans the
    budget (the others wait) and validates."""
    out, cfg, state = plan.out, plan.cfg, plan.state
    if coord.is_main:
        _log_start(opts, plan, device, coord, note)
    start_model = None
    timing = budget.seconds > 0
    if timing or plan.init_weights is not None:
        with coord.together("measuring the start"):  # process 0 measures, the others wait
            if coord.is_main:
                per_export, start_model = _trial(plan, export, reporter, timing)
                if start_model is not None:
                    note(f"the start on {export.measure_set.describe()}: "
                         f"{start_model.measured.summary()}")  # fmt: skip
                    append_log(out, f"start {start_model.measured.summary()}")
                if timing:
                    budget = _plan_budget(plan, export, budget, per_export)
                    _say_budget(out, budget, note)
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
        coordinator=coord, validation_seconds=budget.per_export,
    )  # fmt: skip
    return result, budget, start_model


def _trial(
    plan: RunPlan, export: _Exporter, reporter: Reporter, timing: bool
) -> tuple[float, Start | None]:
    """Export and measure the weights the run starts from, as the end of the run will export
    and measure its own: returns the seconds this took (the cost of one exported candidate,
    for the budget) and, for a --init run, the measured start.

    A --init model file whose config the run keeps is measured as it is (it is what the user
    has, and what model.pt becomes if training does not beat it); without a budget to time it
    is then not exported at all."""
    cfg, state = plan.cfg, plan.state
    if state is not None:
        model = model_from_weights(state.model_config, state.model)
    else:
        with torch.random.fork_rng(devices=[]):
            model = build_model(plan.model_config, cfg, plan.init_weights)
    init = plan.init_weights is not None and state is None
    file_ckpt = start_file(plan.init_path, plan.model_config) if init else None
    export_it = timing or file_ckpt is None
    stages = Stages(reporter, "trial export" if timing else "start", 1 + export_it)
    step = state.step if state is not None else 0
    t0 = time.monotonic()
    try:
        ckpt = export.calibrate(model, stages, "starting") if export_it else None
        measured = export.measure(file_ckpt or ckpt, step, 0.0, stages, "starting")
    finally:
        reporter.export_end()
    seconds = time.monotonic() - t0
    if not init:
        return seconds, None
    kept = file_ckpt if file_ckpt is not None else ckpt
    file = plan.init_path if file_ckpt is not None else None
    return seconds, Start(plan.init_desc or str(plan.init_path), measured, kept, file)


def _plan_budget(plan: RunPlan, export: _Exporter, budget: Budget, per_export: float) -> Budget:
    """The deadline: room kept for the candidates the end of the run will export (each costs
    what the trial export measured) and the files it writes. TrainUsageError when that leaves
    too little for training."""
    cfg = plan.cfg
    validating = export.measure_set.validation
    # The best periodic validation's weights are a candidate only if one can happen: every
    # so many steps, or every so much training time that the budget holds.
    periodic = validating and (cfg.valid_every > 0 or 0 < cfg.valid_seconds < budget.seconds)
    candidates = 1 + (validating and cfg.ema_decay > 0) + periodic
    planned = budget.planned(per_export, candidates)
    left = planned.deadline - time.monotonic()
    if left < MIN_TRAIN_FRACTION * budget.seconds:
        spent = time.monotonic() - budget.started
        raise TrainUsageError(
            f"--time-budget {format_duration(budget.seconds)} leaves "
            f"{format_duration(max(0.0, left))} of training: loading and a trial export took "
            f"{spent:.1f} s and the export needs about {per_export:.1f} s per candidate "
            f"({candidates}); give more time"
        )
    return planned


def _say_budget(out: Path, budget: Budget, note: Callable[[str], None]) -> None:
    """What the budget leaves for training, on screen and in train.log."""
    train_s = budget.deadline - time.monotonic()
    note(
        f"time budget {format_duration(budget.seconds)}: {format_duration(train_s)} of "
        f"training, {format_duration(budget.end - budget.deadline)} kept for the export "
        f"({budget.per_export:.1f} s per exported candidate, measured)"
    )
    append_log(out, f"time budget {budget.seconds:.1f} s; training until {train_s:.1f} s from now")


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


def _result_from_state(state: TrainingState) -> TrainResult:
    """The models a saved state holds: its weights and, when kept, their running average."""
    averaged = None
    if state.ema is not None:
        averaged = model_from_weights(state.model_config, state.ema["tensors"])
    return TrainResult(
        model_from_weights(state.model_config, state.model), state.step, state.elapsed,
        state.best, list(state.history), averaged,
    )  # fmt: skip
