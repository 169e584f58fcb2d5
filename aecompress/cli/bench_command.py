"""The `aecompress bench` command: a thin Typer layer over the `aecompress.bench` package.

Register it on the application with ``app.command()(bench)``. Tables go to stdout; progress,
the model and device, skipped codecs and errors go to stderr. Exit codes, as for every command
(`common.guard`): 0 success, 1 failure (no inputs found, an unreadable image, a missing model,
a file that cannot be written, --plot without matplotlib), 2 usage error (an unknown codec, a
malformed --qualities or --sweep, --quiet with --verbose), 130 interrupted.

Only `bench.options` is imported here: the measuring parts need numpy, Pillow and torch and
are imported in the command, after the arguments are checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..bench.options import (
    DEFAULT_AEC_QUALITIES,
    DEFAULT_CODECS,
    DEFAULT_REFERENCE,
    KNOWN_CODECS,
    is_aec,
    parse_codecs,
    parse_reference,
    parse_sweeps,
    with_efforts,
)
from ..effort_levels import MAX_EFFORT
from ..errors import AecError
from ..fileio import check_writable
from .common import (
    DeviceOpt,
    ForceOpt,
    ModelOpt,
    VerboseOpt,
    detail,
    guard,
    note,
    open_codec,
    out,
    progress_bar,
    set_verbosity,
    warn,
)

# --quiet as for every command, but the tables are bench's result (like encode's files), so
# they are still printed: only the notes, warnings and the progress bar go.
QuietOpt = Annotated[
    bool,
    typer.Option("--quiet", help="Print only the tables and errors: no progress, notes or "
                 "warnings."),
]  # fmt: skip


def _file_option(name: str, help: str):
    return typer.Option(name, metavar="FILE", help=help, show_default=False)


def bench(
    inputs: Annotated[
        list[str],
        typer.Argument(
            metavar="IMAGE...",
            help="Image files, folders (searched recursively for image files) or glob "
            "patterns (quote them: 'photos/**/*.png').",
            show_default=False,
        ),
    ],
    codecs: Annotated[
        str | None,
        typer.Option(
            "--codecs",
            metavar="CODECS",
            # "[default: ...]" written out: a show_default text would be put in parentheses.
            help=f"Comma-separated codecs from {', '.join(KNOWN_CODECS)}. heic and jxl need "
            "pillow-heif / pillow-jxl-plugin: a default codec whose plugin is missing is "
            f"skipped with a note.  [default: {','.join(DEFAULT_CODECS)}]",
            show_default=False,
        ),
    ] = None,
    qualities: Annotated[
        str,
        typer.Option(
            "--qualities",
            metavar="Q,Q,...",
            help="aec's qualities, comma-separated, 1..100 (peers use their own).",
        ),
    ] = ",".join(f"{q:g}" for q in DEFAULT_AEC_QUALITIES),
    sweep: Annotated[
        list[str] | None,
        typer.Option(
            "--sweep",
            metavar="CODEC=V,V,...",
            help="Replace a peer's default sweep (repeatable; qualities 0..100, compression "
            "ratios for jp2), e.g. --sweep jpeg=10,50,90.",
            show_default=False,
        ),
    ] = None,
    reference: Annotated[
        str,
        typer.Option(
            "--reference", metavar="CODEC", help="Codec the BD-rates are measured against."
        ),
    ] = DEFAULT_REFERENCE,
    efforts: Annotated[
        list[int] | None,
        typer.Option(
            "--effort",
            metavar="N",
            help=f"aec's encoding effort, 0..{MAX_EFFORT} (as `encode --effort`); repeat it "
            "for one aec row per level (aec-e1, aec-e2, ...), each with its encode seconds.  "
            "[default: 0]",
            show_default=False,
        ),
    ] = None,
    device: DeviceOpt = "auto",
    model: ModelOpt = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            metavar="N",
            help="Processes for the peer codecs (over images); aec always runs alone in this "
            "process afterwards. 1 gives the cleanest peer timings.",
        ),
    ] = 1,
    json_out: Annotated[
        Path | None,
        _file_option("--json", "Write every point, the summary and the machine as JSON."),
    ] = None,
    csv_out: Annotated[
        Path | None, _file_option("--csv", "Write one CSV row per codec, setting and image.")
    ] = None,
    markdown_out: Annotated[
        Path | None,
        _file_option("--markdown", "Write the summary and per-setting tables as Markdown."),
    ] = None,
    plot_out: Annotated[
        Path | None,
        _file_option(
            "--plot", "Draw PSNR and MS-SSIM vs bpp for all codecs to a PNG (needs matplotlib)."
        ),
    ] = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Measure aec against JPEG, WebP, AVIF, JPEG 2000 (and HEIC, JPEG XL) on your images.

    Use it to see where a model stands: real file sizes (bpp, compression ratio), PSNR and
    MS-SSIM per setting, encode / decode speed, and BD-rates and PSNR at 0.25 / 0.5 / 1 bpp
    against JPEG. Kodak (24 images) with the defaults takes roughly 10-20 minutes on 2 CPU
    cores, mostly aec and MS-SSIM; --workers 2 shortens the peers' part.
    """
    with guard():
        set_verbosity(quiet, verbose)
        # Usage errors first, before any file is looked at or anything heavy imported.
        names = with_efforts(parse_codecs(codecs), efforts or ())
        sweeps = parse_sweeps(qualities, sweep or ())
        reference = parse_reference(reference)

        outputs = (json_out, csv_out, markdown_out, plot_out)
        for path in outputs:
            if path is not None:
                check_writable(path, force)
        if plot_out is not None:
            from ..bench.plot import require_matplotlib

            require_matplotlib()  # fail now, not after the whole measurement

        from ..bench.codecs import available_codecs, sweep_plan
        from ..bench.report import write_reports
        from ..bench.runner import run_bench, total_points
        from ..bench.tables import curve_table, summary_table
        from ..imagesets import find_images, read_images

        paths = find_images(inputs)
        if not paths:
            raise AecError(f"no image files found in {', '.join(inputs)}")
        runnable, skipped = available_codecs(names)
        for s in skipped:
            if codecs is None:
                note(str(s))  # a default codec without its plugin: expected
            else:
                warn(str(s))  # a codec asked for by name
        if not runnable:
            raise AecError("none of the requested codecs can run here")
        if reference not in runnable:
            note(f"no BD-rates: the reference, {reference}, is not measured")
        codec = open_codec(device, model) if any(is_aec(c) for c in runnable) else None
        images = read_images(paths)
        for im in images:
            detail(f"{im.name}: {im.width}×{im.height}")
        for name, values in sweep_plan(runnable, sweeps).items():
            detail(f"{name} at {','.join(f'{v:g}' for v in values)}")

        total = total_points(images, runnable, sweeps)
        note(f"{len(images)} images × {total // len(images)} settings of {', '.join(runnable)}")
        with progress_bar() as bar:
            task = bar.add_task("bench", total=total) if bar is not None else None
            started: set[str] = set()

            def advance(done: int, label: str) -> None:
                if label not in started:  # -v: a line as each codec starts
                    started.add(label)
                    detail(f"measuring {label}")
                if bar is not None:
                    bar.update(task, advance=done, description=label)

            result = run_bench(
                images,
                runnable,
                sweeps=sweeps,
                aec=codec,
                workers=workers,
                reference=reference,
                progress=advance,
                skipped=skipped,
            )

        out.print(curve_table(result))
        out.print()
        out.print(summary_table(result))
        for path in write_reports(result, *outputs, force=force):
            note(f"wrote {path}")
        note(f"done in {result.seconds:.0f} s")
