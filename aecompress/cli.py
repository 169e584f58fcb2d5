"""The `aecompress` command line: a thin Typer layer over operations.py.

Results go to stdout; progress, the device used and warnings go to stderr, one line each.
Exit codes: 0 success, 1 failure (any input failed), 2 usage error, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import STARTED, __version__
from .bench_cli import bench
from .checkpoint import load_checkpoint
from .codec import Codec
from .config import ModelConfig, TrainConfig
from .container import DEFAULT_MAX_PIXELS
from .device import DEVICE_CHOICES, describe, resolve_device
from .durations import Interval, parse_duration, parse_interval
from .errors import AecError
from .operations import (
    STDIO,
    CodecPool,
    decode_one,
    encode_one,
    info_one,
    input_ids,
    list_models,
    output_paths,
)
from .registry import MODEL_ENV, MODELS_DIR_ENV, ModelLibrary
from .target import Target, parse_size

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Learned image compression: encode images to .aec files and back.",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _console(stderr: bool) -> Console:
    # File names and messages are printed as they are: no Rich markup or emoji codes in them.
    # Piped output is not wrapped at 80 columns: tables stay one row per image.
    tty = Console(stderr=stderr).is_terminal
    return Console(
        stderr=stderr, highlight=False, markup=False, emoji=False, width=None if tty else 160
    )


out = _console(stderr=False)
err = _console(stderr=True)

DeviceOpt = Annotated[
    str,
    typer.Option(
        "--device",
        help=f"Where to run the networks: {' | '.join(DEVICE_CHOICES)} (auto = CUDA if present).",
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help=f"Model to encode with: a checkpoint file, or the id or fingerprint of a model "
        f"listed by `aecompress models` (default: ${MODEL_ENV}, else the shipped default).",
        show_default=False,
    ),
]
DecodeModelsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--model",
        help=f"A model file to look in besides the shipped models and ${MODELS_DIR_ENV} "
        "(repeatable). Each file is decoded with the model it names.",
        show_default=False,
    ),
]
ForceOpt = Annotated[bool, typer.Option("--force", "-f", help="Replace existing output files.")]
FailFastOpt = Annotated[
    bool,
    typer.Option("--fail-fast", help="Stop at the first input that fails (default: go on)."),
]
MaxPixelsOpt = Annotated[
    int,
    typer.Option("--max-pixels", min=1, help="Refuse .aec files declaring more pixels than this."),
]


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _fail(message: str) -> None:
    err.print(Text.assemble(("error:", "red"), " ", _one_line(message)), soft_wrap=True)


def _warn(message: str) -> None:
    err.print(Text.assemble(("warning:", "yellow"), " ", _one_line(message)), soft_wrap=True)


def _describe_failure(source: str, exc: BaseException) -> str:
    """One line naming the input: the library's message, or the type of an unexpected error."""
    name = "<stdin>" if source == STDIO else source
    if isinstance(exc, AecError):
        msg = _one_line(str(exc))
        return msg if msg.startswith((source + ":", name + ":")) else f"{name}: {msg}"
    return f"{name}: internal error: {type(exc).__name__}: {_one_line(str(exc))}"


@contextlib.contextmanager
def _guard() -> Iterator[None]:
    """Turn what escapes a command into one line and an exit code, never a traceback."""
    try:
        yield
    except (typer.Exit, typer.Abort, typer.TyperException):
        raise
    except KeyboardInterrupt:
        # Outputs are written to a temporary file and renamed: nothing partial is left.
        err.print("interrupted", soft_wrap=True)
        raise typer.Exit(130) from None
    except AecError as e:
        _fail(str(e))
        raise typer.Exit(1) from None
    except Exception as e:
        _fail(f"internal error: {type(e).__name__}: {e}")
        raise typer.Exit(1) from None


def _announce(codec: Codec) -> None:
    ckpt = codec.checkpoint
    err.print(
        f"model {ckpt.model_id} ({ckpt.fingerprint.hex()}) on {describe(codec.device)}",
        soft_wrap=True,
    )


def _open_codec(device: str, model: str | None) -> Codec:
    """The codec `encode` uses: --model, else $AECOMPRESS_MODEL, else the shipped default."""
    dev = resolve_device(device)
    codec = Codec(load_checkpoint(ModelLibrary().encoder_model(model)), dev)
    _announce(codec)
    return codec


