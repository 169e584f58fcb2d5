"""Encoding to a file size, a bpp or a PSNR by searching the continuous quality."""

import pytest
from conftest import photo_like
from PIL import Image
from typer.testing import CliRunner

from aecompress.cli import app
from aecompress.codec import Codec
from aecompress.imagefile import encode_image
from aecompress.imageio import SourceImage
from aecompress.modes import ColourMode
from aecompress.registry import MODEL_ENV
from aecompress.target import Target, TargetError, encode_to_target, parse_size


@pytest.fixture(scope="module")
def codec(tiny_checkpoint) -> Codec:
    return Codec(tiny_checkpoint)


@pytest.fixture(scope="module")
def image() -> SourceImage:
    return SourceImage(rgb=photo_like(96, 128, 4), mode=ColourMode.RGB)


@pytest.mark.parametrize(
    "text,expected",
    [("900", 900), ("60KB", 60000), ("60kb", 60000), ("1.5MB", 1500000), ("2KiB", 2048),
     (" 10 b ", 10)],
)  # fmt: skip
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "KB", "ten", "-5KB", "5 GB"])
def test_parse_size_rejects(text):
    with pytest.raises(TargetError, match="cannot read the size"):
        parse_size(text)


def test_size_target_gives_the_largest_fitting_quality(codec, image):
    small = len(encode_image(codec, image, 1).data)
    large = len(encode_image(codec, image, 100).data)
    budget = (small + large) // 2
    res = encode_to_target(codec, image, Target("bytes", budget))
    assert len(res.encoded.data) <= budget
    assert res.encoded.header.quality == res.quality
    above = encode_image(codec, image, res.quality + 0.01)
    assert len(above.data) > budget
    assert res.trials <= 16


def test_bpp_target(codec, image):
    res = encode_to_target(codec, image, Target("bpp", 1.0))
    assert len(res.encoded.data) * 8 / (96 * 128) <= 1.0


def test_unreachable_size_is_a_clear_error(codec, image):
    with pytest.raises(TargetError, match=r"cannot meet 10 bytes: the smallest file \(quality 1\)"):
        encode_to_target(codec, image, Target("bytes", 10))


def test_unreachable_psnr_is_a_clear_error(codec, image):
    with pytest.raises(TargetError, match="cannot reach 99 dB PSNR: quality 100 gives"):
        encode_to_target(codec, image, Target("psnr", 99))


def test_analysis_transform_runs_once(codec, image):
    calls = []
    hook = codec.transforms.g_a.register_forward_hook(lambda *_: calls.append(1))
    try:
        budget = (
            len(encode_image(codec, image, 1).data) + len(encode_image(codec, image, 100).data)
        ) // 2
        calls.clear()
        res = encode_to_target(codec, image, Target("bytes", budget))
    finally:
        hook.remove()
    assert res.trials > 3 and len(calls) == 1


@pytest.fixture
def run(tiny_model_path, monkeypatch):
    monkeypatch.setenv(MODEL_ENV, str(tiny_model_path))
    return lambda *a: CliRunner().invoke(app, [str(x) for x in a])


def test_cli_reports_the_chosen_quality(run, tmp_path, codec, image):
    src = tmp_path / "t.png"
    Image.fromarray(image.rgb).save(src)
    r = run("encode", src, "-o", tmp_path / "t.aec", "--target-bpp", "1.0", "--json")
    assert r.exit_code == 0, r.output
    assert '"quality"' in r.stdout
    assert (tmp_path / "t.aec").stat().st_size * 8 / (96 * 128) <= 1.0


def test_cli_target_and_quality_conflict(run, tmp_path):
    r = run("encode", "x.png", "-q", "50", "--target-size", "10KB")
    assert r.exit_code == 2
    assert "--quality and --target-size cannot be used together" in r.stderr


def test_cli_bad_size_is_a_usage_error(run):
    r = run("encode", "x.png", "--target-size", "lots")
    assert r.exit_code == 2
    assert "cannot read the size" in r.stderr


def test_cli_unreachable_target_fails_the_input(run, tmp_path, image):
    src = tmp_path / "u.png"
    Image.fromarray(image.rgb).save(src)
    r = run("encode", src, "-o", tmp_path / "u.aec", "--target-size", "20")
    assert r.exit_code == 1
    assert "cannot meet 20 bytes" in r.stderr
    assert not (tmp_path / "u.aec").exists()
