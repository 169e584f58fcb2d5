"""How much learned quantization-reconstruction offsets could give a trained model.

The decoder reconstructs each gained latent as y_hat = mu + s, with s = round(y_g - mu) the
coded symbol. Variable-rate codecs in the literature (CompressAI's VBR models) learn an offset
instead: y_hat = mu + s - d·sign(s), d per channel and quality, pulling each value towards the
mean, where a peaked density puts most of a bin's mass. The symbols, and so every file's size,
stay as they are: only the decoder's reconstruction moves.

This is the oracle for that arm, with the transforms frozen: for each trade-off level, fit d on
training crops (one d for |s| = 1 and one for |s| ≥ 2, per channel: a Gaussian's bins are not
alike) by gradient descent on the pixels' squared error through g_s, then measure PSNR on
held-out images (never Kodak) with and without it, on uint8 RGB. What it gains at equal files
is the most a jointly trained offset could add before the transforms adapt to it.

    python3 benchmarks/reconstruction_offsets.py aec-hp-n64-cpu-2026.12c \
        --json benchmarks/reconstruction-offsets.json
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from pathlib import Path

import numpy as np
import torch

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def pad64(x: torch.Tensor) -> torch.Tensor:
    """B×3×H×W → padded by edge replication to multiples of 64, as the codec pads."""
    h, w = x.shape[2:]
    return torch.nn.functional.pad(x, (0, (-w) % 64, 0, (-h) % 64), mode="replicate")


@torch.no_grad()
def decoder_inputs(model, x: torch.Tensor, level: int):
    """x B×3×H×W (multiples of 64) → symbols s and means mu (B×M×H/16×W/16, float) and the
    inverse gain (1×M×1×1) of this level: what the decoder has, computed as the codec does."""
    gain, inv = model.gains(torch.tensor([float(level)]))
    y = model.g_a(x) * gain[:, :, None, None]
    mu = model.h_s_mean(torch.round(model.h_a(y)))
    return torch.round(y - mu), mu, inv[:, :, None, None]


def reconstruct(model, s, mu, inv, d1: torch.Tensor, d2: torch.Tensor) -> torch.Tensor:
    """g_s of mu + s - d·sign(s), d = d1 (M) where |s| = 1, d2 (M) where |s| ≥ 2, 0 at s = 0."""
    a = s.abs()
    d = torch.where(a == 1, d1[None, :, None, None], d2[None, :, None, None]) * (a > 0)
    return model.g_s((mu + s - d * torch.sign(s)) * inv)


def training_crops(roots: list[Path], count: int, size: int, seed: int) -> torch.Tensor:
    """`count` random size×size crops, one per image of a seeded shuffle → count×3×size×size."""
    from aecompress.imagesets import find_images
    from aecompress.validate import load_valid_images

    rng = random.Random(seed)
    paths = find_images(roots)
    rng.shuffle(paths)
    crops = []
    for p in paths:
        if len(crops) == count:
            break
        rgb = load_valid_images([p], warn=lambda _: None)[0].rgb
        h, w = rgb.shape[:2]
        if h < size or w < size:
            continue
        i, j = rng.randrange(h - size + 1), rng.randrange(w - size + 1)
        crops.append(torch.from_numpy(rgb[i : i + size, j : j + size].copy()))
    return torch.stack(crops).permute(0, 3, 1, 2).float().div(255)


def fit_level(model, crops: torch.Tensor, level: int, steps: int, batch: int, lr: float):
    """The offsets (d1, d2), each M, that minimise the crops' squared error at this level."""
    s, mu, inv = decoder_inputs(model, crops, level)
    m = s.shape[1]
    d1 = torch.zeros(m, requires_grad=True)
    d2 = torch.zeros(m, requires_grad=True)
    opt = torch.optim.Adam([d1, d2], lr=lr)
    for _ in range(steps):
        idx = torch.randint(0, len(crops), (batch,))
        loss = (reconstruct(model, s[idx], mu[idx], inv, d1, d2) - crops[idx]).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    share = (float((s.abs() == 1).float().mean()), float((s.abs() >= 2).float().mean()))
    return d1.detach(), d2.detach(), share


@torch.no_grad()
def held_out_psnr(model, images, level: int, d1, d2) -> float:
    """Mean PSNR (uint8 RGB) over the images at this level with the offsets d1, d2."""
    from aecompress.metrics import mse, psnr_of_mse

    out = []
    for im in images:
        x = torch.from_numpy(im.rgb.copy()).permute(2, 0, 1).float().div(255)[None]
        h, w = x.shape[2:]
        s, mu, inv = decoder_inputs(model, pad64(x), level)
        x_hat = reconstruct(model, s, mu, inv, d1, d2)[:, :, :h, :w]
        rgb = (x_hat.clamp(0, 1) * 255).round().byte()[0].permute(1, 2, 0).numpy()
        out.append(psnr_of_mse(mse(im.rgb, rgb)))
    return float(np.mean(out))


def main() -> None:
    from aecompress.checkpoint import load_checkpoint
    from aecompress.registry import ModelLibrary
    from aecompress.validate import load_valid_images

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="file, id or fingerprint")
    ap.add_argument("--data", type=Path, nargs="+", default=[SHARED / "train"])
    ap.add_argument("--images", type=Path, default=SHARED / "valid", help="held-out images")
    ap.add_argument("--crops", type=int, default=48)
    ap.add_argument("--crop-size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=120, help="Adam steps per level")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    ckpt = load_checkpoint(ModelLibrary().encoder_model(args.model))
    model = ckpt.model.float().eval().requires_grad_(False)
    crops = training_crops(args.data, args.crops, args.crop_size, args.seed)
    images = load_valid_images([args.images], warn=lambda _: None)
    zero = torch.zeros(model.config.M)
    rows, t0 = [], time.perf_counter()
    for level in range(model.config.levels):
        d1, d2, share = fit_level(model, crops, level, args.steps, args.batch, args.lr)
        row = {
            "level": level, "lambda": model.config.lambdas[level],
            "share_abs1": share[0], "share_abs2plus": share[1],
            "d1_mean": float(d1.mean()), "d2_mean": float(d2.mean()),
            "psnr": held_out_psnr(model, images, level, zero, zero),
            "psnr_offsets": held_out_psnr(model, images, level, d1, d2),
        }  # fmt: skip
        rows.append(row)
        print(
            f"level {level}: |s|=1 {share[0]:.3f}, |s|≥2 {share[1]:.3f}; mean d1 "
            f"{row['d1_mean']:+.3f}, d2 {row['d2_mean']:+.3f}; PSNR {row['psnr']:.3f} → "
            f"{row['psnr_offsets']:.3f} dB ({row['psnr_offsets'] - row['psnr']:+.3f}) "
            f"[{time.perf_counter() - t0:.0f} s]",
            flush=True,
        )
    if args.json:
        sources = ", ".join(p.name for p in args.data)
        summary = {
            "model_id": ckpt.model_id, "fingerprint": ckpt.fingerprint.hex(),
            "crops": f"{len(crops)} of {args.crop_size}² from {sources}",
            "held_out": f"{len(images)} images of {args.images.name}/",
            "steps_per_level": args.steps, "batch": args.batch, "lr": args.lr,
            "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread(s), "
                       f"torch {torch.__version__}",
            "levels": rows,
        }  # fmt: skip
        args.json.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
