"""The image formats `decode` writes, chosen by the output's extension (no Pillow import).

Checked before any decoding starts, so that a wrong name fails at once: an unknown extension,
a format the installed Pillow cannot write, one that would silently drop transparency, or GIF
for a full-colour image (GIF holds 256 colours).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import AecError, ImageError, UsageError
from .modes import ColourMode

FORMATS_BY_EXTENSION = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".jfif": "JPEG",
    ".webp": "WEBP",
    ".avif": "AVIF",
    ".jp2": "JPEG2000",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
    ".gif": "GIF",
    ".ppm": "PPM",
    ".pgm": "PPM",
    ".pnm": "PPM",
}

# Formats that store an alpha channel (GIF and PNG palettes: one transparent index at most, which
# save_image uses where the image allows it; otherwise GIF, too, loses the alpha plane).
ALPHA_FORMATS = frozenset({"PNG", "WEBP", "AVIF", "JPEG2000", "TIFF"})

# Formats that are always written lossily, at --image-quality or DEFAULT_IMAGE_QUALITY.
LOSSY_FORMATS = frozenset({"JPEG", "AVIF"})
# Formats written losslessly unless --image-quality is given: without it the file holds the
# decoded pixels exactly. WebP takes the quality as libwebp's 1-100; JPEG 2000 as the PSNR in
# dB to reach (ImageMagick's convention for its JPEG 2000 quality; OpenJPEG tops out near 51 dB
# on 8-bit photos, so 30-50 is the useful range).
LOSSLESS_UNLESS_QUALITY = frozenset({"WEBP", "JPEG2000"})
DEFAULT_IMAGE_QUALITY = 95

# Formats that hold at most 256 colours: a full-colour image is reduced to a palette (Pillow's
# median cut), which can cost more than the codec did (kodim05 at q 75: its GIF is 32.1 dB
# against the PNG of the same decode), so it is done only with --reduce-colours.
PALETTE_FORMATS = frozenset({"GIF"})

# zlib level of PNG output. Decoded Kodak images at q20-90 (2-core CPU, one core per image):
# level 2 writes in 30 ms and 0.6% more bytes than Pillow's default 6, which takes 121 ms (3: 46
# ms and 0.6% fewer bytes). Writing was as slow as g_s; a decoded photo barely compresses more.
PNG_COMPRESS_LEVEL = 2

# Formats that need an optional part of Pillow: the name `PIL.features.check` knows it by, and
# what the user is told when it is missing.
_FEATURES = {
    "AVIF": ("avif", "Pillow >= 11.3 with AVIF support"),
    "JPEG2000": ("jpg_2000", "Pillow built with OpenJPEG"),
}


@dataclass(frozen=True)
class ImageOptions:
    """How `decode` writes images: the quality of lossy output (None: JPEG and AVIF at
    DEFAULT_IMAGE_QUALITY, WebP and JPEG 2000 lossless), and the losses allowed only when asked
    for: dropping an alpha channel the format cannot hold, reducing a full-colour image to the
    256 colours of GIF."""

    quality: int | None = None
    drop_alpha: bool = False
    reduce_colours: bool = False


DEFAULT_IMAGE_OPTIONS = ImageOptions()


class UnknownImageFormat(ImageError, UsageError):
    """An output name whose extension names no format this build writes (a usage error)."""


def image_format_for(path: Path | str) -> str:
    """The Pillow format name to write for an output path, chosen by its extension."""
    suffix = Path(path).suffix.lower()
    try:
        return FORMATS_BY_EXTENSION[suffix]
    except KeyError:
        known = ", ".join(sorted(FORMATS_BY_EXTENSION))
        if suffix:
            what = f"unknown image extension '{suffix}'"
        else:
            what = "no extension to choose the image format by"
        raise UnknownImageFormat(f"{path}: {what} (use one of {known})") from None


def check_writable_format(fmt: str) -> None:
    """ImageError if the installed Pillow cannot write `fmt` (AVIF needs Pillow >= 11.3 built
    with libavif, JPEG 2000 a Pillow built with OpenJPEG)."""
    if fmt in _FEATURES:
        from PIL import features

        feature, needed = _FEATURES[fmt]
        if not features.check(feature):
            raise ImageError(
                f"this Pillow cannot write {fmt} ({needed} is needed); write .png or .webp instead"
            )


# The mode an image of each alpha mode is written in by a format without alpha. A palette
# stays a palette where the format holds one exactly (GIF); elsewhere PA is written as RGB.
_WITHOUT_ALPHA = {"RGBA": "RGB", "LA": "L", "PA": "RGB"}


def output_mode(source: str, mode: ColourMode, fmt: str, options: ImageOptions) -> str:
    """The Pillow mode an image of `mode` is written in as `fmt`; AecError naming `source` for
    a loss that was not asked for (transparency, or the colours of a full-colour image in
    GIF). Only the header is needed: this runs before anything is decoded."""
    name = mode.name
    if mode.has_alpha and fmt not in ALPHA_FORMATS:
        if not options.drop_alpha:
            raise AecError(
                f"{source}: the image has transparency ({name}), which {fmt} cannot hold: "
                "write .png, .webp or .avif, or add --drop-alpha to discard it"
            )
        name = "P" if name == "PA" and fmt in PALETTE_FORMATS else _WITHOUT_ALPHA[name]
    if fmt in PALETTE_FORMATS and name == "RGB":
        if not options.reduce_colours:
            raise AecError(
                f"{source}: the image is full-colour and {fmt} holds 256 colours: write .png, "
                ".webp or .avif, or add --reduce-colours to reduce it to a 256-colour palette"
            )
        name = "P"
    return name
