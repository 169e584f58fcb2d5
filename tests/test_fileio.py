import os
import stat
import sys

import pytest

from aecompress import fileio
from aecompress.errors import AecError
from aecompress.fileio import check_writable, write_output, write_stdout


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_writes_new_file(tmp_path):
    out = tmp_path / "a.aec"
    write_output(out, b"hello", force=False)
    assert out.read_bytes() == b"hello"
    assert leftovers(tmp_path) == []


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_new_file_gets_umask_permissions_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        write_output(tmp_path / "a.aec", b"x", force=False)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.aec").stat().st_mode) == 0o644


def test_refuses_existing_without_force(tmp_path):
    out = tmp_path / "a.aec"
    out.write_bytes(b"old")
    with pytest.raises(AecError, match=r"exists \(use --force to replace it\)"):
        write_output(out, b"new", force=False)
    assert out.read_bytes() == b"old"
    write_output(out, b"new", force=True)
    assert out.read_bytes() == b"new"
    assert leftovers(tmp_path) == []


def test_refuses_to_overwrite_input_even_with_force(tmp_path):
    src = tmp_path / "in.png"
    src.write_bytes(b"png")
    for force in (False, True):
        with pytest.raises(AecError, match="refusing to overwrite the input file"):
            check_writable(tmp_path / "." / "in.png", force=force, inputs=[src])
    link = tmp_path / "link.png"
    try:
        link.symlink_to(src)
    except OSError:
        pytest.skip("symlinks unavailable")
    with pytest.raises(AecError, match="refusing to overwrite the input file"):
        check_writable(link, force=True, inputs=[src])
    check_writable(tmp_path / "other.aec", force=False, inputs=[src])
    check_writable(link, force=True, inputs=[tmp_path / "missing.png"])


def test_missing_parent_directory(tmp_path):
    out = tmp_path / "nope" / "a.aec"
    with pytest.raises(AecError, match="directory .*nope does not exist"):
        write_output(out, b"x", force=True)
    assert not (tmp_path / "nope").exists()


def test_directory_as_output(tmp_path):
    with pytest.raises(AecError, match="is a directory"):
        write_output(tmp_path, b"x", force=True)


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_no_temp_file_left_when_replace_fails(tmp_path, monkeypatch, error):
    out = tmp_path / "a.aec"
    out.write_bytes(b"old")

    def fail(src, dst):
        assert os.path.basename(src).startswith(".a.aec.")
        raise error

    monkeypatch.setattr(fileio.os, "replace", fail)
    expected = AecError if isinstance(error, OSError) else KeyboardInterrupt
    with pytest.raises(expected):
        write_output(out, b"new", force=True)
    assert out.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_no_temp_file_left_when_interrupted_during_write(tmp_path, monkeypatch):
    def interrupt(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(fileio.os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_output(tmp_path / "a.aec", b"data", force=False)
    assert list(tmp_path.iterdir()) == []


def test_oserror_becomes_one_line_aec_error(tmp_path, monkeypatch):
    def fail(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(fileio.os, "replace", fail)
    with pytest.raises(AecError, match="cannot write .*a.aec: Permission denied"):
        write_output(tmp_path / "a.aec", b"x", force=False)
    assert list(tmp_path.iterdir()) == []


def test_write_stdout(capfdbinary):
    write_stdout(b"\x89AEC\x00\xff")
    assert capfdbinary.readouterr().out == b"\x89AEC\x00\xff"
