"""Tiled g_a / g_s equal the untiled transforms up to float rounding, with small tiles forced on
the tiny model; the codec round trip stays exact when tiling is active."""

from fractions import Fraction

import numpy as np
import pytest
import torch
from conftest import photo_like
from torch import nn

from aecompress.codec import TILE_PIXELS, Codec, pad_to_multiple
from aecompress.imagefile import decode_image, encode_image
from aecompress.imageio import SourceImage
from aecompress.metrics import psnr
from aecompress.modes import ColourMode
from aecompress.tiling import receptive_field, spans, tiled

NEVER = 1 << 62  # a tile_pixels no image reaches: untiled


def padded_input(h: int, w: int, seed: int = 0) -> torch.Tensor:
    x = torch.from_numpy(photo_like(h, w, seed)).permute(2, 0, 1)[None].float() / 255
    return pad_to_multiple(x)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """Max |a - b| relative to the range of b."""
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-12))


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    return tiny_checkpoint.model


def test_receptive_field_of_the_transforms(model):
    for reach in receptive_field(model.g_a):
        assert (reach.scale, reach.lo, reach.hi) == (Fraction(1, 16), 30, 30)
        assert (reach.coarse_in, reach.coarse_out, reach.halo()) == (16, 1, 2)
    for reach in receptive_field(model.g_s):
        assert (reach.scale, reach.lo, reach.hi) == (16, Fraction(15, 8), Fraction(15, 8))
        assert (reach.coarse_in, reach.coarse_out, reach.halo()) == (1, 16, 2)


def test_unknown_layers_are_refused():
    with pytest.raises(ValueError, match="MaxPool2d"):
        receptive_field(nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.MaxPool2d(2)))


