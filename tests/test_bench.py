"""The `aecompress bench` command with the tiny test model on small generated images: the
JSON / CSV / Markdown / PNG outputs, skipped and unknown codecs, exit codes."""

from __future__ import annotations

import csv
import json
import sys

import pytest
import typer
from conftest import photo_like
from PIL import Image
from typer.testing import CliRunner

from aecompress.bench import peers
from aecompress.bench import plot as bench_plot
from aecompress.bench import report as bench_report
from aecompress.cli.bench_command import bench as bench_command
from aecompress.registry import MODEL_ENV


@pytest.fixture
def run(tiny_model_path, monkeypatch):
    monkeypatch.setenv(MODEL_ENV, str(tiny_model_path))
    app = typer.Typer()
    app.command()(bench_command)
    app.command("noop")(lambda: None)  # two commands, so "bench" is named as on the real CLI
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, ["bench", *(str(a) for a in args)])

    return invoke


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for seed in (1, 2):
        Image.fromarray(photo_like(64, 96, seed)).save(folder / f"p{seed}.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_json_csv_markdown_of_jpeg_and_aec(run, images, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    pattern = str(images / "*.png")  # the folder and a glob name the same two images
    r = run(
        images, pattern, "--codecs", "jpeg,aec", "--sweep", "jpeg=20,60,90",
        "--qualities", "10,90", "--device", "cpu",
        "--json", out / "b.json", "--csv", out / "b.csv", "--markdown", out / "b.md",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "BD-rate PSNR" in r.stdout and "jpeg" in r.stdout
    doc = json.loads((out / "b.json").read_text())
    assert doc["format"] == "aecompress-bench" and doc["version"] == 1
    assert set(doc) == {
        "format", "version", "reference", "seconds", "machine", "codecs", "skipped", "images",
        "points", "curves", "summary",
    }  # fmt: skip
    assert doc["reference"] == "jpeg"
    assert {"device", "torch_threads", "pillow", "model_id", "workers"} <= set(doc["machine"])
    assert doc["machine"]["model_id"] == "tiny-test"
    assert [c["name"] for c in doc["codecs"]] == ["jpeg", "aec"]
    assert [c["sweep"] for c in doc["codecs"]] == [[20, 60, 90], [10, 90]]
    assert len(doc["images"]) == 2
    assert all((im["width"], im["height"]) == (96, 64) for im in doc["images"])
    assert len(doc["points"]) == 2 * (3 + 2)
    for p in doc["points"]:
        assert set(p) == set(bench_report.POINT_FIELDS)
        pixels = p["width"] * p["height"]
        assert p["bpp"] == pytest.approx(p["bytes"] * 8 / pixels)
        assert p["ratio"] == pytest.approx(pixels * 3 / p["bytes"])
        assert 0 < p["ms_ssim"] <= 1 and p["encode_ms"] >= 0 and p["decode_ms"] >= 0
    assert len(doc["curves"]) == 5
    assert all(c["images"] == 2 for c in doc["curves"])
    jpeg_points = [p for p in doc["points"] if p["codec"] == "jpeg" and p["quality"] == 60]
    jpeg_curve = next(c for c in doc["curves"] if c["codec"] == "jpeg" and c["quality"] == 60)
    assert jpeg_curve["bpp"] == pytest.approx(sum(p["bpp"] for p in jpeg_points) / 2)
    summary = {s["codec"]: s for s in doc["summary"]}
    assert set(summary) == {"jpeg", "aec"}
    assert summary["jpeg"]["bd_rate_psnr"] == pytest.approx(0, abs=1e-9)
    assert set(summary["jpeg"]["psnr_at_bpp"]) == {"0.25", "0.5", "1"}

    with open(out / "b.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * (3 + 2)
    assert len({(r["codec"], r["quality"], r["image"]) for r in rows}) == len(rows)
    assert list(rows[0]) == list(bench_report.POINT_FIELDS)
    assert "## Summary" in (out / "b.md").read_text()


def test_workers_give_the_same_bytes(run, images, tmp_path):
    results = []
    for workers in ("1", "2"):
        path = tmp_path / f"w{workers}.json"
        r = run(images, "--codecs", "jpeg", "--sweep", "jpeg=30,80", "--workers", workers,
                "--json", path)  # fmt: skip
        assert r.exit_code == 0, r.output
        results.append(
            [(p["image"], p["quality"], p["bytes"]) for p in json.loads(path.read_text())["points"]]
        )
    assert results[0] == results[1] and len(results[0]) == 4


def test_a_codec_without_its_plugin_is_skipped(run, images, tmp_path, monkeypatch):
    real = peers.unavailable_reason
    monkeypatch.setattr(
        peers,
        "unavailable_reason",
        lambda n: "pillow-fake not installed" if n == "webp" else real(n),
    )
    r = run(images, "--codecs", "jpeg,webp", "--sweep", "jpeg=50,90", "--json", tmp_path / "s.json")
    assert r.exit_code == 0, r.output
    assert "webp: skipped (pillow-fake not installed)" in r.stderr
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["skipped"] == [{"codec": "webp", "reason": "pillow-fake not installed"}]
    assert {p["codec"] for p in doc["points"]} == {"jpeg"}
    # Nothing left to run is a failure, not a crash.
    r = run(images, "--codecs", "webp")
    assert r.exit_code == 1
    assert "webp: skipped" in r.stderr and "none of the requested codecs" in r.stderr


def test_unknown_codec_is_a_usage_error(run, images):
    r = run(images, "--codecs", "jpeg,foo")
    assert r.exit_code == 2
    assert "unknown codec 'foo'" in r.stderr and "jpeg444" in r.stderr
    r = run(images, "--qualities", "10,abc")
    assert r.exit_code == 2 and "--qualities" in r.stderr
    r = run(images, "--qualities", "0,50")
    assert r.exit_code == 2 and "from 1 to 100" in r.stderr


def test_malformed_sweeps_and_reference_are_usage_errors(run, images):
    for args, message in (
        (("--sweep", "jpeg"), "expected CODEC=V1,V2"),
        (("--sweep", "foo=1,2"), "--sweep: unknown codec 'foo'"),
        (("--sweep", "jpeg=10,x"), "--sweep jpeg: expected comma-separated numbers"),
        (("--sweep", "jpeg=10.5"), "whole numbers from 0 to 100"),
        (("--sweep", "jp2=1"), "jp2 ratios must be above 1"),
        (("--reference", "foo"), "--reference: unknown codec 'foo'"),
    ):
        r = run(images, "--codecs", "jpeg", *args)
        assert r.exit_code == 2, (args, r.output)
        assert message in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.output


def test_no_inputs(run, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run(empty, "--codecs", "jpeg")
    assert r.exit_code == 1 and "no image files found" in r.stderr
    r = run(tmp_path / "missing", "--codecs", "jpeg")
    assert r.exit_code == 1 and "no such file or directory" in r.stderr
    r = run(str(tmp_path / "*.png"), "--codecs", "jpeg")
    assert r.exit_code == 1 and "matches no image file" in r.stderr
    assert "Traceback" not in r.output


def test_outputs_are_not_replaced_without_force(run, images, tmp_path):
    target = tmp_path / "keep.json"
    target.write_text("keep me")
    r = run(images, "--codecs", "jpeg", "--json", target)
    assert r.exit_code == 1 and "use --force" in r.stderr
    assert target.read_text() == "keep me"


def test_plot_writes_a_png(run, images, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "rd.png"
    r = run(images, "--codecs", "jpeg,webp", "--sweep", "jpeg=20,80", "--sweep", "webp=20,80",
            "--plot", path)  # fmt: skip
    assert r.exit_code == 0, r.output
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_fails_before_measuring(run, images, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    r = run(images, "--codecs", "jpeg", "--plot", tmp_path / "rd.png")
    assert r.exit_code == 1
    assert r.stderr == f"error: {bench_plot.PLOT_NEEDS}\n"  # one line, both install hints
    assert not (tmp_path / "rd.png").exists()


def test_ctrl_c_exits_130_like_every_command(images, monkeypatch):
    from aecompress.bench import runner
    from aecompress.cli import app

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "measure", interrupted)
    r = CliRunner().invoke(app, ["bench", str(images), "--codecs", "jpeg"])
    assert r.exit_code == 130, r.output
    assert "interrupted" in r.stderr
    assert "Traceback" not in r.output


def test_quiet_prints_the_tables_and_files_only(run, images, tmp_path, monkeypatch):
    real = peers.unavailable_reason
    monkeypatch.setattr(
        peers,
        "unavailable_reason",
        lambda n: "pillow-fake not installed" if n == "webp" else real(n),
    )
    args = [images, "--codecs", "jpeg,webp", "--sweep", "jpeg=50,90"]
    r = run(*args, "--json", tmp_path / "loud.json")
    assert r.exit_code == 0, r.output
    assert "warning: webp: skipped (pillow-fake not installed)" in r.stderr
    assert "2 images × 2 settings of jpeg" in r.stderr and "wrote" in r.stderr
    r = run(*args, "--quiet", "--json", tmp_path / "quiet.json")
    assert r.exit_code == 0, r.output
    assert r.stderr == ""
    assert "BD-rate PSNR" in r.stdout and "jpeg" in r.stdout
    assert json.loads((tmp_path / "quiet.json").read_text())["format"] == "aecompress-bench"


def test_verbose_names_the_images_and_the_sweeps(run, images):
    r = run(images, "--codecs", "jpeg", "--sweep", "jpeg=50,90", "-v")
    assert r.exit_code == 0, r.output
    assert f"{images / 'p1.png'}: 96×64" in r.stderr
    assert "jpeg at 50,90" in r.stderr and "measuring jpeg" in r.stderr
    r = run(images, "--codecs", "jpeg", "--quiet", "--verbose")
    assert r.exit_code == 2
    assert "--quiet and --verbose cannot be used together" in r.stderr


def test_the_progress_bar_is_drawn_on_a_terminal_unless_quiet(run, images, monkeypatch):
    from aecompress.cli import common

    hide_cursor = "\x1b[?25l"  # written when a live bar starts
    args = [images, "--codecs", "jpeg", "--sweep", "jpeg=50,90"]
    r = run(*args)
    assert r.exit_code == 0 and hide_cursor not in r.stderr  # not a terminal: no bar
    monkeypatch.setattr(common.err, "_force_terminal", True)
    r = run(*args)
    assert r.exit_code == 0 and hide_cursor in r.stderr
    r = run(*args, "--quiet")
    assert r.exit_code == 0 and r.stderr == ""


def test_help_names_every_value_without_type_labels():
    from aecompress.cli import app

    r = CliRunner().invoke(app, ["bench", "--help"], env={"COLUMNS": "100"})
    assert r.exit_code == 0, r.output
    assert "<" not in r.stdout, r.stdout  # no <list[str]>, <int range>, <path>, <str>
    for shown in ("bench [OPTIONS] IMAGE...", "--codecs CODECS", "--qualities Q,Q,...",
                  "--sweep CODEC=V,V,...", "--reference CODEC", "--workers N", "--json FILE",
                  "--plot FILE", "--quiet", "-v, --verbose"):  # fmt: skip
        assert shown in r.stdout, shown
    assert "[default: 1,15,29,43,57,72,86,100]" in r.stdout
    assert "[default: aec,jpeg,webp,avif,jp2,heic,jxl]" in " ".join(r.stdout.split())
