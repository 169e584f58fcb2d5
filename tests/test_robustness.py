"""No input can crash the command line, hang it, or leave a half-written or wrong file behind.

Everything here goes through the real CLI (Typer's CliRunner, one real process for stdin): hostile
.aec files, hostile and unusual images, batches with bad inputs, --fail-fast, outputs that would
replace an input, and Ctrl-C in the middle of a write.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import make_tiny_checkpoint, photo_like
from PIL import Image

from aecompress import container
from aecompress.checkpoint import save_checkpoint
from aecompress.codec import Codec
from aecompress.container import Header, Streams
from aecompress.imagefile import encode_image
from aecompress.imageio import SourceImage, load_image
from aecompress.modes import ColourMode
from aecompress.registry import MODEL_ENV

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def run(cli):
    return cli  # conftest's: the CLI in-process, the tiny model as the default


@pytest.fixture(scope="module")
def valid_aec(tiny_checkpoint) -> bytes:
    image = SourceImage(rgb=photo_like(40, 56, 1), mode=ColourMode.RGB)
    return encode_image(Codec(tiny_checkpoint, "cpu"), image, 50).data


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def assert_clean_failure(result, name: str, *fragments: str, code: int = 1) -> str:
    """Exit `code`, exactly one error line, naming `name` and holding every fragment."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    assert name in lines[0], lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def png(path: Path, image: Image.Image | None = None, **kw) -> Path:
    (image or Image.fromarray(photo_like(24, 32))).save(path, **kw)
    return path


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ----- hostile .aec files -----------------------------------------------------------------------


def _fix_crc(data: bytes) -> bytes:
    return data[:-4] + struct.pack(">I", zlib.crc32(data[:-4]))


def _repack(data: bytes, **changes) -> bytes:
    """The file with header fields or streams changed, written without the writer's checks."""
    header, streams = container.unpack(data)
    h = {f: getattr(header, f) for f in Header.__dataclass_fields__}
    s = {f: getattr(streams, f) for f in Streams.__dataclass_fields__}
    for key, value in changes.items():
        (s if key in s else h)[key] = value
    mid = h["model_id"].encode()
    parts = [s[n] for n in ("z", "y", "alpha", "palette", "icc")]
    out = container.MAGIC + bytes([1, 0]) + struct.pack(">HB", 48 + len(mid), len(mid)) + mid
    fields = (h["width"], h["height"], int(h["mode"]), h["quality_centi"])
    out += h["fingerprint"] + struct.pack(">IIBH", *fields)
    out += struct.pack(">5I", *map(len, parts)) + b"".join(parts)
    return _fix_crc(out + b"\0\0\0\0")


def _set_lengths(data: bytes, i: int, value: int) -> bytes:
    off = 9 + len("tiny-test") + 19 + 4 * i  # the i-th stream length (z, y, alpha, palette, icc)
    return _fix_crc(data[:off] + struct.pack(">I", value) + data[off + 4 :])


def _flip(data: bytes, pos: int) -> bytes:
    return data[:pos] + bytes([data[pos] ^ 0x10]) + data[pos + 1 :]


