"""The files that shipping edits (models.json, the golden files, both READMEs): every text is
built before the first file changes, and a failure part way restores what was written."""

from __future__ import annotations

import json
import shutil
import textwrap
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from ..errors import AecError
from ..fileio import write_atomic
from ..modelfile import read_identity
from ..registry import INDEX_FILE, read_index
from ..training_history import TrainingRun, file_history
from .candidate import check_shippable, mebibytes
from .common import CURRENT_DEFAULT, README_BLOCK, TABLE_BLOCK, GoldenWriter, RepoLayout
from .comparison import Comparison, SetComparison, percent

# ----- the files that shipping edits ------------------------------------------------------------


def _marker(name: str, end: str) -> str:
    return f"<!-- {name}:{end} -->"


def replace_block(text: str, name: str, body: str, where: str) -> str:
    """`text` with what lies between the markers of `name` replaced by `body`."""
    begin, end = _marker(name, "begin"), _marker(name, "end")
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise AecError(f"{where}: needs one {begin} … {end} block")
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    return f"{head}{begin}\n\n{body.strip()}\n\n{end}{tail}"


def _wrap(text: str) -> str:
    # Never at a hyphen: model ids are hyphenated, and a split one could not be searched for.
    return textwrap.fill(text, width=99, break_on_hyphens=False, break_long_words=False)


def _quality(q: float) -> int | float:
    return int(q) if float(q).is_integer() else q


def index_entry(comparison: Comparison, runs: Sequence[TrainingRun] = ()) -> dict:
    """The models.json entry, rounded as the existing entries are, with every training run that
    made the weights (`aecompress models` shows their total)."""
    kodak = comparison.kodak.candidate
    history = [asdict(r) for r in runs]
    if history:  # the last run exported the file under the id it was trained as
        history[-1]["model_id"] = kodak.model_id
    return {
        "model_id": kodak.model_id,
        "file": f"{kodak.model_id}.pt",
        "fingerprint": kodak.fingerprint,
        "kodak": {
            "command": comparison.command,
            "machine": comparison.machine,
            "points": [
                {"quality": _quality(p.quality), "bpp": round(p.bpp, 3), "psnr": round(p.psnr, 2)}
                for p in kodak.points
            ],
        },
        **({"history": history} if history else {}),
    }


def index_text(
    raw: dict, comparison: Comparison, lineage: bool, runs: Sequence[TrainingRun] = ()
) -> str:
    """models.json with the candidate added and made the default (and the lineage's start)."""
    model_id = comparison.candidate_id
    head = {"default": model_id}
    if lineage or "lineage" in raw:  # kept beside "default", where a reader looks for it
        head["lineage"] = model_id if lineage else raw["lineage"]
    rest = {k: v for k, v in raw.items() if k not in head}
    rest["models"] = [*raw["models"], index_entry(comparison, runs)]
    return json.dumps({**head, **rest}, indent=2, ensure_ascii=False) + "\n"


def shipped_models_table(raw: dict, sizes: dict[str, int]) -> str:
    """The table of pretrained/README.md: the default first, then the others newest first."""
    models = list(reversed(raw["models"]))
    models.sort(key=lambda m: m["model_id"] != raw["default"])  # stable: keeps newest first
    lines = ["| model id | file | fingerprint | default |", "| --- | --- | --- | --- |"]
    for m in models:
        default = "yes" if m["model_id"] == raw["default"] else "no (kept: its files decode)"
        size = f" ({mebibytes(sizes[m['file']])})" if m["file"] in sizes else ""
        lines.append(
            f"| `{m['model_id']}` | `{m['file']}`{size} | `{m['fingerprint']}` | {default} |"
        )
    return "\n".join(lines)


def _h1_lines(lines: list[str]) -> list[int]:
    """Indices of level-1 headings, outside fenced code (where `# ` starts a shell comment)."""
    found, fenced = [], False
    for i, line in enumerate(lines):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("# "):
            found.append(i)
    return found


def _section(lines: list[str], model_id: str) -> tuple[int, int] | None:
    """The lines of a model's `# \\`id\\`` section: its heading up to the next heading."""
    heads = _h1_lines(lines)
    for k, i in enumerate(heads):
        if lines[i] == f"# `{model_id}`" or lines[i].startswith(f"# `{model_id}` "):
            return i, heads[k + 1] if k + 1 < len(heads) else len(lines)
    return None


def _fmt_bd_pair(s: SetComparison) -> tuple[str, str]:
    return percent(s.candidate.bd_vs_jpeg), percent(s.reference.bd_vs_jpeg)


def _link(report: str | None, prefix: str) -> str:
    return "" if report is None else f" ([{Path(report).name}]({prefix}{report}))"


