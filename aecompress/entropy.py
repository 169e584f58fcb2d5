"""Entropy coding of integer arrays under `PmfTables`, with constriction's ANS coder.

Each value is coded under the table named by its table id (a channel for z, a scale index for
y). Values outside a table's range are coded as its escape symbol followed by their exact
value, so every int64 that fits in ESCAPE_MAX_BITS round-trips; nothing is clamped.

Stream order (what the decoder reads, first to last):
  1. for each table id in ascending order, the symbols of the values with that id, in raster
     order;
  2. for each escaped value in raster order: its side (below / above the range), the bit length
     n of (excess + 1), then the n - 1 bits below its leading one, in chunks of CHUNK_BITS.
ANS is a stack, so the encoder pushes all of this in exactly the reverse order.
"""

from __future__ import annotations

import constriction
import numpy as np

from .errors import FormatError
from .tables import PRECISION, PmfTables

# constriction exposes its submodules as attributes only (no importable constriction.stream).
Categorical = constriction.stream.model.Categorical
Uniform = constriction.stream.model.Uniform
AnsCoder = constriction.stream.stack.AnsCoder

ESCAPE_MAX_BITS = 40  # escaped values may exceed a table's range by up to 2**40 - 2
CHUNK_BITS = 16


class TableCoder:
    """Codes int64 arrays under one family of tables; caches the constriction models."""

    def __init__(self, tables: PmfTables):
        self.tables = tables
        self._models: dict[int, Categorical] = {}
        # -log2 probability of each table entry, for rate estimates.
        self._cost = PRECISION - np.log2(tables.pmfs.astype(np.float64))

    def model(self, t: int) -> Categorical:
        m = self._models.get(t)
        if m is None:
            # The integer PMF is exactly representable: constriction rebuilds the same
            # fixed-point model from it on every machine.
            pmf = self.tables.pmf(t).astype(np.float64) / (1 << PRECISION)
            m = self._models[t] = Categorical(pmf, perfect=False)
        return m

    def _symbols(self, values: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Table indexes of the values (escape where out of range) and an escape mask."""
        idx = values - self.tables.offsets[ids]
        length = self.tables.lengths[ids]
        escaped = (idx < 0) | (idx >= length)
        return np.where(escaped, length, idx), escaped

    def estimate_bits(self, values: np.ndarray, ids: np.ndarray) -> float:
        """Ideal code length of the values under the integer tables, escapes included."""
        values, ids = _flat(values, ids)
        sym, escaped = self._symbols(values, ids)
        total = float(self._cost[self.tables.starts[ids] + sym].sum())
        for v, t in zip(values[escaped], ids[escaped], strict=True):
            excess = self._excess(int(v), int(t))[1]
            total += 1 + np.log2(ESCAPE_MAX_BITS) + (excess + 1).bit_length() - 1
        return total

    def _excess(self, v: int, t: int) -> tuple[int, int]:
        lo = int(self.tables.offsets[t])
        hi = lo + int(self.tables.lengths[t]) - 1
        return (0, lo - 1 - v) if v < lo else (1, v - hi - 1)

    def encode(self, values: np.ndarray, ids: np.ndarray) -> bytes:
        values, ids = _flat(values, ids)
        sym, escaped = self._symbols(values, ids)
        coder = AnsCoder()
        for v, t in reversed(list(zip(values[escaped], ids[escaped], strict=True))):
            side, excess = self._excess(int(v), int(t))
            e = excess + 1
            n = e.bit_length()
            if n > ESCAPE_MAX_BITS:
                raise ValueError(f"value {int(v)} is too far outside the coding tables")
            for shift, width in reversed(_chunks(n - 1)):
                coder.encode_reverse(int((e >> shift) & ((1 << width) - 1)), Uniform(1 << width))
            coder.encode_reverse(n - 1, Uniform(ESCAPE_MAX_BITS))
            coder.encode_reverse(side, Uniform(2))
        order, table_ids, bounds = _grouped(ids)
        for i in reversed(range(len(table_ids))):
            group = sym[order[bounds[i] : bounds[i + 1]]].astype(np.int32)
            coder.encode_reverse(group, self.model(int(table_ids[i])))
        return coder.get_compressed().astype("<u4").tobytes()

    def decode(self, data: bytes, ids: np.ndarray) -> np.ndarray:
        """Inverse of `encode` given the same ids; raises FormatError on inconsistent data."""
        shape = np.shape(ids)
        ids = np.asarray(ids, dtype=np.int64).ravel()
        if len(data) % 4:
            raise FormatError("entropy-coded stream length is not a multiple of 4")
        words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
        if len(words) and words[-1] == 0:
            # The coder never writes a final zero word, and constriction refuses one.
            raise FormatError("entropy-coded stream ends in a zero word: the file is corrupt")
        coder = AnsCoder(words)
        order, table_ids, bounds = _grouped(ids)
        sym = np.empty(len(ids), dtype=np.int64)
        for i, t in enumerate(table_ids):
            n = int(bounds[i + 1] - bounds[i])
            sym[order[bounds[i] : bounds[i + 1]]] = coder.decode(self.model(int(t)), n)
        values = sym + self.tables.offsets[ids]
        escaped = np.nonzero(sym == self.tables.lengths[ids])[0]
        for pos in escaped:
            t = int(ids[pos])
            side = int(coder.decode(Uniform(2)))
            n = int(coder.decode(Uniform(ESCAPE_MAX_BITS))) + 1
            e = 1
            for _shift, width in _chunks(n - 1):
                e = (e << width) | int(coder.decode(Uniform(1 << width)))
            lo = int(self.tables.offsets[t])
            hi = lo + int(self.tables.lengths[t]) - 1
            values[pos] = lo - e if side == 0 else hi + e
        if not coder.is_empty():
            raise FormatError("entropy-coded stream has data left over: the file is corrupt")
        return values.reshape(shape)


def _grouped(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The positions of `ids` grouped by table id, raster order within each (a stable sort),
    the table ids present in ascending order, and each group's bounds in that order."""
    keys = ids
    if len(ids) and ids.min() >= 0 and ids.max() < 1 << 16:
        # The same stable order, ~4× faster: numpy sorts 16-bit keys stably by radix sort.
        keys = ids.astype(np.uint16)
    order = np.argsort(keys, kind="stable")
    table_ids, starts = np.unique(ids[order], return_index=True)
    return order, table_ids, np.append(starts, len(order))


def _chunks(nbits: int) -> list[tuple[int, int]]:
    """(shift, width) of the CHUNK_BITS-wide pieces of an nbits number, most significant first."""
    out = []
    while nbits > 0:
        width = min(CHUNK_BITS, nbits)
        nbits -= width
        out.append((nbits, width))
    return out


def _flat(values: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(values, dtype=np.int64).ravel()
    ids = np.asarray(ids, dtype=np.int64).ravel()
    if values.shape != ids.shape:
        raise ValueError("values and table ids differ in shape")
    return values, ids
