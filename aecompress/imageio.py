"""The codec's pixel boundary: image files in, uint8 RGB planes out, and back again.

`load_image` reads anything Pillow can open and reduces it to what the codec compresses -- an
H x W x 3 uint8 RGB plane -- plus what is needed to restore the original kind of image: the
`ColourMode`, a lossless alpha plane, the palette (its real entries, at most 256) and the ICC
profile. `restore_image`
is its inverse and `save_image` encodes the result into an image file's bytes.

Choices worth knowing:

* Grayscale (L/LA) is coded as R=G=B and restored from the first channel.
* Palette images (P) are coded as the palette colour of each pixel; on restore every pixel is
  mapped to the nearest stored palette colour (squared RGB distance, lowest index on ties),
  which gives the original pixels back exactly when the decoded colours are exact. The palette
  is kept at its real length -- never padded to 256 entries -- so a restored pixel only ever
  takes a colour the original palette had.
* Palette images with transparency are mode PA: Pillow's palette-plus-alpha mode, with the alpha
  plane stored losslessly. `restore_image` returns a real "PA" image. Few formats can write PA,
  so `save_image` writes it to PNG as a palette image with a tRNS chunk when every palette index
  carries a single alpha value, and otherwise as RGBA (or whatever the format can hold).
* An RGB or L image with a colour-key transparency (PNG tRNS) is loaded as RGBA or LA.
* An ICC profile is kept as is when it describes RGB or gray data. One for another colour
  space (CMYK, Lab, ...) no longer describes the converted pixels and is dropped with a warning.
"""

from __future__ import annotations

import io
import warnings as _warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from aecompress.errors import FormatError, ImageError
from aecompress.modes import ColourMode

PALETTE_MAX_BYTES = 768  # 256 RGB entries; a palette is 3 x n bytes for 1 <= n <= 256

_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}
_COLOUR_CONVERSIONS = {"CMYK", "YCbCr", "LAB", "HSV"}

_FORMATS_BY_EXTENSION = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".jfif": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
    ".gif": "GIF",
    ".ppm": "PPM",
    ".pgm": "PPM",
    ".pnm": "PPM",
}

# Formats whose Pillow writer accepts an ``icc_profile`` argument.
_ICC_FORMATS = {"PNG", "JPEG", "WEBP", "TIFF"}

# Modes to try, in order, when a format cannot write the restored image's own mode.
_SAVE_FALLBACKS = {
    "RGB": ("RGB",),
    "L": ("L", "RGB"),
    "RGBA": ("RGBA", "RGB"),
    "LA": ("LA", "RGBA", "L"),
    "P": ("P", "RGB"),
    "PA": ("PA", "RGBA", "RGB"),
}


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


def _reason(exc: BaseException) -> str:
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
        raise ImageError(f"{name}: too many pixels to decode safely ({_reason(exc)})") from exc
    except Exception as exc:  # Pillow signals bad input with many exception types
        raise ImageError(f"{name}: not a readable image ({_reason(exc)})") from exc
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


def _palette_bytes(image: Image.Image, indices: np.ndarray) -> bytes:
    """The image's real palette, 3 x n bytes, extended only to cover every used index.

    Pillow lets a palette image hold indices past the end of its palette (or have no palette
    at all); those indices get zero (black) entries, so that every pixel's colour is defined
    and the palette never has fewer than one entry.
    """
    raw = bytes((image.getpalette("RGB") or [])[:PALETTE_MAX_BYTES])
    raw = raw[: len(raw) - len(raw) % 3]
    used = int(indices.max()) + 1 if indices.size else 1
    return raw + bytes(max(3 * used - len(raw), 0))


def _check_palette(palette: bytes) -> None:
    if not 3 <= len(palette) <= PALETTE_MAX_BYTES or len(palette) % 3:
        raise ValueError(
            f"palette must be 3 to {PALETTE_MAX_BYTES} bytes, a multiple of 3 (got {len(palette)})"
        )


def _palette_table(palette: bytes) -> np.ndarray:
    """The palette as an n x 3 uint8 array."""
    return np.frombuffer(palette, dtype=np.uint8).reshape(-1, 3)


def _palette_lookup(indices: np.ndarray, palette: bytes) -> np.ndarray:
    return np.ascontiguousarray(_palette_table(palette)[indices])


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


