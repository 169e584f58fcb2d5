"""Rate–distortion training of the hyperprior model over the whole quality range.

Each example gets its own trade-off position t ~ U[0, K-1]; its loss is
    lambda(t) * 255² * MSE(x, x_hat) + bits(y) / pixels + bits(z) / pixels
with lambda(t) interpolated geometrically between the configured levels, so the continuous
quality knob is trained directly, not only at the K levels.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .errors import AecError
from .model import HyperpriorModel, ModelConfig

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm"}


@dataclass
class TrainConfig:
    steps: int = 20000
    batch_size: int = 8
    patch_size: int = 128
    lr: float = 2e-4
    lr_final: float = 2e-5  # cosine decay from lr to lr_final over the run
    warmup: int = 200
    grad_clip: float = 1.0
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 50


@dataclass
class StepStats:
    step: int
    loss: float
    bpp: float
    psnr: float
    steps_per_s: float


def find_images(roots: Sequence[Path]) -> list[Path]:
    """All image files under the given files/folders, recursively, in a stable order."""
    found: list[Path] = []
    for root in roots:
        if root.is_file():
            found.append(root)
        elif root.is_dir():
            found.extend(p for p in sorted(root.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            raise AecError(f"{root}: no such file or directory")
    return found


def load_patches(
    paths: Sequence[Path], min_size: int, warn: Callable[[str], None] = print
) -> list[torch.Tensor]:
    """Decode every image once to a 3×H×W uint8 tensor; skip unreadable or too small ones."""
    images = []
    for p in paths:
        try:
            with Image.open(p) as im:
                arr = np.asarray(im.convert("RGB"))
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            warn(f"skipping {p}: {e}")
            continue
        if min(arr.shape[:2]) < min_size:
            warn(f"skipping {p}: smaller than the {min_size}px patch size")
            continue
        images.append(torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous())
    if not images:
        raise AecError("no usable training images found")
    return images


def random_batch(
    images: Sequence[torch.Tensor], batch: int, size: int, gen: random.Random
) -> torch.Tensor:
    """B×3×size×size float batch in [0, 1]: random image, crop, horizontal/vertical flips."""
    out = torch.empty(batch, 3, size, size, dtype=torch.uint8)
    for i in range(batch):
        im = images[gen.randrange(len(images))]
        top = gen.randrange(im.shape[1] - size + 1)
        left = gen.randrange(im.shape[2] - size + 1)
        crop = im[:, top : top + size, left : left + size]
        if gen.random() < 0.5:
            crop = crop.flip(2)
        if gen.random() < 0.5:
            crop = crop.flip(1)
        out[i] = crop
    return out.float() / 255


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.lr_final + 0.5 * (cfg.lr - cfg.lr_final) * (1 + math.cos(math.pi * frac))


def rd_loss(model: HyperpriorModel, x: torch.Tensor, position: torch.Tensor):
    """Per-batch mean RD loss; also returns mean bpp and mean PSNR for logging."""
    out = model(x, position)
    pixels = x.shape[2] * x.shape[3]
    mse = ((out.x_hat - x) ** 2).mean((1, 2, 3))
    bpp = (out.bits_y + out.bits_z) / pixels
    loss = (model.lambdas(position) * 255**2 * mse + bpp).mean()
    psnr = (10 * torch.log10(1 / mse.detach().clamp(min=1e-10))).mean()
    return loss, bpp.mean().detach(), psnr


def save_training_state(path: Path, model, optimizer, step: int, cfg: TrainConfig, gen) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "model_config": model.config.to_dict(),
            "train_config": asdict(cfg),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "python_rng": gen.getstate(),
            "torch_rng": torch.get_rng_state(),
        },
        tmp,
    )
    tmp.replace(path)


def train(
    images: Sequence[torch.Tensor],
    out_dir: Path,
    model_config: ModelConfig,
    cfg: TrainConfig,
    resume: Path | None = None,
    log: Callable[[StepStats], None] = print,
) -> HyperpriorModel:
    """Train on CPU; writes out_dir/state.pt every `checkpoint_every` steps and at the end."""
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    gen = random.Random(cfg.seed)
    model = HyperpriorModel(model_config)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    step = 0
    if resume is not None:
        state = torch.load(resume, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        gen.setstate(state["python_rng"])
        torch.set_rng_state(state["torch_rng"])
    model.train()
    levels = model_config.levels
    t0, s0 = time.time(), step
    while step < cfg.steps:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        x = random_batch(images, cfg.batch_size, cfg.patch_size, gen)
        position = torch.rand(cfg.batch_size) * (levels - 1)
        loss, bpp, psnr = rd_loss(model, x, position)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        step += 1
        if step % cfg.log_every == 0:
            rate = (step - s0) / (time.time() - t0)
            log(StepStats(step, loss.item(), bpp.item(), psnr.item(), rate))
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            save_training_state(out_dir / "state.pt", model, optimizer, step, cfg, gen)
    return model
