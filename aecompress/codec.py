"""The codec: uint8 RGB pixels → the coded latents of an .aec file → uint8 RGB pixels.

Padding, float tensors and devices stay inside this module; what an image file adds around the
pixels (colour mode, alpha, palette, ICC profile, the container) is `imagefile`'s job. The
encoder runs the decoder's own reconstruction, so what it reports (PSNR, MS-SSIM) is what
`decode` will produce.

Large images: when the padded image has more than TILE_PIXELS pixels, g_a and g_s run over
overlapping tiles (tiling.py) of TILE_CORE × TILE_CORE latent samples plus a halo that covers
their receptive field, so memory stays bounded (a 24-megapixel photo takes under 3 GB with
N = 192) and the result equals the untiled one up to float rounding: no seams. The decision
depends only on the image size, so encoder and decoder always make the same one, and the
encoder's reported reconstruction is still exactly what `decode` returns. The hyperprior and
the integer network work at 1/16 and 1/64 resolution and are never tiled; the file format does
not change.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from .allocator import fit_heap_to
from .checkpoint import Checkpoint
from .container import Header, Streams
from .entropy import TableCoder
from .errors import ModelMismatchError
from .inference import prepare_transforms
from .model import HyperpriorModel
from .quality import quality_to_centi
from .tiling import tiled

PAD_MULTIPLE = HyperpriorModel.Z_STRIDE  # images are padded to whole z samples
# g_a / g_s run in tiles when the padded image has more pixels than this (2048 × 2048). With
# N = 192, M = 320 a 2048 × 2048 encode + decode peaks at 3.7 GB untiled (process RSS), and a
# 6000 × 4000 one at 2.8 GB tiled (benchmarks/huge_image.py); tiles cost ~5-10% in time.
TILE_PIXELS = 2048 * 2048
# Tile core in latent samples (× 16 pixels): 64 → 1024 × 1024 pixels, plus a halo of 2 latent
# samples (32 pixels) each side for the model's transforms (computed from their layers).
TILE_CORE = 64


@dataclass
class EncodedLatents:
    """One image's coded latents at one quality: the z and y streams of an .aec file."""

    quality_centi: int  # the quality as stored (hundredths); the codec used exactly this
    z: bytes  # entropy-coded hyper-latent
    y: bytes  # entropy-coded latent residuals
    rgb: np.ndarray | None  # H×W×3 uint8 reconstruction (what decode returns), or None
    bits_z_estimate: float  # ideal bits of the z stream under the integer tables
    bits_y_estimate: float  # ideal bits of the y stream


class Symbols(NamedTuple):
    """What the entropy decoder recovers from a file, before any float arithmetic."""

    z_hat: torch.Tensor  # 1×Nh×h×w int64 (CPU), h, w = padded size / 64
    residuals: torch.Tensor  # 1×M×4h×4w int64 (CPU): y_hat - mu, rounded
    mu: torch.Tensor  # 1×M×4h×4w float32 on the codec's device: h_s_mean(z_hat)


def pad_to_multiple(x: torch.Tensor, multiple: int = PAD_MULTIPLE) -> torch.Tensor:
    """Replicate-pad the bottom/right of a 1×3×H×W tensor to multiples; crop undoes it."""
    h, w = x.shape[2:]
    ph, pw = -h % multiple, -w % multiple
    if ph == 0 and pw == 0:
        return x
    # Replicate padding needs pad < size for 'reflect' only; replicate works from 1×1 up.
    return F.pad(x, (0, pw, 0, ph), mode="replicate")


def to_uint8(x_hat: torch.Tensor, height: int, width: int) -> np.ndarray:
    """1×3×H'×W' float reconstruction → cropped H×W×3 uint8 (round to nearest)."""
    x = x_hat[0, :, :height, :width].clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.permute(1, 2, 0).cpu().numpy().copy()


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0:
        raise ValueError(f"expected an H×W×3 uint8 image, got {rgb.dtype} {rgb.shape}")
    return rgb


