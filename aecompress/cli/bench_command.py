"""The `aecompress bench` command: a thin Typer layer over the `aecompress.bench` package.

Register it on the application with ``app.command()(bench)``. Tables go to stdout; progress,
the model and device, skipped codecs and errors go to stderr. Exit codes: 0 success, 1 failure
(no inputs found, an unreadable image, a missing model, a file that cannot be written, --plot
without matplotlib), 2 usage error (an unknown codec, a malformed --qualities or --sweep).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .. import bench as B
from ..bench import report as R
from ..errors import AecError
from ..imagesets import find_images, read_images

_CODEC_HELP = (
    f"Comma-separated codecs from {', '.join(B.KNOWN_CODECS)}. Default: "
    f"{','.join(B.DEFAULT_CODECS)} (heic and jxl only when pillow-heif / pillow-jxl-plugin "
    "are installed; a codec whose plugin is missing is skipped with a note)."
)


def _consoles() -> tuple[Console, Console]:
    # Piped output is not wrapped at 80 columns: tables stay one row per setting.
    out = Console(highlight=False, width=None if Console().is_terminal else 160)
    err = Console(
        stderr=True, highlight=False, width=None if Console(stderr=True).is_terminal else 160
    )
    return out, err


def _parse_sweeps(qualities: str, sweep: list[str] | None) -> dict[str, list[float]]:
    """--qualities and --sweep CODEC=V1,V2 → codec → values; AecError when malformed."""
    sweeps = {B.AEC: B.parse_values(qualities, "--qualities")}
    for item in sweep or []:
        name, sep, values = item.partition("=")
        name = name.strip().lower()
        if not sep or not name:
            raise AecError(f"--sweep: expected CODEC=V1,V2,..., got {item!r}")
        if name not in B.KNOWN_CODECS:
            raise B.UnknownCodecError(
                f"--sweep: unknown codec {name!r} (choose from {', '.join(B.KNOWN_CODECS)})"
            )
        sweeps[name] = B.parse_values(values, f"--sweep {name}")
    for name, values in sweeps.items():
        B.check_sweep(name, values)
    return sweeps


def bench(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Images, folders (searched recursively for image files) or glob patterns "
            "(quote them: 'photos/**/*.png')."
        ),
    ],
    codecs: Annotated[str | None, typer.Option("--codecs", help=_CODEC_HELP)] = None,
    qualities: Annotated[
        str,
        typer.Option(
            "--qualities", help="aec's qualities, comma-separated, 1..100 (peers use their own)."
        ),
    ] = ",".join(f"{q:g}" for q in B.DEFAULT_AEC_QUALITIES),
    sweep: Annotated[
        list[str] | None,
        typer.Option(
            "--sweep",
            help="Replace a peer's default sweep: CODEC=V1,V2,... (repeatable; qualities 0..100, "
            "compression ratios for jp2), e.g. --sweep jpeg=10,50,90.",
        ),
    ] = None,
    reference: Annotated[
        str, typer.Option("--reference", help="Codec the BD-rates are measured against.")
    ] = B.DEFAULT_REFERENCE,
    device: Annotated[
        str,
        typer.Option(
            "--device", help="Where aec runs: auto | cpu | cuda (auto = CUDA if present)."
        ),
    ] = "auto",
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Model for aec: a checkpoint file, or the id or fingerprint of a model listed by "
            "`aecompress models` (default: $AECOMPRESS_MODEL, else the shipped default).",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            help="Processes for the peer codecs (over images); aec always runs alone in this "
            "process afterwards. 1 gives the cleanest peer timings.",
        ),
    ] = 1,
    json_out: Annotated[
        Path | None,
        typer.Option("--json", help="Write every point, the summary and the machine as JSON."),
    ] = None,
    csv_out: Annotated[
        Path | None, typer.Option("--csv", help="Write one CSV row per codec, setting and image.")
    ] = None,
    markdown_out: Annotated[
        Path | None,
        typer.Option("--markdown", help="Write the summary and per-setting tables as Markdown."),
    ] = None,
    plot_out: Annotated[
        Path | None,
        typer.Option(
            "--plot", help="Draw PSNR and MS-SSIM vs bpp for all codecs to a PNG (matplotlib)."
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Replace existing output files.")] = (
        False
    ),
) -> None:
    """Measure aec against JPEG, WebP, AVIF, JPEG 2000 (and HEIC, JPEG XL) on your images.

    Use it to see where a model stands: real file sizes (bpp, compression ratio), PSNR and
    MS-SSIM per setting, encode / decode speed, and BD-rates and PSNR at 0.25 / 0.5 / 1 bpp
    against JPEG. Kodak (24 images) with the defaults takes roughly 10-20 minutes on 2 CPU
    cores, mostly aec and MS-SSIM; --workers 2 shortens the peers' part.
    """
    out, err = _consoles()

    def fail(message: str, code: int = 1) -> typer.Exit:
        err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
        return typer.Exit(code)

    try:
        names = B.parse_codecs(codecs)
        sweeps = _parse_sweeps(qualities, sweep)
        if reference.strip().lower() not in B.KNOWN_CODECS:
            raise B.UnknownCodecError(
                f"--reference: unknown codec {reference!r} "
                f"(choose from {', '.join(B.KNOWN_CODECS)})"
            )
    except AecError as e:  # UnknownCodecError and malformed values: usage errors
        raise fail(str(e), 2) from None
    reference = reference.strip().lower()

    try:
        from ..fileio import check_writable

        for path in (json_out, csv_out, markdown_out, plot_out):
            if path is not None:
                check_writable(path, force)
        if plot_out is not None:
            R.require_matplotlib()
        paths = find_images(inputs)
        if not paths:
            raise AecError(f"no image files found in {', '.join(inputs)}")
        runnable, skipped = B.available_codecs(names)
        for s in skipped:
            err.print(escape(str(s)), soft_wrap=True)
        if not runnable:
            raise AecError("none of the requested codecs can run here")
        if reference not in runnable:
            err.print(f"note: {reference} is not measured, so there are no BD-rates")
        codec = _open_codec(device, model, err) if B.AEC in runnable else None
        images = read_images(paths)
    except AecError as e:
        raise fail(str(e)) from None

    total = B.total_points(images, runnable, sweeps)
    err.print(f"{len(images)} images × {total // len(images)} settings of {', '.join(runnable)}")
    progress = Progress(
        TextColumn("{task.description:>8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
    with progress:
        task = progress.add_task("bench", total=total)

        def advance(done: int, label: str) -> None:
            progress.update(task, advance=done, description=label)

        try:
            result = B.run_bench(
                images,
                runnable,
                sweeps=sweeps,
                aec=codec,
                workers=workers,
                reference=reference,
                progress=advance,
                skipped=skipped,
            )
        except AecError as e:
            raise fail(str(e)) from None

    out.print(R.curve_table(result))
    out.print()
    out.print(R.summary_table(result))
    try:
        written = R.write_reports(result, json_out, csv_out, markdown_out, plot_out, force)
    except AecError as e:
        raise fail(str(e)) from None
    for path in written:
        err.print(f"wrote {path}")
    err.print(f"done in {result.seconds:.0f} s")


def _open_codec(device: str, model: str | None, err: Console):
    from ..checkpoint import load_checkpoint
    from ..codec import Codec
    from ..device import describe, resolve_device
    from ..registry import ModelLibrary

    dev = resolve_device(device)
    ckpt = load_checkpoint(ModelLibrary().encoder_model(model))
    err.print(f"model {ckpt.model_id} ({ckpt.fingerprint.hex()}) on {describe(dev)}")
    return Codec(ckpt, dev)
