"""Training data: the images under the given roots, decoded once on several threads, packed on
the training device, and each step's batch of random crops and trade-off positions.

Every image is packed, at its own size, into one flat uint8 tensor on the training device
(`ImageSet`); a step's random crops and flips are one gather there. The crops and trade-off
positions of step s come from a generator seeded by (seed, s), so the data order is a function
of the step alone and a resumed run sees the crops an uninterrupted one would. The rate's
additive noise is drawn per crop (`CropNoise`), so a run split over several processes trains
on the batch, and with the noise, that one process would.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import TrainConfig
from ..errors import AecError
from ..imageio import load_image
from ..imagesets import find_images
from ..recipe import skew_positions, stratified_positions
from .distributed import BatchPart

ALONE = BatchPart()  # the whole batch: a run in one process


def read_training_image(path: Path, min_size: int) -> tuple[torch.Tensor | None, str]:
    """3×H×W uint8, read as `encode` reads it, or None and why the image is skipped
    (unreadable, or a side below `min_size`, the crop size)."""
    try:
        arr = load_image(path).rgb
    except AecError as e:
        return None, f"skipping {path}: {e}"
    if min(arr.shape[:2]) < min_size:
        return None, f"skipping {path}: smaller than the {min_size}px patch size"
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))), ""


def _decode_images(
    paths: Sequence[Path], min_size: int, warn: Callable[[str], None]
) -> list[torch.Tensor]:
    """The usable images, in the order of `paths`. Decoded on several threads (the decoders
    release the GIL): on a GPU machine loading is part of the time a run is budgeted."""
    workers = min(8, os.cpu_count() or 1, max(1, len(paths)))
    with ThreadPoolExecutor(workers) as pool:
        decoded = list(pool.map(lambda p: read_training_image(p, min_size), paths))
    images = []
    for image, why in decoded:
        if image is None:
            warn(why)
        else:
            images.append(image)
    return images


@dataclass(frozen=True)
class DataSource:
    """One training root as the run recorded it (state.pt, the provenance)."""

    path: str  # absolute
    files: int  # image files found under it
    images: int  # of which usable


def load_dataset(
    roots: Sequence[Path], min_size: int, warn: Callable[[str], None] = print
) -> tuple[list[torch.Tensor], list[DataSource]]:
    """Images (3×H×W uint8) under each root, and how many each root gave."""
    images: list[torch.Tensor] = []
    sources = []
    for root in roots:
        paths = find_images([root], patterns=False)
        decoded = _decode_images(paths, min_size, warn)
        images.extend(decoded)
        sources.append(DataSource(str(Path(root).resolve()), len(paths), len(decoded)))
    if not images:
        where = ", ".join(str(r) for r in roots)
        raise AecError(f"no usable training images found in {where}")
    return images, sources


class ImageSet:
    """Training images (3×H×W uint8 each, any sizes) packed into one flat uint8 tensor on the
    training device; `crops` cuts a batch of random crops with random flips as one gather, with
    no per-sample Python work and no host round trip."""

    def __init__(self, images: Sequence[torch.Tensor], device: torch.device | str = "cpu"):
        if not images:
            raise AecError("no usable training images found")
        self.device = torch.device(device)
        sizes = [im.numel() for im in images]
        # One concatenation and one transfer: thousands of small copies to a GPU cost seconds
        # of a budgeted run.
        self.flat = torch.cat([im.reshape(-1) for im in images]).to(self.device)
        offsets = [0, *np.cumsum(sizes[:-1]).tolist()]
        ints = {"dtype": torch.int64, "device": self.device}
        self.offsets = torch.tensor(offsets, **ints)
        self.heights = torch.tensor([im.shape[1] for im in images], **ints)
        self.widths = torch.tensor([im.shape[2] for im in images], **ints)
        self.min_side = min(min(im.shape[1:]) for im in images)

    def __len__(self) -> int:
        return self.offsets.numel()

    def crops(
        self,
        batch: int,
        size: int,
        gen: torch.Generator,
        dihedral: bool = False,
        rows: slice | None = None,
    ) -> torch.Tensor:
        """B×3×size×size uint8 on the device: a uniform image, a uniform crop position, and a
        horizontal and a vertical flip, each with probability 1/2; with `dihedral` also a
        transposition with probability 1/2, which makes all eight flips and rotations.

        rows: cut only these crops of the `batch` drawn (a process's part of a global batch);
        the draws are those of the whole batch, so crop i is the same whoever cuts it."""
        u = torch.rand(batch, 6 if dihedral else 5, generator=gen, device=self.device)
        if rows is not None:
            u = u[rows]
            batch = u.shape[0]
        n = len(self)
        i = (u[:, 0] * n).long().clamp_(max=n - 1)  # B
        h, w = self.heights[i], self.widths[i]
        top = torch.minimum((u[:, 1] * (h - size + 1)).long(), h - size)
        left = torch.minimum((u[:, 2] * (w - size + 1)).long(), w - size)
        ramp = torch.arange(size, device=self.device)
        rows = top[:, None] + torch.where(u[:, 3:4] < 0.5, size - 1 - ramp, ramp)  # B×size
        cols = left[:, None] + torch.where(u[:, 4:5] < 0.5, size - 1 - ramp, ramp)  # B×size
        src_row = rows[:, :, None].expand(batch, size, size)  # B×size×size: output (a, b)
        src_col = cols[:, None, :].expand(batch, size, size)  # reads (rows[a], cols[b])
        if dihedral:  # transposed crops read (rows[b], cols[a])
            t = (u[:, 5] < 0.5)[:, None, None]
            src_row, src_col = (
                torch.where(t, rows[:, None, :], src_row),
                torch.where(t, cols[:, :, None], src_col),
            )
        chan = torch.arange(3, device=self.device)
        index = (
            self.offsets[i, None, None, None]
            + chan[None, :, None, None] * (h * w)[:, None, None, None]
            + (src_row * w[:, None, None] + src_col)[:, None, :, :]
        )  # B×3×size×size
        return self.flat[index]


_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    """splitmix64's finaliser: consecutive inputs give unrelated 64-bit outputs."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def _step_seed(seed: int, step: int) -> int:
    """splitmix64 of (seed, step): well-mixed seeds for consecutive steps (the CPU generator
    uses the low 32 bits, CUDA's Philox all 64)."""
    return _splitmix64((seed & 0xFFFFFFFF) << 32 | (step & 0xFFFFFFFF)) >> 1


def _crop_seed(seed: int, step: int, index: int) -> int:
    """The seed of the noise of crop `index` (of the global batch) at `step`."""
    return _splitmix64(_step_seed(seed, step) ^ ((index + 1) * 0xD1B54A32D192ED03 & _MASK64)) >> 1


class CropNoise:
    """The additive uniform noise of each crop: a generator per crop, seeded by (seed, step,
    the crop's index in the global batch), so a crop gets the same noise whichever process
    trains it and however many there are, and a resumed run draws what an uninterrupted one
    would. Called with a B×C×H×W tensor, it returns uniform noise in [-0.5, 0.5) of the same
    shape and layout; successive calls continue each crop's stream (z's noise, then y's)."""

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self._gens: list[torch.Generator] = []
        self._crops = 0  # how many crops the last reseed started

    def reseed(self, seed: int, step: int, rows: slice) -> None:
        """Start the streams of the crops `rows` of step `step`'s global batch."""
        while len(self._gens) < rows.stop - rows.start:
            self._gens.append(torch.Generator(device=self.device))
        for gen, index in zip(self._gens, range(rows.start, rows.stop), strict=False):
            gen.manual_seed(_crop_seed(seed, step, index))
        self._crops = rows.stop - rows.start

    def __call__(self, like: torch.Tensor) -> torch.Tensor:
        if like.shape[0] != self._crops:
            raise ValueError(f"noise for {like.shape[0]} crops, reseeded for {self._crops}")
        noise = torch.empty_like(like)
        for row, gen in zip(noise, self._gens, strict=False):
            row.uniform_(-0.5, 0.5, generator=gen)
        return noise


def training_batch(
    data: ImageSet,
    cfg: TrainConfig,
    levels: int,
    step: int,
    gen: torch.Generator,
    part: BatchPart = ALONE,
    noise: CropNoise | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Step `step`'s batch, or this process's `part` of it: b×3×P×P floats in [0, 1] and b
    positions in [0, levels-1], b = cfg.batch_size / part.count. `noise`, when given, is
    reseeded for the same crops.

    The crops, flips and positions of the whole batch are drawn (a few numbers per crop) and
    each process keeps its rows, so the processes of a run together train on exactly the
    batch one process would."""
    rows = part.rows(cfg.batch_size)
    gen.manual_seed(_step_seed(cfg.seed, step))
    x = data.crops(cfg.batch_size, cfg.patch_size, gen, cfg.dihedral, rows).float().div_(255)
    if cfg.stratified:
        position = stratified_positions(
            cfg.batch_size, levels, gen, data.device, cfg.position_power
        )
    else:
        u = torch.rand(cfg.batch_size, generator=gen, device=data.device)
        position = skew_positions(u, cfg.position_power) * (levels - 1)
    if noise is not None:
        noise.reseed(cfg.seed, step, rows)
    return x, position[rows]
