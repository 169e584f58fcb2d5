"""`aecompress train` on the CPU with tiny models: the checkpoint it exports encodes and decodes,
validation through the real codec reaches the provenance and the model card, --init fine-tunes
from a shipped model, bad options fail in one line. (The training modules' own tests are
test_training_*.py; resuming and the time budget are test_train_resume.py and
test_train_budget.py.)"""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import OLD_STATE_KEYS, TINY, TINY_ARGS, make_images, photo_like, train_cli

import aecompress.training.run as run_module
from aecompress.checkpoint import load_checkpoint
from aecompress.codec import Codec
from aecompress.imagefile import decode_image, encode_image
from aecompress.imageio import SourceImage
from aecompress.model import HyperpriorModel
from aecompress.modes import ColourMode
from aecompress.training.state import model_from_weights, read_init
from aecompress.validate import VALID_QUALITIES

pytestmark = pytest.mark.usefixtures("one_thread")


def test_train_smoke(tmp_path):
    data = make_images(tmp_path / "data" / "nested")
    (data / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "run"
    r = train_cli(tmp_path / "data", "--out", out, "--steps", 3, *TINY_ARGS, "--model-id", "smoke")
    assert r.exit_code == 0, r.output
    assert "skipping" in r.stderr and "broken.jpg" in r.stderr
    assert "training on cpu" in r.stderr
    ckpt = load_checkpoint(out / "model.pt")
    assert ckpt.model_id == "smoke" and ckpt.provenance["steps"] == "3"
    assert ckpt.provenance["command"].startswith("aecompress train")
    assert json.loads(ckpt.provenance["data"])[0]["images"] == 3
    codec = Codec(ckpt)
    img = SourceImage(rgb=photo_like(40, 50, 9), mode=ColourMode.RGB)
    enc = encode_image(codec, img, 50)
    assert np.array_equal(decode_image(codec, enc.data).rgb, enc.rgb)
    # The run directory: a resumable state in the format the export path reads, a log, a card.
    state = torch.load(out / "state.pt", weights_only=True)
    assert OLD_STATE_KEYS <= state.keys() and state["step"] == 3
    config, weights, _ = read_init(out / "state.pt")
    assert isinstance(model_from_weights(config, weights), HyperpriorModel)
    assert "step 3/3" in (out / "train.log").read_text()
    card = (out / "MODEL_CARD.md").read_text()
    assert "# smoke" in card and ckpt.provenance["command"] in card


def test_validation_reaches_provenance_and_card(tmp_path, monkeypatch):
    data = make_images(tmp_path / "data")
    valid = make_images(tmp_path / "valid", count=2, height=70, width=90, seed=7)
    out = tmp_path / "run"
    real = run_module.validate_checkpoint

    def final_is_worse(ckpt, images, qualities=VALID_QUALITIES, device="cpu", step=0):
        result = real(ckpt, images, qualities, device, step)
        if step == 4:  # make the final weights lose to the best periodic ones (step 2)
            worse = tuple(replace(f, rd=f.rd + 1e6) for f in result.figures)
            result = replace(result, figures=worse)
        return result

    monkeypatch.setattr(run_module, "validate_checkpoint", final_is_worse)
    r = train_cli(data, "--out", out, "--steps", 4, *TINY_ARGS, "--valid", valid,
                  "--valid-every", 2)  # fmt: skip
    assert r.exit_code == 0, r.output
    log = (out / "train.log").read_text()
    assert "validation step 2:" in log and "final validation step" in log
    assert (out / "best.pt").is_file()
    ckpt = load_checkpoint(out / "model.pt")
    val = json.loads(ckpt.provenance["validation"])
    assert [f["quality"] for f in val["figures"]] == list(VALID_QUALITIES)
    assert val["images"] == 2 and val["step"] == 2
    assert ckpt.provenance["selected_step"] == "2" and ckpt.provenance["steps"] == "4"
    assert "weights of step 2" in r.stdout
    assert all(f["bpp"] > 0 and 0 < f["psnr"] <= 100 for f in val["figures"])
    card = (out / "MODEL_CARD.md").read_text()
    assert "## Validation" in card and "4 (weights from step 2)" in card
    for f in val["figures"]:
        assert f"| {f['quality']:g} | {f['bpp']:.4f} | {f['psnr']:.2f} |" in card
    assert "validation (real files)" in r.stdout


def test_init_from_shipped_checkpoint(tmp_path, tiny_model_path):
    data = make_images(tmp_path / "data")
    out = tmp_path / "run"
    args = ["--steps", 2, "--batch-size", 2, "--patch-size", 64, "--init", tiny_model_path]
    r = train_cli(data, "--out", out, *args)
    assert r.exit_code == 0, r.output
    ckpt = load_checkpoint(out / "model.pt")
    assert ckpt.config == TINY  # the model's own config, not the CLI defaults
    assert str(tiny_model_path) in ckpt.provenance["init"]
    assert "tiny-test" in (out / "MODEL_CARD.md").read_text()
    # An explicit size that contradicts the model is a usage error.
    r = train_cli(data, "--out", tmp_path / "run2", *args, "--N", 32)
    assert r.exit_code == 2 and "--N 32 conflicts" in r.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--patch-size", "96"], 2, "--patch-size must be a multiple of 64"),
        (["--valid", "{tmp}/nowhere"], 1, "nowhere: no such file or directory"),
        (["--resume", "{tmp}/a.pt", "--init", "{tmp}/b.pt"], 2, "exclude each other"),
        (["--resume", "{tmp}/data/0.png"], 1, "not a readable training state"),
    ],
)
def test_bad_options(tmp_path, args, code, message):
    data = make_images(tmp_path / "data", count=1)
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    r = train_cli(data, "--out", tmp_path / "run", "--steps", 1, "--patch-size", 64, *args)
    assert r.exit_code == code, r.output
    assert message in r.stderr and len(r.stderr.strip().splitlines()) <= 3
    assert "Traceback" not in r.output


def test_missing_data_and_cuda(tmp_path):
    r = train_cli(tmp_path / "missing", "--out", tmp_path / "run")
    assert r.exit_code == 1 and "missing: no such file or directory" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    if not torch.cuda.is_available():
        make_images(tmp_path / "data", count=1)
        r = train_cli(tmp_path / "data", "--out", tmp_path / "run", "--device", "cuda")
        assert r.exit_code == 1 and "no CUDA device" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def test_existing_run_needs_resume_or_force(tmp_path):
    data = make_images(tmp_path / "data", count=1)
    out = tmp_path / "run"
    assert train_cli(data, "--out", out, "--steps", 1, *TINY_ARGS).exit_code == 0
    r = train_cli(data, "--out", out, "--steps", 1, *TINY_ARGS)
    assert r.exit_code == 2 and "--resume" in r.stderr and "--force" in r.stderr
    assert train_cli(data, "--out", out, "--steps", 1, *TINY_ARGS, "--force").exit_code == 0
