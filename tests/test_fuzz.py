"""Hostile .aec files through the real decode path (decode, restore and save as the CLI does):
every case either decodes or raises an AecError subclass, promptly, within bounded memory. The
mutation engine is aecompress/fuzzing.py; benchmarks/fuzz.py runs hundreds of thousands of
cases with it (`python3 benchmarks/fuzz.py --cases 200000 --seed N`)."""

from __future__ import annotations

import time

import pytest
import torch

from aecompress import container
from aecompress import fuzzing as fuzz
from aecompress.codec import Codec
from aecompress.errors import AecError, FormatError
from aecompress.imagefile import decode_image

CASES = 12000  # about 20-40 s on one loaded core; most cases end at the container check
DEADLINE = fuzz.CASE_DEADLINE_S


@pytest.fixture(scope="module")
def codec(tiny_checkpoint) -> Codec:
    # Thousands of tiny decodes: one thread avoids thread start-up and oversubscription costs
    # that dwarf the work itself.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield Codec(tiny_checkpoint, "cpu")
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def seeds(codec) -> list:
    return fuzz.make_seeds(codec)


def _decode(codec: Codec, data: bytes) -> str:
    """Decode like the CLI; the outcome's name. Fails the test on anything but AecError."""
    t0 = time.perf_counter()
    try:
        with fuzz.deadline(DEADLINE):
            fuzz.decode_like_the_cli(codec, data)
        outcome = "ok"
    except AecError as e:
        outcome = type(e).__name__
    assert time.perf_counter() - t0 < DEADLINE
    return outcome


def test_seeds_cover_every_colour_mode(seeds):
    assert {s.header.mode.name for s in seeds} == {"RGB", "L", "RGBA", "LA", "P", "PA"}
    assert any(s.streams.icc for s in seeds)


def test_every_truncation_is_refused(codec, seeds):
    for s in seeds:
        for n in range(len(s.data)):
            with pytest.raises(FormatError) as info:
                decode_image(codec, s.data[:n])
            msg = str(info.value)
            assert "truncated" in msg or "not an .aec file" in msg or n >= 8, (n, msg)


def test_every_single_bit_flip_is_detected(codec, seeds):
    """Without a recomputed CRC, no single flipped bit can go unnoticed."""
    for s in seeds:
        data = bytearray(s.data)
        for i in range(len(data) * 8):
            data[i // 8] ^= 1 << (i % 8)
            with pytest.raises(FormatError):
                decode_image(codec, bytes(data))
            data[i // 8] ^= 1 << (i % 8)


@pytest.mark.parametrize("which", [1, 0])  # the 1x1 L image, the 72x48 RGB one
def test_every_single_bit_flip_with_the_crc_recomputed(codec, seeds, which):
    """An adversary fixes the CRC: the flip reaches the semantic checks and the decoders."""
    s = seeds[which]
    outcomes: dict[str, int] = {}
    data = bytearray(s.data)
    for i in range((len(data) - 4) * 8):
        data[i // 8] ^= 1 << (i % 8)
        outcome = _decode(codec, fuzz.fix_crc(data))
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        data[i // 8] ^= 1 << (i % 8)
    assert outcomes.get("FormatError", 0) > 0 and outcomes.get("ModelMismatchError", 0) > 0


@pytest.mark.parametrize("stream", ["z", "y"])
def test_stream_ending_in_a_zero_word_is_a_format_error(codec, seeds, stream):
    s = seeds[0]
    bad = getattr(s.streams, stream)[:-4] + b"\0\0\0\0"
    with pytest.raises(FormatError):
        decode_image(codec, fuzz.forge(s, streams={stream: bad}))


def test_forged_size_is_refused_before_any_decoding(codec, seeds, monkeypatch):
    """200000 x 200000 with a valid CRC: refused by the pixel limit before anything is sized
    from it -- the entropy decoder is never reached."""

    def must_not_run(*_a, **_k):
        raise AssertionError("the entropy decoder ran for a file over the pixel limit")

    monkeypatch.setattr(codec.z_coder, "decode", must_not_run)
    data = fuzz.forge(seeds[0], width=200_000, height=200_000)
    with pytest.raises(FormatError, match="exceeds the limit"):
        decode_image(codec, data)
    with pytest.raises(FormatError, match="exceeds the limit of 100 pixels"):
        decode_image(codec, seeds[0].data, max_pixels=100)
    header, _ = container.unpack(data, max_pixels=200_000 * 200_000)  # the header itself is fine
    assert header.pixels == 200_000 * 200_000


def test_cases_are_reproducible(seeds):
    assert fuzz.case(7, 123, seeds) == fuzz.case(7, 123, seeds)
    assert fuzz.case(7, 123, seeds) != fuzz.case(8, 123, seeds)


def test_random_mutations(codec, seeds):
    """Thousands of seeded mutations: only AecError subclasses or success, no case slow."""
    res = fuzz.run(codec, seeds, CASES, seed=20250101, per_case_deadline=DEADLINE)
    assert not res.unexpected, fuzz.report(res)
    assert res.cases == CASES
    assert res.slowest[0] < DEADLINE
    assert res.max_rss_growth_mb < 512, fuzz.report(res)
    # The mutations reach every stage: container checks, semantic checks, the model check, the
    # entropy decoder (CRC-fixed garbage) and, for benign edits, a full decode.
    for outcome in ("ok", "FormatError", "ModelMismatchError"):
        assert res.outcomes[outcome] > 0, fuzz.report(res)
    entropy = sum(n for m, n in res.messages.items() if "entropy-coded" in m)
    assert entropy > CASES // 20, fuzz.report(res)
    assert sum(n for m, n in res.messages.items() if "checksum" in m) > CASES // 50
