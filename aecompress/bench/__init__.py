"""`aecompress bench`: rate–distortion and speed of aec against the peer codecs, on the same
images in one run.

One job per module:

* `peers`: JPEG, WebP, AVIF, JPEG 2000, HEIC and JPEG XL through Pillow, in memory;
* `aec`: aec as a benchmarked codec (the one place that calls `Codec`);
* `codecs`: codec names, defaults, swept values and which codecs can run here;
* `runner`: the sweeps measured point by point, worker processes, `run_bench`;
* `summary`: mean curves, BD-rates between codecs, PSNR at chosen bpps;
* `bdrate`: the Bjøntegaard delta rate and its PCHIP interpolation;
* `machine`: where the benchmark ran;
* `results`: the records a run produces;
* `report`: tables, JSON, CSV, Markdown and the plot.

This package exports what the command and the scripts use.
"""

from __future__ import annotations

from .codecs import (
    AEC,
    DEFAULT_AEC_QUALITIES,
    DEFAULT_CODECS,
    DEFAULT_REFERENCE,
    KNOWN_CODECS,
    SweepError,
    UnknownCodecError,
    available_codecs,
    parse_codecs,
    parse_reference,
    parse_sweeps,
)
from .report import curve_table, require_matplotlib, summary_table, write_reports
from .results import BenchResult, CodecSummary, CurvePoint, ImagePoint
from .runner import run_bench, total_points
from .summary import summarize

__all__ = [
    "AEC",
    "DEFAULT_AEC_QUALITIES",
    "DEFAULT_CODECS",
    "DEFAULT_REFERENCE",
    "KNOWN_CODECS",
    "BenchResult",
    "CodecSummary",
    "CurvePoint",
    "ImagePoint",
    "SweepError",
    "UnknownCodecError",
    "available_codecs",
    "curve_table",
    "parse_codecs",
    "parse_reference",
    "parse_sweeps",
    "require_matplotlib",
    "run_bench",
    "summarize",
    "summary_table",
    "total_points",
    "write_reports",
]
