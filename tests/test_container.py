import dataclasses
import random
import struct
import zlib

import pytest

from aecompress.container import (
    DEFAULT_MAX_PIXELS,
    FORMAT_VERSION,
    MAGIC,
    Header,
    Streams,
    pack,
    read_header,
    unpack,
)
from aecompress.errors import FormatError
from aecompress.modes import ColourMode

FP = bytes(range(1, 9))


def make(mode=ColourMode.RGB, **fields):
    header = Header(
        model_id=fields.pop("model_id", "hp-v1"),
        fingerprint=fields.pop("fingerprint", FP),
        width=fields.pop("width", 7),
        height=fields.pop("height", 5),
        mode=mode,
        quality_centi=fields.pop("quality_centi", 4250),
    )
    streams = Streams(
        z=fields.pop("z", b"zzzz"),
        y=fields.pop("y", b"yyyyyyyy"),
        alpha=fields.pop("alpha", b"AL" if mode.has_alpha else b""),
        palette=fields.pop("palette", bytes(range(256)) * 3 if mode.has_palette else b""),
        icc=fields.pop("icc", b""),
    )
    assert not fields
    return header, streams


SMALL = pack(*make(ColourMode.RGBA, icc=b"I"))


def reseal(body: bytes) -> bytes:
    """Replace the CRC so that a field edit reaches the semantic checks."""
    return body + struct.pack(">I", zlib.crc32(body))


def with_field(data: bytes, offset: int, fmt: str, value) -> bytes:
    body = bytearray(data[:-4])
    struct.pack_into(fmt, body, offset, value)
    return reseal(bytes(body))


# Offsets in a file whose model id is "hp-v1" (5 bytes): fields start at 9 + 5.
F = 14
W_OFF, H_OFF, MODE_OFF, Q_OFF, LEN_OFF = F + 8, F + 12, F + 16, F + 17, F + 19


@pytest.mark.parametrize("mode", list(ColourMode))
@pytest.mark.parametrize("icc", [b"", b"\x00ICC profile"])
def test_round_trip_every_mode(mode, icc):
    header, streams = make(mode, icc=icc)
    data = pack(header, streams)
    h2, s2 = unpack(data)
    assert h2 == header and s2 == streams
    assert isinstance(h2.mode, ColourMode)
    assert pack(h2, s2) == data
    assert read_header(data) == header
    assert data[:4] == MAGIC and data[4] == FORMAT_VERSION and data[5] == 0
    assert struct.unpack_from(">H", data, 6)[0] == 9 + len(header.model_id) + 39
    assert len(data) == 48 + len(header.model_id) + sum(map(len, dataclasses.astuple(streams))) + 4


def test_header_properties():
    header, _ = make(width=640, height=480, quality_centi=150)
    assert header.quality == 1.5
    assert header.pixels == 640 * 480


def test_extreme_but_valid_fields():
    header, streams = make(model_id="x" * 32, width=2**32 - 1, height=1, quality_centi=10000)
    h2, _ = unpack(pack(header, streams), max_pixels=2**32)
    assert h2 == header
    h3, _ = unpack(pack(*make(model_id="!~", quality_centi=100)))
    assert h3.model_id == "!~" and h3.quality == 1.0


@pytest.mark.parametrize(
    "edit, message",
    [
        (dict(fingerprint=b"123456789"), "fingerprint"),
        (dict(quality_centi=99), "quality"),
        (dict(quality_centi=10001), "quality"),
        (dict(quality_centi=50.0), "quality_centi"),
        (dict(model_id=""), "model id length"),
        (dict(model_id="x" * 33), "model id length"),
        (dict(model_id="has space"), "printable ASCII"),
        (dict(model_id="modèle"), "printable ASCII"),
        (dict(width=0), "zero width"),
        (dict(width=2**32), "width"),
        (dict(height=-1), "height"),
        (dict(y=b""), "empty y stream"),
        (dict(z=b""), "empty z stream"),
        (dict(z=b"zzz"), "multiple of 4"),
        (dict(alpha=b"A"), "unexpected alpha stream for mode RGB"),
        (dict(palette=b"p" * 768), "unexpected palette stream"),
    ],
)
def test_pack_rejects_invalid_input(edit, message):
    with pytest.raises(ValueError, match=message):
        pack(*make(**edit))


