"""`aecompress train` under torchrun: two CPU processes (gloo) over the loopback rendezvous, the
code path of a multi-machine run. The processes' weights agree after every step, process 0
alone logs and exports a model that encodes and decodes, two processes with a batch of 2b
train the model one process trains with 2b, a failing process brings the run down with one line
each (a usage error every process has: one line in all), and Ctrl-C on the launcher leaves a
state that resumes exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from conftest import make_images
from typer.testing import CliRunner

from aecompress.cli import app
from aecompress.errors import AecError
from aecompress.training.data import CropNoise, ImageSet, training_batch
from aecompress.training.distributed import BatchPart, Coordinator, launched
from aecompress.training.options import TrainOptions, TrainUsageError
from aecompress.training.run import _run, run_training

WORKER = Path(__file__).with_name("distributed_worker.py")
REPO = Path(__file__).resolve().parents[1]
# A tiny model, 4 crops per step in all, and a learning rate at which the weights move.
ARGS = ["--batch-size", "4", "--patch-size", "64", "--N", "8", "--M", "8", "--Nh", "8",
        "--warmup", "0", "--lr", "1e-3", "--lr-final", "1e-4", "--log-every", "1",
        "--model-id", "aec-ddp-test"]  # fmt: skip

needs_gloo = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="torch without gloo"
)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_images(tmp_path_factory.mktemp("data"), count=3, height=96, width=80)


def torchrun(*args, env=None, **popen):
    """Start `aecompress train` (the test worker) in 2 CPU processes on a loopback rendezvous."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
        "--rdzv-backend", "c10d", "--rdzv-endpoint", "127.0.0.1:0", "--max-restarts", "0",
        str(WORKER), "train", *map(str, args),
    ]  # fmt: skip
    full_env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.Popen(
        command, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen
    )


def finish(proc, timeout=120):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def max_difference(a: Path, b: Path) -> tuple[float, float]:
    """The largest weight difference between two state.pt files, and the largest weight."""
    sa = torch.load(a, weights_only=True)["model"]
    sb = torch.load(b, weights_only=True)["model"]
    assert sa.keys() == sb.keys()
    diff = max((sa[k] - sb[k]).abs().max().item() for k in sa)
    return diff, max(sa[k].abs().max().item() for k in sa)


@needs_gloo
def test_two_processes_train_what_one_does(tmp_path, data):
    digests = tmp_path / "digests"
    digests.mkdir()
    valid = make_images(tmp_path / "valid", count=1, height=64, width=64, seed=7)
    two = tmp_path / "two"
    proc = torchrun(
        data, "--out", two, "--steps", 4, "--valid", valid, "--valid-every", 2, *ARGS,
        env={"AEC_TEST_DIGESTS": str(digests)},
    )  # fmt: skip
    code, out, err = finish(proc)
    assert code == 0, err

    # The weights of the two processes agree after every step, and they move.
    rank0 = json.loads((digests / "rank-0.json").read_text())
    rank1 = json.loads((digests / "rank-1.json").read_text())
    assert len(rank0) == 4 and rank0 == rank1
    assert len(set(rank0)) == 4

    # Process 0 alone logs, validates and exports.
    assert out.count("exported ") == 1 and "aec-ddp-test" in out
    assert err.count("2 processes (torchrun), one device each: 4 crops per step in all, "
                     "2 per process") == 1  # fmt: skip
    log = (two / "train.log").read_text()
    assert log.count(" start: ") == 1 and log.count("step 4/4") == 1
    assert log.count("Z validation ") == 1 and "Z validation step 2:" in log
    card = (two / "MODEL_CARD.md").read_text()
    assert "| processes | 2 (torchrun), on one device each |" in card
    assert "4 random crops of 64² px, all eight flips and rotations; 2 per process" in card

    # The exported model encodes and decodes.
    image = make_images(tmp_path / "image", count=1, height=40, width=56, seed=3) / "0.png"
    runner = CliRunner()
    r = runner.invoke(app, ["encode", str(image), "-o", str(tmp_path / "x.aec"),
                            "--model", str(two / "model.pt")])  # fmt: skip
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["decode", str(tmp_path / "x.aec"), "-o", str(tmp_path / "x.png"),
                            "--model", str(two / "model.pt")])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert (tmp_path / "x.png").stat().st_size > 0

    # One process with the same global batch trains the same model, to float rounding (the
    # gradient is a mean of two means instead of one mean of four crops). Over many steps Adam
    # can turn the rounding of a gradient near 0 into a step of up to the learning rate (seen
    # in GDN's gamma after 20 steps); in these 4 the weights agree to about 1e-7.
    one = tmp_path / "one"
    r = runner.invoke(app, ["train", str(data), "--out", str(one), "--steps", "4",
                            "--valid", str(valid), "--valid-every", "2", *ARGS])  # fmt: skip
    assert r.exit_code == 0, r.output
    diff, largest = max_difference(one / "state.pt", two / "state.pt")
    assert diff < 1e-5 * largest, (diff, largest)
    log_one = [line.split(" ", 1)[1] for line in (one / "train.log").read_text().splitlines()]
    log_two = [line.split(" ", 1)[1] for line in log.splitlines()]
    losses = [line.split("  lr")[0] for line in log_one if line.startswith("step ")]
    assert losses == [line.split("  lr")[0] for line in log_two if line.startswith("step ")]


