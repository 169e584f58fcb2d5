"""Equal-time comparison of training recipes, validated through the real codec.

Each arm trains the same model size on the same data with the same seed for the same training
wall time (validations excluded), and validates every few minutes on the same validation
images: every image encoded to a real .aec file and decoded at five qualities. `report` then
measures JPEG on the same images and writes, for every validation, the BD-rate against JPEG and
the PSNR at 0.25, 0.5 and 1 bpp.

    python3 benchmarks/convergence.py run --arm recipe-2026.11 --minutes 20 --out runs/conv/a
    python3 benchmarks/convergence.py run --arm balanced --minutes 20 --out runs/conv/b
    python3 benchmarks/convergence.py report runs/conv/a runs/conv/b \
        --markdown benchmarks/convergence.md --plot benchmarks/convergence.png

Arms that run at the same time should get the same number of threads each (`--threads`).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from kodak_codec import jpeg_point
from PIL import Image
from rich.console import Console

from aecompress.bench.bdrate import bd_rate, pchip
from aecompress.cli.train_progress import ConsoleReporter
from aecompress.config import RECIPE_2026_11, VALID_QUALITIES, ModelConfig, TrainConfig
from aecompress.imagesets import find_images
from aecompress.training.options import TrainOptions
from aecompress.training.run import run_training
from aecompress.training.state import read_state
from aecompress.validate import ValidationResult

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_DATA = [SHARED / "train", SHARED / "train-more", SHARED / "train-extra"]
JPEG_QUALITIES = (3, 5, 8, 12, 18, 25, 35, 50, 65, 75, 85, 90, 95)
RATES = (0.25, 0.5, 1.0)

ARMS = {
    # The recipe of the first shipped model: 128-px crops with two flips, uniform positions,
    # raw loss, clip at 1, per-channel GDN, gains at the base learning rate, no averaging.
    "recipe-2026.11": RECIPE_2026_11,
    # The new recipe on the same crops: isolates the loss, GDN, gains, clipping and averaging.
    # (Its schedule: a cosine over the whole run, as when the arms were compared.)
    "balanced-128": replace(TrainConfig(), patch_size=128, anneal=1.0),
    # The new recipe on whole 256-px photos with all eight flips/rotations, 2 per step: the
    # same pixels per step as 8 crops of 128.
    "balanced-256": replace(TrainConfig(), patch_size=256, batch_size=2, anneal=1.0),
    # balanced-128 with the learning rate held at its peak until the last quarter of the run,
    # then annealed: the default since (benchmarks/schedule.md).
    "balanced-128-anneal25": replace(TrainConfig(), patch_size=128, anneal=0.25),
    # ... and with 8 crops of 256 per step, as on a GPU (4× the arithmetic per step).
    "balanced-256x8": replace(TrainConfig(), patch_size=256, batch_size=8, anneal=0.25),
}


def valid_subset(root: Path, every: int) -> list[Path]:
    return find_images([root])[::every]


def cmd_run(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    config = replace(
        ARMS[args.arm], steps=10**9, train_seconds=args.minutes * 60,
        valid_seconds=args.valid_minutes * 60, valid_every=0, checkpoint_every=200,
        log_every=25, seed=args.seed, valid_qualities=VALID_QUALITIES,
    )  # fmt: skip
    if args.batch_size:
        config = replace(config, batch_size=args.batch_size)
    valid = valid_subset(args.valid, args.valid_every_nth)
    command = " ".join(["python3", "benchmarks/convergence.py", *sys.argv[1:]])
    opts = TrainOptions(
        data=list(args.data), out_dir=args.out, config=config,
        model_config=ModelConfig(N=args.N, M=args.M, Nh=args.Nh), valid=valid, init=args.init,
        device="cpu", model_id=args.model_id or f"conv-{args.arm}", force=args.force,
        command=command, export_always=True,  # the arm's own weights, even where they lose
    )  # fmt: skip
    report = run_training(opts, reporter=ConsoleReporter(Console(stderr=True)))
    print(f"{args.arm}: {report.steps} steps, exported {report.model_path}")


# ----- report ------------------------------------------------------------------------------------


def jpeg_curve(paths: list[Path]) -> tuple[list[float], list[float]]:
    """Mean bpp and mean PSNR per JPEG quality (Pillow, 4:2:0, optimize), as the bench does."""
    images = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    points = [jpeg_point(images, q) for q in JPEG_QUALITIES]
    return [b for b, _ in points], [s for _, s in points]


def psnr_at(rates: list[float], psnrs: list[float], rate: float) -> float | None:
    """PSNR at `rate` on the curve (interpolated in log rate), None outside it."""
    order = np.argsort(rates)
    r = np.log(np.asarray(rates)[order])
    p = np.asarray(psnrs)[order]
    if not r[0] <= math.log(rate) <= r[-1] or np.any(np.diff(r) <= 0):
        return None
    return float(pchip(r, p, np.array([math.log(rate)]))[0])


def against_jpeg(result: ValidationResult, jpeg: tuple[list[float], list[float]]) -> dict:
    """A validation's curve against JPEG's: BD-rate (None without overlap) and the PSNR range
    it covers, PSNR at RATES, and the points themselves."""
    rates = [f.bpp for f in result.figures]
    psnrs = [f.psnr for f in result.figures]
    try:
        bd = bd_rate(*jpeg, rates, psnrs)
    except ValueError:
        bd = None
    return {
        "bd_rate_vs_jpeg": bd,
        "bd_range_db": (max(min(psnrs), min(jpeg[1])), min(max(psnrs), max(jpeg[1]))),
        **{f"psnr_at_{r:g}": psnr_at(rates, psnrs, r) for r in RATES},
        "figures": [{"quality": f.quality, "bpp": f.bpp, "psnr": f.psnr} for f in result.figures],
    }


def arm_points(run: Path, jpeg: tuple[list[float], list[float]]) -> dict:
    state = read_state(run / "state.pt")
    results = [ValidationResult.from_dict(h) for h in state.history]
    card = json.loads(torch.load(run / "model.pt", weights_only=True)["provenance"]["validation"])
    results.append(ValidationResult.from_dict(card))
    points = [
        {"minutes": res.train_seconds / 60, "step": res.step, **against_jpeg(res, jpeg)}
        for res in results
    ]
    points[-1]["final"] = True
    cfg = state.train_config
    return {
        "arm": run.name,
        "command": state.run_info.get("sessions", [{}])[0].get("command", ""),
        "steps": state.step,
        "device": state.run_info.get("sessions", [{}])[0].get("device", ""),
        "train_minutes": state.elapsed / 60,
        "patch_size": cfg.patch_size,
        "batch_size": cfg.batch_size,
        "points": points,
    }


def _fmt(v: float | None, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def _range(overlap: tuple[float, float]) -> str:
    lo, hi = overlap
    return f"{lo:.1f}–{hi:.1f} dB" if lo < hi else "none"


def write_markdown(arms: list[dict], jpeg, valid: list[Path], path: Path) -> None:
    lines = [
        "# Training recipes at equal wall-clock time",
        "",
        f"Validation: {len(valid)} images of `data/valid/` (every n-th in name order, n = "
        f"{arms[0].get('valid_every_nth', '?')}), each encoded to a real `.aec` file and "
        "decoded at qualities "
        + ", ".join(f"{f['quality']:g}" for f in arms[0]["points"][0]["figures"])
        + "; JPEG (Pillow, 4:2:0, optimize) on the same images, measured by `report`. "
        "BD-rate is against that JPEG curve (negative: fewer bytes than JPEG at equal PSNR), "
        "over the PSNR range both curves cover, which differs between points: compare arms "
        "by PSNR at equal rate first; "
        "PSNR at a rate is interpolated in log rate on the five points, – where the rate is "
        "outside them.",
        "",
        f"Machine: {platform.machine()}, torch {torch.__version__}; the device and threads "
        "of each run are listed with its command below.",
        "",
        "| arm | minutes | step | BD-rate vs JPEG | over PSNR | PSNR @0.25 | @0.5 | @1 bpp "
        "| q1 bpp | q100 bpp |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for arm in arms:
        for p in arm["points"]:
            figs = p["figures"]
            bd = _fmt(p["bd_rate_vs_jpeg"], "+.1f")
            lines.append(
                f"| {arm['arm']}{' (final)' if p.get('final') else ''} | {p['minutes']:.1f} "
                f"| {p['step']} | {bd}{'%' if p['bd_rate_vs_jpeg'] is not None else ''} "
                f"| {_range(p['bd_range_db'])} "
                f"| {_fmt(p['psnr_at_0.25'], '.2f')} | {_fmt(p['psnr_at_0.5'], '.2f')} "
                f"| {_fmt(p['psnr_at_1'], '.2f')} | {figs[0]['bpp']:.3f} | {figs[-1]['bpp']:.3f} |"
            )
    lines += [
        "",
        "JPEG on the same images:",
        "",
        "| quality | bpp | PSNR |",
        "| ---: | ---: | ---: |",
    ]
    for q, r, s in zip(JPEG_QUALITIES, *jpeg, strict=True):
        lines.append(f"| {q} | {r:.3f} | {s:.2f} |")
    lines += ["", "Commands:", ""]
    lines += [f"- `{arm['command']}` ({arm['device']}, {arm['steps']} steps)" for arm in arms]
    path.write_text("\n".join(lines) + "\n")


def write_plot(arms: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for arm in arms:
        mins = [p["minutes"] for p in arm["points"]]
        axes[0].plot(mins, [p["psnr_at_0.5"] or np.nan for p in arm["points"]], "o-",
                     label=arm["arm"])  # fmt: skip
        axes[1].plot(mins, [p["bd_rate_vs_jpeg"] or np.nan for p in arm["points"]], "o-",
                     label=arm["arm"])  # fmt: skip
    axes[0].set(xlabel="training minutes", ylabel="PSNR at 0.5 bpp (dB)", title="valid/")
    axes[1].set(xlabel="training minutes", ylabel="BD-rate vs JPEG (%)", title="valid/")
    axes[1].axhline(0, color="grey", lw=0.8)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def cmd_report(args: argparse.Namespace) -> None:
    valid = valid_subset(args.valid, args.valid_every_nth)
    jpeg = jpeg_curve(valid)
    arms = [arm_points(run, jpeg) for run in args.runs]
    for arm in arms:
        arm["valid_every_nth"] = args.valid_every_nth
    if args.json:
        rows = {"jpeg": {"qualities": JPEG_QUALITIES, "bpp": jpeg[0], "psnr": jpeg[1]}}
        args.json.write_text(json.dumps({**rows, "arms": arms}, indent=1) + "\n")
    if args.markdown:
        write_markdown(arms, jpeg, valid, args.markdown)
    if args.plot:
        write_plot(arms, args.plot)
    for arm in arms:
        last = arm["points"][-1]
        print(f"{arm['arm']}: {arm['train_minutes']:.1f} min, {arm['steps']} steps, "
              f"BD-rate {_fmt(last['bd_rate_vs_jpeg'], '+.1f')}%, "
              f"PSNR@0.5 {_fmt(last['psnr_at_0.5'], '.2f')}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "report"):
        p = sub.add_parser(name)
        p.add_argument("--valid", type=Path, default=SHARED / "valid")
        p.add_argument("--valid-every-nth", type=int, default=3,
                       help="validate on every n-th image of --valid (sorted)")  # fmt: skip
    run = sub.choices["run"]
    run.add_argument("--arm", choices=sorted(ARMS), required=True)
    run.add_argument("--minutes", type=float, default=20.0)
    run.add_argument("--valid-minutes", type=float, default=5.0)
    run.add_argument("--threads", type=int, default=1)
    run.add_argument("--out", type=Path, required=True)
    run.add_argument("--data", type=Path, nargs="+", default=DEFAULT_DATA)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--batch-size", type=int, default=0, help="override the arm's batch size")
    run.add_argument("--N", type=int, default=64)
    run.add_argument("--M", type=int, default=160)
    run.add_argument("--Nh", type=int, default=64)
    run.add_argument("--init", type=Path, default=None)
    run.add_argument("--model-id", default="")
    run.add_argument("--force", action="store_true")
    report = sub.choices["report"]
    report.add_argument("runs", type=Path, nargs="+")
    report.add_argument("--markdown", type=Path)
    report.add_argument("--plot", type=Path)
    report.add_argument("--json", type=Path)
    args = parser.parse_args()
    (cmd_run if args.command == "run" else cmd_report)(args)


if __name__ == "__main__":
    main()
