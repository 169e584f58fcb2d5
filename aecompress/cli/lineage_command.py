"""`aecompress lineage run` and `aecompress lineage status`: the training lineage that spare
CPU time continues (`lineage.py`). No torch here: the session runs in a child process."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..durations import parse_duration
from ..errors import AecError, UsageError
from .common import PlainCommand, guard, note, out

lineage_app = typer.Typer(
    no_args_is_help=True,
    help="Train one model a little further with every spare CPU hour.",
    rich_markup_mode=None,
)

DirOpt = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        metavar="DIR",
        help="The lineage's folder: its settings, sessions and their training states "
        "[default: $AECOMPRESS_LINEAGE, else ~/.cache/aecompress/lineage].",
        file_okay=False,
        show_default=False,
    ),
]


@lineage_app.command(cls=PlainCommand)
def run(
    data: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="DATA...",
            help="Training images (files or folders). Needed to create the lineage; later "
            "sessions train on what it was created with.",
            show_default=False,
        ),
    ] = None,
    time_budget: Annotated[
        str,
        typer.Option(
            metavar="TIME",
            help="Wall-clock time of this session, export included (as `train --time-budget`: "
            "the learning rate is annealed by its end).",
        ),
    ] = ...,
    valid: Annotated[
        list[Path] | None,
        typer.Option(
            "--valid",
            metavar="PATH",
            help="Validation images that pick each session's exported weights (with DATA, "
            "when the lineage is created).",
            show_default=False,
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            metavar="MODEL",
            help="The model a new lineage starts from (a file, or the id or fingerprint of one "
            "that `aecompress models` lists) [default: the model "
            "models.json names as the lineage's, else aec-hp-n64-cpu-2026.11c].",
            show_default=False,
        ),
    ] = None,
    root: DirOpt = None,
    threads: Annotated[
        int, typer.Option(min=1, metavar="N", help="Torch threads of the session.")
    ] = 1,
    niceness: Annotated[
        int,
        typer.Option(
            "--nice", min=0, max=19, metavar="N", help="Scheduling niceness of the session."
        ),
    ] = 10,
    background: Annotated[
        bool,
        typer.Option(
            "--background",
            help="Detach: print the process id and the log, and return at once (the session "
            "goes on after the terminal closes).",
        ),
    ] = False,
) -> None:
    """Continue the lineage for one session of --time-budget.

    Each session is an `aecompress train` run from the model the last one exported (a fresh
    schedule), or resumes the last session when it was stopped before exporting; the first
    starts from the shipped start model. The exported model is SESSION/model.pt; `aecompress
    lineage status` lists them, and benchmarks/ship_model.py compares one with the default.
    """
    from .. import lineage

    with guard():
        try:
            if parse_duration(time_budget) <= 0:
                raise ValueError("give a time above 0")
        except ValueError as e:
            raise UsageError(f"--time-budget: {e}") from None
        folder = root if root is not None else lineage.default_root()
        config = lineage.create_or_check(folder, data or [], valid or [], start)
        plan = lineage.plan_session(folder, config, time_budget)
        note(f"lineage {folder}: {plan.starts_from}, {time_budget}, {threads} thread(s), "
             f"nice {niceness}")  # fmt: skip
        code, log = lineage.launch(
            folder, plan, threads=threads, niceness=niceness, background=background
        )
        if background:
            out.print(f"session running as process {code}; log {log}", soft_wrap=True)
            return
        model = plan.folder / "model.pt"
        if code != 0:
            raise AecError(f"the session's training failed (exit {code}); see {log}")
        out.print(f"exported {model}; log {log}", soft_wrap=True)


@lineage_app.command(cls=PlainCommand)
def status(
    root: DirOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the sessions as JSON.")] = False,
) -> None:
    """What each session of the lineage did: steps, training time, exported model and its
    validation through real files."""
    import json
    from dataclasses import asdict

    from .. import lineage

    with guard():
        folder = root if root is not None else lineage.default_root()
        if lineage.read_config(folder) is None:
            raise AecError(f"{folder}: no lineage here (start one with `lineage run`)")
        rows = lineage.summarise(folder)
        if json_out:
            items = [{**asdict(r), "folder": str(r.folder)} for r in rows]
            out.print(json.dumps({"dir": str(folder), "sessions": items}, indent=1))
            return
        total_steps = sum(r.steps for r in rows)
        total_min = sum(r.train_seconds for r in rows) / 60
        out.print(f"lineage {folder}: {len(rows)} sessions, {total_steps} steps, "
                  f"{total_min:.0f} min of training", soft_wrap=True)  # fmt: skip
        for r in rows:
            figures = "  ".join(f"q{q:g} {b:.3f} bpp {p:.2f} dB" for q, b, p in r.validation)
            out.print(
                f"{r.index:4d}  {r.state:9s} {r.model_id or '-'}  {r.steps} steps  "
                f"{r.train_seconds / 60:.0f} min  {r.speed}  {figures}",
                soft_wrap=True,
            )
