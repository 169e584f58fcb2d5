"""The file layer: images ↔ .aec files, around the codec's RGB pixels.

`encode_image` codes a loaded image (`imageio.SourceImage`) into a whole .aec file: the codec's
z and y streams plus what the pixels alone do not say, the colour mode, a lossless alpha plane,
the palette and the ICC profile. `decode_image` is its inverse, `restore_image` turns decoded
pixels back into an image of the original kind and `save_image` writes it in a format chosen
by the output name. `decode`, `bench`, validation and the fuzz benchmark all go through here.

* Grayscale (L/LA) is coded as R=G=B and restored as the mean of the decoded channels.
* Palette images (P/PA) are coded as the palette colour of each pixel; on restore every pixel
  is mapped to the nearest stored palette colour (`palette.nearest_palette_indices`).
* Few formats can write PA: `save_image` writes it to PNG as a palette image with a tRNS chunk
  when every palette index carries a single alpha value, and otherwise as RGBA (or whatever
  the format can hold).
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from . import container
from .container import Header, Streams
from .errors import FormatError, ImageError
from .imageformats import (
    DEFAULT_IMAGE_QUALITY,
    LOSSY_FORMATS,
    PALETTE_FORMATS,
    PNG_COMPRESS_LEVEL,
)
from .imageio import SourceImage, icc_fits, reason
from .modes import ColourMode
from .palette import check_palette, image_palette, nearest_palette_indices, palette_lookup

if TYPE_CHECKING:  # the file layer itself needs no torch
    import torch

    from .codec import Codec


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
class EncodedImage:
    data: bytes  # the whole .aec file
    header: Header
    rgb: np.ndarray | None  # H×W×3 uint8, the RGB pixels `decode_image` will return
    bits_z_estimate: float  # ideal bits of the z stream under the integer tables
    bits_y_estimate: float  # ideal bits of the y stream


@dataclass
class DecodedImage:
    header: Header
    rgb: np.ndarray  # H×W×3 uint8
    alpha: np.ndarray | None  # H×W uint8 when header.mode.has_alpha
    palette: bytes | None  # 3n bytes when header.mode.has_palette
    icc: bytes | None


# --------------------------------------------------------------------------------------------
# .aec files


def encode_image(
    codec: Codec,
    image: SourceImage,
    quality: float,
    reconstruct: bool = True,
    analysed: torch.Tensor | None = None,
    effort: int = 0,
) -> EncodedImage:
    """Code a loaded image into a whole .aec file at a quality from 1 to 100.

    reconstruct=False skips the synthesis transform (rgb is then None); `analysed` is
    `codec.analyse(image.rgb)` when the caller already has it (a search over qualities).
    effort: 0 (the plain encoder) to effort.MAX_EFFORT (refines the latents for longer;
    effort.py).
    """
    h, w = image.rgb.shape[:2]
    if effort:
        from .effort import encode_with_effort

        latents = encode_with_effort(
            codec, image.rgb, quality, effort, analysed, reconstruct
        ).latents
    elif analysed is None:
        latents = codec.encode(image.rgb, quality, reconstruct)
    else:
        latents = codec.encode_analysed(analysed, quality, (h, w), reconstruct)
    header = Header(
        model_id=codec.checkpoint.model_id,
        fingerprint=codec.checkpoint.fingerprint,
        width=w,
        height=h,
        mode=image.mode,
        quality_centi=latents.quality_centi,
    )
    streams = Streams(
        z=latents.z,
        y=latents.y,
        alpha=alpha_to_bytes(image.alpha) if image.mode.has_alpha else b"",
        palette=image.palette if image.mode.has_palette else b"",
        icc=image.icc or b"",
    )
    rgb = None if latents.rgb is None else gray_if_needed(latents.rgb, image.mode)
    return EncodedImage(
        data=container.pack(header, streams),
        header=header,
        rgb=rgb,
        bits_z_estimate=latents.bits_z_estimate,
        bits_y_estimate=latents.bits_y_estimate,
    )


def decode_image(
    codec: Codec, data: bytes, max_pixels: int = container.DEFAULT_MAX_PIXELS
) -> DecodedImage:
    """A whole .aec file → its pixels and what restores the original kind of image.

    Raises FormatError for a malformed file and ModelMismatchError when `codec` holds another
    model than the file names."""
    header, streams = container.unpack(data, max_pixels=max_pixels)
    rgb = gray_if_needed(codec.decode(header, streams), header.mode)
    h, w = header.height, header.width
    return DecodedImage(
        header=header,
        rgb=rgb,
        alpha=alpha_from_bytes(streams.alpha, w, h) if header.mode.has_alpha else None,
        palette=streams.palette or None,
        icc=streams.icc or None,
    )


def decode_to_image_file(
    codec: Codec,
    data: bytes,
    fmt: str,
    max_pixels: int = container.DEFAULT_MAX_PIXELS,
    quality: int | None = None,
) -> tuple[DecodedImage, bytes]:
    """What `aecompress decode` writes: the file decoded, restored to its original kind and
    saved in the Pillow format `fmt` (with its ICC profile where the format holds one, at
    `quality` where it is lossy)."""
    decoded = decode_image(codec, data, max_pixels)
    image = restore_image(decoded.rgb, decoded.header.mode, decoded.alpha, decoded.palette)
    return decoded, save_image(image, fmt, decoded.icc, quality)


def gray_if_needed(rgb: np.ndarray, mode: ColourMode) -> np.ndarray:
    """Grayscale modes come back as the mean of the decoded channels, repeated 3×."""
    if mode in (ColourMode.L, ColourMode.LA):
        g = np.round(rgb.astype(np.float32).mean(axis=2)).astype(np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2)
    return rgb


# --------------------------------------------------------------------------------------------
# Restoring


def _check_plane(array: np.ndarray, height: int, width: int, what: str) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.shape != (height, width):
        raise ValueError(
            f"{what} must be a {height}x{width} uint8 array, got {array.dtype} {array.shape}"
        )
    return np.ascontiguousarray(array)


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
        check_palette(palette)

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


def _pa_as_p_with_transparency(image: Image.Image) -> Image.Image | None:
    """A PA image as P plus a per-index alpha table, if each used index has one alpha value."""
    indices = np.asarray(image.getchannel(0), dtype=np.uint8).reshape(-1)
    alpha = np.asarray(image.getchannel(1), dtype=np.uint8).reshape(-1)
    table = np.full(256, 255, dtype=np.uint8)
    table[indices] = alpha
    if not np.array_equal(table[indices], alpha):
        return None
    result = Image.frombytes("P", image.size, indices.tobytes())
    result.putpalette(image_palette(image, indices), "RGB")
    used = int(indices.max()) + 1 if indices.size else 1
    result.info["transparency"] = table[:used].tobytes()
    return result


def _pa_as_rgba(image: Image.Image) -> Image.Image:
    indices = np.asarray(image.getchannel(0), dtype=np.uint8)
    palette = image_palette(image, indices)
    rgba = np.dstack([palette_lookup(indices, palette), np.asarray(image.getchannel(1))])
    return Image.fromarray(np.ascontiguousarray(rgba, dtype=np.uint8), mode="RGBA")


def _as_mode(image: Image.Image, mode: str) -> Image.Image:
    if image.mode == mode:
        return image
    if image.mode == "PA" and mode == "RGBA":
        return _pa_as_rgba(image)
    if image.mode == "PA" and mode == "RGB":
        return _pa_as_rgba(image).convert("RGB")
    return image.convert(mode)


def _pa_as_p(image: Image.Image) -> Image.Image:
    """A PA image's palette indices as a P image, its alpha plane dropped."""
    indices = np.asarray(image.getchannel(0), dtype=np.uint8)
    result = Image.frombytes("P", image.size, indices.tobytes())
    result.putpalette(image_palette(image, indices), "RGB")
    return result


