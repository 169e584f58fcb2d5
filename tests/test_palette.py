"""Tests for aecompress.palette: the nearest-colour search that maps decoded pixels back to
palette indices."""

from __future__ import annotations

import numpy as np
import pytest

from aecompress.palette import nearest_palette_indices


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


# ---------------------------------------------------------------------------------------------
# Palette mapping


def _brute_force_indices(pixels: np.ndarray, palette: bytes) -> np.ndarray:
    """Nearest palette index per pixel by comparing with every entry; lowest index on ties."""
    table = np.frombuffer(palette, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
    flat = pixels.reshape(-1, 3).astype(np.int32)
    found = np.empty(len(flat), dtype=np.intp)
    for start in range(0, len(flat), 8192):
        chunk = flat[start : start + 8192]
        dist = ((chunk[:, None, :] - table[None]) ** 2).sum(axis=2)
        found[start : start + 8192] = dist.argmin(axis=1)  # argmin: lowest index on ties
    return found.reshape(pixels.shape[:2])


@pytest.mark.parametrize("entries", [1, 2, 16, 40, 255, 256])
def test_nearest_palette_mapping_matches_brute_force(
    rng: np.random.Generator, entries: int
) -> None:
    palette = rng.integers(0, 256, 3 * entries, dtype=np.uint8).tobytes()
    pixels = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    found = nearest_palette_indices(pixels, palette)
    assert found.dtype == np.uint8 and found.shape == (40, 50)
    assert int(found.max()) < entries
    assert np.array_equal(found, _brute_force_indices(pixels, palette))


def test_nearest_palette_prefers_lowest_index_on_ties() -> None:
    table = np.zeros((256, 3), dtype=np.uint8)
    table[:3] = [(10, 10, 10), (30, 30, 30), (10, 10, 10)]
    pixels = np.array([[[20, 20, 20], [10, 10, 10], [30, 30, 30], [0, 0, 0]]], dtype=np.uint8)
    found = nearest_palette_indices(pixels, table.tobytes())
    assert found.tolist() == [[0, 0, 1, 3]]


def test_nearest_palette_mapping_on_a_large_image(rng: np.random.Generator) -> None:
    palette = rng.integers(0, 256, 768, dtype=np.uint8).tobytes()
    table = np.frombuffer(palette, dtype=np.uint8).reshape(256, 3)
    indices = rng.integers(0, 256, (512, 768))
    noisy = np.clip(table[indices] + rng.normal(0, 4, (512, 768, 3)), 0, 255).astype(np.uint8)
    found = nearest_palette_indices(noisy, palette)
    assert np.array_equal(found, _brute_force_indices(noisy, palette))
