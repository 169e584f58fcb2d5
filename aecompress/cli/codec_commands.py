"""The codec commands: `encode`, `decode`, `info` and `models`."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from ..container import DEFAULT_MAX_PIXELS
from ..device import resolve_device
from ..errors import AecError, UsageError
from ..operations import (
    STDIO,
    CodecPool,
    decode_one,
    encode_one,
    info_one,
    input_ids,
    list_models,
    output_paths,
)
from ..quality import DEFAULT_QUALITY, QUALITY_MAX, QUALITY_MIN
from ..registry import ModelLibrary
from ..target import Target, parse_size
from .common import (
    DecodeModelsOpt,
    DeviceOpt,
    FailFastOpt,
    ForceOpt,
    MaxPixelsOpt,
    ModelOpt,
    announce,
    err,
    guard,
    open_codec,
    out,
    run_batch,
    warn,
)


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
            min=QUALITY_MIN,
            max=QUALITY_MAX,
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
    with guard():
        goal = _goal(quality, target_size, target_bpp, target_psnr)
        quality = DEFAULT_QUALITY if quality is None else quality
        targets = output_paths(inputs, output, ".aec")
        codec = open_codec(device, model)
        protect = input_ids(inputs)
        batch = run_batch(
            inputs,
            targets,
            lambda s, t: encode_one(codec, s, t, quality, force, protect, goal),
            fail_fast,
        )
        for r in batch.reports:
            for w in r.warnings:
                warn(f"{r.input}: {w}")
        # With the .aec data on stdout, the report must go to stderr.
        console = err if STDIO in targets else out
        if as_json:
            console.print_json(json.dumps([r.to_dict() for r in batch.reports]))
        elif batch.reports:
            console.print(_encode_table(batch.reports))
    if batch.failed:
        raise typer.Exit(1)


def _goal(
    quality: float | None, size: str | None, bpp: float | None, psnr: float | None
) -> Target | None:
    """The --target-* option given, if any; UsageError for two at once or a bad size."""
    options = {"--quality": quality, "--target-size": size, "--target-bpp": bpp,
               "--target-psnr": psnr}  # fmt: skip
    given = [name for name, value in options.items() if value is not None]
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)} cannot be used together")
    if size is not None:
        try:
            return Target("bytes", parse_size(size))
        except AecError as e:
            raise UsageError(f"--target-size: {e}") from None
    if bpp is not None:
        return Target("bpp", bpp)
    if psnr is not None:
        return Target("psnr", psnr)
    return None


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
    with guard():
        targets = output_paths(inputs, output, ".png")
        library = ModelLibrary(models or [])
        library.check()
        codecs = CodecPool(library, resolve_device(device), on_load=announce)
        protect = input_ids(inputs)
        batch = run_batch(
            inputs,
            targets,
            lambda s, t: decode_one(codecs, s, t, force, max_pixels, protect),
            fail_fast,
        )
        if STDIO not in targets:
            for r in batch.reports:
                out.print(
                    f"{r.input} -> {r.output}  {r.width}x{r.height} {r.mode}  "
                    f"{r.output_bytes:,} B  {r.seconds:.2f} s",
                    soft_wrap=True,
                )
    if batch.failed:
        raise typer.Exit(1)


def info(
    files: Annotated[list[str], typer.Argument(help=".aec files to describe; '-' = stdin.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    models: DecodeModelsOpt = None,
) -> None:
    """Show what an .aec file's header says (model, size, mode, quality, streams), its bpp,
    and the model file that decodes it (or that it is not available here)."""
    with guard():
        library = ModelLibrary(models or [])
        library.check()
        batch = run_batch(files, files, lambda s, _t: info_one(s, max_pixels, library))
        if as_json:
            out.print_json(json.dumps([r.to_dict() for r in batch.reports]))
        else:
            for r in batch.reports:
                out.print(
                    f"{r.file}: .aec v{r.format_version}, model {r.model_id} ({r.fingerprint}), "
                    f"{r.width}x{r.height} {r.mode}, quality {r.quality:g}, "
                    f"{r.file_bytes:,} bytes (z {r.z_bytes:,}, y {r.y_bytes:,}, "
                    f"alpha {r.alpha_bytes:,}, palette {r.palette_bytes:,}, "
                    f"icc {r.icc_bytes:,}), {r.bpp:.4f} bpp; "
                    + (f"model file {r.model_file}" if r.model_file else "model not available"),
                    soft_wrap=True,
                )
    if batch.failed:
        raise typer.Exit(1)


def models(
    extra: DecodeModelsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the models available for decoding, and the default for encoding: id, fingerprint,
    size, what each was trained on and for how long, and its bpp range on Kodak where recorded.

    Models are looked for in --model files, $AECOMPRESS_MODEL, the models installed with the
    package and the folders of $AECOMPRESS_MODELS."""
    with guard():
        library = ModelLibrary(extra or [])
        reports = list_models(library)
        for problem in library.problems:
            warn(problem)
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
