"""Encoding and decoding files: what `encode` and `decode` do, as plain functions that return
typed reports.

The CLI (`aecompress.cli`) parses arguments, plans the outputs (`outputs.py`), calls these and
prints the reports; errors are raised as AecError subclasses and turned into exit codes there.
`info` and `models` live in `aecinfo.py` and `modellist.py`, which need no torch.

Each file's work comes in two parts, so that a batch can overlap them (`cli/pipeline.py`):
`encode_start` / `decode_start` do the checks, the reading and everything that uses torch (for
encode, the report's PSNR and MS-SSIM too), and must run in the thread that owns the codec;
`encode_finish` / `decode_finish` use no torch and no codec (writing the output, encoding the
image file) and may run on another thread. `encode_one` and `decode_one` are the two parts in a
row.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_checkpoint
from .codec import Codec
from .container import Header
from .decodeplan import DecodePlan, plan_decode
from .errors import AecError, ImageError
from .imagefile import (
    DecodedImage,
    EncodedImage,
    decode_image,
    encode_image,
    restore_image,
    save_image,
)
from .imageformats import DEFAULT_IMAGE_OPTIONS, ImageOptions
from .imageio import SourceImage, load_image
from .inputs import STDIO, read_input, refuse_aec
from .metrics import Fidelity, measure
from .outputs import check_job, emit
from .registry import ModelLibrary
from .target import Target, encode_to_target


@dataclass
class EncodeReport:
    input: str
    output: str
    width: int
    height: int
    mode: str
    quality: float
    input_bytes: int  # size of the input file
    output_bytes: int  # size of the whole .aec file, header included
    bpp: float  # output_bytes * 8 / pixels
    ratio_raw: float  # raw 24-bit RGB (W*H*3 bytes) / output_bytes; below 1 for tiny images
    ratio_input: float  # input_bytes / output_bytes
    # Of what decode will return, against the input's RGB pixels; both None with --no-metrics.
    psnr: float | None  # dB; metrics.PSNR_CAP_DB (100) when they are identical
    ms_ssim: float | None  # also None when the image is under 11 pixels on a side (undefined)
    seconds: float  # coding, and (with metrics) the synthesis the PSNR and MS-SSIM are measured on
    model_id: str
    fingerprint: str
    warnings: list[str]
    effort: int = 0  # 0: the plain encoder; higher: the latents were refined longer (effort.py)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DecodeReport:
    input: str
    output: str
    width: int
    height: int
    mode: str  # of the image written (alpha dropped with --drop-alpha)
    format: str  # the Pillow format written: PNG, JPEG, WEBP, AVIF, ...
    output_bytes: int
    seconds: float  # decoding, restoring the original kind of image, and saving it
    model_id: str
    fingerprint: str

    def to_dict(self) -> dict:
        return asdict(self)


class CodecPool:
    """One Codec per model that the files of a batch name, found by the id and fingerprint in
    each file's header and loaded on first use."""

    def __init__(
        self,
        library: ModelLibrary,
        device: torch.device,
        on_load: Callable[[Codec, Path], None] | None = None,
    ):
        self.library = library
        self.device = device
        self.on_load = on_load
        self._codecs: dict[tuple[str, bytes], Codec] = {}
        self.progress: Callable[[str, int, int], None] | None = None  # given to each codec

    def for_header(self, header: Header) -> Codec:
        key = (header.model_id, header.fingerprint)
        if key not in self._codecs:
            found = self.library.find(header.model_id, header.fingerprint)
            codec = Codec(load_checkpoint(found.path), self.device)
            codec.check_model(header)  # the weights decide, whatever an index says
            self._codecs[key] = codec
            if self.on_load is not None:
                self.on_load(codec, found.path)
        codec = self._codecs[key]
        codec.progress = self.progress
        return codec


