"""What a command costs, process to process: the commands that should answer at once
(--version, --help, `info`, `models`, a usage error), and a one-image `encode` and `decode`,
each a fresh `python -m aecompress` process timed from start to exit (the median of several
runs); whether torch was imported (from `python -X importtime`); and where the one-image
commands' time goes.

    python3 benchmarks/startup.py --runs 7 --work-runs 5 --json benchmarks/startup.json \
        --markdown benchmarks/startup.md

The stage breakdown runs the same command through a probe (`_PROBE`): a fresh interpreter that
imports the command line, then the library, then runs the command with a clock around the
functions that do each part (found by name, so that one script times older checkouts too), and
a clock around every import made while the command runs. Stages are exclusive (an import made
while the model loads counts as an import); "command: the rest" is the command's time outside
every clocked part (argument checks, finding the model, printing the report); "exit" is from
the command's return to the end of the process (interpreter shutdown).

--image picks the image (default: Kodak's kodim23 from ../shared/data); --encode-arg passes an
option to encode (repeatable: --encode-arg=-e --encode-arg=0); --no-metrics-too also times
`encode --no-metrics`; --no-decode and --no-quick leave those parts out (a 12-megapixel encode
takes minutes). Run it from the checkout to measure (PYTHONPATH is set to it); --label names the
build in the results, so that two builds can be compared in one table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KODAK_IMAGE = ROOT.parent / "shared" / "data" / "kodak" / "kodim23.png"

# Parts of a one-image command, in the order they happen: stage -> the functions (module,
# name) whose time is counted in it, the nested ones taken out.
STAGE_FUNCTIONS = {
    "model: file read (torch.load)": [("aecompress.checkpoint", "read_torch_file")],
    "model: build": [("aecompress.checkpoint", "load_checkpoint")],
    "model: inference copies": [("aecompress.codec", "Codec.__init__")],
    "read input": [
        ("aecompress.operations", "_load_source_image"),
        ("aecompress.inputs", "read_input"),
    ],
    "encode: transforms, coding": [("aecompress.operations", "encode_start")],
    "decode: decoding": [("aecompress.operations", "decode_start")],
    "report: PSNR, MS-SSIM": [
        ("aecompress.metrics", "measure"),
        ("aecompress.metrics", "ms_ssim"),
        ("aecompress.metrics", "psnr"),
    ],
    "image: restore, encode PNG": [
        ("aecompress.imagefile", "restore_image"),
        ("aecompress.imagefile", "save_image"),
    ],
    "write output": [("aecompress.outputs", "emit")],
}
STAGES = (
    "python start",
    "import: command line",
    "import: library (torch, numpy, Pillow)",
    *STAGE_FUNCTIONS,
    "imports while running",
    "command: the rest",
    "exit",
)

# Runs the CLI in a fresh interpreter with clocks around STAGE_FUNCTIONS and around imports;
# writes {"stamps": {...}, "stages": {...}, "code": exit code} as JSON to the file named by
# the first argument. time.monotonic is the same clock in every process, so the parent can
# time the interpreter's start and exit around it.
_PROBE = r"""
import time
started = time.monotonic()
import importlib, json, sys
out, args = sys.argv[1], sys.argv[2:]
stamps = {"started": started}
from aecompress.cli import app
stamps["cli"] = time.monotonic()
import aecompress.operations
stamps["library"] = time.monotonic()

totals, stack = {}, []


def clocked(stage, fn):
    def run(*a, **k):
        t0 = time.monotonic()
        stack.append(0.0)
        try:
            return fn(*a, **k)
        finally:
            inner = stack.pop()
            spent = time.monotonic() - t0
            totals[stage] = totals.get(stage, 0.0) + spent - inner
            if stack:
                stack[-1] += spent
    run.__wrapped__ = fn
    return run


def patch(stage, module, name):
    try:
        owner = importlib.import_module(module)
    except ImportError:
        return
    if "." in name:  # a method
        cls_name, attr = name.split(".")
        cls = getattr(owner, cls_name, None)
        if cls is not None and attr in vars(cls):
            setattr(cls, attr, clocked(stage, vars(cls)[attr]))
        return
    fn = getattr(owner, name, None)
    if fn is None:
        return
    wrapped = clocked(stage, fn)
    for mod in list(sys.modules.values()):  # every module that imported it by name
        if getattr(mod, "__name__", "").startswith("aecompress"):
            if getattr(mod, name, None) is fn:
                setattr(mod, name, wrapped)


for stage, functions in STAGE_FUNCTIONS.items():
    for module, name in functions:
        patch(stage, module, name)

import importlib._bootstrap as bootstrap
bootstrap._find_and_load = clocked("imports while running", bootstrap._find_and_load)
code = 0
stamps["command"] = time.monotonic()
try:
    app(args=args, prog_name="aecompress")
except SystemExit as e:
    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
stamps["done"] = time.monotonic()
with open(out, "w") as f:
    json.dump({"stamps": stamps, "stages": totals, "code": code}, f)
