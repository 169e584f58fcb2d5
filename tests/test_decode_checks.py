"""What `decode` checks of each input before PyTorch is imported (decodeplan.py): a corrupt,
truncated or foreign file, one whose model is not available and one whose output would lose what
was not asked for fail at once, in the time `info` takes (the time is measured by hand, not
here); in a batch, the good files still decode."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from conftest import photo_like
from PIL import Image
from test_startup import probe

from aecompress import container, operations
from aecompress.cli import pipeline
from aecompress.codec import Codec
from aecompress.errors import FormatError
from aecompress.imagefile import encode_image
from aecompress.imageio import SourceImage
from aecompress.modes import ColourMode


def _aec(checkpoint, mode: ColourMode = ColourMode.RGB, seed: int = 1) -> bytes:
    rgb = photo_like(40, 56, seed)
    alpha = rgb[:, :, 0].copy() if mode.has_alpha else None
    image = SourceImage(rgb=rgb, mode=mode, alpha=alpha)
    return encode_image(Codec(checkpoint, "cpu"), image, 50).data


@pytest.fixture(scope="module")
def valid_aec(tiny_checkpoint) -> bytes:
    return _aec(tiny_checkpoint)


@pytest.fixture(scope="module")
def rgba_aec(tiny_checkpoint) -> bytes:
    return _aec(tiny_checkpoint, ColourMode.RGBA)


def _with_crc(data: bytes) -> bytes:
    return data[:-4] + struct.pack(">I", zlib.crc32(data[:-4]))


def _other_model(data: bytes) -> bytes:
    """The same file naming a model id of the same length that no library holds."""
    header, _ = container.unpack(data)
    old = header.model_id.encode()
    new = b"x" * len(old)
    return _with_crc(data.replace(old, new, 1))


def _flip(data: bytes) -> bytes:
    return data[:-10] + bytes([data[-10] ^ 1]) + data[-9:]


CASES = {
    "bit flip": (_flip, ".png", "checksum mismatch: the file is corrupt"),
    "truncated": (lambda d: d[:-100], ".png", "file is truncated"),
    "a PNG": (lambda d: b"\x89PNG\r\n\x1a\n" + d[8:], ".png", "not an .aec file (bad magic bytes)"),
    "model": (_other_model, ".png", "encoded with model xxxxxxxxx"),
    "GIF": (lambda d: d, ".gif", "the image is full-colour and GIF holds 256 colours"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_input_fails_before_torch_is_imported(tmp_path, valid_aec, tiny_model_path, case):
    make, suffix, message = CASES[case]
    (tmp_path / "x.aec").write_bytes(make(valid_aec))
    result = probe("decode", "x.aec", "-o", f"x{suffix}", "--model", str(tiny_model_path),
                   cwd=tmp_path)  # fmt: skip
    assert result["code"] == 1, result["stderr"]
    errors = [line for line in result["stderr"].splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: x.aec: {message}"), errors
    assert "torch" not in result["loaded"], result["loaded"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.aec"]


def test_transparency_and_max_pixels_are_refused_before_torch(tmp_path, rgba_aec):
    (tmp_path / "t.aec").write_bytes(rgba_aec)
    result = probe("decode", "t.aec", "-o", "t.jpg", cwd=tmp_path)
    assert result["code"] == 1 and "torch" not in result["loaded"]
    assert (
        "error: t.aec: the image has transparency (RGBA), which JPEG cannot hold"
        in result["stderr"]
    )
    result = probe("decode", "t.aec", "--max-pixels", "2239", cwd=tmp_path)  # 56 x 40 = 2240
    assert result["code"] == 1 and "torch" not in result["loaded"]
    assert "exceeds the limit of 2239 pixels" in result["stderr"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.aec"]


@pytest.mark.parametrize("pipelined", [False, True])
def test_in_a_batch_the_good_files_still_decode(cli, tmp_path, monkeypatch, valid_aec, pipelined):
    monkeypatch.setattr(pipeline, "usable_cpus", lambda: 2 if pipelined else 1)
    started = []
    real = operations.decode_start
    monkeypatch.setattr(
        operations, "decode_start", lambda *a, **k: started.append(Path(a[1]).name) or real(*a, **k)
    )
    (tmp_path / "a.aec").write_bytes(valid_aec)
    (tmp_path / "b.aec").write_bytes(_flip(valid_aec))
    (tmp_path / "c.aec").write_bytes(_other_model(valid_aec))
    (tmp_path / "d.aec").write_bytes(valid_aec)
    out = tmp_path / "out"
    r = cli("decode", *(tmp_path / f"{n}.aec" for n in "abcd"), "-o", f"{out}/", "--mkdir")
    assert r.exit_code == 1, r.output
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2, r.stderr
    assert errors[0] == f"error: {tmp_path / 'b.aec'}: checksum mismatch: the file is corrupt"
    assert errors[1].startswith(f"error: {tmp_path / 'c.aec'}: encoded with model xxxxxxxxx")
    assert "2 of 4 inputs failed" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.aec.png", "d.aec.png"]
    assert started == ["a.aec", "d.aec"]  # the model never saw the bad ones
    with Image.open(out / "a.aec.png") as a, Image.open(out / "d.aec.png") as d:
        assert a.tobytes() == d.tobytes() and a.size == (56, 40)


def test_the_library_checks_without_a_plan(tmp_path, tiny_checkpoint, valid_aec):
    """decode_one called directly (benchmarks do) reads and checks the file itself."""
    (tmp_path / "b.aec").write_bytes(_flip(valid_aec))
    codec = Codec(tiny_checkpoint, "cpu")
    with pytest.raises(FormatError, match="checksum mismatch"):
        operations.decode_one(
            codec, str(tmp_path / "b.aec"), str(tmp_path / "b.png"), False, 1 << 28
        )
    assert not (tmp_path / "b.png").exists()
