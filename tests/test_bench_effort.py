"""`aecompress bench --effort`: one aec row per encoding effort, in the same run as the peers."""

from __future__ import annotations

import json

import pytest
import typer
from conftest import photo_like
from PIL import Image
from typer.testing import CliRunner

from aecompress.bench.options import aec_effort, aec_name, is_aec, with_efforts
from aecompress.cli.bench_command import bench as bench_command
from aecompress.effort_levels import MAX_EFFORT, Schedule
from aecompress.errors import UsageError
from aecompress.registry import MODEL_ENV


def test_aec_names_per_effort():
    assert aec_name(0) == "aec" and aec_name(4) == "aec-e4"
    assert [aec_effort(n) for n in ("aec", "aec-e4", "jpeg", "aec-ex")] == [0, 4, None, None]
    assert is_aec("aec-e9") and not is_aec("webp")
    assert with_efforts(["jpeg", "aec", "webp"], [0, 3]) == ["jpeg", "aec", "aec-e3", "webp"]
    assert with_efforts(["aec"], [2, 2]) == ["aec-e2"]
    assert with_efforts(["aec", "jpeg"], []) == ["aec", "jpeg"]
    with pytest.raises(UsageError, match="--effort applies to aec"):
        with_efforts(["jpeg"], [1])


@pytest.fixture
def run(tiny_model_path, monkeypatch):
    monkeypatch.setenv(MODEL_ENV, str(tiny_model_path))
    levels = (None,) + tuple(Schedule(descent_steps=1 + i) for i in range(MAX_EFFORT))
    monkeypatch.setattr("aecompress.effort_levels.SCHEDULES", levels)
    app = typer.Typer()
    app.command()(bench_command)
    app.command("noop")(lambda: None)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["bench", *(str(a) for a in args)])


def test_bench_measures_each_effort_as_its_own_codec(run, tmp_path):
    Image.fromarray(photo_like(64, 96, 1)).save(tmp_path / "a.png")
    out = tmp_path / "b.json"
    r = run(tmp_path / "a.png", "--codecs", "jpeg,aec", "--sweep", "jpeg=30,80",
            "--qualities", "20,90", "--effort", "0", "--effort", "2", "--json", out)  # fmt: skip
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert [c["name"] for c in doc["codecs"]] == ["jpeg", "aec", "aec-e2"]
    assert "effort 2" in doc["codecs"][2]["description"]
    assert doc["codecs"][2]["sweep"] == [20, 90]
    rows = {(p["codec"], p["quality"]) for p in doc["points"]}
    assert rows == {("jpeg", 30), ("jpeg", 80), ("aec", 20), ("aec", 90), ("aec-e2", 20),
                    ("aec-e2", 90)}  # fmt: skip
    assert {s["codec"] for s in doc["summary"]} == {"jpeg", "aec", "aec-e2"}
    assert "aec-e2" in r.stdout


def test_effort_without_aec_is_a_usage_error(run, tmp_path):
    Image.fromarray(photo_like(32, 32, 1)).save(tmp_path / "a.png")
    r = run(tmp_path / "a.png", "--codecs", "jpeg", "--effort", "2")
    assert r.exit_code == 2
    assert "--effort applies to aec" in r.output
    r = run(tmp_path / "a.png", "--effort", str(MAX_EFFORT + 1))
    assert r.exit_code == 2
