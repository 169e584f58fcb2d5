"""The quality range through the command line: `aecompress encode -q Q --json` on a few photos
at qualities from 1 to 100, for one or more models, as a user would meet it.

    python3 benchmarks/quality_targets.py ../shared/data/kodak --model aec-hp-n128-gpu-2026.12b \
        --model runs/x/model.pt --markdown benchmarks/quality-targets.md

For each model: mean bpp (the file's bytes × 8 / pixels) and mean PSNR at each quality, whether
both rise with the quality at every step, and the targets of the high-quality work: `-q 100`
at 37.0 dB or more, `-q 1` at 0.15 bpp or less (means over the images).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# The six Kodak photos whose -q 100 stopped at 33.3 dB mean with the first GPU model.
IMAGES = ("kodim01", "kodim05", "kodim13", "kodim15", "kodim21", "kodim23")
QUALITIES = (1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
TARGET_TOP_PSNR, TARGET_LOW_BPP = 37.0, 0.15


def encode(images: list[Path], quality: float, model: str, threads: int) -> list[dict]:
    """The JSON results of one `aecompress encode` call over every image."""
    with tempfile.TemporaryDirectory() as out:
        env = dict(os.environ, OMP_NUM_THREADS=str(threads)) if threads else None
        done = subprocess.run(
            [sys.executable, "-m", "aecompress", "encode", *map(str, images), "-o", out + "/",
             "-q", f"{quality:g}", "--model", model, "--json", "--quiet"],
            capture_output=True, text=True, env=env, check=False,
        )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"encode -q {quality:g} --model {model} failed: {done.stderr.strip()}")
    return json.loads(done.stdout)["results"]


def curve(images: list[Path], model: str, qualities, threads: int) -> dict:
    rows = []
    for q in qualities:
        res = encode(images, q, model, threads)
        rows.append({
            "quality": q,
            "bpp": sum(r["bpp"] for r in res) / len(res),
            "psnr": sum(r["psnr"] for r in res) / len(res),
        })  # fmt: skip
    model_id = res[0]["model_id"]
    pairs = zip(rows[:-1], rows[1:], strict=True)
    rising = all(b["bpp"] > a["bpp"] and b["psnr"] > a["psnr"] for a, b in pairs)
    return {"model": model, "model_id": model_id, "points": rows, "monotone": rising}


def markdown(folder: Path, runs: list[dict]) -> str:
    qs = [p["quality"] for p in runs[0]["points"]]
    lines = [
        f"`aecompress encode -q Q --json` on {', '.join(IMAGES)} of `{folder}`: mean bpp / "
        "mean PSNR (dB).",
        "",
        "| model | " + " | ".join(f"q{q:g}" for q in qs) + " | monotone | q100 ≥ 37 dB "
        "| q1 ≤ 0.15 bpp |",
        "| --- | " + " | ".join("---:" for _ in qs) + " | --- | --- | --- |",
    ]
    for run in runs:
        pts = run["points"]
        cells = " | ".join(f"{p['bpp']:.3f} / {p['psnr']:.2f}" for p in pts)
        top, low = pts[-1]["psnr"], pts[0]["bpp"]
        lines.append(
            f"| `{run['model_id']}` | {cells} | {'yes' if run['monotone'] else 'no'} "
            f"| {'yes' if top >= TARGET_TOP_PSNR else 'no'} ({top:.2f}) "
            f"| {'yes' if low <= TARGET_LOW_BPP else 'no'} ({low:.3f}) |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path, help="the folder holding kodim01.png ...")
    ap.add_argument("--model", action="append", required=True, help="file, id or fingerprint")
    ap.add_argument("--qualities", default=",".join(map(str, QUALITIES)))
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--markdown", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    images = [args.folder / f"{name}.png" for name in IMAGES]
    qualities = [float(q) for q in args.qualities.split(",")]
    runs = []
    for model in args.model:
        run = curve(images, model, qualities, args.threads)
        runs.append(run)
        print(f"{run['model_id']}: " + "; ".join(
            f"q{p['quality']:g} {p['bpp']:.3f} bpp {p['psnr']:.2f} dB" for p in run["points"]
        ) + f"; monotone: {run['monotone']}", flush=True)  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"images": IMAGES, "runs": runs}, indent=1) + "\n")
    if args.markdown:
        args.markdown.write_text(markdown(args.folder, runs))


if __name__ == "__main__":
    main()
