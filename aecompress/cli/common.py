"""What every command shares: the consoles, the options, one-line errors and exit codes.

Results go to stdout; progress, the device used and warnings go to stderr, one line each.
Exit codes: 0 success, 1 failure (any input failed), 2 usage error, 130 interrupted (Ctrl-C).

This module and the command modules import nothing heavy (torch, numpy, Pillow, the codec) at
the top: `--help`, `--version`, `info`, `models` and every argument check run without them
(tests/test_startup.py). Commands import the library inside their bodies, after the checks.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperCommand

from ..device import DEVICE_CHOICES, check_device_name
from ..errors import AecError, UsageError
from ..inputs import STDIO
from ..registry import MODEL_ENV, MODELS_DIR_ENV

if TYPE_CHECKING:
    from rich.progress import Progress

    from ..codec import Codec


def make_console(stderr: bool) -> Console:
    # File names and messages are printed as they are: no Rich markup or emoji codes in them.
    # Piped output is not wrapped at 80 columns: tables stay one row per image.
    tty = Console(stderr=stderr).is_terminal
    return Console(
        stderr=stderr, highlight=False, markup=False, emoji=False, width=None if tty else 160
    )


out = make_console(stderr=False)
err = make_console(stderr=True)


class PlainCommand(TyperCommand):
    """A command whose help names its arguments as classic tools do: `IMAGE...` in the usage
    line and the argument list, without Typer's braces and type labels (`<list[str]>`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for param in self.params:
            if param.param_type_name == "argument":
                shown = param.metavar or param.name.upper()
                if not param.required:
                    shown = f"[{shown}]"
                # Instance attributes: Typer's help and usage code calls these two.
                param.display_type_rich = lambda ctx: None  # type: ignore[method-assign]
                param._usage_display_name = lambda shown=shown: shown  # type: ignore[attr-defined]


@dataclass
class Verbosity:
    """How much a command prints besides its results: --quiet (errors only) or -v/--verbose."""

    quiet: bool = False
    verbose: bool = False


verbosity = Verbosity()


def set_verbosity(quiet: bool, verbose: bool) -> None:
    """Called first by each command (inside `guard`) with its --quiet and --verbose flags."""
    if quiet and verbose:
        raise UsageError("--quiet and --verbose cannot be used together")
    verbosity.quiet, verbosity.verbose = quiet, verbose


QuietOpt = Annotated[
    bool,
    typer.Option("--quiet", help="Print nothing but errors: no report, progress or warnings."),
]
VerboseOpt = Annotated[
    bool,
    typer.Option("-v", "--verbose", help="Also print where each model file was found and "
                 "each input as it is done."),
]  # fmt: skip


def _check_device(name: str) -> str:
    try:
        return check_device_name(name)
    except UsageError as e:
        raise typer.BadParameter(str(e)) from None  # exit 2, before anything is loaded


DeviceOpt = Annotated[
    str,
    typer.Option(
        "--device",
        metavar="DEVICE",
        callback=_check_device,
        help=f"Where to run the networks: {', '.join(DEVICE_CHOICES)} (auto: CUDA if present).",
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        metavar="MODEL",
        help=f"Model to encode with: a checkpoint file, or the id or fingerprint of a model "
        f"listed by `aecompress models` (default: ${MODEL_ENV}, else the shipped default).",
        show_default=False,
    ),
]
DecodeModelsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--model",
        metavar="FILE",
        help=f"A model file to look in besides the shipped models and ${MODELS_DIR_ENV} "
        "(repeatable). Each file is decoded with the model it names.",
        show_default=False,
    ),
]
ForceOpt = Annotated[bool, typer.Option("--force", "-f", help="Replace existing output files.")]
FailFastOpt = Annotated[
    bool,
    typer.Option("--fail-fast", help="Stop at the first input that fails (default: go on)."),
]
MaxPixelsOpt = Annotated[
    int,
    typer.Option(
        "--max-pixels", min=1, metavar="N", help="Refuse .aec files declaring more pixels."
    ),
]


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def fail(message: str) -> None:
    err.print(Text.assemble(("error:", "red"), " ", one_line(message)), soft_wrap=True)


