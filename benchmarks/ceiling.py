"""Where the quality ceiling comes from: equal-time training arms from one shipped model, and
what each arm's transforms can reconstruct.

Each arm continues the same model (default `aec-hp-n64-cpu-2026.11c`) on the same data with the
same seed for the same training time (validations excluded), changing one thing: the level
weighting, the sampling of trade-off positions, the λ range, the learning rate. `measure` then
puts every exported model through the same checks on held-out images (never Kodak):

- the transforms' own ceiling: g_s(g_a(x)) with the gains applied and no quantization at all,
  PSNR per trade-off level;
- real `.aec` files at qualities 1..100: bpp, PSNR, and the BD-rate against the first model
  given and against JPEG (Pillow 4:2:0, optimize) on the same images, in the same run.

    python3 benchmarks/ceiling.py run --arm base --minutes 30 --out runs/ceiling/base
    python3 benchmarks/ceiling.py measure runs/ceiling/*/model.pt \
        --markdown benchmarks/ceiling-arms.md --json benchmarks/ceiling.json

Arms that run at the same time get one thread each (`--threads`) and share the machine alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from aecompress.config import ModelConfig, TrainConfig, log_spaced_lambdas

BENCH = Path(__file__).resolve().parent
SHARED = BENCH.parents[1] / "shared" / "data"
DEFAULT_DATA = [SHARED / "train", SHARED / "train-more", SHARED / "train-extra"]
START = "aec-hp-n64-cpu-2026.11c"
QUALITIES = (1, 10, 25, 50, 75, 90, 100)


@dataclass(frozen=True)
class Arm:
    """One change to the recipe (`config`), to the λ range (`lambdas`) or to the latent's
    channels (`M`); None: the start model's."""

    config: TrainConfig
    lambdas: tuple[float, ...] | None = None
    M: int | None = None  # a wider latent than the start model's (new channels start silent)
    what: str = ""


_BASE = TrainConfig()  # the defaults: 3e-4 held, annealed to 1e-5 over the last quarter
ARMS = {
    "base": Arm(_BASE, what="the default recipe (level normaliser at full strength)"),
    "lr-1e-4": Arm(replace(_BASE, lr=1e-4), what="peak learning rate 1e-4"),
    "norm-0.5": Arm(
        replace(_BASE, level_norm_power=0.5),
        what="each crop's loss divided by the square root of its level's mean distortion term",
    ),
    "norm-0": Arm(replace(_BASE, level_norm_power=0.0), what="the raw loss, no level weighting"),
    "top-skew": Arm(
        replace(_BASE, position_power=0.5),
        what="positions (K-1)·u^0.5: 3/4 of the crops in the upper half of the range",
    ),
    "wide-lambda": Arm(
        _BASE,
        lambdas=log_spaced_lambdas(0.0008, 1.2, 10),
        what="λ 0.0008…1.2 over 10 levels (from 0.0016…0.3 over 8), gains re-drawn",
    ),
    "wide-lambda-norm-0.5": Arm(
        replace(_BASE, level_norm_power=0.5),
        lambdas=log_spaced_lambdas(0.0008, 1.2, 10),
        what="wide-lambda with norm-0.5",
    ),
    # A diagnosis, not a recipe: nearly every crop at the top level. How far the transforms'
    # ceiling can rise in the same time when nothing else pulls on them.
    "top-only": Arm(
        replace(_BASE, position_power=0.01),
        what="positions (K-1)·u^0.01: nearly every crop at the top level",
    ),
    "m-256": Arm(_BASE, M=256, what="M = 256 latent channels (from 160), the new ones silent"),
    "m-320": Arm(_BASE, M=320, what="M = 320 latent channels (from 160), the new ones silent"),
}


