"""A/B of latent-refinement schedules (aecompress/refine.py) on `valid/` crops: what chose the
effort levels of `encode --effort` (benchmarks/effort.md).

For each arm (a `Schedule`, written as field=value pairs) every image is coded at each quality
twice, plainly and refined; the encoder's rule keeps the refined file only where its true cost
(λ·255²·MSE of the uint8 reconstruction + the streams' bpp) is lower, as `encode` does. Reported
per arm: BD-rate of the kept files against the plain ones (mean bpp and PSNR per quality over
the images), seconds of refinement per image and quality, and how often the refined file won.

    python3 benchmarks/effort_ab.py pretrained/aec-hp-n128-gpu-2026.12b.pt \\
        --arm descent_steps=4 --arm descent_steps=4,descent_step=0.02 --arm steps=30,lr=0.01 \\
        --images ../shared/data/valid --count 4 --crop 256x320 --threads 1

Choose on `valid/`, never on Kodak.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aecompress.bench.bdrate import bd_rate  # noqa: E402
from aecompress.checkpoint import load_checkpoint  # noqa: E402
from aecompress.codec import Codec, pad_to_multiple  # noqa: E402
from aecompress.effort import true_cost  # noqa: E402
from aecompress.effort_levels import Schedule  # noqa: E402
from aecompress.metrics import psnr  # noqa: E402
from aecompress.refine import Refiner  # noqa: E402


def parse_arm(text: str) -> Schedule:
    """'descent_steps=4,descent_step=0.02' → Schedule(descent_steps=4, descent_step=0.02)."""
    types = {f.name: f.type for f in dataclasses.fields(Schedule)}
    values = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        if name not in types:
            raise SystemExit(f"unknown Schedule field {name!r} (fields: {', '.join(types)})")
        values[name] = int(value) if types[name] in ("int", int) else float(value)
    return Schedule(**values)


def load_crops(folder: Path, count: int, crop: tuple[int, int]) -> list[tuple[str, np.ndarray]]:
    """Every 6th PNG of the folder (a spread over its sources), the top-left crop of each."""
    paths = sorted(folder.glob("*.png"))[::6][:count]
    crops = []
    for p in paths:
        rgb = np.asarray(Image.open(p).convert("RGB"))
        crops.append((p.name, rgb[: crop[0], : crop[1]].copy()))
    return crops


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="model file")
    ap.add_argument("--arm", action="append", required=True, help="Schedule fields, a=1,b=2")
    ap.add_argument("--images", type=Path, default=ROOT.parent / "shared" / "data" / "valid")
    ap.add_argument("--count", type=int, default=4)
    ap.add_argument("--crop", default="256x320", help="HxW")
    ap.add_argument("--qualities", default="10,40,70,100")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--gradient-dtype",
        choices=["auto", "float32", "bfloat16"],
        default="auto",
        help="precision of g_s's Jᵀ products (auto: as encode chooses)",
    )
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    checkpoint = load_checkpoint(args.model)
    codec = Codec(checkpoint)
    arms = [parse_arm(a) for a in args.arm]
    dtype = None if args.gradient_dtype == "auto" else getattr(torch, args.gradient_dtype)
    refiner = Refiner(codec, gradient_dtype=dtype)
    qualities = [float(q) for q in args.qualities.split(",")]
    crop = tuple(int(v) for v in args.crop.lower().split("x"))
    images = load_crops(args.images, args.count, crop)

    plain: dict[float, list[tuple[float, float]]] = {q: [] for q in qualities}
    kept = [{q: [] for q in qualities} for _ in arms]
    seconds = [[] for _ in arms]
    wins = [[] for _ in arms]
    for name, rgb in images:
        x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
        x = pad_to_multiple(x).contiguous(memory_format=codec.memory_format)
        y_raw = codec.analyse(rgb)
        pixels = rgb.shape[0] * rgb.shape[1]
        for q in qualities:
            base = codec.encode_analysed(y_raw, q, rgb.shape[:2])
            base_point = ((len(base.z) + len(base.y)) * 8 / pixels, psnr(rgb, base.rgb))
            plain[q].append(base_point)
            base_cost = true_cost(codec, rgb, base)
            with torch.no_grad():
                y = checkpoint.model.apply_gain(y_raw.clone(), q)
            for i, arm in enumerate(arms):
                t0 = time.perf_counter()
                r = refiner.refine(x, rgb.shape[:2], y, q, arm)
                seconds[i].append(time.perf_counter() - t0)
                enc = codec.encode_latents(r.y, r.z, q, rgb.shape[:2])
                won = true_cost(codec, rgb, enc) < base_cost
                wins[i].append(won)
                point = ((len(enc.z) + len(enc.y)) * 8 / pixels, psnr(rgb, enc.rgb))
                kept[i][q].append(point if won else base_point)
        print(f"{name} done", file=sys.stderr, flush=True)

    def curve(points):
        return ([float(np.mean([p[0] for p in points[q]])) for q in qualities],
                [float(np.mean([p[1] for p in points[q]])) for q in qualities])  # fmt: skip

    bpp0, psnr0 = curve(plain)
    rows = []
    print(f"{'arm':<60} {'BD-rate':>8} {'s/refine':>9} {'won':>5}")
    for arm, k, s, w in zip(arms, kept, seconds, wins, strict=True):
        bpp, db = curve(k)
        row = {
            "arm": dataclasses.asdict(arm),
            "bd_rate": bd_rate(bpp0, psnr0, bpp, db),
            "seconds": float(np.mean(s)),
            "won": float(np.mean(w)),
            "bpp": bpp,
            "psnr": db,
        }
        rows.append(row)
        shown = ",".join(f"{k}={v}" for k, v in dataclasses.asdict(arm).items()
                         if v != getattr(Schedule(), k))  # fmt: skip
        print(f"{shown:<60} {row['bd_rate']:>7.2f}% {row['seconds']:>8.2f}s {row['won']:>5.2f}")
    if args.json:
        doc = {"model": checkpoint.model_id, "images": [n for n, _ in images], "crop": crop,
               "qualities": qualities, "threads": args.threads,
               "gradient_dtype": str(refiner.synthesis.dtype).removeprefix("torch."),
               "plain": {"bpp": bpp0, "psnr": psnr0}, "arms": rows}  # fmt: skip
        args.json.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
