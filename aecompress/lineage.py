"""The training lineage: one model that every spare CPU hour trains a little further.

A lineage lives in a folder outside the repository (`default_root`: `$AECOMPRESS_LINEAGE`, else
the user's cache) and is a row of sessions, each an ordinary `aecompress train` run:

    ROOT/lineage.json          what the lineage trains on and with (data, validation, recipe)
    ROOT/sessions/0001/        a run folder: state.pt, train.log, model.pt, MODEL_CARD.md
    ROOT/sessions/0002/        ... each session starts from the model the last one exported
    ROOT/lock.json             the process of the session running now

A session continues from the last session that exported a model (with a fresh schedule:
warm-up, peak, anneal, so every session ends annealed and its model is usable), or resumes the
last session when it was stopped before its export (its optimizer, weight average and schedule
go on), or starts from the lineage's start model: the shipped model that `models.json` names
under `"lineage"`, so a machine without the lineage's folder picks up where the last shipped
step of it left off.

No torch here: `lineage run` builds a `train` command and runs it in a child process (nice'd,
with its threads capped), in the foreground or detached; `lineage status` reads the sessions'
files without torch.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import AecError, UsageError
from .modelfile import read_identity
from .registry import read_index

LINEAGE_ENV = "AECOMPRESS_LINEAGE"
CONFIG_FILE = "lineage.json"
LOCK_FILE = "lock.json"
SESSIONS = "sessions"
SESSION_LOG = "session.log"
# The shipped model a new lineage starts from when models.json names none.
FALLBACK_START = "aec-hp-n64-cpu-2026.11c"


def default_root() -> Path:
    """$AECOMPRESS_LINEAGE, else $XDG_CACHE_HOME/aecompress/lineage (~/.cache by default)."""
    env = os.environ.get(LINEAGE_ENV)
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "aecompress" / "lineage"


@dataclass(frozen=True)
class Recipe:
    """The `train` options every session of a lineage passes (benchmarks/ceiling.md chose
    them by equal-time runs on valid/). A start model with another λ range is moved to this
    one by its first session (`train --init` re-draws the gain vectors)."""

    lambda_min: float = 0.0008
    lambda_max: float = 1.2
    levels: int = 10
    level_norm_power: float = 0.5
    position_power: float = 1.0
    lr: float = 3e-4
    anneal: float = 0.25
    batch_size: int = 8
    patch_size: int = 128
    M: int = 0  # latent channels; above the start model's, its first session widens it (0: keep)

    def train_args(self) -> list[str]:
        latent = ["--M", str(self.M)] if self.M else []
        return [
            *latent, "--lambda-min", f"{self.lambda_min:g}", "--lambda-max", f"{self.lambda_max:g}",
            "--levels", str(self.levels), "--level-norm-power", f"{self.level_norm_power:g}",
            "--position-power", f"{self.position_power:g}", "--lr", f"{self.lr:g}",
            "--anneal", f"{self.anneal:g}", "--batch-size", str(self.batch_size),
            "--patch-size", str(self.patch_size),
        ]  # fmt: skip


RECIPE = Recipe()


@dataclass
class LineageConfig:
    """ROOT/lineage.json: fixed when the lineage is created; paths absolute."""

    data: list[str]
    valid: list[str]
    start: str  # the model (id or file) the first session started from
    recipe: Recipe = field(default_factory=Recipe)
    model_prefix: str = "aec-hp-lin"  # sessions' model ids: PREFIX-YYYYMMDD-sNNNN
    created: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> LineageConfig:
        raw = json.loads(text)
        raw["recipe"] = Recipe(**raw.get("recipe", {}))
        return cls(**raw)


def read_config(root: Path) -> LineageConfig | None:
    path = root / CONFIG_FILE
    if not path.exists():
        return None
    try:
        return LineageConfig.from_json(path.read_text(encoding="utf-8"))
    except (ValueError, TypeError, KeyError) as e:
        raise AecError(f"{path}: not a lineage file ({e})") from e


def shipped_start() -> str:
    """The model id that models.json names as the lineage's start, else FALLBACK_START."""
    index = read_index()
    raw = json.loads((index.folder / "models.json").read_text(encoding="utf-8"))
    return str(raw.get("lineage") or FALLBACK_START)


def resolve_start(config: LineageConfig) -> Path:
    """The start model's file: a path, or the id / fingerprint of a model `encode --model`
    would find (the shipped ones among them)."""
    from .registry import find_model

    return find_model(config.start, "the lineage's start")


