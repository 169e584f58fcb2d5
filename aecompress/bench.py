"""Rate–distortion and speed of aec against the peer codecs, on the same images in one run.

What is measured, per codec, swept value and image (an `ImagePoint`):

* bytes: the length of the complete file each codec writes (aec: the whole .aec file with its
  header, encoded in memory by `Codec`; peers: the file Pillow writes, headers included);
* bpp = bytes × 8 / pixels; compression ratio = raw 24-bit RGB bytes (3 × pixels) / bytes;
* PSNR (`metrics.psnr`) and MS-SSIM (`metrics.ms_ssim`) of the decoded uint8 RGB against the
  input; identical images (infinite PSNR) count as 100 dB;
* encode and decode wall time (time.perf_counter around the encode call and around the
  decode call only; metrics, loading and conversions are outside).

Every input is reduced to plain RGB first (EXIF orientation applied, alpha and ICC profile
dropped), so all codecs code exactly the same pixels.

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

Timing: aec runs in this process on the chosen torch device, with torch's threads as they are
(recorded in `MachineInfo`), after one untimed warm-up encode and decode. Peers run one thread
each where the library lets us choose (AVIF, JPEG XL; x265 for HEIC keeps its own threading),
optionally in a pool of `workers` processes over images; they run before aec, never beside it,
so aec's timings are taken on an otherwise idle process.
"""

from __future__ import annotations

import glob
import math
import multiprocessing
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import peers
from .bdrate import bd_rate, pchip
from .errors import AecError, UsageError
from .imageio import SourceImage, load_image
from .metrics import ms_ssim, psnr
from .modes import ColourMode

if TYPE_CHECKING:
    from .codec import Codec

AEC = "aec"
DEFAULT_REFERENCE = "jpeg"
DEFAULT_AEC_QUALITIES: tuple[float, ...] = (1, 15, 29, 43, 57, 72, 86, 100)
"""Evenly spaced over 1..100: the quality knob moves bpp in roughly even ratios."""
DEFAULT_CODECS: tuple[str, ...] = (AEC, "jpeg", "webp", "avif", "jp2", "heic", "jxl")
"""What runs without --codecs; heic and jxl only when their plugins are installed."""
KNOWN_CODECS: tuple[str, ...] = (AEC, *peers.PEERS)
BPP_TARGETS: tuple[float, ...] = (0.25, 0.5, 1.0)
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".pnm"}
)
PSNR_CAP_DB = 100.0  # reported for identical images, and for MS-SSIM == 1 on the dB scale


class UnknownCodecError(UsageError):
    """A codec name that is neither aec nor a peer (a usage error)."""


# --------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class BenchImage:
    name: str  # the path as found
    rgb: np.ndarray = field(repr=False)  # H×W×3 uint8

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


@dataclass
class ImagePoint:
    """One codec at one swept value on one image."""

    codec: str
    quality: float  # the swept value: quality, or compression ratio for jp2
    image: str
    width: int
    height: int
    bytes: int
    bpp: float
    ratio: float
    psnr: float
    ms_ssim: float
    encode_ms: float
    decode_ms: float


@dataclass
class CurvePoint:
    """One codec at one swept value, over all images."""

    codec: str
    quality: float
    images: int
    bytes: float  # mean file bytes
    bpp: float
    ratio: float
    psnr: float
    ms_ssim: float
    ms_ssim_db: float
    encode_ms: float  # median per image
    decode_ms: float
    encode_mpix_s: float
    decode_mpix_s: float


@dataclass
class CodecSummary:
    codec: str
    reference: str
    bd_rate_psnr: float | None  # percent vs the reference; negative = smaller files
    bd_rate_ms_ssim: float | None  # percent, on MS-SSIM dB
    psnr_at_bpp: dict[float, float | None]  # target bpp → PSNR dB
    bpp_min: float
    bpp_max: float


@dataclass
class CodecInfo:
    name: str
    description: str
    sweep_unit: str
    sweep: list[float]
    library: str


@dataclass
class Skipped:
    codec: str
    reason: str

    def __str__(self) -> str:
        return f"{self.codec}: skipped ({self.reason})"


