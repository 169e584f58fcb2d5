"""`aecompress bench` alone answers --help and its usage errors without torch, numpy, Pillow,
constriction or matplotlib (tests/test_startup.py checks the same through the whole CLI, whose
other command modules are imported with it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "numpy", "PIL", "constriction", "matplotlib")
ROOT = Path(__file__).resolve().parents[1]

# A fresh interpreter that imports the bench command without aecompress/cli/__init__.py (and so
# without the other commands), runs it as the CLI does and prints the exit code and the heavy
# modules imported by then.
_PROBE = """
import json, sys, types
import aecompress
cli = types.ModuleType("aecompress.cli")
cli.__path__ = [aecompress.__path__[0] + "/cli"]
sys.modules["aecompress.cli"] = cli
import typer
from aecompress.cli.bench_command import bench
app = typer.Typer(add_completion=False, rich_markup_mode=None)
app.command()(bench)
app.command("noop")(lambda: None)
try:
    app(args=sys.argv[1:], prog_name="aecompress")
    code = 0
except SystemExit as e:
    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
loaded = sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY))
print("\\n" + json.dumps({"code": code, "loaded": loaded}))
""".replace("HEAVY", repr(HEAVY))


def probe(*args: str, cwd: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["stderr"] = done.stderr
    return result


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["bench", "--help"], 0),
        (["bench", "x.png", "--codecs", "nosuchcodec"], 2),
        (["bench", "x.png", "--qualities", "0,50"], 2),
        (["bench", "x.png", "--sweep", "jpeg=abc"], 2),
        (["bench", "x.png", "--reference", "foo"], 2),
        (["bench", "x.png", "--quiet", "--verbose"], 2),
        (["bench", "x.png", "--workers", "0"], 2),
    ],
)
def test_bench_help_and_usage_errors_import_nothing_heavy(args, code, tmp_path):
    result = probe(*args, cwd=tmp_path)
    assert result["code"] == code, result["stderr"]
    assert result["loaded"] == [], f"{args} imported {result['loaded']}"


def test_the_bench_package_names_are_light_and_agree_with_the_peers():
    from aecompress.bench import options, peers

    assert options.PEER_NAMES == tuple(peers.PEERS)
    assert options.RATIO_SWEPT == {n for n, p in peers.PEERS.items() if p.sweep_unit == "ratio"}


def test_the_package_still_exports_the_measuring_parts():
    import aecompress.bench as bench
    from aecompress.bench import runner, tables

    assert bench.run_bench is runner.run_bench and bench.curve_table is tables.curve_table
    assert set(bench.__all__) <= set(dir(bench)) | set(bench._LAZY)
    with pytest.raises(AttributeError):
        bench.no_such_name  # noqa: B018
