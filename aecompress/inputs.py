"""Reading the files a command is given ('-' = standard input), without torch or Pillow."""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from . import container
from .errors import AecError

STDIO = "-"  # the name that means standard input (or, for -o, standard output)
SNIFF_BYTES = len(container.MAGIC)  # what read_input shows its `sniff` before reading on


def _open_input(name: str) -> contextlib.AbstractContextManager[BinaryIO]:
    if name == STDIO:  # read it, but leave sys.stdin open
        return contextlib.nullcontext(sys.stdin.buffer)
    path = Path(name)
    if not path.exists():
        raise AecError(f"{name}: no such file")
    if path.is_dir():
        raise AecError(f"{name}: is a directory")
    try:
        return open(path, "rb")
    except OSError as e:
        raise AecError(f"{name}: cannot read ({e.strerror or e})") from e


def read_input(name: str, sniff: Callable[[bytes], None] | None = None) -> bytes:
    """Read a whole input file ('-' = stdin); every failure is an AecError naming it.

    `sniff`, if given, sees the first few bytes before the rest is read and raises to refuse
    the input early, so that an endless stream (/dev/zero, a pipe) of the wrong kind is
    never read into memory.
    """
    with _open_input(name) as f:
        try:
            head = f.read(SNIFF_BYTES)
            if sniff is not None:
                sniff(head)
            return head + f.read()
        except OSError as e:
            raise AecError(f"{name}: cannot read ({e.strerror or e})") from e


def sniff_aec(head: bytes) -> None:
    """Refuse at once what cannot be an .aec file, with the container's own message."""
    if head != container.MAGIC:
        container.unpack(head)  # raises FormatError: empty, not an .aec file or truncated


def refuse_aec(head: bytes, name: str) -> None:
    """Refuse an .aec file given as an image (to `encode`), recognised by its first bytes
    whatever its name: what the user wants is `decode`."""
    if head == container.MAGIC:
        shown = "<stdin>" if name == STDIO else name
        raise AecError(f"{shown}: this is an .aec file; use `aecompress decode`")


def refuse_aec_file(name: str) -> None:
    """`refuse_aec` for an input file, from its first bytes only. Standard input redirected
    from a file is peeked at where it stands, without moving it. Pipes, which can be read only
    once, are sniffed as they are read (`read_input(name, sniff=...)`); a file that cannot be
    opened is left to the reader, which reports it."""
    try:
        if name == STDIO:
            fd = sys.stdin.fileno()
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return
            head = os.pread(fd, SNIFF_BYTES, os.lseek(fd, 0, os.SEEK_CUR))
        else:
            if not stat.S_ISREG(os.stat(name).st_mode):
                return
            with open(name, "rb") as f:
                head = f.read(SNIFF_BYTES)
    except (AttributeError, OSError, ValueError):  # no real stdin (io.UnsupportedOperation)
        return
    refuse_aec(head, name)


def input_ids(names: Iterable[str]) -> frozenset[tuple[int, int]]:
    """(device, inode) of every input that is a regular file ('-': stdin, if redirected from one).

    Computed once per batch, so that no output may replace any input of the batch.
    """
    ids = set()
    for name in names:
        try:
            st = os.fstat(sys.stdin.fileno()) if name == STDIO else os.stat(name)
        except (AttributeError, OSError, ValueError):  # no such file, or no real stdin
            continue
        if stat.S_ISREG(st.st_mode):
            ids.add((st.st_dev, st.st_ino))
    return frozenset(ids)


def expand_patterns(names: list[str]) -> list[str]:
    """The inputs as given, with quoted glob patterns ('photos/*.png', '**/*.aec') expanded in
    sorted order, as a shell would; a pattern that matches no file is an AecError. A name that
    exists is taken as it is, even if it holds '*', '?' or '['."""
    import glob

    expanded: list[str] = []
    for name in names:
        if name == STDIO or not glob.has_magic(name) or os.path.exists(name):
            expanded.append(name)
            continue
        matches = [m for m in sorted(glob.glob(name, recursive=True)) if os.path.isfile(m)]
        if not matches:
            raise AecError(f"{name}: no file matches this pattern")
        expanded.extend(matches)
    return expanded