@dataclass
class MachineInfo:
    date: str
    platform: str
    machine: str
    processor: str
    cpu_count: int | None
    python: str
    numpy: str
    pillow: str
    torch: str | None
    torch_threads: int | None
    device: str | None
    model_id: str | None
    model_fingerprint: str | None
    workers: int


@dataclass
class BenchResult:
    machine: MachineInfo
    reference: str
    codecs: list[CodecInfo]
    skipped: list[Skipped]
    images: list[BenchImage]
    points: list[ImagePoint]
    curves: list[CurvePoint]
    summary: list[CodecSummary]
    seconds: float


# --------------------------------------------------------------------------------------------
# Inputs


def find_inputs(specs: Iterable[str]) -> list[Path]:
    """Image files from files, folders (searched recursively) and glob patterns, in order.

    A folder contributes its files with an image suffix, sorted; a pattern (containing * ? or
    [ and not naming an existing path) its matches, sorted, `**` included. Raises AecError for a
    path that does not exist or a pattern that matches nothing; duplicates are kept once.
    """
    found: list[Path] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            found.extend(p for p in sorted(path.rglob("*")) if p.is_file() and _is_image_name(p))
        elif path.exists():
            found.append(path)
        elif any(c in spec for c in "*?["):
            matches = sorted(glob.glob(spec, recursive=True))
            files = [Path(m) for m in matches if Path(m).is_file() and _is_image_name(Path(m))]
            if not files:
                raise AecError(f"{spec}: the pattern matches no image file")
            found.extend(files)
        else:
            raise AecError(f"{spec}: no such file or directory")
    unique: dict[str, Path] = {}
    for p in found:
        unique.setdefault(os.path.normpath(p), p)
    return list(unique.values())


def _is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def load_inputs(paths: Sequence[Path]) -> list[BenchImage]:
    """Read each file as plain RGB (orientation applied; alpha, palette and ICC dropped)."""
    return [BenchImage(str(p), load_image(p).rgb) for p in paths]


# --------------------------------------------------------------------------------------------
# Codecs


def parse_codecs(text: str | None) -> list[str]:
    """'aec, jpeg,webp' → ['aec', 'jpeg', 'webp']; None → the defaults. Unknown names raise."""
    if text is None:
        return list(DEFAULT_CODECS)
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if not names:
        raise UnknownCodecError("--codecs names no codec")
    unknown = [n for n in names if n not in KNOWN_CODECS]
    if unknown:
        raise UnknownCodecError(
            f"unknown codec {', '.join(repr(n) for n in unknown)} "
            f"(choose from {', '.join(KNOWN_CODECS)})"
        )
    return list(dict.fromkeys(names))


def available_codecs(names: Sequence[str]) -> tuple[list[str], list[Skipped]]:
    """Split codec names into those that can run here and those skipped, with the reason."""
    runnable, skipped = [], []
    for name in names:
        reason = None if name == AEC else peers.unavailable_reason(name)
        if reason is None:
            runnable.append(name)
        else:
            skipped.append(Skipped(name, reason))
    return runnable, skipped