def warn(message: str) -> None:
    if not verbosity.quiet:
        err.print(Text.assemble(("warning:", "yellow"), " ", one_line(message)), soft_wrap=True)


def note(message: str) -> None:
    """A line on stderr about what is happening (the model, the device, a summary); not with
    --quiet."""
    if not verbosity.quiet:
        err.print(message, soft_wrap=True)


def detail(message: str) -> None:
    """A line on stderr printed only with --verbose."""
    if verbosity.verbose:
        err.print(message, soft_wrap=True)


def show_progress() -> bool:
    """Whether to draw progress bars: on a terminal only, and not with --quiet."""
    return err.is_terminal and not verbosity.quiet


@contextlib.contextmanager
def progress_bar(transient: bool = True) -> Iterator[Progress | None]:
    """A rich Progress on stderr, or None where no bar is drawn (not a terminal, --quiet).

    Callers add their own tasks; transient bars vanish when done, leaving the report."""
    if not show_progress():
        yield None
        return
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=transient,
    ) as bar:
        yield bar


def describe_failure(source: str, exc: BaseException) -> str:
    """One line naming the input: the library's message, or the type of an unexpected error."""
    name = "<stdin>" if source == STDIO else source
    if isinstance(exc, AecError):
        msg = one_line(str(exc))
        return msg if msg.startswith((source + ":", name + ":")) else f"{name}: {msg}"
    return f"{name}: internal error: {type(exc).__name__}: {one_line(str(exc))}"


@contextlib.contextmanager
def guard() -> Iterator[None]:
    """Turn what escapes a command into one line and an exit code, never a traceback."""
    try:
        yield
    except (typer.Exit, typer.Abort, typer.TyperException):
        raise
    except KeyboardInterrupt:
        # Outputs are written to a temporary file and renamed: nothing partial is left.
        err.print("interrupted", soft_wrap=True)
        raise typer.Exit(130) from None
    except UsageError as e:
        fail(str(e))
        raise typer.Exit(2) from None
    except AecError as e:
        fail(str(e))
        raise typer.Exit(1) from None
    except Exception as e:
        fail(f"internal error: {type(e).__name__}: {e}")
        raise typer.Exit(1) from None
    finally:
        set_verbosity(False, False)  # one command's --quiet never outlives it (in-process runs)


def announce(codec: Codec, path: Path | None = None) -> None:
    """The model and device a command runs (not with --quiet); with -v, the model file too."""
    from ..device import describe

    if path is not None:
        detail(f"model file {path}")
    ckpt = codec.checkpoint
    note(f"model {ckpt.model_id} ({ckpt.fingerprint.hex()}) on {describe(codec.device)}")


def freeze_imported_objects() -> None:
    """Exempt what the imports made so far (torch's ~180,000 objects) from garbage collection.

    They live as long as the process; without this the collector walks them again and again,
    above all as the interpreter exits: 0.65 s -> 0.26 s at the end of a one-image encode on
    the 2-core CPU (benchmarks/startup.md). Objects made later are collected as usual."""
    import gc

    gc.freeze()


class LazyCodec:
    """The codec `encode` uses: --model, else $AECOMPRESS_MODEL, else the shipped default.

    The model file is found (and identified, without torch) at once, so a wrong --model fails
    before any input; the network is loaded on first use, so inputs that fail their own checks
    (an existing output, a missing file) are reported without waiting for torch."""

    def __init__(self, device: str, model: str | None):
        from ..registry import ModelLibrary

        self.device = device
        self.path = ModelLibrary().encoder_model(model)
        self._codec: Codec | None = None

    def get(self) -> Codec:
        if self._codec is None:
            from ..allocator import keep_freed_memory
            from ..checkpoint import load_checkpoint
            from ..codec import Codec
            from ..device import resolve_device

            keep_freed_memory()  # the transforms' large tensors reuse the heap (allocator.py)
            freeze_imported_objects()
            dev = resolve_device(self.device)
            self._codec = Codec(load_checkpoint(self.path), dev)
            announce(self._codec, self.path)
        return self._codec


