"""Writing outputs so that an interrupted or failed run never leaves a half-written file."""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from .errors import AecError


def check_writable(path: Path, force: bool, inputs: Sequence[Path] = ()) -> None:
    """Raise AecError unless `path` may be written; cheap, so callers run it before working."""
    path = Path(path)
    # Never clobber an input, even with --force: the output is derived from it.
    for source in inputs:
        with contextlib.suppress(OSError):
            if os.path.samefile(path, source):
                raise AecError(f"refusing to overwrite the input file {source}")
    parent = path.parent
    if not parent.is_dir():
        raise AecError(f"cannot write {path}: directory {parent} does not exist")
    if path.is_dir():
        raise AecError(f"cannot write {path}: it is a directory")
    if path.exists() and not force:
        raise AecError(f"{path} exists (use --force to replace it)")


def _create_temp(path: Path) -> tuple[int, str]:
    """Open a new hidden file beside `path`.

    Not mkstemp: it creates files with mode 0600, which os.replace would carry over to the
    output. Opening with 0666 lets the umask decide, as for any ordinary new file.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        name = str(path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(name, flags, 0o666), name
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file beside {path}")


def write_output(path: Path, data: bytes, force: bool) -> None:
    """Write `data` to `path` atomically: readers see the old file or the whole new one."""
    write_atomic(path, lambda f: f.write(data), force)


def write_atomic(path: Path, write: Callable[[BinaryIO], object], force: bool) -> None:
    """Call write(f) on a hidden file beside `path`, then rename it over `path`.

    Readers see the old file or the whole new one; an error or Ctrl-C inside `write` leaves
    neither a partial file nor the temporary one. Raises AecError when `path` may not be
    written (it exists and not force, its folder is missing) or the disk refuses.
    """
    path = Path(path)
    check_writable(path, force)
    try:
        fd, tmp = _create_temp(path)
    except OSError as exc:
        raise AecError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:  # KeyboardInterrupt too: never leave the temp file behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise AecError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise
    # Persist the rename itself; not possible on every platform, and harmless to skip.
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_stdout(data: bytes) -> None:
    """Write binary output to standard output (for `-o -`)."""
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