def parse_values(text: str, what: str) -> list[float]:
    """'1,5.5,10' → [1.0, 5.5, 10.0]; AecError naming `what` for anything else."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise AecError(f"{what}: expected comma-separated numbers, got {text!r}") from None
    if not values or any(not math.isfinite(v) for v in values):
        raise AecError(f"{what}: expected comma-separated numbers, got {text!r}")
    return values


def default_sweep(codec: str) -> list[float]:
    if codec == AEC:
        return list(DEFAULT_AEC_QUALITIES)
    return [float(v) for v in peers.get_peer(codec).sweep]


def check_sweep(codec: str, values: Sequence[float]) -> None:
    if codec == AEC:
        bad = [v for v in values if not 1 <= v <= 100]
        what = "aec qualities must be from 1 to 100"
    elif peers.get_peer(codec).sweep_unit == "ratio":
        bad = [v for v in values if v <= 1]
        what = f"{codec} ratios must be above 1"
    else:
        bad = [v for v in values if not 0 <= v <= 100 or v != int(v)]
        what = f"{codec} qualities must be whole numbers from 0 to 100"
    if bad:
        raise AecError(f"{what}, got {', '.join(f'{v:g}' for v in bad)}")


# --------------------------------------------------------------------------------------------
# Measuring

Encoder = Callable[[np.ndarray, float], bytes]
Decoder = Callable[[bytes], np.ndarray]
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


def aec_coders(codec: Codec) -> tuple[Encoder, Decoder]:
    """Encode / decode through the real .aec bytes, in memory."""

    def encode(rgb: np.ndarray, quality: float) -> bytes:
        return codec.encode(SourceImage(rgb=rgb, mode=ColourMode.RGB), quality).data

    def decode(data: bytes) -> np.ndarray:
        return codec.decode(data).rgb

    return encode, decode


def run_bench(
    images: Sequence[BenchImage],
    codecs: Sequence[str],
    sweeps: dict[str, Sequence[float]] | None = None,
    aec: Codec | None = None,
    workers: int = 1,
    reference: str = DEFAULT_REFERENCE,
    progress: Progress | None = None,
    skipped: Sequence[Skipped] = (),
) -> BenchResult:
    """Measure every codec in `codecs` (already checked with `available_codecs`) on `images`.

    sweeps: codec → swept values, overriding `default_sweep`. aec: the loaded Codec, needed
    when "aec" is among the codecs. workers > 1 runs the peers in that many processes.
    progress(n, label) is called as points finish. Raises AecError.
    """
    if not images:
        raise AecError("no images to measure")
    if AEC in codecs and aec is None:
        raise AecError("aec needs a loaded model")
    plan = {c: _dedupe((sweeps or {}).get(c) or default_sweep(c)) for c in codecs}
    for c, values in plan.items():
        check_sweep(c, values)
    report = progress or (lambda n, label: None)
    start = time.perf_counter()

    points: list[ImagePoint] = []
    peer_names = [c for c in codecs if c != AEC]
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

    if AEC in codecs:
        assert aec is not None
        encode, decode = aec_coders(aec)
        first = images[0]
        decode(encode(first.rgb, 50.0))  # warm-up: allocator, kernel choice, lazy init
        for quality in plan[AEC]:
            for im in images:
                report(0, AEC)
                points.append(measure(AEC, quality, im.name, im.rgb, encode, decode))
                report(1, AEC)

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


def _dedupe(values: Iterable[float]) -> list[float]:
    return list(dict.fromkeys(float(v) for v in values))


def total_points(
    images: Sequence[BenchImage],
    codecs: Sequence[str],
    sweeps: dict[str, Sequence[float]] | None = None,
) -> int:
    """How many ImagePoints `run_bench` will measure (for a progress bar)."""
    plan = {c: _dedupe((sweeps or {}).get(c) or default_sweep(c)) for c in codecs}
    return len(images) * sum(len(v) for v in plan.values())


# --------------------------------------------------------------------------------------------
# Aggregating


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


# --------------------------------------------------------------------------------------------
# Where it ran


def codec_info(name: str, sweep: Sequence[float], aec: Codec | None = None) -> CodecInfo:
    if name == AEC:
        model = f"model {aec.checkpoint.model_id}" if aec is not None else "model ?"
        return CodecInfo(AEC, f"aecompress .aec ({model})", "quality", list(sweep), _aec_lib())
    peer = peers.get_peer(name)
    try:
        library = peer.library()
    except Exception:  # a version query must never stop a benchmark
        library = "?"
    return CodecInfo(name, peer.description, peer.sweep_unit, list(sweep), library)


def _aec_lib() -> str:
    from . import __version__

    return f"aecompress {__version__}"


def _processor() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def machine_info(aec: Codec | None = None, workers: int = 1) -> MachineInfo:
    import PIL

    torch_version = threads = device = model_id = fingerprint = None
    if "torch" in sys.modules or aec is not None:
        import torch

        from .device import describe

        torch_version = str(torch.__version__)
        threads = torch.get_num_threads()
        if aec is not None:
            device = describe(aec.device)
            model_id = aec.checkpoint.model_id
            fingerprint = aec.checkpoint.fingerprint.hex()
    return MachineInfo(
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        platform=platform.platform(),
        machine=platform.machine(),
        processor=_processor(),
        cpu_count=os.cpu_count(),
        python=platform.python_version(),
        numpy=np.__version__,
        pillow=PIL.__version__,
        torch=torch_version,
        torch_threads=threads,
        device=device,
        model_id=model_id,
        model_fingerprint=fingerprint,
        workers=workers,
    )
