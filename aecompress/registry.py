"""Finding models: every .aec file names the model that decodes it, by id and weights fingerprint.

Models are looked for, in this order, among:

1. files given on the command line (`--model PATH`);
2. `$AECOMPRESS_MODEL`, a model file that `encode` uses instead of the shipped default;
3. the models shipped inside the package: the repository's `pretrained/` folder, installed as
   `aecompress/pretrained/`, whose index `models.json` lists each file with its id and
   fingerprint and names the default for encoding;
4. the model files (`*.pt`) in the folders of `$AECOMPRESS_MODELS` (several separated by
   `os.pathsep`), the place for models of one's own.

A shipped model is found from the index alone, without torch; other files are opened (to read
their id and fingerprint) only when a file names a model that none before them holds. The
loaded weights are checked against the file's fingerprint again when it is decoded, so a
stale index can refuse a file but never decode it wrongly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .errors import CheckpointError, ModelNotFoundError
from .training_history import TrainingRun

MODEL_ENV = "AECOMPRESS_MODEL"  # the model encode uses by default (a file, an id or a fingerprint)
MODELS_DIR_ENV = "AECOMPRESS_MODELS"  # folders of extra model files
INDEX_FILE = "models.json"
MODEL_SUFFIX = ".pt"

# Where a model was found, as shown by `aecompress models` and in messages.
FROM_ARGUMENT = "--model"
FROM_MODEL_ENV = f"${MODEL_ENV}"
FROM_PACKAGE = "package"
FROM_MODELS_DIR = f"${MODELS_DIR_ENV}"


@dataclass(frozen=True)
class KodakPoint:
    """One quality of a shipped model measured on Kodak (24 images, real .aec files)."""

    quality: float
    bpp: float  # mean over the images of file bytes × 8 / pixels
    psnr: float  # mean dB on the decoded uint8 RGB


@dataclass(frozen=True)
class ModelFile:
    """A model checkpoint on disk and the identity every .aec file it writes names."""

    path: Path
    model_id: str
    fingerprint: str  # 16 hex digits
    source: str  # FROM_ARGUMENT, FROM_MODEL_ENV, FROM_PACKAGE or FROM_MODELS_DIR
    kodak: tuple[KodakPoint, ...] = ()  # from the package index, where it records them
    kodak_command: str = ""  # the command that measured them
    history: tuple[TrainingRun, ...] = ()  # every run that made it, where the index records them

    def names(self, model_id: str, fingerprint: bytes) -> bool:
        return self.model_id == model_id and self.fingerprint == fingerprint.hex()


@dataclass(frozen=True)
class PackageIndex:
    """The shipped models (pretrained/models.json) and which of them encode uses by default."""

    folder: Path
    default: str  # model id of the default model
    models: tuple[ModelFile, ...]

    def default_model(self) -> ModelFile:
        for m in self.models:
            if m.model_id == self.default:
                return m
        raise CheckpointError(f"{self.folder / INDEX_FILE}: default {self.default!r} is not listed")


def package_folder() -> Path:
    """Where the shipped models are: `aecompress/pretrained` of the installed package (an editable
    install maps it to the repository's `pretrained/`), or, when the source tree is used without
    installing it (PYTHONPATH=checkout), the repository's `pretrained/` folder itself."""
    try:
        return Path(str(resources.files("aecompress.pretrained")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "pretrained"


def read_index(folder: Path | None = None) -> PackageIndex:
    """Parse the index of shipped models; a missing or malformed index is a CheckpointError."""
    folder = package_folder() if folder is None else Path(folder)
    path = folder / INDEX_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(
            f"the package's model index {path} is missing (reinstall aecompress)"
        ) from None
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: unreadable model index ({e})") from e
    try:
        models = tuple(_index_entry(folder, e) for e in raw["models"])
        default = str(raw["default"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: malformed model index ({e!r})") from e
    ids = [m.model_id for m in models]
    for model_id in ids:
        if ids.count(model_id) > 1:
            raise CheckpointError(f"{path}: model {model_id!r} is listed twice")
    index = PackageIndex(folder=folder, default=default, models=models)
    index.default_model()  # the default must be one of them
    return index


def _index_entry(folder: Path, e: dict) -> ModelFile:
    fingerprint = str(e["fingerprint"]).lower()
    if len(fingerprint) != 16 or any(c not in "0123456789abcdef" for c in fingerprint):
        raise ValueError(f"fingerprint {fingerprint!r} is not 16 hex digits")
    name = str(e["file"])
    if Path(name).name != name:
        raise ValueError(f"file {name!r} is not a plain file name")
    kodak = e.get("kodak") or {}
    return ModelFile(
        path=folder / name,
        model_id=str(e["model_id"]),
        fingerprint=fingerprint,
        source=FROM_PACKAGE,
        kodak=tuple(
            KodakPoint(float(p["quality"]), float(p["bpp"]), float(p["psnr"]))
            for p in kodak.get("points", [])
        ),
        kodak_command=str(kodak.get("command", "")),
        history=tuple(TrainingRun.from_dict(r) for r in e.get("history", [])),
    )


def identify(path: Path, source: str) -> ModelFile:
    """Open a model file to read its id and fingerprint."""
    from .modelfile import read_identity

    ident = read_identity(path)
    return ModelFile(Path(path), ident.model_id, ident.fingerprint.hex(), source)


@dataclass
class ModelLibrary:
    """The models available to one command: --model files, the environment, the package.

    extra: the --model values, each a model file or the id or fingerprint of an available model.
    environ: the environment to read $AECOMPRESS_MODEL and $AECOMPRESS_MODELS from (os.environ).
    """

    extra: Sequence[str | Path] = ()
    environ: Mapping[str, str] | None = None
    problems: list[str] = field(default_factory=list, init=False)  # files that could not be read
    _identified: dict[Path, ModelFile | CheckpointError] = field(
        default_factory=dict, init=False, repr=False
    )
    _index: PackageIndex | CheckpointError | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.environ is None:
            self.environ = os.environ

    # ----- the places -----------------------------------------------------------------------
    def index(self) -> PackageIndex:
        """The package index (read once); raises CheckpointError when it is missing."""
        if self._index is None:
            try:
                self._index = read_index()
            except CheckpointError as e:
                self._index = e
        if isinstance(self._index, CheckpointError):
            raise self._index
        return self._index

    def model_dirs(self) -> list[Path]:
        value = self.environ.get(MODELS_DIR_ENV, "")
        return [Path(p) for p in value.split(os.pathsep) if p]

    def describe_places(self) -> str:
        """Where models are looked for, in one line."""
        parts = []
        files = [str(p) for p in self.extra]
        parts.append(f"{FROM_ARGUMENT} {', '.join(files)}" if files else f"{FROM_ARGUMENT} (none)")
        env_model = self.environ.get(MODEL_ENV)
        parts.append(f"{FROM_MODEL_ENV} {env_model}" if env_model else f"{FROM_MODEL_ENV} (unset)")
        try:
            idx = self.index()
            n = len(idx.models)
            parts.append(f"the package's models in {idx.folder} ({n} model{'s' * (n != 1)})")
        except CheckpointError:
            parts.append(f"the package's models in {package_folder()} (index missing)")
        dirs = self.model_dirs()
        value = os.pathsep.join(map(str, dirs))
        parts.append(f"{FROM_MODELS_DIR} {value}" if dirs else f"{FROM_MODELS_DIR} (unset)")
        return "; ".join(parts)

    # ----- identities -------------------------------------------------------------------------
    def _note(self, problem: str) -> None:
        if problem not in self.problems:
            self.problems.append(problem)

    def _identify(self, path: Path, source: str, strict: bool = False) -> ModelFile | None:
        """The model in a file. A file that cannot be read raises when `strict` (the user named
        it), else it is skipped and noted once in `problems` (a folder may hold other files)."""
        key = Path(os.path.abspath(path))
        if key not in self._identified:
            try:
                self._identified[key] = identify(path, source)
            except CheckpointError as e:
                self._identified[key] = e
                if not strict:
                    self._note(str(e))
        found = self._identified[key]
        if isinstance(found, CheckpointError):
            if strict:
                raise found
            return None
        return found

    def _dir_files(self) -> Iterator[Path]:
        for folder in self.model_dirs():
            try:
                names = sorted(folder.iterdir())
            except OSError as e:
                self._note(f"{FROM_MODELS_DIR}: cannot list {folder} ({e.strerror or e})")
                continue
            yield from (p for p in names if p.suffix == MODEL_SUFFIX and p.is_file())

    def _candidates(self) -> Iterator[ModelFile]:
        """Every available model, in search order, each file once; files are opened lazily."""
        seen: set[Path] = set()

        def first_time(path: Path) -> bool:
            key = Path(os.path.realpath(path))
            if key in seen:
                return False
            seen.add(key)
            return True

        for value in self.extra:
            if Path(value).is_file() and first_time(Path(value)):
                yield self._identify(Path(value), FROM_ARGUMENT, strict=True)
        env_model = self.environ.get(MODEL_ENV)
        if env_model and Path(env_model).is_file() and first_time(Path(env_model)):
            yield self._identify(Path(env_model), FROM_MODEL_ENV, strict=True)
        try:
            shipped = self.index().models
        except CheckpointError as e:
            self._note(str(e))
            shipped = ()
        for m in shipped:
            if not m.path.is_file():
                self._note(f"the package's model {m.model_id} is missing: {m.path}")
            elif first_time(m.path):
                yield m
        for path in self._dir_files():
            if first_time(path):
                found = self._identify(path, FROM_MODELS_DIR)
                if found is not None:
                    yield found

    def available(self) -> list[ModelFile]:
        """Every model that can be found, in search order (opens every non-package file)."""
        self.check()
        return list(self._candidates())

    # ----- choosing ---------------------------------------------------------------------------
    def check(self) -> None:
        """Raise CheckpointError for a --model value that is not a readable model file, nor the
        id or fingerprint of an available model."""
        for value in self.extra:
            if Path(value).is_file():
                self._identify(Path(value), FROM_ARGUMENT, strict=True)
            else:
                self.resolve(str(value), FROM_ARGUMENT)

    def resolve(self, choice: str, source: str, files: str = "a model file") -> Path:
        """A model file, or the id or fingerprint of an available model → its file.

        source: the option or variable that gave `choice`, for the message; files: what a file
        given there may be (`train --init` also takes a training state)."""
        if Path(choice).is_file():
            return Path(choice)
        if Path(choice).suffix != MODEL_SUFFIX and os.sep not in choice:
            for m in self._candidates():  # the first in search order with that id
                if choice in (m.model_id, m.fingerprint):
                    return m.path
        default = ""
        if source in (FROM_ARGUMENT, FROM_MODEL_ENV):  # the options that pick encode's model
            default = f"; the default model is used without {FROM_ARGUMENT} and ${MODEL_ENV}"
        raise CheckpointError(
            f"model file not found: {choice} ({source}: {files}, or the id or fingerprint "
            f"of a model listed by `aecompress models`{default})"
        )

    def encoder_model(self, choice: str | Path | None = None) -> Path:
        """The checkpoint `encode` uses: `choice` (--model), else $AECOMPRESS_MODEL, else the
        package index's default."""
        if choice is not None:
            return self.resolve(str(choice), FROM_ARGUMENT)
        env_model = self.environ.get(MODEL_ENV)
        if env_model:
            return self.resolve(env_model, FROM_MODEL_ENV)
        try:
            default = self.index().default_model()
        except CheckpointError as e:
            raise CheckpointError(
                f"no default model: {e}; pass --model PATH or set ${MODEL_ENV}"
            ) from None
        if not default.path.is_file():
            raise CheckpointError(
                f"the default model {default.model_id} is missing: {default.path} "
                f"(reinstall aecompress, or pass --model PATH or set ${MODEL_ENV})"
            )
        return default.path

    def find(self, model_id: str, fingerprint: bytes) -> ModelFile:
        """The model an .aec file names; ModelNotFoundError says where it was looked for."""
        self.check()
        for m in self._candidates():
            if m.names(model_id, fingerprint):
                return m
        raise ModelNotFoundError(
            f"encoded with model {model_id} ({fingerprint.hex()}), which is not available; "
            f"looked in: {self.describe_places()}; put its model file in ${MODELS_DIR_ENV} "
            f"or pass {FROM_ARGUMENT} PATH"
        )


def find_model(choice: str | Path, option: str, files: str = "a model file") -> Path:
    """The one lookup behind every option that takes a model (`encode`/`decode`/`bench --model`,
    `train --init`, `lineage run --start`): a file, or the id or fingerprint of a model that
    `aecompress models` lists; CheckpointError naming `option` when there is none."""
    return ModelLibrary().resolve(str(choice), option, files)


def default_model_path() -> Path:
    """The checkpoint `encode` uses with no --model: $AECOMPRESS_MODEL, else the shipped default."""
    return ModelLibrary().encoder_model()
