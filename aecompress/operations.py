"""What each CLI command does, as plain functions that return typed reports.

The CLI (cli.py) only parses arguments, calls these and prints the reports; errors are raised
as AecError subclasses and turned into exit codes there.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import container
from .codec import Codec
from .errors import AecError
from .fileio import check_writable, write_output, write_stdout
from .imageio import image_format_for, load_image, restore_image, save_image
from .metrics import ms_ssim, psnr

STDIO = "-"


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
    ratio_raw: float  # raw 24-bit RGB (W*H*3 bytes) / output_bytes
    ratio_input: float  # input_bytes / output_bytes
    psnr: float  # dB, of what decode will return, vs the input's RGB pixels
    ms_ssim: float
    seconds: float
    warnings: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DecodeReport:
    input: str
    output: str
    width: int
    height: int
    mode: str
    output_bytes: int
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class InfoReport:
    file: str
    format_version: int
    model_id: str
    fingerprint: str
    width: int
    height: int
    mode: str
    quality: float
    file_bytes: int
    z_bytes: int
    y_bytes: int
    alpha_bytes: int
    palette_bytes: int
    icc_bytes: int
    bpp: float

    def to_dict(self) -> dict:
        return asdict(self)


def read_input(name: str) -> bytes:
    if name == STDIO:
        return sys.stdin.buffer.read()
    path = Path(name)
    if not path.exists():
        raise AecError(f"{name}: no such file")
    if path.is_dir():
        raise AecError(f"{name}: is a directory")
    try:
        return path.read_bytes()
    except OSError as e:
        raise AecError(f"{name}: cannot read ({e.strerror})") from e


def output_paths(inputs: list[str], output: str | None, suffix: str) -> list[str]:
    """Where each input's result goes: -o is a file for one input, a directory for several."""
    if len(inputs) == 1:
        if output is not None:
            return [output]
        if inputs[0] == STDIO:
            return [STDIO]
        return [str(Path(inputs[0]).with_suffix(suffix))]
    if STDIO in inputs:
        raise AecError("'-' (standard input) can only be used with a single input")
    if output == STDIO:
        raise AecError("'-o -' (standard output) can only be used with a single input")
    if output is None:
        return [str(Path(p).with_suffix(suffix)) for p in inputs]
    out_dir = Path(output)
    if not out_dir.is_dir():
        raise AecError(f"{output}: with several inputs, -o must be an existing directory")
    names = [Path(p).with_suffix(suffix).name for p in inputs]
    if len(set(names)) != len(names):
        raise AecError("several inputs would write the same output name in " + output)
    return [str(out_dir / n) for n in names]


def _prepare_output(target: str, force: bool, source: str) -> None:
    if target != STDIO:
        check_writable(Path(target), force, [Path(source)] if source != STDIO else [])


def _emit(target: str, data: bytes, force: bool) -> None:
    if target == STDIO:
        write_stdout(data)
    else:
        write_output(Path(target), data, force)


def encode_one(codec: Codec, source: str, target: str, quality: float, force: bool) -> EncodeReport:
    _prepare_output(target, force, source)
    raw = read_input(source)
    image = load_image(raw if source == STDIO else Path(source))
    t0 = time.perf_counter()
    encoded = codec.encode(image, quality)
    seconds = time.perf_counter() - t0
    restored = restore_image(encoded.rgb, image.mode, image.alpha, image.palette)
    decoded_rgb = np.asarray(restored.convert("RGB"))
    _emit(target, encoded.data, force)
    n = len(encoded.data)
    pixels = image.width * image.height
    return EncodeReport(
        input=source,
        output=target,
        width=image.width,
        height=image.height,
        mode=image.mode.name,
        quality=encoded.header.quality,
        input_bytes=len(raw),
        output_bytes=n,
        bpp=n * 8 / pixels,
        ratio_raw=pixels * 3 / n,
        ratio_input=len(raw) / n,
        psnr=psnr(image.rgb, decoded_rgb),
        ms_ssim=ms_ssim(image.rgb, decoded_rgb),
        seconds=seconds,
        warnings=list(image.warnings),
    )


def decode_one(
    codec: Codec, source: str, target: str, force: bool, max_pixels: int
) -> DecodeReport:
    _prepare_output(target, force, source)
    fmt = "PNG" if target == STDIO else image_format_for(Path(target))
    data = read_input(source)
    t0 = time.perf_counter()
    decoded = codec.decode(data, max_pixels=max_pixels)
    seconds = time.perf_counter() - t0
    image = restore_image(decoded.rgb, decoded.header.mode, decoded.alpha, decoded.palette)
    out = save_image(image, fmt, decoded.icc)
    _emit(target, out, force)
    return DecodeReport(
        input=source,
        output=target,
        width=decoded.header.width,
        height=decoded.header.height,
        mode=decoded.header.mode.name,
        output_bytes=len(out),
        seconds=seconds,
    )


def info_one(source: str, max_pixels: int) -> InfoReport:
    data = read_input(source)
    header, streams = container.unpack(data, max_pixels=max_pixels)
    return InfoReport(
        file=source,
        format_version=container.FORMAT_VERSION,
        model_id=header.model_id,
        fingerprint=header.fingerprint.hex(),
        width=header.width,
        height=header.height,
        mode=header.mode.name,
        quality=header.quality,
        file_bytes=len(data),
        z_bytes=len(streams.z),
        y_bytes=len(streams.y),
        alpha_bytes=len(streams.alpha),
        palette_bytes=len(streams.palette),
        icc_bytes=len(streams.icc),
        bpp=len(data) * 8 / header.pixels,
    )
