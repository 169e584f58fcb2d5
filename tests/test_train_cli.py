"""The `train` command's interface: its help (metavars, defaults, no type labels), its start-up
without torch, --quiet and --verbose, the ETA on progress lines and the export's progress.
(What training does is test_train.py; resuming and the time budget test_train_resume.py and
test_train_budget.py.)"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from aecompress.cli import app

HEAVY = ("torch", "numpy", "PIL", "constriction", "matplotlib")

# `train` alone, in a fresh interpreter: the package aecompress.cli is stubbed so that its
# __init__ (which imports every command) does not run; prints the exit code and the heavy
# modules imported. tests/test_startup.py checks the whole app.
_PROBE = """
import importlib, json, sys, types
import typer
import aecompress
cli = types.ModuleType("aecompress.cli")
cli.__path__ = [aecompress.__path__[0] + "/cli"]
sys.modules["aecompress.cli"] = cli
train = importlib.import_module("aecompress.cli.train_command").train
app = typer.Typer(rich_markup_mode=None)
app.command()(train)
app.command("other")(lambda: None)  # two commands: `train` is a subcommand, as in the app
try:
    app(args=sys.argv[1:], prog_name="aecompress")
    code = 0
except SystemExit as e:
    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
loaded = sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY))
print("\\n" + json.dumps({"code": code, "loaded": loaded}))
""".replace("HEAVY", repr(HEAVY))


def help_text() -> str:
    r = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "80"}, prog_name="aecompress")
    assert r.exit_code == 0, r.output
    return r.stdout


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["train", "--help"], 0),
        (["train", "x", "--out", "run", "--time-budget", "soon"], 2),
        (["train", "x", "--out", "run", "--checkpoint-every", "2.5"], 2),
        (["train", "x", "--out", "run", "--device", "tpu"], 2),
    ],
)
def test_train_answers_help_and_usage_errors_without_heavy_imports(args, code, tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, cwd=tmp_path,
        timeout=120,
    )  # fmt: skip
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] == code, done.stderr
    assert result["loaded"] == [], f"{args} imported {result['loaded']}"


def test_help_names_every_value_and_shows_defaults():
    text = help_text()
    assert not re.search(r"<[A-Za-z][^>]*>", text), "a type label such as <int range> is shown"
    flat = " ".join(text.split())  # defaults may wrap onto the next line
    assert "Usage: aecompress train [OPTIONS] [DATA]..." in flat
    metavars = {"--out": "DIR", "--steps": "N", "--batch-size": "N", "--lr": "LR",
                "--seed": "SEED", "--time-budget": "TIME", "--valid": "PATH", "--resume": "FILE",
                "--model-id": "ID"}  # fmt: skip
    for option, metavar in metavars.items():
        assert f"{option} {metavar} " in flat, option
    assert "Random crops per step. [default: 8;" in flat
    assert "[default: 20000;" in flat and "[default: 5m]" in flat and "[default: 2m]" in flat
