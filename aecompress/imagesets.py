"""Finding image files and reading folders of them as plain RGB, for every command that takes
many images: `train` (training and validation data) and `bench` (test images)."""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import AecError
from .imageio import load_image

# Files with these suffixes are taken from folders; a file named directly is taken whatever
# its name (the reader decides whether it is an image).
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".pnm"}
)


@dataclass(frozen=True)
class NamedImage:
    """An image read for measuring: its path as found and its pixels."""

    name: str
    rgb: np.ndarray = field(repr=False)  # H×W×3 uint8

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


def is_image_name(path: Path) -> bool:
    """An image suffix, and not a hidden file (`._photo.png` is macOS metadata, not a photo)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def find_images(specs: Iterable[str | Path], patterns: bool = True) -> list[Path]:
    """Image files from files, folders (searched recursively) and glob patterns, in order.

    A folder contributes its files with an image name, sorted; with `patterns`, a spec that
    contains * ? or [ and names no existing path contributes its matches, sorted, `**`
    included. Raises AecError for a path that does not exist or a pattern that matches no
    image; a file found twice is kept once, where it was first found.
    """
    found: list[Path] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            found.extend(p for p in sorted(path.rglob("*")) if p.is_file() and is_image_name(p))
        elif path.exists():
            found.append(path)
        elif patterns and any(c in str(spec) for c in "*?["):
            matches = (Path(m) for m in sorted(glob.glob(str(spec), recursive=True)))
            files = [m for m in matches if m.is_file() and is_image_name(m)]
            if not files:
                raise AecError(f"{spec}: the pattern matches no image file")
            found.extend(files)
        else:
            raise AecError(f"{spec}: no such file or directory")
    unique: dict[str, Path] = {}
    for p in found:
        unique.setdefault(os.path.normpath(p), p)
    return list(unique.values())


def read_images(
    paths: Sequence[Path], skip: Callable[[str], None] | None = None
) -> list[NamedImage]:
    """Each file as plain RGB, read as `encode` reads it (orientation applied; alpha, palette
    and ICC profile dropped).

    A file that cannot be read raises AecError, or with `skip` is reported to it (one line
    naming the file) and left out.
    """
    images = []
    for p in paths:
        try:
            images.append(NamedImage(str(p), load_image(p).rgb))
        except AecError as e:
            if skip is None:
                raise
            skip(f"skipping {p}: {e}")
    return images
