"""A few CPU training steps on generated images give a checkpoint that encodes and decodes."""

import numpy as np
from conftest import photo_like
from PIL import Image
from typer.testing import CliRunner

from aecompress.checkpoint import load_checkpoint
from aecompress.cli import app
from aecompress.codec import Codec
from aecompress.imageio import SourceImage
from aecompress.modes import ColourMode


def test_train_smoke(tmp_path):
    data = tmp_path / "data" / "nested"
    data.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(photo_like(80, 72, i)).save(data / f"{i}.png")
    (data / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "run"
    r = CliRunner().invoke(
        app,
        ["train", str(tmp_path / "data"), "--out", str(out), "--steps", "3", "--batch-size", "2",
         "--patch-size", "64", "--N", "8", "--M", "8", "--Nh", "8", "--model-id", "smoke"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "skipping" in r.stderr and "broken.jpg" in r.stderr
    ckpt = load_checkpoint(out / "model.pt")
    assert ckpt.model_id == "smoke" and ckpt.provenance["steps"] == "3"
    codec = Codec(ckpt)
    img = SourceImage(rgb=photo_like(40, 50, 9), mode=ColourMode.RGB)
    enc = codec.encode(img, 50)
    assert np.array_equal(codec.decode(enc.data).rgb, enc.rgb)
