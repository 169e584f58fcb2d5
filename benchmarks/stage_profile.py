"""Where the time of `encode` and `decode` goes, stage by stage, for one image and for a batch.

For each model: loading it, then every stage of encoding (read the image, g_a, hyper-analysis,
h_s mean, the integer scale network, ANS coding of z and y, the container, writing the file,
and what the report costs: g_s, PSNR, MS-SSIM) and of decoding (read, container, ANS z, h_s
mean, integer scale network, ANS y, g_s, conversion to pixels, PNG write), each clocked on its
own in one process. "single" is the median of --repeats runs on one image after a warm-up;
"batch" is every image of the folder once, summed. Beside them: the process start and imports
(a fresh interpreter importing the library), and the whole CLI command, single and batch, as a
user runs it. Timing needs no trained weights, but the shipped models give real symbol counts.

    python3 benchmarks/stage_profile.py ../shared/data/kodak \
        --model pretrained/aec-hp-n64-cpu-2026.11c.pt \
        --model pretrained/aec-hp-n128-gpu-2026.12b.pt \
        --label after --before benchmarks/stage-profile-before.json \
        --json benchmarks/stage-profile.json --markdown benchmarks/stage-profile.md

On CUDA (--device cuda) every clock reading waits for the device first (synchronize).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from aecompress import container
from aecompress.allocator import keep_freed_memory
from aecompress.bench.machine import machine_info
from aecompress.checkpoint import load_checkpoint
from aecompress.codec import Codec, to_uint8
from aecompress.container import Header, Streams
from aecompress.device import resolve_device
from aecompress.imagefile import restore_image, save_image
from aecompress.imageio import load_image
from aecompress.metrics import ms_ssim, psnr
from aecompress.modes import ColourMode
from aecompress.quality import quality_to_centi

ROOT = Path(__file__).resolve().parents[1]

ENCODE_STAGES = (
    "read image",
    "g_a",
    "hyper-analysis",
    "h_s mean",
    "integer scale net",
    "ANS z",
    "ANS y",
    "container",
    "write .aec",
)
REPORT_STAGES = ("report: g_s", "report: PSNR", "report: MS-SSIM")
DECODE_STAGES = (
    "read .aec",
    "container",
    "ANS z",
    "h_s mean",
    "integer scale net",
    "ANS y",
    "g_s",
    "to pixels",
    "write PNG",
)


class Clock:
    """Stage times of one run; on CUDA each reading waits for the queued kernels."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.times: dict[str, float] = {}

    def __call__(self, stage: str, fn: Callable, *args):
        if self.cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        result = fn(*args)
        if self.cuda:
            torch.cuda.synchronize()
        self.times[stage] = self.times.get(stage, 0.0) + time.perf_counter() - t0
        return result


@torch.inference_mode()
def encode_stages(codec: Codec, path: Path, out: Path, quality: float) -> dict[str, float]:
    """One image through every stage of `encode` (and its report), as the codec runs them."""
    clock = Clock(codec.device)
    image = clock("read image", load_image, path)
    h, w = image.rgb.shape[:2]
    q = quality_to_centi(quality) / 100
    y_raw = clock("g_a", codec.analyse, image.rgb)
    y = codec.model.apply_gain(y_raw, q)
    z_hat = clock("hyper-analysis", codec.hyper_analyse, y)
    mu = clock("h_s mean", codec.prior_mean, z_hat)
    indexes = clock("integer scale net", codec.scale_indexes, z_hat)
    sym = codec.residuals(y, mu)
    z = clock("ANS z", codec.code_z, z_hat)
    y_bytes = clock("ANS y", codec.code_y, sym, indexes)
    header = Header(
        model_id=codec.checkpoint.model_id,
        fingerprint=codec.checkpoint.fingerprint,
        width=w,
        height=h,
        mode=ColourMode.RGB,
        quality_centi=quality_to_centi(quality),
    )
    data = clock("container", container.pack, header, Streams(z=z, y=y_bytes))
    clock("write .aec", out.write_bytes, data)
    x_hat = clock("report: g_s", lambda: codec.synthesis(sym.to(codec.device).float() + mu, q))
    rgb = to_uint8(x_hat, h, w)
    clock("report: PSNR", psnr, image.rgb, rgb)
    clock("report: MS-SSIM", ms_ssim, image.rgb, rgb)
    return clock.times