# ----- sessions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    """One session folder, as its files show it."""

    index: int
    folder: Path

    @property
    def exported(self) -> bool:
        return (self.folder / "model.pt").exists()

    @property
    def resumable(self) -> bool:
        return (self.folder / "state.pt").exists() and not self.exported


def sessions(root: Path) -> list[Session]:
    folder = root / SESSIONS
    if not folder.is_dir():
        return []
    found = [Session(int(p.name), p) for p in folder.iterdir() if p.is_dir() and p.name.isdigit()]
    return sorted(found, key=lambda s: s.index)


@dataclass(frozen=True)
class SessionPlan:
    """What the next session does: its folder, its `train` arguments and where it starts."""

    folder: Path
    args: list[str]  # after `python -m aecompress`
    starts_from: str  # a sentence for the user
    resumes: bool


def plan_session(
    root: Path, config: LineageConfig, time_budget: str, date: str | None = None
) -> SessionPlan:
    """The next session: resume a stopped one, else continue from the last export, else
    start from the lineage's start model."""
    done = sessions(root)
    last = done[-1] if done else None
    common = ["--time-budget", time_budget, "--valid-every", "0", "--log-every", "500",
              "--checkpoint-every", "5m", "--quiet"]  # fmt: skip
    if last is not None and last.resumable:
        args = ["train", "--resume", str(last.folder / "state.pt"), *common]
        return SessionPlan(last.folder, args, f"resuming session {last.index}", True)
    exported = [s for s in done if s.exported]
    start = str(exported[-1].folder / "model.pt") if exported else str(resolve_start(config))
    index = (last.index if last is not None else 0) + 1
    folder = root / SESSIONS / f"{index:04d}"
    stamp = date or time.strftime("%Y%m%d", time.gmtime())
    valid = [a for v in config.valid for a in ("--valid", v)]
    # --export-always: a session exports its own weights even when they do not beat its start
    # on valid/ (it reports the comparison), or the lineage would never move; whether it goes
    # forward is benchmarks/ship_model.py's call.
    args = [
        "train", *config.data, *valid, "--out", str(folder), "--init", start,
        *config.recipe.train_args(), "--model-id", f"{config.model_prefix}-{stamp}-s{index:04d}",
        "--export-always", *common,
    ]  # fmt: skip
    what = f"session {exported[-1].index}'s model" if exported else f"the start model {start}"
    return SessionPlan(folder, args, f"session {index} from {what}", False)


# ----- running -------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, exited but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (macOS): the signal said enough
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def running(root: Path) -> dict | None:
    """The lock of a session that is running now (pid, folder, started), None if none is."""
    path = root / LOCK_FILE
    try:
        lock = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return lock if isinstance(lock, dict) and _alive(int(lock.get("pid", -1))) else None


def _write_lock(root: Path, pid: int, folder: Path) -> None:
    lock = {"pid": pid, "folder": str(folder), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ")}
    tmp = root / (LOCK_FILE + ".tmp")
    tmp.write_text(json.dumps(lock) + "\n", encoding="utf-8")
    tmp.replace(root / LOCK_FILE)


def _child_setup(niceness: int, own_session: bool):
    def setup() -> None:
        os.nice(niceness)
        if own_session:
            # Linux groups the processes of a session for scheduling (autogroup), and a
            # process's nice value only ranks it inside its group: a detached session would
            # take a full share of the CPU from the terminal's work whatever its nice value.
            # Its group gets the same niceness (no-op where there is no autogroup).
            try:
                with open("/proc/self/autogroup", "w") as f:
                    f.write(str(niceness))
            except OSError:
                pass

    return setup


def launch(
    root: Path,
    plan: SessionPlan,
    *,
    threads: int,
    niceness: int,
    background: bool,
    python: Sequence[str] = (sys.executable, "-m", "aecompress"),
) -> tuple[int, Path]:
    """Run the session's `train` command in a child process with `threads` torch threads at
    `niceness`, its output appended to FOLDER/session.log. Foreground: waits and returns
    (exit code, log); background: detaches (its own session, so closing the terminal leaves it
    running) and returns (pid, log)."""
    lock = running(root)
    if lock is not None:
        raise UsageError(
            f"a lineage session is already running (pid {lock['pid']}, {lock['folder']}); "
            "wait for it or stop it first"
        )
    plan.folder.mkdir(parents=True, exist_ok=True)
    log_path = plan.folder / SESSION_LOG
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    env["PYTHONUNBUFFERED"] = "1"
    command = [*python, *plan.args]
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"# {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} "
                  f"{shlex.join(command)}\n")  # fmt: skip
        log.flush()
        child = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            preexec_fn=_child_setup(niceness, background), start_new_session=background,
        )  # fmt: skip
    _write_lock(root, child.pid, plan.folder)
    if background:
        return child.pid, log_path
    try:
        code = child.wait()
    except KeyboardInterrupt:  # the child got the same Ctrl-C: let it save its state
        child.send_signal(signal.SIGINT)
        code = child.wait()
        raise
    finally:
        (root / LOCK_FILE).unlink(missing_ok=True)
    return code, log_path


