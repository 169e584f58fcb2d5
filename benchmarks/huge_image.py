"""Encode and decode a 24-megapixel photo (6000×4000): seconds, bpp, PSNR and peak memory; and
the PSNR of tiled against untiled g_a / g_s on a size where the untiled run fits.

The image is generated (deterministic: smooth gradients, blobs, texture and noise, made in
bands so that generating it costs little memory); no downloads. Peak memory is the process's
peak resident set size, read with /usr/bin/time -v (the line "Maximum resident set size") and
also printed by the script itself (getrusage). From the repository root:

    /usr/bin/time -v python3 benchmarks/huge_image.py 2>&1 | \
        grep -E '^(  |image|encode|decode|peak|tiled|untiled)|Maximum resident|Elapsed'

    python3 benchmarks/huge_image.py --compare            # tiled vs untiled at 2048×1536

Without the shipped default model, pass --model PATH. A test-sized model (N = 16) or an untrained
model of shipping size (to measure time and memory, e.g. N = 192, M = 320) can be made with

    python3 benchmarks/huge_image.py --make-model /tmp/tiny.pt --N 16 --M 16 --Nh 16
    python3 benchmarks/huge_image.py --make-model /tmp/n192.pt --N 192 --M 320 --Nh 192

--tile-pixels / --tile-core override the codec's tiling threshold and tile size; --json writes
the results.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from aecompress.allocator import keep_freed_memory
from aecompress.checkpoint import export_checkpoint, load_checkpoint, save_checkpoint
from aecompress.codec import TILE_CORE, TILE_PIXELS, Codec
from aecompress.imagefile import decode_image, encode_image
from aecompress.imageio import SourceImage
from aecompress.model import HyperpriorModel, ModelConfig
from aecompress.modes import ColourMode
from aecompress.registry import default_model_path

NEVER = 1 << 62  # a tile threshold no image reaches


def photo(height: int, width: int, seed: int = 0, band: int = 256) -> np.ndarray:
    """A deterministic photo-like H×W×3 uint8 image: gradients, soft blobs, oriented texture
    of varying contrast, a few hard edges and sensor-like noise; made `band` rows at a time."""
    rng = np.random.default_rng(seed)
    out = np.empty((height, width, 3), dtype=np.uint8)
    blobs = [
        (
            rng.uniform(0, height),
            rng.uniform(0, width),
            rng.uniform(0.03, 0.2) * height,
            rng.uniform(-70, 70, 3),
        )
        for _ in range(24)
    ]
    waves = [
        (rng.uniform(0.02, 0.3, 2) * rng.choice([-1, 1], 2), rng.uniform(0, 6)) for _ in range(3)
    ]
    edges = [
        (rng.uniform(-1, 1, 2), rng.uniform(0, max(height, width)), rng.uniform(-40, 40, 3))
        for _ in range(6)
    ]
    base = rng.uniform(60, 190, 3)
    tilt = rng.uniform(-60, 60, (2, 3))
    xx = np.arange(width, dtype=np.float32)[None, :]
    for r0 in range(0, height, band):
        r1 = min(height, r0 + band)
        yy = np.arange(r0, r1, dtype=np.float32)[:, None]
        img = np.empty((r1 - r0, width, 3), dtype=np.float32)
        img[:] = base + (yy / height)[..., None] * tilt[0] + (xx / width)[..., None] * tilt[1]
        for cy, cx, radius, colour in blobs:
            img += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2))[..., None] * colour
        # Texture whose contrast varies slowly over the image, as in foliage or fabric.
        contrast = 6 + 5 * np.sin(yy / height * 7 + 1) * np.cos(xx / width * 5)
        for (fy, fx), phase in waves:
            img += (contrast * np.sin(fy * yy + fx * xx + phase))[..., None]
        for (ny, nx), offset, colour in edges:
            img += ((ny * yy + nx * xx) > offset)[..., None] * colour
        img += np.random.default_rng([seed, r0]).normal(0, 3, img.shape).astype(np.float32)
        out[r0:r1] = np.clip(np.round(img), 0, 255)
    return out


def psnr_banded(a: np.ndarray, b: np.ndarray, band: int = 256) -> float:
    """PSNR of two uint8 images, summed in row bands (metrics.psnr converts the whole image to
    float64 at once, which would dominate the peak memory measured here)."""
    sse = 0.0
    for r in range(0, a.shape[0], band):
        d = a[r : r + band].astype(np.float64) - b[r : r + band]
        sse += float(np.sum(d * d))
    mse = sse / a.size
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_model(path: Path, n: int, m: int, nh: int, seed: int = 0) -> None:
    """An untrained seeded model exported like a shipped one (as tests/conftest.py does):
    right for measuring time and memory, meaningless for rate–distortion."""
    torch.manual_seed(seed)
    config = ModelConfig(N=n, M=m, Nh=nh)
    model = HyperpriorModel(config).eval()
    with torch.no_grad():
        model.log_gain += 3.0  # untrained latents are tiny; give z and y real ranges
        calib = []
        for s in range(3):
            x = torch.from_numpy(photo(128, 128, s)).permute(2, 0, 1)[None].float() / 255
            calib.append(torch.round(model.h_a(model.analysis(x, 50.0))))
    ckpt = export_checkpoint(model, calib, f"untrained-N{n}-M{m}", {"purpose": "benchmark"})
    save_checkpoint(ckpt, path)
    print(f"wrote {path}: N={n} M={m} Nh={nh}")


def run_once(codec: Codec, image: SourceImage, quality: float) -> dict:
    h, w = image.rgb.shape[:2]
    t0 = time.perf_counter()
    enc = encode_image(codec, image, quality)
    t1 = time.perf_counter()
    peak_encode = peak_rss_mb()
    dec = decode_image(codec, enc.data)
    t2 = time.perf_counter()
    if not np.array_equal(dec.rgb, enc.rgb):
        raise SystemExit("decode returned other pixels than the encoder reported")
    return {
        "width": w,
        "height": h,
        "tiled": codec.uses_tiles(-(-h // 64) * 64, -(-w // 64) * 64),
        "bytes": len(enc.data),
        "bpp": len(enc.data) * 8 / (h * w),
        "psnr": psnr_banded(image.rgb, dec.rgb),
        "encode_s": t1 - t0,
        "decode_s": t2 - t1,
        "peak_rss_after_encode_mib": peak_encode,
        "peak_rss_mib": peak_rss_mb(),
        "rgb": dec.rgb,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", type=Path, help="checkpoint (default: the shipped default model)")
    ap.add_argument("--width", type=int, default=6000)
    ap.add_argument("--height", type=int, default=4000)
    ap.add_argument("--quality", type=float, default=75)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    ap.add_argument(
        "--default-malloc",
        action="store_true",
        help="leave the C allocator's policy as it is (encode and decode keep freed memory in "
        "the heap: aecompress/allocator.py)",
    )
    ap.add_argument("--tile-pixels", type=int, default=TILE_PIXELS)
    ap.add_argument("--tile-core", type=int, default=TILE_CORE)
    ap.add_argument(
        "--compare",
        action="store_true",
        help="tiled vs untiled on --compare-size instead of the huge run",
    )
    ap.add_argument("--compare-size", default="2048x1536", help="WxH for --compare")
    ap.add_argument("--save-png", type=Path, help="also write the generated image here")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--make-model", type=Path, help="write an untrained model here and exit")
    ap.add_argument("--N", type=int, default=128)
    ap.add_argument("--M", type=int, default=192)
    ap.add_argument("--Nh", type=int, default=128)
    args = ap.parse_args(argv)

    if args.make_model:
        make_model(args.make_model, args.N, args.M, args.Nh)
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.default_malloc:
        keep_freed_memory()
    try:
        ckpt = load_checkpoint(args.model or default_model_path())
    except Exception as e:
        print(f"{e}\n(make a model with --make-model PATH and pass --model PATH)", file=sys.stderr)
        return 2
    c = ckpt.config
    print(
        f"model {ckpt.model_id}: N={c.N} M={c.M} Nh={c.Nh}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}"
    )

    if args.compare:
        w, h = (int(v) for v in args.compare_size.lower().split("x"))
        image = SourceImage(rgb=photo(h, w, args.seed), mode=ColourMode.RGB)
        print(f"image {w}x{h}, quality {args.quality:g}")
        results = {}
        for name, pixels in (("untiled", NEVER), ("tiled", 0)):
            codec = Codec(ckpt, tile_pixels=pixels, tile_core=args.tile_core)
            r = results[name] = run_once(codec, image, args.quality)
            print(
                f"{name:8s} bytes {r['bytes']}  bpp {r['bpp']:.4f}  PSNR {r['psnr']:.4f} dB  "
                f"encode {r['encode_s']:.1f} s  decode {r['decode_s']:.1f} s"
            )
        diff = np.abs(results["tiled"]["rgb"].astype(int) - results["untiled"]["rgb"]).max()
        dpsnr = results["tiled"]["psnr"] - results["untiled"]["psnr"]
        print(
            f"tiled - untiled: PSNR {dpsnr:+.5f} dB, max pixel difference {diff}, "
            f"bytes {results['tiled']['bytes'] - results['untiled']['bytes']:+d}"
        )
        out = {k: {kk: vv for kk, vv in v.items() if kk != "rgb"} for k, v in results.items()}
        out["psnr_difference_db"] = dpsnr
        out["max_pixel_difference"] = int(diff)
    else:
        t0 = time.perf_counter()
        image = SourceImage(rgb=photo(args.height, args.width, args.seed), mode=ColourMode.RGB)
        print(
            f"image {args.width}x{args.height} generated in {time.perf_counter() - t0:.1f} s, "
            f"quality {args.quality:g}, tile threshold {args.tile_pixels} px, "
            f"tile core {args.tile_core} latent"
        )
        if args.save_png:
            from PIL import Image

            Image.fromarray(image.rgb).save(args.save_png)
        codec = Codec(ckpt, tile_pixels=args.tile_pixels, tile_core=args.tile_core)
        r = run_once(codec, image, args.quality)
        peak = r["peak_rss_after_encode_mib"]
        print(f"encode {r['encode_s']:.1f} s (peak RSS so far {peak:.0f} MiB)")
        print(f"decode {r['decode_s']:.1f} s, tiled: {r['tiled']}, decode == encode report: yes")
        print(f"  bytes {r['bytes']}  bpp {r['bpp']:.4f}  PSNR {r['psnr']:.3f} dB")
        print(f"peak RSS {r['peak_rss_mib']:.0f} MiB")
        out = {k: v for k, v in r.items() if k != "rgb"}
    out["model"] = {"id": ckpt.model_id, "N": c.N, "M": c.M, "Nh": c.Nh}
    out["quality"] = args.quality
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
