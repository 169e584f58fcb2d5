"""What each CLI command does, as plain functions that return typed reports.

The CLI (`aecompress.cli`) only parses arguments, calls these and prints the reports; errors
are raised as AecError subclasses and turned into exit codes there.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from . import container
from .checkpoint import load_checkpoint, read_identity
from .codec import Codec
from .container import Header
from .errors import AecError, CheckpointError, ImageError, ModelNotFoundError
from .fileio import check_writable, write_output, write_stdout
from .imagefile import decode_to_image_file, encode_image, image_format_for, restore_image
from .imageio import load_image
from .metrics import ms_ssim, psnr
from .modelcard import describe_data
from .registry import ModelLibrary
from .target import Target, encode_to_target

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
    model_file: str | None  # the model file that decodes it, None when it is not available
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


@dataclass
class ModelReport:
    model_id: str
    fingerprint: str
    file: str
    source: str  # where it was found: package, $AECOMPRESS_MODELS, $AECOMPRESS_MODEL, --model
    bytes: int
    default: bool  # what `encode` uses without --model
    trained_on: str | None  # from the checkpoint's provenance
    images: int | None
    steps: str | None
    training_seconds: float | None
    device: str | None
    kodak: list[dict]  # [{quality, bpp, psnr}] measured on Kodak, where the index records it
    kodak_command: str | None

    def to_dict(self) -> dict:
        return asdict(self)


class CodecPool:
    """One Codec per model that the files of a batch name, found by the id and fingerprint in
    each file's header and loaded on first use."""

    def __init__(
        self,
        library: ModelLibrary,
        device: torch.device,
        on_load: Callable[[Codec], None] | None = None,
    ):
        self.library = library
        self.device = device
        self.on_load = on_load
        self._codecs: dict[tuple[str, bytes], Codec] = {}

    def for_header(self, header: Header) -> Codec:
        key = (header.model_id, header.fingerprint)
        if key not in self._codecs:
            found = self.library.find(header.model_id, header.fingerprint)
            codec = Codec(load_checkpoint(found.path), self.device)
            codec.check_model(header)  # the weights decide, whatever an index says
            self._codecs[key] = codec
            if self.on_load is not None:
                self.on_load(codec)
        return self._codecs[key]


SNIFF_BYTES = len(container.MAGIC)  # what read_input shows its `sniff` before reading on


def _open_input(name: str) -> contextlib.AbstractContextManager[BinaryIO]:
    if name == STDIO:  # read it, but leave sys.stdin open
        return contextlib.nullcontext(sys.stdin.buffer)
    path = Path(name)
    if not path.exists():
        raise AecError(f"{name}: no such file")
    if path.is_dir():
        raise AecError(f"{name}: is a directory")
    try:
        return open(path, "rb")
    except OSError as e:
        raise AecError(f"{name}: cannot read ({e.strerror or e})") from e


def read_input(name: str, sniff: Callable[[bytes], None] | None = None) -> bytes:
    """Read a whole input file ('-' = stdin); every failure is an AecError naming it.

    `sniff`, if given, sees the first few bytes before the rest is read and raises to refuse
    the input early, so that an endless stream (/dev/zero, a pipe) of the wrong kind is
    never read into memory.
    """
    with _open_input(name) as f:
        try:
            head = f.read(SNIFF_BYTES)
            if sniff is not None:
                sniff(head)
            return head + f.read()
        except OSError as e:
            raise AecError(f"{name}: cannot read ({e.strerror or e})") from e


def _sniff_aec(head: bytes) -> None:
    """Refuse at once what cannot be an .aec file, with the container's own message."""
    if head != container.MAGIC:
        container.unpack(head)  # raises FormatError: empty, not an .aec file or truncated


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
        targets = [str(Path(p).with_suffix(suffix)) for p in inputs]
    else:
        out_dir = Path(output)
        if not out_dir.is_dir():
            raise AecError(f"{output}: with several inputs, -o must be an existing directory")
        targets = [str(out_dir / Path(p).with_suffix(suffix).name) for p in inputs]
    seen: dict[str, str] = {}
    for target in targets:
        key = os.path.normcase(os.path.abspath(target))
        if key in seen:
            raise AecError(f"several inputs would write the same output file {target}")
        seen[key] = target
    return targets


def input_ids(names: Iterable[str]) -> frozenset[tuple[int, int]]:
    """(device, inode) of every input that is a regular file ('-': stdin, if redirected from one).

    Computed once per batch, so that no output may replace any input of the batch.
    """
    ids = set()
    for name in names:
        try:
            st = os.fstat(sys.stdin.fileno()) if name == STDIO else os.stat(name)
        except (AttributeError, OSError, ValueError):  # no such file, or no real stdin
            continue
        if stat.S_ISREG(st.st_mode):
            ids.add((st.st_dev, st.st_ino))
    return frozenset(ids)


def _prepare_output(
    target: str, force: bool, source: str, protect: frozenset[tuple[int, int]]
) -> None:
    """Refuse a target that exists (without --force) or that is an input, even with --force."""
    if target == STDIO:
        return
    check_writable(Path(target), force, [Path(source)] if source != STDIO else [])
    try:
        st = os.stat(target)
    except OSError:
        return
    if (st.st_dev, st.st_ino) in protect | input_ids([source]):
        raise AecError(f"refusing to overwrite the input file {target}")


