"""Running a benchmark: the sweeps of each codec over the images, measured one point at a time,
the peers optionally in worker processes, and the result assembled (`run_bench`).

What is measured, per codec, swept value and image (an `ImagePoint`):

* bytes: the length of the complete file each codec writes (aec: the whole .aec file with its
  header, encoded in memory by `Codec`; peers: the file Pillow writes, headers included);
* bpp = bytes × 8 / pixels; compression ratio = raw 24-bit RGB bytes (3 × pixels) / bytes;
* PSNR (`metrics.psnr`) and MS-SSIM (`metrics.ms_ssim`) of the decoded uint8 RGB against the
  input; identical images (infinite PSNR) count as 100 dB;
* encode and decode wall time (time.perf_counter around the encode call and around the
  decode call only; metrics, loading and conversions are outside). aec's encode stops at the
  file, like the peers': the reconstruction `Codec.encode` can also return (a synthesis
  transform, most of a decode's cost) is skipped.

Every input is reduced to plain RGB first (EXIF orientation applied, alpha and ICC profile
dropped), so all codecs code exactly the same pixels. How the points become curves and
BD-rates is told in `summary`.

Timing: aec runs in this process on the chosen torch device, with torch's threads as they are
(recorded in `MachineInfo`), after one untimed warm-up encode and decode. Peers run one thread
each where the library lets us choose (AVIF, JPEG XL; x265 for HEIC keeps its own threading),
optionally in a pool of `workers` processes over images; they run before aec, never beside it,
so aec's timings are taken on an otherwise idle process.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import TYPE_CHECKING

import numpy as np

from ..errors import AecError
from ..imagesets import NamedImage
from ..metrics import PSNR_CAP_DB, ms_ssim, psnr
from . import peers
from .aec import aec_coders
from .codecs import Decoder, Encoder, codec_info, sweep_plan
from .machine import machine_info
from .options import DEFAULT_REFERENCE, aec_effort, is_aec
from .results import BenchResult, ImagePoint, Skipped
from .summary import aggregate, summarize

if TYPE_CHECKING:
    from ..codec import Codec


Progress = Callable[[int, str], None]  # (points just finished, what is running)


def measure(
    codec: str, quality: float, image: str, rgb: np.ndarray, encode: Encoder, decode: Decoder
) -> ImagePoint:
    """Encode and decode one image once; time both calls and score the decoded pixels."""
    t0 = time.perf_counter()
    data = encode(rgb, quality)
    t1 = time.perf_counter()
    decoded = decode(data)
    t2 = time.perf_counter()
    if decoded.shape != rgb.shape:
        raise AecError(
            f"{codec} at {quality:g} decoded {image} to shape {decoded.shape}, not {rgb.shape}"
        )
    height, width = rgb.shape[:2]
    pixels = height * width
    size = len(data)
    return ImagePoint(
        codec=codec,
        quality=float(quality),
        image=image,
        width=width,
        height=height,
        bytes=size,
        bpp=size * 8 / pixels,
        ratio=3 * pixels / size,
        psnr=min(psnr(rgb, decoded), PSNR_CAP_DB),
        ms_ssim=ms_ssim(rgb, decoded),
        encode_ms=(t1 - t0) * 1e3,
        decode_ms=(t2 - t1) * 1e3,
    )


_WARMED: set[str] = set()


def _warm_peer(peer: peers.Peer, rgb: np.ndarray) -> None:
    """One untimed round trip per process, so library start-up is not timed."""
    if peer.name not in _WARMED:
        peer.prepare()
        crop = np.ascontiguousarray(rgb[:64, :64])
        peer.decode(peer.encode(crop, peer.sweep[len(peer.sweep) // 2]))
        _WARMED.add(peer.name)


def peer_job(codec: str, image: str, rgb: np.ndarray, sweep: Sequence[float]) -> list[ImagePoint]:
    """All swept values of one peer on one image (the unit of work of the process pool)."""
    peer = peers.get_peer(codec)
    points = []
    try:
        _warm_peer(peer, rgb)
        for q in sweep:
            points.append(measure(codec, q, image, rgb, peer.encode, peer.decode))
    except AecError:
        raise
    except Exception as exc:  # a library failure on one image: say which, as a one-liner
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AecError(f"{image}: {codec} failed ({detail})") from None
    return points


def run_bench(
    images: Sequence[NamedImage],
    codecs: Sequence[str],
    sweeps: dict[str, Sequence[float]] | None = None,
    aec: Codec | None = None,
    workers: int = 1,
    reference: str = DEFAULT_REFERENCE,
    progress: Progress | None = None,
    skipped: Sequence[Skipped] = (),
) -> BenchResult:
    """Measure every codec in `codecs` (already checked with `available_codecs`) on `images`.

    sweeps: codec → swept values, overriding the defaults (see `sweep_plan`). aec: the loaded
    Codec, needed when "aec" is among the codecs. workers > 1 runs the peers in that many
    processes.
    progress(n, label) is called as points finish. Raises AecError (SweepError for values a
    codec does not accept).
    """
    if not images:
        raise AecError("no images to measure")
    aec_codecs = [c for c in codecs if is_aec(c)]
    if aec_codecs and aec is None:
        raise AecError("aec needs a loaded model")
    plan = sweep_plan(codecs, sweeps)
    report = progress or (lambda n, label: None)
    start = time.perf_counter()

    points: list[ImagePoint] = []
    peer_names = [c for c in codecs if not is_aec(c)]
    jobs = [(c, im.name, im.rgb, plan[c]) for c in peer_names for im in images]
    if workers > 1 and len(jobs) > 1:
        context = multiprocessing.get_context("spawn")  # no fork of a process holding torch
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {pool.submit(peer_job, *job): job for job in jobs}
            try:
                for future in as_completed(futures):
                    done = future.result()
                    points.extend(done)
                    report(len(done), futures[future][0])
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    else:
        for job in jobs:
            report(0, job[0])
            done = peer_job(*job)
            points.extend(done)
            report(len(done), job[0])

    for name in aec_codecs:
        assert aec is not None
        encode, decode = aec_coders(aec, aec_effort(name) or 0)
        if name == aec_codecs[0]:
            warm, _ = aec_coders(aec)
            decode(warm(images[0].rgb, 50.0))  # warm-up: allocator, kernel choice, lazy init
        for quality in plan[name]:
            for im in images:
                report(0, name)
                points.append(measure(name, quality, im.name, im.rgb, encode, decode))
                report(1, name)

    order = {c: i for i, c in enumerate(codecs)}
    image_order = {im.name: i for i, im in enumerate(images)}
    value_order = {(c, float(v)): i for c, values in plan.items() for i, v in enumerate(values)}
    points.sort(
        key=lambda p: (order[p.codec], value_order[p.codec, p.quality], image_order[p.image])
    )
    curves = aggregate(points)
    return BenchResult(
        machine=machine_info(aec, workers),
        reference=reference,
        codecs=[codec_info(c, plan[c], aec) for c in codecs],
        skipped=list(skipped),
        images=list(images),
        points=points,
        curves=curves,
        summary=summarize(curves, reference),
        seconds=time.perf_counter() - start,
    )


def total_points(
    images: Sequence[NamedImage],
    codecs: Sequence[str],
    sweeps: dict[str, Sequence[float]] | None = None,
) -> int:
    """How many ImagePoints `run_bench` will measure (for a progress bar)."""
    plan = sweep_plan(codecs, sweeps)
    return len(images) * sum(len(v) for v in plan.values())