HOSTILE = {
    "empty": (lambda d: b"", "the file is empty"),
    "png": (lambda d: b"\x89PNG\r\n\x1a\n" + d[8:], "not an .aec file"),
    "text": (lambda d: b"hello world\n", "not an .aec file"),
    "version": (lambda d: d[:4] + b"\x02" + d[5:], "unsupported .aec format version 2"),
    "flags": (lambda d: d[:5] + b"\x01" + d[6:], "unsupported flags"),
    "magic only": (lambda d: d[:4], "truncated"),
    "cut header": (lambda d: d[:30], "truncated"),
    "cut payload": (lambda d: d[:-9], "truncated"),
    "trailing": (lambda d: d + b"garbage", "trailing data"),
    "bit flip": (lambda d: _flip(d, len(d) - 12), "checksum mismatch"),
    "header flip": (lambda d: _flip(d, 20), "checksum mismatch"),
    "huge size": (lambda d: _repack(d, width=200_000, height=200_000), "exceeds the limit"),
    "zero width": (lambda d: _repack(d, width=0), "zero width"),
    "empty z": (lambda d: _repack(d, z=b""), "empty z stream"),
    "odd y": (lambda d: _repack(d, y=b"\1\2\3"), "not a multiple of 4"),
    "overlong": (lambda d: _set_lengths(d, 1, 0xFFFFFFFF), "truncated"),
    "long icc": (lambda d: _set_lengths(d, 4, 1 << 31), "truncated"),
    "other model": (lambda d: _repack(d, model_id="other-model"), "encoded with model other"),
    "other weights": (lambda d: _repack(d, fingerprint=b"\0" * 8), "0000000000000000"),
    "garbage y": (lambda d: _repack(d, y=bytes(range(1, 201))), "the file is corrupt"),
    "swapped": (lambda d: _repack(d, z=container.unpack(d)[1].y, y=container.unpack(d)[1].z), ""),
    "zero word": (lambda d: _repack(d, y=container.unpack(d)[1].y[:-4] + bytes(4)), "zero word"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_aec_decode_and_info(run, tmp_path, valid_aec, case):
    make, fragment = HOSTILE[case]
    src = tmp_path / "hostile.aec"
    src.write_bytes(make(valid_aec))
    r = run("decode", src, "-o", tmp_path / "out.png", "--device", "cpu")
    assert_clean_failure(r, str(src), fragment)
    assert listing(tmp_path) == ["hostile.aec"]  # nothing written, no temp file left
    r = run("info", src)
    if case in ("other model", "other weights", "garbage y", "swapped", "zero word"):
        assert r.exit_code == 0, r.output  # info reads the header; it does not decode
    else:
        assert_clean_failure(r, str(src), fragment)


def test_max_pixels_on_decode_and_info(run, tmp_path, valid_aec):
    src = tmp_path / "a.aec"
    src.write_bytes(valid_aec)
    for command in (("decode", src, "-o", tmp_path / "a.png"), ("info", src)):
        r = run(*command, "--max-pixels", "2239")  # the image is 56 x 40 = 2240 pixels
        assert_clean_failure(r, str(src), "exceeds the limit of 2239 pixels", "--max-pixels")
        assert run(*command, "--max-pixels", "2240").exit_code == 0
    huge = tmp_path / "huge.aec"
    huge.write_bytes(_repack(valid_aec, width=200_000, height=200_000))
    r = run("info", huge, "--max-pixels", str(10**11), "--json")  # a header-only look is cheap
    assert r.exit_code == 0, r.output
    assert '"width": 200000' in r.stdout
    assert run("decode", huge, "-o", tmp_path / "h.png", "--max-pixels", "0").exit_code == 2


def test_unexpected_library_errors_are_one_line_and_the_batch_goes_on(
    run, tmp_path, valid_aec, monkeypatch
):
    class PanicException(BaseException):  # what a Rust panic inside constriction looks like
        pass

    real = Codec.decode
    # b.aec and c.aec are told apart by the quality in their headers.
    errors = {4000: RuntimeError("boom\nsecond line"), 6000: PanicException("panicked")}

    def flaky(self, header, streams):
        if header.quality_centi in errors:
            raise errors[header.quality_centi]
        return real(self, header, streams)

    monkeypatch.setattr(Codec, "decode", flaky)
    (tmp_path / "a.aec").write_bytes(valid_aec)
    # Distinct valid files (their headers are read to find the model); never really decoded.
    (tmp_path / "b.aec").write_bytes(_repack(valid_aec, quality_centi=4000))
    (tmp_path / "c.aec").write_bytes(_repack(valid_aec, quality_centi=6000))
    (tmp_path / "d.aec").write_bytes(valid_aec)
    out = tmp_path / "out"
    out.mkdir()
    r = run("decode", *(tmp_path / n for n in ("a.aec", "b.aec", "c.aec", "d.aec")), "-o", out)
    assert r.exit_code == 1 and "Traceback" not in r.output
    lines = error_lines(r)
    assert lines == [
        f"error: {tmp_path / 'b.aec'}: internal error: RuntimeError: boom second line",
        f"error: {tmp_path / 'c.aec'}: internal error: PanicException: panicked",
    ]
    assert "2 of 4 inputs failed" in r.stderr
    assert listing(out) == ["a.aec.png", "d.aec.png"]


def test_file_names_are_printed_verbatim(run, tmp_path):
    """Rich markup or emoji codes in a path are neither interpreted nor a crash: a folder named
    "[" puts "[/red]" into the path, an unmatched closing tag that Rich would refuse."""
    folder = tmp_path / "["
    folder.mkdir()
    src = png(folder / "red]:smile:[bold].png")
    r = run("encode", src, "-o", folder / "b]y.aec", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["results"][0]["output"] == str(folder / "b]y.aec")
    r = run("decode", folder / "b]y.aec", "-o", folder / "x]:smile:.png")
    assert r.exit_code == 0, r.output
    assert "[/x]:smile:.png" in r.stdout and "Traceback" not in r.output
    bad = folder / "x]bad.png"
    bad.write_bytes(b"nope")
    r = run("encode", bad, "-o", tmp_path / "z.aec")
    assert_clean_failure(r, "[/x]bad.png", "not a readable image")


def test_decode_refuses_an_endless_stream_at_once(run, tmp_path):
    """A non-.aec input is refused from its first bytes, never read whole (/dev/zero)."""
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero here")
    r = run("decode", "/dev/zero", "-o", tmp_path / "z.png")
    assert_clean_failure(r, "/dev/zero", "not an .aec file")
    r = run("info", "/dev/zero")
    assert_clean_failure(r, "/dev/zero", "not an .aec file")
    r = run("encode", "/dev/zero", "-o", tmp_path / "z.aec")
    assert_clean_failure(r, "/dev/zero", "not a readable image")


AEC_HINT = "this is an .aec file; use `aecompress decode`"


def test_an_aec_file_given_to_encode_is_named_as_such(run, tmp_path, valid_aec):
    """Recognised by its first bytes, whatever its name, and before the output checks: `encode
    x.aec` would write x.aec, but "refusing to overwrite the input file" is not the answer."""
    aec, renamed = tmp_path / "x.aec", tmp_path / "photo.png"
    for path in (aec, renamed):
        path.write_bytes(valid_aec)
        r = run("encode", path)
        assert assert_clean_failure(r, str(path)) == f"error: {path}: {AEC_HINT}"
    r = run("encode", "-", "-o", tmp_path / "s.aec", input=valid_aec)
    assert assert_clean_failure(r, "<stdin>") == f"error: <stdin>: {AEC_HINT}"
    out = tmp_path / "out"
    good = png(tmp_path / "good.png")
    r = run("encode", renamed, good, "-o", f"{out}/", "--mkdir")  # in a batch: fails alone
    assert assert_clean_failure(r, str(renamed)) == f"error: {renamed}: {AEC_HINT}"
    assert "1 of 2 inputs failed" in r.stderr
    assert listing(out) == ["good.aec"]
    assert aec.read_bytes() == renamed.read_bytes() == valid_aec


_REPORT_TORCH = """
import sys
from aecompress.cli import app
try:
    app(args=sys.argv[1:], prog_name="aecompress")
except SystemExit as e:
    print("exit", e.code, "torch" in sys.modules)
"""


def test_stdin_redirected_from_an_aec_file_is_refused_before_torch(
    tmp_path, tiny_model_path, valid_aec
):
    """Standard input from a file is peeked at without being consumed: an .aec file is refused
    at once, and an image is still encoded whole (a real process: only then is stdin a file)."""
    (tmp_path / "x.aec").write_bytes(valid_aec)
    png(tmp_path / "p.png")
    env = {**os.environ, MODEL_ENV: str(tiny_model_path), "PYTHONPATH": str(ROOT)}
    outcomes = {}
    for name in ("x.aec", "p.png"):
        with open(tmp_path / name, "rb") as stdin:
            p = subprocess.run(
                [sys.executable, "-c", _REPORT_TORCH, "encode", "-", "-o", tmp_path / "s.aec"],
                stdin=stdin, capture_output=True, text=True, env=env, timeout=300,
            )  # fmt: skip
        outcomes[name] = (p.stdout.strip().splitlines()[-1], p.stderr)
    assert outcomes["x.aec"] == ("exit 1 False", f"error: <stdin>: {AEC_HINT}\n")
    assert outcomes["p.png"][0] == "exit 0 True", outcomes["p.png"][1]
    assert (tmp_path / "s.aec").read_bytes()[:4] == container.MAGIC


def test_an_aec_stream_given_to_encode_is_refused_from_its_first_bytes(run, tmp_path):
    """A pipe is read once, so it is recognised as it is read, and never read whole: the
    writer of a long stream finds the pipe closed after the first bytes."""
    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes here")
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    wrote_all = []

    def long_stream() -> None:
        try:
            with open(fifo, "wb") as f:
                f.write(container.MAGIC)
                for _ in range(64):  # 64 MiB: far more than the pipe's buffer
                    f.write(bytes(1 << 20))
            wrote_all.append(True)
        except OSError:  # the reader closed the pipe
            pass

    writer = threading.Thread(target=long_stream, daemon=True)
    writer.start()
    r = run("encode", fifo, "-o", tmp_path / "p.aec")
    writer.join(60)
    assert assert_clean_failure(r, str(fifo)) == f"error: {fifo}: {AEC_HINT}"
    assert not writer.is_alive() and wrote_all == []
    assert listing(tmp_path) == ["pipe.png"]


# ----- batches ----------------------------------------------------------------------------------


def _hundred_inputs(folder: Path) -> tuple[list[Path], set[str]]:
    folder.mkdir()
    paths, bad = [], {"in05.png", "in51.png", "in97.png"}
    for i in range(100):
        p = folder / f"in{i:02d}.png"
        if p.name == "in05.png":
            p.write_bytes(b"not an image at all")
        elif p.name == "in51.png":
            p.write_bytes(b"")
        elif p.name == "in97.png":
            full = io.BytesIO()
            Image.fromarray(photo_like(16, 16, i)).save(full, "PNG")
            p.write_bytes(full.getvalue()[:60])
        else:
            png(p, Image.fromarray(photo_like(16 + i % 20, 12, i)))
        paths.append(p)
    return paths, bad


def test_batch_of_a_hundred_with_three_bad(run, tmp_path):
    paths, bad = _hundred_inputs(tmp_path / "src")
    out = tmp_path / "aec"
    out.mkdir()
    r = run("encode", *paths, "-o", out, "-q", "20")
    assert r.exit_code == 1
    assert "Traceback" not in r.output
    lines = error_lines(r)
    assert len(lines) == 3
    for name, line in zip(sorted(bad), lines, strict=True):
        assert name in line
    assert "3 of 100 inputs failed" in r.stderr
    good = sorted(p.with_suffix(".aec").name for p in paths if p.name not in bad)
    assert listing(out) == good
    for name in good:  # every good one is complete
        assert container.unpack((out / name).read_bytes())[0].model_id == "tiny-test"

    # The same through decode: 97 good files plus 3 broken ones.
    inputs = [out / n for n in good]
    for name, data in (("x1.aec", b""), ("x2.aec", b"\x89AEC\x01"), ("x3.aec", b"junk")):
        (out / name).write_bytes(data)
        inputs.insert(7, out / name)
    dec = tmp_path / "png"
    dec.mkdir()
    r = run("decode", *inputs, "-o", dec)
    assert r.exit_code == 1
    assert [line.split(": ")[1][-6:] for line in error_lines(r)] == ["x3.aec", "x2.aec", "x1.aec"]
    assert "3 of 100 inputs failed" in r.stderr
    assert listing(dec) == sorted(n + ".png" for n in good)


@pytest.mark.parametrize("command", ["encode", "decode"])
def test_fail_fast_stops_at_the_first_failure(run, tmp_path, command):
    src = tmp_path / "src"
    src.mkdir()
    names = ["a", "b", "c", "d", "e"]
    for i, n in enumerate(names):
        png(src / f"{n}.png", Image.fromarray(photo_like(16, 16, i)))
    if command == "encode":
        (src / "c.png").write_bytes(b"broken")
        inputs = [src / f"{n}.png" for n in names]
    else:
        out0 = tmp_path / "aec"
        out0.mkdir()
        assert run("encode", *(src / f"{n}.png" for n in names), "-o", out0).exit_code == 0
        (out0 / "c.aec").write_bytes(b"broken")
        inputs = [out0 / f"{n}.aec" for n in names]
    out = tmp_path / "out"
    out.mkdir()
    r = run(command, *inputs, "-o", out, "--fail-fast")
    assert_clean_failure(r, "c.")
    assert "stopped at the first failure (--fail-fast): 2 of 5 inputs not processed" in r.stderr
    suffix = ".aec" if command == "encode" else ".aec.png"
    assert listing(out) == ["a" + suffix, "b" + suffix]  # what was written stays, whole
    # Without --fail-fast the others are done too.
    r = run(command, *inputs, "-o", out, "--force")
    assert r.exit_code == 1 and "1 of 5 inputs failed" in r.stderr
    assert listing(out) == [n + suffix for n in ("a", "b", "d", "e")]


# ----- output safety ----------------------------------------------------------------------------


def test_an_input_is_never_its_own_output(run, tmp_path, valid_aec):
    aec = tmp_path / "x.aec"
    aec.write_bytes(valid_aec)
    r = run("decode", aec, "-o", aec, "--force")
    assert_clean_failure(r, "x.aec", "refusing to overwrite the input file")
    assert aec.read_bytes() == valid_aec
    src = png(tmp_path / "a.png")
    before = src.read_bytes()
    for target in (src, tmp_path / "." / "a.png", Path(os.path.relpath(src))):
        r = run("encode", src, "-o", target, "--force")
        assert_clean_failure(r, "a.png", "refusing to overwrite the input file")
    if hasattr(os, "symlink"):
        (tmp_path / "link.aec").symlink_to(src)
        r = run("encode", src, "-o", tmp_path / "link.aec", "--force")
        assert_clean_failure(r, "a.png", "refusing to overwrite the input file")
        (tmp_path / "link.aec").unlink()
    assert src.read_bytes() == before
    assert listing(tmp_path) == ["a.png", "x.aec"]


def test_two_inputs_never_write_one_output(run, tmp_path, valid_aec):
    """A usage error (exit 2) naming the clash, found before any work: nothing is written, no
    folder made."""
    a, b = png(tmp_path / "p.png"), png(tmp_path / "p.jpg", format="JPEG")
    r = run("encode", a, b, "--force")
    assert_clean_failure(r, f"{a} and {b} would write the same output file {tmp_path / 'p.aec'}",
                         code=2)  # fmt: skip
    assert listing(tmp_path) == ["p.jpg", "p.png"]
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        png(tmp_path / folder / "q.png")
        (tmp_path / folder / "q.aec").write_bytes(valid_aec)
    out = tmp_path / "out"
    x, y = tmp_path / "x", tmp_path / "y"
    r = run("encode", x / "q.png", y / "q.png", "-o", f"{out}/", "--mkdir")
    assert_clean_failure(r, f"{x / 'q.png'} and {y / 'q.png'} would write the same output "
                         f"file {out / 'q.aec'}", code=2)  # fmt: skip
    r = run("decode", x / "q.aec", y / "q.aec", "-o", f"{out}/", "--mkdir")
    assert_clean_failure(r, f"{x / 'q.aec'} and {y / 'q.aec'} would write the same output "
                         f"file {out / 'q.aec.png'}", code=2)  # fmt: skip
    r = run("decode", x / "q.aec", x / "q.aec")
    assert_clean_failure(r, f"{x / 'q.aec'} is given twice (both would write "
                         f"{x / 'q.aec.png'})", code=2)  # fmt: skip
    assert not out.exists() and listing(x) == listing(y) == ["q.aec", "q.png"]


def test_stdin_redirected_from_the_output_file_is_protected(tmp_path, tiny_model_path, valid_aec):
    """`aecompress decode - -o x.aec --force < x.aec` must not replace its own input (a real
    process: only then is stdin a file)."""
    aec = tmp_path / "x.aec"
    aec.write_bytes(valid_aec)
    env = {**os.environ, MODEL_ENV: str(tiny_model_path), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "aecompress", "decode", "-", "-o", str(aec), "--force"]
    with open(aec, "rb") as stdin:
        p = subprocess.run(command, stdin=stdin, capture_output=True, env=env, timeout=300)
    assert p.returncode == 1, p.stderr
    assert b"refusing to overwrite the input file" in p.stderr and b"Traceback" not in p.stderr
    assert aec.read_bytes() == valid_aec


def test_existing_output_is_kept_without_force(run, tmp_path, valid_aec):
    aec = tmp_path / "x.aec"
    aec.write_bytes(valid_aec)
    (tmp_path / "x.aec.png").write_bytes(b"an earlier decode")
    r = run("decode", aec)
    assert_clean_failure(r, "x.aec.png", "exists (use --force")
    assert (tmp_path / "x.aec.png").read_bytes() == b"an earlier decode"
    assert run("decode", aec, "--force").exit_code == 0
    assert (tmp_path / "x.aec.png").read_bytes()[:4] == b"\x89PNG"


def test_decoding_never_leads_to_replacing_the_original(run, tmp_path, valid_aec):
    """encode photo.png, then decode photo.aec: the default name is not photo.png, and naming
    photo.png explicitly is refused without a hint to --force (it is likely the original)."""
    aec = tmp_path / "x.aec"
    aec.write_bytes(valid_aec)
    (tmp_path / "x.png").write_bytes(b"the original photo")
    r = run("decode", aec)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "x.png").read_bytes() == b"the original photo"
    assert (tmp_path / "x.aec.png").read_bytes()[:4] == b"\x89PNG"
    r = run("decode", aec, "-o", tmp_path / "x.png")
    assert_clean_failure(r, "x.png", "may be the image")
    assert "--force" not in r.stderr and "x.aec.png" in r.stderr
    assert (tmp_path / "x.png").read_bytes() == b"the original photo"
    # Asked for explicitly, it is the user's choice.
    assert run("decode", aec, "-o", tmp_path / "x.png", "--force").exit_code == 0
    assert (tmp_path / "x.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("where", ["fsync", "replace"])
@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("command", ["encode", "decode"])
def test_ctrl_c_inside_the_write_leaves_nothing(
    run, tmp_path, monkeypatch, valid_aec, command, where, force
):
    if command == "encode":
        src, target = png(tmp_path / "a.png"), tmp_path / "a.aec"
    else:
        src, target = tmp_path / "a.aec", tmp_path / "a.png"
        src.write_bytes(valid_aec)
    if force:
        target.write_bytes(b"old contents")

    def interrupt(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, where, interrupt)  # after the data went to the temporary file
    r = run(command, src, *(["--force"] if force else []))
    assert r.exit_code == 130, r.output
    assert r.stderr.strip().splitlines()[-1] == "interrupted"
    assert "Traceback" not in r.output
    assert listing(tmp_path) == sorted([src.name] + [target.name] * force)  # no temp file
    if force:
        assert target.read_bytes() == b"old contents"


def test_ctrl_c_in_a_batch_keeps_finished_outputs(run, tmp_path, monkeypatch, valid_aec):
    from aecompress import outputs

    for n in ("a", "b", "c"):
        (tmp_path / f"{n}.aec").write_bytes(valid_aec)
    out = tmp_path / "out"
    out.mkdir()
    real = outputs.write_output
    calls = []

    def write_then_interrupt(path, data, force):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(path, data, force)

    monkeypatch.setattr(outputs, "write_output", write_then_interrupt)
    r = run("decode", *(tmp_path / f"{n}.aec" for n in "abc"), "-o", out)
    assert r.exit_code == 130 and "interrupted" in r.stderr and "Traceback" not in r.output
    assert listing(out) == ["a.aec.png"]
    with Image.open(out / "a.aec.png") as im:
        im.load()  # complete


def test_ctrl_c_before_writing(run, tmp_path, monkeypatch):
    def interrupt(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(Codec, "analyse", interrupt)  # where every encode starts
    src = png(tmp_path / "a.png")
    r = run("encode", src)
    assert r.exit_code == 130 and "interrupted" in r.stderr
    assert listing(tmp_path) == ["a.png"]


# ----- input images -----------------------------------------------------------------------------


def _jpeg_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


BAD_IMAGES = {
    "text.png": lambda: b"this is not an image\n",
    "empty.png": lambda: b"",
    "cut.png": lambda: _png_bytes(Image.fromarray(photo_like(40, 40)))[:200],
    "cut.jpg": lambda: _jpeg_bytes(Image.fromarray(photo_like(40, 40)))[:400],
    "header.jpg": lambda: _jpeg_bytes(Image.fromarray(photo_like(40, 40)))[:20],
}


@pytest.mark.parametrize("name", list(BAD_IMAGES))
def test_unreadable_images(run, tmp_path, name):
    src = tmp_path / name
    src.write_bytes(BAD_IMAGES[name]())
    r = run("encode", src, "-o", tmp_path / "out.aec")
    assert_clean_failure(r, name, "not a readable image")
    assert listing(tmp_path) == [name]


def test_unreadable_image_on_stdin_is_named(run):
    r = run("encode", "-", "-o", "-", input=b"nope")
    assert_clean_failure(r, "<stdin>", "not a readable image")
    assert "<bytes>" not in r.stderr and r.stdout_bytes == b""


def test_decompression_bomb(run, tmp_path, monkeypatch):
    src = png(tmp_path / "big.png", Image.fromarray(photo_like(40, 50)))  # 2000 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 900)  # an error beyond twice the limit
    r = run("encode", src, "-o", tmp_path / "big.aec")
    assert_clean_failure(r, "big.png", "too many pixels")
    assert not (tmp_path / "big.aec").exists()
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1500)  # a warning between 1x and 2x
    r = run("encode", src, "-o", tmp_path / "big.aec")
    assert r.exit_code == 0, r.output
    assert "warning:" in r.stderr and "very large image" in r.stderr


def _encode_decode(run, tmp_path, src: Path) -> tuple[object, Image.Image, str]:
    r = run("encode", src, "-o", tmp_path / "o.aec")
    assert r.exit_code == 0, r.output
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    d = run("decode", tmp_path / "o.aec", "-o", tmp_path / "o.png")
    assert d.exit_code == 0, d.output
    with Image.open(tmp_path / "o.png") as im:
        im.load()
    return r, im, "\n".join(warnings)


def test_animated_gif_first_frame_and_a_warning(run, tmp_path):
    frames = [Image.fromarray(photo_like(20, 30, s)).quantize(32) for s in range(3)]
    src = tmp_path / "anim.gif"
    frames[0].save(src, save_all=True, append_images=frames[1:], duration=100, loop=0)
    _, im, warnings = _encode_decode(run, tmp_path, src)
    assert "anim.gif" in warnings and "3 frames; only the first is encoded" in warnings
    assert im.size == (30, 20) and im.mode == "P"


@pytest.mark.parametrize("name", ["anim.webp", "pages.tiff"])
def test_animated_webp_and_multipage_tiff_first_frame_and_a_warning(run, tmp_path, name):
    frames = [Image.fromarray(photo_like(20, 30, s)) for s in range(3)]
    src = tmp_path / name
    frames[0].save(src, save_all=True, append_images=frames[1:])
    _, im, warnings = _encode_decode(run, tmp_path, src)
    assert name in warnings and "3 frames; only the first is encoded" in warnings
    assert im.size == (30, 20) and im.mode == "RGB"


def test_sixteen_bit_gray_png(run, tmp_path):
    values = (np.arange(24 * 32).reshape(24, 32) * 85).astype(np.uint16)
    src = tmp_path / "g16.png"
    Image.fromarray(values).save(src)
    _, im, warnings = _encode_decode(run, tmp_path, src)
    assert "reduced 16-bit samples to 8-bit" in warnings
    assert im.mode == "L" and im.size == (32, 24)


def _png_rgb48(path: Path, values: np.ndarray) -> Path:
    """A 16-bit-per-channel RGB PNG, written by hand (Pillow cannot write one)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    h, w = values.shape[:2]
    rows = b"".join(b"\0" + values[y].astype(">u2").tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    chunks = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunks)
    return path


def test_sixteen_bit_rgb_png_is_encoded_from_its_top_bytes(run, tmp_path):
    values = np.random.default_rng(0).integers(0, 1 << 16, (20, 30, 3)).astype(np.uint16)
    src = _png_rgb48(tmp_path / "rgb48.png", values)
    r = run("encode", src, "-o", tmp_path / "o.aec", "--json")
    assert r.exit_code == 0, r.output
    assert '"mode": "RGB"' in r.stdout
    assert np.array_equal(load_image(src).rgb, (values >> 8).astype(np.uint8))


def test_sixteen_bit_rgb_png_warns(run, tmp_path):
    values = np.random.default_rng(0).integers(0, 1 << 16, (20, 30, 3)).astype(np.uint16)
    src = _png_rgb48(tmp_path / "rgb48.png", values)
    r = run("encode", src, "-o", tmp_path / "o.aec")
    assert r.exit_code == 0, r.output
    assert "16-bit" in r.stderr


def test_cmyk_jpeg(run, tmp_path):
    src = tmp_path / "cmyk.jpg"
    Image.fromarray(photo_like(24, 32)).convert("CMYK").save(src, quality=95)
    _, im, warnings = _encode_decode(run, tmp_path, src)
    assert "converted CMYK to RGB" in warnings
    assert im.mode == "RGB" and im.size == (32, 24)


@pytest.mark.parametrize(
    "mode,fmt,note,back",
    [
        ("1", "PNG", "converted 1-bit image to 8-bit grayscale", "L"),
        ("I;16", "TIFF", "reduced 16-bit samples to 8-bit", "L"),
        ("I;16", "PNG", "reduced 16-bit samples to 8-bit", "L"),
    ],
)
def test_unusual_modes(run, tmp_path, mode, fmt, note, back):
    gray = photo_like(24, 32)[:, :, 0]
    if mode == "1":
        image = Image.fromarray(gray).convert("1")
    else:
        image = Image.fromarray(gray.astype(np.uint16) * 257)
        assert image.mode == "I;16"
    src = tmp_path / f"in.{fmt.lower()}"
    image.save(src, fmt)
    _, im, warnings = _encode_decode(run, tmp_path, src)
    assert note in warnings
    assert im.mode == back and im.size == (32, 24)
    if mode == "I;16":  # what is encoded is the top byte of each sample (the tiny test model
        # is untrained, so this looks at the encoder's input rather than the decoded pixels)
        assert np.array_equal(load_image(src).rgb[:, :, 0], gray)


def test_missing_model_names_the_model_and_where_it_was_looked_for(
    run, tmp_path, valid_aec, monkeypatch
):
    other = tmp_path / "other.pt"
    save_checkpoint(make_tiny_checkpoint(seed=5, model_id="another"), other)
    (tmp_path / "x.aec").write_bytes(valid_aec)
    monkeypatch.delenv(MODEL_ENV)  # the tiny model that wrote x.aec is nowhere to be found
    r = run("decode", tmp_path / "x.aec", "-o", tmp_path / "x.png", "--model", other)
    fingerprint = container.unpack(valid_aec)[0].fingerprint.hex()
    assert_clean_failure(
        r, "x.aec", f"encoded with model tiny-test ({fingerprint})", "not available",
        f"--model {other}", "the package's models in", "$AECOMPRESS_MODELS (unset)",
    )  # fmt: skip
    assert listing(tmp_path) == ["other.pt", "x.aec"]
