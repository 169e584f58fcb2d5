"""Where results go: the naming rules, directories, --mkdir, standard output and the image
formats of decode (AVIF, lossy qualities, transparency)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import photo_like
from PIL import Image, features
from test_startup import probe

from aecompress import container, outputs
from aecompress.errors import AecError, UsageError
from aecompress.outputs import DECODED, ENCODED, output_paths


def png(path: Path, mode: str = "RGB", seed: int = 0) -> Path:
    image = Image.fromarray(photo_like(40, 48, seed))
    if mode == "RGBA":
        image.putalpha(Image.linear_gradient("L").resize(image.size))
    image.save(path)
    return path


def error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_default_names():
    assert output_paths(["d/photo.png"], None, ENCODED) == ["d/photo.aec"]
    assert output_paths(["d/photo.aec"], None, DECODED) == ["d/photo.aec.png"]


def test_a_trailing_slash_means_a_directory_for_one_input(cli, tmp_path):
    src = png(tmp_path / "a.png")
    out = tmp_path / "col"
    out.mkdir()
    r = cli("encode", src, "-o", f"{out}/")
    assert r.exit_code == 0, r.output
    assert (out / "a.aec").is_file()
    r = cli("decode", out / "a.aec", "-o", out)  # an existing directory, without the slash
    assert r.exit_code == 0, r.output
    assert (out / "a.aec.png").is_file()


def test_missing_folders_are_created_only_with_mkdir(cli, tmp_path):
    src = png(tmp_path / "a.png")
    r = cli("encode", src, "-o", f"{tmp_path}/new/")
    assert r.exit_code == 1
    assert "no such directory" in error_line(r) and "--mkdir" in error_line(r)
    assert not (tmp_path / "new").exists()
    r = cli("encode", src, "-o", tmp_path / "deep" / "er" / "a.aec")
    assert r.exit_code == 1 and "--mkdir" in error_line(r)
    assert not (tmp_path / "deep").exists()
    r = cli("encode", src, "-o", f"{tmp_path}/new/", "--mkdir")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "new" / "a.aec").is_file()
    r = cli("encode", src, "-o", tmp_path / "deep" / "er" / "a.aec", "--mkdir")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "deep" / "er" / "a.aec").is_file()


def test_several_inputs_into_a_missing_directory(cli, tmp_path):
    a, b = png(tmp_path / "a.png"), png(tmp_path / "b.png", seed=1)
    r = cli("encode", a, b, "-o", tmp_path / "out")
    assert r.exit_code == 1 and "--mkdir" in error_line(r)
    r = cli("encode", a, b, "-o", tmp_path / "out", "--mkdir")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.aec", "b.aec"]


@pytest.mark.parametrize(
    ("command", "name"), [("encode", "out.aec"), ("encode", "out.png"), ("decode", "out.PNG")]
)
def test_a_file_name_for_several_inputs_is_a_usage_error(cli, tmp_path, command, name):
    """`-o out.png` with several inputs means a file, not a folder to create (even with
    --mkdir): exit 2, nothing made."""
    a, b = png(tmp_path / "a.png"), png(tmp_path / "b.png", seed=1)
    if command == "decode":
        for src in (a, b):
            assert cli("encode", src, "-e", "0", "--no-metrics").exit_code == 0
        a, b = tmp_path / "a.aec", tmp_path / "b.aec"
    r = cli(command, a, b, "-o", tmp_path / name, "--mkdir")
    assert r.exit_code == 2, r.output
    assert error_line(r) == (
        f"error: {tmp_path / name}: with several inputs, -o names a folder (DIR/), not a file"
    )
    assert not (tmp_path / name).exists()
    r = cli(command, a, b, "-o", f"{tmp_path / name}/", "--mkdir")  # a folder, if meant so
    assert r.exit_code == 0, r.output
    assert (tmp_path / name).is_dir()


def test_binary_output_is_never_written_to_a_terminal(cli, tmp_path, monkeypatch):
    src = png(tmp_path / "a.png")
    monkeypatch.setattr(outputs, "stdout_is_terminal", lambda: True)
    r = cli("encode", src, "-o", "-")
    assert r.exit_code == 2
    assert "refusing to write .aec data to a terminal" in error_line(r)
    with pytest.raises(UsageError, match="a PNG image to a terminal"):
        output_paths(["-"], None, DECODED)
    monkeypatch.setattr(outputs, "stdout_is_terminal", lambda: False)
    r = cli("encode", src, "-o", "-")
    assert r.exit_code == 0, r.stderr
    assert r.stdout_bytes.startswith(container.MAGIC)


def test_quoted_patterns_are_expanded(cli, tmp_path):
    for name in ("b.png", "a.png"):
        png(tmp_path / name)
    r = cli("encode", str(tmp_path / "*.png"), "--json")
    assert r.exit_code == 0, r.output
    assert [Path(x["input"]).name for x in json.loads(r.stdout)["results"]] == ["a.png", "b.png"]
    r = cli("info", str(tmp_path / "?.aec"), "--json")
    assert r.exit_code == 0 and len(json.loads(r.stdout)["results"]) == 2
    r = cli("decode", str(tmp_path / "*.jpg"))
    assert r.exit_code == 1 and "no file matches" in error_line(r)


def test_decode_refuses_to_drop_transparency_without_being_asked(cli, tmp_path):
    src = png(tmp_path / "t.png", "RGBA")
    assert cli("encode", src).exit_code == 0
    r = cli("decode", tmp_path / "t.aec", "-o", tmp_path / "t.jpg")
    assert r.exit_code == 1
    assert "transparency" in error_line(r) and "--drop-alpha" in error_line(r)
    assert not (tmp_path / "t.jpg").exists()
    r = cli("decode", tmp_path / "t.aec", "-o", tmp_path / "t.jpg", "--drop-alpha", "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)["results"][0]
    assert report["mode"] == "RGB" and report["format"] == "JPEG"
    with Image.open(tmp_path / "t.jpg") as im:
        assert im.format == "JPEG" and im.mode == "RGB"
    r = cli("decode", tmp_path / "t.aec", "-o", tmp_path / "t.webp")  # WebP keeps alpha
    assert r.exit_code == 0, r.output
    with Image.open(tmp_path / "t.webp") as im:
        assert im.mode == "RGBA"


def test_image_quality_sets_the_lossy_output_quality(cli, tmp_path):
    png(tmp_path / "a.png")
    assert cli("encode", tmp_path / "a.png").exit_code == 0
    sizes = {}
    for q in (20, 95):
        out = tmp_path / f"a{q}.jpg"
        r = cli("decode", tmp_path / "a.aec", "-o", out, "--image-quality", q)
        assert r.exit_code == 0, r.output
        sizes[q] = out.stat().st_size
    assert sizes[20] < sizes[95]
    r = cli("decode", tmp_path / "a.aec", "-o", tmp_path / "x.jpg", "--image-quality", 0)
    assert r.exit_code == 2


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow has no AVIF writer")
def test_decode_writes_avif(cli, tmp_path):
    png(tmp_path / "a.png")
    assert cli("encode", tmp_path / "a.png").exit_code == 0
    r = cli("decode", tmp_path / "a.aec", "-o", tmp_path / "a.avif")
    assert r.exit_code == 0, r.output
    with Image.open(io.BytesIO((tmp_path / "a.avif").read_bytes())) as im:
        assert im.format == "AVIF" and im.size == (48, 40)


@pytest.mark.parametrize("name", ["x", "x.xyz", "x.aec"])
def test_an_output_without_an_image_extension_is_a_usage_error(cli, tmp_path, name):
    png(tmp_path / "a.png")
    assert cli("encode", tmp_path / "a.png").exit_code == 0
    r = cli("decode", tmp_path / "a.aec", "-o", tmp_path / name)
    assert r.exit_code == 2
    line = error_line(r)
    assert ("unknown image extension" in line or "no extension to choose the image format by"
            in line) and ".png" in line and ".avif" in line  # fmt: skip
    assert not (tmp_path / name).exists()


def test_output_paths_refuses_a_file_as_the_directory_of_several(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(AecError, match="must be a directory"):
        output_paths(["a.png", "b.png"], str(tmp_path / "f"), ENCODED)


NOT_AEC = ("the output of encode is an .aec file: name it .aec, or give a folder (DIR/) or '-'; "
           "images are written by `aecompress decode`")  # fmt: skip


@pytest.mark.parametrize("name", ["out.png", "out.jpg", "out", "out.aec.png", "out.aec.gz"])
def test_encode_writes_only_aec_files(cli, tmp_path, name):
    """As decode refuses an output it cannot write: exit 2 before any work, no folder made."""
    src = png(tmp_path / "a.png")
    target = tmp_path / "new" / name
    r = cli("encode", src, "-o", target, "--mkdir")
    assert r.exit_code == 2
    assert error_line(r) == f"error: {target}: {NOT_AEC}"
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]
    r = cli("encode", src, "-o", tmp_path / "OUT.AEC")  # the extension in any case
    assert r.exit_code == 0, r.output
    assert (tmp_path / "OUT.AEC").read_bytes()[:4] == container.MAGIC


def test_an_encode_output_name_is_checked_before_torch(tmp_path):
    png(tmp_path / "a.png")
    result = probe("encode", "a.png", "-o", "a.jpg", cwd=tmp_path)
    assert result["code"] == 2 and result["loaded"] == [], result
    assert f"error: a.jpg: {NOT_AEC}" in result["stderr"]


def _rgb_of(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGBA"))[..., :3]


def test_gif_refuses_a_full_colour_image_unless_asked(cli, tmp_path):
    assert cli("encode", png(tmp_path / "a.png")).exit_code == 0
    aec = tmp_path / "a.aec"
    r = cli("decode", aec, "-o", tmp_path / "a.gif")
    assert r.exit_code == 1
    assert error_line(r) == (
        f"error: {aec}: the image is full-colour and GIF holds 256 colours: write .png, .webp "
        "or .avif, or add --reduce-colours to reduce it to a 256-colour palette"
    )
    assert not (tmp_path / "a.gif").exists()
    r = cli("decode", aec, "-o", tmp_path / "a.gif", "--reduce-colours", "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)["results"][0]
    assert (report["format"], report["mode"]) == ("GIF", "P")
    with Image.open(tmp_path / "a.gif") as im:
        assert (im.format, im.mode, im.size) == ("GIF", "P", (48, 40))
    r = cli("decode", "--help")
    assert "--reduce-colours" in r.stdout and "256-colour palette" in " ".join(r.stdout.split())


@pytest.mark.parametrize("mode", ["P", "L", "PA"])
def test_palette_and_gray_images_fit_gif_exactly(cli, tmp_path, mode):
    """No flag needed, and no colour lost: the GIF holds the pixels of the PNG decode."""
    image = Image.fromarray(photo_like(40, 48, 3))
    image = image.convert("L") if mode == "L" else image.quantize(16)
    if mode == "PA":
        image.info["transparency"] = 0
    image.save(tmp_path / "a.png")
    assert cli("encode", tmp_path / "a.png").exit_code == 0
    aec = tmp_path / "a.aec"
    assert cli("decode", aec, "-o", tmp_path / "d.png").exit_code == 0
    r = cli("decode", aec, "-o", tmp_path / "d.gif")
    if mode == "PA":  # GIF keeps no alpha plane: dropping it is asked for, as for JPEG
        assert r.exit_code == 1 and "--drop-alpha" in error_line(r)
        r = cli("decode", aec, "-o", tmp_path / "d.gif", "--drop-alpha")
    assert r.exit_code == 0, r.output
    assert np.array_equal(_rgb_of(tmp_path / "d.gif"), _rgb_of(tmp_path / "d.png"))


def test_webp_is_lossless_unless_a_quality_is_given(cli, tmp_path):
    """What the help says: WebP holds the decoded pixels exactly by default."""
    assert cli("encode", png(tmp_path / "a.png")).exit_code == 0
    aec = tmp_path / "a.aec"
    for name, extra in (("d.png", []), ("d.webp", []), ("q.webp", ["--image-quality", "80"])):
        assert cli("decode", aec, "-o", tmp_path / name, *extra).exit_code == 0
    lossless, lossy = (tmp_path / "d.webp").read_bytes(), (tmp_path / "q.webp").read_bytes()
    assert lossless[12:16] == b"VP8L" and lossy[12:16] == b"VP8 "  # the RIFF chunk of each kind
    assert np.array_equal(_rgb_of(tmp_path / "d.webp"), _rgb_of(tmp_path / "d.png"))
    assert len(lossy) < len(lossless)
    flowing = " ".join(cli("decode", "--help").stdout.split())
    assert "WebP and JPEG 2000 (.jp2) are lossless unless this is given" in flowing


@pytest.mark.skipif(not features.check("jpg_2000"), reason="this Pillow has no OpenJPEG")
def test_decode_writes_jpeg_2000(cli, tmp_path):
    """Lossless by default, alpha too; lossy with --image-quality (its PSNR: test_imageio)."""
    src = Image.fromarray(photo_like(96, 128, 4))
    src.save(tmp_path / "a.png")
    src.putalpha(Image.linear_gradient("L").resize(src.size))
    src.save(tmp_path / "t.png")
    assert cli("encode", tmp_path / "a.png", tmp_path / "t.png").exit_code == 0
    for stem in ("a", "t"):
        aec = tmp_path / f"{stem}.aec"
        assert cli("decode", aec, "-o", tmp_path / f"{stem}.d.png").exit_code == 0
        r = cli("decode", aec, "-o", tmp_path / f"{stem}.jp2", "--json")
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["results"][0]["format"] == "JPEG2000"
        with (
            Image.open(tmp_path / f"{stem}.jp2") as jp2,
            Image.open(tmp_path / f"{stem}.d.png") as d,
        ):
            assert jp2.format == "JPEG2000" and jp2.mode == d.mode
            assert np.array_equal(np.asarray(jp2), np.asarray(d))
    r = cli("decode", tmp_path / "a.aec", "-o", tmp_path / "q.jp2", "--image-quality", 30)
    assert r.exit_code == 0, r.output
    with Image.open(tmp_path / "q.jp2") as im:
        assert im.format == "JPEG2000" and im.size == (128, 96)
    assert (tmp_path / "q.jp2").stat().st_size < (tmp_path / "a.jp2").stat().st_size


def test_an_output_format_this_pillow_cannot_write(cli, tmp_path, monkeypatch):
    assert cli("encode", png(tmp_path / "a.png")).exit_code == 0
    monkeypatch.setattr(features, "check", lambda name: False)
    r = cli("decode", tmp_path / "a.aec", "-o", tmp_path / "a.jp2")
    assert r.exit_code == 1
    assert error_line(r) == (
        f"error: {tmp_path / 'a.aec'}: this Pillow cannot write JPEG2000 (Pillow built with "
        "OpenJPEG is needed); write .png or .webp instead"
    )
    assert not (tmp_path / "a.jp2").exists()
