"""Shared fixtures: a tiny seeded model, exported like the shipped one, and generated images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from aecompress.checkpoint import Checkpoint, export_checkpoint, save_checkpoint
from aecompress.cli import app
from aecompress.model import HyperpriorModel, ModelConfig

TINY = ModelConfig(N=16, M=16, Nh=16, lambdas=(0.002, 0.02, 0.2), num_scales=64)
# `aecompress train` options for a model and batches small enough for a few CPU steps.
TINY_ARGS = ["--batch-size", "2", "--patch-size", "64", "--N", "8", "--M", "8", "--Nh", "8"]
# The keys of the first version of state.pt.
OLD_STATE_KEYS = {"model_config", "train_config", "model", "optimizer", "step", "python_rng",
                  "torch_rng"}  # fmt: skip
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def photo_like(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth, textured H×W×3 uint8 image (gradients + blobs + a little noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    img = np.zeros((height, width, 3))
    for c in range(3):
        fx, fy, ph = rng.uniform(0.01, 0.08, 2).tolist() + [rng.uniform(0, 6)]
        img[..., c] = 128 + 80 * np.sin(fx * xx + ph) * np.cos(fy * yy)
    img += rng.normal(0, 4, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def make_images(folder: Path, count=3, height=80, width=72, seed=0) -> Path:
    """`count` PNG files of photo-like images in `folder` (made if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(photo_like(height, width, seed + i)).save(folder / f"{i}.png")
    return folder


def train_cli(*args):
    """`aecompress train ARGS` in-process."""
    return CliRunner().invoke(app, ["train", *map(str, args)])


def make_tiny_checkpoint(seed: int = 0, model_id: str = "tiny-test") -> Checkpoint:
    torch.manual_seed(seed)
    model = HyperpriorModel(TINY).eval()
    with torch.no_grad():
        # An untrained model's latents are tiny; larger gains give z and y real ranges, so the
        # tests exercise many table entries, escapes included.
        model.log_gain += 3.0
    # Calibrate the integer network on z from generated images, as export does for real models.
    calib = []
    with torch.no_grad():
        for s in range(3):
            x = torch.from_numpy(photo_like(128, 128, s)).permute(2, 0, 1)[None].float() / 255
            y = model.analysis(x, 50.0)
            calib.append(torch.round(model.h_a(y)))
    return export_checkpoint(model, calib, model_id, {"purpose": "tests"})


@pytest.fixture(autouse=True)
def no_user_models(monkeypatch):
    """Tests see the shipped models only, whatever the machine's own model settings are."""
    monkeypatch.delenv("AECOMPRESS_MODEL", raising=False)
    monkeypatch.delenv("AECOMPRESS_MODELS", raising=False)


@pytest.fixture
def one_thread():
    """Tiny convolutions gain nothing from threads, and lose a lot on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_checkpoint() -> Checkpoint:
    return make_tiny_checkpoint()


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory, tiny_checkpoint) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_checkpoint(tiny_checkpoint, path)
    return path


@pytest.fixture
def cli(tiny_model_path, monkeypatch):
    """Run the command line in-process with the tiny model as the encoder's default."""
    from aecompress.registry import MODEL_ENV

    monkeypatch.setenv(MODEL_ENV, str(tiny_model_path))
    runner = CliRunner()

    def invoke(*args, input: bytes | None = None):
        return runner.invoke(app, [str(a) for a in args], input=input)

    return invoke