def _emit(target: str, data: bytes, force: bool) -> None:
    if target == STDIO:
        try:
            write_stdout(data)
        except OSError as e:  # e.g. a closed pipe (`| head`)
            raise AecError(f"cannot write to standard output ({e.strerror or e})") from e
    else:
        write_output(Path(target), data, force)


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
    raw = read_input(source)
    try:
        return load_image(raw), len(raw)
    except ImageError as e:  # name the input, not "<bytes>"
        shown = "<stdin>" if source == STDIO else source
        raise ImageError(str(e).replace("<bytes>", shown, 1)) from e


def encode_one(
    codec: Codec,
    source: str,
    target: str,
    quality: float,
    force: bool,
    protect: frozenset[tuple[int, int]] = frozenset(),
    goal: Target | None = None,
) -> EncodeReport:
    """Compress one image file to one .aec file; `protect`: input_ids() of the whole batch.

    With a `goal` (size, bpp or PSNR), the quality is searched for and `quality` is ignored."""
    if source != STDIO and not Path(source).exists():
        raise AecError(f"{source}: no such file")
    _prepare_output(target, force, source, protect)
    image, input_bytes = _load_source_image(source)
    t0 = time.perf_counter()
    if goal is None:
        encoded = encode_image(codec, image, quality)
    else:
        encoded = encode_to_target(codec, image, goal).encoded
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
        input_bytes=input_bytes,
        output_bytes=n,
        bpp=n * 8 / pixels,
        ratio_raw=pixels * 3 / n,
        ratio_input=input_bytes / n,
        psnr=psnr(image.rgb, decoded_rgb),
        ms_ssim=ms_ssim(image.rgb, decoded_rgb),
        seconds=seconds,
        warnings=list(image.warnings),
    )


def decode_one(
    codecs: Codec | CodecPool,
    source: str,
    target: str,
    force: bool,
    max_pixels: int,
    protect: frozenset[tuple[int, int]] = frozenset(),
) -> DecodeReport:
    """Decode one .aec file to one image file; `protect`: input_ids() of the whole batch.

    `codecs`: a CodecPool decodes with the model the file names; a Codec refuses files of
    another model."""
    if source != STDIO and not Path(source).exists():
        raise AecError(f"{source}: no such file")
    _prepare_output(target, force, source, protect)
    fmt = "PNG" if target == STDIO else image_format_for(Path(target))
    data = read_input(source, sniff=_sniff_aec)
    codec = codecs
    if isinstance(codecs, CodecPool):
        codec = codecs.for_header(container.read_header(data, max_pixels=max_pixels))
    t0 = time.perf_counter()
    decoded, out = decode_to_image_file(codec, data, fmt, max_pixels)
    seconds = time.perf_counter() - t0
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


def info_one(source: str, max_pixels: int, library: ModelLibrary | None = None) -> InfoReport:
    """What the header says, and (with a library) which model file decodes it, if any."""
    data = read_input(source, sniff=_sniff_aec)
    header, streams = container.unpack(data, max_pixels=max_pixels)
    model_file = None
    if library is not None:
        try:
            found = library.find(header.model_id, header.fingerprint)
            model_file = os.path.abspath(found.path)
        except ModelNotFoundError:  # info still describes the file
            pass
    return InfoReport(
        file=source,
        format_version=header.version,
        model_id=header.model_id,
        fingerprint=header.fingerprint.hex(),
        model_file=model_file,
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


def list_models(library: ModelLibrary) -> list[ModelReport]:
    """Every available model, in search order, described from its checkpoint and the index.

    A file whose weights do not match its index entry is left out and noted in
    library.problems."""
    try:
        default = os.path.realpath(library.encoder_model())
    except CheckpointError as e:
        library.problems.append(str(e))
        default = None
    reports = []
    for m in library.available():
        ident = read_identity(m.path)
        if ident.fingerprint.hex() != m.fingerprint or ident.model_id != m.model_id:
            library.problems.append(
                f"{m.path}: holds model {ident.model_id} ({ident.fingerprint.hex()}), but "
                f"the index lists {m.model_id} ({m.fingerprint})"
            )
            continue
        p = ident.provenance
        seconds = p.get("wall_seconds")
        images = p.get("images")
        reports.append(
            ModelReport(
                model_id=m.model_id,
                fingerprint=m.fingerprint,
                file=os.path.abspath(m.path),
                source=m.source,
                bytes=m.path.stat().st_size,
                default=os.path.realpath(m.path) == default,
                trained_on=describe_data(p),
                images=int(images) if images and images.isdigit() else None,
                steps=p.get("steps"),
                training_seconds=float(seconds) if _is_number(seconds) else None,
                device=p.get("device"),
                kodak=[asdict(k) for k in m.kodak],
                kodak_command=m.kodak_command or None,
            )
        )
    return reports


def _is_number(text: str | None) -> bool:
    try:
        float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True
