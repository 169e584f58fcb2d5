"""Tests for aecompress.imagesets: finding image files and reading them as RGB."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aecompress.errors import AecError
from aecompress.imagesets import find_images, read_images


def _png(path: Path, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 12, 3), value, dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    _png(tmp_path / "b.png")
    _png(tmp_path / "a.PNG")
    _png(tmp_path / "sub" / "c.png")
    _png(tmp_path / "._a.png")  # macOS metadata beside a photo, not a photo
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_a_folder_gives_its_images_recursively_in_order(tree: Path) -> None:
    found = [p.relative_to(tree).as_posix() for p in find_images([tree])]
    assert found == ["a.PNG", "b.png", "sub/c.png"]


def test_a_file_named_directly_is_taken_whatever_its_name(tree: Path) -> None:
    assert find_images([tree / "notes.txt"]) == [tree / "notes.txt"]


def test_patterns_and_duplicates(tree: Path) -> None:
    found = find_images([str(tree / "b.png"), str(tree / "**" / "*.png")])
    assert [p.name for p in found] == ["b.png", "c.png"]  # b.png once, where first found
    with pytest.raises(AecError, match="the pattern matches no image file"):
        find_images([str(tree / "*.webp")])


def test_patterns_can_be_refused(tree: Path) -> None:
    with pytest.raises(AecError, match="no such file or directory"):
        find_images([str(tree / "*.png")], patterns=False)


def test_a_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AecError, match=r"nope: no such file or directory"):
        find_images([tmp_path / "nope"])


def test_read_images_raises_or_skips(tree: Path) -> None:
    good = _png(tree / "grey.png", 128)
    images = read_images([good])
    assert images[0].name == str(good) and (images[0].height, images[0].width) == (8, 12)
    assert images[0].rgb.dtype == np.uint8 and int(images[0].rgb[0, 0, 0]) == 128
    with pytest.raises(AecError, match="notes.txt"):
        read_images([good, tree / "notes.txt"])
    skipped: list[str] = []
    assert len(read_images([tree / "notes.txt", good], skip=skipped.append)) == 1
    assert len(skipped) == 1 and skipped[0].startswith(f"skipping {tree / 'notes.txt'}")