def test_pack_rejects_mode_stream_mismatch():
    with pytest.raises(ValueError, match="alpha stream missing for mode LA"):
        pack(*make(ColourMode.LA, alpha=b""))
    with pytest.raises(ValueError, match=r"palette stream must be 3 to 768 bytes, a multiple"):
        pack(*make(ColourMode.P, palette=b"p" * 767))
    header, streams = make()
    with pytest.raises(ValueError, match="unknown colour mode 9"):
        pack(dataclasses.replace(header, mode=9), streams)


@pytest.mark.parametrize("mode", [ColourMode.P, ColourMode.PA])
@pytest.mark.parametrize("length", [3, 48, 765, 768])
def test_palette_of_any_whole_number_of_entries(mode, length):
    header, streams = make(mode, palette=(bytes(range(256)) * 3)[:length])
    data = pack(header, streams)
    assert unpack(data) == (header, streams)
    assert len(unpack(data)[1].palette) == length


@pytest.mark.parametrize("mode", [ColourMode.P, ColourMode.PA])
@pytest.mark.parametrize("length", [0, 1, 2, 4, 767, 769, 771])
def test_palette_length_out_of_range_or_ragged(mode, length):
    message = rf"palette stream must be 3 to 768 bytes, a multiple of 3 \(got {length}\)"
    header, streams = make(mode, palette=b"p" * length)
    with pytest.raises(ValueError, match=message):
        pack(header, streams)
    # The same streams written without pack's checks: unpack must refuse them too.
    good = pack(header, dataclasses.replace(streams, palette=b"p" * 3))
    body = bytearray(good[: -4 - len(streams.icc) - 3])
    struct.pack_into(">I", body, LEN_OFF + 12, length)
    data = reseal(bytes(body) + streams.palette + streams.icc)
    with pytest.raises(FormatError, match=message):
        unpack(data)


def test_bad_magic():
    for data in (b"PNG\x00" + SMALL[4:], b"\x89PNG\r\n\x1a\n", b"x", b"\x89AEX"):
        with pytest.raises(FormatError, match=r"not an \.aec file \(bad magic bytes\)"):
            unpack(data)
    with pytest.raises(FormatError, match="empty"):
        unpack(b"")


def test_unknown_version():
    data = bytearray(SMALL)
    data[4] = 7
    with pytest.raises(FormatError, match=r"unsupported \.aec format version 7 \(this build reads"):
        unpack(bytes(data))


def test_nonzero_flags():
    data = bytearray(SMALL)
    data[5] = 0x10
    with pytest.raises(FormatError, match="flags 0x10"):
        unpack(bytes(data))


def test_truncated_at_every_length():
    for n in range(len(SMALL)):
        with pytest.raises(FormatError) as info:
            unpack(SMALL[:n])
        message = str(info.value)
        if n == 0:
            assert "empty" in message
        else:
            assert "truncated" in message, (n, message)
    with pytest.raises(FormatError, match=f"expected {len(SMALL)} bytes, got {len(SMALL) - 1}"):
        unpack(SMALL[:-1])