class Codec:
    """A loaded model on a device, ready to encode and decode."""

    def __init__(
        self,
        checkpoint: Checkpoint,
        device: torch.device | str = "cpu",
        channels_last: bool | None = None,
        tile_pixels: int = TILE_PIXELS,
        tile_core: int | tuple[int, int] = TILE_CORE,
    ):
        """channels_last: the layout g_a and g_s run in; by default channels_last on the CPU
        (faster there) and NCHW elsewhere. tile_pixels: tile g_a / g_s when the padded image
        has more pixels than this (0: always); tile_core: tile core in latent samples, (rows,
        columns) or both alike. They change results by float rounding only: decoded pixels by
        a unit at most, and the coded symbols only where a latent sat on a rounding boundary
        (as any float difference may)."""
        self.checkpoint = checkpoint
        self.tile_pixels = tile_pixels
        self.tile_core = tile_core
        self.device = torch.device(device)
        if channels_last is None:
            channels_last = self.device.type == "cpu"
        # The checkpoint's model stays as loaded (CPU, contiguous): another device works on a
        # copy, so one checkpoint can serve several codecs. g_a and g_s run as inference copies
        # (inference.py) in the chosen layout; the small hyperprior nets use the model's own.
        model = checkpoint.model
        self.transforms = prepare_transforms(model.g_a, model.g_s, self.device, channels_last)
        if self.device.type != "cpu":
            model = copy.deepcopy(model).to(self.device)
        self.model = model
        self.z_coder = TableCoder(checkpoint.z_tables)
        self.y_coder = TableCoder(checkpoint.y_tables)
        # progress(stage, done, total), stage one of "analysis", "coding", "synthesis": set by
        # a caller that draws progress bars; tiled transforms report each tile.
        self.progress: Callable[[str, int, int], None] | None = None

    @property
    def memory_format(self) -> torch.memory_format:
        """The layout g_a and g_s run in."""
        return self.transforms.memory_format

    def _report(self, stage: str, done: int, total: int = 1) -> None:
        if self.progress is not None:
            self.progress(stage, done, total)

    def _tile_reporter(self, stage: str) -> Callable[[int, int], None]:
        return lambda done, total: self._report(stage, done, total)

    # ----- shared pieces ----------------------------------------------------------------------
    @staticmethod
    def _z_ids(shape: tuple[int, ...]) -> np.ndarray:
        """Table id of each z element (1×Nh×h×w): its channel."""
        return np.broadcast_to(np.arange(shape[1]).reshape(1, -1, 1, 1), shape).copy()

    def prior_mean(self, z_hat: torch.Tensor) -> torch.Tensor:
        """z_hat (1×Nh×h×w int64, CPU) → mean of y_g, 1×M×4h×4w float32 on the device."""
        return self.model.h_s_mean(z_hat.to(self.device, torch.float32))

    def scale_indexes(self, z_hat: torch.Tensor) -> np.ndarray:
        """z_hat → the table index of every y element (1×M×4h×4w int64), by the exact integer
        network on the CPU: the same on every machine."""
        return self.checkpoint.scale_network(z_hat).numpy()

    def uses_tiles(self, padded_height: int, padded_width: int) -> bool:
        """Whether g_a and g_s run in tiles for an image of this padded size (a function of the
        image size alone, so that encoder and decoder always agree)."""
        return padded_height * padded_width > self.tile_pixels

    def _fit_heap(self, padded_height: int, padded_width: int) -> None:
        """Size the heap for this image's largest activation (N × H/2 × W/2 float32), when the
        process keeps freed memory (allocator.py); tiled images keep the base size."""
        if self.device.type != "cpu":
            return
        tiles = self.uses_tiles(padded_height, padded_width)
        # bytes of N channels of 4-byte floats at H/2 × W/2 = N·H·W
        fit_heap_to(0 if tiles else self.checkpoint.config.N * padded_height * padded_width)

    def synthesis(self, y_hat: torch.Tensor, quality: float) -> torch.Tensor:
        """Gained y_hat (1×M×h×w) → float reconstruction 1×3×16h×16w: the inverse gain, then
        g_s, tiled for large images (the inverse gain applies to the whole latent first, exactly
        as untiled)."""
        stride = self.model.Y_STRIDE
        self._report("synthesis", 0)
        y = self.model.remove_gain(y_hat, quality).contiguous(memory_format=self.memory_format)
        g_s = self.transforms.g_s
        self._fit_heap(stride * y_hat.shape[-2], stride * y_hat.shape[-1])
        if not self.uses_tiles(stride * y_hat.shape[-2], stride * y_hat.shape[-1]):
            x_hat = g_s(y)
            self._report("synthesis", 1)
            return x_hat
        reach = self.transforms.reach_s
        on_tile = self._tile_reporter("synthesis")
        return tiled(g_s, y, self.tile_core, reach=reach, on_tile=on_tile)

    def _reconstruct(self, sym: torch.Tensor, mu: torch.Tensor, quality: float, h: int, w: int):
        y_hat = sym.to(self.device, torch.float32) + mu
        return to_uint8(self.synthesis(y_hat, quality), h, w)

    # ----- encode -----------------------------------------------------------------------------
    @torch.inference_mode()
    def analyse(self, rgb: np.ndarray) -> torch.Tensor:
        """The analysis transform alone: H×W×3 uint8 → ungained y, 1×M×H'/16×W'/16 on the
        device (H', W' padded to multiples of 64). Every quality is encoded from this one
        result."""
        rgb = _check_rgb(rgb)
        x = torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1).unsqueeze(0)
        x = x.to(self.device, torch.float32).div(255)
        x = pad_to_multiple(x).contiguous(memory_format=self.memory_format)
        self._report("analysis", 0)
        g_a, reach = self.transforms.g_a, self.transforms.reach_a
        self._fit_heap(*x.shape[-2:])
        if self.uses_tiles(*x.shape[-2:]):
            on_tile = self._tile_reporter("analysis")
            y = tiled(g_a, x, self.tile_core, reach=reach, on_tile=on_tile)
        else:
            y = g_a(x)
            self._report("analysis", 1)
        # The hyperprior nets read y in NCHW whatever the layout of g_a (1×M×H/16×W/16 is small).
        return y.contiguous()

    @torch.inference_mode()
    def encode(self, rgb: np.ndarray, quality: float, reconstruct: bool = True) -> EncodedLatents:
        """Code an H×W×3 uint8 image at a quality from 1 to 100. reconstruct=False skips the
        synthesis transform (the result's rgb is then None): a caller that only needs the
        file, or times the encoder alone, does not pay for g_s."""
        y_raw = self.analyse(rgb)  # checks rgb
        return self.encode_analysed(y_raw, quality, np.shape(rgb)[:2], reconstruct)

    @torch.inference_mode()
    def encode_analysed(
        self,
        y_raw: torch.Tensor,
        quality: float,
        size: tuple[int, int],
        reconstruct: bool = True,
    ) -> EncodedLatents:
        """Encode from `analyse`'s output for an image of size (H, W): what a search over
        qualities repeats, with reconstruct=False while only file sizes matter."""
        centi = quality_to_centi(quality)
        y = self.model.apply_gain(y_raw, centi / 100)  # 1×M×H/16×W/16, gained
        return self.encode_latents(y, None, quality, size, reconstruct)

    @torch.inference_mode()
    def encode_latents(
        self,
        y: torch.Tensor,
        z: torch.Tensor | None,
        quality: float,
        size: tuple[int, int],
        reconstruct: bool = True,
    ) -> EncodedLatents:
        """Round and code gained latents y (1×M×h×w) and, if given, the side latent z
        (1×Nh×h/4×w/4 float; None: h_a(y), as a plain encode does). Refined latents
        (refine.py) come in here: the exact path after the rounding is the same for all."""
        centi = quality_to_centi(quality)
        q = centi / 100
        self._report("coding", 0)
        if z is None:
            z_hat = self.hyper_analyse(y)
        else:
            z_hat = torch.round(z).to("cpu", torch.int64)
        mu, indexes = self.prior_mean(z_hat), self.scale_indexes(z_hat)
        sym = self.residuals(y, mu)
        z_bytes, y_bytes = self.code_z(z_hat), self.code_y(sym, indexes)
        self._report("coding", 1)
        rgb = self._reconstruct(sym, mu, q, *size) if reconstruct else None
        z_ids = self._z_ids(tuple(z_hat.shape))
        return EncodedLatents(
            quality_centi=centi,
            z=z_bytes,
            y=y_bytes,
            rgb=rgb,
            bits_z_estimate=self.z_coder.estimate_bits(z_hat.numpy(), z_ids),
            bits_y_estimate=self.y_coder.estimate_bits(sym.numpy(), indexes),
        )

    # The stages of encode_analysed, public so that benchmarks/stage_profile.py times each one.
    def hyper_analyse(self, y: torch.Tensor) -> torch.Tensor:
        """Gained y (1×M×h×w) → z_hat = round(h_a(y)), 1×Nh×h/4×w/4 int64 on the CPU."""
        return torch.round(self.model.h_a(y)).to("cpu", torch.int64)

    @staticmethod
    def residuals(y: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        """The symbols of gained y: round(y - mu), 1×M×h×w int64 on the CPU, coded exactly."""
        return torch.round(y - mu).to("cpu", torch.int64)

    def code_z(self, z_hat: torch.Tensor) -> bytes:
        return self.z_coder.encode(z_hat.numpy(), self._z_ids(tuple(z_hat.shape)))

    def code_y(self, residuals: torch.Tensor, indexes: np.ndarray) -> bytes:
        return self.y_coder.encode(residuals.numpy(), indexes)

    # ----- decode -----------------------------------------------------------------------------
    def check_model(self, header: Header) -> None:
        ck = self.checkpoint
        if header.model_id != ck.model_id or header.fingerprint != ck.fingerprint:
            raise ModelMismatchError(
                f"file was encoded with model {header.model_id} "
                f"({header.fingerprint.hex()}), but the loaded model is {ck.model_id} "
                f"({ck.fingerprint.hex()}); decode it with --model pointing at that model"
            )

    @torch.inference_mode()
    def decode_symbols(self, header: Header, streams: Streams) -> Symbols:
        """Entropy-decode a file's z and y streams.

        z_hat and the residuals are int64 and exact: they depend only on the bytes and the
        integer tables, never on the device or float rounding.
        """
        self.check_model(header)
        self._report("coding", 0)
        z_hat = self.decode_z(streams.z, header.height, header.width)
        mu, indexes = self.prior_mean(z_hat), self.scale_indexes(z_hat)
        residuals = self.decode_y(streams.y, indexes)
        self._report("coding", 1)
        return Symbols(z_hat, residuals, mu)

    def decode_z(self, data: bytes, height: int, width: int) -> torch.Tensor:
        """The z stream of an image of height × width pixels → z_hat, 1×Nh×h×w int64."""
        shape = (
            1,
            self.checkpoint.config.Nh,
            -(-height // PAD_MULTIPLE),
            -(-width // PAD_MULTIPLE),
        )
        return torch.from_numpy(self.z_coder.decode(data, self._z_ids(shape)))

    def decode_y(self, data: bytes, indexes: np.ndarray) -> torch.Tensor:
        """The y stream → residuals (int64, the shape of `indexes`)."""
        return torch.from_numpy(self.y_coder.decode(data, indexes))

    @torch.inference_mode()
    def decode(self, header: Header, streams: Streams) -> np.ndarray:
        """A file's header and streams → its H×W×3 uint8 RGB pixels."""
        symbols = self.decode_symbols(header, streams)
        return self._reconstruct(
            symbols.residuals, symbols.mu, header.quality, header.height, header.width
        )
