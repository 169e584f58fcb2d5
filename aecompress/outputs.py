"""Where each result goes, and what may not be written there (no torch, no Pillow).

Naming rules, the same for every command that writes files:
- encode: `photo.png` -> `photo.aec` beside it;
- decode: `photo.aec` -> `photo.aec.png` beside it, a name that cannot be the image the .aec
  was made from (decoding it to `photo.png` would replace the original with a lossy copy);
- `-o DIR/` (a trailing slash) or `-o DIR` (an existing directory) writes into DIR, whatever the
  number of inputs; missing folders are created only with --mkdir;
- `-o -` writes to standard output, never to a terminal;
- `-o FILE` must name what the command writes: an .aec file for encode, an image format decode
  writes (by its extension) for decode; anything else is a usage error, found before any work;
- two inputs that would write the same output are a usage error, found before any work.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import AecError, UsageError
from .fileio import check_writable, write_output, write_stdout
from .imageformats import FORMATS_BY_EXTENSION, image_format_for
from .inputs import STDIO, input_ids, refuse_aec_file


def _check_aec_name(target: str) -> None:
    if Path(target).suffix.lower() != ".aec":
        raise UsageError(
            f"{target}: the output of encode is an .aec file: name it .aec, or give a folder "
            "(DIR/) or '-'; images are written by `aecompress decode`"
        )


@dataclass(frozen=True)
class Naming:
    """How a command names its outputs by default, and which names it can write."""

    suffix: str  # ".aec", ".png"
    replace_suffix: bool  # photo.png -> photo.aec (True) or photo.aec -> photo.aec.png (False)
    what: str  # what goes to standard output, for the terminal refusal: ".aec data", "PNG"
    check: Callable[[str], object]  # UsageError for an -o FILE the command cannot write

    def name_for(self, source: str) -> str:
        path = Path(source)
        return str(path.with_suffix(self.suffix) if self.replace_suffix else
                   path.with_name(path.name + self.suffix))  # fmt: skip


ENCODED = Naming(".aec", replace_suffix=True, what=".aec data", check=_check_aec_name)
DECODED = Naming(".png", replace_suffix=False, what="a PNG image", check=image_format_for)


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
    folder: tuple[Path, str] | None = None  # made (with mkdir) once the plan is known good
    if output is None:
        targets = [naming.name_for(p) for p in inputs]
    elif _is_directory(output) or len(inputs) > 1:
        if not _is_directory(output) and Path(output).exists():
            raise AecError(f"{output}: with several inputs, -o must be a directory")
        if not _is_directory(output) and _names_a_file(output):
            raise UsageError(f"{output}: with several inputs, -o names a folder (DIR/), not a file")
        folder = (Path(output), output)
        targets = [str(Path(output) / Path(naming.name_for(p)).name) for p in inputs]
    else:
        # An input named as its own output is refused as such, by prepare_output.
        if not input_ids([output]) & input_ids(inputs):
            naming.check(output)
        parent = Path(output).parent
        folder = (parent, str(parent))
        targets = [output]
    _check_distinct(inputs, targets)
    if folder is not None:
        _make_dir(*folder, mkdir)
    return targets


def _names_a_file(output: str) -> bool:
    """-o ends in an extension that encode or decode writes (out.png, out.aec): a file meant,
    not a folder to create, whatever --mkdir says."""
    suffix = Path(output).suffix.lower()
    return suffix == ENCODED.suffix or suffix in FORMATS_BY_EXTENSION


def _same_path_key(path: str) -> str:
    return os.path.normcase(os.path.realpath(path))


def _check_distinct(inputs: list[str], targets: list[str]) -> None:
    """UsageError naming the first two inputs that would write the same output."""
    seen: dict[str, int] = {}
    for i, target in enumerate(targets):
        key = _same_path_key(target)
        if key not in seen:
            seen[key] = i
            continue
        first, second = inputs[seen[key]], inputs[i]
        if _same_path_key(first) == _same_path_key(second):
            raise UsageError(f"{first} is given twice (both would write {target})")
        raise UsageError(f"{first} and {second} would write the same output file {target}")


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
    """What can be refused before any work: a missing input, an .aec file given to encode
    (by its first bytes; not `decoded`), or a target prepare_output refuses; AecError naming
    it."""
    if source != STDIO and not Path(source).exists():
        raise AecError(f"{source}: no such file")
    if not decoded:  # before the output check: `encode photo.aec` would write photo.aec
        refuse_aec_file(source)
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