@pytest.mark.parametrize("length,core", [(1, 4), (4, 4), (5, 4), (17, 5), (12, 3), (100, 64)])
def test_spans_cover_evenly(length, core):
    s = spans(length, core)
    assert s[0][0] == 0 and s[-1][1] == length
    assert all(a1 == b0 for (_, a1), (b0, _) in zip(s, s[1:], strict=False))
    sizes = [b - a for a, b in s]
    assert max(sizes) <= core and max(sizes) - min(sizes) <= 1
    assert len(s) == -(-length // core)


# Image sizes (odd, padded to multiples of 64) and tile cores (latent samples) giving 1×N, N×1,
# N×M grids, uneven cores, a single-sample core, and a tile larger than the image.
GRIDS = [
    ((100, 190), (8, 3)),  # latent 8×12: 1×4
    ((190, 100), (3, 8)),  # latent 12×8: 4×1
    ((130, 250), (5, 4)),  # latent 12×16: 3×4
    ((63, 65), 1),  # latent 4×8: every latent sample its own tile
    ((77, 129), (3, 5)),  # latent 8×12: uneven cores
    ((100, 190), 100),  # tile larger than the image
]


@pytest.mark.parametrize("size,core", GRIDS)
def test_tiled_analysis_equals_untiled(model, size, core):
    x = padded_input(*size, seed=sum(size))
    with torch.inference_mode():
        y_full = model.g_a(x)
        y_tiled = tiled(model.g_a, x, core)
    assert y_tiled.shape == y_full.shape
    assert (y_tiled - y_full).abs().max() < 1e-4
    assert rel_err(y_tiled, y_full) < 1e-5


@pytest.mark.parametrize("size,core", GRIDS)
def test_tiled_synthesis_equals_untiled(tiny_checkpoint, model, size, core):
    x = padded_input(*size, seed=sum(size) + 1)
    codec = Codec(tiny_checkpoint, tile_pixels=0, tile_core=core)
    with torch.inference_mode():
        y = torch.round(model.analysis(x, 80))
        x_full = model.synthesis(y, 80)
        x_tiled = codec.synthesis(y, 80)  # the inverse gain, then g_s in tiles
    assert x_tiled.shape == x_full.shape
    assert rel_err(x_tiled, x_full) < 1e-5
    px_full = x_full.clamp(0, 1).mul(255).round()
    px_tiled = x_tiled.clamp(0, 1).mul(255).round()
    assert (px_full - px_tiled).abs().max() <= 1


def test_the_halo_is_needed(model):
    """The test above is sensitive: without (enough) halo the tile edges are wrong."""
    x = padded_input(100, 190, seed=3)  # latent 8×12: 2×3 tiles of 4×4
    with torch.inference_mode():
        y_full = model.g_a(x)
        assert rel_err(tiled(model.g_a, x, 4, halo=1), y_full) > 1e-3
        assert rel_err(tiled(model.g_a, x, 4, halo=2), y_full) < 1e-5
        y = torch.round(model.analysis(x, 80))
        x_full = model.g_s(y)
        assert rel_err(tiled(model.g_s, y, 4, halo=1), x_full) > 1e-3
        assert rel_err(tiled(model.g_s, y, 4, halo=2), x_full) < 1e-5


def test_channels_last_tiles(model):
    x = padded_input(130, 250, seed=4)
    with torch.inference_mode():
        y_full = model.g_a(x)
        y_tiled = tiled(model.g_a, x.contiguous(memory_format=torch.channels_last), (3, 5))
    assert rel_err(y_tiled, y_full) < 1e-5


def test_sizes_must_fit_the_stride(model):
    with pytest.raises(ValueError, match="multiple of 16"):
        tiled(model.g_a, torch.zeros(1, 3, 40, 64), 2)


def test_default_threshold(tiny_checkpoint):
    codec = Codec(tiny_checkpoint)
    assert codec.tile_pixels == TILE_PIXELS
    assert not codec.uses_tiles(2048, 2048)
    assert codec.uses_tiles(2048, 2112)
    assert codec.uses_tiles(4032, 6016)  # a 24-megapixel photo, padded


def rgb_image(h: int, w: int, seed: int = 0) -> SourceImage:
    return SourceImage(rgb=photo_like(h, w, seed), mode=ColourMode.RGB)


@pytest.mark.parametrize(
    "h,w,core", [(1, 1, 1), (63, 65, 2), (130, 17, (5, 1)), (200, 300, (6, 7)), (77, 333, (4, 8))]
)
def test_codec_round_trip_with_tiles(tiny_checkpoint, h, w, core):
    img = rgb_image(h, w, seed=h + w)
    plain = Codec(tiny_checkpoint, tile_pixels=NEVER)
    tiles = Codec(tiny_checkpoint, tile_pixels=0, tile_core=core)
    enc = encode_image(tiles, img, 70)
    dec = decode_image(tiles, enc.data)
    # Encoder and decoder make the same tiling decision: the report is what decode returns.
    assert np.array_equal(dec.rgb, enc.rgb)
    # The same file decoded untiled differs only by float rounding.
    ref = decode_image(plain, enc.data).rgb
    assert np.abs(ref.astype(int) - dec.rgb.astype(int)).max() <= 1
    # And the file the untiled encoder writes is as good.
    enc_plain = encode_image(plain, img, 70)
    assert abs(len(enc_plain.data) - len(enc.data)) <= 0.01 * len(enc.data) + 8
    if h * w > 1:
        assert abs(psnr(img.rgb, enc.rgb) - psnr(img.rgb, enc_plain.rgb)) < 0.01


def test_codec_tiles_with_channels_last(tiny_checkpoint):
    img = rgb_image(200, 300, seed=9)
    tiles = Codec(tiny_checkpoint, channels_last=True, tile_pixels=0, tile_core=(8, 7))
    enc = encode_image(tiles, img, 40)
    assert np.array_equal(decode_image(tiles, enc.data).rgb, enc.rgb)
    ref = decode_image(Codec(tiny_checkpoint, tile_pixels=NEVER), enc.data).rgb
    assert np.abs(ref.astype(int) - enc.rgb.astype(int)).max() <= 1


def test_threshold_decides_per_image_size(tiny_checkpoint):
    """With the threshold between two image sizes, the small one runs untiled (bit-identical to
    a codec that never tiles) and the large one tiled (equal up to rounding)."""
    codec = Codec(tiny_checkpoint, tile_pixels=128 * 128, tile_core=4)
    plain = Codec(tiny_checkpoint, tile_pixels=NEVER)
    small, large = rgb_image(128, 128, 1), rgb_image(128, 129, 1)  # padded 128² vs 128×192
    assert encode_image(codec, small, 60).data == encode_image(plain, small, 60).data
    enc = encode_image(codec, large, 60)
    assert np.array_equal(decode_image(codec, enc.data).rgb, enc.rgb)
    assert np.abs(decode_image(plain, enc.data).rgb.astype(int) - enc.rgb.astype(int)).max() <= 1
