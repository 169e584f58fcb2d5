"""Throughput of `aecompress encode` and `decode` on a batch: one input at a time against the
pipeline (cli/pipeline.py), with its torch-thread policies.

    python3 benchmarks/batch_pipeline.py ../shared/data/kodak --count 8 --reps 5 \
        --model pretrained/aec-hp-n64-cpu-2026.11c.pt

Each run is the real command in this process (model loaded once, so start-up is not counted);
the time is the command's own JSON "summary" seconds, from the first input started to the last
finished. The modes of one repetition run in a rotated order, so that a change of load on the
machine spreads over all of them; the table gives the median per image. Modes:

- `one at a time`: the plain path (`common.run_batch`), as with a single input;
- `pipeline, all threads`: torch keeps every thread while the worker runs;
- `pipeline, one fewer`: torch always runs on one thread fewer while the worker has work;
- `pipeline (default)`: one fewer only for the stages the worker outlasted (`TorchThreads`).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
from pathlib import Path

from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aecompress.cli import app, pipeline, torch_threads  # noqa: E402

MODES = {
    "one at a time": {"overlap": False},
    "pipeline, all threads": {"share": math.inf},
    "pipeline, one fewer": {"share": 0.0},
    "pipeline (default)": {},
}


def run(args: list[str], mode: dict) -> float:
    real_worth, real_share = pipeline.worth_overlapping, torch_threads.SHARE
    if mode.get("overlap") is False:
        pipeline.worth_overlapping = lambda count: False
    torch_threads.SHARE = mode.get("share", real_share)
    try:
        result = CliRunner().invoke(app, [*args, "--json", "--force"])
    finally:
        pipeline.worth_overlapping = real_worth
        torch_threads.SHARE = real_share
    if result.exit_code != 0:
        raise SystemExit(f"aecompress {' '.join(args)} failed:\n{result.output}")
    return json.loads(result.stdout)["summary"]["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--count", type=int, default=8, help="images (the first, sorted)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--model", default=None)
    parser.add_argument("--quality", default="50")
    args = parser.parse_args()

    images = sorted(args.folder.glob("*.png"))[: args.count]
    model = ["--model", args.model] if args.model else []
    times: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        aec, dec = Path(tmp) / "aec", Path(tmp) / "dec"
        aec.mkdir()
        dec.mkdir()
        encode = ["encode", *map(str, images), "-o", str(aec), "-q", args.quality, *model]
        run(encode, MODES["one at a time"])  # warm-up, and the .aec files to decode
        files = sorted(map(str, aec.glob("*.aec")))
        decode = ["decode", *files, "-o", f"{dec}/", *(["--model", args.model] * bool(model))]
        names = list(MODES)
        for rep in range(args.reps):
            order = names[rep % len(names) :] + names[: rep % len(names)]
            for name in order:
                for command, argv in (("encode", encode), ("decode", decode)):
                    times.setdefault((command, name), []).append(run(argv, MODES[name]))
    n = len(images)
    print(f"{n} images from {args.folder}, median of {args.reps} runs, ms per image")
    print("| mode | encode | decode |\n| --- | ---: | ---: |")
    for name in MODES:
        cells = [1000 * statistics.median(times[(c, name)]) / n for c in ("encode", "decode")]
        print(f"| {name} | {cells[0]:.0f} | {cells[1]:.0f} |")


if __name__ == "__main__":
    main()
