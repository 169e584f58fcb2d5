"""The light part of `aecompress.bench` (what parsing and help need) agrees with the measuring
part, which the package still exports (tests/test_startup.py checks that `bench --help` and its
usage errors import nothing heavy)."""

from __future__ import annotations

import pytest


def test_the_bench_package_names_are_light_and_agree_with_the_peers():
    from aecompress.bench import options, peers

    assert options.PEER_NAMES == tuple(peers.PEERS)
    assert options.RATIO_SWEPT == {n for n, p in peers.PEERS.items() if p.sweep_unit == "ratio"}


def test_the_package_still_exports_the_measuring_parts():
    import aecompress.bench as bench
    from aecompress.bench import runner, tables

    assert bench.run_bench is runner.run_bench and bench.curve_table is tables.curve_table
    assert set(bench.__all__) <= set(dir(bench)) | set(bench._LAZY)
    with pytest.raises(AttributeError):
        bench.no_such_name  # noqa: B018
