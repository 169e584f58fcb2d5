"""`aecompress train` on the CPU with tiny models: the checkpoint it exports encodes and decodes,
validation through the real codec reaches the provenance and the model card, --init fine-tunes
from a shipped model, bad options fail in one line; and the training pieces (on-device crops,
the mixed-precision forward) behave."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import TINY, photo_like
from PIL import Image
from typer.testing import CliRunner

import aecompress.train as train_module
from aecompress.checkpoint import load_checkpoint
from aecompress.cli import app
from aecompress.codec import Codec
from aecompress.imageio import SourceImage
from aecompress.model import HyperpriorModel
from aecompress.modes import ColourMode
from aecompress.train import ImageSet, _model_with, rd_loss, read_init, read_state
from aecompress.validate import VALID_QUALITIES

TINY_ARGS = ["--batch-size", "2", "--patch-size", "64", "--N", "8", "--M", "8", "--Nh", "8"]
OLD_STATE_KEYS = {"model_config", "train_config", "model", "optimizer", "step", "python_rng",
                  "torch_rng"}  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_thread")


def make_images(folder, count=3, height=80, width=72, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(photo_like(height, width, seed + i)).save(folder / f"{i}.png")
    return folder


def train_cli(*args):
    return CliRunner().invoke(app, ["train", *map(str, args)])


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
    enc = codec.encode(img, 50)
    assert np.array_equal(codec.decode(enc.data).rgb, enc.rgb)
    # The run directory: a resumable state in the format the export path reads, a log, a card.
    state = torch.load(out / "state.pt", weights_only=True)
    assert OLD_STATE_KEYS <= state.keys() and state["step"] == 3
    config, weights, _ = read_init(out / "state.pt")
    assert isinstance(_model_with(config, weights), HyperpriorModel)
    assert "step 3/3" in (out / "train.log").read_text()
    card = (out / "MODEL_CARD.md").read_text()
    assert "# smoke" in card and ckpt.provenance["command"] in card


def test_validation_reaches_provenance_and_card(tmp_path, monkeypatch):
    data = make_images(tmp_path / "data")
    valid = make_images(tmp_path / "valid", count=2, height=70, width=90, seed=7)
    out = tmp_path / "run"
    real = train_module.validate_checkpoint

    def final_is_worse(ckpt, images, qualities=VALID_QUALITIES, device="cpu", step=0):
        result = real(ckpt, images, qualities, device, step)
        if step == 4:  # make the final weights lose to the best periodic ones (step 2)
            worse = tuple(replace(f, rd=f.rd + 1e6) for f in result.figures)
            result = replace(result, figures=worse)
        return result

    monkeypatch.setattr(train_module, "validate_checkpoint", final_is_worse)
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


def test_old_state_files_still_load_and_resume(tmp_path):
    """A state.pt with only the keys of the first version (no format, data, CUDA RNG, ...)."""
    data = make_images(tmp_path / "data")
    out = tmp_path / "run"
    assert train_cli(data, "--out", out, "--steps", 2, *TINY_ARGS).exit_code == 0
    state = torch.load(out / "state.pt", weights_only=True)
    old = {k: state[k] for k in OLD_STATE_KEYS}
    old["python_rng"] = __import__("random").Random(0).getstate()
    torch.save(old, tmp_path / "old.pt")
    assert read_state(tmp_path / "old.pt").step == 2
    _model_with(*read_init(tmp_path / "old.pt")[:2])
    r = train_cli(data, "--out", tmp_path / "run2", "--steps", 3, "--resume", tmp_path / "old.pt")
    assert r.exit_code == 0, r.output
    assert load_checkpoint(tmp_path / "run2" / "model.pt").provenance["steps"] == "3"


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


def test_crops_are_crops_of_the_images_with_flips():
    # Images of different sizes whose pixels encode (image, channel, row, column).
    sizes = [(3, 5), (4, 4), (6, 3)]
    images = []
    for k, (h, w) in enumerate(sizes):
        c, r, q = np.meshgrid(np.arange(3), np.arange(h), np.arange(w), indexing="ij")
        images.append(torch.from_numpy((k * 64 + c * 20 + r * 4 + q).astype(np.uint8)))
    data = ImageSet(images)
    gen = torch.Generator().manual_seed(1)
    batch = data.crops(64, 3, gen)
    assert batch.shape == (64, 3, 3, 3) and batch.dtype == torch.uint8
    seen = set()
    for crop in batch:
        k = int(crop[0, 0, 0]) // 64
        im = images[k]
        h, w = sizes[k]
        found = [
            (top, left, fv, fh)
            for top in range(h - 2)
            for left in range(w - 2)
            for fv in (False, True)
            for fh in (False, True)
            if torch.equal(
                crop,
                im[:, top : top + 3, left : left + 3]
                .flip([2] * fh + [1] * fv if fh or fv else [])
                .contiguous(),
            )
        ]
        assert found, crop
        seen.add((k, *found[0][2:]))
    assert {k for k, *_ in seen} == {0, 1, 2}  # every image, both flips, drawn
    assert {(fv, fh) for _, fv, fh in seen} == {(a, b) for a in (0, 1) for b in (0, 1)}


def test_mixed_forward_matches_the_model_and_keeps_rates_float32():
    torch.manual_seed(0)
    model = HyperpriorModel(TINY)
    x = torch.rand(2, 3, 64, 64)
    position = torch.tensor([0.3, 1.7])
    torch.manual_seed(1)
    ref = model(x, position)
    torch.manual_seed(1)
    same = model(x, position, inner_dtype=None)
    for a, b in ((ref.x_hat, same.x_hat), (ref.bits_y, same.bits_y), (ref.bits_z, same.bits_z)):
        assert torch.equal(a, b)
    torch.manual_seed(1)
    bf = model(x, position, inner_dtype=torch.bfloat16)
    assert bf.x_hat.dtype == bf.bits_y.dtype == bf.bits_z.dtype == torch.float32
    assert torch.allclose(bf.bits_z, ref.bits_z, rtol=0.05)
    torch.manual_seed(1)
    loss, bpp, psnr = rd_loss(model, x, position, torch.bfloat16)
    loss.backward()
    assert torch.isfinite(loss) and all(
        p.grad is not None and torch.isfinite(p.grad).all() for p in model.g_a.parameters()
    )
    # The cached lambdas give the loss model.lambdas gives.
    log_l = torch.log(torch.tensor(TINY.lambdas)).unsqueeze(1)
    torch.manual_seed(1)
    a = rd_loss(model, x, position)[0]
    torch.manual_seed(1)
    b = rd_loss(model, x, position, log_lambdas=log_l)[0]
    assert torch.equal(a, b)
