"""The `train` command's interface: its help (metavars, defaults, no type labels), its start-up
without torch, --quiet and --verbose, the ETA on progress lines and the export's progress.
(What training does is test_train.py; resuming and the time budget test_train_resume.py and
test_train_budget.py.)"""

from __future__ import annotations

import io
import re
from dataclasses import replace

import pytest
from conftest import TINY_ARGS, make_images, train_cli
from rich.console import Console
from typer.testing import CliRunner

import aecompress.training.run as run_module
from aecompress.cli import app
from aecompress.cli.train_progress import ConsoleReporter
from aecompress.config import ModelConfig, TrainConfig
from aecompress.durations import parse_duration
from aecompress.training.options import TrainOptions
from aecompress.training.progress import Reporter, StepStats, estimate_seconds_left
from aecompress.training.run import run_training


def help_text() -> str:
    r = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "80"}, prog_name="aecompress")
    assert r.exit_code == 0, r.output
    return r.stdout


def test_help_names_every_value_and_shows_defaults():
    text = help_text()
    assert not re.search(r"<[A-Za-z][^>]*>", text), "a type label such as <int range> is shown"
    flat = " ".join(text.split())  # defaults may wrap onto the next line
    assert "Usage: aecompress train [OPTIONS] [DATA...]" in flat
    metavars = {"--out": "DIR", "--steps": "N", "--batch-size": "N", "--lr": "LR",
                "--seed": "SEED", "--time-budget": "TIME", "--valid": "PATH", "--resume": "FILE",
                "--model-id": "ID"}  # fmt: skip
    for option, metavar in metavars.items():
        assert f"{option} {metavar} " in flat, option
    assert "Random crops per step, in all: under torchrun each process trains on" in flat
    assert "the run is the same, to float rounding, whatever their number. [default: 8;" in flat
    assert "[default: 20000;" in flat and "[default: 5m]" in flat and "[default: 2m]" in flat
    assert "--quiet Print nothing but errors" in flat and "-v, --verbose Also print" in flat


def test_the_time_left_comes_from_the_first_limit_to_end_the_run():
    # 200 of 1000 steps at 4 it/s: 200 s; a deadline or the training time may come sooner.
    assert estimate_seconds_left(800, 1000, 4.0) == 50.0
    assert estimate_seconds_left(800, 1000, 4.0, deadline_left=30.0) == 30.0
    assert estimate_seconds_left(800, 1000, 4.0, deadline_left=90.0, train_left=20.0) == 20.0
    assert estimate_seconds_left(10, 0, 4.0, deadline_left=75.5) == 75.5  # no step limit
    assert estimate_seconds_left(10, 0, 4.0, deadline_left=-2.0) == 0.0  # past the deadline
    assert estimate_seconds_left(10, 1000, 0.0) is None  # no rate yet, no clock


def test_a_log_line_ends_with_its_eta():
    stats = StepStats(step=550, loss=1.5, bpp=0.5, psnr=30.0, steps_per_s=2.0, total=1450,
                      seconds_left=450.0)  # fmt: skip
    assert stats.line().startswith("step 550/1450  loss 1.5000")
    assert stats.line().endswith("clipped 0  ETA 7m30s")
    assert "ETA" not in replace(stats, seconds_left=None).line()
    assert replace(stats, seconds_left=4.25).line().endswith("ETA 4.2s")


@pytest.mark.usefixtures("one_thread")
def test_plain_progress_lines_show_the_eta_toward_the_step_limit(tmp_path):
    data = make_images(tmp_path / "data")
    r = train_cli(data, "--out", tmp_path / "run", "--steps", 6, "--log-every", 2, *TINY_ARGS)
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("step ")]
    assert [ln.split()[1] for ln in lines] == ["2/6", "4/6", "6/6"]
    for line in lines:
        step, rate = int(line.split()[1].split("/")[0]), float(line.split(" it/s")[0].split()[-1])
        eta = re.search(r"  ETA (\S+)$", line)
        assert eta, line
        # The steps left at the window's rate (printed to 2 decimals, the ETA to 0.1 s).
        assert parse_duration(eta.group(1)) == pytest.approx((6 - step) / rate, abs=0.06)
    assert lines[-1].endswith("ETA 0s")
    assert "ETA" in (tmp_path / "run" / "train.log").read_text()


def test_the_live_bar_counts_down_the_eta_of_the_last_log_step():
    file = io.StringIO()
    console = Console(file=file, force_terminal=True, width=200)
    reporter = ConsoleReporter(console)
    reporter.start(0, 2000)
    reporter.stats(StepStats(step=100, loss=1.0, bpp=0.5, psnr=30.0, steps_per_s=5.0,
                             total=2000, seconds_left=380.0))  # fmt: skip
    reporter.stop()  # draws the bar a last time
    assert re.search(r"ETA 6m(19|20)s", file.getvalue()), file.getvalue()


class Recorder(Reporter):
    """Keeps the export stages a run reports."""

    def __init__(self):
        self.stages: list[tuple[str, int, int]] = []
        self.ends = 0

    def export_stage(self, text: str, done: int, total: int) -> None:
        self.stages.append((text, done, total))

    def export_end(self) -> None:
        self.ends += 1


