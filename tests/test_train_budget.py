"""The GPU run rehearsed on the CPU: `aecompress train --time-budget` with a tiny model stops
inside its budget with the export done, anneals to the final learning rate, runs from a source
tree that is not installed, and a run killed midway exports from its last checkpoint."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import photo_like
from PIL import Image
from typer.testing import CliRunner

from aecompress.cli import app
from aecompress.durations import Interval, format_duration, parse_duration, parse_interval
from aecompress.recipe import learning_rate
from aecompress.training.state import read_state

REPO = Path(__file__).resolve().parents[1]
TINY = ["--N", "8", "--M", "8", "--Nh", "8", "--batch-size", "2", "--patch-size", "64"]
# A budget leaves this much to the end of the command: the last step in flight, the state and
# model files, and (for a process) the interpreter's start before the package is imported.
MARGIN_S = 1.5
PROCESS_START_S = 1.0

pytestmark = pytest.mark.usefixtures("one_thread")


def make_images(folder: Path, count: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(photo_like(80, 96, i)).save(folder / f"{i}.png")
    return folder


def invoke(*args):
    return CliRunner().invoke(app, [*map(str, args)])


def last_lr(log: Path) -> float:
    lines = [ln for ln in log.read_text().splitlines() if re.search(r" step \d+ ", ln)]
    return float(re.search(r"lr (\S+)", lines[-1]).group(1))


def round_trip(model: Path, image: Path, tmp: Path) -> np.ndarray:
    """Encode and decode `image` with `model` through the CLI; the decoded pixels."""
    r = invoke("encode", image, "-o", tmp / "x.aec", "--model", model)
    assert r.exit_code == 0, r.output
    r = invoke("decode", tmp / "x.aec", "-o", tmp / "x.png", "--model", model)
    assert r.exit_code == 0, r.output
    return np.asarray(Image.open(tmp / "x.png"))


def test_a_budgeted_run_ends_inside_its_budget_exported_and_annealed(tmp_path):
    data = make_images(tmp_path / "data")
    valid = make_images(tmp_path / "valid", count=1)
    budget = 6.0
    t0 = time.monotonic()
    r = invoke(
        "train", data, "--valid", valid, "--out", tmp_path / "run", *TINY,
        "--time-budget", f"{budget:g}s", "--warmup", "5", "--log-every", "10",
    )  # fmt: skip
    wall = time.monotonic() - t0
    assert r.exit_code == 0, r.output
    assert 0.6 * budget <= wall <= budget + MARGIN_S, f"{wall:.2f} s for a {budget} s budget"
    assert re.search(r"time budget 6s: .* of training, .* kept for the export", r.stderr)
    # The export timed before training reports its stages as the final one does.
    assert "trial export: calibrating the integer scale network on 4 images (starting " in r.stderr
    assert "trial export: validating the starting weights on 1 images" in r.stderr
    assert "export: writing model.pt and MODEL_CARD.md" in r.stderr
    state = read_state(tmp_path / "run" / "state.pt")
    assert state.step > 20 and state.train_config.steps == 0  # the clock ended it
    assert state.progress == pytest.approx(1.0)
    lr_final = state.train_config.lr_final
    assert last_lr(tmp_path / "run" / "train.log") < lr_final + 0.02 * state.train_config.lr
    card = (tmp_path / "run" / "MODEL_CARD.md").read_text()
    assert "budget (export included)" in card and "it/s" in card
    decoded = round_trip(tmp_path / "run" / "model.pt", valid / "0.png", tmp_path)
    assert decoded.shape == (80, 96, 3)


def test_a_budget_too_short_for_the_export_is_a_usage_error(tmp_path):
    data = make_images(tmp_path / "data")
    r = invoke("train", data, "--out", tmp_path / "run", *TINY, "--time-budget", "0.2s")
    assert r.exit_code == 2
    assert "--time-budget 0.2s leaves" in r.stderr and "give more time" in r.stderr
    assert not (tmp_path / "run" / "model.pt").exists()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--time-budget", "7 minutes", "is not a duration"),
        ("--time-budget", "0s", "give a time above 0"),
        ("--checkpoint-every", "2.5", "give whole steps (500) or a time"),
        ("--valid-every", "5x", "give whole steps (500) or a time"),
    ],
)
def test_bad_durations_are_usage_errors(tmp_path, option, value, message):
    r = invoke("train", tmp_path, "--out", tmp_path / "run", option, value)
    assert r.exit_code == 2
    assert f"error: {option}: " in r.stderr and message in r.stderr


def _source_tree(tmp: Path) -> dict[str, str]:
    """A copy of the checkout's package and models, and an environment in which the installed
    aecompress (an editable install, say) is invisible: what the GPU machine has."""
    src = tmp / "src"
    shutil.copytree(REPO / "aecompress", src / "aecompress",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    shutil.copytree(REPO / "pretrained", src / "pretrained")
    site = tmp / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import sys\n"
        "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]\n"
        f"sys.path[:] = [p for p in sys.path if p.rstrip('/') != {str(REPO)!r}]\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "AECOMPRESS"))}
    env.update(PYTHONPATH=f"{site}{os.pathsep}{src}", PYTHONNOUSERSITE="1", OMP_NUM_THREADS="1")
    return env


def test_runs_from_a_source_tree_that_is_not_installed(tmp_path):
    env = _source_tree(tmp_path)
    src = tmp_path / "src"
    where = subprocess.run(
        [sys.executable, "-c", "import aecompress; print(aecompress.__file__)"],
        env=env, cwd=tmp_path, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert where.stdout.strip() == str(src / "aecompress" / "__init__.py")
    data = make_images(tmp_path / "data")
    budget = 8.0  # the interpreter's start and torch's import count: about 3 s on 2 cores
    t0 = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "aecompress", "train", str(data), "--out", str(tmp_path / "run"),
         *TINY, "--time-budget", f"{budget:g}s", "--device", "cpu"],
        env=env, cwd=src, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    wall = time.monotonic() - t0
    assert run.returncode == 0, run.stderr
    assert wall <= budget + PROCESS_START_S + MARGIN_S, f"{wall:.2f} s for {budget} s"
    assert "exported" in run.stdout
    state = read_state(tmp_path / "run" / "state.pt")
    assert state.run_info["sessions"][0]["command"].startswith("aecompress train ")
    assert round_trip(tmp_path / "run" / "model.pt", data / "0.png", tmp_path).shape[:2] == (80, 96)


def test_a_run_killed_midway_exports_from_its_last_checkpoint(tmp_path):
    data = make_images(tmp_path / "data")
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "aecompress", "train", str(data), "--out", str(out), *TINY,
         "--time-budget", "2m", "--checkpoint-every", "10", "--device", "cpu"],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (out / "state.pt").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        assert proc.poll() is None, "the run ended before it could be killed"
    finally:
        proc.send_signal(signal.SIGKILL)  # no handler runs: as a timeout kills a job
        proc.wait()
    assert (out / "state.pt").exists() and not (out / "model.pt").exists()
    step = read_state(out / "state.pt").step
    assert step >= 10 and step % 10 == 0
    r = invoke("train", "--export-from", out / "state.pt")  # DATA and --out from the state
    assert r.exit_code == 0, r.output
    assert f"exporting the model of {out / 'state.pt'} (step {step})" in r.stderr
    assert f"{step} steps" in r.stdout
    assert (
        f"| exported from a training state | {out / 'state.pt'} (step {step}) |"
        in (out / "MODEL_CARD.md").read_text()
    )
    assert round_trip(out / "model.pt", data / "1.png", tmp_path).shape == (80, 96, 3)
    again = invoke("train", "--export-from", out / "state.pt")
    assert again.exit_code == 2 and "model.pt exists (use --force" in again.stderr


def test_durations_and_intervals():
    assert parse_duration("7m30s") == 450 and parse_duration("1.5h") == 5400
    assert parse_duration("90") == 90 and parse_duration("2m") == 120
    assert format_duration(450) == "7m30s" and format_duration(3900) == "1h5m"
    assert format_duration(2.5) == "2.5s" and parse_duration(format_duration(7.25)) == 7.2
    for bad in ("", "7 minutes", "5m7h", "1m1m", "-3s", "inf"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert parse_interval("500") == Interval(steps=500)
    assert parse_interval("2m") == Interval(seconds=120) and str(Interval(seconds=120)) == "2m"
    assert parse_interval("0") == Interval()
    with pytest.raises(ValueError, match="whole steps"):
        parse_interval("2.5")


def test_the_schedule_holds_the_peak_then_anneals_over_the_last_part():
    peak, final = 1e-3, 1e-5
    lr = [learning_rate(100, p, peak, final, 10, anneal=0.25) for p in (0.0, 0.5, 0.75)]
    assert lr == [peak, peak, peak]
    mid = learning_rate(100, 0.875, peak, final, 10, anneal=0.25)
    assert mid == pytest.approx((peak + final) / 2)
    assert learning_rate(100, 1.0, peak, final, 10, anneal=0.25) == pytest.approx(final)
    # A run shorter than its warm-up still ends at the final rate.
    assert learning_rate(3, 1.0, peak, final, 200) == pytest.approx(final)
    assert learning_rate(3, 0.0, peak, final, 200) == pytest.approx(peak * 4 / 200)


def test_a_state_without_progress_resumes_under_a_budget_from_its_own_step_plan(tmp_path):
    """States written before the schedule's progress was saved continue from step / steps of
    their own plan, not from the budgeted run's (which has no step limit)."""
    data = make_images(tmp_path / "data")
    out = tmp_path / "run"
    r = invoke("train", data, "--out", out, *TINY, "--steps", 20, "--warmup", 2, "--lr", 1e-3)
    assert r.exit_code == 0, r.output
    state = torch.load(out / "state.pt", weights_only=False)
    state.pop("progress")
    state["train_config"]["steps"] = 200  # stopped at step 20 of a 200-step plan
    torch.save(state, out / "state.pt")
    r = invoke("train", "--resume", out / "state.pt", "--time-budget", "5s", "--log-every", 1)
    assert r.exit_code == 0, r.output
    first = next(ln for ln in (out / "train.log").read_text().splitlines()
                 if re.search(r" step 21 ", ln))  # fmt: skip
    # 10% into the plan: the rate still holds at the peak (an old fallback read 100%).
    assert float(re.search(r"lr (\S+)", first).group(1)) == pytest.approx(1e-3)