def model_section(comparison: Comparison, size: int, report: str | None) -> str:
    """A shipped model's section of pretrained/README.md, from this run's figures."""
    c = comparison
    cand, ref = c.kodak.candidate, c.reference_id
    renamed = (
        f" Trained as `{c.trained_as}` and shipped under this id, which is part of the fingerprint."
        if c.trained_as != c.candidate_id
        else ""
    )
    kodak_bd, kodak_ref_bd = _fmt_bd_pair(c.kodak)
    valid_bd, valid_ref_bd = _fmt_bd_pair(c.valid)
    status = (
        f"**Status: BD-rate {kodak_bd} against JPEG 4:2:0 on Kodak** ({kodak_ref_bd} for `{ref}` "
        f"in the same run; {valid_bd} against {valid_ref_bd} on `valid/`); against `{ref}` at "
        f"equal PSNR: {percent(c.kodak.bd_vs_reference)} on Kodak, "
        f"{percent(c.valid.bd_vs_reference)} on `valid/`."
    )
    measured = textwrap.fill(
        f"- Measured ({c.machine}): every image of Kodak ({c.kodak.images}) and `valid/` "
        f"({c.valid.images}) through real `.aec` files at qualities 1–100, JPEG 4:2:0 "
        f"(`optimize=True`) on the same images in the same run{_link(report, '../')}:",
        width=99, subsequent_indent="  ", break_on_hyphens=False, break_long_words=False,
    )  # fmt: skip
    # The command on a line of its own, unwrapped: it is copied and searched for whole.
    measured += f"\n  `{c.command}`"
    points = cand.points
    lines = [
        f"# `{cand.model_id}`",
        "",
        _wrap(
            f"`{cand.model_id}.pt` ({mebibytes(size)} = {size:,} bytes), {CURRENT_DEFAULT}; "
            f"weights fingerprint `{cand.fingerprint}`.{renamed}"
        ),
        "",
        _wrap(status),
        "",
        measured,
        "",
        "| model | Kodak BD-rate vs JPEG | `valid/` BD-rate vs JPEG |",
        "| --- | ---: | ---: |",
        f"| `{cand.model_id}` | {kodak_bd} | {valid_bd} |",
        f"| `{ref}` | {kodak_ref_bd} | {valid_ref_bd} |",
        "",
        "| quality | " + " | ".join(f"{p.quality:g}" for p in points) + " |",
        "| --- |" + " ---: |" * len(points),
        "| bpp | " + " | ".join(f"{p.bpp:.3f}" for p in points) + " |",
        "| PSNR dB | " + " | ".join(f"{p.psnr:.2f}" for p in points) + " |",
        "",
    ]
    return "\n".join(lines) + "\n"


def _mark_no_longer_default(lines: list[str], span: tuple[int, int], new_id: str) -> None:
    """Say in the previous default's section, in place, which model took over."""
    until = f"the default until `{new_id}`"
    start, end = span
    for i in range(start, end):
        if CURRENT_DEFAULT in lines[i]:
            lines[i] = lines[i].replace(CURRENT_DEFAULT, until, 1)
            return
    lines[start + 1 : start + 1] = ["", until[0].upper() + until[1:] + "."]


def models_readme_text(
    text: str,
    raw_after: dict,
    sizes: dict[str, int],
    comparison: Comparison,
    previous_default: str,
    report: str | None,
) -> str:
    """pretrained/README.md: the table regenerated, the new section before the previous
    default's, and that section no longer saying it is the default."""
    text = replace_block(
        text, TABLE_BLOCK, shipped_models_table(raw_after, sizes), "pretrained/README.md"
    )
    lines = text.split("\n")
    new_id = comparison.candidate_id
    section = model_section(comparison, sizes[f"{new_id}.pt"], report).split("\n")
    previous = _section(lines, previous_default)
    if previous is not None:
        _mark_no_longer_default(lines, previous, new_id)
        at = previous[0]
    else:  # no section for it: before the first model's section, else at the end
        heads = [i for i in _h1_lines(lines) if lines[i].startswith("# `")]
        at = heads[0] if heads else len(lines)
        if at == len(lines) and lines and lines[-1] != "":
            section = ["", *section]
    lines[at:at] = section[:-1]  # the section ends with a blank line already
    return "\n".join(lines)


