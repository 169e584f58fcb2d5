"""benchmarks/reconstruction_offsets.py: with no offsets its reconstruction is the decoder's,
so what it reports as a gain is measured from the PSNR that real files get."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from conftest import photo_like

from aecompress.codec import Codec
from aecompress.imagefile import decode_image, encode_image
from aecompress.imageio import SourceImage
from aecompress.imagesets import NamedImage
from aecompress.metrics import mse, psnr_of_mse
from aecompress.modes import ColourMode

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "reconstruction_offsets.py"


@pytest.fixture(scope="module")
def offsets():
    spec = importlib.util.spec_from_file_location("reconstruction_offsets", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("level", [0, 1, 2])
def test_no_offsets_is_the_decoders_reconstruction(offsets, tiny_checkpoint, level):
    model = tiny_checkpoint.model.float().eval()
    rgb = photo_like(72, 88, seed=level)
    quality = 1 + 99 * level / (model.config.levels - 1)  # the level's own quality
    codec = Codec(tiny_checkpoint, "cpu")
    data = encode_image(codec, SourceImage(rgb=rgb, mode=ColourMode.RGB), quality).data
    from_file = psnr_of_mse(mse(rgb, decode_image(codec, data).rgb))
    zero = torch.zeros(model.config.M)
    measured = offsets.held_out_psnr(model, [NamedImage("x", rgb)], level, zero, zero)
    assert measured == pytest.approx(from_file, abs=1e-6)


def test_offsets_move_only_nonzero_symbols(offsets, tiny_checkpoint):
    model = tiny_checkpoint.model.float().eval()
    x = torch.from_numpy(photo_like(64, 64)).permute(2, 0, 1).float().div(255)[None]
    s, mu, inv = offsets.decoder_inputs(model, x, 2)
    assert (s == 0).any() and (s != 0).any()
    m = model.config.M
    # An offset only where |s| >= 2: where every symbol is 0 or ±1, nothing changes.
    clipped = s.clamp(-1, 1)
    same = offsets.reconstruct(model, clipped, mu, inv, torch.zeros(m), torch.full((m,), 0.3))
    base = offsets.reconstruct(model, clipped, mu, inv, torch.zeros(m), torch.zeros(m))
    assert torch.equal(same, base)
    moved = offsets.reconstruct(model, clipped, mu, inv, torch.full((m,), 0.3), torch.zeros(m))
    assert not torch.equal(moved, base)
