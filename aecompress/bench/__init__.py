"""`aecompress bench`: rate–distortion and speed of aec against the peer codecs, on the same
images in one run.

One job per module:

* `peers`: JPEG, WebP, AVIF, JPEG 2000, HEIC and JPEG XL through Pillow, in memory;
* `aec`: aec as a benchmarked codec (the one place that calls `Codec`);
* `options`: codec names, defaults and the checks of the command's options (light: no numpy,
  Pillow or torch, so `--help` and usage errors answer at once);
* `codecs`: swept values and which codecs can run here;
* `runner`: the sweeps measured point by point, worker processes, `run_bench`;
* `summary`: mean curves, BD-rates between codecs, PSNR at chosen bpps;
* `bdrate`: the Bjøntegaard delta rate and its PCHIP interpolation;
* `machine`: where the benchmark ran;
* `results`: the records a run produces;
* `tables`: the console tables, fitted to the terminal's width;
* `plot`: the rate–distortion plot (matplotlib);
* `report`: JSON, CSV, Markdown and writing every requested file.

This package exports what the command and the scripts use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .options import (
    AEC,
    DEFAULT_AEC_QUALITIES,
    DEFAULT_CODECS,
    DEFAULT_REFERENCE,
    KNOWN_CODECS,
    SweepError,
    UnknownCodecError,
    parse_codecs,
    parse_reference,
    parse_sweeps,
)

# The rest needs numpy and Pillow (and torch through aec): imported on first use, so that
# importing this package for the names above stays light.
_LAZY = {
    "available_codecs": "codecs",
    "curve_table": "tables",
    "summary_table": "tables",
    "require_matplotlib": "plot",
    "write_reports": "report",
    "BenchResult": "results",
    "CodecSummary": "results",
    "CurvePoint": "results",
    "ImagePoint": "results",
    "run_bench": "runner",
    "total_points": "runner",
    "summarize": "summary",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "AEC",
    "DEFAULT_AEC_QUALITIES",
    "DEFAULT_CODECS",
    "DEFAULT_REFERENCE",
    "KNOWN_CODECS",
    "SweepError",
    "UnknownCodecError",
    "parse_codecs",
    "parse_reference",
    "parse_sweeps",
    *_LAZY,
]