def cmd_run(args: argparse.Namespace) -> None:
    from rich.console import Console

    from aecompress.cli.train_progress import ConsoleReporter
    from aecompress.imagesets import find_images
    from aecompress.registry import ModelLibrary
    from aecompress.training.options import TrainOptions
    from aecompress.training.run import run_training

    torch.set_num_threads(args.threads)
    arm = ARMS[args.arm]
    config = replace(
        arm.config, steps=0, train_seconds=args.minutes * 60, valid_seconds=0, valid_every=0,
        checkpoint_every=0, checkpoint_seconds=120, log_every=100, seed=args.seed,
    )  # fmt: skip
    start = ModelLibrary().encoder_model(args.init)
    model_config = ModelConfig()
    given = {"train_seconds", "steps"}
    if arm.lambdas is not None:
        model_config = replace(model_config, lambdas=arm.lambdas)
        given.add("lambdas")
    if arm.M is not None:
        model_config = replace(model_config, M=arm.M)
        given.add("M")
    command = " ".join(["python3", "benchmarks/ceiling.py", *sys.argv[1:]])
    opts = TrainOptions(
        data=list(args.data), out_dir=args.out, config=config, model_config=model_config,
        valid=find_images([args.valid])[:: args.valid_every_nth], init=Path(start),
        device="cpu", model_id=f"ceiling-{args.arm}", force=args.force, command=command,
        export_always=True,  # the arm's own weights, even where they lose to the start
    )  # fmt: skip
    report = run_training(opts, given=given, reporter=ConsoleReporter(Console(stderr=True)))
    print(f"{args.arm}: {report.steps} steps, exported {report.model_path}")


# ----- measure -----------------------------------------------------------------------------------


@torch.no_grad()
def unquantized_psnr(model, images, levels: int) -> list[float]:
    """Mean PSNR per trade-off level of g_s(y · gain · inv_gain) with y = g_a(x): the
    transforms' ceiling, with no quantization and no entropy model. Images are padded to a
    multiple of 16 by edge replication and cropped back; PSNR on rounded uint8 RGB."""
    from aecompress.metrics import mse, psnr_of_mse

    out = np.zeros((len(images), levels))
    for i, im in enumerate(images):
        x = torch.from_numpy(im.rgb).permute(2, 0, 1).float().div(255)[None]
        h, w = x.shape[2:]
        ph, pw = (-h) % 16, (-w) % 16
        xp = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate")
        y = model.g_a(xp)
        for k in range(levels):
            gain, inv = model.gains(torch.tensor([float(k)]))
            x_hat = model.g_s(y * (gain * inv)[:, :, None, None])[:, :, :h, :w]
            rgb = (x_hat.clamp(0, 1) * 255).round().byte()[0].permute(1, 2, 0).numpy()
            out[i, k] = psnr_of_mse(mse(im.rgb, rgb))
    return out.mean(0).tolist()


def cmd_measure(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(BENCH))
    from convergence import JPEG_QUALITIES, jpeg_curve

    from aecompress.bench.bdrate import bd_rate
    from aecompress.checkpoint import load_checkpoint
    from aecompress.imagesets import find_images
    from aecompress.registry import ModelLibrary
    from aecompress.validate import load_valid_images, validate_checkpoint

    if args.threads:
        torch.set_num_threads(args.threads)
    paths = find_images([args.images])
    images = load_valid_images(paths)
    jpeg = jpeg_curve(paths)
    library = ModelLibrary()
    rows = []
    for choice in args.models:
        t0 = time.perf_counter()
        ckpt = load_checkpoint(library.encoder_model(choice))
        model = ckpt.model.float().eval()
        ceiling = unquantized_psnr(model, images, model.config.levels)
        result = validate_checkpoint(ckpt, images, args.qualities)
        rates = [f.bpp for f in result.figures]
        psnrs = [f.psnr for f in result.figures]
        row = {
            "model": choice, "model_id": ckpt.model_id, "fingerprint": ckpt.fingerprint.hex(),
            "lambdas": list(model.config.lambdas), "unquantized_psnr": ceiling,
            "points": [{"quality": f.quality, "bpp": f.bpp, "psnr": f.psnr}
                       for f in result.figures],
            "bd_rate_vs_jpeg": _bd(bd_rate, *jpeg, rates, psnrs),
            "seconds": time.perf_counter() - t0,
        }  # fmt: skip
        if rows:
            first = rows[0]["points"]
            row["bd_rate_vs_first"] = _bd(
                bd_rate, [p["bpp"] for p in first], [p["psnr"] for p in first], rates, psnrs
            )
        rows.append(row)
        print(_line(row), flush=True)
    summary = {
        "images": _shown(args.images), "count": len(images), "qualities": list(args.qualities),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, "
                   f"torch {torch.__version__}",
        "jpeg": [{"quality": q, "bpp": b, "psnr": p}
                 for q, b, p in zip(JPEG_QUALITIES, *jpeg, strict=True)],
        "models": rows,
    }  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    if args.markdown:
        args.markdown.write_text(markdown(summary))


