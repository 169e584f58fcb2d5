"""Start-up: help, the version, `info`, `models` and every argument check run without torch,
numpy or Pillow, so that they answer at once (the time is measured by
benchmarks/startup.py, not here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_tiny_checkpoint

from aecompress.checkpoint import save_checkpoint
from aecompress.codec import Codec
from aecompress.imagefile import encode_image
from aecompress.imageio import load_image

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "numpy", "PIL", "constriction", "matplotlib")

# Runs the CLI in a fresh interpreter and prints, as JSON, the exit code and which heavy
# modules were imported by then.
_PROBE = """
import json, sys
from aecompress.cli import app
try:
    app(args=sys.argv[1:], prog_name="aecompress")
    code = 0
except SystemExit as e:
    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
loaded = sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY))
print("\\n" + json.dumps({"code": code, "loaded": loaded}))
""".replace("HEAVY", repr(HEAVY))


def probe(*args: str, cwd=None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the checkout, from any working directory
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )
    last = done.stdout.strip().splitlines()[-1]
    result = json.loads(last)
    result["stderr"] = done.stderr
    return result


@pytest.fixture(scope="module")
def aec_file(tmp_path_factory):
    """An .aec file written by a tiny model, and the folder holding that model."""
    folder = tmp_path_factory.mktemp("startup")
    ckpt = make_tiny_checkpoint()
    save_checkpoint(ckpt, folder / "tiny.pt")
    from conftest import photo_like
    from PIL import Image

    Image.fromarray(photo_like(40, 48)).save(folder / "photo.png")
    encoded = encode_image(Codec(ckpt), load_image(folder / "photo.png"), 50)
    (folder / "photo.aec").write_bytes(encoded.data)
    return folder


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--version"],
        ["-V"],
        ["encode", "--help"],
        ["decode", "--help"],
        ["info", "--help"],
        ["models", "--help"],
        ["bench", "--help"],
        ["train", "--help"],
    ],
)
def test_help_and_version_import_nothing_heavy(args):
    result = probe(*args)
    assert result["code"] == 0, result["stderr"]
    assert result["loaded"] == [], f"{args} imported {result['loaded']}"


def test_info_reads_the_header_without_torch(aec_file):
    result = probe("info", str(aec_file / "photo.aec"), "--model", str(aec_file / "tiny.pt"))
    assert result["code"] == 0, result["stderr"]
    assert result["loaded"] == []


def test_models_lists_the_shipped_models_without_torch(aec_file):
    result = probe("models", "--model", str(aec_file / "tiny.pt"))
    assert result["code"] == 0, result["stderr"]
    assert result["loaded"] == []


@pytest.mark.parametrize(
    "args",
    [
        ["encode", "x.png", "--device", "foo"],
        ["decode", "x.aec", "--device", "foo"],
        ["encode", "x.png", "-q", "500"],
        ["encode", "x.png", "--target-size", "12 parsecs"],
        ["encode", "x.png", "-q", "50", "--target-bpp", "1"],
        ["encode", "x.png", "--quiet", "--verbose"],
        ["bench", "x.png", "--codecs", "nosuchcodec"],
        ["bench", "x.png", "--qualities", "0,50"],
        ["bench", "x.png", "--sweep", "jpeg=abc"],
        ["bench", "x.png", "--reference", "foo"],
        ["bench", "x.png", "--quiet", "--verbose"],
        ["bench", "x.png", "--workers", "0"],
        ["train", "x", "--out", "run", "--time-budget", "soon"],
        ["train", "x", "--out", "run", "--checkpoint-every", "2.5"],
        ["train", "x", "--out", "run", "--quiet", "--verbose"],
        ["train", "x", "--out", "run", "--device", "tpu"],
    ],
)
def test_usage_errors_exit_2_before_anything_heavy_is_imported(args, tmp_path):
    result = probe(*args, cwd=tmp_path)
    assert result["code"] == 2, result["stderr"]
    assert result["loaded"] == [], f"{args} imported {result['loaded']}"


def test_an_existing_output_is_refused_before_torch_is_imported(tmp_path):
    (tmp_path / "x.png").write_bytes(b"an image")
    (tmp_path / "x.aec").write_bytes(b"an earlier encode")
    (tmp_path / "x.aec.png").write_bytes(b"an earlier decode")
    for name in ("y.png", "y.aec", "y.aec.png"):  # a batch: the pipeline waits for no torch
        (tmp_path / name).write_bytes(b"another")
    batches = (["encode", "x.png", "y.png"], ["decode", "x.aec", "y.aec"])
    for args in (["encode", "x.png"], ["decode", "x.aec"], *batches):
        result = probe(*args, cwd=tmp_path)
        assert result["code"] == 1 and "exists (use --force" in result["stderr"], result["stderr"]
        assert result["loaded"] == [], f"{args} imported {result['loaded']}"