def readme_block(comparison: Comparison, previous_default: str, report: str | None) -> str:
    """README.md's paragraph on the default model, from this run's figures on Kodak."""
    c = comparison
    kodak = c.kodak
    ref = c.reference_id
    if ref == previous_default:
        against = f"the previous default, `{ref}` (still shipped, so its files keep decoding)"
    else:
        against = (
            f"`{ref}` (the previous default, `{previous_default}`, is still shipped, so its "
            "files keep decoding)"
        )
    ends = " / ".join(
        f"q{q:g} {kodak.candidate.at(q).bpp:.3f} bpp {kodak.candidate.at(q).psnr:.2f} dB"
        for q in (1.0, 50.0, 100.0)
    )
    text = (
        f"The default model is `{c.candidate_id}` ([pretrained/README.md](pretrained/README.md)): "
        f"BD-rate **{percent(kodak.candidate.bd_vs_jpeg)} against JPEG 4:2:0** on Kodak at equal "
        f"PSNR, from real `.aec` files with JPEG in the same run{_link(report, '')}, and "
        f"{percent(kodak.bd_vs_reference)} against {against}."
    )
    return _wrap(text) + "\n\n" + _wrap(f"On Kodak: {ends}.")


# ----- writing, with a way back --------------------------------------------------------------


class _Edits:
    """Files written so far and what they held, so that a failure part way restores them."""

    def __init__(self) -> None:
        self._undo: list[tuple[Path, bytes | None]] = []
        self.changed: list[Path] = []

    def _remember(self, path: Path) -> None:
        self._undo.append((path, path.read_bytes() if path.exists() else None))
        self.changed.append(path)

    def write_text(self, path: Path, text: str) -> None:
        self._remember(path)
        write_atomic(path, lambda f: f.write(text.encode("utf-8")), force=True)

    def copy(self, source: Path, path: Path) -> None:
        self._remember(path)

        def write(f) -> None:
            with open(source, "rb") as src:
                shutil.copyfileobj(src, f)

        write_atomic(path, write, force=True)

    def expect_new(self, paths: Sequence[Path]) -> None:
        """Files another function is about to create (they do not exist: checked before)."""
        for path in paths:
            self._remember(path)

    def rollback(self) -> None:
        for path, original in reversed(self._undo):
            if original is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(original)


def _check_measured_file(model_file: Path, comparison: Comparison) -> None:
    # The file that ships must be the one whose figures go into the index.
    ident = read_identity(model_file)
    measured = (comparison.candidate_id, comparison.kodak.candidate.fingerprint)
    if (ident.model_id, ident.fingerprint.hex()) != measured:
        raise AecError(
            f"{model_file} is {ident.model_id} ({ident.fingerprint.hex()}), not the measured "
            f"{measured[0]} ({measured[1]})"
        )


def ship(
    repo: Path,
    comparison: Comparison,
    model_file: Path,
    write_golden: GoldenWriter,
    lineage: bool = False,
    report: Path | None = None,
) -> list[Path]:
    """Make the measured candidate the default; returns the files written or changed.

    Older models and their golden files stay: every .aec file they wrote must keep decoding.
    """
    layout = RepoLayout(Path(repo))
    index = read_index(layout.pretrained)
    model_id = comparison.candidate_id
    size = Path(model_file).stat().st_size
    check_shippable(layout, index, model_id, size)
    _check_measured_file(Path(model_file), comparison)
    # Every text first: a missing marker refuses before the first file changes.
    raw = json.loads(layout.index.read_text(encoding="utf-8"))
    new_index = index_text(raw, comparison, lineage, file_history(Path(model_file)))
    sizes = {p.name: p.stat().st_size for p in layout.pretrained.glob("*.pt")}
    sizes[f"{model_id}.pt"] = size
    recorded_report = None if report is None else layout.recorded(report)
    if recorded_report is not None and recorded_report.startswith(".."):
        recorded_report = None  # outside the repository: nothing to link to
    models_readme = models_readme_text(
        layout.models_readme.read_text(encoding="utf-8"), json.loads(new_index), sizes,
        comparison, index.default, recorded_report,
    )  # fmt: skip
    readme = replace_block(
        layout.readme.read_text(encoding="utf-8"),
        README_BLOCK,
        readme_block(comparison, index.default, recorded_report),
        "README.md",
    )
    edits = _Edits()
    try:
        edits.copy(Path(model_file), layout.model_path(model_id))
        edits.write_text(layout.index, new_index)
        _check_shipped(layout, model_id)
        edits.expect_new(layout.golden_paths(model_id))
        write_golden(model_id, layout.golden, layout.pretrained)
        edits.write_text(layout.models_readme, models_readme)
        edits.write_text(layout.readme, readme)
    except BaseException:  # Ctrl-C too: never leave half a ship behind
        edits.rollback()
        raise
    return edits.changed


def _check_shipped(layout: RepoLayout, model_id: str) -> None:
    """The index reads back, names the new model as the default, and its file matches."""
    index = read_index(layout.pretrained)
    entry = index.default_model()
    ident = read_identity(entry.path)
    if entry.model_id != model_id or (ident.model_id, ident.fingerprint.hex()) != (
        entry.model_id,
        entry.fingerprint,
    ):
        raise AecError(f"pretrained/{INDEX_FILE} does not match {entry.path.name} after writing")
