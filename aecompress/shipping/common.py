"""What the parts of shipping share: the limits, the repository's layout, the request."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..registry import INDEX_FILE

QUALITIES = (1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 100.0)
# The JPEG sweep of benchmarks/convergence.py: from below the models' lowest rate to above
# their highest, so that the BD-rate against JPEG has the whole curve to work with.
JPEG_QUALITIES = (3, 5, 8, 12, 18, 25, 35, 50, 65, 75, 85, 90, 95)

README_BLOCK = "default-model"  # README.md: the paragraph on the default model
TABLE_BLOCK = "shipped-models"  # pretrained/README.md: the table of shipped models
CURRENT_DEFAULT = "the current default"  # how a model's section in pretrained/README.md says so
# tests/golden/make_golden.py writes these: a plain file and a refined one (encode --effort)
GOLDEN_SUFFIXES = (".aec", ".png", ".json", ".refined.aec", ".refined.png", ".refined.json")

# write_golden(model_id, golden folder, pretrained folder): tests/golden/make_golden.py's
# function, passed in because it lives with the tests, not in the package.
GoldenWriter = Callable[[str, Path, Path], object]
Say = Callable[[str], None]


# ----- the repository -------------------------------------------------------------------------


@dataclass(frozen=True)
class RepoLayout:
    """Where the files that shipping edits are in a checkout."""

    root: Path

    @property
    def pretrained(self) -> Path:
        return self.root / "pretrained"

    @property
    def index(self) -> Path:
        return self.pretrained / INDEX_FILE

    @property
    def golden(self) -> Path:
        return self.root / "tests" / "golden"

    @property
    def readme(self) -> Path:
        return self.root / "README.md"

    @property
    def models_readme(self) -> Path:
        return self.pretrained / "README.md"

    def model_path(self, model_id: str) -> Path:
        return self.pretrained / f"{model_id}.pt"

    def golden_paths(self, model_id: str) -> list[Path]:
        return [self.golden / f"{model_id}{s}" for s in GOLDEN_SUFFIXES]

    def recorded(self, path: Path | str) -> str:
        """`path` as typed from the repository root: never a machine's absolute folders.
        Beside the checkout (`../shared/...`): relative; in the user's home, such as the
        lineage's folder in the cache: `~/...`."""
        full = os.path.abspath(os.path.expanduser(path))
        relative = os.path.relpath(full, os.path.abspath(self.root))
        if relative.startswith(os.path.join(os.pardir, os.pardir)):
            home = os.path.expanduser("~")
            if full.startswith(home + os.sep):
                return "~/" + os.path.relpath(full, home)
        return relative


@dataclass(frozen=True)
class ShipRequest:
    """What the command was asked: the paths as the user typed them."""

    candidate: Path
    model_id: str
    kodak: Path
    valid: Path
    against: str | None = None  # id or fingerprint of a shipped model; None: the default
    threads: int = 0  # recorded in the command only; the caller sets torch's threads
    lineage: bool = False
    report: Path | None = None
    dry_run: bool = False

    def command(self, layout: RepoLayout) -> str:
        """The command line, run from the repository root, that measures what it records."""
        parts = ["python3", "benchmarks/ship_model.py", layout.recorded(self.candidate)]
        parts += ["--model-id", self.model_id]
        parts += ["--kodak", layout.recorded(self.kodak), "--valid", layout.recorded(self.valid)]
        if self.against:
            parts += ["--against", self.against]
        if self.threads:
            parts += ["--threads", str(self.threads)]
        if self.lineage:
            parts.append("--lineage")
        if self.report is not None:
            parts += ["--report", layout.recorded(self.report)]
        # `~/...` stays unquoted so that a shell still expands it.
        return " ".join(
            "~/" + shlex.quote(p[2:]) if p.startswith("~/") else shlex.quote(p) for p in parts
        )
