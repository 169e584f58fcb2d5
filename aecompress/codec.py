"""The codec boundary: uint8 pixels → .aec bytes → uint8 pixels.

Padding, float tensors and devices stay inside this module. The encoder runs the decoder's
own reconstruction, so what it reports (PSNR, MS-SSIM) is what `decode` will produce.

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

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import container
from .checkpoint import Checkpoint
from .container import Header, Streams
from .entropy import TableCoder
from .errors import AecError, ModelMismatchError
from .imageio import SourceImage, alpha_from_bytes, alpha_to_bytes
from .model import quality_to_position
from .modes import ColourMode
from .tiling import tiled

PAD_MULTIPLE = 64  # g_a and h_a downsample by 2^6 in all
# g_a / g_s run in tiles when the padded image has more pixels than this (2048 × 2048). With
# N = 192, M = 320 a 2048 × 2048 encode + decode peaks at 3.7 GB untiled (process RSS), and a
# 6000 × 4000 one at 2.8 GB tiled (benchmarks/huge_image.py); tiles cost ~5-10% in time.
TILE_PIXELS = 2048 * 2048
# Tile core in latent samples (× 16 pixels): 64 → 1024 × 1024 pixels, plus a halo of 2 latent
# samples (32 pixels) each side for the model's transforms (computed from their layers).
TILE_CORE = 64


@dataclass
class EncodedImage:
    data: bytes  # the whole .aec file
    header: Header
    rgb: np.ndarray | None  # H×W×3 uint8, the RGB pixels `decode` will return
    bits_z_estimate: float  # ideal bits of the z stream under the integer tables
    bits_y_estimate: float  # ideal bits of the y stream


@dataclass
class DecodedImage:
    header: Header
    rgb: np.ndarray  # H×W×3 uint8
    alpha: np.ndarray | None
    palette: bytes | None
    icc: bytes | None


def quality_to_centi(quality: float) -> int:
    """The quality as stored in the file (hundredths); the codec always uses this value."""
    if not isinstance(quality, int | float) or math.isnan(quality) or not 1 <= quality <= 100:
        raise AecError(f"quality must be a number from 1 to 100, got {quality}")
    return round(quality * 100)


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


class Codec:
    """A loaded model on a device, ready to encode and decode."""

    def __init__(
        self,
        checkpoint: Checkpoint,
        device: torch.device | str = "cpu",
        channels_last: bool = False,
        tile_pixels: int = TILE_PIXELS,
        tile_core: int | tuple[int, int] = TILE_CORE,
    ):
        """tile_pixels: tile g_a / g_s when the padded image has more pixels than this (0:
        always); tile_core: tile core in latent samples, (rows, columns) or both alike. They
        change results by float rounding only: decoded pixels by a unit at most, and the coded
        symbols only where a latent sat on a rounding boundary (as any float difference may)."""
        self.checkpoint = checkpoint
        self.tile_pixels = tile_pixels
        self.tile_core = tile_core
        self.device = torch.device(device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = checkpoint.model.to(self.device, memory_format=self.memory_format)
        self.z_coder = TableCoder(checkpoint.z_tables)
        self.y_coder = TableCoder(checkpoint.y_tables)

    # ----- shared pieces ----------------------------------------------------------------------
    @staticmethod
    def _z_ids(shape: tuple[int, ...]) -> np.ndarray:
        """Table id of each z element (1×Nh×h×w): its channel."""
        return np.broadcast_to(np.arange(shape[1]).reshape(1, -1, 1, 1), shape).copy()

    def _prior(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        """z_hat (1×Nh×h×w int64, CPU) → mean of y_g on the device, scale indexes (int64)."""
        mu = self.model.h_s_mean(
            z_hat.to(self.device, torch.float32).contiguous(memory_format=self.memory_format)
        )
        indexes = self.checkpoint.scale_network(z_hat).numpy()
        return mu, indexes

    def uses_tiles(self, padded_height: int, padded_width: int) -> bool:
        """Whether g_a and g_s run in tiles for an image of this padded size (a function of the
        image size alone, so that encoder and decoder always agree)."""
        return padded_height * padded_width > self.tile_pixels

    def synthesis(self, y_hat: torch.Tensor, quality: float) -> torch.Tensor:
        """model.synthesis (gained y_hat → float reconstruction), with g_s tiled for large
        images; the inverse gain is applied to the whole latent first, exactly as untiled."""
        if not self.uses_tiles(16 * y_hat.shape[-2], 16 * y_hat.shape[-1]):  # g_s: ×16
            return self.model.synthesis(y_hat, quality)
        pos = quality_to_position(quality, self.model.config.levels).reshape(1).to(y_hat.device)
        _, inv_gain = self.model.gains(pos)
        return tiled(self.model.g_s, y_hat * inv_gain[:, :, None, None], self.tile_core)

    def _reconstruct(self, sym: torch.Tensor, mu: torch.Tensor, quality: float, h: int, w: int):
        y_hat = sym.to(self.device, torch.float32) + mu
        return to_uint8(self.synthesis(y_hat, quality), h, w)

    # ----- encode -----------------------------------------------------------------------------
    @torch.inference_mode()
    def analyse(self, image: SourceImage) -> torch.Tensor:
        """The analysis transform alone: ungained y, 1×M×H'/16×W'/16 on the device (H', W' padded
        to multiples of 64). Every quality is encoded from this one result."""
        x = torch.from_numpy(np.array(image.rgb, dtype=np.uint8)).permute(2, 0, 1).unsqueeze(0)
        x = x.to(self.device, torch.float32).div(255)
        x = pad_to_multiple(x).contiguous(memory_format=self.memory_format)
        if self.uses_tiles(*x.shape[-2:]):
            return tiled(self.model.g_a, x, self.tile_core)
        return self.model.g_a(x)

    @torch.inference_mode()
    def encode(self, image: SourceImage, quality: float, reconstruct: bool = True) -> EncodedImage:
        """reconstruct=False skips the synthesis transform (the result's rgb is then None): a
        caller that only needs the file, or times the encoder alone, does not pay for g_s."""
        return self.encode_analysed(image, self.analyse(image), quality, reconstruct)

    @torch.inference_mode()
    def encode_analysed(
        self, image: SourceImage, y_raw: torch.Tensor, quality: float, reconstruct: bool = True
    ) -> EncodedImage:
        """Encode from `analyse`'s output. reconstruct=False skips g_s (rgb is then None): what
        a search over file sizes needs."""
        centi = quality_to_centi(quality)
        q = centi / 100
        h, w = image.rgb.shape[:2]
        y = self.model.apply_gain(y_raw, q)  # 1×M×H/16×W/16, gained
        z_hat = torch.round(self.model.h_a(y)).to("cpu", torch.int64)  # 1×Nh×H/64×W/64
        mu, indexes = self._prior(z_hat)
        sym = torch.round(y - mu).to("cpu", torch.int64)  # residuals, coded exactly
        z_ids = self._z_ids(tuple(z_hat.shape))
        streams = Streams(
            z=self.z_coder.encode(z_hat.numpy(), z_ids),
            y=self.y_coder.encode(sym.numpy(), indexes),
            alpha=alpha_to_bytes(image.alpha) if image.mode.has_alpha else b"",
            palette=image.palette if image.mode.has_palette else b"",
            icc=image.icc or b"",
        )
        header = Header(
            model_id=self.checkpoint.model_id,
            fingerprint=self.checkpoint.fingerprint,
            width=w,
            height=h,
            mode=image.mode,
            quality_centi=centi,
        )
        rgb = None
        if reconstruct:
            rgb = gray_if_needed(self._reconstruct(sym, mu, q, h, w), image.mode)
        return EncodedImage(
            data=container.pack(header, streams),
            header=header,
            rgb=rgb,
            bits_z_estimate=self.z_coder.estimate_bits(z_hat.numpy(), z_ids),
            bits_y_estimate=self.y_coder.estimate_bits(sym.numpy(), indexes),
        )

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
    def decode_symbols(
        self, data: bytes, max_pixels: int = container.DEFAULT_MAX_PIXELS
    ) -> tuple[Header, Streams, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Entropy-decode a file: (header, streams, z_hat, residuals, mu on the device).

        z_hat (1×Nh×h×w) and the residuals (1×M×4h×4w) are int64 and exact: they depend only
        on the bytes and the integer tables, never on the device or float rounding.
        """
        header, streams = container.unpack(data, max_pixels=max_pixels)
        self.check_model(header)
        hz = -(-header.height // PAD_MULTIPLE)
        wz = -(-header.width // PAD_MULTIPLE)
        nh = self.checkpoint.config.Nh
        z_ids = self._z_ids((1, nh, hz, wz))
        z_hat = torch.from_numpy(self.z_coder.decode(streams.z, z_ids))
        mu, indexes = self._prior(z_hat)
        sym = torch.from_numpy(self.y_coder.decode(streams.y, indexes))
        return header, streams, z_hat, sym, mu

    @torch.inference_mode()
    def decode(self, data: bytes, max_pixels: int = container.DEFAULT_MAX_PIXELS) -> DecodedImage:
        header, streams, _z_hat, sym, mu = self.decode_symbols(data, max_pixels)
        h, w = header.height, header.width
        rgb = gray_if_needed(self._reconstruct(sym, mu, header.quality, h, w), header.mode)
        alpha = alpha_from_bytes(streams.alpha, w, h) if header.mode.has_alpha else None
        return DecodedImage(
            header=header,
            rgb=rgb,
            alpha=alpha,
            palette=streams.palette or None,
            icc=streams.icc or None,
        )


def gray_if_needed(rgb: np.ndarray, mode: ColourMode) -> np.ndarray:
    """Grayscale modes come back as the mean of the decoded channels, repeated 3×."""
    if mode in (ColourMode.L, ColourMode.LA):
        g = np.round(rgb.astype(np.float32).mean(axis=2)).astype(np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2)
    return rgb