"""


def make_aec(folder: Path, env: dict) -> Path:
    """A small .aec file written by the shipped default model (via the CLI)."""
    from PIL import Image

    src = folder / "probe.png"
    Image.new("RGB", (64, 64), (120, 80, 40)).save(src)
    subprocess.run(
        [sys.executable, "-m", "aecompress", "encode", str(src), "-q", "50"],
        env=env,
        check=True,
        capture_output=True,
    )
    return folder / "probe.aec"


def measure(args: list[str], env: dict, runs: int) -> dict:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "aecompress", *args], env=env, capture_output=True
        )
        times.append(time.perf_counter() - t0)
    trace = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "aecompress", *args],
        env=env,
        capture_output=True,
        text=True,
    )
    imported = {line.split("|")[-1].strip() for line in trace.stderr.splitlines() if "|" in line}
    return {
        "command": "aecompress " + " ".join(args),
        "exit_code": done.returncode,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "imports_torch": "torch" in imported,
    }


def probed_run(args: list[str], env: dict, folder: Path) -> tuple[float, dict[str, float], int]:
    """One run of `aecompress ARGS` through the probe: wall seconds, seconds per stage, and the
    exit code."""
    out = folder / "probe-result.json"
    probe = _PROBE.replace("STAGE_FUNCTIONS", repr(STAGE_FUNCTIONS), 1)
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", probe, str(out), *args], env=env, capture_output=True, text=True
    )
    end = time.monotonic()
    if not out.is_file():
        raise RuntimeError(f"the probe failed: {done.stderr.strip()[-2000:]}")
    result = json.loads(out.read_text())
    out.unlink()
    s, stages = result["stamps"], dict(result["stages"])
    clocked = sum(stages.values())
    stages["python start"] = s["started"] - t0
    stages["import: command line"] = s["cli"] - s["started"]
    stages["import: library (torch, numpy, Pillow)"] = s["library"] - s["cli"]
    stages["command: the rest"] = s["done"] - s["command"] - clocked
    stages["exit"] = end - s["done"]
    return end - t0, stages, result["code"]


def measure_work(name: str, args: list[str], env: dict, runs: int, folder: Path) -> dict:
    """`runs` probed runs of one command: the median wall time, and each stage's median."""
    walls, per_stage, code = [], {}, 0
    for _ in range(runs):
        wall, stages, code = probed_run(args, env, folder)
        walls.append(wall)
        for stage, seconds in stages.items():
            per_stage.setdefault(stage, []).append(seconds)
    return {
        "command": name,
        "exit_code": code,
        "median_s": statistics.median(walls),
        "min_s": min(walls),
        "stages_s": {k: statistics.median(per_stage.get(k, [0.0])) for k in STAGES},
    }


def work_commands(a: argparse.Namespace, folder: Path) -> list[tuple[str, list[str]]]:
    """(shown name, arguments) of each one-image command, with its input in `folder`."""
    image = folder / ("input" + a.image.suffix)
    shutil.copyfile(a.image, image)
    extra = list(a.encode_arg)
    shown = " ".join([a.image.name, *extra])
    commands = [(f"aecompress encode {shown}", ["encode", str(image), "-f", *extra])]
    if a.no_metrics_too:
        commands.append(
            (
                f"aecompress encode {shown} --no-metrics",
                ["encode", str(image), "-f", "--no-metrics", *extra],
            )
        )
    if not a.no_decode:
        aec = image.with_suffix(".aec")
        commands.append((f"aecompress decode {a.image.stem}.aec", ["decode", str(aec), "-f"]))
    return commands


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7, help="runs of each quick command")
    ap.add_argument("--work-runs", type=int, default=5, help="runs of each one-image command")
    ap.add_argument("--image", type=Path, default=KODAK_IMAGE)
    ap.add_argument("--encode-arg", action="append", default=[], metavar="ARG")
    ap.add_argument("--no-metrics-too", action="store_true")
    ap.add_argument("--no-decode", action="store_true")
    ap.add_argument("--no-quick", action="store_true")
    ap.add_argument("--label", default="this build")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--markdown", type=Path)
    a = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rows, work = [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if not a.no_quick:
            aec = make_aec(folder, env)
            commands = [
                ["--version"],
                ["--help"],
                ["encode", "--help"],
                ["info", str(aec)],
                ["models"],
                ["encode", str(aec), "--device", "foo"],
            ]
            rows = [measure(c, env, a.runs) for c in commands]
            for r in rows:
                r["command"] = r["command"].replace(str(aec), "probe.aec")
        if a.work_runs:
            work = [
                measure_work(name, args, env, a.work_runs, folder)
                for name, args in work_commands(a, folder)
            ]
    from PIL import Image

    with Image.open(a.image) as im:
        size = f"{im.width}x{im.height}"
    result = {
        "label": a.label,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
        "runs": a.runs,
        "rows": rows,
        "work_runs": a.work_runs,
        "image": f"{a.image.name} ({size})",
        "work": work,
    }
    lines = [
        f"Start-up ({a.label}; {result['machine']}, Python {result['python']})",
        "",
    ]
    if rows:
        lines += [
            f"Quick commands, median of {a.runs} runs:",
            "",
            "| command | exit | median s | min s | imports torch |",
            "| --- | ---: | ---: | ---: | --- |",
        ]
        for r in rows:
            lines.append(
                f"| `{r['command']}` | {r['exit_code']} | {r['median_s']:.2f} | "
                f"{r['min_s']:.2f} | {'yes' if r['imports_torch'] else 'no'} |"
            )
        lines.append("")
    if work:
        lines += [
            f"One image, {result['image']}, median of {a.work_runs} runs (seconds):",
            "",
            "| | " + " | ".join(f"`{w['command']}`" for w in work) + " |",
            "| --- |" + " ---: |" * len(work),
            "| **whole command** | "
            + " | ".join(f"**{w['median_s']:.2f}** (min {w['min_s']:.2f})" for w in work)
            + " |",
        ]
        for stage in STAGES:
            values = [w["stages_s"][stage] for w in work]
            if any(v >= 0.0005 for v in values):
                lines.append(f"| {stage} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
        lines.append("")
    print("\n".join(lines))
    if a.json:
        a.json.write_text(json.dumps(result, indent=2) + "\n")
    if a.markdown:
        a.markdown.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
