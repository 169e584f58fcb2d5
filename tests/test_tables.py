import numpy as np
import pytest

from aecompress.tables import (
    PRECISION,
    PmfTables,
    gaussian_tables,
    quantize_pmf,
    scale_table,
)


def test_quantize_pmf_sums_exactly_and_keeps_every_value_codable():
    rng = np.random.default_rng(1)
    for n in (2, 3, 50, 3000):
        p = rng.random(n) ** 8  # very uneven, many near-zero entries
        q = quantize_pmf(p)
        assert q.sum() == 1 << PRECISION
        assert q.min() >= 1
        assert len(q) == n


def test_quantize_pmf_is_close_to_the_distribution():
    p = np.array([0.5, 0.25, 0.125, 0.125])
    assert list(quantize_pmf(p)) == [32767, 16384, 8193, 8192]


def test_gaussian_tables_cover_their_scale():
    scales = scale_table(0.11, 256.0, 64)
    t = gaussian_tables(scales)
    assert len(t) == 64
    # The support grows with the scale and covers several standard deviations.
    assert (np.diff(t.lengths) >= 0).all()
    assert t.lengths[-1] // 2 > 5 * scales[-1]
    # The smallest scale puts almost everything on 0.
    pmf0 = t.pmf(0)
    assert pmf0[-t.offsets[0] if t.offsets[0] < 0 else 0] > 0.99 * (1 << PRECISION)


def test_tables_reject_inconsistent_arrays():
    with pytest.raises(ValueError):
        PmfTables(np.array([0]), np.array([2]), np.array([1, 1, 1]))  # sums to 3
    with pytest.raises(ValueError):
        PmfTables(np.array([0]), np.array([3]), np.array([1, 1 << 15]))  # wrong length