def _icc_fits(icc: bytes) -> bool:
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
            raise ImageError(f"{name}: cannot open file ({_reason(exc)})") from exc
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
        notes.append(f"ignored unreadable EXIF orientation ({_reason(exc)})")

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
        palette = _palette_bytes(image, indices)
        rgb = _palette_lookup(indices, palette)
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

    if icc is not None and not _icc_fits(icc):
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


def _check_plane(array: np.ndarray, height: int, width: int, what: str) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.shape != (height, width):
        raise ValueError(
            f"{what} must be a {height}x{width} uint8 array, got {array.dtype} {array.shape}"
        )
    return np.ascontiguousarray(array)


_GRID_SIDE = 8  # colour-cube cells of 8 x 8 x 8 values: 32^3 cells in all
_GRID_CELLS = 256 // _GRID_SIDE


def _cell_candidates(entries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every grid cell, the palette entries that can be nearest to some colour inside it.

    An entry is kept when its smallest possible distance to the cell is no larger than the
    largest possible distance from the cell to the best entry -- so the true nearest entry, and
    every entry tying with it, is always among the candidates. Returns (candidates, counts):
    a (cells, K) array of entry positions in ascending order, padded at the end, and the number
    of real candidates per cell.
    """
    count = len(entries)
    low = (np.arange(_GRID_CELLS, dtype=np.int32) * _GRID_SIDE)[:, None]
    high = low + (_GRID_SIDE - 1)
    nearest_sq, farthest_sq = [], []
    for axis in range(3):
        value = entries[:, axis].astype(np.int32)[None, :]
        gap = np.maximum(np.maximum(low - value, value - high), 0)
        nearest_sq.append(gap * gap)
        reach = np.maximum(np.abs(value - low), np.abs(value - high))
        farthest_sq.append(reach * reach)

    def cube(parts: list[np.ndarray]) -> np.ndarray:
        plane = (parts[0][:, None, :] + parts[1][None, :, :]).reshape(-1, 1, count)
        return (plane + parts[2][None, :, :]).reshape(-1, count)

    bound = cube(farthest_sq).min(axis=1)
    keep = cube(nearest_sq) <= bound[:, None]
    counts = keep.sum(axis=1)
    cells, positions = np.nonzero(keep)  # row-major: positions ascend within each cell
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    slot = np.arange(len(cells)) - starts[cells]
    candidates = np.zeros((len(keep), int(counts.max())), dtype=np.intp)
    candidates[cells, slot] = positions
    return candidates, counts


def nearest_palette_indices(rgb: np.ndarray, palette: bytes) -> np.ndarray:
    """Map every pixel of an H x W x 3 uint8 array to its nearest palette entry (H x W uint8).

    `palette` holds n RGB entries, 3 x n bytes for 1 <= n <= 256 (ValueError otherwise), and
    every result is one of 0..n-1: no entry beyond the palette's real length is ever chosen.
    Distance is squared RGB distance; among equally near entries the lowest index wins, so a
    pixel equal to a palette colour maps to that colour's first index. The search is exact and
    vectorised: the distinct colours of the image are compared only with the palette entries
    that can be nearest within their 8 x 8 x 8 cell of the colour cube.
    """
    _check_palette(palette)
    table = _palette_table(palette).astype(np.int32)
    table_keys = (table[:, 0] << 16) | (table[:, 1] << 8) | table[:, 2]
    # Distinct palette colours with their first index, kept in index order: scanning them in
    # that order and replacing only on a strictly smaller distance prefers the lowest index.
    _, first_index = np.unique(table_keys, return_index=True)
    first_index = np.sort(first_index)
    entries = table[first_index]
    candidates, counts = _cell_candidates(entries)

    pixels = rgb.reshape(-1, 3).astype(np.int32)
    keys = (pixels[:, 0] << 16) | (pixels[:, 1] << 8) | pixels[:, 2]
    colours, inverse = np.unique(keys, return_inverse=True)
    red, green, blue = (colours >> 16) & 255, (colours >> 8) & 255, colours & 255
    cell = ((red // _GRID_SIDE) * _GRID_CELLS + green // _GRID_SIDE) * _GRID_CELLS
    cell += blue // _GRID_SIDE

    def distance(where: np.ndarray | slice, entry: np.ndarray) -> np.ndarray:
        chosen = entries[entry]
        dr = red[where] - chosen[:, 0]
        dg = green[where] - chosen[:, 1]
        db = blue[where] - chosen[:, 2]
        return dr * dr + dg * dg + db * db

    best = candidates[cell, 0]
    best_distance = distance(slice(None), best)
    colour_counts = counts[cell]
    for slot in range(1, candidates.shape[1]):
        active = np.nonzero(colour_counts > slot)[0]
        if active.size == 0:
            break
        entry = candidates[cell[active], slot]
        found = distance(active, entry)
        better = found < best_distance[active]
        best[active[better]] = entry[better]
        best_distance[active[better]] = found[better]
    indices = first_index[best].astype(np.uint8)
    return indices[inverse.reshape(-1)].reshape(rgb.shape[:2])


def restore_image(
    rgb: np.ndarray,
    mode: ColourMode,
    alpha: np.ndarray | None = None,
    palette: bytes | None = None,
    icc: bytes | None = None,
) -> Image.Image:
    """Turn decoded H x W x 3 uint8 pixels back into an image of the original `mode`.

    L/LA take the first channel; P/PA map each pixel to the nearest colour of the stored
    palette -- n RGB entries, 3 x n bytes for 1 <= n <= 256 (ValueError otherwise) -- and the
    image carries exactly that palette; RGBA/LA/PA attach the lossless alpha plane. PA comes
    back as a Pillow "PA" image (palette indices plus alpha). The ICC profile, if any, is
    attached as ``image.info["icc_profile"]``.
    """
    mode = ColourMode(mode)
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be an H x W x 3 uint8 array, got {rgb.dtype} {rgb.shape}")
    rgb = np.ascontiguousarray(rgb)
    height, width = rgb.shape[:2]

    alpha_image: Image.Image | None = None
    if mode.has_alpha:
        if alpha is None:
            raise ValueError(f"mode {mode.name} needs an alpha plane")
        alpha_image = Image.fromarray(_check_plane(alpha, height, width, "alpha"), mode="L")
    if mode.has_palette:
        if palette is None:
            raise ValueError(f"mode {mode.name} needs a palette")
        _check_palette(palette)

    if mode in (ColourMode.RGB, ColourMode.RGBA):
        image = Image.fromarray(rgb, mode="RGB")
        if alpha_image is not None:
            image = Image.merge("RGBA", (*image.split(), alpha_image))
    elif mode in (ColourMode.L, ColourMode.LA):
        image = Image.fromarray(np.ascontiguousarray(rgb[:, :, 0]), mode="L")
        if alpha_image is not None:
            image = Image.merge("LA", (image, alpha_image))
    else:
        assert palette is not None
        indices = Image.fromarray(nearest_palette_indices(rgb, palette), mode="L")
        if alpha_image is not None:
            image = Image.merge("PA", (indices, alpha_image))
        else:
            image = Image.frombytes("P", indices.size, indices.tobytes())
        image.putpalette(palette, "RGB")

    if icc:
        image.info["icc_profile"] = icc
    return image


# --------------------------------------------------------------------------------------------
# Saving


def image_format_for(path: Path | str) -> str:
    """The Pillow format name to write for an output path, chosen by its extension."""
    suffix = Path(path).suffix.lower()
    try:
        return _FORMATS_BY_EXTENSION[suffix]
    except KeyError:
        known = ", ".join(sorted(_FORMATS_BY_EXTENSION))
        what = f"extension '{suffix}'" if suffix else "no extension"
        raise ImageError(f"{path}: unknown image {what} (use one of {known})") from None


def _pa_as_p_with_transparency(image: Image.Image) -> Image.Image | None:
    """A PA image as P plus a per-index alpha table, if each used index has one alpha value."""
    indices = np.asarray(image.getchannel(0), dtype=np.uint8).reshape(-1)
    alpha = np.asarray(image.getchannel(1), dtype=np.uint8).reshape(-1)
    table = np.full(256, 255, dtype=np.uint8)
    table[indices] = alpha
    if not np.array_equal(table[indices], alpha):
        return None
    result = Image.frombytes("P", image.size, indices.tobytes())
    result.putpalette(_palette_bytes(image, indices), "RGB")
    used = int(indices.max()) + 1 if indices.size else 1
    result.info["transparency"] = table[:used].tobytes()
    return result


def _pa_as_rgba(image: Image.Image) -> Image.Image:
    indices = np.asarray(image.getchannel(0), dtype=np.uint8)
    palette = _palette_bytes(image, indices)
    rgba = np.dstack([_palette_lookup(indices, palette), np.asarray(image.getchannel(1))])
    return Image.fromarray(np.ascontiguousarray(rgba, dtype=np.uint8), mode="RGBA")


def _as_mode(image: Image.Image, mode: str) -> Image.Image:
    if image.mode == mode:
        return image
    if image.mode == "PA" and mode == "RGBA":
        return _pa_as_rgba(image)
    if image.mode == "PA" and mode == "RGB":
        return _pa_as_rgba(image).convert("RGB")
    return image.convert(mode)


def _candidates(image: Image.Image, fmt: str) -> list[Callable[[], Image.Image]]:
    """Ways to present `image` to the writer for `fmt`, most faithful first."""
    modes = _SAVE_FALLBACKS.get(image.mode, (image.mode, "RGBA", "RGB"))
    if fmt == "WEBP":  # the WebP writer only keeps RGB and RGBA; convert here, not inside it
        keeps_alpha = "A" in image.mode or "transparency" in image.info
        modes = ("RGBA",) if keeps_alpha else ("RGB",)
    result: list[Callable[[], Image.Image]] = []
    if image.mode == "PA" and fmt == "PNG":
        result.append(lambda: _pa_as_p_with_transparency(image) or _pa_as_rgba(image))
    result.extend((lambda m=m: _as_mode(image, m)) for m in modes)
    return result


def save_image(image: Image.Image, fmt: str | None, icc: bytes | None) -> bytes:
    """Encode `image` into the bytes of an image file of Pillow format `fmt` (PNG if None).

    When the format cannot hold the image's mode, the next most faithful mode it can hold is
    used (e.g. PA becomes P with tRNS or RGBA for PNG, RGBA and LA lose alpha in JPEG). The ICC
    profile is embedded where the format supports it (PNG, JPEG, WEBP, TIFF) unless it is for a
    colour space other than RGB or GRAY. JPEG is written at
    quality 95 and WebP losslessly, so the file holds the decoded pixels as closely as possible.
    """
    fmt = (fmt or "PNG").upper()
    last_error: Exception | None = None
    for make in _candidates(image, fmt):
        try:
            candidate = make()
        except (ValueError, OSError) as exc:
            last_error = exc
            continue
        params: dict[str, object] = {}
        if icc and fmt in _ICC_FORMATS and _icc_fits(icc):
            params["icc_profile"] = icc
        if fmt == "JPEG":
            params["quality"] = 95
        elif fmt == "WEBP":
            params["lossless"] = True
            params["exact"] = True  # keep RGB under fully transparent pixels
        if "transparency" in candidate.info:
            params["transparency"] = candidate.info["transparency"]
        buffer = io.BytesIO()
        try:
            candidate.save(buffer, format=fmt, **params)
        except (OSError, KeyError, ValueError) as exc:
            last_error = exc
            continue
        return buffer.getvalue()
    detail = f" ({_reason(last_error)})" if last_error is not None else ""
    raise ImageError(f"cannot write a {image.mode} image as {fmt}{detail}")


# --------------------------------------------------------------------------------------------
# Lossless alpha planes


def alpha_to_bytes(alpha: np.ndarray) -> bytes:
    """Compress an H x W uint8 alpha plane losslessly (zlib level 9 of the row-major bytes)."""
    alpha = np.asarray(alpha)
    if alpha.dtype != np.uint8 or alpha.ndim != 2:
        raise ValueError(f"alpha must be a 2-D uint8 array, got {alpha.dtype} {alpha.shape}")
    return zlib.compress(np.ascontiguousarray(alpha).tobytes(), 9)


def alpha_from_bytes(data: bytes, width: int, height: int) -> np.ndarray:
    """Inverse of `alpha_to_bytes`; FormatError unless `data` holds exactly width*height bytes.

    Decompression stops after width*height + 1 bytes, so a zlib bomb costs no more memory than
    a genuine plane would.
    """
    if width <= 0 or height <= 0:
        raise FormatError(f"alpha plane has invalid size {width}x{height}")
    expected = width * height
    inflater = zlib.decompressobj()
    try:
        plane = inflater.decompress(bytes(data), expected + 1)
    except zlib.error as exc:
        raise FormatError(f"alpha plane is corrupt ({exc})") from exc
    if len(plane) != expected or not inflater.eof or inflater.unused_data:
        if len(plane) > expected or inflater.unconsumed_tail:
            raise FormatError(f"alpha plane holds more than the {expected} bytes expected")
        if inflater.unused_data:
            raise FormatError("alpha plane has trailing bytes after its compressed data")
        if len(plane) < expected:
            raise FormatError(f"alpha plane is truncated ({len(plane)} of {expected} bytes)")
        raise FormatError("alpha plane's compressed data is incomplete")
    return np.frombuffer(plane, dtype=np.uint8).reshape(height, width).copy()
