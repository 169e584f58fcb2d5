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
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aecompress.codec import Codec
from aecompress.errors import AecError
from aecompress.fuzzing import (
    CASE_DEADLINE_S,
    MUTATORS,
    CaseTimeout,
    Seed,
    case,
    deadline,
    decode_like_the_cli,
    make_seeds,
    message_class,
    outcome_of,
)


@dataclass
class FuzzResult:
    cases: int = 0
    seconds: float = 0.0
    outcomes: Counter = field(default_factory=Counter)
    by_mutator: Counter = field(default_factory=Counter)  # (mutator, outcome) -> n
    messages: Counter = field(default_factory=Counter)
    unexpected: list[tuple[int, str, BaseException]] = field(default_factory=list)
    slowest: tuple[float, int, str] = (0.0, -1, "")
    max_rss_growth_mb: float = 0.0


def _max_rss_mb() -> float:
    try:
        import resource
    except ImportError:  # not on Windows
        return 0.0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1 << 20) if sys.platform == "darwin" else rss / 1024


def run(
    codec: Codec,
    seeds: list[Seed],
    cases: int,
    seed: int = 0,
    start: int = 0,
    per_case_deadline: float = CASE_DEADLINE_S,
    progress: Callable[[FuzzResult], None] | None = None,
) -> FuzzResult:
    """Run cases start .. start + cases - 1 of run `seed`."""
    res = FuzzResult()
    rss0 = _max_rss_mb()
    t_start = time.perf_counter()
    for i in range(start, start + cases):
        name, data = case(seed, i, seeds)
        t0 = time.perf_counter()
        exc: BaseException | None = None
        try:
            with deadline(per_case_deadline):
                decode_like_the_cli(codec, data)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # noqa: B036 -- anything else is an outcome to record
            exc = e
        elapsed = time.perf_counter() - t0
        outcome = outcome_of(exc)
        res.cases += 1
        res.outcomes[outcome] += 1
        res.by_mutator[name, outcome] += 1
        if exc is not None:
            res.messages[f"{outcome}: {message_class(exc)}"] += 1
        if outcome == "UNEXPECTED" or elapsed > per_case_deadline:
            res.unexpected.append((i, name, exc or CaseTimeout(f"took {elapsed:.1f} s")))
        res.slowest = max(res.slowest, (elapsed, i, name))
        if progress is not None and res.cases % 5000 == 0:
            res.seconds = time.perf_counter() - t_start
            progress(res)
    res.seconds = time.perf_counter() - t_start
    res.max_rss_growth_mb = _max_rss_mb() - rss0
    return res


def report(res: FuzzResult, top: int = 15) -> str:
    lines = [
        f"{res.cases} cases in {res.seconds:.1f} s ({res.cases / max(res.seconds, 1e-9):.0f}/s), "
        f"slowest case {res.slowest[0] * 1000:.1f} ms (#{res.slowest[1]}, {res.slowest[2]}), "
        f"peak memory growth {res.max_rss_growth_mb:.0f} MB",
        "outcomes: " + ", ".join(f"{k} {v}" for k, v in res.outcomes.most_common()),
        f"unexpected: {len(res.unexpected)}",
    ]
    for i, name, exc in res.unexpected[:20]:
        lines.append(f"  case {i} ({name}): {type(exc).__name__}: {exc}")
    lines.append("by mutator:")
    for m in MUTATORS:
        counts = {o: n for (mm, o), n in res.by_mutator.items() if mm == m}
        if counts:
            parts = ", ".join(f"{o} {n}" for o, n in sorted(counts.items()))
            lines.append(f"  {m:12} {parts}")
    lines.append("most common messages:")
    lines += [f"  {n:7}  {msg}" for msg, n in res.messages.most_common(top)]
    return "\n".join(lines)


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