@torch.inference_mode()
def decode_stages(codec: Codec, aec: Path, out: Path) -> dict[str, float]:
    """One .aec file through every stage of `decode`, written as PNG."""
    clock = Clock(codec.device)
    data = clock("read .aec", aec.read_bytes)
    header, streams = clock("container", container.unpack, data)
    z_hat = clock("ANS z", codec.decode_z, streams.z, header.height, header.width)
    mu = clock("h_s mean", codec.prior_mean, z_hat)
    indexes = clock("integer scale net", codec.scale_indexes, z_hat)
    residuals = clock("ANS y", codec.decode_y, streams.y, indexes)
    x_hat = clock(
        "g_s", lambda: codec.synthesis(residuals.to(codec.device).float() + mu, header.quality)
    )
    rgb = clock("to pixels", to_uint8, x_hat, header.height, header.width)
    clock(
        "write PNG",
        lambda: out.write_bytes(save_image(restore_image(rgb, header.mode), "PNG", None)),
    )
    return clock.times


def write_png(out: Path, rgb, mode: ColourMode) -> None:
    out.write_bytes(save_image(restore_image(rgb, mode), "PNG", None))


def median_times(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def summed_times(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: sum(r[k] for r in runs) for k in runs[0]}


def profile_model(
    model: Path, paths: list[Path], image: Path, device: torch.device, quality: float, repeats: int
) -> dict:
    loads = []
    for _ in range(3):
        t0 = time.perf_counter()
        codec = Codec(load_checkpoint(model), device)
        loads.append(time.perf_counter() - t0)
    cfg = codec.checkpoint.config
    with tempfile.TemporaryDirectory() as tmp:
        aec, png = Path(tmp, "x.aec"), Path(tmp, "x.png")
        encode_stages(codec, image, aec, quality)  # warm-up: allocator, kernel choice, caches
        decode_stages(codec, aec, png)
        single_enc, single_dec = [], []
        for _ in range(repeats):
            single_enc.append(encode_stages(codec, image, aec, quality))
            single_dec.append(decode_stages(codec, aec, png))
        batch_enc, batch_dec = [], []
        for p in paths:
            batch_enc.append(encode_stages(codec, p, Path(tmp, p.stem + ".aec"), quality))
        for p in paths:
            batch_dec.append(decode_stages(codec, Path(tmp, p.stem + ".aec"), png))
    return {
        "model_id": codec.checkpoint.model_id,
        "model_file": str(model),
        "N": cfg.N,
        "M": cfg.M,
        "Nh": cfg.Nh,
        "load_s": statistics.median(loads),
        "single": {"encode": median_times(single_enc), "decode": median_times(single_dec)},
        "batch": {
            "images": len(paths),
            "megapixels": sum(load_image(p).rgb[..., 0].size for p in paths) / 1e6,
            "encode": summed_times(batch_enc),
            "decode": summed_times(batch_dec),
        },
    }


def _wall(cmd: list[str], runs: int) -> float:
    # The checkout first, then whatever the caller had (a --target folder of wheels, say).
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def process_start(runs: int) -> dict[str, float]:
    """A fresh interpreter: bare, and importing what encode and decode use (torch included)."""
    return {
        "python": _wall([sys.executable, "-c", "pass"], runs),
        "imports": _wall([sys.executable, "-c", "import aecompress.operations"], runs),
    }


def cli_times(
    model: Path, paths: list[Path], image: Path, quality: float, runs: int, device: str
) -> dict[str, float]:
    """The commands as a user types them: one image, then the whole folder in one call."""
    cli = [sys.executable, "-m", "aecompress"]
    common = ["--model", str(model), "--device", device, "--force"]
    with tempfile.TemporaryDirectory() as tmp:
        aec = f"{tmp}/one.aec"
        enc = [*cli, "encode", str(image), "-o", aec, "-q", str(quality), *common]
        out = {"encode one": _wall(enc, runs)}
        dec = [*cli, "decode", aec, "-o", f"{tmp}/one.png", "--device", device, "--force"]
        out["decode one"] = _wall(dec, runs)
        encoded = f"{tmp}/enc/"
        files = [str(p) for p in paths]
        enc_all = [*cli, "encode", *files, "-o", encoded, "--mkdir", "-q", str(quality), *common]
        out["encode batch, --no-metrics"] = _wall([*enc_all, "--no-metrics"], 1)
        out["encode batch"] = _wall(enc_all, 1)
        aecs = sorted(str(p) for p in Path(encoded).glob("*.aec"))
        dec_all = [*cli, "decode", *aecs, "-o", f"{tmp}/dec/", "--mkdir", "--device", device]
        out["decode batch"] = _wall([*dec_all, "--force"], 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="images, e.g. ../shared/data/kodak")
    ap.add_argument("--model", type=Path, action="append", required=True)
    ap.add_argument("--image", default=None, help="the single image (default: the first)")
    ap.add_argument("--quality", type=float, default=50.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cli-runs", type=int, default=3, help="0 skips the CLI timings")
    ap.add_argument(
        "--default-malloc",
        action="store_true",
        help="leave the C allocator's policy as it is (encode and decode keep freed memory)",
    )
    ap.add_argument("--label", default="current")
    ap.add_argument("--before", type=Path, default=None, help="an earlier JSON to compare with")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--markdown", type=Path, default=None)
    args = ap.parse_args()

    kept = False if args.default_malloc else keep_freed_memory()  # as encode and decode do
    paths = sorted(p for p in args.folder.iterdir() if p.suffix.lower() == ".png")
    image = args.folder / args.image if args.image else paths[0]
    device = resolve_device(args.device)
    result = {
        "label": args.label,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": machine_info().__dict__,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "keep_freed_memory": kept,
        "quality": args.quality,
        "image": image.name,
        "process": process_start(max(args.cli_runs, 1)),
        "models": [],
    }
    for model in args.model:
        entry = profile_model(model, paths, image, device, args.quality, args.repeats)
        if args.cli_runs:
            entry["cli"] = cli_times(model, paths, image, args.quality, args.cli_runs, args.device)
        result["models"].append(entry)
        print(f"{entry['model_id']}: done", file=sys.stderr)
    before = json.loads(args.before.read_text()) if args.before else None
    text = markdown(result, before)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(text)


# ----- the markdown report ---------------------------------------------------------------------


def _ms(s: float) -> str:
    return f"{s * 1000:.1f}"


def _totals(times: dict[str, float]) -> tuple[float, float]:
    """(the file's own stages, the report's) of an encode or a decode."""
    report = sum(v for k, v in times.items() if k.startswith("report:"))
    return sum(times.values()) - report, report


def _model_table(entry: dict, old: dict | None, label: str, old_label: str | None) -> list[str]:
    n = entry["batch"]["images"]
    cols = ["stage", f"1 image ms ({label})", f"{n} images, ms per image ({label})"]
    if old:
        cols[1:1] = [f"1 image ms ({old_label})"]
        cols.insert(3, f"{n} images, ms per image ({old_label})")
    lines = ["| " + " | ".join(cols) + " |", "|" + " --- |" + " ---: |" * (len(cols) - 1)]

    def row(name: str, new_single: float, new_batch: float, old_single, old_batch) -> str:
        cells = [name, _ms(new_single), _ms(new_batch / n)]
        if old:
            cells[1:1] = ["–" if old_single is None else _ms(old_single)]
            cells.insert(3, "–" if old_batch is None else _ms(old_batch / n))
        return "| " + " | ".join(cells) + " |"

    for kind, stages in (("encode", (*ENCODE_STAGES, *REPORT_STAGES)), ("decode", DECODE_STAGES)):
        single, batch = entry["single"][kind], entry["batch"][kind]
        o_single = old["single"][kind] if old else {}
        o_batch = old["batch"][kind] if old else {}
        for stage in stages:
            lines.append(
                row(
                    f"{kind}: {stage}",
                    single[stage],
                    batch[stage],
                    o_single.get(stage),
                    o_batch.get(stage),
                )
            )
        parts = [("the file", False)] + ([("with the report", True)] if kind == "encode" else [])
        for part, with_report in parts:

            def total(t: dict, with_report: bool = with_report) -> float | None:
                if not t:
                    return None
                own, report = _totals(t)
                return own + report if with_report else own

            lines.append(
                row(
                    f"**{kind} total, {part}**",
                    total(single),
                    total(batch),
                    total(o_single),
                    total(o_batch),
                )
            )
    return lines


def markdown(result: dict, before: dict | None) -> str:
    m = result["machine"]
    out = [
        f"# Stage profile ({result['label']})",
        "",
        f"`{result['command']}`",
        "",
        f"{m['processor']}, {m['cpu_count']} CPUs, {result['device']} with "
        f"{result['torch_threads']} torch threads; Python {m['python']}, torch {m['torch']}; "
        f"{m['date']}. Quality {result['quality']:g}; single image `{result['image']}`.",
        "",
        f"Process start: bare Python {result['process']['python']:.2f} s; importing "
        f"`aecompress.operations` (torch included) {result['process']['imports']:.2f} s.",
    ]
    if before:
        p = before["process"]
        out[-1] += f" ({before['label']}: {p['python']:.2f} s and {p['imports']:.2f} s)"
    old_models = {e["model_id"]: e for e in before["models"]} if before else {}
    for entry in result["models"]:
        old = old_models.get(entry["model_id"])
        old_label = before["label"] if before else None
        n, mp = entry["batch"]["images"], entry["batch"]["megapixels"]
        out += [
            "",
            f"## {entry['model_id']} (N={entry['N']}, M={entry['M']}, Nh={entry['Nh']})",
            "",
            f"Model load (file to codec): {_ms(entry['load_s'])} ms"
            + (f" ({old_label}: {_ms(old['load_s'])} ms)" if old else "")
            + ".",
            "",
            *_model_table(entry, old, result["label"], old_label),
            "",
        ]
        for kind in ("encode", "decode"):
            own = _totals(entry["batch"][kind])[0]
            line = f"- {kind}, in process: {n / own:.2f} images/s, {mp / own:.2f} MP/s"
            if old:
                o_own = _totals(old["batch"][kind])[0]
                line += f" ({old_label}: {n / o_own:.2f} images/s; ×{o_own / own:.2f})"
            out.append(line)
        if "cli" in entry:
            c = entry["cli"]
            line = (
                f"- CLI wall time: encode one image {c['encode one']:.2f} s, decode one "
                f"{c['decode one']:.2f} s; all {n} in one call: encode {c['encode batch']:.1f} s "
                f"({n / c['encode batch']:.2f} images/s), decode {c['decode batch']:.1f} s "
                f"({n / c['decode batch']:.2f} images/s)"
            )
            if "encode batch, --no-metrics" in c:
                t = c["encode batch, --no-metrics"]
                line += f"; encode all with --no-metrics {t:.1f} s ({n / t:.2f} images/s)"
            if old and "cli" in old:
                o = old["cli"]
                line += (
                    f" ({old_label}: {o['encode one']:.2f} / {o['decode one']:.2f} s, "
                    f"{o['encode batch']:.1f} / {o['decode batch']:.1f} s)"
                )
            out.append(line)
    out.append(f"\nPlatform: {m['platform']} ({platform.machine()}).")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