def test_every_single_bit_flip_is_caught():
    for i in range(len(SMALL) * 8):
        data = bytearray(SMALL)
        data[i // 8] ^= 1 << (i % 8)
        with pytest.raises(FormatError):
            unpack(bytes(data))


def test_payload_bit_flip_is_a_checksum_mismatch():
    data = bytearray(SMALL)
    data[-6] ^= 0x01
    with pytest.raises(FormatError, match="checksum mismatch: the file is corrupt"):
        unpack(bytes(data))


def test_trailing_data():
    with pytest.raises(
        FormatError, match=r"trailing data after the end of the \.aec file \(3 bytes"
    ):
        unpack(SMALL + b"abc")


def test_absurd_size_refused_by_pixel_limit():
    data = pack(*make(width=200000, height=200000))
    with pytest.raises(FormatError, match="200000x200000 exceeds the limit of") as info:
        unpack(data)
    assert str(DEFAULT_MAX_PIXELS) in str(info.value) and "--max-pixels" in str(info.value)
    with pytest.raises(FormatError, match="exceeds"):
        read_header(data)
    assert unpack(data, max_pixels=200000 * 200000)[0].width == 200000
    with pytest.raises(FormatError, match="7x5 exceeds the limit of 34 pixels"):
        unpack(pack(*make()), max_pixels=34)


@pytest.mark.parametrize(
    "offset, fmt, value, message",
    [
        (W_OFF, ">I", 0, "zero width or height"),
        (H_OFF, ">I", 0, "zero width or height"),
        (MODE_OFF, ">B", 9, "unknown colour mode 9"),
        (MODE_OFF, ">B", ColourMode.RGB, "unexpected alpha stream for mode RGB"),
        (MODE_OFF, ">B", ColourMode.PA, r"palette stream must be 3 to 768 bytes.*\(got 0\)"),
        (Q_OFF, ">H", 0, "quality 0.00"),
        (Q_OFF, ">H", 10001, "quality 100.01"),
        (9, ">B", ord(" "), "model id is not printable ASCII"),
        (10, ">B", 0xE9, "model id is not printable ASCII"),
    ],
)
def test_semantic_checks_behind_a_valid_crc(offset, fmt, value, message):
    with pytest.raises(FormatError, match=message):
        unpack(with_field(SMALL, offset, fmt, value))


def test_empty_or_missing_streams():
    def lengths_edit(data, index, new_len):
        # Move bytes between streams so the total length (and so truncation) still holds.
        body = bytearray(data[:-4])
        old = list(struct.unpack_from(">5I", body, LEN_OFF))
        old[index + 1] += old[index] - new_len
        old[index] = new_len
        struct.pack_into(">5I", body, LEN_OFF, *old)
        return reseal(bytes(body))

    with pytest.raises(FormatError, match="empty z stream"):
        unpack(lengths_edit(SMALL, 0, 0))
    with pytest.raises(FormatError, match="empty y stream"):
        unpack(lengths_edit(SMALL, 1, 0))
    with pytest.raises(FormatError, match="alpha stream missing for mode RGBA"):
        unpack(lengths_edit(SMALL, 2, 0))
    with pytest.raises(FormatError, match="not a multiple of 4"):
        unpack(lengths_edit(SMALL, 1, 5))


def test_model_id_length_field():
    for bad in (0, 33, 255):
        data = bytearray(SMALL)
        data[8] = bad
        with pytest.raises(FormatError, match=f"model id length {bad}"):
            unpack(bytes(data))


def test_header_length_field_must_match():
    data = bytearray(SMALL)
    data[7] += 1
    with pytest.raises(FormatError, match="header length"):
        unpack(bytes(data))


def test_non_bytes_buffers_accepted():
    assert unpack(bytearray(SMALL))[0] == unpack(memoryview(SMALL))[0]


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    kind = rng.randrange(6)
    if kind == 0:
        return bytes(buf[: rng.randrange(len(buf))])
    if kind == 1:
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(buf) * 8)
            buf[i // 8] ^= 1 << (i % 8)
        return bytes(buf)
    if kind == 2:
        i = rng.randrange(len(buf) + 1)
        return bytes(buf[:i] + rng.randbytes(rng.randint(1, 8)) + buf[i:])
    if kind == 3:
        return rng.randbytes(rng.randrange(120))
    # Field edits with a recomputed CRC, so they reach the checks behind the checksum.
    body = buf[:-4]
    if kind == 4:
        i = rng.randrange(len(body))
        body[i] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)])
    else:
        off = rng.choice([6, W_OFF, H_OFF, MODE_OFF, Q_OFF] + [LEN_OFF + 4 * k for k in range(5)])
        width = 2 if off in (6, Q_OFF) else 1 if off == MODE_OFF else 4
        body[off : off + width] = rng.randbytes(width)
    return reseal(bytes(body))


def test_random_mutation_fuzz():
    rng = random.Random(20240601)
    seeds = [pack(*make(mode, icc=b"icc" if mode % 2 else b"")) for mode in ColourMode]
    outcomes = {"ok": 0, "error": 0}
    for _ in range(2000):
        data = mutate(rng, rng.choice(seeds))
        try:
            header, streams = unpack(data, max_pixels=10**6)
        except FormatError as exc:
            message = str(exc)
            assert message and "\n" not in message
            outcomes["error"] += 1
        else:
            assert pack(header, streams) == data
            outcomes["ok"] += 1
    assert outcomes["error"] > 1500
