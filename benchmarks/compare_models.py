"""Rate–distortion of one or more models and of JPEG on the same images, in one run.

    python3 benchmarks/compare_models.py ../shared/data/kodak \
        --model pretrained/aec-hp-n64-cpu-2026.11.pt --model runs/long/model.pt \
        --markdown benchmarks/compare-kodak.md --json benchmarks/compare-kodak.json

Every image is encoded to a real .aec file and decoded at each quality (bpp = the file's whole
length × 8 / pixels, PSNR on the decoded uint8 RGB, both averaged per image, as `bench` does);
JPEG (Pillow, 4:2:0, optimize) is measured on the same images in the same run. For each model:
the BD-rate against JPEG and the PSNR at 0.25 / 0.5 / 1 bpp.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch
from convergence import JPEG_QUALITIES, against_jpeg, jpeg_curve

from aecompress.checkpoint import load_checkpoint
from aecompress.imagesets import find_images
from aecompress.registry import ModelLibrary
from aecompress.validate import load_valid_images, validate_checkpoint

QUALITIES = (1, 10, 25, 50, 75, 90, 100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--model", action="append", default=[], help="file, id or fingerprint")
    ap.add_argument("--qualities", default=",".join(map(str, QUALITIES)))
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    ap.add_argument("--markdown", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    qualities = [float(q) for q in args.qualities.split(",")]
    paths = find_images([args.folder])
    images = load_valid_images(paths)
    jpeg = jpeg_curve(paths)
    library = ModelLibrary()
    models = []
    for choice in args.model or [None]:
        ckpt = load_checkpoint(library.encoder_model(choice))
        result = validate_checkpoint(ckpt, images, qualities)
        summary = against_jpeg(result, jpeg)
        bd = summary["bd_rate_vs_jpeg"]
        models.append({
            "model": ckpt.model_id, "fingerprint": ckpt.fingerprint.hex(), **summary,
            "seconds": result.seconds,
        })  # fmt: skip
        bd_text = "–" if bd is None else f"{bd:+.1f}%"
        print(f"{ckpt.model_id} ({ckpt.fingerprint.hex()}): BD-rate vs JPEG {bd_text}; "
              + "; ".join(f"q{f.quality:g} {f.bpp:.3f} bpp {f.psnr:.2f} dB"
                          for f in result.figures), flush=True)  # fmt: skip
    machine = (
        f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
    )
    summary = {
        "folder": str(args.folder),
        "images": len(images),
        "machine": machine,
        "jpeg": [{"quality": q, "bpp": b, "psnr": p}
                 for q, b, p in zip(JPEG_QUALITIES, *jpeg, strict=True)],
        "models": models,
    }  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    if args.markdown:
        args.markdown.write_text(markdown(summary, qualities))


def markdown(summary: dict, qualities: list[float]) -> str:
    def cell(v, spec):
        return "–" if v is None else format(v, spec)

    lines = [
        f"{summary['images']} images of `{Path(summary['folder']).name}`; {summary['machine']}. "
        "Real files; JPEG 4:2:0 measured in the same run.",
        "",
        "| model | BD-rate vs JPEG | PSNR @0.25 | @0.5 | @1 bpp |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for m in summary["models"]:
        bd = cell(m["bd_rate_vs_jpeg"], "+.1f") + ("%" if m["bd_rate_vs_jpeg"] is not None else "")
        lines.append(
            f"| `{m['model']}` ({m['fingerprint']}) | {bd} | {cell(m['psnr_at_0.25'], '.2f')} "
            f"| {cell(m['psnr_at_0.5'], '.2f')} | {cell(m['psnr_at_1'], '.2f')} |"
        )
    header = " | ".join(f"q{q:g}" for q in qualities)
    lines += ["", f"| model | {header} |", "| --- |" + " ---: |" * len(qualities)]
    for m in summary["models"]:
        cells = " | ".join(f"{p['bpp']:.3f} bpp {p['psnr']:.2f} dB" for p in m["figures"])
        lines.append(f"| `{m['model']}` | {cells} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