@needs_gloo
def test_a_failing_process_stops_the_run_with_one_line_each(tmp_path, data):
    t0 = time.monotonic()
    proc = torchrun(data, "--out", tmp_path / "run", "--steps", 50, *ARGS,
                    env={"AEC_TEST_FAIL": "1:3"})  # fmt: skip
    code, out, err = finish(proc)
    assert code != 0
    assert time.monotonic() - t0 < 60  # no hang
    ours = [line for line in err.splitlines() if line.startswith("error:")]
    assert "error: process 1 of 2: injected failure" in ours
    lost = [line for line in ours if line.startswith("error: process 0 of 2: lost the other")]
    assert len(ours) == 2 and len(lost) == 1, err
    assert "[rank" not in err  # no traceback from a training process


@needs_gloo
def test_a_process_that_fails_to_load_stops_the_others_with_one_line_each(tmp_path, data):
    proc = torchrun(data, "--out", tmp_path / "run", "--steps", 2, *ARGS,
                    env={"AEC_TEST_FAIL": "1:load"})  # fmt: skip
    code, out, err = finish(proc)
    assert code != 0
    ours = [line for line in err.splitlines() if line.startswith("error:")]
    assert sorted(ours) == [
        "error: process 0 of 2: stopped, as 1 other process(es) failed while loading the data "
        "(their own messages say why)",
        "error: process 1 of 2: injected failure while loading",
    ], err


@needs_gloo
def test_a_usage_error_of_every_process_is_said_once(tmp_path, data):
    proc = torchrun(data, "--out", tmp_path / "run", "--steps", 2, *ARGS, "--batch-size", 3)
    code, out, err = finish(proc)
    assert code != 0
    ours = [line for line in err.splitlines() if line.startswith("error:")]
    assert ours == [
        "error: process 0 of 2: --batch-size 3 is the batch of all 2 processes together: give "
        "a multiple of 2"
    ], err
    assert not (tmp_path / "run").exists()


@needs_gloo
def test_ctrl_c_on_the_launcher_leaves_a_state_that_resumes_exactly(tmp_path, data):
    run = tmp_path / "run"
    proc = torchrun(data, "--out", run, "--steps", 100000, *ARGS, start_new_session=True)
    log = run / "train.log"
    deadline = time.monotonic() + 60
    while not (log.exists() and "step 3/" in log.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline, finish(proc)
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGINT)  # the launcher alone, as Ctrl-C in its terminal
    code, out, err = finish(proc, timeout=60)
    assert code != 0
    state = torch.load(run / "state.pt", weights_only=True)
    stopped = state["step"]
    assert stopped >= 3
    assert f"stopped at step {stopped}: {run / 'state.pt'} saved; continue with --resume" in err
    assert f"stopped at step {stopped};" in log.read_text()
    assert not (run / "model.pt").exists()

    # Resumed by torchrun, two steps further: the run one process makes straight.
    proc = torchrun("--resume", run / "state.pt", "--steps", stopped + 2)
    code, out, err = finish(proc)
    assert code == 0, err
    straight = tmp_path / "straight"
    r = CliRunner().invoke(
        app, ["train", str(data), "--out", str(straight), "--steps", str(stopped + 2), *ARGS]
    )
    assert r.exit_code == 0, r.output
    diff, largest = max_difference(straight / "state.pt", run / "state.pt")
    assert diff < 1e-5 * largest, (diff, largest)


def test_the_processes_split_the_batch_one_process_draws(data):
    """The rows of each process are those rows of the whole batch, crops, positions and noise."""
    from aecompress.config import TrainConfig

    cfg = TrainConfig(batch_size=6, patch_size=64)
    images = ImageSet([torch.randint(0, 256, (3, 96, 80), dtype=torch.uint8) for _ in range(3)])
    gen = torch.Generator()
    whole_noise = CropNoise("cpu")
    x, position = training_batch(images, cfg, 5, 7, gen, BatchPart(), whole_noise)
    like = torch.zeros(6, 2, 3, 3)
    noise = whole_noise(like)
    for index in range(3):
        part = BatchPart(index, 3)
        part_noise = CropNoise("cpu")
        xp, pp = training_batch(images, cfg, 5, 7, gen, part, part_noise)
        rows = part.rows(6)
        assert torch.equal(xp, x[rows]) and torch.equal(pp, position[rows])
        assert torch.equal(part_noise(like[rows]), noise[rows])
    assert not torch.equal(noise[0], noise[1])  # each crop its own stream


def test_launched_reads_the_torchrun_environment(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert launched() is None
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert launched() is None
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert launched() == (3, 4, 1)
    monkeypatch.delenv("RANK")
    with pytest.raises(AecError, match="WORLD_SIZE=4 but RANK"):
        launched()


def test_export_from_refuses_torchrun(monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    opts = TrainOptions(data=[], out_dir=None, config=None, model_config=None,
                        export_from=tmp_path / "state.pt")  # fmt: skip
    with pytest.raises(TrainUsageError, match="--export-from runs in one process"):
        run_training(opts)


def test_the_batch_must_split_over_the_processes(tmp_path, data):
    from aecompress.config import ModelConfig, TrainConfig

    class Three(Coordinator):
        world = 3

    opts = TrainOptions(data=[data], out_dir=tmp_path / "run", model_config=ModelConfig(),
                        config=TrainConfig(batch_size=4, steps=1))  # fmt: skip
    with pytest.raises(TrainUsageError, match="--batch-size 4 is the batch of all 3 processes "
                       "together: give a multiple of 3"):  # fmt: skip
        _run(opts, set(), 0.0, Three(), None, None, print, print, print)
    assert not (tmp_path / "run").exists()
