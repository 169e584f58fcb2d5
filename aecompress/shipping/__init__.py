"""Shipping a new default model: measure a candidate against the shipped default, decide, edit.

`benchmarks/ship_model.py` is the command; this package does the work, on a repository given as
a folder (`repo`) so that tests can ship into a temporary copy:

1. `prepare`: the candidate as it would ship (re-saved under the new model id, which is part of
   the weights fingerprint, when its training run gave it another one), and every refusal
   that needs no measuring: an id already listed, a file over the size limits, missing folders.
2. `compare`: the candidate and the reference (the default, or another shipped model) on Kodak
   and on `valid/`, every image through real `.aec` files at qualities 1..100
   (`validate.validate_checkpoint`), JPEG 4:2:0 on the same images in the same run; BD-rates
   against JPEG and of the candidate against the reference.
3. `decide`: better when the BD-rate against the reference is negative on both sets.
4. `ship`: the model file, `models.json`, the golden files, the shipped-models table and a
   section in `pretrained/README.md`, and the default-model paragraph of `README.md`. Every
   text is built (and every marker found) before the first file changes, and a failure part
   way restores what was written.

Nothing written into the repository holds an absolute path: paths are recorded relative to the
repository root, as they are typed from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .candidate import (
    MAX_MODEL_BYTES,
    MAX_PRETRAINED_BYTES,
    Prepared,
    check_model_id,
    check_new_id,
    check_shippable,
    check_sizes,
    find_shipped,
    prepare,
    same_weights,
    with_model_id,
)
from .common import (
    CURRENT_DEFAULT,
    GOLDEN_SUFFIXES,
    JPEG_QUALITIES,
    QUALITIES,
    README_BLOCK,
    TABLE_BLOCK,
    GoldenWriter,
    RepoLayout,
    Say,
    ShipRequest,
)
from .comparison import (
    Comparison,
    Decision,
    ModelCurve,
    RdPoint,
    SetComparison,
    bd_between,
    common_psnr,
    compare,
    decide,
    describe_machine,
    jpeg_curve,
    jpeg_point,
    measure_model,
    measure_set,
    report_markdown,
    summary_text,
    write_report,
)
from .edits import (
    index_entry,
    index_text,
    model_section,
    models_readme_text,
    readme_block,
    replace_block,
    ship,
    shipped_models_table,
)

__all__ = [
    "CURRENT_DEFAULT",
    "Comparison",
    "Decision",
    "GOLDEN_SUFFIXES",
    "GoldenWriter",
    "JPEG_QUALITIES",
    "MAX_MODEL_BYTES",
    "MAX_PRETRAINED_BYTES",
    "ModelCurve",
    "Outcome",
    "Prepared",
    "QUALITIES",
    "README_BLOCK",
    "RdPoint",
    "RepoLayout",
    "Say",
    "SetComparison",
    "ShipRequest",
    "TABLE_BLOCK",
    "bd_between",
    "check_model_id",
    "check_new_id",
    "check_shippable",
    "check_sizes",
    "common_psnr",
    "compare",
    "decide",
    "describe_machine",
    "find_shipped",
    "index_entry",
    "index_text",
    "jpeg_curve",
    "jpeg_point",
    "measure_model",
    "measure_set",
    "model_section",
    "models_readme_text",
    "prepare",
    "readme_block",
    "replace_block",
    "report_markdown",
    "run",
    "same_weights",
    "ship",
    "shipped_models_table",
    "summary_text",
    "with_model_id",
    "write_report",
]


# ----- the whole command ---------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    comparison: Comparison
    decision: Decision
    changed: tuple[Path, ...]  # empty unless shipped
    reports: tuple[Path, ...]


def run(
    repo: Path,
    request: ShipRequest,
    write_golden: GoldenWriter,
    workdir: Path,
    say: Say = lambda _: None,
) -> Outcome:
    """Prepare, compare, report, decide, and ship when better (and not a dry run)."""
    prepared = prepare(repo, request, workdir)
    comparison = compare(repo, request, prepared, say=say)
    decision = decide(comparison)
    reports = ()
    if request.report is not None:
        reports = tuple(write_report(request.report, comparison, decision))
    changed: tuple[Path, ...] = ()
    if decision.better and not request.dry_run:
        file = prepared.candidate_file
        written = ship(repo, comparison, file, write_golden, request.lineage, request.report)
        changed = tuple(written)
    return Outcome(comparison, decision, changed, reports)
