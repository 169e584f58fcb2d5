"""Reading images: any file Pillow opens → the uint8 RGB plane the codec compresses.

`load_image` reduces an image to an H x W x 3 uint8 RGB plane plus what is needed to restore
the original kind of image: the `ColourMode`, a lossless alpha plane, the palette (its real
entries, at most 256) and the ICC profile (`SourceImage`). The way back (`restore_image`,
`save_image`) is in `imagefile`.

Choices worth knowing:

* Grayscale (L/LA) is coded as R=G=B.
* Palette images (P) are coded as the palette colour of each pixel. The palette is kept at its
  real length -- never padded to 256 entries -- so a restored pixel only ever takes a colour
  the original palette had.
* Palette images with transparency are mode PA: Pillow's palette-plus-alpha mode, with the alpha
  plane stored losslessly.
* An RGB or L image with a colour-key transparency (PNG tRNS) is loaded as RGBA or LA.
* An ICC profile is kept as is when it describes RGB or gray data. One for another colour
  space (CMYK, Lab, ...) no longer describes the converted pixels and is dropped with a warning.
"""

from __future__ import annotations

import io
import warnings as _warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError
from .modes import ColourMode
from .palette import image_palette, palette_lookup

_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}
_COLOUR_CONVERSIONS = {"CMYK", "YCbCr", "LAB", "HSV"}


@dataclass
class SourceImage:
    """An input image reduced to what the codec compresses and what restores it."""

    rgb: np.ndarray
    """H x W x 3 uint8, C-contiguous: the pixels the codec compresses."""
    mode: ColourMode
    """How to restore the original kind of image from `rgb`."""
    alpha: np.ndarray | None = None
    """H x W uint8 alpha plane when ``mode.has_alpha``, else None."""
    palette: bytes | None = None
    """The image's palette when ``mode.has_palette``, else None: n RGB triples (3 x n bytes,
    1 <= n <= 256) as Pillow's ``getpalette("RGB")`` gives them. Only when pixel indices reach
    beyond the palette is it extended, with black entries, just far enough to cover them."""
    icc: bytes | None = None
    """The input's ICC profile, unchanged."""
    warnings: list[str] = field(default_factory=list)
    """Human-readable notes on conversions made while loading."""

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


# --------------------------------------------------------------------------------------------
# Loading


def _display_name(source: str | Path | bytes) -> str:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>"
    return str(source)


def reason(exc: BaseException) -> str:
    if isinstance(exc, UnidentifiedImageError):
        return "cannot identify image file"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip().splitlines()
    return text[0] if text and text[0] else type(exc).__name__


def _open_and_load(stream: BinaryIO, name: str) -> tuple[Image.Image, list[str]]:
    """Open and fully decode the first frame; every Pillow failure becomes an ImageError."""
    notes: list[str] = []
    try:
        with _warnings.catch_warnings(record=True) as caught:
            _warnings.simplefilter("always", Image.DecompressionBombWarning)
            image = Image.open(stream)
            if _samples_reduced_to_8_bit(image):
                notes.append("reduced 16-bit samples to 8-bit")
            image.load()
        for warning in caught:
            if issubclass(warning.category, Image.DecompressionBombWarning):
                notes.append(f"{name}: very large image ({warning.message})")
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{name}: too many pixels to decode safely ({reason(exc)})") from exc
    except Exception as exc:  # Pillow signals bad input with many exception types
        raise ImageError(f"{name}: not a readable image ({reason(exc)})") from exc
    return image, notes


def _samples_reduced_to_8_bit(image: Image.Image) -> bool:
    """Whether Pillow will silently drop the low byte of 16-bit samples while loading (it does
    so for 16-bit RGB/RGBA PNGs, whose mode is plain RGB/RGBA). Checked before load(), which
    clears the tile list."""
    if image.mode in _SIXTEEN_BIT_MODES:
        return False  # reported when converted to 8-bit gray
    for tile in getattr(image, "tile", None) or []:
        args = tile[3] if len(tile) > 3 else None
        raw = args[0] if isinstance(args, tuple) and args else args
        if isinstance(raw, str) and ";16" in raw:
            return True
    return False


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))


def _integer_to_gray(image: Image.Image) -> tuple[np.ndarray, str]:
    """Reduce I;16* / I images to 8 bits: 16-bit data keeps its top byte."""
    values = np.asarray(image)
    if image.mode in _SIXTEEN_BIT_MODES:
        return (values.astype(np.uint16) >> 8).astype(np.uint8), "reduced 16-bit samples to 8-bit"
    values = values.astype(np.int64)
    low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
    if low >= 0 and high <= 0xFFFF:
        return (values >> 8).astype(np.uint8), "reduced 16-bit samples to 8-bit"
    span = max(high - low, 1)
    scaled = np.rint((values - low) * (255.0 / span))
    return scaled.astype(np.uint8), "rescaled 32-bit integer samples to 8-bit"


def _float_to_gray(image: Image.Image) -> np.ndarray:
    """Float samples in [0, 1] are scaled by 255; anything else is clipped to [0, 255]."""
    values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=255.0, neginf=0.0)
    if values.size and values.min() >= 0.0 and values.max() <= 1.0:
        values = values * 255.0
    return np.rint(np.clip(values, 0.0, 255.0)).astype(np.uint8)


def _icc_colour_space(icc: bytes) -> str | None:
    """The data colour space signature of an ICC profile header, e.g. "RGB " or "GRAY"."""
    if len(icc) < 20:
        return None
    return icc[16:20].decode("latin-1")


