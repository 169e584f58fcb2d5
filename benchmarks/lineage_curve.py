"""What the CPU lineage buys per hour, and what its curve predicts.

Reads the comparison reports that `benchmarks/ship_model.py --report` writes for each lineage
session (Kodak and valid/, real files, JPEG in the run), finds each candidate's whole training
time in its history (pretrained/models.json, or the model files given with --model), and fits
the quality-100 PSNR and the BD-rate against JPEG as straight lines in log2 of the training
hours, the shape the N = 64 line has followed so far. From the fit: the hours at which each
target would be met if nothing saturates first (a line in log time is the optimistic case).

    python3 benchmarks/lineage_curve.py benchmarks/compare-2026.12c.json \
        benchmarks/compare-lineage-s000{2,3,4,5}.json \
        --markdown benchmarks/lineage-curve.md --plot benchmarks/lineage-curve.png
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TARGET_TOP_PSNR, TARGET_BD_VS_JPEG = 37.0, -40.0


@dataclass(frozen=True)
class SessionPoint:
    """One lineage session's model as its comparison report measured it."""

    model_id: str  # the id it was trained as
    hours: float  # wall-clock training time of every run that made it
    steps: int
    kodak_q100: tuple[float, float]  # (bpp, PSNR dB) at quality 100, 24 Kodak images
    valid_q100: tuple[float, float]
    kodak_bd_jpeg: float  # BD-rate (%) against JPEG over the model's own range
    valid_bd_jpeg: float


def training_chains(models: list[Path]) -> dict[str, tuple[int, float]]:
    """Every model a history knows → (steps, seconds) of its chain up to and including its run,
    keyed both by the id of each run and by the fingerprint of each whole chain's weights (a
    shipped model's last run carries its shipped id, not the id it was trained as)."""
    from aecompress.modelfile import read_identity
    from aecompress.registry import read_index
    from aecompress.training_history import file_history

    chains = [(m.fingerprint, m.history) for m in read_index().models]
    chains += [(read_identity(p).fingerprint.hex(), file_history(p)) for p in models]
    done: dict[str, tuple[int, float]] = {}
    for fingerprint, runs in chains:
        steps, seconds = 0, 0.0
        for run in runs:
            steps, seconds = steps + run.steps, seconds + run.seconds
            done.setdefault(run.model_id, (steps, seconds))
        done.setdefault(fingerprint, (steps, seconds))
    return done


def session_point(report: dict, chains: dict[str, tuple[int, float]]) -> SessionPoint:
    name = report["trained_as"]
    found = chains.get(report["kodak"]["candidate"]["fingerprint"]) or chains.get(name)
    if found is None:
        raise SystemExit(f"no training history names {name}: give its model file with --model")
    steps, seconds = found

    def top(part: str) -> tuple[float, float]:
        last = max(report[part]["candidate"]["points"], key=lambda p: p["quality"])
        return last["bpp"], last["psnr"]

    return SessionPoint(
        name, seconds / 3600, steps, top("kodak"), top("valid"),
        report["kodak"]["candidate"]["bd_vs_jpeg"], report["valid"]["candidate"]["bd_vs_jpeg"],
    )  # fmt: skip


def fit(hours: list[float], values: list[float]) -> tuple[float, float]:
    """Least squares value = a + b·log2(hours) → (a, b): b is the gain per doubling."""
    b, a = np.polyfit(np.log2(hours), values, 1)
    return float(a), float(b)


def hours_to(target: float, a: float, b: float, now: float, rising: bool) -> float:
    """Hours at which the fitted line meets the target, counting from `now`: `now` where it
    already has, inf where it never will (it moves the wrong way, or 60 doublings are not
    enough). rising: whether higher values are better (PSNR) or lower ones (BD-rate)."""
    value = a + b * math.log2(now)
    if (value >= target) if rising else (value <= target):
        return now
    if (b <= 0) if rising else (b >= 0):
        return math.inf
    doublings = (target - value) / b
    return math.inf if doublings > 60 else now * 2**doublings


