"""Wall time of the commands that should answer at once: --version, --help, `info`, `models`, and
a usage error, each a fresh `python -m aecompress` process (the median of several runs), plus
whether torch was imported (from `python -X importtime`).

    python3 benchmarks/startup.py --runs 7 --json benchmarks/startup.json \
        --markdown benchmarks/startup.md

Run it from the checkout to measure (PYTHONPATH is set to it); --label names the build in the
results, so that two builds can be compared in one table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--label", default="this build")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--markdown", type=Path)
    a = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        aec = make_aec(Path(tmp), env)
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
    result = {
        "label": a.label,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
        "runs": a.runs,
        "rows": rows,
    }
    lines = [
        f"Start-up ({a.label}; {result['machine']}, Python {result['python']}, median of "
        f"{a.runs} runs)",
        "",
        "| command | exit | median s | min s | imports torch |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        lines.append(
            f"| `{r['command']}` | {r['exit_code']} | {r['median_s']:.2f} | {r['min_s']:.2f} | "
            f"{'yes' if r['imports_torch'] else 'no'} |"
        )
    print("\n".join(lines))
    if a.json:
        a.json.write_text(json.dumps(result, indent=2) + "\n")
    if a.markdown:
        a.markdown.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