class FakeClock:
    """time.monotonic and time.perf_counter for a run whose every part costs a set time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def costs(self, seconds: float, function):
        """`function`, taking `seconds` of this clock on each call."""

        def timed(*args, **kwargs):
            self.now += seconds
            return function(*args, **kwargs)

        return timed


def fake_clock_run(tmp_path, monkeypatch, packing_s: float = 0.0):
    """A 60 s budget on a fake clock: loading 3 s, each export's calibration and measurement
    2 s each, a training step 5 s (as the default model's on two cores), writing state.pt
    0.2 s, model.pt 0.1 s; packing the images `packing_s`. Returns the clock and the run."""
    import aecompress.training.finish as finish_module
    import aecompress.training.loop as loop_module
    import aecompress.training.run as run_module
    from aecompress.config import ModelConfig, TrainConfig
    from aecompress.training.options import TrainOptions

    clock = FakeClock()
    monkeypatch.setattr(time, "monotonic", clock)
    monkeypatch.setattr(time, "perf_counter", clock)
    for module, name, seconds in [
        (run_module, "load_dataset", 3.0), (run_module, "export_trained", 2.0),
        (run_module, "validate_checkpoint", 2.0), (loop_module, "rd_loss", 5.0),
        (loop_module, "save_state", 0.2), (finish_module, "save_checkpoint", 0.1),
        (run_module, "ImageSet", packing_s),
    ]:  # fmt: skip
        monkeypatch.setattr(module, name, clock.costs(seconds, getattr(module, name)))
    opts = TrainOptions(
        data=[make_images(tmp_path / "data")], out_dir=tmp_path / "run",
        config=TrainConfig(batch_size=2, patch_size=64, warmup=1, log_every=100),
        model_config=ModelConfig(N=8, M=8, Nh=8), time_budget=60.0, started=clock.now,
    )  # fmt: skip
    return clock, opts


def test_the_budget_holds_the_whole_command_on_a_fake_clock(tmp_path, monkeypatch):
    """The accounting, whatever the machine's speed: the trial export (2 + 2 s) sets the
    room kept for the end (1 candidate × 4 s × 1.25 + 1 s for the files), so training ends by
    60 - 6 = 54 s; a step takes 5 s and none is started that would end past that, so the 9th
    ends at 3 + 4 + 9 × 5 = 52 s, and the export and files end before 60 s."""
    from aecompress.training.run import run_training

    clock, opts = fake_clock_run(tmp_path, monkeypatch)
    started = clock.now
    report = run_training(opts, note=lambda s: None, warn=lambda s: None)
    assert clock.now - started <= 60.0, f"{clock.now - started:.1f} s of a 60 s budget"
    assert report.steps == 9 == read_state(tmp_path / "run" / "state.pt").step
    assert clock.now - started == pytest.approx(3 + 4 + 9 * 5 + 0.2 + 4 + 0.1)


def test_a_run_that_trains_no_step_exports_nothing(tmp_path, monkeypatch):
    """Starved of time (here, packing the images outlasts the deadline), a run trains 0 steps:
    it says so and exports nothing, rather than an untrained model."""
    from aecompress.errors import AecError
    from aecompress.training.run import run_training

    _, opts = fake_clock_run(tmp_path, monkeypatch, packing_s=50.0)
    with pytest.raises(AecError) as e:
        run_training(opts, note=lambda s: None, warn=lambda s: None)
    assert str(e.value) == (
        "no training step fitted in the time budget: nothing was trained, so nothing is "
        f"exported ({tmp_path / 'run' / 'state.pt'} holds the starting point); give a longer "
        "--time-budget or more --steps"
    )
    assert not (tmp_path / "run" / "model.pt").exists()
    assert read_state(tmp_path / "run" / "state.pt").step == 0
