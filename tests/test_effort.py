"""`encode --effort`: latent refinement that never makes a file worse and never changes decoding."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import photo_like
from PIL import Image

from aecompress import container
from aecompress.codec import Codec, pad_to_multiple
from aecompress.effort import encode_with_effort, true_cost
from aecompress.effort_levels import MAX_EFFORT, SCHEDULES, Schedule, check_effort
from aecompress.errors import AecError
from aecompress.imagefile import decode_image, encode_image
from aecompress.imageio import SourceImage
from aecompress.modes import ColourMode
from aecompress.refine import Refiner, sga_round
from aecompress.target import Target, encode_to_target


@pytest.fixture(scope="module")
def codec(tiny_checkpoint) -> Codec:
    return Codec(tiny_checkpoint)


@pytest.fixture(scope="module")
def image() -> SourceImage:
    return SourceImage(rgb=photo_like(80, 96, 3), mode=ColourMode.RGB)


@pytest.fixture
def short(monkeypatch):
    """Effort levels of a few steps each, so that tests stay quick."""
    levels = (None,) + tuple(Schedule(descent_steps=2 + i, steps=1) for i in range(MAX_EFFORT))
    monkeypatch.setattr("aecompress.effort_levels.SCHEDULES", levels)


def test_levels_are_ordered_and_checked():
    assert SCHEDULES[0] is None and len(SCHEDULES) == MAX_EFFORT + 1
    steps = [s.total_steps for s in SCHEDULES[1:]]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    for bad in (-1, MAX_EFFORT + 1, 1.5, True):
        with pytest.raises(AecError, match="effort must be a whole number"):
            check_effort(bad)


def test_schedule_anneals_temperature_and_learning_rate():
    s = Schedule(steps=10, lr=0.2, lr_end=0.1, tau_start=0.5, tau_end=0.02)
    assert s.tau(0) == pytest.approx(0.5) and s.tau(9) == pytest.approx(0.02)
    assert s.learning_rate(0) == pytest.approx(0.2) and s.learning_rate(9) == pytest.approx(0.02)
    taus = [s.tau(i) for i in range(10)]
    assert taus == sorted(taus, reverse=True)


def test_sga_round_goes_to_a_neighbouring_integer_and_sharpens():
    g = torch.Generator().manual_seed(0)
    v = torch.linspace(-3, 3, 1001)
    cold = sga_round(v, 1e-3, g)
    # At a low temperature the sample is an integer next to v, nearly always the nearer one.
    assert torch.all((cold - torch.floor(v) > -1e-4) & (cold - torch.floor(v) < 1 + 1e-4))
    assert (cold - torch.round(v)).abs().max() < 1e-3 + 1.0
    near = (v - torch.round(v)).abs() < 0.3
    assert (cold[near] - torch.round(v[near])).abs().max() < 1e-2
    # And it is differentiable.
    w = v.clone().requires_grad_(True)
    sga_round(w, 0.5, g).sum().backward()
    assert torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0


def _inputs(codec: Codec, rgb: np.ndarray, quality: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The refiner's inputs: the padded image (1×3×H×W) and the gained latent from g_a."""
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    x = pad_to_multiple(x).contiguous(memory_format=codec.memory_format)
    with torch.no_grad():
        y = codec.model.apply_gain(codec.analyse(rgb).clone(), quality)
    return x, y


def test_refinement_lowers_the_relaxed_cost_and_is_seeded(codec, image, one_thread):
    rgb = image.rgb
    x, y = _inputs(codec, rgb, 60.0)
    few = Refiner(codec).refine(x, rgb.shape[:2], y, 60.0, Schedule(steps=1, lr=0.2))
    more = Refiner(codec).refine(x, rgb.shape[:2], y, 60.0, Schedule(steps=12, lr=0.2))
    again = Refiner(codec).refine(x, rgb.shape[:2], y, 60.0, Schedule(steps=12, lr=0.2))
    assert more.loss < few.loss
    assert torch.equal(more.y, again.y) and torch.equal(more.z, again.z)
    assert more.y.shape == y.shape


def test_descent_never_ends_above_its_start_and_improves(codec, image, one_thread):
    rgb = image.rgb
    x, y = _inputs(codec, rgb, 60.0)
    start = Refiner(codec).refine(x, rgb.shape[:2], y, 60.0, Schedule(descent_steps=1))
    # the first step evaluates the start itself: its cost is the start's
    assert torch.equal(start.y, y)
    steps = []
    for n in (2, 6):
        r = Refiner(codec).refine(x, rgb.shape[:2], y, 60.0, Schedule(descent_steps=n))
        steps.append(r.loss)
        assert r.loss <= start.loss
    assert steps[1] < start.loss


def test_tiled_distortion_gradient_equals_the_whole_one(codec, one_thread):
    rgb = photo_like(100, 140, 5)
    x, y = _inputs(codec, rgb, 40.0)
    # float32 Jᵀ products: bfloat16's rounding would depend on the tile shapes
    exact = torch.float32
    whole_grad, whole = Refiner(codec, gradient_dtype=exact).distortion_grad(y, x, 100, 140)
    tiled = Refiner(codec, tile_core=3, gradient_dtype=exact)
    tiles_grad, tiles = tiled.distortion_grad(y, x, 100, 140)
    assert len(Refiner(codec, tile_core=3)._tiles(*y.shape[-2:])[1]) > 1
    assert tiles == pytest.approx(whole, rel=1e-5)
    assert torch.allclose(tiles_grad, whole_grad, rtol=1e-4, atol=1e-6 * whole_grad.abs().max())
    # Only the image's own pixels count: the padding's error is left out.
    with torch.no_grad():
        x_hat = codec.transforms.g_s(y)[..., :100, :140]
    assert whole == pytest.approx(float((x_hat - x[..., :100, :140]).square().sum()), rel=1e-5)


