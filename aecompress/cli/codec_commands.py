"""The codec commands: `encode`, `decode`, `info` and `models`.

Arguments are checked and outputs planned before the library is imported: a usage error, an
existing output or a missing folder is reported at once, without waiting for torch. So is an
.aec file given to encode, and anything decode can find wrong with a file without decoding it
(decodeplan.py): a corrupt file fails in the time `info` takes.
"""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from ..container import DEFAULT_MAX_PIXELS
from ..decodeplan import plan_decode
from ..effort_levels import DEFAULT_EFFORT, MAX_EFFORT
from ..errors import AecError, UsageError
from ..imageformats import DEFAULT_IMAGE_QUALITY, ImageOptions
from ..inputs import STDIO, expand_patterns, input_ids
from ..outputs import DECODED, ENCODED, check_job, output_paths
from ..quality import DEFAULT_QUALITY, QUALITY_MAX, QUALITY_MIN
from ..registry import ModelLibrary
from ..target import Target, parse_size
from .common import (
    BatchClock,
    BatchResult,
    DecodeModelsOpt,
    DeviceOpt,
    FailFastOpt,
    ForceOpt,
    LazyCodec,
    MaxPixelsOpt,
    ModelOpt,
    QuietOpt,
    Throughput,
    VerboseOpt,
    announce,
    detail,
    err,
    freeze_imported_objects,
    guard,
    note,
    out,
    run_batch,
    set_verbosity,
    show_progress,
    throughput,
    throughput_line,
    verbosity,
    warn,
)
from .image_progress import DECODE_STAGES, ENCODE_STAGES, ImageProgress
from .pipeline import TorchThreads, run_inputs
from .tables import encode_table

if TYPE_CHECKING:
    from rich.console import Console

AecFilesArg = Annotated[
    list[str],
    typer.Argument(
        metavar="FILE.aec...",
        help=".aec files; quoted glob patterns are expanded; '-' = standard input.",
        show_default=False,
    ),
]
MkdirOpt = Annotated[
    bool, typer.Option("--mkdir", help="Create the output folder (-o) if it does not exist.")
]
JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json",
        help='Print the report as JSON: {"results": [...], "failed": [{"input", "error"}], '
        '"not_processed": [...], "summary": {"images", "megapixels", "seconds", '
        '"images_per_s", "megapixels_per_s"}}.',
    ),
]