def _load_source_image(source: str):
    """The input image and its size in bytes.

    Pillow reads a file by path itself, so a device such as /dev/zero costs only the few bytes
    needed to refuse it; standard input and pipes are read whole first.
    """
    if source != STDIO:
        try:
            st = os.stat(source)
        except OSError as e:
            raise AecError(f"{source}: cannot read ({e.strerror or e})") from e
        if stat.S_ISDIR(st.st_mode):
            raise AecError(f"{source}: is a directory")
        if not stat.S_ISFIFO(st.st_mode):
            return load_image(Path(source)), st.st_size
    raw = read_input(source, sniff=lambda head: refuse_aec(head, source))  # a pipe: read once
    try:
        return load_image(raw), len(raw)
    except ImageError as e:  # name the input, not "<bytes>"
        shown = "<stdin>" if source == STDIO else source
        raise ImageError(str(e).replace("<bytes>", shown, 1)) from e


def _codec_for(codecs: Codec | CodecPool, header: Header) -> Codec:
    return codecs.for_header(header) if isinstance(codecs, CodecPool) else codecs


def _stage(codec: Codec, stage: str, done: int) -> None:
    if codec.progress is not None:
        codec.progress(stage, done, 1)


@dataclass
class PendingEncode:
    """An input that `encode_start` has coded: what `encode_finish` writes and reports on."""

    source: str
    target: str
    force: bool
    image: SourceImage
    input_bytes: int
    encoded: EncodedImage  # .rgb: the pixels decode will return (None with metrics off)
    seconds: float  # coding, and the synthesis with metrics
    effort: int = 0
    fidelity: Fidelity | None = None  # the report's PSNR and MS-SSIM (None with metrics off)


def encode_start(
    codec: Codec,
    source: str,
    target: str,
    quality: float,
    force: bool,
    protect: frozenset[tuple[int, int]] = frozenset(),
    goal: Target | None = None,
    metrics: bool = True,
    effort: int = 0,
) -> PendingEncode:
    """The part of `encode_one` that uses torch: the checks, reading the image, coding it and,
    with `metrics`, the reconstruction the report is measured on and the measures themselves
    (on the codec's device: `metrics.measure`). Nothing is written."""
    check_job(source, target, force, protect)
    image, input_bytes = _load_source_image(source)
    t0 = time.perf_counter()
    if goal is None:
        encoded = encode_image(codec, image, quality, reconstruct=metrics, effort=effort)
    else:
        encoded = encode_to_target(codec, image, goal, metrics, effort).encoded
    seconds = time.perf_counter() - t0
    fidelity = None
    if not metrics:
        encoded.rgb = None  # an effort above 0 reconstructs anyway: no metrics were asked for
    elif encoded.rgb is not None:
        _stage(codec, "metrics", 0)
        fidelity = measure(image.rgb, _decoded_rgb(image, encoded.rgb), codec.device)
        _stage(codec, "metrics", 1)
    return PendingEncode(
        source, target, force, image, input_bytes, encoded, seconds, effort, fidelity
    )


def _decoded_rgb(image: SourceImage, rgb: np.ndarray) -> np.ndarray:
    """The RGB pixels of the image decode will write for `image`, from the codec's `rgb`: the
    same array for RGB, RGBA, L and LA (whose alpha is lossless and whose gray comes back
    repeated), the nearest stored palette colours for P and PA (`restore_image`)."""
    if not image.mode.has_palette:
        return rgb
    restored = restore_image(rgb, image.mode, image.alpha, image.palette)
    return np.asarray(restored.convert("RGB"))


def encode_finish(job: PendingEncode) -> EncodeReport:
    """The rest of `encode_one`, without torch or the codec: write the .aec file and report
    on it, with the PSNR and MS-SSIM `encode_start` measured (when it did)."""
    image, encoded, fidelity = job.image, job.encoded, job.fidelity
    emit(job.target, encoded.data, job.force)
    n = len(encoded.data)
    pixels = image.width * image.height
    return EncodeReport(
        input=job.source,
        output=job.target,
        width=image.width,
        height=image.height,
        mode=image.mode.name,
        quality=encoded.header.quality,
        input_bytes=job.input_bytes,
        output_bytes=n,
        bpp=n * 8 / pixels,
        ratio_raw=pixels * 3 / n,
        ratio_input=job.input_bytes / n,
        psnr=None if fidelity is None else fidelity.psnr,
        ms_ssim=None if fidelity is None else fidelity.ms_ssim,
        seconds=job.seconds,
        effort=job.effort,
        model_id=encoded.header.model_id,
        fingerprint=encoded.header.fingerprint.hex(),
        warnings=list(image.warnings),
    )


