"""Compare a candidate model with the shipped default on Kodak and valid/; ship it if better.

    python3 benchmarks/ship_model.py CANDIDATE.pt --model-id aec-hp-n64-cpu-2026.12c \
        --kodak ../shared/data/kodak --valid ../shared/data/valid [--threads 2] [--dry-run] \
        [--lineage] [--report benchmarks/compare-2026.12c.md]

Every image goes through real .aec files at qualities 1, 10, 25, 50, 75, 90 and 100 with both
models, and JPEG 4:2:0 is measured on the same images in the same run. The candidate is better
when its BD-rate against the default (or `--against ID`) is negative on both sets; then, unless
--dry-run, it becomes the default: pretrained/<model-id>.pt (re-saved under that id when it was
trained under another), pretrained/models.json, tests/golden/<model-id>.*, the shipped-models
table and a section in pretrained/README.md, and the default-model paragraph of README.md.
Older models are never removed. Exit status: 0 for a completed comparison, shipped or not;
1 for an error (one line on stderr); 2 for a usage error.
The work is in aecompress/shipping/.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("candidate", type=Path, help="the model file to compare (and ship)")
    ap.add_argument("--model-id", required=True, help="the id it ships under")
    ap.add_argument("--kodak", type=Path, required=True, help="folder of the Kodak images")
    ap.add_argument("--valid", type=Path, required=True, help="folder of the valid/ images")
    ap.add_argument(
        "--against",
        help="id or fingerprint of the shipped model to beat (default: the default model)",
    )
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    ap.add_argument("--dry-run", action="store_true", help="compare and decide; change nothing")
    ap.add_argument(
        "--lineage", action="store_true",
        help='also name it in models.json as "lineage", where CPU training continues from',
    )  # fmt: skip
    ap.add_argument("--report", type=Path, help="write this markdown report, and .json beside it")
    ap.add_argument("--repo", type=Path, default=ROOT, help="the checkout to ship into (this one)")
    args = ap.parse_args(argv)
    if args.report is not None and args.report.suffix != ".md":
        ap.error("--report: a .md file (its .json is written beside it)")
    if args.threads < 0:
        ap.error("--threads: 0 or more")
    return args


def write_golden(model_id: str, golden: Path, pretrained: Path) -> object:
    """tests/golden/make_golden.py's writer; imported only when a model ships (it lives with
    the tests, beside the image generator of conftest.py)."""
    from aecompress.errors import AecError

    if str(ROOT / "tests") not in sys.path:
        sys.path.insert(0, str(ROOT / "tests"))
    try:
        from golden.make_golden import write_golden as write
    except ImportError as e:  # the ship is rolled back; say why in one line
        raise AecError(f"cannot import tests/golden/make_golden.py ({e})") from e
    return write(model_id, golden, pretrained)


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Imported after the arguments are checked: --help and usage errors answer at once.
    import torch

    from aecompress import shipping
    from aecompress.errors import AecError

    if args.threads:
        torch.set_num_threads(args.threads)
    request = shipping.ShipRequest(
        candidate=args.candidate, model_id=args.model_id, kodak=args.kodak, valid=args.valid,
        against=args.against, threads=args.threads, lineage=args.lineage, report=args.report,
        dry_run=args.dry_run,
    )  # fmt: skip
    layout = shipping.RepoLayout(args.repo)
    try:
        with tempfile.TemporaryDirectory() as work:
            outcome = shipping.run(args.repo, request, write_golden, Path(work), say)
    except (AecError, OSError) as e:
        print(f"ship_model: error: {e}", file=sys.stderr)
        return 1
    print(shipping.summary_text(outcome.comparison, outcome.decision))
    for path in outcome.reports:
        print(f"wrote {path}")
    if outcome.changed:
        print(f"shipped {args.model_id} as the default:")
        print("\n".join(f"  {layout.recorded(p)}" for p in outcome.changed))
    elif outcome.decision.better:
        print("--dry-run: nothing changed")
    else:
        print("not shipped: nothing changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
