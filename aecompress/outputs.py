"""Where each result goes, and what may not be written there (no torch, no Pillow).

Naming rules, the same for every command that writes files:
- encode: `photo.png` -> `photo.aec` beside it;
- decode: `photo.aec` -> `photo.aec.png` beside it, a name that cannot be the image the .aec
  was made from (decoding it to `photo.png` would replace the original with a lossy copy);
- `-o DIR/` (a trailing slash) or `-o DIR` (an existing directory) writes into DIR, whatever the
  number of inputs; missing folders are created only with --mkdir;
- `-o -` writes to standard output, never to a terminal.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import AecError, UsageError
from .fileio import check_writable, write_output, write_stdout
from .inputs import STDIO, input_ids


@dataclass(frozen=True)
class Naming:
    """How a command names its outputs by default."""

    suffix: str  # ".aec", ".png"
    replace_suffix: bool  # photo.png -> photo.aec (True) or photo.aec -> photo.aec.png (False)
    what: str  # what goes to standard output, for the terminal refusal: ".aec data", "PNG"

    def name_for(self, source: str) -> str:
        path = Path(source)
        return str(path.with_suffix(self.suffix) if self.replace_suffix else
                   path.with_name(path.name + self.suffix))  # fmt: skip


ENCODED = Naming(".aec", replace_suffix=True, what=".aec data")
DECODED = Naming(".png", replace_suffix=False, what="a PNG image")


def stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):  # no real stdout
        return False


def _is_directory(output: str) -> bool:
    return output.endswith(("/", os.sep)) or Path(output).is_dir()


def _make_dir(folder: Path, shown: str, mkdir: bool) -> None:
    if folder.is_dir():
        return
    if folder.exists():
        raise AecError(f"{shown}: not a directory")
    if not mkdir:
        raise AecError(f"{shown}: no such directory (add --mkdir to create it)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AecError(f"cannot create {shown}: {e.strerror or e}") from e


def output_paths(
    inputs: list[str], output: str | None, naming: Naming, mkdir: bool = False
) -> list[str]:
    """Where each input's result goes (see the module's rules); creates folders with mkdir."""
    if STDIO in inputs and len(inputs) > 1:
        raise UsageError("'-' (standard input) can only be used with a single input")
    if output == STDIO or (output is None and inputs == [STDIO]):
        if len(inputs) > 1:
            raise UsageError("'-o -' (standard output) can only be used with a single input")
        if stdout_is_terminal():
            raise UsageError(
                f"refusing to write {naming.what} to a terminal: redirect it (> FILE), pipe "
                "it, or give -o FILE"
            )
        return [STDIO]
    if output is None:
        targets = [naming.name_for(p) for p in inputs]
    elif _is_directory(output) or len(inputs) > 1:
        if not _is_directory(output) and Path(output).exists():
            raise AecError(f"{output}: with several inputs, -o must be a directory")
        folder = Path(output)
        _make_dir(folder, output, mkdir)
        targets = [str(folder / Path(naming.name_for(p)).name) for p in inputs]
    else:
        parent = Path(output).parent
        _make_dir(parent, str(parent), mkdir)
        targets = [output]
    seen: dict[str, str] = {}
    for target in targets:
        key = os.path.normcase(os.path.abspath(target))
        if key in seen:
            raise AecError(f"several inputs would write the same output file {target}")
        seen[key] = target
    return targets


def _likely_original(target: str, source: str) -> bool:
    """An existing image named like the .aec it would be decoded from (photo.png for
    photo.aec): most likely the image that file was made from."""
    return source != STDIO and Path(target).stem.lower() == Path(source).stem.lower()


def prepare_output(
    target: str,
    force: bool,
    source: str,
    protect: frozenset[tuple[int, int]],
    decoded: bool = False,
) -> None:
    """Refuse a target that exists (without --force) or that is an input, even with --force.

    `decoded`: the target is a decoded image; one that exists and looks like the original of
    the .aec is refused without suggesting --force, which would replace it with a lossy copy.
    """
    if target == STDIO:
        return
    if decoded and not force and Path(target).exists() and _likely_original(target, source):
        raise AecError(
            f"{target} exists and may be the image {source} was made from; decoding is "
            f"lossy, so choose another name with -o (without -o: {DECODED.name_for(source)})"
        )
    check_writable(Path(target), force, [Path(source)] if source != STDIO else [])
    try:
        st = os.stat(target)
    except OSError:
        return
    if (st.st_dev, st.st_ino) in protect | input_ids([source]):
        raise AecError(f"refusing to overwrite the input file {target}")


def check_job(
    source: str,
    target: str,
    force: bool,
    protect: frozenset[tuple[int, int]],
    decoded: bool = False,
) -> None:
    """What can be refused before any work: a missing input, or a target prepare_output
    refuses; AecError naming it."""
    if source != STDIO and not Path(source).exists():
        raise AecError(f"{source}: no such file")
    prepare_output(target, force, source, protect, decoded)


def emit(target: str, data: bytes, force: bool) -> None:
    """Write one result: atomically to a file, or to standard output."""
    if target == STDIO:
        try:
            write_stdout(data)
        except OSError as e:  # e.g. a closed pipe (`| head`)
            raise AecError(f"cannot write to standard output ({e.strerror or e})") from e
    else:
        write_output(Path(target), data, force)