def open_codec(device: str, model: str | None) -> Codec:
    """The codec `encode` uses, loaded now."""
    return LazyCodec(device, model).get()


@dataclass
class Failure:
    """An input that failed, and the one-line message printed for it."""

    input: str
    error: str

    def to_dict(self) -> dict:
        return {"input": self.input, "error": self.error}


@dataclass
class BatchResult:
    reports: list  # of the inputs that worked, in input order
    failures: list[Failure]
    not_processed: list[str]  # inputs left after --fail-fast stopped the batch

    @property
    def failed(self) -> bool:
        return bool(self.failures)


def record_failure(result: BatchResult, source: str, exc: BaseException) -> None:
    """Count `source` as failed and print its one-line message."""
    message = describe_failure(source, exc)
    result.failures.append(Failure(source, message))
    fail(message)


def stop_after(result: BatchResult, inputs: list[str], index: int) -> None:
    """--fail-fast: input number `index` failed; the ones after it are not processed."""
    result.not_processed = inputs[index + 1 :]
    if result.not_processed:
        note(
            f"stopped at the first failure (--fail-fast): "
            f"{len(result.not_processed)} of {len(inputs)} inputs not processed"
        )


def note_failures(result: BatchResult, inputs: list[str]) -> None:
    if result.failures and len(inputs) > 1:
        note(f"{len(result.failures)} of {len(inputs)} inputs failed")


def run_batch(
    inputs: list[str], targets: list[str], job: Callable, fail_fast: bool = False
) -> BatchResult:
    """Run job(index, source, target) for each input; report failures by name.

    Keeps going after a failure unless fail_fast. Ctrl-C propagates (to guard); any other error
    only fails its input. (`pipeline.run_pipeline` keeps these rules while overlapping two
    parts of each input's work.)
    """
    result = BatchResult([], [], [])
    for i, (source, target) in enumerate(zip(inputs, targets, strict=True)):
        try:
            result.reports.append(job(i, source, target))
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException as e:  # noqa: B036 -- Rust panics (pyo3) derive from BaseException
            record_failure(result, source, e)
            if fail_fast:
                stop_after(result, inputs, i)
                return result
    note_failures(result, inputs)
    return result


@dataclass
class BatchClock:
    """The time a batch's work takes: from the first input started (the CLI calls `start`
    once the library is imported, so start-up is not counted) to the last finished (`stop`)."""

    started: float | None = None
    seconds: float = 0.0

    def start(self) -> None:
        if self.started is None:
            self.started = time.perf_counter()

    def stop(self) -> None:
        if self.started is not None:
            self.seconds = time.perf_counter() - self.started


@dataclass
class Throughput:
    """A batch's rate, the JSON "summary": the images written (reports with width and
    height), their megapixels, the batch's seconds (`BatchClock`) and the rates."""

    images: int
    megapixels: float
    seconds: float
    images_per_s: float
    megapixels_per_s: float

    def to_dict(self) -> dict:
        return asdict(self)


def throughput(reports: list, seconds: float) -> Throughput:
    megapixels = sum(r.width * r.height for r in reports) / 1e6
    rate = 1 / seconds if seconds > 0 else 0.0
    return Throughput(len(reports), megapixels, seconds, len(reports) * rate, megapixels * rate)


def throughput_line(summary: Throughput) -> str:
    """`24 images, 9.4 MP in 9.1 s: 2.64 images/s, 1.03 MP/s`."""
    n = summary.images
    return (
        f"{n} image{'' if n == 1 else 's'}, {summary.megapixels:.1f} MP in "
        f"{summary.seconds:.1f} s: {summary.images_per_s:.2f} images/s, "
        f"{summary.megapixels_per_s:.2f} MP/s"
    )
