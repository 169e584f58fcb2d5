"""encode's report through the CLI: what it says for images too small for MS-SSIM (1×1 and
others under 11 pixels a side), ratios below 1 shown with their digits, and PSNR and MS-SSIM
that describe the written file (what decode returns) in every colour mode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import photo_like
from PIL import Image

from aecompress.metrics import measure, ms_ssim, psnr


@pytest.fixture
def run(cli):
    return cli  # conftest's: the CLI in-process, the tiny model as the default


def _encode_json(run, src: Path, *args) -> dict:
    r = run("encode", src, "-o", src.with_suffix(".aec"), "--json", *args)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)["results"][0]


def _table_row(run, name: str, *args) -> dict[str, str]:
    """encode's table for one image in the working folder (short names: one line a row, at
    the 160 columns of output that is not a terminal): header -> cell."""
    r = run("encode", name, "-f", *args)
    assert r.exit_code == 0, r.output
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    header = [" ".join(c.split()) for c in lines[0].replace("┃", "│").split("│")]
    row = next(line for line in lines if Path(name).with_suffix(".aec").name in line)
    cells = [c.strip() for c in row.split("│")]
    assert len(cells) == len(header), r.stdout
    return dict(zip(header, cells, strict=True))


def test_a_one_pixel_image_reports_what_is_defined(run, tmp_path):
    src = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (120, 80, 40)).save(src)
    rep = _encode_json(run, src)
    size = (tmp_path / "dot.aec").stat().st_size
    assert rep["ratio_raw"] == pytest.approx(3 / size)  # 3 bytes of RGB in a larger file
    assert 0 < rep["ratio_raw"] < 1
    assert rep["ms_ssim"] is None  # no 11 × 11 window fits
    decoded = _decoded(run, tmp_path / "dot.aec")
    assert rep["psnr"] == pytest.approx(_psnr(np.asarray(Image.open(src)), decoded), abs=1e-9)


def test_a_one_pixel_table_shows_the_ratio_and_n_a(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (1, 1), (120, 80, 40)).save("dot.png")
    row = _table_row(run, "dot.png")
    size = (tmp_path / "dot.aec").stat().st_size
    raw = 3 / size
    digits = 1 - int(np.floor(np.log10(raw)))  # two significant digits
    assert row["ratio raw"] == f"{raw:.{digits}f}" and float(row["ratio raw"]) > 0, row
    assert row["MS-SSIM"] == "n/a", row
    assert row["PSNR dB"] not in ("-", "n/a"), row
    row = _table_row(run, "dot.png", "--no-metrics")
    assert row["PSNR dB"] == "-" and row["MS-SSIM"] == "-", row  # not measured, not undefined


@pytest.mark.parametrize("size", [(10, 40), (40, 10), (3, 2)])
def test_under_eleven_pixels_a_side_has_no_ms_ssim(run, tmp_path, size):
    height, width = size
    src = tmp_path / "small.png"
    Image.fromarray(photo_like(height, width, 3)).save(src)
    rep = _encode_json(run, src)
    assert rep["ms_ssim"] is None and rep["psnr"] is not None


def test_eleven_pixels_a_side_has_one(run, tmp_path):
    src = tmp_path / "eleven.png"
    image = photo_like(11, 30, 4)
    Image.fromarray(image).save(src)
    rep = _encode_json(run, src)
    decoded = _decoded(run, tmp_path / "eleven.aec")
    assert rep["ms_ssim"] == pytest.approx(ms_ssim(image, decoded), abs=1e-6)


def _decoded(run, aec: Path) -> np.ndarray:
    out = aec.with_name(aec.name + ".png")
    r = run("decode", aec, "-o", out, "-f")
    assert r.exit_code == 0, r.output
    return np.asarray(Image.open(out).convert("RGB"))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * np.log10(255**2 / np.mean((a.astype(float) - b) ** 2))


def _image(mode: str) -> Image.Image:
    base = Image.fromarray(photo_like(40, 52, 2))
    alpha = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 52), dtype=np.uint8))
    if mode == "RGB":
        return base
    if mode in ("L", "LA"):
        gray = base.convert("L")
        return gray if mode == "L" else Image.merge("LA", (gray, alpha))
    if mode == "RGBA":
        return Image.merge("RGBA", (*base.split(), alpha))
    palette = base.quantize(24)
    if mode == "PA":  # a palette entry marked transparent: read as PA
        palette.info["transparency"] = 0
    return palette


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "LA", "P", "PA"])
def test_the_report_measures_what_decode_writes(run, tmp_path, mode):
    """PSNR and MS-SSIM of the source's RGB against the decoded file's RGB, in every mode
    (P and PA come back as the nearest stored palette colours, L as its gray)."""
    src = tmp_path / f"{mode}.png"
    image = _image(mode)
    image.save(src)
    rep = _encode_json(run, src)
    assert rep["mode"] == mode
    decoded = _decoded(run, tmp_path / f"{mode}.aec")
    source = np.asarray(image.convert("RGB"))
    assert rep["psnr"] == psnr(source, decoded)
    assert rep["ms_ssim"] == pytest.approx(ms_ssim(source, decoded), abs=1e-6)
    assert measure(source, decoded).ms_ssim == rep["ms_ssim"]


def test_the_measures_run_in_the_thread_that_owns_the_codec(run, tmp_path, monkeypatch):
    """In a batch, the second part of each input (writing) runs on a worker thread while the
    next is coded: the report's measures, which use torch, stay in the main thread."""
    import threading

    from aecompress import operations
    from aecompress.cli import pipeline

    monkeypatch.setattr(pipeline, "usable_cpus", lambda: 2)  # the pipeline, whatever the CPU
    threads: list[bool] = []
    real = operations.measure

    def spy(*args, **kwargs):
        threads.append(threading.current_thread() is threading.main_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(operations, "measure", spy)
    sources = []
    for i in range(3):
        sources.append(tmp_path / f"{i}.png")
        Image.fromarray(photo_like(24 + 8 * i, 40, i)).save(sources[-1])
    r = run("encode", *sources, "-o", tmp_path / "out/", "--mkdir", "--json")
    assert r.exit_code == 0, r.output
    assert threads == [True, True, True]
    assert all(rep["ms_ssim"] is not None for rep in json.loads(r.stdout)["results"])