def _candidates(image: Image.Image, fmt: str) -> list[Callable[[], Image.Image]]:
    """Ways to present `image` to the writer for `fmt`, most faithful first."""
    modes = _SAVE_FALLBACKS.get(image.mode, (image.mode, "RGBA", "RGB"))
    if fmt == "WEBP":  # the WebP writer only keeps RGB and RGBA; convert here, not inside it
        keeps_alpha = "A" in image.mode or "transparency" in image.info
        modes = ("RGBA",) if keeps_alpha else ("RGB",)
    result: list[Callable[[], Image.Image]] = []
    if image.mode == "PA" and fmt == "PNG":
        result.append(lambda: _pa_as_p_with_transparency(image) or _pa_as_rgba(image))
    if image.mode == "PA" and fmt in PALETTE_FORMATS:  # the palette as it is (GIF reads PA
        result.append(lambda: _pa_as_p(image))  # as RGB and would re-quantize it)
    result.extend((lambda m=m: _as_mode(image, m)) for m in modes)
    return result


def save_image(
    image: Image.Image, fmt: str | None, icc: bytes | None, quality: int | None = None
) -> bytes:
    """Encode `image` into the bytes of an image file of Pillow format `fmt` (PNG if None).

    When the format cannot hold the image's mode, the next most faithful mode it can hold is
    used (e.g. PA becomes P with tRNS or RGBA for PNG, RGBA and LA lose alpha in JPEG). The ICC
    profile is embedded where the format supports it (PNG, JPEG, WEBP, TIFF) unless it is for a
    colour space other than RGB or GRAY. PNG is written at zlib level PNG_COMPRESS_LEVEL (fast,
    within 1% of the default's size on decoded photos). JPEG and AVIF are written at `quality`
    (default 95); WebP and JPEG 2000 losslessly unless a `quality` is given (JPEG 2000: the PSNR
    in dB to reach, with the irreversible 9/7 wavelet), so that by default the file holds the
    decoded pixels as closely as possible. GIF reduces a full-colour image to 256 colours (the
    callers refuse that unless asked: `imageformats.output_mode`).
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
        if icc and fmt in _ICC_FORMATS and icc_fits(icc):
            params["icc_profile"] = icc
        if fmt == "PNG":
            params["compress_level"] = PNG_COMPRESS_LEVEL
        if fmt in LOSSY_FORMATS:
            params["quality"] = DEFAULT_IMAGE_QUALITY if quality is None else quality
        elif fmt == "WEBP" and quality is not None:
            params["quality"] = quality
        elif fmt == "WEBP":
            params["lossless"] = True
            params["exact"] = True  # keep RGB under fully transparent pixels
        elif fmt == "JPEG2000":
            params.update(_jpeg2000_params(candidate.mode, quality))
        if "transparency" in candidate.info:
            params["transparency"] = candidate.info["transparency"]
        buffer = io.BytesIO()
        try:
            candidate.save(buffer, format=fmt, **params)
        except (OSError, KeyError, ValueError) as exc:
            last_error = exc
            continue
        return buffer.getvalue()
    detail = f" ({reason(last_error)})" if last_error is not None else ""
    raise ImageError(f"cannot write a {image.mode} image as {fmt}{detail}")


def _jpeg2000_params(mode: str, quality: int | None) -> dict[str, object]:
    """OpenJPEG's settings: lossless (the reversible 5/3 wavelet) without a quality, else a
    single layer at `quality` dB of PSNR with the irreversible 9/7 wavelet. RGB goes through the
    colour transform (MCT): kodim05 decoded, lossless, 500 KB with it and 728 KB without."""
    params: dict[str, object] = {"mct": 1} if mode == "RGB" else {}
    if quality is not None:
        params.update(quality_mode="dB", quality_layers=[float(quality)], irreversible=True)
    return params


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
