"""Fuzz the .aec decoder: mutate valid files and check that decoding only ever fails cleanly.

Seed files are encoded with a model (by default the tiny seeded test model of tests/conftest.py)
in every colour mode; each case mutates one of them -- truncation, bit flips, byte insertions and
deletions, trailing bytes, header field edits, replaced / swapped / spliced streams, foreign
model ids -- with and without the CRC recomputed (as an adversary would), and runs the result
through the real decode path (the engine is aecompress/fuzzing.py). A case may succeed or raise
an AecError subclass; anything else is an unexpected outcome and a bug, and so is a case
running past the per-case deadline.

    python3 benchmarks/fuzz.py --cases 200000 --seed 1

Prints the cases, the seconds, the outcomes and the most common messages; exits 1 if any case
was unexpected. Case i of a run is reproducible on its own: `--replay i --seed N` shows it.
tests/test_fuzz.py runs the same engine at a size that fits the default test suite.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aecompress.codec import Codec
from aecompress.errors import AecError
from aecompress.fuzzing import (
    CASE_DEADLINE_S,
    FuzzResult,
    case,
    decode_like_the_cli,
    make_seeds,
    report,
    run,
)


def load_codec(model: Path | None) -> Codec:
    import torch

    torch.set_num_threads(1)
    if model is not None:
        from aecompress.checkpoint import load_checkpoint

        return Codec(load_checkpoint(model), "cpu")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import make_tiny_checkpoint  # the seeded tiny model of the test suite

    return Codec(make_tiny_checkpoint(), "cpu")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", type=int, default=0, help="First case index.")
    ap.add_argument("--model", type=Path, default=None, help="Default: the tiny test model.")
    ap.add_argument("--replay", type=int, default=None, help="Run case i alone, with traceback.")
    ap.add_argument("--deadline", type=float, default=CASE_DEADLINE_S, help="Seconds per case.")
    args = ap.parse_args()

    codec = load_codec(args.model)
    seeds = make_seeds(codec)
    if args.replay is not None:
        name, data = case(args.seed, args.replay, seeds)
        print(f"case {args.replay} ({name}): {len(data)} bytes: {data.hex()}")
        try:
            decode_like_the_cli(codec, data)
            print("ok")
        except AecError as e:
            print(f"{type(e).__name__}: {e}")
        return

    def progress(res: FuzzResult) -> None:
        print(
            f"  {res.cases} cases, {res.seconds:.0f} s, unexpected {len(res.unexpected)}",
            file=sys.stderr,
        )

    print(
        f"fuzzing {args.cases} cases, seed {args.seed}, {len(seeds)} seed files "
        f"({', '.join(s.header.mode.name for s in seeds)}), model {codec.checkpoint.model_id}"
    )
    res = run(codec, seeds, args.cases, args.seed, args.start, args.deadline, progress)
    print(report(res))
    sys.exit(1 if res.unexpected else 0)


if __name__ == "__main__":
    main()
