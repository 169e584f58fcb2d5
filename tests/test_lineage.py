"""The training lineage (`aecompress lineage run / status`): which session comes next, what it
starts from, the lock, and two real sessions of a tiny model through the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY, make_images
from typer.testing import CliRunner

from aecompress import lineage
from aecompress.cli import app
from aecompress.errors import UsageError
from aecompress.modelfile import read_identity

# A recipe small enough for a few CPU steps on 64-px crops of the tiny model.
TINY_RECIPE = lineage.Recipe(
    lambda_min=TINY.lambdas[0], lambda_max=TINY.lambdas[-1], levels=TINY.levels,
    level_norm_power=0.5, batch_size=2, patch_size=64,
)  # fmt: skip


def tiny_lineage(root: Path, data: Path, valid: Path, start: Path) -> lineage.LineageConfig:
    """A lineage created as `lineage run DATA --valid VALID --start START` creates one, with
    the tiny recipe in its lineage.json."""
    config = lineage.create_or_check(root, [data], [valid], str(start))
    config.recipe = TINY_RECIPE
    (root / lineage.CONFIG_FILE).write_text(config.to_json(), encoding="utf-8")
    return config


def test_default_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(lineage.LINEAGE_ENV, str(tmp_path / "mine"))
    assert lineage.default_root() == tmp_path / "mine"
    monkeypatch.delenv(lineage.LINEAGE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert lineage.default_root() == tmp_path / "cache" / "aecompress" / "lineage"


def test_a_new_lineage_needs_data_and_keeps_it(tmp_path):
    root = tmp_path / "lin"
    with pytest.raises(UsageError, match="needs its training images"):
        lineage.create_or_check(root, [], [], None)
    data = make_images(tmp_path / "data", count=1)
    other = make_images(tmp_path / "other", count=1)
    config = lineage.create_or_check(root, [data], [], None)
    assert config.data == [str(data.resolve())]
    assert config.start == lineage.shipped_start()
    assert lineage.read_config(root) == config
    assert lineage.create_or_check(root, [], [], None) == config  # DATA may be left out
    with pytest.raises(UsageError, match="this lineage trains on"):
        lineage.create_or_check(root, [other], [], None)


def test_the_shipped_index_names_a_start_model_that_exists():
    from aecompress.registry import ModelLibrary

    start = lineage.shipped_start()
    assert ModelLibrary().encoder_model(start).is_file()


def test_sessions_go_on_from_the_last_export_or_resume_a_stopped_one(tmp_path, tiny_model_path):
    root = tmp_path / "lin"
    data = make_images(tmp_path / "data", count=1)
    config = tiny_lineage(root, data, data, tiny_model_path)

    first = lineage.plan_session(root, config, "1h", date="20261203")
    assert not first.resumes and first.folder == root / "sessions" / "0001"
    assert first.args[first.args.index("--init") + 1] == str(tiny_model_path.resolve())
    assert first.args[first.args.index("--model-id") + 1].endswith("-20261203-s0001")
    assert first.args[first.args.index("--level-norm-power") + 1] == "0.5"

    first.folder.mkdir(parents=True)
    (first.folder / "state.pt").write_bytes(b"")  # stopped before its export
    again = lineage.plan_session(root, config, "1h")
    assert again.resumes and again.folder == first.folder
    assert again.args[:3] == ["train", "--resume", str(first.folder / "state.pt")]

    (first.folder / "model.pt").write_bytes(b"")  # exported
    second = lineage.plan_session(root, config, "1h")
    assert not second.resumes and second.folder == root / "sessions" / "0002"
    assert second.args[second.args.index("--init") + 1] == str(first.folder / "model.pt")


def test_a_running_session_locks_the_lineage(tmp_path):
    root = tmp_path / "lin"
    root.mkdir()
    (root / lineage.LOCK_FILE).write_text(json.dumps({"pid": os.getpid(), "folder": "x"}))
    plan = lineage.SessionPlan(root / "sessions" / "0001", ["train"], "", False)
    with pytest.raises(UsageError, match=f"already running \\(pid {os.getpid()}"):
        lineage.launch(root, plan, threads=1, niceness=0, background=False)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (root / lineage.LOCK_FILE).write_text(json.dumps({"pid": dead.pid, "folder": "x"}))
    assert lineage.running(root) is None  # a lock left by a process that is gone


def test_run_refuses_a_bad_budget_before_anything(tmp_path):
    result = CliRunner().invoke(
        app, ["lineage", "run", "--dir", str(tmp_path / "lin"), "--time-budget", "soon"]
    )
    assert result.exit_code == 2
    assert "--time-budget" in result.output
    assert not (tmp_path / "lin").exists()


def test_status_of_a_folder_without_a_lineage(tmp_path):
    result = CliRunner().invoke(app, ["lineage", "status", "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "no lineage here" in result.output


def _aecompress(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "aecompress", *args], capture_output=True, text=True,
        env=env, timeout=300,
    )  # fmt: skip


def test_two_sessions_of_a_tiny_model(tmp_path, tiny_model_path):
    """A foreground session, then a background one that starts from its export; `status`
    lists both with their steps and validation."""
    root = tmp_path / "lin"
    data = make_images(tmp_path / "data", count=2, height=64, width=64)
    tiny_lineage(root, data, data, tiny_model_path)

    first = _aecompress("lineage", "run", "--dir", str(root), "--time-budget", "20s", "--nice", "0")
    assert first.returncode == 0, first.stderr + first.stdout
    model1 = root / "sessions" / "0001" / "model.pt"
    assert f"exported {model1}" in first.stdout
    ident = read_identity(model1)
    assert ident.model_id.endswith("-s0001")
    assert str(tiny_model_path.resolve()) in ident.provenance["init"]
    assert int(ident.provenance["steps"]) > 0

    second = _aecompress(
        "lineage", "run", "--dir", str(root), "--time-budget", "20s", "--nice", "1", "--background"
    )
    assert second.returncode == 0, second.stderr
    assert "session running as process" in second.stdout
    pid = int(second.stdout.split("process ")[1].split(";")[0])
    # Nice'd, and so is its scheduling group where Linux groups a detached session's processes.
    assert os.getpriority(os.PRIO_PROCESS, pid) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 1)
    autogroup = Path(f"/proc/{pid}/autogroup")
    if Path("/proc/sys/kernel/sched_autogroup_enabled").exists() and autogroup.exists():
        if Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1":
            assert autogroup.read_text().split()[-1] == "1"
    deadline = time.monotonic() + 240
    while lineage._alive(pid) and time.monotonic() < deadline:  # a zombie counts as gone
        time.sleep(0.5)
    model2 = root / "sessions" / "0002" / "model.pt"
    assert model2.exists(), (root / "sessions" / "0002" / lineage.SESSION_LOG).read_text()
    assert str(model1) in read_identity(model2).provenance["init"]

    status = _aecompress("lineage", "status", "--dir", str(root), "--json")
    assert status.returncode == 0, status.stderr
    rows = json.loads(status.stdout)["sessions"]
    assert [r["index"] for r in rows] == [1, 2]
    assert all(r["state"] == "exported" and r["steps"] > 0 for r in rows)
    assert [f[0] for f in rows[0]["validation"]] == [1.0, 25.0, 50.0, 75.0, 100.0]