@pytest.mark.usefixtures("one_thread")
def test_the_export_reports_each_stage_with_its_count(tmp_path, monkeypatch):
    data = make_images(tmp_path / "data")
    valid = make_images(tmp_path / "valid", count=2, seed=5)
    real = run_module.validate_checkpoint

    def final_is_worse(ckpt, images, qualities, device="cpu", step=0):
        result = real(ckpt, images, qualities, device, step)
        if step == 4:  # the best periodic validation's weights (step 2) become a candidate
            result = replace(result, figures=tuple(replace(f, rd=f.rd + 1e6)
                                                   for f in result.figures))  # fmt: skip
        return result

    monkeypatch.setattr(run_module, "validate_checkpoint", final_is_worse)
    opts = TrainOptions(
        data=[data], out_dir=tmp_path / "run", valid=[valid],
        config=TrainConfig(steps=4, batch_size=2, patch_size=64, log_every=2, valid_every=2,
                           valid_seconds=0),
        model_config=ModelConfig(N=8, M=8, Nh=8),
    )  # fmt: skip
    recorder, details = Recorder(), []
    run_training(opts, reporter=recorder, note=lambda s: None, detail=details.append)
    calibrating = "export: calibrating the integer scale network on 3 images ({} weights)"
    validating = "export: validating the {} weights on 2 images at 5 qualities"
    assert recorder.stages == [
        (calibrating.format("average"), 0, 5),
        (validating.format("average"), 1, 5),
        (calibrating.format("last"), 2, 5),
        (validating.format("last"), 3, 5),
        (calibrating.format("step 2"), 4, 7),  # tried once the others validated worse
        (validating.format("step 2"), 5, 7),
        ("export: writing model.pt and MODEL_CARD.md", 6, 7),
    ]
    assert recorder.ends == 1
    # --verbose's details: where the data were found, each candidate's validation.
    assert any(d.startswith(f"training data {data.resolve()}: 3 usable of 3") for d in details)
    assert f"validation data {valid.resolve()}: 2 images" in details
    assert any(d.startswith("export: average weights: validation step 4:") for d in details)


def test_plain_output_has_a_line_per_export_stage_and_the_terminal_a_bar():
    plain, tty = io.StringIO(), io.StringIO()
    for file, terminal in ((plain, False), (tty, True)):
        reporter = ConsoleReporter(Console(file=file, force_terminal=terminal, width=120))
        reporter.export_stage("export: calibrating the integer scale network", 0, 3)
        reporter.export_stage("export: validating the average weights", 1, 3)
        reporter.export_end()
    assert plain.getvalue().splitlines() == [
        "export: calibrating the integer scale network",
        "export: validating the average weights",
    ]
    assert "export: validating the average weights" in tty.getvalue() and "1/3" in tty.getvalue()


@pytest.mark.usefixtures("one_thread")
def test_quiet_prints_nothing_but_errors_and_verbose_tells_more(tmp_path):
    data = make_images(tmp_path / "data")
    (data / "broken.jpg").write_bytes(b"not a jpeg")  # a warning, without --quiet
    valid = make_images(tmp_path / "valid", count=1, seed=5)
    args = ["--steps", 2, "--log-every", 1, "--valid", valid, *TINY_ARGS]
    r = train_cli(data, "--out", tmp_path / "quiet", *args, "--quiet")
    assert r.exit_code == 0, r.output
    assert r.stdout == "" and r.stderr == ""
    assert (tmp_path / "quiet" / "model.pt").is_file()
    r = train_cli(data, "--out", tmp_path / "quiet", *args, "--quiet")  # the run exists
    assert r.exit_code == 2 and r.stderr.startswith("error: ") and r.stdout == ""

    plain = train_cli(data, "--out", tmp_path / "plain", *args)
    verbose = train_cli(data, "--out", tmp_path / "verbose", *args, "-v")
    assert plain.exit_code == verbose.exit_code == 0, plain.output + verbose.output
    assert "skipping" in plain.stderr and "exported" in plain.stdout
    extra = set(verbose.stderr.splitlines()) - set(plain.stderr.splitlines())
    assert f"training data {data.resolve()}: 3 usable of 4 image files" in extra
    assert f"validation data {valid.resolve()}: 1 images" in extra
    assert any(line.startswith("export: average weights: validation step 2:") for line in extra)


def test_on_a_terminal_quiet_draws_nothing_and_verbose_keeps_the_log_lines():
    stats = StepStats(step=50, loss=1.0, bpp=0.5, psnr=30.0, steps_per_s=5.0, total=100,
                      seconds_left=10.0)  # fmt: skip
    shown = {}
    for name, kwargs in [("quiet", {"quiet": True}), ("plain", {}), ("verbose", {"verbose": True})]:
        file = io.StringIO()
        reporter = ConsoleReporter(
            Console(file=file, force_terminal=True, width=200, highlight=False), **kwargs
        )
        reporter.start(0, 100)
        reporter.stats(stats)
        reporter.message("validation step 50: ...")
        reporter.stop()
        reporter.export_stage("export: writing model.pt and MODEL_CARD.md", 0, 1)
        reporter.export_end()
        shown[name] = file.getvalue()
    assert shown["quiet"] == ""
    assert stats.line() not in shown["plain"] and "validation step 50" in shown["plain"]
    assert stats.line() in shown["verbose"]
