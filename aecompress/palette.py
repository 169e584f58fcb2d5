"""Palette images: the palette limit and the nearest-colour search that maps decoded pixels
back to palette indices.

A palette is n RGB entries, 3 × n bytes for 1 <= n <= 256 (the .aec format's limit).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .container import PALETTE_MAX_LEN as PALETTE_MAX_BYTES


def image_palette(image: Image.Image, indices: np.ndarray) -> bytes:
    """The image's real palette, 3 x n bytes, extended only to cover every used index.

    Pillow lets a palette image hold indices past the end of its palette (or have no palette
    at all); those indices get zero (black) entries, so that every pixel's colour is defined
    and the palette never has fewer than one entry.
    """
    raw = bytes((image.getpalette("RGB") or [])[:PALETTE_MAX_BYTES])
    raw = raw[: len(raw) - len(raw) % 3]
    used = int(indices.max()) + 1 if indices.size else 1
    return raw + bytes(max(3 * used - len(raw), 0))


def check_palette(palette: bytes) -> None:
    if not 3 <= len(palette) <= PALETTE_MAX_BYTES or len(palette) % 3:
        raise ValueError(
            f"palette must be 3 to {PALETTE_MAX_BYTES} bytes, a multiple of 3 (got {len(palette)})"
        )


def palette_table(palette: bytes) -> np.ndarray:
    """The palette as an n x 3 uint8 array."""
    return np.frombuffer(palette, dtype=np.uint8).reshape(-1, 3)


def palette_lookup(indices: np.ndarray, palette: bytes) -> np.ndarray:
    return np.ascontiguousarray(palette_table(palette)[indices])


_GRID_SIDE = 8  # colour-cube cells of 8 x 8 x 8 values: 32^3 cells in all
_GRID_CELLS = 256 // _GRID_SIDE


def _cell_candidates(entries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every grid cell, the palette entries that can be nearest to some colour inside it.

    An entry is kept when its smallest possible distance to the cell is no larger than the
    largest possible distance from the cell to the best entry -- so the true nearest entry, and
    every entry tying with it, is always among the candidates. Returns (candidates, counts):
    a (cells, K) array of entry positions in ascending order, padded at the end, and the number
    of real candidates per cell.
    """
    count = len(entries)
    low = (np.arange(_GRID_CELLS, dtype=np.int32) * _GRID_SIDE)[:, None]
    high = low + (_GRID_SIDE - 1)
    nearest_sq, farthest_sq = [], []
    for axis in range(3):
        value = entries[:, axis].astype(np.int32)[None, :]
        gap = np.maximum(np.maximum(low - value, value - high), 0)
        nearest_sq.append(gap * gap)
        reach = np.maximum(np.abs(value - low), np.abs(value - high))
        farthest_sq.append(reach * reach)

    def cube(parts: list[np.ndarray]) -> np.ndarray:
        plane = (parts[0][:, None, :] + parts[1][None, :, :]).reshape(-1, 1, count)
        return (plane + parts[2][None, :, :]).reshape(-1, count)

    bound = cube(farthest_sq).min(axis=1)
    keep = cube(nearest_sq) <= bound[:, None]
    counts = keep.sum(axis=1)
    cells, positions = np.nonzero(keep)  # row-major: positions ascend within each cell
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    slot = np.arange(len(cells)) - starts[cells]
    candidates = np.zeros((len(keep), int(counts.max())), dtype=np.intp)
    candidates[cells, slot] = positions
    return candidates, counts


def nearest_palette_indices(rgb: np.ndarray, palette: bytes) -> np.ndarray:
    """Map every pixel of an H x W x 3 uint8 array to its nearest palette entry (H x W uint8).

    `palette` holds n RGB entries, 3 x n bytes for 1 <= n <= 256 (ValueError otherwise), and
    every result is one of 0..n-1: no entry beyond the palette's real length is ever chosen.
    Distance is squared RGB distance; among equally near entries the lowest index wins, so a
    pixel equal to a palette colour maps to that colour's first index. The search is exact and
    vectorised: the distinct colours of the image are compared only with the palette entries
    that can be nearest within their 8 x 8 x 8 cell of the colour cube.
    """
    check_palette(palette)
    table = palette_table(palette).astype(np.int32)
    table_keys = (table[:, 0] << 16) | (table[:, 1] << 8) | table[:, 2]
    # Distinct palette colours with their first index, kept in index order: scanning them in
    # that order and replacing only on a strictly smaller distance prefers the lowest index.
    _, first_index = np.unique(table_keys, return_index=True)
    first_index = np.sort(first_index)
    entries = table[first_index]
    candidates, counts = _cell_candidates(entries)

    pixels = rgb.reshape(-1, 3).astype(np.int32)
    keys = (pixels[:, 0] << 16) | (pixels[:, 1] << 8) | pixels[:, 2]
    colours, inverse = np.unique(keys, return_inverse=True)
    red, green, blue = (colours >> 16) & 255, (colours >> 8) & 255, colours & 255
    cell = ((red // _GRID_SIDE) * _GRID_CELLS + green // _GRID_SIDE) * _GRID_CELLS
    cell += blue // _GRID_SIDE

    def distance(where: np.ndarray | slice, entry: np.ndarray) -> np.ndarray:
        chosen = entries[entry]
        dr = red[where] - chosen[:, 0]
        dg = green[where] - chosen[:, 1]
        db = blue[where] - chosen[:, 2]
        return dr * dr + dg * dg + db * db

    best = candidates[cell, 0]
    best_distance = distance(slice(None), best)
    colour_counts = counts[cell]
    for slot in range(1, candidates.shape[1]):
        active = np.nonzero(colour_counts > slot)[0]
        if active.size == 0:
            break
        entry = candidates[cell[active], slot]
        found = distance(active, entry)
        better = found < best_distance[active]
        best[active[better]] = entry[better]
        best_distance[active[better]] = found[better]
    indices = first_index[best].astype(np.uint8)
    return indices[inverse.reshape(-1)].reshape(rgb.shape[:2])
