"""Training speed of `aecompress train`'s loop: steps/s and megapixels/s per configuration.

Each arm runs the real training loop (`aecompress.training.loop.train`: on-device crops, the
loss, the optimizer, the weight average; no validation) for a fixed wall time on the same images,
after a few untimed warm-up steps of the same arm (the CUDA context, cudnn's kernel search and
the allocator's first allocations, which take seconds on a GPU), and reports the steady rate:
the median of the log windows after the first, and on CUDA the peak memory.

    python3 benchmarks/train_speed.py --seconds 20 --json speed.json --markdown speed.md
    python3 benchmarks/train_speed.py --device cuda --arm 128,192,128,16,256,fp32 \
        --arm 128,192,128,16,256,bf16 --data ../shared/data/train-extra

An arm is N,M,Nh,batch,patch,precision (fp32 or bf16). Without --data the images are
generated (smooth noise at 512×384), which costs the loop the same as photos.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from aecompress.config import ModelConfig, TrainConfig
from aecompress.device import describe, resolve_device
from aecompress.training.data import ImageSet, load_dataset
from aecompress.training.loop import Reporter, StepStats, train

DEFAULT_ARMS = ("64,160,64,8,128,fp32", "128,192,128,8,128,fp32", "128,192,128,16,256,fp32")
WARMUP_STEPS = 5  # untimed steps of each arm before its timed run


@dataclass(frozen=True)
class Arm:
    N: int
    M: int
    Nh: int
    batch: int
    patch: int
    precision: str

    @classmethod
    def parse(cls, text: str) -> Arm:
        *ints, precision = text.split(",")
        if precision not in ("fp32", "bf16") or len(ints) != 5:
            raise SystemExit(f"--arm {text}: give N,M,Nh,batch,patch,fp32|bf16")
        return cls(*map(int, ints), precision)

    def __str__(self) -> str:
        return f"N={self.N} M={self.M} Nh={self.Nh}, {self.batch}×{self.patch}², {self.precision}"


def synthetic_images(count: int, seed: int = 0) -> list[torch.Tensor]:
    """Smooth random 384×512 RGB images (3×H×W uint8)."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        coarse = rng.random((3, 24, 32)).astype(np.float32)
        up = torch.nn.functional.interpolate(
            torch.from_numpy(coarse)[None], size=(384, 512), mode="bicubic", align_corners=False
        )[0]
        noise = torch.from_numpy(rng.normal(0, 0.03, (3, 384, 512)).astype(np.float32))
        images.append(((up + noise).clamp(0, 1) * 255).round().to(torch.uint8))
    return images


class Windows(Reporter):
    """Keeps the loop's log windows (the figures `train` logs every log_every steps)."""

    def __init__(self) -> None:
        self.seen: list[StepStats] = []

    def stats(self, stats: StepStats) -> None:
        self.seen.append(stats)


def measure(arm: Arm, data: ImageSet, device: torch.device, seconds: float) -> dict:
    cfg = replace(
        TrainConfig(), steps=0, train_seconds=seconds, batch_size=arm.batch,
        patch_size=arm.patch, log_every=25 if device.type == "cpu" else 100,
        checkpoint_every=0, checkpoint_seconds=0, valid_every=0,
    )  # fmt: skip
    model_config = ModelConfig(N=arm.N, M=arm.M, Nh=arm.Nh)
    bf16 = arm.precision == "bf16"
    with tempfile.TemporaryDirectory() as out:
        # Untimed: the same model, crops and precision for a few steps, so that the timed run
        # starts with the CUDA context made, cudnn's kernels chosen for these shapes and the
        # allocator's pool grown (the first arm once measured 1 step in 15 s without it).
        warmup = replace(cfg, steps=WARMUP_STEPS, train_seconds=0, log_every=WARMUP_STEPS)
        train(data, Path(out) / "warmup", model_config, warmup, device=device, bf16=bf16)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        windows = Windows()
        t0 = time.perf_counter()
        result = train(
            data, Path(out) / "run", model_config, cfg, reporter=windows, device=device,
            bf16=bf16,
        )  # fmt: skip
        wall = time.perf_counter() - t0
    steady = [w.steps_per_s for w in windows.seen[1:-1]] or [result.steps_per_s]
    rate = statistics.median(steady)
    row = {
        "arm": str(arm),
        "N": arm.N, "M": arm.M, "Nh": arm.Nh, "batch": arm.batch, "patch": arm.patch,
        "precision": arm.precision,
        "steps": result.step,
        "seconds": round(wall, 1),
        "steps_per_s": round(rate, 2),
        "megapixels_per_s": round(rate * arm.batch * arm.patch**2 / 1e6, 2),
        "mean_steps_per_s": round(result.steps_per_s, 2),
    }  # fmt: skip
    if device.type == "cuda":
        row["peak_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return row


def markdown(rows: list[dict], machine: str, command: str) -> str:
    lines = [
        "# Training speed",
        "",
        f"Machine: {machine}. Command: `{command}`",
        "",
        "Steady rate: median of the log windows after the first; mean: all steps over all "
        "training time, start-up included.",
        "",
        "| model | batch × crop | precision | it/s | MP/s | mean it/s | steps | peak GiB |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| N={r['N']} M={r['M']} Nh={r['Nh']} | {r['batch']} × {r['patch']}² | "
            f"{r['precision']} | {r['steps_per_s']:.2f} | {r['megapixels_per_s']:.2f} | "
            f"{r['mean_steps_per_s']:.2f} | {r['steps']} | {r.get('peak_gib', '–')} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arm", action="append", help="N,M,Nh,batch,patch,fp32|bf16")
    parser.add_argument("--seconds", type=float, default=20.0, help="per arm")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's)")
    parser.add_argument("--data", type=Path, nargs="*", help="image folders (default: generated)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    arms = [Arm.parse(a) for a in (args.arm or DEFAULT_ARMS)]
    device = resolve_device(args.device)
    if args.data:
        images, _ = load_dataset(args.data, max(a.patch for a in arms))
    else:
        images = synthetic_images(64)
    data = ImageSet(images, device)
    machine = f"{describe(device)}, {platform.machine()}, torch {torch.__version__}"
    command = shlex.join(["python3", "benchmarks/train_speed.py", *sys.argv[1:]])
    rows = []
    for arm in arms:
        row = measure(arm, data, device, args.seconds)
        rows.append(row)
        print(
            f"{arm}: {row['steps_per_s']:.2f} it/s, {row['megapixels_per_s']:.2f} MP/s "
            f"({row['steps']} steps)",
            flush=True,
        )
    if args.json:
        args.json.write_text(
            json.dumps({"machine": machine, "command": command, "rows": rows}, indent=2) + "\n"
        )
    if args.markdown:
        args.markdown.write_text(markdown(rows, machine, command))


if __name__ == "__main__":
    main()
