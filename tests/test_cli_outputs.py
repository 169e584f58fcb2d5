"""Where results go: the naming rules, directories, --mkdir, standard output and the image
formats of decode (AVIF, lossy qualities, transparency)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from conftest import photo_like
from PIL import Image, features

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
