"""Integer probability tables: the frozen interface between the float densities and the coder.

A `PmfTables` holds T discrete distributions. Table t codes the integers
offsets[t] .. offsets[t] + lengths[t] - 1 directly, plus one escape symbol (index lengths[t])
for any value outside that range (its exact value then follows, see entropy.py). Every
probability is a positive integer and each table sums to 2**PRECISION, so nothing about the
tables depends on floating point once they are built: they are computed when a checkpoint is
exported, stored in it, and never recomputed at run time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

PRECISION = 16  # each table's integer probabilities sum to 2**PRECISION
TAIL_MASS = 1e-7  # probability left to the escape symbol (at least one unit) on each side
Z_SEARCH_RANGE = 1024  # |z| range searched for the support of the factorized density


@dataclass
class PmfTables:
    offsets: np.ndarray  # T int64
    lengths: np.ndarray  # T int64, directly coded values per table (escape excluded)
    pmfs: np.ndarray  # sum(lengths + 1) int64, concatenated; escape is each table's last entry
    starts: np.ndarray = field(init=False, repr=False)  # T int64, start of each table in pmfs

    def __post_init__(self) -> None:
        self.offsets = np.asarray(self.offsets, dtype=np.int64)
        self.lengths = np.asarray(self.lengths, dtype=np.int64)
        self.pmfs = np.asarray(self.pmfs, dtype=np.int64)
        sizes = self.lengths + 1
        self.starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        if len(self.offsets) != len(self.lengths) or sizes.sum() != len(self.pmfs):
            raise ValueError("inconsistent table shapes")
        if (self.lengths < 1).any() or (self.pmfs < 1).any():
            raise ValueError("every table needs a directly coded value and positive probabilities")
        totals = np.add.reduceat(self.pmfs, self.starts)
        if (totals != 1 << PRECISION).any():
            raise ValueError(f"every table must sum to 2**{PRECISION}")

    def __len__(self) -> int:
        return len(self.offsets)

    def pmf(self, t: int) -> np.ndarray:
        s = self.starts[t]
        return self.pmfs[s : s + self.lengths[t] + 1]

    def to_tensors(self) -> dict[str, torch.Tensor]:
        return {
            "offsets": torch.from_numpy(self.offsets.copy()),
            "lengths": torch.from_numpy(self.lengths.copy()),
            "pmfs": torch.from_numpy(self.pmfs.astype(np.int32)),
        }

    @classmethod
    def from_tensors(cls, d: dict[str, torch.Tensor]) -> PmfTables:
        return cls(d["offsets"].numpy(), d["lengths"].numpy(), d["pmfs"].numpy())


def quantize_pmf(p: np.ndarray) -> np.ndarray:
    """Float probabilities (escape last) → positive integers summing to 2**PRECISION.

    Every entry gets one unit (so every value stays codable); the remaining units are shared in
    proportion to p, the leftover of the flooring going to the largest fractional parts.
    """
    total = 1 << PRECISION
    p = np.clip(np.asarray(p, dtype=np.float64), 0, None)
    if len(p) >= total or p.sum() <= 0:
        raise ValueError("cannot quantize this distribution")
    spare = total - len(p)
    share = p / p.sum() * spare
    q = np.floor(share).astype(np.int64)
    left = spare - int(q.sum())
    q[np.argsort(-(share - q), kind="stable")[:left]] += 1
    return q + 1


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * np.array([math.erfc(-v / math.sqrt(2)) for v in x.ravel()]).reshape(x.shape)


def scale_table(scale_min: float, scale_max: float, num_scales: int) -> np.ndarray:
    """The log-spaced standard deviations the scale indexes refer to (float64, export only)."""
    return np.exp(np.linspace(math.log(scale_min), math.log(scale_max), num_scales))


def gaussian_tables(scales: np.ndarray) -> PmfTables:
    """One zero-mean quantized Gaussian per scale, for the residuals round(y - mu)."""
    offsets, lengths, pmfs = [], [], []
    for s in scales:
        # Support ±T with T chosen so the mass beyond it is below TAIL_MASS.
        t = max(1, math.ceil(s * math.sqrt(2) * _erfcinv(TAIL_MASS) - 0.5))
        k = np.arange(-t, t + 1, dtype=np.float64)
        upper = _normal_cdf(-(np.abs(k) - 0.5) / s)
        lower = _normal_cdf(-(np.abs(k) + 0.5) / s)
        p = upper - lower
        tail = 2 * _normal_cdf(np.array([-(t + 0.5) / s]))[0]
        offsets.append(-t)
        lengths.append(len(k))
        pmfs.append(quantize_pmf(np.append(p, tail)))
    return PmfTables(np.array(offsets), np.array(lengths), np.concatenate(pmfs))


def _erfcinv(y: float) -> float:
    """Inverse of erfc for small y, by bisection (export time only)."""
    lo, hi = 0.0, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if math.erfc(mid) > y:
            lo = mid
        else:
            hi = mid
    return hi


@torch.no_grad()
def factorized_tables(density) -> PmfTables:
    """Integer tables for z, one per channel, from a trained `FactorizedDensity`."""
    channels = density.matrices[0].shape[0]
    grid = torch.arange(-Z_SEARCH_RANGE, Z_SEARCH_RANGE + 2, dtype=torch.float64) - 0.5
    cdf = density.cdf(grid.expand(channels, -1)).numpy()  # C×(2R+2): cdf at k - 0.5
    offsets, lengths, pmfs = [], [], []
    for c in range(channels):
        upper = cdf[c, 1:]  # cdf(k + 0.5) for k = -R..R
        lower = cdf[c, :-1]  # cdf(k - 0.5)
        keep = np.nonzero((upper >= TAIL_MASS) & (1 - lower >= TAIL_MASS))[0]
        lo, hi = (keep[0], keep[-1]) if len(keep) else (Z_SEARCH_RANGE, Z_SEARCH_RANGE)
        p = upper[lo : hi + 1] - lower[lo : hi + 1]
        tail = lower[lo] + (1 - upper[hi])
        offsets.append(lo - Z_SEARCH_RANGE)
        lengths.append(hi - lo + 1)
        pmfs.append(quantize_pmf(np.append(p, tail)))
    return PmfTables(np.array(offsets), np.array(lengths), np.concatenate(pmfs))
