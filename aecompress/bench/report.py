"""What `aecompress bench` writes to files: JSON, CSV, Markdown and the rate–distortion plot
(drawn in `plot`; the console tables are in `tables`).

JSON (``--json``), one object; floats that are not finite are written as null::

    {
      "format": "aecompress-bench", "version": 1,
      "reference": "jpeg",                # the codec the BD-rates are measured against
      "seconds": 812.4,                   # wall time of the whole measurement
      "machine": {"date", "platform", "machine", "processor", "cpu_count", "python", "numpy",
                  "pillow", "torch", "torch_threads", "device", "model_id",
                  "model_fingerprint", "workers"},
      "codecs": [{"name", "description", "sweep_unit",   # "quality", or "ratio" for jp2
                  "sweep": [...], "library"}],
      "skipped": [{"codec", "reason"}],
      "images": [{"name", "width", "height"}],
      "points": [{"codec", "quality", "image", "width", "height", "bytes", "bpp", "ratio",
                  "psnr", "ms_ssim", "encode_ms", "decode_ms"}],  # codec × value × image
      "curves": [{"codec", "quality", "images", "bytes", "bpp", "ratio", "psnr", "ms_ssim",
                  "ms_ssim_db", "encode_ms", "decode_ms", "encode_mpix_s", "decode_mpix_s"}],
      "summary": [{"codec", "reference", "bd_rate_psnr", "bd_rate_ms_ssim",
                   "psnr_at_bpp": {"0.25": dB|null, "0.5": ..., "1": ...},
                   "bpp_min", "bpp_max"}]
    }

"quality" is the swept value (the compression ratio for jp2); bpp = bytes × 8 / pixels;
ratio = 3 × pixels / bytes; curve values are means over images except encode_ms / decode_ms
(medians per image); see `runner` (points) and `summary` (curves, summary) for every
definition.

CSV (``--csv``): one row per (codec, swept value, image), the "points" fields as columns.
Markdown (``--markdown``): the machine, the summary table and the per-value table.
Plot (``--plot``, needs matplotlib): PSNR vs bpp with the compression ratio 24 / bpp on a
secondary axis, and MS-SSIM (dB) vs bpp, every codec on both.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..fileio import write_output
from .plot import plot_png
from .results import BenchResult
from .tables import CURVE_COLUMNS, curve_cells, infos, num, pct, targets

JSON_FORMAT = "aecompress-bench"
JSON_VERSION = 1
POINT_FIELDS = (
    "codec", "quality", "image", "width", "height", "bytes", "bpp", "ratio", "psnr", "ms_ssim",
    "encode_ms", "decode_ms",
)  # fmt: skip


# --------------------------------------------------------------------------------------------
# JSON and CSV


def _clean(value: Any) -> Any:
    """Non-finite floats → None, recursively (strict JSON has no Infinity / NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def to_dict(result: BenchResult) -> dict[str, Any]:
    """The documented JSON shape (module docstring)."""
    return _clean(
        {
            "format": JSON_FORMAT,
            "version": JSON_VERSION,
            "reference": result.reference,
            "seconds": result.seconds,
            "machine": dataclasses.asdict(result.machine),
            "codecs": [dataclasses.asdict(c) for c in result.codecs],
            "skipped": [dataclasses.asdict(s) for s in result.skipped],
            "images": [
                {"name": im.name, "width": im.width, "height": im.height} for im in result.images
            ],
            "points": [dataclasses.asdict(p) for p in result.points],
            "curves": [dataclasses.asdict(c) for c in result.curves],
            "summary": [
                {
                    **dataclasses.asdict(s),
                    "psnr_at_bpp": {f"{k:g}": v for k, v in s.psnr_at_bpp.items()},
                }
                for s in result.summary
            ],
        }
    )


def json_bytes(result: BenchResult) -> bytes:
    return (json.dumps(to_dict(result), indent=1, allow_nan=False) + "\n").encode()


def csv_bytes(result: BenchResult) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(POINT_FIELDS)
    for p in result.points:
        writer.writerow([getattr(p, f) for f in POINT_FIELDS])
    return buffer.getvalue().encode()


# --------------------------------------------------------------------------------------------
# Markdown


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]], right_from: int = 1) -> str:
    align = ["---" if i < right_from else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(result: BenchResult) -> str:
    m = result.machine
    info = infos(result)
    at = targets(result)
    sizes = sorted({f"{im.width}×{im.height}" for im in result.images})
    lines = [
        "# aecompress bench",
        "",
        f"{len(result.images)} images ({', '.join(sizes)}); measured {m.date} in "
        f"{result.seconds:.0f} s on {m.processor} ({m.cpu_count} CPUs, {m.platform}); "
        f"aec on {m.device or '—'}, torch {m.torch or '—'} with {m.torch_threads or '—'} "
        f"threads; Pillow {m.pillow}; peers in {m.workers} process(es).",
        "",
        "bpp = file bytes × 8 / pixels (headers included); PSNR and MS-SSIM on uint8 RGB, "
        "averaged per image; BD-rate (PCHIP) against "
        f"{result.reference}, negative = smaller files; MS-SSIM BD-rate on "
        "−10·log10(1 − MS-SSIM).",
        "",
        "## Summary",
        "",
        _md_table(
            ["codec", "settings", f"BD-rate PSNR vs {result.reference}", "BD-rate MS-SSIM"]
            + [f"PSNR @ {x:g} bpp" for x in at],
            [
                [
                    s.codec,
                    f"{info[s.codec].description} ({info[s.codec].library})"
                    if s.codec in info
                    else "",
                    pct(s.bd_rate_psnr),
                    pct(s.bd_rate_ms_ssim),
                    *(num(s.psnr_at_bpp.get(x), ".2f") for x in at),
                ]
                for s in result.summary
            ],
            right_from=2,
        ),
        "",
    ]
    if result.skipped:
        skipped = "; ".join(f"{s.codec} ({s.reason})" for s in result.skipped)
        lines += [f"Skipped: {skipped}.", ""]
    lines += [
        "## Per setting",
        "",
        _md_table(
            [c.header for c in CURVE_COLUMNS],
            [curve_cells(c, info.get(c.codec)) for c in result.curves],
        ),
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Writing


def write_reports(
    result: BenchResult,
    json_path: Path | None = None,
    csv_path: Path | None = None,
    markdown_path: Path | None = None,
    plot_path: Path | None = None,
    force: bool = False,
) -> list[Path]:
    """Write the requested files atomically; returns the paths written. Raises AecError."""
    written = []
    for path, make in (
        (json_path, json_bytes),
        (csv_path, csv_bytes),
        (markdown_path, lambda r: markdown(r).encode()),
        (plot_path, plot_png),
    ):
        if path is not None:
            write_output(Path(path), make(result), force)
            written.append(Path(path))
    return written
