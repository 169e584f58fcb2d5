"""The inference copies of g_a and g_s compute what the model computes, up to float rounding."""

import platform
import sys

import pytest
import torch
from conftest import TINY, make_tiny_checkpoint, photo_like
from torch import nn

from aecompress import allocator
from aecompress.allocator import keep_freed_memory
from aecompress.codec import Codec
from aecompress.inference import FrozenGDN, SubpixelConv, prepare_transforms
from aecompress.layers import GDN
from aecompress.model import HyperpriorModel

CL = torch.channels_last


def trained_like_gdn(channels: int, inverse: bool, seed: int = 0) -> GDN:
    """A GDN whose gamma has cross-channel weights, as a trained one does."""
    g = torch.Generator().manual_seed(seed)
    gdn = GDN(channels, inverse=inverse)
    with torch.no_grad():
        gdn.gamma_reparam.copy_(torch.rand(channels, channels, generator=g) * 0.3)
        gdn.beta_reparam.copy_(0.5 + torch.rand(channels, generator=g))
    return gdn


@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("layout", [torch.contiguous_format, CL])
def test_frozen_gdn_matches_gdn(inverse, layout):
    gdn = trained_like_gdn(24, inverse)
    x = torch.randn(2, 24, 9, 13).contiguous(memory_format=layout)
    with torch.no_grad():
        expected = gdn(x.contiguous())
        got = FrozenGDN(gdn)(x)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6)
    if layout == CL:  # the result stays in the layout the next convolution runs fastest in
        assert got.is_contiguous(memory_format=CL)


@pytest.mark.parametrize(
    "kernel,stride,padding,extra", [(5, 2, 2, 1), (3, 2, 1, 1), (4, 2, 1, 0), (6, 3, 2, 1)]
)
def test_subpixel_conv_is_the_transposed_convolution(kernel, stride, padding, extra):
    torch.manual_seed(kernel * 10 + stride)
    deconv = nn.ConvTranspose2d(7, 3, kernel, stride, padding, output_padding=extra)
    x = torch.randn(2, 7, 5, 6)
    with torch.no_grad():
        expected = deconv(x)
        got = SubpixelConv(deconv)(x)
    assert expected.shape[-2:] == (5 * stride, 6 * stride)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_subpixel_conv_refuses_what_it_cannot_express():
    grouped = nn.ConvTranspose2d(4, 4, 5, stride=2, padding=2, output_padding=1, groups=2)
    with pytest.raises(ValueError, match="ungrouped"):
        SubpixelConv(grouped)
    for kernel, padding, extra in ((5, 2, 0), (4, 2, 1)):  # 2n - 1 outputs, not 2n
        odd = nn.ConvTranspose2d(4, 3, kernel, stride=2, padding=padding, output_padding=extra)
        with pytest.raises(ValueError, match="stride"):
            SubpixelConv(odd)


def test_prepared_transforms_match_the_model_and_leave_it_alone():
    torch.manual_seed(3)
    model = HyperpriorModel(TINY).eval()
    for layer in model.modules():
        if isinstance(layer, GDN):
            trained = trained_like_gdn(layer.gamma_reparam.shape[0], layer.inverse)
            layer.load_state_dict(trained.state_dict())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    weight = model.g_s[-1].weight
    t = prepare_transforms(model.g_a, model.g_s, torch.device("cpu"), channels_last=True)
    # The last layer of g_s (16 -> 3 channels) runs as a sub-pixel convolution, GDN frozen.
    assert isinstance(t.g_s[-1], SubpixelConv)
    assert all(not isinstance(m, GDN) for m in (*t.g_a, *t.g_s))
    x = torch.rand(1, 3, 64, 128)
    y = torch.randn(1, TINY.M, 4, 8)
    with torch.no_grad():
        assert torch.allclose(t.g_a(x.contiguous(memory_format=CL)), model.g_a(x), atol=1e-5)
        assert torch.allclose(t.g_s(y.contiguous(memory_format=CL)), model.g_s(y), atol=1e-5)
    assert model.g_s[-1].weight is weight and weight.is_contiguous()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert not any(p.requires_grad for p in (*t.g_a.parameters(), *t.g_s.parameters()))


def test_codec_runs_channels_last_on_the_cpu_unless_told_otherwise():
    ckpt = make_tiny_checkpoint()
    assert Codec(ckpt).memory_format == CL
    assert Codec(ckpt, channels_last=False).memory_format == torch.contiguous_format
    # Both layouts reconstruct the same image up to float rounding.
    rgb = photo_like(64, 96, 4)
    a = Codec(ckpt).encode(rgb, 60)
    b = Codec(ckpt, channels_last=False).encode(rgb, 60)
    assert abs(a.rgb.astype(int) - b.rgb.astype(int)).max() <= 1


def test_keep_freed_memory_is_set_once_and_says_whether_it_took():
    first = keep_freed_memory()
    assert keep_freed_memory() is first
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert first is True


@pytest.mark.skipif(not keep_freed_memory(), reason="the C library is not glibc")
def test_the_heap_is_sized_for_each_untiled_image_and_kept_small_for_tiled_ones():
    mib = 1 << 20
    allocator.fit_heap_to(200 * mib)
    assert allocator._threshold == 225 * mib  # the block and an eighth
    allocator.fit_heap_to(0)
    assert allocator._threshold == allocator.BASE_BYTES
    allocator.fit_heap_to(100 << 30)
    assert allocator._threshold == allocator.MAX_BYTES
    # The codec sizes it from its N and the padded image: N·H·W bytes untiled, the base tiled.
    ckpt = make_tiny_checkpoint()  # N = 16
    image = photo_like(2000, 2500, 1)  # padded 2048 × 2560
    Codec(ckpt, tile_pixels=1 << 30).analyse(image)
    assert allocator._threshold == (16 * 2048 * 2560) * 9 // 8
    Codec(ckpt).analyse(image)  # tiled: over 2048² pixels
    assert allocator._threshold == allocator.BASE_BYTES
