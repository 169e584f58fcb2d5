"""Encode and decode a folder of images through real .aec files at several qualities, time it,
and compare with JPEG (Pillow, 4:2:0, optimize=True) measured on the same images in this run.

    python3 benchmarks/kodak_codec.py ../shared/data/kodak --qualities 10,50,90 \
        --json benchmarks/kodak-codec.json --markdown benchmarks/kodak-codec.md

bpp is every .aec file's full length × 8 / pixels; PSNR is on the decoded uint8 RGB file.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aecompress.bench.bdrate import bd_rate
from aecompress.checkpoint import load_checkpoint
from aecompress.codec import Codec
from aecompress.device import describe, resolve_device
from aecompress.metrics import psnr
from aecompress.operations import decode_one, encode_one
from aecompress.registry import default_model_path

JPEG_QUALITIES = (3, 5, 8, 12, 18, 25, 35, 50, 65, 75, 85, 89, 93)


def jpeg_point(images: list[np.ndarray], q: int) -> tuple[float, float]:
    bpps, psnrs = [], []
    for rgb in images:
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "JPEG", quality=q, subsampling="4:2:0", optimize=True)
        dec = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        bpps.append(len(buf.getvalue()) * 8 / (rgb.shape[0] * rgb.shape[1]))
        psnrs.append(psnr(rgb, dec))
    return float(np.mean(bpps)), float(np.mean(psnrs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--qualities", default="10,50,90")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--markdown", type=Path, default=None)
    args = ap.parse_args()

    paths = sorted(p for p in args.folder.iterdir() if p.suffix.lower() == ".png")
    qualities = [float(q) for q in args.qualities.split(",")]
    device = resolve_device(args.device)
    ckpt = load_checkpoint(args.model or default_model_path())
    codec = Codec(ckpt, device)
    originals = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # One untimed warm-up so one-time costs (allocator, kernel selection) are not counted.
        encode_one(codec, str(paths[0]), f"{tmp}/warm.aec", 50.0, True)
        for q in qualities:
            per = []
            for p, rgb in zip(paths, originals, strict=True):
                aec, png = f"{tmp}/{p.stem}.aec", f"{tmp}/{p.stem}.png"
                t0 = time.perf_counter()
                rep = encode_one(codec, str(p), aec, q, True)
                t1 = time.perf_counter()
                dec = decode_one(codec, aec, png, True, 1 << 28)
                t2 = time.perf_counter()
                decoded = np.asarray(Image.open(png).convert("RGB"))
                per.append(
                    {
                        "image": p.name,
                        "bytes": Path(aec).stat().st_size,
                        "bpp": Path(aec).stat().st_size * 8 / (rgb.shape[0] * rgb.shape[1]),
                        "psnr": psnr(rgb, decoded),
                        "ms_ssim": rep.ms_ssim,
                        "encode_s": rep.seconds,
                        "decode_s": dec.seconds,
                        "encode_command_s": t1 - t0,
                        "decode_command_s": t2 - t1,
                    }
                )
            rows.append({"quality": q, "images": per})
            m = {k: statistics.mean(r[k] for r in per) for k in per[0] if k != "image"}
            print(
                f"q={q:g}: bpp {m['bpp']:.3f}  PSNR {m['psnr']:.2f}  MS-SSIM {m['ms_ssim']:.4f}  "
                f"encode {m['encode_s']:.2f} s ({m['encode_command_s']:.2f} s command)  "
                f"decode {m['decode_s']:.2f} s ({m['decode_command_s']:.2f} s command)",
                flush=True,
            )
    jpeg = [(q, *jpeg_point(originals, q)) for q in JPEG_QUALITIES]
    aec_curve = [
        (statistics.mean(r["bpp"] for r in row["images"]),
         statistics.mean(r["psnr"] for r in row["images"]))
        for row in rows
    ]  # fmt: skip
    bd = None
    if len(aec_curve) >= 2:
        bd = bd_rate([j[1] for j in jpeg], [j[2] for j in jpeg],
                     [a[0] for a in aec_curve], [a[1] for a in aec_curve])  # fmt: skip
        print(f"BD-rate vs JPEG 4:2:0 (PSNR): {bd:+.1f}%")
    summary = {
        "model": ckpt.model_id,
        "fingerprint": ckpt.fingerprint.hex(),
        "device": describe(device),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch": str(torch.__version__),
        "folder": str(args.folder),
        "aec": rows,
        "jpeg": [{"quality": q, "bpp": b, "psnr": s} for q, b, s in jpeg],
        "bd_rate_vs_jpeg_percent": bd,
    }
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    if args.markdown:
        lines = [
            f"Model `{ckpt.model_id}` ({ckpt.fingerprint.hex()}), {describe(device)}, "
            f"{len(paths)} images from `{args.folder.name}`.",
            "",
            "| quality | mean bpp | mean PSNR dB | mean MS-SSIM "
            "| encode s/image | decode s/image |",
            "| ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in rows:
            im = row["images"]
            lines.append(
                f"| {row['quality']:g} | {statistics.mean(r['bpp'] for r in im):.3f} | "
                f"{statistics.mean(r['psnr'] for r in im):.2f} | "
                f"{statistics.mean(r['ms_ssim'] for r in im):.4f} | "
                f"{statistics.mean(r['encode_s'] for r in im):.2f} | "
                f"{statistics.mean(r['decode_s'] for r in im):.2f} |"
            )
        if bd is not None:
            lines += ["", f"BD-rate against JPEG 4:2:0 (PSNR, same images, same run): {bd:+.1f}%"]
        args.markdown.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
