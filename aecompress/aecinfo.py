"""`aecompress info`: what an .aec file's header says, and which model file decodes it.

Reads the header and stream lengths only: no torch, no Pillow, no model is loaded.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from . import container
from .errors import ModelNotFoundError
from .inputs import read_input, sniff_aec
from .registry import ModelLibrary


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


def info_one(source: str, max_pixels: int, library: ModelLibrary | None = None) -> InfoReport:
    """What the header says, and (with a library) which model file decodes it, if any."""
    data = read_input(source, sniff=sniff_aec)
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