def encode_one(
    codec: Codec,
    source: str,
    target: str,
    quality: float,
    force: bool,
    protect: frozenset[tuple[int, int]] = frozenset(),
    goal: Target | None = None,
    metrics: bool = True,
    effort: int = 0,
) -> EncodeReport:
    """Compress one image file to one .aec file; `protect`: input_ids() of the whole batch.

    With a `goal` (size, bpp or PSNR), the quality is searched for and `quality` is ignored.
    The report's PSNR and MS-SSIM are of what decode will return; metrics=False skips them and
    the synthesis they need (at effort 0 about as long as the analysis; at higher efforts the
    refinement dominates: benchmarks/startup.md)."""
    job = encode_start(codec, source, target, quality, force, protect, goal, metrics, effort)
    return encode_finish(job)


@dataclass
class PendingDecode:
    """An input that `decode_start` has decoded to pixels: what `decode_finish` turns into an
    image file and writes."""

    source: str
    target: str
    force: bool
    format: str  # the Pillow format to write
    image_quality: int | None
    mode: str  # of the image to write (alpha dropped with --drop-alpha, GIF's palette)
    decoded: DecodedImage
    seconds: float  # decoding so far


def decode_start(
    codecs: Codec | CodecPool,
    source: str,
    target: str,
    force: bool,
    max_pixels: int,
    protect: frozenset[tuple[int, int]] = frozenset(),
    options: ImageOptions = DEFAULT_IMAGE_OPTIONS,
    plan: DecodePlan | None = None,
) -> PendingDecode:
    """The part of `decode_one` that uses torch: the checks, reading the file and its header
    (`plan`: what `decodeplan.plan_decode` found of them, before torch), choosing the codec and
    decoding the pixels. Nothing is written."""
    check_job(source, target, force, protect, decoded=True)
    if plan is None:
        plan = plan_decode(source, target, max_pixels, options)
    codec = _codec_for(codecs, plan.header)
    t0 = time.perf_counter()
    decoded = decode_image(codec, plan.data, max_pixels)
    seconds = time.perf_counter() - t0
    return PendingDecode(
        source, target, force, plan.format, options.quality, plan.mode, decoded, seconds
    )


def decode_finish(job: PendingDecode) -> DecodeReport:
    """The rest of `decode_one`, without torch or the codec: restore the original kind of
    image, encode it in the output format and write it (as `imagefile.decode_to_image_file`
    does after `decode_image`)."""
    t0 = time.perf_counter()
    decoded = job.decoded
    header = decoded.header
    image = restore_image(decoded.rgb, header.mode, decoded.alpha, decoded.palette)
    out = save_image(image, job.format, decoded.icc, job.image_quality)
    emit(job.target, out, job.force)
    return DecodeReport(
        input=job.source,
        output=job.target,
        width=header.width,
        height=header.height,
        mode=job.mode,
        format=job.format,
        output_bytes=len(out),
        seconds=job.seconds + time.perf_counter() - t0,
        model_id=header.model_id,
        fingerprint=header.fingerprint.hex(),
    )


def decode_one(
    codecs: Codec | CodecPool,
    source: str,
    target: str,
    force: bool,
    max_pixels: int,
    protect: frozenset[tuple[int, int]] = frozenset(),
    options: ImageOptions = DEFAULT_IMAGE_OPTIONS,
    plan: DecodePlan | None = None,
) -> DecodeReport:
    """Decode one .aec file to one image file; `protect`: input_ids() of the whole batch.

    `codecs`: a CodecPool decodes with the model the file names; a Codec refuses files of
    another model. A file with transparency is refused for a format without alpha (JPEG, BMP,
    ...) unless options.drop_alpha, and a full-colour one for GIF unless
    options.reduce_colours, before anything is decoded (`decodeplan.plan_decode`)."""
    job = decode_start(codecs, source, target, force, max_pixels, protect, options, plan)
    codec = _codec_for(codecs, job.decoded.header)  # loaded by decode_start
    _stage(codec, "writing", 0)
    report = decode_finish(job)
    _stage(codec, "writing", 1)
    return report
