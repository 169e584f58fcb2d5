"""aec as the benchmark runs it: the timed encode produces the file and nothing else."""

from __future__ import annotations

import pytest
from conftest import photo_like

from aecompress.bench.aec import aec_coders
from aecompress.bench.runner import run_bench
from aecompress.codec import Codec
from aecompress.imagesets import NamedImage


@pytest.fixture
def synthesis_calls(monkeypatch):
    """Counts calls of Codec.synthesis (g_s), which the decoder needs and the encoder does not."""
    calls = []
    real = Codec.synthesis

    def counting(self, *args, **kwargs):
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Codec, "synthesis", counting)
    return calls


def test_encode_skips_synthesis_and_decode_restores_the_image(
    tiny_checkpoint, synthesis_calls, one_thread
):
    encode, decode = aec_coders(Codec(tiny_checkpoint, "cpu"))
    rgb = photo_like(64, 96, 1)
    data = encode(rgb, 50.0)
    assert isinstance(data, bytes) and data
    assert synthesis_calls == []
    back = decode(data)
    assert len(synthesis_calls) == 1
    assert back.shape == rgb.shape and back.dtype == rgb.dtype


def test_run_bench_synthesises_only_when_decoding(tiny_checkpoint, synthesis_calls, one_thread):
    images = [NamedImage("a", photo_like(64, 96, 1)), NamedImage("b", photo_like(64, 96, 2))]
    result = run_bench(images, ["aec"], sweeps={"aec": [20, 80]}, aec=Codec(tiny_checkpoint))
    assert len(result.points) == 4
    # One decode per point and one for the untimed warm-up; no encode runs g_s.
    assert len(synthesis_calls) == len(result.points) + 1
