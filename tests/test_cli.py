"""The command line through Typer's CliRunner, with the tiny test model: outputs, colour modes,
exit codes and messages."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import photo_like
from PIL import Image, ImageCms

from aecompress.registry import MODEL_ENV


@pytest.fixture
def run(cli):
    return cli  # conftest's: the CLI in-process, the tiny model as the default


def save(path: Path, image: Image.Image, **kw) -> Path:
    image.save(path, **kw)
    return path


def rgb(h=48, w=40, seed=0) -> Image.Image:
    return Image.fromarray(photo_like(h, w, seed))


def test_encode_decode_rgb_defaults(run, tmp_path):
    src = save(tmp_path / "a.png", rgb(50, 70))
    r = run("encode", src, "--device", "cpu")
    assert r.exit_code == 0, r.output
    aec = tmp_path / "a.aec"
    assert aec.exists()
    assert "a.aec" in r.stdout and "PSNR" in r.stdout
    out = tmp_path / "back.png"
    r = run("decode", aec, "-o", out)
    assert r.exit_code == 0, r.output
    with Image.open(out) as im:
        assert im.mode == "RGB" and im.size == (70, 50)


def test_json_report_matches_the_file(run, tmp_path):
    src = save(tmp_path / "b.png", rgb(64, 64, 1))
    r = run("encode", src, "-o", tmp_path / "b.aec", "-q", "42.5", "--json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)["results"][0]
    size = (tmp_path / "b.aec").stat().st_size
    assert rep["output_bytes"] == size
    assert rep["bpp"] == pytest.approx(size * 8 / (64 * 64))
    assert rep["ratio_raw"] == pytest.approx(64 * 64 * 3 / size)
    assert rep["input_bytes"] == src.stat().st_size
    assert rep["quality"] == 42.5
    # The reported PSNR is the PSNR of what decode produces.
    r = run("decode", tmp_path / "b.aec", "-o", tmp_path / "b2.png")
    decoded = np.asarray(Image.open(tmp_path / "b2.png"))
    original = np.asarray(Image.open(src))
    mse = np.mean((decoded.astype(float) - original) ** 2)
    assert rep["psnr"] == pytest.approx(10 * np.log10(255**2 / mse), abs=1e-6)


@pytest.mark.parametrize("goal", [["-q", "60"], ["--target-size", "300"]])
def test_no_metrics_writes_the_same_file_and_skips_psnr_and_ms_ssim(run, tmp_path, goal):
    src = save(tmp_path / "m.png", rgb(64, 80, 5))
    r = run("encode", src, "-o", tmp_path / "with.aec", *goal, "--json")
    assert r.exit_code == 0, r.output
    measured = json.loads(r.stdout)["results"][0]
    assert measured["psnr"] > 0 and 0 < measured["ms_ssim"] <= 1  # the tiny model is untrained
    r = run("encode", src, "-o", tmp_path / "without.aec", *goal, "--no-metrics", "--json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)["results"][0]
    assert rep["psnr"] is None and rep["ms_ssim"] is None
    assert rep["quality"] == measured["quality"]
    assert (tmp_path / "without.aec").read_bytes() == (tmp_path / "with.aec").read_bytes()
    r = run("encode", src, "-o", tmp_path / "table.aec", *goal, "--no-metrics")
    assert r.exit_code == 0, r.output
    row = next(line for line in r.stdout.splitlines() if "80x64 RGB" in line)
    cells = [c.strip() for c in row.split("│")]
    assert cells[-3:-1] == ["-", "-"], r.stdout  # PSNR and MS-SSIM, before the seconds


@pytest.mark.parametrize("mode", ["L", "RGBA", "LA", "P", "PA"])
def test_colour_modes_come_back(run, tmp_path, mode):
    base = rgb(33, 47, 2)
    alpha = Image.fromarray(np.random.default_rng(0).integers(0, 256, (33, 47), dtype=np.uint8))
    if mode == "L":
        img = base.convert("L")
    elif mode == "RGBA":
        img = base.copy()
        img.putalpha(alpha)
    elif mode == "LA":
        img = base.convert("L")
        img.putalpha(alpha)
        img = img.convert("LA") if img.mode != "LA" else img
    elif mode == "P":
        img = base.quantize(16)
    else:  # palette with transparency: index 0 is transparent
        img = base.quantize(16)
        img.info["transparency"] = 0
    src = save(tmp_path / "in.png", img)
    r = run("encode", src, "-o", tmp_path / "x.aec", "-q", "90")
    assert r.exit_code == 0, r.output
    r = run("decode", tmp_path / "x.aec", "-o", tmp_path / "out.png")
    assert r.exit_code == 0, r.output
    with Image.open(src) as a, Image.open(tmp_path / "out.png") as b:
        assert b.size == a.size
        if mode in ("RGBA", "LA"):
            assert b.mode == mode
            assert np.array_equal(np.asarray(b)[..., -1], np.asarray(a)[..., -1])  # lossless
        elif mode == "L":
            assert b.mode == "L"
        elif mode == "P":
            assert b.mode == "P"
            # Every decoded pixel is one of the original palette's colours.
            palette = set(map(tuple, np.array(a.getpalette()).reshape(-1, 3).tolist()))
            got = set(map(tuple, np.asarray(b.convert("RGB")).reshape(-1, 3).tolist()))
            assert got <= palette
        else:
            transparent_in = np.asarray(a) == 0
            transparent_out = np.asarray(b.convert("RGBA"))[..., 3] == 0
            assert np.array_equal(transparent_in, transparent_out)


def test_icc_profile_is_kept(run, tmp_path):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    src = save(tmp_path / "icc.png", rgb(), icc_profile=icc)
    assert run("encode", src, "-o", tmp_path / "i.aec").exit_code == 0
    assert run("decode", tmp_path / "i.aec", "-o", tmp_path / "i.png").exit_code == 0
    with Image.open(tmp_path / "i.png") as im:
        assert im.info.get("icc_profile") == icc


def test_exif_orientation_is_applied(run, tmp_path):
    img = rgb(30, 50)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    src = save(tmp_path / "o.jpg", img, exif=exif.tobytes(), quality=95)
    assert run("encode", src, "-o", tmp_path / "o.aec").exit_code == 0
    assert run("decode", tmp_path / "o.aec", "-o", tmp_path / "o.png").exit_code == 0
    with Image.open(tmp_path / "o.png") as im:
        assert im.size == (30, 50)


def test_several_inputs_into_a_directory(run, tmp_path):
    a = save(tmp_path / "one.png", rgb(seed=1))
    b = save(tmp_path / "two.png", rgb(seed=2))
    out = tmp_path / "out"
    out.mkdir()
    r = run("encode", a, b, "-o", out)
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["one.aec", "two.aec"]
    r = run("decode", out / "one.aec", out / "two.aec", "-o", out)
    assert r.exit_code == 0, r.output
    assert (out / "one.aec.png").exists() and (out / "two.aec.png").exists()


def test_stdin_to_stdout(run, tmp_path):
    src = save(tmp_path / "s.png", rgb())
    r = run("encode", "-", "-o", "-", input=src.read_bytes())
    assert r.exit_code == 0, r.stderr
    data = r.stdout_bytes
    assert data[:4] == b"\x89AEC"
    r = run("decode", "-", "-o", "-", input=data)
    assert r.exit_code == 0, r.stderr
    with Image.open(io.BytesIO(r.stdout_bytes)) as im:
        assert im.size == (40, 48)


def test_info(run, tmp_path):
    src = save(tmp_path / "n.png", rgb())
    run("encode", src, "-o", tmp_path / "n.aec", "-q", "33")
    r = run("info", tmp_path / "n.aec", "--json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)["results"][0]
    assert rep["model_id"] == "tiny-test" and rep["quality"] == 33
    assert rep["width"] == 40 and rep["height"] == 48 and rep["mode"] == "RGB"
    assert rep["file_bytes"] == (tmp_path / "n.aec").stat().st_size


def test_info_reports_the_version_byte_of_the_file(run, tmp_path, monkeypatch):
    """A build that writes a newer version and still reads version 1 describes a version-1
    file as version 1, not as its own version."""
    from aecompress import container

    src = save(tmp_path / "v.png", rgb())
    run("encode", src, "-o", tmp_path / "v.aec")
    monkeypatch.setattr(container, "FORMAT_VERSION", 2)
    monkeypatch.setattr(container, "READABLE_VERSIONS", frozenset({1, 2}), raising=False)
    r = run("info", tmp_path / "v.aec", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["results"][0]["format_version"] == 1
    assert ": .aec v1," in run("info", tmp_path / "v.aec").stdout


def test_existing_output_needs_force(run, tmp_path):
    src = save(tmp_path / "f.png", rgb())
    target = tmp_path / "f.aec"
    target.write_bytes(b"keep me")
    r = run("encode", src)
    assert r.exit_code == 1
    assert "exists (use --force" in r.stderr
    assert target.read_bytes() == b"keep me"
    assert run("encode", src, "--force").exit_code == 0
    assert target.read_bytes()[:4] == b"\x89AEC"


def test_missing_input(run, tmp_path):
    r = run("encode", tmp_path / "nope.png", "-o", tmp_path / "nope.aec")
    assert r.exit_code == 1
    assert "nope.png: no such file" in r.stderr
    assert "Traceback" not in r.output
    assert not (tmp_path / "nope.aec").exists()


def test_not_an_image(run, tmp_path):
    src = tmp_path / "text.png"
    src.write_text("hello")
    r = run("encode", src, "-o", tmp_path / "t.aec")
    assert r.exit_code == 1
    assert "text.png" in r.stderr and "not a readable image" in r.stderr
    assert not (tmp_path / "t.aec").exists()


def test_corrupt_aec(run, tmp_path):
    src = save(tmp_path / "c.png", rgb())
    run("encode", src, "-o", tmp_path / "c.aec")
    data = bytearray((tmp_path / "c.aec").read_bytes())
    data[-10] ^= 1
    (tmp_path / "bad.aec").write_bytes(bytes(data))
    r = run("decode", tmp_path / "bad.aec", "-o", tmp_path / "bad.png")
    assert r.exit_code == 1
    assert "checksum mismatch" in r.stderr
    assert not (tmp_path / "bad.png").exists()


def test_not_an_aec_file(run, tmp_path):
    src = save(tmp_path / "p.png", rgb())
    r = run("decode", src, "-o", tmp_path / "p2.png")
    assert r.exit_code == 1
    assert "not an .aec file" in r.stderr


def test_batch_keeps_going_and_fails_at_the_end(run, tmp_path):
    good = save(tmp_path / "good.png", rgb())
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG broken")
    out = tmp_path / "o"
    out.mkdir()
    r = run("encode", bad, good, "-o", out)
    assert r.exit_code == 1
    assert "bad.png" in r.stderr and "1 of 2 inputs failed" in r.stderr
    assert (out / "good.aec").exists() and not (out / "bad.aec").exists()


def test_unknown_output_format(run, tmp_path):
    src = save(tmp_path / "u.png", rgb())
    run("encode", src, "-o", tmp_path / "u.aec")
    r = run("decode", tmp_path / "u.aec", "-o", tmp_path / "u.xyz")
    assert r.exit_code == 2
    assert "xyz" in r.stderr


@pytest.mark.parametrize("q", ["0", "101", "abc"])
def test_quality_out_of_range_is_a_usage_error(run, tmp_path, q):
    src = save(tmp_path / "q.png", rgb())
    r = run("encode", src, "-q", q)
    assert r.exit_code == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error when CUDA is absent")
def test_cuda_without_cuda_is_an_error(run, tmp_path):
    src = save(tmp_path / "g.png", rgb())
    r = run("encode", src, "--device", "cuda")
    assert r.exit_code == 1
    assert "no CUDA device is available" in r.stderr


def test_device_is_reported(run, tmp_path):
    src = save(tmp_path / "d.png", rgb())
    r = run("encode", src, "--device", "cpu")
    assert "on cpu" in r.stderr


def test_missing_model_file(run, tmp_path):
    src = save(tmp_path / "m.png", rgb())
    r = run("encode", src, "--model", tmp_path / "none.pt")
    assert r.exit_code == 1
    assert "model file not found" in r.stderr


def test_decode_with_wrong_model(run, tmp_path, monkeypatch):
    from conftest import make_tiny_checkpoint

    from aecompress.checkpoint import save_checkpoint

    other = tmp_path / "other.pt"
    save_checkpoint(make_tiny_checkpoint(seed=3, model_id="other-model"), other)
    src = save(tmp_path / "w.png", rgb())
    run("encode", src, "-o", tmp_path / "w.aec")
    # --model only adds a place to look: the file's own model ($AECOMPRESS_MODEL) decodes it.
    r = run("decode", tmp_path / "w.aec", "-o", tmp_path / "w2.png", "--model", other)
    assert r.exit_code == 0, r.output
    assert "model tiny-test" in r.stderr and "other-model" not in r.stderr
    assert (tmp_path / "w2.png").exists()
    # Without its model, the file is refused, naming the model it needs.
    monkeypatch.delenv(MODEL_ENV)
    r = run("decode", tmp_path / "w.aec", "-o", tmp_path / "w3.png", "--model", other)
    assert r.exit_code == 1
    assert "encoded with model tiny-test" in r.stderr and "not available" in r.stderr
    assert not (tmp_path / "w3.png").exists()
