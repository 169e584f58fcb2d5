"""The codecs `aecompress bench` compares against, run through Pillow in memory.

Each peer turns an H×W×3 uint8 RGB array into the bytes of a complete image file (headers
included, as written to disk) and decodes those bytes back to uint8 RGB. Settings are each
codec's best standard ones for PSNR, since a comparison against a peer at weaker settings
would flatter aec:

| name    | settings                                                                  | sweep     |
| ------- | ------------------------------------------------------------------------- | --------- |
| jpeg    | libjpeg(-turbo), 4:2:0, ``optimize=True``                                 | quality   |
| jpeg444 | as jpeg with 4:4:4                                                        | quality   |
| webp    | libwebp lossy, ``method=6``                                               | quality   |
| avif    | libavif + aom, 4:4:4, ``speed=6``, aom ``tune=psnr``, one thread          | quality   |
| jp2     | OpenJPEG, irreversible 9/7 wavelet, colour transform, one rate layer      | ratio     |
| heic    | pillow-heif (libheif + x265), 4:4:4, preset slow, ``tune=psnr``, no psy   | quality   |
| jxl     | pillow-jxl-plugin (libjxl), effort 7, one thread                          | quality   |

The default sweeps span about 0.1 to 2 bpp on Kodak-like photos (768×512). jp2's sweep is
the compression ratio handed to OpenJPEG (raw 24-bit bytes / coded bytes, so bpp ≈ 24 / ratio).
heic and jxl need their plugin packages; `unavailable_reason` says why a peer cannot run here,
so the benchmark can skip it with a note instead of failing.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, features

SaveOptions = Callable[[float], dict[str, Any]]


@dataclass(frozen=True)
class Peer:
    """One codec at fixed settings, swept over one parameter."""

    name: str
    description: str
    format: str
    """Pillow's format name for writing."""
    sweep: tuple[float, ...]
    """Default values of the swept parameter, in increasing bpp."""
    options: SaveOptions = field(repr=False)
    """Pillow save() keyword arguments for one value of the sweep."""
    sweep_unit: str = "quality"
    """What the sweep values are: "quality" (the library's 0..100 scale) or "ratio"."""
    package: str | None = None
    """The pip package that adds the format to Pillow, when Pillow lacks it."""
    register: Callable[[], None] | None = field(default=None, repr=False)
    """Imports and registers the plugin; raises ImportError when it is not installed."""
    feature: str | None = None
    """Pillow feature (`PIL.features.check`) the format needs, when it is built in."""
    library: Callable[[], str] = field(default=lambda: "", repr=False)
    """The encoding library and its version, for the benchmark's record."""

    def prepare(self) -> None:
        """Make the format available to Pillow (import the plugin); idempotent."""
        if self.register is not None:
            self.register()

    def encode(self, rgb: np.ndarray, value: float) -> bytes:
        """H×W×3 uint8 → the bytes of a complete file."""
        buffer = io.BytesIO()
        image = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
        image.save(buffer, format=self.format, **self.options(value))
        return buffer.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        """File bytes → H×W×3 uint8 RGB."""
        with Image.open(io.BytesIO(data)) as image:
            return np.array(image.convert("RGB"), dtype=np.uint8)


# --------------------------------------------------------------------------------------------
# Plugins and versions


def _register_heif() -> None:
    module = importlib.import_module("pillow_heif")
    module.register_heif_opener()


def _register_jxl() -> None:
    importlib.import_module("pillow_jxl")


def _feature_version(name: str) -> str:
    try:
        return features.version(name) or "?"
    except ValueError:  # unknown feature name in this Pillow
        return "?"


def _jpeg_library() -> str:
    if features.check_feature("libjpeg_turbo"):
        return f"libjpeg-turbo {_feature_version('libjpeg_turbo')}"
    return f"libjpeg {_feature_version('jpg')}"


def _avif_library() -> str:
    text = f"libavif {_feature_version('avif')}"
    try:
        from PIL import _avif  # private, but the only place Pillow reports the AV1 codecs

        return f"{text} ({_avif.codec_versions()})"
    except (ImportError, AttributeError):
        return text


def _heif_library() -> str:
    try:
        info = importlib.import_module("pillow_heif").libheif_info()
        return f"libheif {info.get('libheif', '?')}, {info.get('HEIF', '?')}"
    except (ImportError, AttributeError):
        return "?"


def _package_version(package: str) -> str:
    try:
        return f"{package} {importlib.metadata.version(package)}"
    except importlib.metadata.PackageNotFoundError:
        return "?"


# --------------------------------------------------------------------------------------------
# The peers

_HEIC_X265 = {
    "preset": "slow",
    "tune": "psnr",
    # x265's psycho-visual optimisations trade PSNR for perceived detail; off for PSNR.
    "x265:psy-rd": "0",
    "x265:psy-rdoq": "0",
}

