"""What every command shares: the consoles, the options, one-line errors and exit codes.

Results go to stdout; progress, the device used and warnings go to stderr, one line each.
Exit codes: 0 success, 1 failure (any input failed), 2 usage error, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from ..checkpoint import load_checkpoint
from ..codec import Codec
from ..device import DEVICE_CHOICES, describe, resolve_device
from ..errors import AecError, UsageError
from ..operations import STDIO
from ..registry import MODEL_ENV, MODELS_DIR_ENV, ModelLibrary


def make_console(stderr: bool) -> Console:
    # File names and messages are printed as they are: no Rich markup or emoji codes in them.
    # Piped output is not wrapped at 80 columns: tables stay one row per image.
    tty = Console(stderr=stderr).is_terminal
    return Console(
        stderr=stderr, highlight=False, markup=False, emoji=False, width=None if tty else 160
    )


out = make_console(stderr=False)
err = make_console(stderr=True)

DeviceOpt = Annotated[
    str,
    typer.Option(
        "--device",
        help=f"Where to run the networks: {' | '.join(DEVICE_CHOICES)} (auto = CUDA if present).",
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help=f"Model to encode with: a checkpoint file, or the id or fingerprint of a model "
        f"listed by `aecompress models` (default: ${MODEL_ENV}, else the shipped default).",
        show_default=False,
    ),
]
DecodeModelsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--model",
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
    typer.Option("--max-pixels", min=1, help="Refuse .aec files declaring more pixels than this."),
]


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def fail(message: str) -> None:
    err.print(Text.assemble(("error:", "red"), " ", one_line(message)), soft_wrap=True)


def warn(message: str) -> None:
    err.print(Text.assemble(("warning:", "yellow"), " ", one_line(message)), soft_wrap=True)


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


def announce(codec: Codec) -> None:
    ckpt = codec.checkpoint
    err.print(
        f"model {ckpt.model_id} ({ckpt.fingerprint.hex()}) on {describe(codec.device)}",
        soft_wrap=True,
    )


def open_codec(device: str, model: str | None) -> Codec:
    """The codec `encode` uses: --model, else $AECOMPRESS_MODEL, else the shipped default."""
    dev = resolve_device(device)
    codec = Codec(load_checkpoint(ModelLibrary().encoder_model(model)), dev)
    announce(codec)
    return codec


def run_batch(
    inputs: list[str], targets: list[str], job: Callable, fail_fast: bool = False
) -> tuple[list, bool]:
    """Run job(source, target) for each input; report failures by name.

    Keeps going after a failure unless fail_fast. Returns (reports of the inputs that worked,
    whether any failed). Ctrl-C propagates (to guard); any other error only fails its input.
    """
    reports, failed = [], 0
    for i, (source, target) in enumerate(zip(inputs, targets, strict=True)):
        try:
            reports.append(job(source, target))
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException as e:  # noqa: B036 -- Rust panics (pyo3) derive from BaseException
            failed += 1
            fail(describe_failure(source, e))
            if fail_fast:
                left = len(inputs) - i - 1
                if left:
                    err.print(
                        f"stopped at the first failure (--fail-fast): {left} of {len(inputs)} "
                        "inputs not processed",
                        soft_wrap=True,
                    )
                return reports, True
    if failed and len(inputs) > 1:
        err.print(f"{failed} of {len(inputs)} inputs failed", soft_wrap=True)
    return reports, failed > 0