def test_effort_zero_is_the_plain_encoder_bit_for_bit(codec, image):
    plain = encode_image(codec, image, 55.0)
    assert encode_image(codec, image, 55.0, effort=0).data == plain.data


@pytest.mark.parametrize("quality", [10.0, 70.0, 100.0])
def test_effort_is_never_worse_than_the_plain_encode(codec, image, short, quality, one_thread):
    result = encode_with_effort(codec, image.rgb, quality, 4)
    assert result.steps == 6
    plain = codec.encode(image.rgb, quality)
    assert result.cost_plain == pytest.approx(true_cost(codec, image.rgb, plain))
    assert true_cost(codec, image.rgb, result.latents) <= result.cost_plain
    assert result.refined == (result.cost_refined < result.cost_plain)


def test_refined_file_decodes_to_what_the_encoder_reported(codec, image, short, one_thread):
    # A long enough refinement on the tiny model wins at this quality (checked), so this is a
    # refined file, decoded by the unchanged decoder.
    result = encode_with_effort(codec, image.rgb, 80.0, MAX_EFFORT)
    assert result.refined
    enc = encode_image(codec, image, 80.0, effort=MAX_EFFORT)
    assert enc.data == encode_image(codec, image, 80.0, effort=MAX_EFFORT).data  # seeded
    assert enc.data != encode_image(codec, image, 80.0).data
    header, _ = container.unpack(enc.data)
    assert header.quality == 80.0
    assert np.array_equal(decode_image(codec, enc.data).rgb, enc.rgb)


@pytest.mark.parametrize("kind,value", [("bytes", None), ("psnr", None)])
def test_targets_with_effort_are_met(codec, image, short, kind, value, one_thread):
    if kind == "bytes":
        lo = len(encode_image(codec, image, 1).data)
        hi = len(encode_image(codec, image, 100).data)
        target = Target("bytes", (lo + hi) // 2)
    else:
        from aecompress.metrics import psnr

        lo = psnr(image.rgb, encode_image(codec, image, 1).rgb)
        hi = psnr(image.rgb, encode_image(codec, image, 100).rgb)
        target = Target("psnr", (lo + hi) / 2)
    res = encode_to_target(codec, image, target, effort=3)
    if kind == "bytes":
        assert len(res.encoded.data) <= target.value
    else:
        from aecompress.metrics import psnr

        assert psnr(image.rgb, decode_image(codec, res.encoded.data).rgb) >= target.value - 1e-9
    assert res.encoded.header.quality == res.quality


def test_cli_effort_writes_a_decodable_file_and_reports_the_level(cli, tmp_path, short):
    src = tmp_path / "a.png"
    Image.fromarray(photo_like(64, 80, 2)).save(src)
    out = tmp_path / "a.aec"
    r = cli("encode", src, "-o", out, "-q", "80", "--effort", "2", "--json")
    assert r.exit_code == 0, r.output
    (report,) = json.loads(r.stdout)["results"]
    assert report["effort"] == 2 and report["output_bytes"] == out.stat().st_size
    r = cli("decode", out, "-o", tmp_path / "b.png")
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("value", ["10", "-1", "x"])
def test_cli_rejects_an_effort_out_of_range(cli, tmp_path, value):
    src = tmp_path / "a.png"
    Image.fromarray(photo_like(32, 32, 2)).save(src)
    r = cli("encode", src, "-o", tmp_path / "a.aec", "--effort", value)
    assert r.exit_code == 2
    assert "--effort" in r.output
    assert not (tmp_path / "a.aec").exists()


def test_refinement_reports_its_steps_to_the_progress_bar(codec, image, short, one_thread):
    seen = []
    codec.progress = lambda stage, done, total: seen.append((stage, done, total))
    try:
        encode_with_effort(codec, image.rgb, 50.0, 3)  # 4 descent steps + 1 SGA step
    finally:
        codec.progress = None
    refine = [s for s in seen if s[0] == "refine"]
    assert [d for _, d, _ in refine] == [1, 2, 3, 4, 5, 1]
    assert refine[-1][1] == refine[-1][2]  # the bar ends full
    assert {s[0] for s in seen} <= {"analysis", "refine"}  # the inner encodes stay silent


def test_ctrl_c_during_refinement_writes_nothing(cli, tmp_path, monkeypatch):
    def interrupt(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(Refiner, "refine", interrupt)
    src = tmp_path / "a.png"
    Image.fromarray(photo_like(40, 48, 1)).save(src)
    r = cli("encode", src, "--effort", "3")
    assert r.exit_code == 130 and "interrupted" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_the_descents_reconstructions_are_what_decode_makes(codec, image, one_thread):
    rgb = image.rgb
    x, y = _inputs(codec, rgb, 70.0)
    refined = Refiner(codec).refine(x, rgb.shape[:2], y, 70.0, Schedule(descent_steps=4))
    plain = codec.encode(rgb, 70.0)
    assert np.abs(refined.start_rgb.astype(int) - plain.rgb).max() <= 1
    coded = codec.encode_latents(refined.y, refined.z, 70.0, rgb.shape[:2])
    assert np.abs(refined.rgb.astype(int) - coded.rgb).max() <= 1
    # so the choice by cost needs no synthesis, and the bench's encode (no rgb) runs none
    result = encode_with_effort(codec, rgb, 70.0, 2, reconstruct=False)
    assert result.latents.rgb is None
