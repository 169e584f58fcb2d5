"""The shipped model: it loads offline, fits the size budget, and behaves like a codec should on
the sample photo (rate and quality rise with the knob, estimates match, decoding is exact)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aecompress import container
from aecompress.checkpoint import load_checkpoint
from aecompress.codec import Codec
from aecompress.imagefile import decode_image, encode_image
from aecompress.imageio import load_image
from aecompress.metrics import psnr
from aecompress.registry import default_model_path

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "grace_hopper.png"


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec(load_checkpoint(default_model_path()))


@pytest.fixture(scope="module")
def sample():
    return load_image(SAMPLE)


def test_shipped_model_is_small_and_complete():
    path = default_model_path()
    assert path.stat().st_size <= 16 * 2**20
    ckpt = load_checkpoint(path)
    # Its provenance holds the command that trained it (the train command, or the recipe
    # comparison that drives the same training function) and the settings of that run.
    command = ckpt.provenance.get("command", "")
    assert command.startswith(("aecompress train", "python3 benchmarks/convergence.py run"))
    assert int(ckpt.provenance["steps"]) > 0 and json.loads(ckpt.provenance["train_config"])
    assert len(ckpt.y_tables) == ckpt.config.num_scales
    assert len(ckpt.z_tables) == ckpt.config.Nh


def test_quality_knob_trades_rate_for_distortion(codec, sample):
    points = []
    for q in (1, 10, 50, 90, 100):
        enc = encode_image(codec, sample, q)
        points.append((len(enc.data), psnr(sample.rgb, enc.rgb)))
    sizes, psnrs = zip(*points, strict=True)
    assert list(sizes) == sorted(sizes)
    assert list(psnrs) == sorted(psnrs)


def test_decode_is_exact_and_estimate_is_tight(codec, sample):
    enc = encode_image(codec, sample, 60)
    assert np.array_equal(decode_image(codec, enc.data).rgb, enc.rgb)
    _, streams = container.unpack(enc.data)
    assert abs(len(streams.y) * 8 - enc.bits_y_estimate) <= 0.01 * enc.bits_y_estimate + 64
    assert abs(len(streams.z) * 8 - enc.bits_z_estimate) <= 0.01 * enc.bits_z_estimate + 64


def test_beats_jpeg_at_equal_rate_on_the_sample(codec, sample):
    enc = encode_image(codec, sample, 50)
    bpp = len(enc.data) * 8 / (sample.width * sample.height)
    for q in range(5, 100):
        buf = io.BytesIO()
        Image.fromarray(sample.rgb).save(buf, "JPEG", quality=q, optimize=True)
        if len(buf.getvalue()) * 8 / (sample.width * sample.height) >= bpp:
            break
    jpeg = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    assert psnr(sample.rgb, enc.rgb) > psnr(sample.rgb, jpeg)


def test_symbols_identical_across_threads_and_layouts(sample):
    ckpt = load_checkpoint(default_model_path())
    data = encode_image(Codec(ckpt), sample, 75).data
    before = torch.get_num_threads()
    decoded = []
    try:
        for threads, channels_last in ((1, False), (2, True)):
            torch.set_num_threads(threads)
            z_hat, sym, _ = Codec(ckpt, channels_last=channels_last).decode_symbols(
                *container.unpack(data)
            )
            decoded.append((z_hat, sym))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(decoded[0][0], decoded[1][0])
    assert torch.equal(decoded[0][1], decoded[1][1])


def test_psnr_target_gives_the_smallest_quality_that_reaches_it(codec, sample):
    from aecompress.target import Target, encode_to_target

    goal = psnr(sample.rgb, encode_image(codec, sample, 40).rgb) - 0.2
    res = encode_to_target(codec, sample, Target("psnr", goal))
    assert psnr(sample.rgb, res.encoded.rgb) >= goal
    assert psnr(sample.rgb, encode_image(codec, sample, res.quality - 0.01).rgb) < goal
