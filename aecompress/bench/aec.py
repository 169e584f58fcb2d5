"""aec as a benchmarked codec: the one place that knows how `Codec` is called.

The benchmark sees every codec as a pair of callables over H×W×3 uint8 RGB arrays; this
module writes the pixels as a whole .aec file (header included, as a user's file) and reads
them back, through the file layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..imagefile import decode_image, encode_image
from ..imageio import SourceImage
from ..modes import ColourMode
from .codecs import Decoder, Encoder

if TYPE_CHECKING:
    from ..codec import Codec


def aec_coders(codec: Codec, effort: int = 0) -> tuple[Encoder, Decoder]:
    """Encode (at an encoding effort, effort.py) / decode through the real .aec bytes, in
    memory."""

    def encode(rgb: np.ndarray, quality: float) -> bytes:
        # Only the file is timed: reconstruct=False skips the synthesis transform, which the
        # encoder needs only to report its reconstruction; g_s is timed in decode, where it runs.
        # Above effort 0 the encoder runs g_s itself (refining, and choosing by true cost),
        # and that is timed, as it is part of making the file.
        image = SourceImage(rgb=rgb, mode=ColourMode.RGB)
        return encode_image(codec, image, quality, reconstruct=False, effort=effort).data

    def decode(data: bytes) -> np.ndarray:
        return decode_image(codec, data).rgb

    return encode, decode
