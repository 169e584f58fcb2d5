"""What `decode` checks of each input before the model is loaded (no torch).

A corrupt file, one too large, one whose output format would lose what was not asked for
(transparency, colours) or one whose model is not available fails here, in the time `info`
takes, rather than after PyTorch is imported: `decode` of a corrupt Kodak file took 2.4 s before
and 0.28 s now on the 2-core CPU, as `info` (medians of 7 runs on a busy machine, load about
5). The file is read once: the plan carries its bytes on to the decoder.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import container
from .container import Header
from .imageformats import (
    DEFAULT_IMAGE_OPTIONS,
    ImageOptions,
    check_writable_format,
    image_format_for,
    output_mode,
)
from .inputs import STDIO, read_input, sniff_aec
from .registry import ModelLibrary


@dataclass(frozen=True)
class DecodePlan:
    """An input that passed every check that needs no decoding."""

    data: bytes  # the whole .aec file, checksum verified
    header: Header
    format: str  # the Pillow format to write: PNG, JPEG, WEBP, ...
    mode: str  # the mode of the image written (alpha dropped with --drop-alpha, ...)


def plan_decode(
    source: str,
    target: str,
    max_pixels: int,
    options: ImageOptions = DEFAULT_IMAGE_OPTIONS,
    library: ModelLibrary | None = None,
) -> DecodePlan:
    """Read and check one input of `decode`: AecError for anything that would fail.

    The whole container is validated, its CRC32 included (34 us for kodim05's 76 KB file);
    with a `library`, the model the file names must be available in it."""
    fmt = "PNG" if target == STDIO else image_format_for(target)
    check_writable_format(fmt)
    data = read_input(source, sniff=sniff_aec)
    header = container.read_header(data, max_pixels=max_pixels)
    mode = output_mode(source, header.mode, fmt, options)
    if library is not None:
        library.find(header.model_id, header.fingerprint)  # ModelNotFoundError
    return DecodePlan(data, header, fmt, mode)