def _run_batch(
    inputs: list[str], targets: list[str], job: Callable, fail_fast: bool = False
) -> tuple[list, bool]:
    """Run job(source, target) for each input; report failures by name.

    Keeps going after a failure unless fail_fast. Returns (reports of the inputs that worked,
    whether any failed). Ctrl-C propagates (to _guard); any other error only fails its input.
    """
    reports, failed = [], 0
    for i, (source, target) in enumerate(zip(inputs, targets, strict=True)):
        try:
            reports.append(job(source, target))
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException as e:  # noqa: B036 -- Rust panics (pyo3) derive from BaseException
            failed += 1
            _fail(_describe_failure(source, e))
            if fail_fast:
                left = len(inputs) - i - 1
                if left:
                    err.print(
                        f"stopped at the first failure (--fail-fast): {left} of {len(inputs)} "
                        "inputs not processed",
                        soft_wrap=True,
                    )
                return reports, True
    if failed and len(inputs) > 1:
        err.print(f"{failed} of {len(inputs)} inputs failed", soft_wrap=True)
    return reports, failed > 0


@app.command()
def encode(
    inputs: Annotated[
        list[str], typer.Argument(help="Images to compress (PNG, JPEG, WebP, ...); '-' = stdin.")
    ],
    output: Annotated[
        str | None,
        typer.Option(
            "-o",
            "--output",
            help="Output file (one input; '-' = stdout) or existing directory (several). "
            "Default: each input's name with .aec, beside it.",
        ),
    ] = None,
    quality: Annotated[
        float | None,
        typer.Option(
            "-q",
            "--quality",
            min=1,
            max=100,
            help="1 (smallest) to 100 (best); fractions allowed. [default: 75]",
        ),
    ] = None,
    target_size: Annotated[
        str | None,
        typer.Option(
            "--target-size", help="Largest file that fits this size, e.g. 60KB, 1.5MB, 900."
        ),
    ] = None,
    target_bpp: Annotated[
        float | None,
        typer.Option("--target-bpp", min=0, help="Largest file within this many bits per pixel."),
    ] = None,
    target_psnr: Annotated[
        float | None,
        typer.Option("--target-psnr", min=0, help="Smallest file reaching this PSNR (dB)."),
    ] = None,
    device: DeviceOpt = "auto",
    model: ModelOpt = None,
    force: ForceOpt = False,
    fail_fast: FailFastOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Compress images to .aec files and report size, ratios, bpp, PSNR and MS-SSIM.

    Use -q for a fixed quality, or one of the --target-* options to let aecompress search the
    quality that meets a file size, a bpp or a PSNR (the chosen quality is reported)."""
    given = [o for o, v in (("--quality", quality), ("--target-size", target_size),
                            ("--target-bpp", target_bpp), ("--target-psnr", target_psnr))
             if v is not None]  # fmt: skip
    if len(given) > 1:
        err.print(f"error: {' and '.join(given)} cannot be used together")
        raise typer.Exit(2)
    goal = None
    if target_size is not None:
        try:
            goal = Target("bytes", parse_size(target_size))
        except AecError as e:
            err.print(f"error: --target-size: {e}")
            raise typer.Exit(2) from None
    with _guard():
        if target_bpp is not None:
            goal = Target("bpp", target_bpp)
        elif target_psnr is not None:
            goal = Target("psnr", target_psnr)
        quality = 75.0 if quality is None else quality
        targets = output_paths(inputs, output, ".aec")
        codec = _open_codec(device, model)
        protect = input_ids(inputs)
        good, failed = _run_batch(
            inputs,
            targets,
            lambda s, t: encode_one(codec, s, t, quality, force, protect, goal),
            fail_fast,
        )
        for r in good:
            for w in r.warnings:
                _warn(f"{r.input}: {w}")
        # With the .aec data on stdout, the report must go to stderr.
        console = err if STDIO in targets else out
        if as_json:
            console.print_json(json.dumps([r.to_dict() for r in good]))
        elif good:
            console.print(_encode_table(good))
    if failed:
        raise typer.Exit(1)


def _encode_table(reports) -> Table:
    t = Table(title=None, show_edge=False)
    for col in ("output", "image", "q", "input B", "output B", "ratio raw", "ratio input",
                "bpp", "PSNR dB", "MS-SSIM", "s"):  # fmt: skip
        left = col in ("output", "image")
        t.add_column(col, justify="left" if left else "right", overflow="fold", no_wrap=not left)
    for r in reports:
        t.add_row(
            Text(r.output), f"{r.width}x{r.height} {r.mode}", f"{r.quality:g}",
            f"{r.input_bytes:,}", f"{r.output_bytes:,}", f"{r.ratio_raw:.1f}",
            f"{r.ratio_input:.2f}", f"{r.bpp:.3f}", f"{r.psnr:.2f}", f"{r.ms_ssim:.4f}",
            f"{r.seconds:.2f}",
        )  # fmt: skip
    return t


@app.command()
def decode(
    inputs: Annotated[list[str], typer.Argument(help=".aec files to decode; '-' = stdin.")],
    output: Annotated[
        str | None,
        typer.Option(
            "-o",
            "--output",
            help="Output image (one input; '-' = stdout as PNG) or existing directory "
            "(several). The extension picks the format. Default: the input's name with .png.",
        ),
    ] = None,
    device: DeviceOpt = "auto",
    models: DecodeModelsOpt = None,
    force: ForceOpt = False,
    fail_fast: FailFastOpt = False,
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
) -> None:
    """Decode .aec files back to images in their original size and colour mode.

    Each file is decoded with the model it names (see `aecompress models`), so files written by
    different models decode together; a file whose model is not available is an error."""
    with _guard():
        targets = output_paths(inputs, output, ".png")
        library = ModelLibrary(models or [])
        library.check()
        codecs = CodecPool(library, resolve_device(device), on_load=_announce)
        protect = input_ids(inputs)
        good, failed = _run_batch(
            inputs,
            targets,
            lambda s, t: decode_one(codecs, s, t, force, max_pixels, protect),
            fail_fast,
        )
        if STDIO not in targets:
            for r in good:
                out.print(
                    f"{r.input} -> {r.output}  {r.width}x{r.height} {r.mode}  "
                    f"{r.output_bytes:,} B  {r.seconds:.2f} s",
                    soft_wrap=True,
                )
    if failed:
        raise typer.Exit(1)


@app.command()
def info(
    files: Annotated[list[str], typer.Argument(help=".aec files to describe; '-' = stdin.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    models: DecodeModelsOpt = None,
) -> None:
    """Show what an .aec file's header says (model, size, mode, quality, streams), its bpp,
    and the model file that decodes it (or that it is not available here)."""
    with _guard():
        library = ModelLibrary(models or [])
        library.check()
        good, failed = _run_batch(files, files, lambda s, _t: info_one(s, max_pixels, library))
        if as_json:
            out.print_json(json.dumps([r.to_dict() for r in good]))
        else:
            for r in good:
                out.print(
                    f"{r.file}: .aec v{r.format_version}, model {r.model_id} ({r.fingerprint}), "
                    f"{r.width}x{r.height} {r.mode}, quality {r.quality:g}, "
                    f"{r.file_bytes:,} bytes (z {r.z_bytes:,}, y {r.y_bytes:,}, "
                    f"alpha {r.alpha_bytes:,}, palette {r.palette_bytes:,}, "
                    f"icc {r.icc_bytes:,}), {r.bpp:.4f} bpp; "
                    + (f"model file {r.model_file}" if r.model_file else "model not available"),
                    soft_wrap=True,
                )
    if failed:
        raise typer.Exit(1)


@app.command()
def models(
    extra: DecodeModelsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the models available for decoding, and the default for encoding: id, fingerprint,
    size, what each was trained on and for how long, and its bpp range on Kodak where recorded.

    Models are looked for in --model files, $AECOMPRESS_MODEL, the models installed with the
    package and the folders of $AECOMPRESS_MODELS."""
    with _guard():
        library = ModelLibrary(extra or [])
        reports = list_models(library)
        for problem in library.problems:
            _warn(problem)
        err.print(f"looked in: {library.describe_places()}", soft_wrap=True)
        if as_json:
            out.print_json(json.dumps([r.to_dict() for r in reports]))
        elif reports:
            out.print(_models_table(reports))
        else:
            err.print("no models found", soft_wrap=True)
    if not reports:
        raise typer.Exit(1)


def _models_table(reports) -> Table:
    """One row per model, narrow enough for 80 columns: the details are in --json."""
    t = Table(title=None, show_edge=False, show_lines=True)
    t.add_column("model", overflow="fold")
    t.add_column("MiB", justify="right", no_wrap=True)
    t.add_column("trained on", no_wrap=True)
    t.add_column("training", no_wrap=True)
    t.add_column("Kodak", no_wrap=True)
    for r in reports:
        model = Text(r.model_id + "\n" + r.fingerprint)
        if r.default:
            model.append("\ndefault", style="bold")
        trained_on = f"{r.images} images" if r.images else "-"
        when = ", ".join(x for x in (_minutes(r.training_seconds), _short_device(r.device)) if x)
        steps = f"{r.steps.split()[0]} steps" if r.steps else ""
        training = "\n".join(x for x in (steps, when) if x)
        kodak = "-"
        if r.kodak:
            lo, hi = r.kodak[0], r.kodak[-1]
            kodak = (
                f"q {lo['quality']:g}-{hi['quality']:g}\n{lo['bpp']:.2f}-{hi['bpp']:.2f} bpp\n"
                f"{lo['psnr']:.1f}-{hi['psnr']:.1f} dB"
            )
        t.add_row(model, f"{r.bytes / 2**20:.1f}", trained_on, training or "-", kodak)
    return t


def _short_device(device: str | None) -> str | None:
    return device.split(" (")[0] if device else None  # "cpu (2 threads, ...)" -> "cpu"


def _minutes(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


app.command()(bench)


def _version(value: bool) -> None:
    if value:
        out.print(f"aecompress {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Learned image compression: encode images to .aec files and back."""


def main() -> None:
    app()


_TRAIN = TrainConfig()
_MODEL = ModelConfig()
_QUALITIES = ", ".join(f"{q:g}" for q in _TRAIN.valid_qualities)
_CHECKPOINT_EVERY = str(Interval(_TRAIN.checkpoint_every, _TRAIN.checkpoint_seconds))
_VALID_EVERY = str(Interval(_TRAIN.valid_every, _TRAIN.valid_seconds))


def _usage_error(message: str) -> typer.Exit:
    _fail(message)
    return typer.Exit(2)


@app.command()
def train(
    ctx: typer.Context,
    data: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Training images: files or folders, searched recursively (PNG, JPEG, WebP, "
            "...). With --resume or --export-from: the run's own data when left out.",
            show_default=False,
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
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
            help="Wall-clock time for the whole command, such as 7m30s, 90s or 1.5h: loading, "
            "training and the export, for which it keeps time (measured by exporting once "
            "before training). The learning rate follows the clock, so the anneal ends when "
            "the run does. Without --steps there is no step limit.",
            show_default=False,
        ),
    ] = None,
    steps: Annotated[
        int,
        typer.Option(
            min=0,
            help="Optimizer steps in all (with --resume: may extend the run; with "
            "--time-budget: an upper bound; 0: no limit).",
        ),
    ] = _TRAIN.steps,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Random crops per step.")
    ] = _TRAIN.batch_size,
    patch_size: Annotated[
        int, typer.Option(min=64, help="Crop side in pixels, a multiple of 64.")
    ] = _TRAIN.patch_size,
    lr: Annotated[float, typer.Option(min=0.0, help="Peak learning rate (Adam).")] = _TRAIN.lr,
    lr_final: Annotated[
        float, typer.Option(min=0.0, help="Learning rate at the end of the run.")
    ] = _TRAIN.lr_final,
    anneal: Annotated[
        float,
        typer.Option(
            min=0.01,
            max=1.0,
            help="Fraction of the run, at its end, over which the learning rate falls from "
            "--lr to --lr-final along a cosine; before it the rate holds at --lr (1: a cosine "
            "over the whole run).",
        ),
    ] = _TRAIN.anneal,
    warmup: Annotated[
        int, typer.Option(min=0, help="Steps of linear warm-up to --lr.")
    ] = _TRAIN.warmup,
    seed: Annotated[
        int, typer.Option(help="Seed for initialisation, crops, qualities, noise.")
    ] = _TRAIN.seed,
    n: Annotated[int, typer.Option("--N", min=1, help="Channels inside g_a / g_s.")] = _MODEL.N,
    m: Annotated[int, typer.Option("--M", min=1, help="Channels of the latent y.")] = _MODEL.M,
    nh: Annotated[
        int, typer.Option("--Nh", min=1, help="Channels of the hyperprior and z.")
    ] = _MODEL.Nh,
    valid: Annotated[
        list[Path] | None,
        typer.Option(
            "--valid",
            help="Validation images (file or folder, repeatable), encoded and decoded through "
            f"the real codec at qualities {_QUALITIES}; of the last step's weights, their "
            "running average and those of the best periodic validation, the one with the best "
            "score (mean of lambda·MSE + bpp) is exported.",
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
        typer.Option(min=1, help="A line in DIR/train.log (and the figures shown) every N steps."),
    ] = _TRAIN.log_every,
    resume: Annotated[
        Path | None,
        typer.Option(
            help="Continue a run exactly from its state.pt: model, optimizer, schedule, step, "
            "RNG and data order.",
            dir_okay=False,
        ),
    ] = None,
    init: Annotated[
        Path | None,
        typer.Option(
            help="Fine-tune: start from the weights of a state.pt / best.pt or a shipped model "
            "file, with a fresh optimizer and schedule.",
            dir_okay=False,
        ),
    ] = None,
    export_from: Annotated[
        Path | None,
        typer.Option(
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
        str, typer.Option(help="Model id written into the checkpoint and every .aec file.")
    ] = "aec-hp-custom",
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Start over in a --out that holds a run.")
    ] = False,
) -> None:
    """Train a model on your own images (on CUDA when present), then export a checkpoint usable
    with --model, and its model card. Ctrl-C saves the state; --resume continues the run."""
    import shlex
    import sys
    import time

    try:
        budget = 0.0 if time_budget is None else parse_duration(time_budget)
        if time_budget is not None and budget <= 0:
            raise ValueError("give a time above 0")
    except ValueError as e:
        raise _usage_error(f"--time-budget: {e}") from None
    intervals = {}
    for name, text in (("--valid-every", valid_every), ("--checkpoint-every", checkpoint_every)):
        try:
            intervals[name] = parse_interval(text)
        except ValueError as e:
            raise _usage_error(f"{name}: {e}") from None

    from .train import ConsoleReporter, TrainOptions, TrainUsageError, run_training

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
              "checkpoint_every": ["checkpoint_every", "checkpoint_seconds"]}  # fmt: skip
    check, valid_at = intervals["--checkpoint-every"], intervals["--valid-every"]
    opts = TrainOptions(
        data=list(data or []),
        out_dir=out_dir,
        config=TrainConfig(
            steps=steps, batch_size=batch_size, patch_size=patch_size, lr=lr, lr_final=lr_final,
            anneal=anneal, warmup=warmup, seed=seed, checkpoint_every=check.steps,
            checkpoint_seconds=check.seconds, log_every=log_every, valid_every=valid_at.steps,
            valid_seconds=valid_at.seconds,
        ),
        model_config=ModelConfig(N=n, M=m, Nh=nh),
        valid=list(valid or []), resume=resume, init=init, device=device, bf16=bf16,
        model_id=model_id, force=force, command=command, time_budget=budget,
        started=STARTED if main_command else time.monotonic(), export_from=export_from,
    )  # fmt: skip
    with _guard():
        try:
            report = run_training(
                opts,
                given={f for g in given for f in fields.get(g, [g])},
                reporter=ConsoleReporter(err),
                warn=_warn,
                note=lambda s: err.print(s, soft_wrap=True),
            )
        except TrainUsageError as e:
            _fail(str(e))
            raise typer.Exit(2) from None
    weights = (
        "" if report.selected_step == report.steps else f", weights of step {report.selected_step}"
    )
    speed = f" at {report.steps_per_s:.1f} it/s" if report.steps_per_s > 0 else ""
    out.print(
        f"exported {report.model_path} ({report.model_id}, {report.fingerprint}): "
        f"{report.steps} steps{weights}, {report.elapsed:.0f} s of training{speed}",
        soft_wrap=True,
    )
    out.print(f"model card {report.card_path}", soft_wrap=True)
    if report.validation is not None:
        table = Table("quality", "bpp", "PSNR (dB)", title="validation (real files)")
        for f in report.validation.figures:
            table.add_row(f"{f.quality:g}", f"{f.bpp:.4f}", f"{f.psnr:.2f}")
        out.print(table)