def markdown(points: list[SessionPoint], fits: dict[str, tuple[float, float]]) -> str:
    lines = [
        "| session model | steps | training hours | Kodak q100 | valid/ q100 "
        "| Kodak BD-rate vs JPEG | valid/ BD-rate vs JPEG |",
        "| --- | ---: | ---: | --- | --- | ---: | ---: |",
    ]
    for p in points:
        lines.append(
            f"| `{p.model_id}` | {p.steps:,} | {p.hours:.2f} | {p.kodak_q100[0]:.3f} bpp "
            f"{p.kodak_q100[1]:.2f} dB | {p.valid_q100[0]:.3f} bpp {p.valid_q100[1]:.2f} dB "
            f"| {p.kodak_bd_jpeg:+.1f}% | {p.valid_bd_jpeg:+.1f}% |"
        )
    now = points[-1].hours
    lines += ["", "| fitted on the sessions | per doubling of training time | reaches |",
              "| --- | ---: | --- |"]  # fmt: skip
    for name, (a, b), target, unit in (
        ("Kodak q100 PSNR", fits["kodak_q100"], TARGET_TOP_PSNR, "dB"),
        ("valid/ q100 PSNR", fits["valid_q100"], TARGET_TOP_PSNR, "dB"),
        ("Kodak BD-rate vs JPEG", fits["kodak_bd"], TARGET_BD_VS_JPEG, "%"),
    ):
        h = hours_to(target, a, b, now, rising=unit == "dB")
        when = "never, on this line" if math.isinf(h) else f"{h:,.0f} h ({h / now:,.0f}× now)"
        lines.append(f"| {name} | {b:+.2f} {unit} | {target:g} {unit} at {when} |")
    return "\n".join(lines) + "\n"


def plot(points: list[SessionPoint], fits: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hours = [p.hours for p in points]
    span = np.geomspace(min(hours) * 0.8, max(hours) * 40, 50)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, label, values in (
        ("kodak_q100", "Kodak", [p.kodak_q100[1] for p in points]),
        ("valid_q100", "valid/", [p.valid_q100[1] for p in points]),
    ):
        a, b = fits[key]
        (line,) = left.plot(hours, values, "o", label=f"{label}, measured")
        left.plot(span, a + b * np.log2(span), "--", color=line.get_color(),
                  label=f"{label}, fit ({b:+.2f} dB per doubling)")  # fmt: skip
    left.axhline(TARGET_TOP_PSNR, color="grey", lw=0.8)
    left.set(xscale="log", xlabel="training hours (wall clock, whole history)",
             ylabel="PSNR at quality 100 (dB)", title="Top of the range")  # fmt: skip
    a, b = fits["kodak_bd"]
    right.plot(hours, [p.kodak_bd_jpeg for p in points], "o", label="Kodak, measured")
    right.plot(span, a + b * np.log2(span), "--", label=f"fit ({b:+.2f} points per doubling)")
    right.axhline(TARGET_BD_VS_JPEG, color="grey", lw=0.8)
    right.set(xscale="log", xlabel="training hours (wall clock, whole history)",
              ylabel="BD-rate vs JPEG (%)", title="Whole range, Kodak")  # fmt: skip
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("reports", type=Path, nargs="+", help="ship_model.py --report JSON files")
    ap.add_argument("--model", type=Path, action="append", default=[],
                    help="a model file whose history is in no shipped model's")  # fmt: skip
    ap.add_argument("--markdown", type=Path)
    ap.add_argument("--plot", type=Path)
    args = ap.parse_args()

    chains = training_chains(args.model)
    points = sorted(
        (session_point(json.loads(r.read_text()), chains) for r in args.reports),
        key=lambda p: p.hours,
    )
    if len(points) < 2:
        raise SystemExit("two sessions at least, to fit a line")
    hours = [p.hours for p in points]
    fits = {
        "kodak_q100": fit(hours, [p.kodak_q100[1] for p in points]),
        "valid_q100": fit(hours, [p.valid_q100[1] for p in points]),
        "kodak_bd": fit(hours, [p.kodak_bd_jpeg for p in points]),
    }
    text = markdown(points, fits)
    print(text, end="")
    if args.markdown:
        args.markdown.write_text(text)
    if args.plot:
        plot(points, fits, args.plot)


if __name__ == "__main__":
    main()