def encode(
    inputs: Annotated[
        list[str],
        typer.Argument(
            metavar="IMAGE...",
            help="Images to compress (PNG, JPEG, WebP, AVIF, ...); quoted glob patterns such "
            "as 'photos/*.png' are expanded; '-' = standard input.",
            show_default=False,
        ),
    ],
    output: Annotated[
        str | None,
        typer.Option(
            "-o",
            "--output",
            metavar="PATH",
            help="Output .aec file (one input; '-' = standard output, not a terminal), or a "
            "directory to write into: an existing one, or any path ending in '/'. "
            "Default: each input's name with .aec, beside it. Images are written by decode.",
            show_default=False,
        ),
    ] = None,
    quality: Annotated[
        float | None,
        typer.Option(
            "-q",
            "--quality",
            metavar="Q",
            min=QUALITY_MIN,
            max=QUALITY_MAX,
            help=f"{QUALITY_MIN:g} (smallest) to {QUALITY_MAX:g} (best); fractions allowed. "
            f"[default: {DEFAULT_QUALITY:g}]",
            show_default=False,
        ),
    ] = None,
    target_size: Annotated[
        str | None,
        typer.Option(
            "--target-size",
            metavar="SIZE",
            help="Largest file that fits this size: 900, 60k or 60KB (1000 bytes each), "
            "30KiB (1024), 1.5MB, 2MiB.",
            show_default=False,
        ),
    ] = None,
    target_bpp: Annotated[
        float | None,
        typer.Option(
            "--target-bpp",
            metavar="BPP",
            min=0,
            help="Largest file within this many bits per pixel.",
            show_default=False,
        ),
    ] = None,
    target_psnr: Annotated[
        float | None,
        typer.Option(
            "--target-psnr",
            metavar="DB",
            min=0,
            help="Smallest file reaching this PSNR (dB).",
            show_default=False,
        ),
    ] = None,
    metrics: Annotated[
        bool,
        typer.Option(
            "--metrics/--no-metrics",
            help="Report PSNR and MS-SSIM of what decode will return (MS-SSIM n/a under 11 "
            "pixels a side). They need the decoder's synthesis, which at effort 0 takes about "
            "as long as the analysis (at the default effort about a tenth of the encode); "
            "--no-metrics skips them (the report then shows '-', JSON null).",
        ),
    ] = True,
    effort: Annotated[
        int,
        typer.Option(
            "-e",
            "--effort",
            metavar="N",
            min=0,
            max=MAX_EFFORT,
            help=f"0 to {MAX_EFFORT}: encoding time spent on a smaller file at the same "
            "quality. Above 0 the latents of each image are refined for this image under the "
            "decoder (more steps at each level); every decoder reads the result. "
            f"[default: {DEFAULT_EFFORT}]",
            show_default=False,
        ),
    ] = DEFAULT_EFFORT,
    device: DeviceOpt = "auto",
    model: ModelOpt = None,
    force: ForceOpt = False,
    mkdir: MkdirOpt = False,
    fail_fast: FailFastOpt = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Compress images to .aec files and report size, ratios, bpp, PSNR and MS-SSIM.

    Use -q for a fixed quality, or one of the --target-* options to let aecompress search the
    quality that meets a file size, a bpp or a PSNR (the chosen quality is reported).

    With several inputs, one file is written while the next is coded, and a last line gives
    the throughput: images written and their megapixels, per second from the first input
    started to the last finished (start-up not counted).
    """
    with guard():
        set_verbosity(quiet, verbose)
        goal = _goal(quality, target_size, target_bpp, target_psnr)
        quality = DEFAULT_QUALITY if quality is None else quality
        inputs = expand_patterns(inputs)
        targets = output_paths(inputs, output, ENCODED, mkdir)
        codecs = LazyCodec(device, model)
        protect = input_ids(inputs)
        progress = ImageProgress(_bar_console(), ENCODE_STAGES, len(inputs))
        clock, threads = BatchClock(), TorchThreads()

        def first(index: int, source: str, target: str):  # the torch part; returns the rest
            check_job(source, target, force, protect)  # before torch is waited for
            from ..operations import encode_finish, encode_start

            clock.start()
            codec = codecs.get()
            with progress.image(codec, index, source), threads.watch(codec):
                job = encode_start(
                    codec, source, target, quality, force, protect, goal, metrics, effort
                )
            return functools.partial(encode_finish, job)

        def whole(index: int, source: str, target: str):  # the plain path: one input
            check_job(source, target, force, protect)
            from ..operations import encode_one

            clock.start()
            codec = codecs.get()
            with progress.image(codec, index, source):
                return encode_one(
                    codec, source, target, quality, force, protect, goal, metrics, effort
                )

        def done(report) -> None:
            detail(f"{report.input} -> {report.output}  {report.output_bytes:,} B  "
                   f"q {report.quality:g}  {report.seconds:.2f} s")  # fmt: skip

        try:
            batch = run_inputs(inputs, targets, first, whole, fail_fast, threads, done)
        finally:
            progress.close()
        clock.stop()
        summary = throughput(batch.reports, clock.seconds)
        for r in batch.reports:
            for w in r.warnings:
                warn(f"{r.input}: {w}")
        # With the .aec data on stdout, the report must go to stderr.
        console = err if STDIO in targets else out
        if as_json:
            console.print_json(_batch_json(batch, summary))
        elif batch.reports and not verbosity.quiet:
            console.print(encode_table(batch.reports))
        _note_throughput(len(inputs), summary)
    if batch.failed:
        raise typer.Exit(1)


def _bar_console() -> Console | None:
    """Where progress bars go: stderr on a terminal, unless --quiet; else nowhere."""
    return err if show_progress() else None


def _batch_json(batch: BatchResult, summary: Throughput | None = None) -> str:
    report = {
        "results": [r.to_dict() for r in batch.reports],
        "failed": [f.to_dict() for f in batch.failures],
        "not_processed": batch.not_processed,
    }
    if summary is not None:
        report["summary"] = summary.to_dict()
    return json.dumps(report)


def _note_throughput(count: int, summary: Throughput) -> None:
    """After a batch of several inputs that wrote something: its throughput (not with
    --quiet)."""
    if count > 1 and summary.images:
        note(throughput_line(summary))


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


def decode(
    inputs: AecFilesArg,
    output: Annotated[
        str | None,
        typer.Option(
            "-o",
            "--output",
            metavar="PATH",
            help="Output image (one input; '-' = standard output as PNG, not a terminal), or "
            "a directory to write into: an existing one, or any path ending in '/'. The "
            "extension picks the format: .png, .jpg, .webp, .avif, .jp2, .tif, .bmp, .gif, ... "
            "Default: the input's name with .png added (photo.aec -> photo.aec.png), never the "
            "name of the image it was made from.",
            show_default=False,
        ),
    ] = None,
    image_quality: Annotated[
        int | None,
        typer.Option(
            "--image-quality",
            metavar="Q",
            min=1,
            max=100,
            help="Write the image lossily at quality Q (1-100). JPEG and AVIF always are "
            f"(default {DEFAULT_IMAGE_QUALITY}); WebP and JPEG 2000 (.jp2) are lossless unless "
            "this is given. For JPEG 2000, Q is the PSNR to reach in dB (30-50 is useful).",
            show_default=False,
        ),
    ] = None,
    drop_alpha: Annotated[
        bool,
        typer.Option(
            "--drop-alpha",
            help="Allow writing an image with transparency to a format without alpha (JPEG, "
            "BMP, ...), which discards it; without this such a file is refused.",
        ),
    ] = False,
    reduce_colours: Annotated[
        bool,
        typer.Option(
            "--reduce-colours",
            help="Allow writing a full-colour image to GIF, which holds 256 colours: it is "
            "reduced to a 256-colour palette, a loss larger than the codec's; without this "
            "such a file is refused. Palette and grayscale images fit GIF as they are.",
        ),
    ] = False,
    device: DeviceOpt = "auto",
    models: DecodeModelsOpt = None,
    force: ForceOpt = False,
    mkdir: MkdirOpt = False,
    fail_fast: FailFastOpt = False,
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Decode .aec files back to images in their original size and colour mode.

    Each file is decoded with the model it names (see `aecompress models`), so files written by
    different models decode together; a file whose model is not available is an error.

    With several inputs, one image is written while the next is decoded, and a last line gives
    the throughput: images written and their megapixels, per second from the first input
    started to the last finished (start-up not counted).
    """
    with guard():
        set_verbosity(quiet, verbose)
        inputs = expand_patterns(inputs)
        targets = output_paths(inputs, output, DECODED, mkdir)
        protect = input_ids(inputs)
        library = ModelLibrary(models or [])
        library.check()
        options = ImageOptions(image_quality, drop_alpha, reduce_colours)
        progress = ImageProgress(_bar_console(), DECODE_STAGES, len(inputs))
        clock, threads = BatchClock(), TorchThreads()

        @functools.cache
        def codec_pool():  # made on first use: it needs torch
            from ..allocator import keep_freed_memory
            from ..device import resolve_device
            from ..operations import CodecPool

            keep_freed_memory()  # the transforms' large tensors reuse the heap (allocator.py)
            freeze_imported_objects()
            return CodecPool(library, resolve_device(device), on_load=announce)

        def checked(source: str, target: str):
            """Everything that needs no decoding, before torch: a corrupt file, a loss not
            asked for or a missing model fails at once (decodeplan.py)."""
            check_job(source, target, force, protect, decoded=True)
            return plan_decode(source, target, max_pixels, options, library)

        def first(index: int, source: str, target: str):  # the torch part; returns the rest
            plan = checked(source, target)
            from ..operations import decode_finish, decode_start

            clock.start()
            codecs = codec_pool()
            with progress.image(codecs, index, source), threads.watch(codecs):
                job = decode_start(
                    codecs, source, target, force, max_pixels, protect, options, plan
                )
            return functools.partial(decode_finish, job)

        def whole(index: int, source: str, target: str):  # the plain path: one input
            plan = checked(source, target)
            from ..operations import decode_one

            clock.start()
            codecs = codec_pool()
            with progress.image(codecs, index, source):
                return decode_one(codecs, source, target, force, max_pixels, protect, options, plan)

        try:
            batch = run_inputs(inputs, targets, first, whole, fail_fast, threads)
        finally:
            progress.close()
        clock.stop()
        summary = throughput(batch.reports, clock.seconds)
        # With the image on stdout, the report must go to stderr.
        console = err if STDIO in targets else out
        if as_json:
            console.print_json(_batch_json(batch, summary))
        elif not verbosity.quiet and STDIO not in targets:
            for r in batch.reports:
                out.print(
                    f"{r.input} -> {r.output}  {r.width}x{r.height} {r.mode}  "
                    f"{r.output_bytes:,} B  {r.seconds:.2f} s",
                    soft_wrap=True,
                )
        _note_throughput(len(inputs), summary)
    if batch.failed:
        raise typer.Exit(1)


def info(
    files: AecFilesArg,
    as_json: JsonOpt = False,
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    models: DecodeModelsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Show what an .aec file's header says (model, size, mode, quality, streams), its bpp,
    and the model file that decodes it (or that it is not available here).
    """
    from ..aecinfo import info_one

    with guard():
        set_verbosity(quiet, False)
        files = expand_patterns(files)
        library = ModelLibrary(models or [])
        library.check()
        batch = run_batch(files, files, lambda _i, s, _t: info_one(s, max_pixels, library))
        if as_json:
            out.print_json(_batch_json(batch))
        elif not verbosity.quiet:
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
    quiet: QuietOpt = False,
) -> None:
    """List the models available for decoding, and the default for encoding: id, fingerprint,
    size, what each was trained on and for how long, and its bpp range on Kodak where recorded.

    Models are looked for in --model files, $AECOMPRESS_MODEL, the models installed with the
    package and the folders of $AECOMPRESS_MODELS.
    """
    from ..modellist import list_models

    with guard():
        set_verbosity(quiet, False)
        library = ModelLibrary(extra or [])
        reports = list_models(library)
        for problem in library.problems:
            warn(problem)
        note(f"looked in: {library.describe_places()}")
        if as_json:
            out.print_json(json.dumps([r.to_dict() for r in reports]))
        elif reports and not verbosity.quiet:
            out.print(_models_table(reports))
        elif not reports:
            note("no models found")
    if not reports:
        raise typer.Exit(1)


def _models_table(reports):
    """One row per model, narrow enough for 80 columns: the details are in --json."""
    from rich.table import Table

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
        training = _training_cell(r)
        kodak = "-"
        if r.kodak:
            lo, hi = r.kodak[0], r.kodak[-1]
            kodak = (
                f"q {lo['quality']:g}-{hi['quality']:g}\n{lo['bpp']:.2f}-{hi['bpp']:.2f} bpp\n"
                f"{lo['psnr']:.1f}-{hi['psnr']:.1f} dB"
            )
        t.add_row(model, f"{r.bytes / 2**20:.1f}", trained_on, training or "-", kodak)
    return t


def _training_cell(r) -> str:
    """The whole history: every run that made the weights, not only the last one."""
    if r.total_steps is None:
        return ""
    runs = f"{len(r.runs)} runs, " if len(r.runs) > 1 else ""
    when = ", ".join(x for x in (_minutes(r.total_seconds), "+".join(r.total_devices)) if x)
    return f"{runs}{r.total_steps:,} steps\n{when}"


def _minutes(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"
