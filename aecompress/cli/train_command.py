"""The `train` command: options to a TrainOptions, the run, and what it exported."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .. import STARTED
from ..config import ModelConfig, TrainConfig, log_spaced_lambdas
from ..durations import Interval, parse_duration, parse_interval
from ..errors import UsageError
from .common import DeviceOpt, QuietOpt, detail, err, guard, note, out, set_verbosity, warn

_TRAIN = TrainConfig()
_MODEL = ModelConfig()
_QUALITIES = ", ".join(f"{q:g}" for q in _TRAIN.valid_qualities)
_CHECKPOINT_EVERY = str(Interval(_TRAIN.checkpoint_every, _TRAIN.checkpoint_seconds))
_VALID_EVERY = str(Interval(_TRAIN.valid_every, _TRAIN.valid_seconds))

# The shared -v says what `encode` adds; train's details are its own.
TrainVerboseOpt = Annotated[
    bool,
    typer.Option(
        "-v",
        "--verbose",
        help="Also print each log step's line on a terminal (above the bar, as DIR/train.log "
        "has it), how many images each DATA and --valid path gave, and the validation of each "
        "candidate the export weighs.",
    ),
]


def train(
    ctx: typer.Context,
    data: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="DATA...",
            help="Training images: files or folders, searched recursively (PNG, JPEG, WebP, "
            "...). With --resume or --export-from: the run's own data when left out.",
            show_default=False,
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="DIR",
            help="Run directory: state.pt (resumable), train.log, best.pt; at the end model.pt "
            "and MODEL_CARD.md. With --resume or --export-from: the state's folder when left "
            "out.",
            file_okay=False,
            show_default=False,
        ),
    ] = None,
    time_budget: Annotated[
        str | None,
        typer.Option(
            metavar="TIME",
            help="Wall-clock time for the whole command, such as 7m30s, 90s or 1.5h, from the "
            "start of the process: loading, training, and the export and its measurement, for "
            "which it keeps time (measured by exporting once before training); no step starts "
            "that would end too late. The learning rate follows the clock, so the anneal ends "
            "when the run does. Without --steps there is no step limit.",
            show_default=False,
        ),
    ] = None,
    steps: Annotated[
        int,
        typer.Option(
            min=0,
            metavar="N",
            help="Optimizer steps in all (with --resume: may extend the run; with "
            "--time-budget: an upper bound; 0: no limit).",
        ),
    ] = _TRAIN.steps,
    batch_size: Annotated[
        int,
        typer.Option(
            min=1,
            metavar="N",
            help="Random crops per step, in all: under torchrun each process trains on an "
            "equal share (a multiple of the processes), so the run is the same, to float "
            "rounding, whatever their number.",
        ),
    ] = _TRAIN.batch_size,
    patch_size: Annotated[
        int, typer.Option(min=64, metavar="PIXELS", help="Crop side in pixels, a multiple of 64.")
    ] = _TRAIN.patch_size,
    lr: Annotated[
        float, typer.Option(min=0.0, metavar="LR", help="Peak learning rate (Adam).")
    ] = _TRAIN.lr,
    lr_final: Annotated[
        float, typer.Option(min=0.0, metavar="LR", help="Learning rate at the end of the run.")
    ] = _TRAIN.lr_final,
    anneal: Annotated[
        float,
        typer.Option(
            min=0.01,
            max=1.0,
            metavar="FRACTION",
            help="Fraction of the run, at its end, over which the learning rate falls from "
            "--lr to --lr-final along a cosine; before it the rate holds at --lr (1: a cosine "
            "over the whole run).",
        ),
    ] = _TRAIN.anneal,
    warmup: Annotated[
        int, typer.Option(min=0, metavar="STEPS", help="Steps of linear warm-up to --lr.")
    ] = _TRAIN.warmup,
    seed: Annotated[
        int, typer.Option(metavar="SEED", help="Seed for initialisation, crops, qualities, noise.")
    ] = _TRAIN.seed,
    n: Annotated[
        int, typer.Option("--N", min=1, metavar="CHANNELS", help="Channels inside g_a / g_s.")
    ] = _MODEL.N,
    m: Annotated[
        int, typer.Option("--M", min=1, metavar="CHANNELS", help="Channels of the latent y.")
    ] = _MODEL.M,
    nh: Annotated[
        int,
        typer.Option("--Nh", min=1, metavar="CHANNELS", help="Channels of the hyperprior and z."),
    ] = _MODEL.Nh,
    lambda_min: Annotated[
        float,
        typer.Option(
            min=0.0,
            metavar="LAMBDA",
            help="Trade-off of quality 1 (loss = lambda·255²·MSE + bpp); with --init, the "
            "model's quality range is moved to the new one (its gain vectors re-drawn).",
        ),
    ] = _MODEL.lambdas[0],
    lambda_max: Annotated[
        float,
        typer.Option(min=0.0, metavar="LAMBDA", help="Trade-off of quality 100."),
    ] = _MODEL.lambdas[-1],
    levels: Annotated[
        int,
        typer.Option(
            min=2,
            metavar="K",
            help="Trade-off levels, log-spaced from --lambda-min to --lambda-max.",
        ),
    ] = _MODEL.levels,
    level_norm_power: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            metavar="P",
            help="Each crop's loss is divided by its level's running mean distortion term to "
            "this power: 1 makes every level pull alike on the shared transforms, 0 is the raw "
            "loss; in between leans towards the high-quality levels.",
        ),
    ] = _TRAIN.level_norm_power,
    position_power: Annotated[
        float,
        typer.Option(
            min=0.01,
            max=1.0,
            metavar="P",
            help="Trade-off positions are drawn as (K-1)·u^P: 1 spreads the crops evenly over "
            "the levels, below 1 puts more of them at the high-quality end.",
        ),
    ] = _TRAIN.position_power,
    valid: Annotated[
        list[Path] | None,
        typer.Option(
            "--valid",
            metavar="PATH",
            help="Validation images (file or folder, repeatable), encoded and decoded through "
            f"the real codec at qualities {_QUALITIES}; of the last step's weights, their "
            "running average and those of the best periodic validation, the one with the best "
            "score (mean of lambda·MSE + bpp) is exported. Without --valid nothing is "
            "validated: the exported weight average is only checked on 4 training images "
            "(128-px centre crops), and the report and model card say so.",
            show_default=False,
        ),
    ] = None,
    valid_every: Annotated[
        str,
        typer.Option(
            metavar="N|TIME",
            help="Validate every N steps (1000), or every so much training time (5m); 0: only "
            "the exported model.",
        ),
    ] = _VALID_EVERY,
    checkpoint_every: Annotated[
        str,
        typer.Option(
            metavar="N|TIME",
            help="Write DIR/state.pt every N steps (500) or every so much wall time (2m), at "
            "the end, and on Ctrl-C; a run killed midway is exported with --export-from.",
        ),
    ] = _CHECKPOINT_EVERY,
    log_every: Annotated[
        int,
        typer.Option(
            min=1,
            metavar="N",
            help="A line in DIR/train.log (and the figures shown) every N steps.",
        ),
    ] = _TRAIN.log_every,
    resume: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Continue a run exactly from its state.pt: model, optimizer, schedule, step, "
            "RNG and data order.",
            dir_okay=False,
        ),
    ] = None,
    init: Annotated[
        str | None,
        typer.Option(
            metavar="MODEL",
            help="Fine-tune: start from a model (a file, or the id or fingerprint of one that "
            "`aecompress models` lists) or the weights of a state.pt / best.pt, with a fresh "
            "optimizer and schedule. The start is measured first, and the trained weights "
            "exported only if they score better on the --valid images; else model.pt is the "
            "start, unchanged, and the run says so. Without --valid they are compared on the "
            "4 training images of the check, which favours them and is too small to rank "
            "close models: exported unless 10% or more worse (then the start is kept), with "
            "a warning when not better.",
            show_default=False,
        ),
    ] = None,
    export_always: Annotated[
        bool,
        typer.Option(
            "--export-always",
            help="With --init: export the trained weights even when they do not beat the "
            "start (the comparison is still reported, and a far worse model warned about).",
        ),
    ] = False,
    export_from: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Do not train: export model.pt and MODEL_CARD.md from a state.pt, such as the "
            "last checkpoint of a run that was killed. Calibrates on DATA (default: the run's "
            "data) and, with --valid, picks the better of its weights and their average.",
            dir_okay=False,
        ),
    ] = None,
    device: DeviceOpt = "auto",
    bf16: Annotated[
        bool,
        typer.Option(
            "--bf16",
            help="bfloat16 autocast inside g_a and g_s (for CUDA); the layers at the latent "
            "and every rate term stay float32.",
        ),
    ] = False,
    model_id: Annotated[
        str | None,
        typer.Option(
            metavar="ID",
            help="Model id written into the checkpoint and every .aec file (at most 32 "
            "characters) [default: aec-hp-custom-DATE-HASH: the export's UTC date and 8 hex "
            "digits of a hash of its weights, so that two different models never share it].",
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Start over in a --out that holds a run.")
    ] = False,
    quiet: QuietOpt = False,
    verbose: TrainVerboseOpt = False,
) -> None:
    """Train a model on your own images, then export it for --model.

    Trains on CUDA when present, and writes a checkpoint usable with --model and its model
    card to --out. Ctrl-C saves the state; --resume continues the run. On several GPUs or
    machines: torchrun --nproc-per-node 8 -m aecompress train ... (one process per GPU).

    At the end it says what it measured: the exported model on the --valid images (else,
    not validated, on 4 training images), against the start with --init. It warns loudly
    (last on stderr, and at the top of the model card) when the model is far from usable,
    below 25 dB PSNR at quality 50 where a working one gives 30 or more, or, exported with
    --export-always, scores 10% or more worse than its start. A run that trains no step
    exports nothing (exit 1).
    """
    import shlex
    import sys
    import time

    from ..training.budget import command_started

    with guard():
        set_verbosity(quiet, verbose)
        budget, check, valid_at = _times(time_budget, checkpoint_every, valid_every)

    from ..training.distributed import Repeated, launched
    from ..training.options import TrainOptions
    from ..training.run import run_training
    from .train_progress import ConsoleReporter

    # Options the user set (Typer vendors its own click: compare the source by name).
    given = {
        name
        for name in ctx.params
        if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") != "DEFAULT"
    }
    argv = sys.argv[1:]
    main_command = argv[:1] == ["train"] and Path(sys.argv[0]).name in ("aecompress", "__main__.py")
    if main_command:
        command = shlex.join(["aecompress", *argv])
    else:  # called in-process (tests, scripts): rebuild it from what was given
        parts = ["aecompress", "train", *map(str, data or [])]
        for p in ctx.command.params:
            if p.param_type_name == "option" and p.name in given:
                value = ctx.params[p.name]
                if p.is_flag:
                    parts += [p.opts[0]] if value else []
                else:
                    for v in value if p.multiple else [value]:
                        parts += [p.opts[0], str(v)]
        command = shlex.join(parts)
    # Option name -> the config fields it sets.
    fields = {"n": ["N"], "m": ["M"], "nh": ["Nh"], "valid_every": ["valid_every", "valid_seconds"],
              "checkpoint_every": ["checkpoint_every", "checkpoint_seconds"],
              "lambda_min": ["lambdas"], "lambda_max": ["lambdas"],
              "levels": ["lambdas"]}  # fmt: skip
    with guard():
        try:
            lambdas = log_spaced_lambdas(lambda_min, lambda_max, levels)
        except ValueError:
            raise UsageError(
                f"--lambda-min {lambda_min:g} must be above 0 and below --lambda-max {lambda_max:g}"
            ) from None
    opts = TrainOptions(
        data=list(data or []),
        out_dir=out_dir,
        config=TrainConfig(
            steps=steps, batch_size=batch_size, patch_size=patch_size, lr=lr, lr_final=lr_final,
            anneal=anneal, warmup=warmup, seed=seed, checkpoint_every=check.steps,
            checkpoint_seconds=check.seconds, log_every=log_every, valid_every=valid_at.steps,
            valid_seconds=valid_at.seconds, level_norm_power=level_norm_power,
            position_power=position_power,
        ),
        model_config=ModelConfig(N=n, M=m, Nh=nh, lambdas=lambdas),
        valid=list(valid or []), resume=resume, init=init, device=device, bf16=bf16,
        model_id=model_id, force=force, command=command, time_budget=budget,
        # The whole command counts: from the process's start when it is this command's.
        started=command_started(STARTED) if main_command else time.monotonic(),
        export_from=export_from, export_always=export_always,
    )  # fmt: skip
    with guard():
        set_verbosity(quiet, verbose)  # each guard resets it on the way out
        try:
            report = run_training(
                opts,
                given={f for g in given for f in fields.get(g, [g])},
                reporter=ConsoleReporter(err, quiet=quiet, verbose=verbose),
                warn=warn,
                note=note,
                detail=detail,
            )
        except KeyboardInterrupt:
            process = launched()  # (rank, world, local rank) under torchrun
            if process is not None and process[0] != 0:  # process 0 says where it stopped
                raise typer.Exit(130) from None
            raise
        except Repeated as e:  # every process failed alike: process 0 says why
            raise typer.Exit(2 if isinstance(e.error, UsageError) else 1) from None
    if not quiet and report is not None:  # --quiet: errors only, the exit code says the rest
        _print_report(report)


def _print_report(report) -> None:
    """What the run exported and measured, on stdout: the model, its card, the figures on the
    images it was measured on (beside the start's, with --init), and the verdict in a line."""
    weights = (
        "" if report.selected_step == report.steps else f", weights of step {report.selected_step}"
    )
    speed = f" at {report.steps_per_s:.1f} it/s" if report.steps_per_s > 0 else ""
    if report.kept_start:
        out.print(
            f"kept the start as {report.model_path} ({report.model_id}, {report.fingerprint}), "
            f"unchanged: {report.steps} steps ({report.elapsed:.0f} s of training{speed}) did "
            "not beat it",
            soft_wrap=True,
        )
    else:
        out.print(
            f"exported {report.model_path} ({report.model_id}, {report.fingerprint}): "
            f"{report.steps} steps{weights}, {report.elapsed:.0f} s of training{speed}",
            soft_wrap=True,
        )
    out.print(f"model card {report.card_path}", soft_wrap=True)
    if report.measured is not None:
        from rich.table import Table

        # Without --valid: a check on training images; the summary line says it in full.
        title = "validation (real files)" if report.validated else "check (real files)"
        columns = ["quality", "bpp", "PSNR (dB)"]
        if report.start is not None:
            columns = ["quality", "trained bpp", "trained PSNR", "start bpp", "start PSNR"]
        table = Table(*columns, title=title)
        starts = report.start.figures if report.start is not None else [None] * 99
        for f, s in zip(report.measured.figures, starts, strict=False):
            row = [f"{f.quality:g}", f"{f.bpp:.4f}", f"{f.psnr:.2f}"]
            if s is not None:
                row += [f"{s.bpp:.4f}", f"{s.psnr:.2f}"]
            table.add_row(*row)
        out.print(table)
        out.print(report.summary, soft_wrap=True)
    for w in report.warnings:  # last, where they are seen
        warn(w)


def _times(budget: str | None, checkpoint_every: str, valid_every: str):
    """--time-budget in seconds (0: none) and the two intervals; UsageError when malformed."""
    try:
        seconds = 0.0 if budget is None else parse_duration(budget)
        if budget is not None and seconds <= 0:
            raise ValueError("give a time above 0")
    except ValueError as e:
        raise UsageError(f"--time-budget: {e}") from None
    intervals = []
    for name, text in (("--checkpoint-every", checkpoint_every), ("--valid-every", valid_every)):
        try:
            intervals.append(parse_interval(text))
        except ValueError as e:
            raise UsageError(f"{name}: {e}") from None
    return seconds, *intervals
