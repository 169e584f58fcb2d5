"""The records a benchmark run produces: one point per codec, swept value and image; the curves
and summaries derived from them; the codecs, the machine, and the run as a whole.

They are plain dataclasses so that `report` can write every field as JSON or CSV as it is;
how each value is measured or derived is told in `runner` and `summary`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only a type here: the records load without numpy
    from ..imagesets import NamedImage


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
    images: list[NamedImage]
    points: list[ImagePoint]
    curves: list[CurvePoint]
    summary: list[CodecSummary]
    seconds: float
