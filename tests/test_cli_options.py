"""What a user of the classic codec tools expects of the options: -V, --quiet, -v, usage errors
(exit 2), size suffixes, JSON with failures and model ids, tables that fit 80 columns, plain help
with defaults, and progress bars only where they help."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from conftest import photo_like
from PIL import Image
from rich.console import Console
from typer.testing import CliRunner

from aecompress import __version__
from aecompress.cli import app
from aecompress.cli.image_progress import ENCODE_STAGES, ImageProgress
from aecompress.cli.tables import encode_table
from aecompress.operations import EncodeReport
from aecompress.target import SizeSyntaxError, parse_size


def png(path: Path, seed: int = 0) -> Path:
    Image.fromarray(photo_like(40, 48, seed)).save(path)
    return path


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version_flags(flag):
    r = CliRunner().invoke(app, [flag])
    assert r.exit_code == 0 and r.stdout.strip() == f"aecompress {__version__}"


def test_unknown_device_is_a_usage_error(cli, tmp_path):
    r = cli("encode", png(tmp_path / "a.png"), "--device", "foo")
    assert r.exit_code == 2
    assert "unknown device 'foo'" in r.stderr and "auto, cpu, cuda" in r.stderr
    assert not (tmp_path / "a.aec").exists()


def test_quiet_prints_nothing_but_errors(cli, tmp_path):
    src = png(tmp_path / "a.png")
    r = cli("encode", src, "--quiet")
    assert r.exit_code == 0 and r.stdout == "" and r.stderr == ""
    assert (tmp_path / "a.aec").exists()
    r = cli("decode", tmp_path / "a.aec", "--quiet")
    assert r.exit_code == 0 and r.stdout == "" and r.stderr == ""
    r = cli("encode", src, "--quiet")  # exists: the error still shows
    assert r.exit_code == 1 and r.stderr.startswith("error:") and r.stdout == ""
    r = cli("encode", src, "--quiet", "--verbose")
    assert r.exit_code == 2 and "cannot be used together" in r.stderr


def test_verbose_names_the_model_file_and_each_input(cli, tmp_path, tiny_model_path):
    a, b = png(tmp_path / "a.png"), png(tmp_path / "b.png", 1)
    r = cli("encode", a, b, "-v")
    assert r.exit_code == 0, r.output
    assert f"model file {tiny_model_path}" in r.stderr
    assert f"{a} -> {tmp_path / 'a.aec'}" in r.stderr and f"{b} -> {tmp_path / 'b.aec'}" in r.stderr
    r = cli("decode", tmp_path / "a.aec", "-v", "--model", tiny_model_path)
    assert r.exit_code == 0, r.output
    assert f"model file {tiny_model_path}" in r.stderr
    assert "model file" not in cli("decode", tmp_path / "a.aec", "-f").stderr


@pytest.mark.parametrize(
    ("text", "size"),
    [("900", 900), ("60k", 60_000), ("60KB", 60_000), ("30KiB", 30_720), ("30ki", 30_720),
     ("1.5M", 1_500_000), ("2MiB", 2 * 1024**2), ("12 kb", 12_000)],
)  # fmt: skip
def test_size_suffixes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "k", "12 parsecs", "1.2.3KB", "-5k", "5GB"])
def test_sizes_that_cannot_be_read(text):
    with pytest.raises(SizeSyntaxError, match="1000 bytes"):
        parse_size(text)


def test_encode_json_names_the_model_and_lists_failures(cli, tmp_path, tiny_checkpoint):
    good = png(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    r = cli("encode", tmp_path / "bad.png", good, tmp_path / "missing.png", "--json")
    assert r.exit_code == 1
    report = json.loads(r.stdout)
    [result] = report["results"]
    assert result["model_id"] == tiny_checkpoint.model_id
    assert result["fingerprint"] == tiny_checkpoint.fingerprint.hex()
    assert [f["input"] for f in report["failed"]] == [
        str(tmp_path / "bad.png"),
        str(tmp_path / "missing.png"),
    ]
    assert all(f["error"] for f in report["failed"]) and report["not_processed"] == []


def test_decode_json_and_fail_fast_leftovers(cli, tmp_path, tiny_checkpoint):
    assert cli("encode", png(tmp_path / "a.png")).exit_code == 0
    (tmp_path / "bad.aec").write_bytes(b"nope")
    r = cli("decode", tmp_path / "a.aec", "--json")
    assert r.exit_code == 0, r.output
    [result] = json.loads(r.stdout)["results"]
    assert result["output"] == str(tmp_path / "a.aec.png") and result["format"] == "PNG"
    assert result["model_id"] == tiny_checkpoint.model_id
    assert result["output_bytes"] == (tmp_path / "a.aec.png").stat().st_size
    r = cli("decode", tmp_path / "bad.aec", tmp_path / "a.aec", "--json", "--fail-fast", "-f")
    assert r.exit_code == 1
    report = json.loads(r.stdout)
    assert [f["input"] for f in report["failed"]] == [str(tmp_path / "bad.aec")]
    assert report["not_processed"] == [str(tmp_path / "a.aec")] and report["results"] == []


def _report(**kw) -> EncodeReport:
    base = dict(input="in.png", output="photos/holiday-2026/IMG_20261129_101112.aec",
                width=3000, height=2000, mode="RGBA", quality=75.5, input_bytes=548_791_234,
                output_bytes=1_234_567, bpp=1.646, ratio_raw=14.6, ratio_input=444.52,
                psnr=38.12, ms_ssim=0.9912, seconds=45.25, model_id="m", fingerprint="f",
                warnings=[])  # fmt: skip
    return EncodeReport(**{**base, **kw})


@pytest.mark.parametrize("width", [60, 80, 100, 160])
def test_encode_table_keeps_every_number_whole(width):
    console = Console(width=width, file=io.StringIO(), highlight=False)
    table = encode_table([_report()])
    console.print(table)
    text = console.file.getvalue()
    assert max(len(line) for line in text.splitlines()) <= width and "…" not in text
    shown = [" ".join(str(c.header).split()) for c in table.fit(console, console.options).columns]
    cells = {"q": "75.5", "input B": "548,791,234", "output B": "1,234,567", "bpp": "1.646",
             "PSNR dB": "38.12", "MS-SSIM": "0.9912", "ratio raw": "14.6",
             "ratio input": "444.52", "s": "45.25", "image": "3000x2000 RGBA"}  # fmt: skip
    for name in shown[1:]:  # a column that is shown shows its number whole
        assert cells[name] in text, (name, text)
    for name in ("q", "output B", "bpp", "PSNR dB"):  # and these stay at 60 columns
        assert name in shown, text
    body = text.split("━\n", 1)[1].splitlines()  # the file name folds, whole
    assert "".join(line.split("│")[0].strip() for line in body) == _report().output
    if width >= 160:
        assert set(shown[1:]) == set(cells)


def test_help_is_plain_with_defaults_and_no_type_labels():
    for command in ("encode", "decode", "info", "models"):
        r = CliRunner().invoke(app, [command, "--help"])
        assert r.exit_code == 0
        assert not re.search(r"<[a-zA-Z][^>]*>|\{[A-Z]", r.stdout), r.stdout
    r = CliRunner().invoke(app, ["encode", "--help"])
    assert "Usage: root encode [OPTIONS] IMAGE..." in r.stdout
    flowing = " ".join(r.stdout.split())
    assert "[default: 75]" in flowing and "[default: auto]" in flowing
    # Docstrings flow to the terminal's width: the source's line breaks are not kept.
    lines = [line.strip() for line in r.stdout.splitlines()]
    assert lines[lines.index("Use -q for a fixed quality, or one of the --target-* options to "
                             "let aecompress") + 1].startswith("search the quality")  # fmt: skip
    r = CliRunner().invoke(app, ["decode", "--help"])
    flowing = " ".join(r.stdout.split())
    assert "photo.aec -> photo.aec.png" in flowing and "--mkdir" in flowing


def test_a_training_state_given_as_a_model_points_at_model_pt(cli, tmp_path):
    import torch

    state = tmp_path / "run" / "state.pt"
    state.parent.mkdir()
    torch.save({"format": "aecompress-training-state", "model_config": {}, "model": {}}, state)
    r = cli("encode", png(tmp_path / "a.png"), "--model", state)
    assert r.exit_code == 1
    assert "a training state, not a model file" in r.stderr and "model.pt" in r.stderr


class _FakeCodec:
    progress = None


def test_progress_draws_each_stage_on_a_terminal():
    file = io.StringIO()
    console = Console(file=file, force_terminal=True, width=100)
    progress = ImageProgress(console, ENCODE_STAGES, count=2, delay=0)
    codec = _FakeCodec()
    with progress.image(codec, 1, "photo.png"):
        assert codec.progress is not None
        codec.progress("analysis", 1, 2)
        codec.progress("synthesis", 1, 1)
    progress.close()
    assert codec.progress is None
    shown = file.getvalue()
    assert "[2/2] photo.png: analysis" in shown and "[2/2] photo.png: synthesis" in shown
    assert "20%" in shown and "90%" in shown


def test_no_progress_without_a_terminal_or_before_the_delay():
    codec = _FakeCodec()
    quiet = ImageProgress(None, ENCODE_STAGES, count=1)
    with quiet.image(codec, 0, "a.png"):
        assert codec.progress is None  # nothing to draw on: the codec is not even asked
    file = io.StringIO()
    slow_to_show = ImageProgress(Console(file=file, force_terminal=True), ENCODE_STAGES, 1, 60)
    with slow_to_show.image(codec, 0, "a.png"):
        codec.progress("analysis", 1, 1)
    slow_to_show.close()
    assert file.getvalue() == ""


def test_piped_commands_print_no_progress_bar(cli, tmp_path):
    r = cli("encode", png(tmp_path / "a.png"))
    assert r.exit_code == 0
    assert "━" not in r.stderr and "%" not in r.stderr
