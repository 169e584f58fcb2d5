"""g_s's hand-written vector–Jacobian product (synthesis_gradient.py), which latent refinement
runs instead of autograd."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from aecompress import synthesis_gradient
from aecompress.codec import Codec
from aecompress.synthesis_gradient import SynthesisGradient, fast_gradient_dtype


@pytest.fixture(scope="module")
def codec(tiny_checkpoint) -> Codec:
    return Codec(tiny_checkpoint)


def _latent(codec: Codec, seed: int = 0) -> torch.Tensor:
    """A 1×M×5×7 latent in the codec's layout, as large as a trained model's."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(1, codec.model.config.M, 5, 7, generator=g) * 3
    return y.contiguous(memory_format=codec.memory_format)


def _autograd_vjp(g_s: nn.Module, y: torch.Tensor, upstream: torch.Tensor) -> torch.Tensor:
    y = y.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(g_s(y), y, upstream)
    return grad


def test_the_forward_pass_is_the_decoders_bit_for_bit(codec):
    y = _latent(codec)
    out, saved = SynthesisGradient(codec.transforms.g_s, torch.bfloat16).forward(y)
    with torch.no_grad():
        assert torch.equal(out, codec.transforms.g_s(y))
    # only the GDN layers keep their input, in the backward's dtype
    kept = [s for s in saved if s is not None]
    assert kept and all(s.dtype == torch.bfloat16 for s in kept)


def test_float32_gradient_is_the_trained_models(codec, one_thread):
    """Against autograd through the training model's own g_s (GDN reparametrised, transposed
    convolutions not rewritten): the same Jacobian."""
    sg = SynthesisGradient(codec.transforms.g_s, torch.float32)
    y = _latent(codec, 1)
    out, saved = sg.forward(y)
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(2))
    got = sg.backward(saved, upstream.contiguous(memory_format=codec.memory_format))
    expected = _autograd_vjp(codec.model.g_s, y.contiguous(), upstream)
    assert got.shape == y.shape
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5 * expected.abs().max())


def test_bfloat16_gradient_is_close_to_float32(codec, one_thread):
    y = _latent(codec, 3)
    exact = SynthesisGradient(codec.transforms.g_s, torch.float32)
    low = SynthesisGradient(codec.transforms.g_s, torch.bfloat16)
    out, saved = exact.forward(y)
    upstream = (out - 0.5).contiguous(memory_format=codec.memory_format)
    want = exact.backward(saved, upstream)
    got = low.backward(low.forward(y)[1], upstream)
    assert got.dtype == torch.float32
    assert float((got - want).norm() / want.norm()) < 0.02
    assert float(nn.functional.cosine_similarity(got.flatten(), want.flatten(), dim=0)) > 0.999


def test_layers_without_a_hand_written_gradient_are_refused():
    g_s = nn.Sequential(nn.ConvTranspose2d(4, 4, 5, 2, 2, output_padding=1), nn.ReLU())
    assert not SynthesisGradient.supports(g_s)
    with pytest.raises(ValueError, match="ReLU"):
        SynthesisGradient(g_s)
    grouped = nn.Sequential(nn.ConvTranspose2d(4, 4, 5, 2, 2, output_padding=1, groups=2))
    assert not SynthesisGradient.supports(grouped)


@pytest.mark.parametrize("amx,avx512_bf16,expected", [
    (True, False, torch.bfloat16),
    (False, True, torch.bfloat16),
    (False, False, torch.float32),
])  # fmt: skip
def test_bfloat16_only_where_the_cpu_has_it(monkeypatch, amx, avx512_bf16, expected):
    monkeypatch.setattr(synthesis_gradient.torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(
        synthesis_gradient.torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16
    )
    assert fast_gradient_dtype(torch.device("cpu")) == expected
    assert fast_gradient_dtype(torch.device("cuda")) == torch.float32


def test_a_torch_without_the_cpu_probes_uses_float32(monkeypatch):
    monkeypatch.delattr(synthesis_gradient.torch.cpu, "_is_amx_tile_supported")
    monkeypatch.delattr(synthesis_gradient.torch.cpu, "_is_avx512_bf16_supported")
    assert fast_gradient_dtype(torch.device("cpu")) == torch.float32