PEERS: dict[str, Peer] = {
    p.name: p
    for p in (
        Peer(
            name="jpeg",
            description="JPEG 4:2:0, optimize=True",
            format="JPEG",
            sweep=(3, 5, 8, 12, 20, 30, 45, 60, 75, 89),
            options=lambda q: {"quality": int(q), "subsampling": "4:2:0", "optimize": True},
            feature="jpg",
            library=_jpeg_library,
        ),
        Peer(
            name="jpeg444",
            description="JPEG 4:4:4, optimize=True",
            format="JPEG",
            sweep=(3, 5, 8, 12, 20, 30, 45, 60, 75, 85),
            options=lambda q: {"quality": int(q), "subsampling": "4:4:4", "optimize": True},
            feature="jpg",
            library=_jpeg_library,
        ),
        Peer(
            name="webp",
            description="WebP lossy, method 6",
            format="WEBP",
            sweep=(0, 5, 15, 30, 45, 60, 75, 85, 90),
            options=lambda q: {"quality": int(q), "method": 6, "lossless": False},
            feature="webp",
            library=lambda: f"libwebp {_feature_version('webp')}",
        ),
        Peer(
            name="avif",
            description="AVIF 4:4:4, aom speed 6, tune=psnr, 1 thread",
            format="AVIF",
            sweep=(8, 16, 24, 32, 40, 50, 60, 70, 80),
            options=lambda q: {
                "quality": int(q),
                "subsampling": "4:4:4",
                "speed": 6,
                "codec": "aom",
                "max_threads": 1,
                "advanced": {"tune": "psnr"},
            },
            feature="avif",
            library=_avif_library,
        ),
        Peer(
            name="jp2",
            description="JPEG 2000, 9/7 irreversible wavelet, MCT, rate mode",
            format="JPEG2000",
            sweep=(240, 160, 96, 64, 48, 32, 24, 16, 12),
            sweep_unit="ratio",
            options=lambda ratio: {
                "irreversible": True,
                "mct": 1,
                "quality_mode": "rates",
                "quality_layers": [float(ratio)],
            },
            feature="jpg_2000",
            library=lambda: f"OpenJPEG {_feature_version('jpg_2000')}",
        ),
        Peer(
            name="heic",
            description="HEIC 4:4:4, x265 preset slow, tune=psnr, psy-rd 0",
            format="HEIF",
            sweep=(5, 10, 15, 20, 26, 32, 38, 45, 52),
            options=lambda q: {
                "quality": int(q),
                "subsampling": "4:4:4",
                "enc_params": dict(_HEIC_X265),
            },
            package="pillow-heif",
            register=_register_heif,
            library=_heif_library,
        ),
        Peer(
            name="jxl",
            description="JPEG XL, effort 7, 1 thread",
            format="JXL",
            sweep=(1, 10, 20, 30, 45, 60, 72, 82, 90),
            options=lambda q: {"quality": int(q), "effort": 7, "num_threads": 1},
            package="pillow-jxl-plugin",
            register=_register_jxl,
            library=lambda: _package_version("pillow-jxl-plugin"),
        ),
    )
}


def get_peer(name: str) -> Peer:
    try:
        return PEERS[name]
    except KeyError:
        raise KeyError(f"unknown peer codec {name!r}") from None


_REASONS: dict[str, str | None] = {}


def unavailable_reason(name: str) -> str | None:
    """None when peer `name` can encode and decode here, else a short reason why not.

    Tries the plugin import, Pillow's support for the format, and a tiny encode/decode at the
    peer's exact settings (which also catches e.g. an AVIF build without the aom encoder).
    The answer is cached per process.
    """
    if name not in _REASONS:
        _REASONS[name] = _check(get_peer(name))
    return _REASONS[name]


def _check(peer: Peer) -> str | None:
    try:
        peer.prepare()
    except ImportError:
        return f"{peer.package} not installed"
    if peer.feature is not None and not features.check(peer.feature):
        return f"this Pillow was built without {peer.format}"
    Image.init()
    if peer.format not in Image.SAVE:
        return f"this Pillow cannot write {peer.format}"
    probe = np.zeros((16, 16, 3), dtype=np.uint8)
    probe[:, :, 0] = np.arange(16, dtype=np.uint8)[None, :] * 16
    try:
        back = peer.decode(peer.encode(probe, peer.sweep[len(peer.sweep) // 2]))
    except Exception as exc:  # any library failure means: cannot be benchmarked here
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"{peer.format} round trip failed: {detail}"
    if back.shape != probe.shape:
        return f"{peer.format} decoded a {back.shape} image for a {probe.shape} one"
    return None