def create_or_check(
    root: Path, data: Sequence[Path], valid: Sequence[Path], start: str | None
) -> LineageConfig:
    """The lineage's config: read it, or create it from DATA, --valid and the start model
    (the first session needs data; later ones may repeat it but not change it)."""
    config = read_config(root)
    if config is not None:
        given = [str(Path(p).resolve()) for p in data]
        if given and given != config.data:
            raise UsageError(
                f"this lineage trains on {', '.join(config.data)}; leave DATA out (or start "
                f"another lineage with --dir)"
            )
        if start is not None and not sessions(root):
            config.start = start  # nothing trained yet: the start may still change
        return config
    if not data:
        raise UsageError("a new lineage needs its training images: give DATA")
    for p in [*data, *valid]:
        if not Path(p).exists():
            raise AecError(f"{p}: no such file or directory")
    start = start or shipped_start()
    if Path(start).suffix == ".pt":  # a file: kept by its absolute path
        start = str(Path(start).resolve())
    prefix = _prefix(start)
    config = LineageConfig(
        data=[str(Path(p).resolve()) for p in data], valid=[str(Path(p).resolve()) for p in valid],
        start=start, recipe=RECIPE, model_prefix=prefix,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )  # fmt: skip
    root.mkdir(parents=True, exist_ok=True)
    (root / CONFIG_FILE).write_text(config.to_json(), encoding="utf-8")
    return config


def _prefix(start: str) -> str:
    """Model ids of a lineage's sessions: the start's size family, e.g. aec-hp-n64-lin (ids
    stay within 32 characters)."""
    name = Path(start).stem if start.endswith(".pt") else start
    parts = name.split("-")
    family = "-".join(parts[:3]) if len(parts) >= 3 and parts[2].startswith("n") else "aec-hp"
    return f"{family}-lin"


# ----- status --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionSummary:
    index: int
    folder: Path
    state: str  # "exported", "stopped" (resumable), "running", "empty"
    model_id: str = ""
    steps: int = 0
    train_seconds: float = 0.0
    speed: str = ""
    start: str = ""
    validation: tuple[tuple[float, float, float], ...] = ()  # (quality, bpp, PSNR)


def summarise(root: Path) -> list[SessionSummary]:
    """What each session did, from its files (no torch)."""
    lock = running(root)
    busy = Path(lock["folder"]).resolve() if lock else None
    out = []
    for s in sessions(root):
        state = "exported" if s.exported else "stopped" if s.resumable else "empty"
        if busy is not None and s.folder.resolve() == busy:
            state = "running"
        if not s.exported:
            out.append(SessionSummary(s.index, s.folder, state, steps=_logged_step(s.folder)))
            continue
        try:
            ident = read_identity(s.folder / "model.pt")
        except Exception:  # noqa: BLE001 - a damaged file is shown as such, not raised
            out.append(SessionSummary(s.index, s.folder, "unreadable"))
            continue
        prov = ident.provenance
        figures = ()
        if "validation" in prov:
            v = json.loads(prov["validation"])
            figures = tuple((f["quality"], f["bpp"], f["psnr"]) for f in v["figures"])
        out.append(
            SessionSummary(
                s.index, s.folder, state, ident.model_id, int(prov.get("steps", 0)),
                float(prov.get("wall_seconds", 0)), prov.get("speed", ""),
                prov.get("init", ""), figures,
            )
        )  # fmt: skip
    return out


def _logged_step(folder: Path) -> int:
    """The last step train.log mentions (a session without its export)."""
    log = folder / "train.log"
    if not log.exists():
        return 0
    step = 0
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split()
        number = parts[2].split("/")[0] if len(parts) > 2 else ""
        if parts[1:2] == ["step"] and number.isdigit():
            step = int(number)
    return step
