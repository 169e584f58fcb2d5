"""Seconds of `encode --effort N` per image, in-process, with and without bfloat16 hardware.

The refinement's backward passes run in bfloat16 where the CPU has it in hardware (AMX or
AVX-512 BF16; aecompress/synthesis_gradient.py) and in float32 elsewhere. This times both on
the same machine: `--no-bf16` makes the CPU look as if it had neither, which is exactly what
`encode` does on such a CPU. Each (effort, quality) is encoded `--repeat` times after a warm-up;
the minimum is kept, then averaged over the qualities. The file's coding is included, the
report's synthesis and PSNR are not (as `aecompress bench` times an encode).

    python3 benchmarks/effort_timing.py ../shared/data/kodak/kodim23.png \\
        --model aec-hp-n128-gpu-2026.12b --efforts 0,1,2,3,4 --threads 2 --json out.json
    python3 benchmarks/effort_timing.py ... --no-bf16
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aecompress import synthesis_gradient  # noqa: E402
from aecompress.checkpoint import load_checkpoint  # noqa: E402
from aecompress.codec import Codec  # noqa: E402
from aecompress.effort import encode_with_effort  # noqa: E402
from aecompress.registry import ModelLibrary  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("image", type=Path)
    ap.add_argument("--model", default=None, help="model id or file (default: the default)")
    ap.add_argument("--efforts", default="0,1,2,3,4")
    ap.add_argument("--qualities", default="25,75")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-bf16", action="store_true", help="time the float32 backward")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.no_bf16:
        synthesis_gradient.torch.cpu._is_amx_tile_supported = lambda: False
        synthesis_gradient.torch.cpu._is_avx512_bf16_supported = lambda: False
    dtype = synthesis_gradient.fast_gradient_dtype(torch.device("cpu"))
    codec = Codec(load_checkpoint(ModelLibrary().encoder_model(args.model)))
    rgb = np.asarray(Image.open(args.image).convert("RGB"))
    efforts = [int(e) for e in args.efforts.split(",")]
    qualities = [float(q) for q in args.qualities.split(",")]
    rows = []
    for effort in efforts:
        per_quality = []
        for q in qualities:
            encode_with_effort(codec, rgb, q, effort, reconstruct=False)  # warm-up
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                encode_with_effort(codec, rgb, q, effort, reconstruct=False)
                times.append(time.perf_counter() - t0)
            per_quality.append(min(times))
        rows.append({"effort": effort, "seconds": float(np.mean(per_quality))})
    base = rows[0]["seconds"] if efforts[0] == 0 else None
    print(f"{codec.checkpoint.model_id} on {_processor()}, "
          f"{args.threads} threads, backward in {str(dtype).removeprefix('torch.')}")  # fmt: skip
    for row in rows:
        ratio = f"{row['seconds'] / base:6.1f}×" if base else ""
        print(f"effort {row['effort']}: {row['seconds']:.3f} s {ratio}")
    if args.json:
        doc = {
            "model": codec.checkpoint.model_id,
            "image": args.image.name,
            "qualities": qualities,
            "threads": args.threads,
            "gradient_dtype": str(dtype).removeprefix("torch."),
            "processor": _processor(),
            "torch": torch.__version__,
            "rows": rows,
        }
        args.json.write_text(json.dumps(doc, indent=1) + "\n")


def _processor() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
