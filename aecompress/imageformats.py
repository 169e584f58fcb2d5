"""The image formats `decode` writes, chosen by the output's extension (no Pillow import).

Checked before any decoding starts, so that a wrong name fails at once: an unknown extension,
a format the installed Pillow cannot write, or one that would silently drop transparency.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ImageError, UsageError

FORMATS_BY_EXTENSION = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".jfif": "JPEG",
    ".webp": "WEBP",
    ".avif": "AVIF",
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
ALPHA_FORMATS = frozenset({"PNG", "WEBP", "AVIF", "TIFF"})

# Formats written lossily, at --image-quality (WebP is lossless unless a quality is given).
LOSSY_FORMATS = frozenset({"JPEG", "AVIF"})
DEFAULT_IMAGE_QUALITY = 95
# zlib level of PNG output. Decoded Kodak images at q20-90 (2-core CPU, one core per image):
# level 2 writes in 30 ms and 0.6% more bytes than Pillow's default 6, which takes 121 ms (3: 46
# ms and 0.6% fewer bytes). Writing was as slow as g_s; a decoded photo barely compresses more.
PNG_COMPRESS_LEVEL = 2


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
    with libavif)."""
    if fmt == "AVIF":
        from PIL import features

        if not features.check("avif"):
            raise ImageError(
                "this Pillow cannot write AVIF (Pillow >= 11.3 with AVIF support is needed); "
                "write .png or .webp instead"
            )