def icc_fits(icc: bytes) -> bool:
    """Whether an ICC profile can describe the RGB or gray pixels the codec keeps.

    Profiles for RGB or GRAY data (or with an unreadable header) are kept as they are; ones for
    CMYK, Lab, YCbCr and the like describe pixels that were converted away and are dropped.
    """
    space = _icc_colour_space(icc)
    return space is None or space in ("RGB ", "GRAY")


def load_image(source: str | Path | bytes) -> SourceImage:
    """Read an image file (a path or its bytes) into a `SourceImage`.

    Raises ImageError, with a one-line message naming the file, for anything Pillow cannot
    read: not an image, empty, truncated, or too large (Pillow's decompression-bomb limit).
    """
    name = _display_name(source)
    stream: BinaryIO
    if isinstance(source, (bytes, bytearray, memoryview)):
        stream = io.BytesIO(bytes(source))
    else:
        try:
            stream = open(Path(source), "rb")  # closed by the with below
        except OSError as exc:
            raise ImageError(f"{name}: cannot open file ({reason(exc)})") from exc
    with stream:
        image, notes = _open_and_load(stream, name)
        try:
            return _to_source_image(image, name, notes)
        finally:
            image.close()


def _to_source_image(image: Image.Image, name: str, notes: list[str]) -> SourceImage:
    frames = int(getattr(image, "n_frames", 1) or 1)
    if frames > 1:
        notes.append(f"{name} has {frames} frames; only the first is encoded")
    icc = image.info.get("icc_profile") or None
    try:
        image = ImageOps.exif_transpose(image)
    except Exception as exc:  # a corrupt EXIF block should not stop the encode
        notes.append(f"ignored unreadable EXIF orientation ({reason(exc)})")

    source_mode = image.mode
    has_key = "transparency" in image.info
    alpha: np.ndarray | None = None
    palette: bytes | None = None

    if source_mode in ("P", "PA"):
        if source_mode == "PA":
            indices = np.asarray(image.getchannel(0), dtype=np.uint8)
            alpha = np.asarray(image.getchannel(1), dtype=np.uint8)
        else:
            indices = np.asarray(image, dtype=np.uint8)
            palette_mode = image.palette.mode if image.palette is not None else "RGB"
            if has_key or palette_mode == "RGBA":
                alpha = np.asarray(image.convert("RGBA"), dtype=np.uint8)[:, :, 3]
        palette = image_palette(image, indices)
        rgb = palette_lookup(indices, palette)
        mode = ColourMode.PA if alpha is not None else ColourMode.P
    elif source_mode in ("RGB", "RGBA", "RGBX", "RGBa") or source_mode in _COLOUR_CONVERSIONS:
        if source_mode in _COLOUR_CONVERSIONS:
            notes.append(f"converted {source_mode} to RGB")
        if source_mode == "RGBA" or source_mode == "RGBa" or (source_mode == "RGB" and has_key):
            pixels = np.asarray(image.convert("RGBA"), dtype=np.uint8)
            rgb, alpha = pixels[:, :, :3], pixels[:, :, 3]
            mode = ColourMode.RGBA
        else:
            rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
            mode = ColourMode.RGB
    elif source_mode in ("L", "LA", "La", "1"):
        if source_mode == "1":
            notes.append("converted 1-bit image to 8-bit grayscale")
        if source_mode in ("LA", "La") or (source_mode == "L" and has_key):
            pixels = np.asarray(image.convert("LA"), dtype=np.uint8)
            gray, alpha = pixels[:, :, 0], pixels[:, :, 1]
            mode = ColourMode.LA
        else:
            gray = np.asarray(image.convert("L"), dtype=np.uint8)
            mode = ColourMode.L
        rgb = _gray_to_rgb(gray)
    elif source_mode in _SIXTEEN_BIT_MODES or source_mode == "I":
        gray, note = _integer_to_gray(image)
        notes.append(note)
        rgb, mode = _gray_to_rgb(gray), ColourMode.L
    elif source_mode == "F":
        notes.append("converted 32-bit float samples to 8-bit grayscale")
        rgb, mode = _gray_to_rgb(_float_to_gray(image)), ColourMode.L
    else:
        try:
            converted = image.convert("RGBA" if "A" in source_mode else "RGB")
        except Exception as exc:
            raise ImageError(f"{name}: unsupported image mode {source_mode}") from exc
        notes.append(f"converted {source_mode} to {converted.mode}")
        pixels = np.asarray(converted, dtype=np.uint8)
        if converted.mode == "RGBA":
            rgb, alpha, mode = pixels[:, :, :3], pixels[:, :, 3], ColourMode.RGBA
        else:
            rgb, mode = pixels, ColourMode.RGB

    if icc is not None and not icc_fits(icc):
        space = (_icc_colour_space(icc) or "").strip()
        notes.append(f"dropped the embedded {space} ICC profile: the pixels are now {mode.name}")
        icc = None

    return SourceImage(
        rgb=np.ascontiguousarray(rgb, dtype=np.uint8),
        mode=mode,
        alpha=None if alpha is None else np.ascontiguousarray(alpha, dtype=np.uint8),
        palette=palette,
        icc=icc,
        warnings=notes,
    )


# --------------------------------------------------------------------------------------------
# Restoring


# --------------------------------------------------------------------------------------------
# Saving


# --------------------------------------------------------------------------------------------
# Lossless alpha planes
