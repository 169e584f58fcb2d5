"""Encoding to a target instead of a quality: a file size, a bpp or a PSNR.

The quality knob is continuous (stored to 1/100), and rate and PSNR rise with it, so a bisection
over the integer hundredths finds the best quality that meets the target. g_a runs once: every
candidate starts from its output (Codec.analyse), and size targets skip g_s entirely.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .errors import AecError, UsageError
from .quality import QUALITY_CENTI_MAX, QUALITY_CENTI_MIN

if TYPE_CHECKING:  # the search imports the codec; parsing a target needs none of it
    from .codec import Codec
    from .imagefile import EncodedImage
    from .imageio import SourceImage

# Sizes: a number and an optional unit; k/K/KB = 1000 bytes, Ki/KiB = 1024 (M likewise).
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-z]*)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "ki": 1024, "kib": 1024,
          "m": 1000**2, "mb": 1000**2, "mi": 1024**2, "mib": 1024**2}  # fmt: skip

# Trials of the bisection over the hundredths of quality: both ends, then halving the range.
MAX_TRIALS = 2 + math.ceil(math.log2(QUALITY_CENTI_MAX - QUALITY_CENTI_MIN))


class TargetError(AecError):
    """The requested target cannot be met (or was malformed)."""


class SizeSyntaxError(TargetError, UsageError):
    """A file size that cannot be read (a usage error)."""


@dataclass(frozen=True)
class Target:
    kind: Literal["bytes", "bpp", "psnr"]
    value: float

    def describe(self) -> str:
        unit = {"bytes": " bytes", "bpp": " bpp", "psnr": " dB PSNR"}[self.kind]
        return f"{self.value:g}{unit}"


def parse_size(text: str) -> int:
    """'60KB' or '60k' → 60000, '1.5MiB' → 1572864, '900' → 900 bytes (k = KB = 1000,
    Ki = KiB = 1024; M likewise)."""
    m = _SIZE.match(text)
    unit = m.group(2).lower() if m else None
    if not m or unit not in _UNITS:
        raise SizeSyntaxError(
            f"cannot read the size {text!r} (examples: 900, 60k, 60KB, 30KiB, 1.5MB; "
            "k and KB are 1000 bytes, KiB 1024)"
        )
    return int(float(m.group(1)) * _UNITS[unit])


@dataclass
class TargetResult:
    encoded: EncodedImage
    quality: float
    trials: int


def encode_to_target(
    codec: Codec, image: SourceImage, target: Target, reconstruct: bool = True, effort: int = 0
) -> TargetResult:
    """Largest quality whose file fits a size/bpp target, or smallest whose PSNR meets it.

    reconstruct=False leaves the result's rgb None (the last synthesis is skipped). With
    codec.progress set, g_a reports as usual, then the search ("search", trial, MAX_TRIALS)
    once per trial.

    effort > 0: the plain encoder's search finds a quality first; then encodes at that effort
    (effort.py), which may be smaller or larger than the plain ones at the same quality, are
    searched from there (`_effort_search`). The file returned always meets the target."""
    report = codec.progress
    try:
        y_raw = codec.analyse(image.rgb)  # every trial, at every effort, starts from it
        try:
            found = _search(codec, image, target, reconstruct, y_raw)
        except _EndMissed as e:
            if not effort:
                raise
            return _effort_search(codec, image, target, y_raw, e.centi, effort, None, e)
        if not effort:
            return found
        start = round(found.quality * 100)
        return _effort_search(codec, image, target, y_raw, start, effort, found)
    finally:
        codec.progress = report


class _EndMissed(TargetError):
    """The plain encoder misses the target even at the best end of the range."""

    def __init__(self, message: str, centi: int):
        super().__init__(message)
        self.centi = centi


# Steps of an effort search, in hundredths of quality: it gallops from the plain encoder's
# quality by 1, 2, 4, ... and bisects down to a quarter of a quality step.
_EFFORT_STEP, _EFFORT_RESOLUTION = 100, 25


def _effort_search(
    codec: Codec,
    image: SourceImage,
    target: Target,
    y_raw,
    start: int,
    effort: int,
    fallback: TargetResult | None,
    missed: _EndMissed | None = None,
) -> TargetResult:
    """From the quality `start` (hundredths), the best quality whose encode at `effort` meets
    the target: the largest for a size, the smallest for a PSNR. Each trial refines the
    latents, so the search gallops out from `start` instead of bisecting the whole range.
    Without any trial that meets, the plain encoder's `fallback` (which meets) is returned,
    or `missed` is raised when there is none."""
    from .imagefile import encode_image
    from .metrics import psnr

    pixels = image.width * image.height
    report, codec.progress = codec.progress, None
    tried: dict[int, tuple[bool, object]] = {}

    def meets(centi: int) -> bool:
        if centi not in tried:
            enc = encode_image(codec, image, centi / 100, True, analysed=y_raw, effort=effort)
            if target.kind == "bytes":
                ok = len(enc.data) <= target.value
            elif target.kind == "bpp":
                ok = len(enc.data) * 8 / pixels <= target.value
            else:
                ok = psnr(image.rgb, enc.rgb) >= target.value
            tried[centi] = (ok, enc)
            if report is not None:
                report("search", len(tried), len(tried) + 1)
        return tried[centi][0]

    up = 1 if target.kind != "psnr" else -1  # the direction in which results get better

    def clamp(c: int) -> int:
        return min(max(c, QUALITY_CENTI_MIN), QUALITY_CENTI_MAX)

    good = bad = None
    step = _EFFORT_STEP
    if meets(start):
        good = start
        while (nxt := clamp(good + up * step)) != good:
            if not meets(nxt):
                bad = nxt
                break
            good, step = nxt, step * 2
    else:
        bad = start
        while (nxt := clamp(bad - up * step)) != bad:
            if meets(nxt):
                good = nxt
                break
            bad, step = nxt, step * 2
    if good is None:
        if fallback is not None:
            return fallback
        raise missed
    while bad is not None and abs(bad - good) > _EFFORT_RESOLUTION:
        mid = (good + bad) // 2
        if meets(mid):
            good = mid
        else:
            bad = mid
    encoded = tried[good][1]
    return TargetResult(encoded, good / 100, (fallback.trials if fallback else 0) + len(tried))


def _search(
    codec: Codec, image: SourceImage, target: Target, reconstruct: bool, y_raw
) -> TargetResult:
    from .imagefile import encode_image
    from .metrics import psnr

    pixels = image.width * image.height
    trials = 0
    report, codec.progress = codec.progress, None  # trials report as a whole, not by stage

    def meets(centi: int) -> tuple[bool, EncodedImage]:
        nonlocal trials
        trials += 1
        need_rgb = target.kind == "psnr"
        enc = encode_image(codec, image, centi / 100, reconstruct=need_rgb, analysed=y_raw)
        if report is not None:
            report("search", trials, MAX_TRIALS)
        if target.kind == "bytes":
            return len(enc.data) <= target.value, enc
        if target.kind == "bpp":
            return len(enc.data) * 8 / pixels <= target.value, enc
        return psnr(image.rgb, enc.rgb) >= target.value, enc

    lo, hi = QUALITY_CENTI_MIN, QUALITY_CENTI_MAX  # quality in hundredths
    if target.kind == "psnr":
        ok, enc = meets(hi)
        if not ok:
            best = psnr(image.rgb, enc.rgb)
            message = f"cannot reach {target.describe()}: quality 100 gives {best:.2f} dB"
            raise _EndMissed(message, hi)
        if meets(lo)[0]:
            return _finish(codec, image, y_raw, lo, trials, reconstruct)
        # lo misses, hi meets: the smallest quality that meets is one above the last miss.
        best = _last_true(lambda c: not meets(c)[0], lo, hi) + 1
        return _finish(codec, image, y_raw, best, trials, reconstruct)
    ok, enc = meets(lo)
    if not ok:
        raise _EndMissed(
            f"cannot meet {target.describe()}: the smallest file (quality 1) is "
            f"{len(enc.data):,} bytes ({len(enc.data) * 8 / pixels:.4f} bpp)",
            lo,
        )
    if meets(hi)[0]:
        return _finish(codec, image, y_raw, hi, trials, reconstruct)
    # lo fits, hi does not: the largest quality that fits.
    return _finish(
        codec, image, y_raw, _last_true(lambda c: meets(c)[0], lo, hi), trials, reconstruct
    )


def _last_true(pred, lo: int, hi: int) -> int:
    """Bisection: pred(lo) is true, pred(hi) false, pred monotone; the last true integer."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if pred(mid):
            lo = mid
        else:
            hi = mid
    return lo


def _finish(
    codec: Codec, image: SourceImage, y_raw, centi: int, trials: int, reconstruct: bool
) -> TargetResult:
    from .imagefile import encode_image

    encoded = encode_image(codec, image, centi / 100, reconstruct, analysed=y_raw)
    return TargetResult(encoded, centi / 100, trials)
