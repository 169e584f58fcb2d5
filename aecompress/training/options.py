"""What `aecompress train` is asked (`TrainOptions`), checked against itself and against the
run or model it continues, and resolved into the run's plan (`plan_run`): the configs, the run
directory, the data, and the state or weights it starts from. A contradiction raises
TrainUsageError before anything is loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from ..config import MODEL_FIELDS, RESUME_FREE_FIELDS, RUN_FIELDS, TrainConfig
from ..container import MAX_MODEL_ID_LEN
from ..errors import AecError, UsageError
from ..model import HyperpriorModel, ModelConfig
from ..registry import find_model
from .relevel import relevel_weights, widen_latent
from .state import MODEL_FILE, STATE_FILE, TrainingState, read_init, read_state


class TrainUsageError(UsageError):
    """Options that contradict each other or the run being resumed (the CLI exits with 2)."""


@dataclass
class TrainOptions:
    """Everything `aecompress train` takes."""

    data: list[Path]  # empty with --resume / --export-from: the run's recorded data
    out_dir: Path | None  # None with --resume / --export-from: the state's folder
    config: TrainConfig
    model_config: ModelConfig
    valid: list[Path] = field(default_factory=list)
    resume: Path | None = None
    init: Path | str | None = None  # a model file, training state, or a model's id / fingerprint
    device: str = "auto"
    bf16: bool = False
    model_id: str | None = None  # None: export.default_model_id, from the exported weights
    force: bool = False
    command: str = ""  # the command line, for the provenance
    # Wall-clock seconds for the whole command, export included (0: no limit); counted from
    # `started` (a time.monotonic() value; None: from the call of run_training).
    time_budget: float = 0.0
    started: float | None = None
    export_from: Path | None = None  # export this state.pt's model; no training
    # With --init: export the trained weights even when they do not beat the start (the
    # lineage's sessions, judged by their own benchmark); the comparison is still reported.
    export_always: bool = False


@dataclass
class RunPlan:
    """What the options resolve to, once checked against the run they continue."""

    cfg: TrainConfig
    model_config: ModelConfig
    out: Path  # the run directory
    data_roots: list[Path]
    state: TrainingState | None = None  # of --resume or --export-from
    init_weights: Mapping[str, torch.Tensor] | None = None  # of --init
    init_desc: str | None = None  # ... and where they come from, for the provenance
    init_path: Path | None = None  # ... and the file, as the model lookup found it


def plan_run(opts: TrainOptions, given: set[str], note: Callable[[str], None]) -> RunPlan:
    """Check the options against each other and against the state or model they continue;
    raises TrainUsageError (or AecError for unreadable files) before anything is loaded."""
    chosen = [n for n, v in (("--resume", opts.resume), ("--init", opts.init),
                             ("--export-from", opts.export_from)) if v is not None]  # fmt: skip
    if len(chosen) > 1:
        raise TrainUsageError(f"{chosen[0]} and {chosen[1]} exclude each other")
    cfg, model_config = opts.config, opts.model_config
    if opts.time_budget > 0 and "steps" not in given:  # the clock ends the run, as --steps 0
        cfg, given = replace(cfg, steps=0), {*given, "steps"}
    from_state = opts.resume or opts.export_from
    state = read_state(from_state) if from_state is not None else None
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
    plan = RunPlan(cfg, model_config, out, data_roots, state)

    if opts.export_from is not None:
        plan.cfg, plan.model_config = state.train_config, state.model_config
        if state.step == 0:
            raise AecError(f"{opts.export_from}: the run has not trained a step yet")
        note(f"exporting the model of {opts.export_from} (step {state.step})")
    elif opts.resume is not None:
        plan.cfg, plan.model_config = _continue_run(cfg, model_config, state, given, note)
        total = f" of {plan.cfg.steps}" if plan.cfg.steps > 0 else ""
        note(f"resuming {opts.resume} at step {state.step}{total}")
    elif opts.init is not None:
        # The lookup every option that takes a model shares: a file, an id or a fingerprint.
        plan.init_path = find_model(opts.init, "--init", "a model file or training state")
        init_config, plan.init_weights, plan.init_desc = read_init(plan.init_path)
        wider = "M" in given and model_config.M > init_config.M
        fixed = [n for n in MODEL_FIELDS if not (wider and n == "M")]
        _conflicts(given, fixed, model_config, init_config, "the --init model")
        plan.model_config = init_config
        note(f"starting from the weights of {plan.init_desc}")
        if wider:
            # More latent channels on trained transforms: the new ones start silent.
            plan.model_config = replace(init_config, M=model_config.M)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(opts.config.seed)
                fresh = HyperpriorModel(plan.model_config).state_dict()
            plan.init_weights = widen_latent(plan.init_weights, fresh, init_config.M)
            note(f"latent widened from M = {init_config.M} to {model_config.M}")
        if "lambdas" in given and model_config.lambdas != init_config.lambdas:
            # A new quality range on trained transforms: the gains are re-drawn for it.
            plan.init_weights = relevel_weights(
                plan.init_weights, init_config.lambdas, model_config.lambdas
            )
            plan.model_config = replace(plan.model_config, lambdas=model_config.lambdas)
            note(
                f"quality range of {_lambda_range(init_config)} moved to "
                f"{_lambda_range(model_config)}: the gain vectors are re-drawn for it"
            )
    no_limit = plan.cfg.steps <= 0 and opts.time_budget <= 0 and plan.cfg.train_seconds <= 0
    if opts.export_from is None and no_limit:
        raise TrainUsageError("--steps 0 means no step limit: give a --time-budget")
    return plan


def _continue_run(
    cfg: TrainConfig,
    model_config: ModelConfig,
    state: TrainingState,
    given: set[str],
    note: Callable[[str], None],
) -> tuple[TrainConfig, ModelConfig]:
    """The configs of a resumed run: its own, with the RESUME_FREE_FIELDS the user gave."""
    _conflicts(
        given, (*MODEL_FIELDS, "lambdas"), model_config, state.model_config, "the resumed run"
    )
    _conflicts(given, RUN_FIELDS, cfg, state.train_config, "the resumed run")
    free = {k: getattr(cfg, k) for k in RESUME_FREE_FIELDS if k in given}
    saved = state.train_config
    cfg = replace(saved, **free)
    if 0 < cfg.steps < state.step:
        raise TrainUsageError(f"--steps {cfg.steps} is below the run's step {state.step}")
    if cfg.steps != saved.steps and cfg.steps > 0:
        note(
            f"--steps {cfg.steps}: the schedule now ends at step {cfg.steps} "
            f"instead of {saved.steps}"
        )
    for name in ("lr", "lr_final"):
        if getattr(cfg, name) != getattr(saved, name):
            note(
                f"--{name.replace('_', '-')} {getattr(cfg, name):g} replaces the run's "
                f"{getattr(saved, name):g} from step {state.step} on"
            )
    return cfg, state.model_config


def _check_options(opts: TrainOptions, out: Path) -> None:
    stride = HyperpriorModel.Z_STRIDE
    if opts.config.patch_size % stride:
        raise TrainUsageError(
            f"--patch-size must be a multiple of {stride} (the model downsamples by {stride}), "
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
    model_id = opts.model_id
    if model_id is not None and not (
        1 <= len(model_id) <= MAX_MODEL_ID_LEN and all("!" <= c <= "~" for c in model_id)
    ):
        raise TrainUsageError(
            f"--model-id {model_id!r}: give 1 to {MAX_MODEL_ID_LEN} printable ASCII characters, "
            "no spaces (every .aec file names its model by it)"
        )
    for path in [*opts.data, *opts.valid]:
        if not Path(path).exists():
            raise AecError(f"{path}: no such file or directory")


def _lambda_range(config: ModelConfig) -> str:
    return f"λ {config.lambdas[0]:g}…{config.lambdas[-1]:g} ({config.levels} levels)"


def _conflicts(given: set[str], names: Sequence[str], asked, stored, what: str) -> None:
    for name in names:
        if name in given and getattr(asked, name) != getattr(stored, name):
            option = "--" + name.replace("_", "-")
            raise TrainUsageError(
                f"{option} {getattr(asked, name)} conflicts with {what} "
                f"({name} = {getattr(stored, name)}); leave the option out"
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
