"""From measured points to curves and summaries: the mean curve of each codec, BD-rates between
codecs and PSNR at chosen bpps.

Per codec and swept value (a `CurvePoint`): the mean over images of bpp, ratio, PSNR and
MS-SSIM (each computed per image, then averaged), MS-SSIM in dB as −10·log10(1 − mean MS-SSIM),
the median encode / decode milliseconds per image, and throughput in megapixels per second
(all pixels / all encode, resp. decode, seconds).

Per codec (a `CodecSummary`), against a reference codec (JPEG 4:2:0 by default):

* BD-rate on PSNR and BD-rate on MS-SSIM in dB (the −10·log10(1 − MS-SSIM) scale above), by
  `bdrate.bd_rate` (PCHIP of log-rate over the shared quality range); negative = fewer bytes
  than the reference at equal quality;
* PSNR at 0.25 / 0.5 / 1.0 bpp: PCHIP of PSNR over log bpp, None outside the measured range.

Before interpolating, each curve keeps only its points that improve quality as bpp grows
(a point costing more bytes than another without a higher quality is dropped), so that the
quality values are strictly increasing as both interpolations need. A curve left with fewer than
two points, or a pair of curves whose quality ranges do not overlap, gets None.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import numpy as np

from ..metrics import PSNR_CAP_DB
from .bdrate import bd_rate, pchip
from .options import DEFAULT_REFERENCE
from .results import CodecSummary, CurvePoint, ImagePoint

BPP_TARGETS: tuple[float, ...] = (0.25, 0.5, 1.0)


def ms_ssim_db(value: float) -> float:
    """MS-SSIM on a dB scale, −10·log10(1 − value); capped at 100 dB for value == 1."""
    if value >= 1.0:
        return PSNR_CAP_DB
    return min(-10.0 * math.log10(1.0 - value), PSNR_CAP_DB)


def aggregate(points: Sequence[ImagePoint]) -> list[CurvePoint]:
    """One CurvePoint per (codec, swept value), in the order the points come."""
    groups: dict[tuple[str, float], list[ImagePoint]] = {}
    for p in points:
        groups.setdefault((p.codec, p.quality), []).append(p)
    curves = []
    for (codec, quality), group in groups.items():
        pixels = sum(p.width * p.height for p in group)
        encode_s = sum(p.encode_ms for p in group) / 1e3
        decode_s = sum(p.decode_ms for p in group) / 1e3
        mean_ms_ssim = float(np.mean([p.ms_ssim for p in group]))
        curves.append(
            CurvePoint(
                codec=codec,
                quality=quality,
                images=len(group),
                bytes=float(np.mean([p.bytes for p in group])),
                bpp=float(np.mean([p.bpp for p in group])),
                ratio=float(np.mean([p.ratio for p in group])),
                psnr=float(np.mean([p.psnr for p in group])),
                ms_ssim=mean_ms_ssim,
                ms_ssim_db=ms_ssim_db(mean_ms_ssim),
                encode_ms=statistics.median(p.encode_ms for p in group),
                decode_ms=statistics.median(p.decode_ms for p in group),
                encode_mpix_s=pixels / 1e6 / encode_s if encode_s > 0 else math.inf,
                decode_mpix_s=pixels / 1e6 / decode_s if decode_s > 0 else math.inf,
            )
        )
    return curves


def rising(rates: Sequence[float], qualities: Sequence[float]) -> tuple[list[float], list[float]]:
    """The points of a curve that raise quality as rate grows, sorted by rate."""
    kept_r: list[float] = []
    kept_q: list[float] = []
    for r, q in sorted(zip(rates, qualities, strict=True)):
        if r <= 0 or not math.isfinite(q):
            continue
        if kept_q and q <= kept_q[-1]:
            continue
        if kept_r and r == kept_r[-1]:
            continue
        kept_r.append(r)
        kept_q.append(q)
    return kept_r, kept_q


def quality_at_rate(rates: Sequence[float], qualities: Sequence[float], rate: float):
    """PCHIP of quality over log rate at `rate`; None outside the curve or with < 2 points."""
    r, q = rising(rates, qualities)
    if len(r) < 2 or not r[0] <= rate <= r[-1]:
        return None
    return float(pchip(np.log(r), q, np.array([math.log(rate)]))[0])


def bd_rate_between(ref: Sequence[CurvePoint], test: Sequence[CurvePoint], metric: str):
    """BD-rate (%) of `test` against `ref` on metric "psnr" or "ms_ssim_db"; None if undefined."""
    ref_r, ref_q = rising([p.bpp for p in ref], [getattr(p, metric) for p in ref])
    test_r, test_q = rising([p.bpp for p in test], [getattr(p, metric) for p in test])
    if len(ref_r) < 2 or len(test_r) < 2:
        return None
    try:
        return bd_rate(ref_r, ref_q, test_r, test_q)
    except ValueError:  # quality ranges do not overlap
        return None


def summarize(
    curves: Sequence[CurvePoint],
    reference: str = DEFAULT_REFERENCE,
    targets: Sequence[float] = BPP_TARGETS,
) -> list[CodecSummary]:
    """BD-rates against `reference` and PSNR at the target bpps, per codec in curve order."""
    by_codec: dict[str, list[CurvePoint]] = {}
    for c in curves:
        by_codec.setdefault(c.codec, []).append(c)
    ref = by_codec.get(reference)
    summary = []
    for codec, curve in by_codec.items():
        rates = [p.bpp for p in curve]
        summary.append(
            CodecSummary(
                codec=codec,
                reference=reference,
                bd_rate_psnr=None if ref is None else bd_rate_between(ref, curve, "psnr"),
                bd_rate_ms_ssim=None if ref is None else bd_rate_between(ref, curve, "ms_ssim_db"),
                psnr_at_bpp={
                    t: quality_at_rate(rates, [p.psnr for p in curve], t) for t in targets
                },
                bpp_min=min(rates),
                bpp_max=max(rates),
            )
        )
    return summary
