"""A resumed run is the run it continues: on the CPU, stopping (Ctrl-C) after 2 of 4 steps and
resuming gives bit-identical weights, optimizer state and step to 4 steps straight."""

import json
import signal

import pytest
import torch
from conftest import photo_like
from PIL import Image
from typer.testing import CliRunner

import aecompress.training.loop as loop_module
from aecompress.checkpoint import load_checkpoint
from aecompress.cli import app
from aecompress.training.state import _cpu

ARGS = ["--batch-size", "2", "--patch-size", "64", "--N", "8", "--M", "8", "--Nh", "8",
        "--warmup", "1", "--lr", "1e-2", "--lr-final", "1e-3"]  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    for i, (h, w) in enumerate([(80, 72), (64, 130), (96, 96)]):  # mixed sizes
        Image.fromarray(photo_like(h, w, i)).save(folder / f"{i}.png")
    return folder


def train_cli(*args):
    return CliRunner().invoke(app, ["train", *map(str, args)])


def assert_same_state(a, b):
    sa = torch.load(a, weights_only=True)
    sb = torch.load(b, weights_only=True)
    assert sa["step"] == sb["step"]
    assert sa["model"].keys() == sb["model"].keys()
    for k in sa["model"]:
        assert torch.equal(sa["model"][k], sb["model"][k]), k
    for pa, pb in zip(sa["optimizer"]["state"].values(), sb["optimizer"]["state"].values(),
                      strict=True):  # fmt: skip
        for k in pa:
            assert torch.equal(pa[k], pb[k]), k
    assert torch.equal(sa["torch_rng"], sb["torch_rng"])


def test_stopped_and_resumed_run_equals_straight_run(tmp_path, data, monkeypatch):
    straight = tmp_path / "straight"
    assert train_cli(data, "--out", straight, "--steps", 4, *ARGS).exit_code == 0

    original = loop_module.training_batch

    def ctrl_c_during_step_1(data, cfg, levels, step, gen, *rest):
        if step == 1:
            signal.raise_signal(signal.SIGINT)  # the loop finishes the step, saves, stops
        return original(data, cfg, levels, step, gen, *rest)

    monkeypatch.setattr(loop_module, "training_batch", ctrl_c_during_step_1)
    split = tmp_path / "split"
    r = train_cli(data, "--out", split, "--steps", 4, *ARGS)
    assert r.exit_code == 130, r.output
    assert "stopped at step 2" in r.stderr and "--resume" in r.stderr
    assert torch.load(split / "state.pt", weights_only=True)["step"] == 2
    assert not (split / "model.pt").exists()
    monkeypatch.setattr(loop_module, "training_batch", original)

    r = train_cli(data, "--out", split, "--resume", split / "state.pt")
    assert r.exit_code == 0, r.output
    assert "resuming" in r.stderr
    assert_same_state(straight / "state.pt", split / "state.pt")
    a, b = load_checkpoint(straight / "model.pt"), load_checkpoint(split / "model.pt")
    assert a.fingerprint == b.fingerprint
    assert b.provenance["steps"] == "4"
    sessions = json.loads(b.provenance["sessions"])
    assert [s["from_step"] for s in sessions] == [0, 2]
    assert b.provenance["command"] == sessions[0]["command"]
    assert "--steps 4" in sessions[0]["command"]
    assert "--resume" in sessions[1]["command"]
    assert "| 2 | cpu" in (split / "MODEL_CARD.md").read_text()
    log = (split / "train.log").read_text()
    assert "stopped at step 2" in log and "resume at step 2" in log


def test_resume_can_extend_a_finished_run(tmp_path, data):
    """--steps on --resume moves the end of the schedule; within the warm-up the learning rate
    does not depend on it, so 2 steps + 2 more equal 4 straight."""
    args = [*ARGS, "--warmup", "100"]
    straight = tmp_path / "straight"
    assert train_cli(data, "--out", straight, "--steps", 4, *args).exit_code == 0
    run = tmp_path / "run"
    assert train_cli(data, "--out", run, "--steps", 2, *args).exit_code == 0
    r = train_cli(data, "--out", run, "--resume", run / "state.pt", "--steps", 4)
    assert r.exit_code == 0, r.output
    assert "the schedule now ends at step 4" in r.stderr
    assert_same_state(straight / "state.pt", run / "state.pt")
    # Options that define the run cannot change on resume.
    r = train_cli(data, "--out", run, "--resume", run / "state.pt", "--batch-size", 4)
    assert r.exit_code == 2 and "--batch-size 4 conflicts with the resumed run" in r.stderr


def test_resume_takes_the_data_and_the_run_directory_from_the_state(tmp_path, data):
    run = tmp_path / "run"
    assert train_cli(data, "--out", run, "--steps", 2, *ARGS).exit_code == 0
    r = train_cli("--resume", run / "state.pt", "--steps", 3)  # no DATA, no --out
    assert r.exit_code == 0, r.output
    assert f"resuming {run / 'state.pt'} at step 2 of 3" in r.stderr
    assert "3 training images" in r.stderr and f"exported {run / 'model.pt'}" in r.stdout
    assert load_checkpoint(run / "model.pt").provenance["steps"] == "3"


def test_loaded_optimizer_state_takes_the_parameters_layout():
    """On CUDA the model is channels_last while state.pt holds contiguous tensors; the loaded
    Adam moments must be laid out like their parameters (fused Adam walks raw memory)."""
    from conftest import TINY

    from aecompress.model import HyperpriorModel

    model = HyperpriorModel(TINY).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters())
    loss = model(torch.rand(1, 3, 64, 64), torch.tensor([1.0])).bits_y.sum()
    loss.backward()
    opt.step()
    saved = _cpu(opt.state_dict())  # what state.pt holds: contiguous
    conv = model.g_a[0].weight
    assert saved["state"][0]["exp_avg"].stride() != conv.stride()
    fresh = torch.optim.Adam(model.parameters())
    fresh.load_state_dict(saved)
    loop_module._match_layouts(fresh)
    assert len(fresh.state) > 10
    for p in (p for p in model.parameters() if p in opt.state):
        for k in ("exp_avg", "exp_avg_sq"):
            assert fresh.state[p][k].stride() == p.stride()
            assert torch.equal(fresh.state[p][k], opt.state[p][k])