def _shown(path: Path) -> str:
    """A path as the repository's files may name it: relative to the checkout."""
    try:
        return os.path.relpath(path.resolve(), BENCH.parent)
    except ValueError:
        return str(path)


def _bd(fn, r0, p0, r1, p1) -> float | None:
    try:
        return float(fn(r0, p0, r1, p1))
    except ValueError:
        return None


def _fmt(v, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def _line(row: dict) -> str:
    pts = {p["quality"]: p for p in row["points"]}
    ends = " ".join(
        f"q{q:g} {pts[q]['bpp']:.3f}/{pts[q]['psnr']:.2f}" for q in (1, 50, 100) if q in pts
    )
    ceil = row["unquantized_psnr"]
    return (
        f"{row['model_id']}: BD vs JPEG {_fmt(row['bd_rate_vs_jpeg'], '+.1f')}%, vs first "
        f"{_fmt(row.get('bd_rate_vs_first'), '+.1f')}%; {ends}; unquantized "
        f"{ceil[0]:.2f}…{ceil[-1]:.2f} dB [{row['seconds']:.0f} s]"
    )


def markdown(summary: dict) -> str:
    lines = [
        f"Images: `{summary['images']}` ({summary['count']}); {summary['machine']}.",
        "",
        "| model | BD-rate vs first | BD-rate vs JPEG | q1 bpp / dB | q50 | q100 "
        "| unquantized PSNR, lowest … highest level |",
        "| --- | ---: | ---: | --- | --- | --- | --- |",
    ]
    for row in summary["models"]:
        pts = {p["quality"]: p for p in row["points"]}
        cell = [
            f"{pts[q]['bpp']:.3f} / {pts[q]['psnr']:.2f}" if q in pts else "–"
            for q in (1.0, 50.0, 100.0)
        ]
        ceil = " ".join(f"{v:.2f}" for v in row["unquantized_psnr"])
        lines.append(
            f"| `{row['model_id']}` | {_fmt(row.get('bd_rate_vs_first'), '+.1f')}% "
            f"| {_fmt(row['bd_rate_vs_jpeg'], '+.1f')}% | {' | '.join(cell)} | {ceil} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--arm", choices=sorted(ARMS), required=True)
    run.add_argument("--minutes", type=float, default=30.0, help="training time")
    run.add_argument("--threads", type=int, default=1)
    run.add_argument("--out", type=Path, required=True)
    run.add_argument("--data", type=Path, nargs="+", default=DEFAULT_DATA)
    run.add_argument("--valid", type=Path, default=SHARED / "valid")
    run.add_argument("--valid-every-nth", type=int, default=3,
                     help="the export picks its weights on every nth image of --valid")  # fmt: skip
    run.add_argument("--init", default=START, help="the model every arm starts from")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--force", action="store_true")
    measure = sub.add_parser("measure")
    measure.add_argument("models", nargs="+", help="files, ids or fingerprints; the first is "
                         "the reference of the BD-rates")  # fmt: skip
    measure.add_argument("--images", type=Path, default=SHARED / "valid")
    measure.add_argument("--qualities", type=lambda s: [float(q) for q in s.split(",")],
                         default=[float(q) for q in QUALITIES])  # fmt: skip
    measure.add_argument("--threads", type=int, default=0)
    measure.add_argument("--markdown", type=Path)
    measure.add_argument("--json", type=Path)
    args = parser.parse_args()
    (cmd_run if args.command == "run" else cmd_measure)(args)


if __name__ == "__main__":
    main()
