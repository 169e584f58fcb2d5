"""Step rate of `aecompress train` in one process against several (torchrun,
DistributedDataParallel), at the same global batch.

Each arm runs the real command for a number of steps on the same images (no validation) and
reports the steady rate: the median of the log windows of train.log after the first (which holds
the start: the first allocations, the process group, cudnn's search). On the CPU, one process
gets all the threads and P processes get threads/P each (torchrun's default is 1).

    python3 benchmarks/process_scaling.py ../shared/data/train --images 32 --markdown out.md
    python3 benchmarks/process_scaling.py DATA --device cuda --processes 1 --processes 8 \
        --model 128,192,128 --batch-size 128 --patch-size 256

The images are the first --images of DATA, copied to a temporary folder (loading is not timed,
but a smaller folder starts faster).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from aecompress.bench.machine import machine_info

REPO = Path(__file__).resolve().parents[1]
RATE = re.compile(r" step (\d+)(?:/\d+)? .* ([0-9.]+) it/s  ([0-9.]+) MP/s")


@dataclass
class Arm:
    model: str  # N,M,Nh, or "default"
    processes: int
    threads: int  # torch threads per process (CPU)
    steps_per_s: float  # median of the log windows after the first
    megapixels_per_s: float
    windows: list[float]
    command: str


def run_arm(
    data: Path, model: str | None, processes: int, threads: int, args: argparse.Namespace
) -> Arm:
    out = Path(tempfile.mkdtemp(prefix="aec-scaling-"))
    train = [
        str(data), "--out", str(out / "run"), "--steps", str(args.steps),
        "--log-every", str(args.log_every), "--valid-every", "0",
        "--batch-size", str(args.batch_size), "--patch-size", str(args.patch_size),
        "--device", args.device,
    ]  # fmt: skip
    if model:
        n, m, nh = model.split(",")
        train += ["--N", n, "--M", m, "--Nh", nh]
    if processes == 1:
        command = [sys.executable, "-m", "aecompress", "train", *train]
    else:
        command = [
            sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(processes),
            "-m", "aecompress", "train", *train,
        ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"{shlex.join(command)} failed:\n{done.stderr[-2000:]}")
        rates = [
            (float(m.group(2)), float(m.group(3)))
            for m in map(RATE.search, (out / "run" / "train.log").read_text().splitlines())
            if m
        ]
    finally:
        shutil.rmtree(out, ignore_errors=True)
    steady = rates[1:] or rates
    shown = shlex.join(["python3", *command[1:]])
    shown = shown.replace(str(data), "DATA").replace(str(out / "run"), "OUT")
    return Arm(
        model or "default", processes, threads, statistics.median(r for r, _ in steady),
        statistics.median(mp for _, mp in steady), [r for r, _ in rates],
        f"OMP_NUM_THREADS={threads} {shown}",
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="training images (a folder)")
    parser.add_argument("--images", type=int, default=32, help="how many of them to use")
    parser.add_argument("--processes", type=int, action="append", help="repeatable (1, 2)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="CPU threads in all, shared by the processes")  # fmt: skip
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--log-every", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8, help="in all (the global batch)")
    parser.add_argument("--patch-size", type=int, default=128)
    parser.add_argument("--model", action="append", help="N,M,Nh, repeatable (default: train's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    counts = args.processes or [1, 2]

    folder = Path(tempfile.mkdtemp(prefix="aec-scaling-data-"))
    try:
        files = sorted(p for p in args.data.iterdir() if p.suffix.lower() in
                       {".png", ".jpg", ".jpeg", ".webp"})[: args.images]  # fmt: skip
        for f in files:
            shutil.copy(f, folder / f.name)
        arms = []
        for model in args.model or [None]:
            for p in counts:
                arm = run_arm(folder, model, p, max(1, args.threads // p), args)
                print(
                    f"{arm.model}: {p} process(es) × {arm.threads} thread(s): "
                    f"{arm.steps_per_s:.2f} it/s, "
                    f"{arm.megapixels_per_s:.2f} MP/s (windows {arm.windows})",
                    flush=True,
                )
                arms.append(arm)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    info = machine_info()
    machine = f"{info.processor}, {info.cpu_count} cores"
    setup = (
        f"{len(files)} images of {args.data.name}, "
        f"batch {args.batch_size} in all, {args.patch_size}² crops, {args.steps} steps, "
        f"log windows of {args.log_every}, device {args.device}"
    )
    if args.json:
        payload = {"machine": machine, "setup": setup, "arms": [asdict(a) for a in arms]}
        args.json.write_text(json.dumps(payload, indent=1) + "\n")
    if args.markdown:
        lines = [
            "# Step rate: one process against several (torchrun)", "",
            f"`python3 benchmarks/process_scaling.py {' '.join(sys.argv[1:])}`", "",
            f"Machine: {machine}. {setup}. Rate: the median of the log windows after the "
            "first.", "",
            "| model N,M,Nh | processes | threads each | it/s | MP/s | vs 1 process |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]  # fmt: skip
        for a in arms:
            base = next(b.steps_per_s for b in arms if b.model == a.model)
            lines.append(
                f"| {a.model} | {a.processes} | {a.threads} | {a.steps_per_s:.2f} | "
                f"{a.megapixels_per_s:.2f} | ×{a.steps_per_s / base:.2f} |"
            )
        lines += ["", "Commands (DATA: the copied images):", ""]
        lines += [f"- `{a.command}`" for a in arms]
        args.markdown.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
